"""Resources: OCI parsing, validation naming the field, and the v1 -> v2 conversions."""

from __future__ import annotations

from typing import Any

import pytest

from runtime.cgroups import DEFAULT_DEVICE_RULES, DeviceRule, Resources
from runtime.cgroups.resources import cpu_max_v2, cpu_weight, swap_max_v2
from runtime.errors import Error


def test_from_oci_reads_every_supported_field() -> None:
    res = Resources.from_oci(
        {
            "memory": {"limit": 512 << 20, "swap": 1 << 30, "reservation": 256 << 20},
            "cpu": {"shares": 512, "quota": 50000, "period": 100000, "cpus": "0-1", "mems": "0"},
            "pids": {"limit": 64},
            "devices": [
                {"allow": False, "access": "rwm"},
                {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rw"},
            ],
            "blockIO": {"weight": 10},  # not applied, not an error
        }
    )
    assert res == Resources(
        memory_limit=512 << 20,
        memory_swap=1 << 30,
        memory_reservation=256 << 20,
        cpu_shares=512,
        cpu_quota=50000,
        cpu_period=100000,
        cpuset_cpus="0-1",
        cpuset_mems="0",
        pids_limit=64,
        devices=(
            DeviceRule(allow=False),
            DeviceRule(allow=True, type="c", major=1, minor=3, access="rw"),
            *DEFAULT_DEVICE_RULES,  # the default devices stay usable (config-linux.md)
        ),
    )


def test_from_oci_appends_the_default_devices_once() -> None:
    deny_all = [{"allow": False, "access": "rwm"}]
    assert Resources.from_oci({"devices": deny_all}).devices == (
        DeviceRule(allow=False),
        *DEFAULT_DEVICE_RULES,
    )
    from runtime.specgen import default_device_rules  # ends with them already

    assert Resources.from_oci({"devices": default_device_rules()}).devices == (
        DeviceRule(allow=False),
        *DEFAULT_DEVICE_RULES,
    )


def test_from_oci_empty_and_zero_mean_unset() -> None:
    assert Resources.from_oci(None) == Resources()
    assert Resources.from_oci({}) == Resources()
    res = Resources.from_oci({"cpu": {"shares": 0, "quota": 0, "cpus": ""}, "pids": {"limit": 0}})
    assert res == Resources()


@pytest.mark.parametrize(
    ("oci", "words"),
    [
        ({"memory": {"limit": "1g"}}, "memory.limit"),
        ({"memory": {"limit": True}}, "memory.limit"),
        ({"memory": {"limit": -5}}, "memory_limit"),
        ({"memory": {"limit": 2**64}}, "memory_limit"),
        ({"memory": {"limit": 100, "swap": 50}}, "memory_swap"),
        ({"memory": {"swap": 1 << 30}}, "memory_swap needs a memory_limit"),
        ({"memory": {"reservation": -2}}, "memory_reservation"),
        ({"cpu": {"shares": 1}}, "cpu_shares"),
        ({"cpu": {"shares": 262145}}, "cpu_shares"),
        ({"cpu": {"quota": 10}}, "cpu_quota"),
        ({"cpu": {"period": 999}}, "cpu_period"),
        ({"cpu": {"period": 2_000_000}}, "cpu_period"),
        ({"cpu": {"cpus": "0-"}}, "cpuset_cpus"),
        ({"cpu": {"cpus": "3-1"}}, "backwards"),
        ({"cpu": {"mems": 0}}, "cpu.mems"),
        ({"pids": {"limit": -7}}, "pids_limit"),
        ({"pids": {"limit": 10**9}}, "pids_limit"),
        ({"memory": []}, "linux.resources.memory must be an object"),
        ({"devices": {}}, "devices must be a list"),
        ({"devices": [{"access": "rwm"}]}, "devices[0].allow"),
        ({"devices": [{"allow": True, "type": "x"}]}, "devices[0]: type"),
        ({"devices": [{"allow": True, "access": "rwx"}]}, "devices[0]: access"),
        ({"devices": [{"allow": True, "major": "1"}]}, "devices[0].major"),
    ],
)
def test_from_oci_rejects_with_the_field_name(oci: dict[str, Any], words: str) -> None:
    with pytest.raises(Error) as info:
        Resources.from_oci(oci)
    assert words in str(info.value)
    assert "\n" not in str(info.value)


def test_unlimited_values_are_accepted() -> None:
    res = Resources.from_oci(
        {"memory": {"limit": -1, "swap": -1}, "cpu": {"quota": -1}, "pids": {"limit": -1}}
    )
    assert (res.memory_limit, res.memory_swap, res.cpu_quota, res.pids_limit) == (-1, -1, -1, -1)


def test_direct_construction_is_validated_too() -> None:
    with pytest.raises(Error, match="cpu_shares"):
        Resources(cpu_shares=0)


def test_cpu_weight_matches_runc_and_crun() -> None:
    # figures from runc >= 1.3.2 (e.g. runc issue 4896: 2000 shares -> 170)
    assert cpu_weight(2) == 1
    assert cpu_weight(3) == 2
    assert cpu_weight(512) == 59
    assert cpu_weight(1024) == 100
    assert cpu_weight(2000) == 170
    assert cpu_weight(262143) == 10000
    assert cpu_weight(262144) == 10000
    weights = [cpu_weight(s) for s in range(2, 262145, 997)]
    assert weights == sorted(weights)


def test_swap_conversion_to_v2() -> None:
    assert swap_max_v2(None, None) is None
    assert swap_max_v2(100 << 20, None) is None
    assert swap_max_v2(-1, None) == "max"
    assert swap_max_v2(100 << 20, -1) == "max"
    assert swap_max_v2(100 << 20, 300 << 20) == str(200 << 20)
    assert swap_max_v2(100 << 20, 100 << 20) == "0"


def test_cpu_max_conversion() -> None:
    assert cpu_max_v2(None, None) is None
    assert cpu_max_v2(50000, None) == "50000"
    assert cpu_max_v2(50000, 100000) == "50000 100000"
    assert cpu_max_v2(-1, 20000) == "max 20000"
    assert cpu_max_v2(None, 20000) == "max 20000"


def test_device_rule_lines_for_v1() -> None:
    assert DeviceRule(allow=False).v1_lines() == ["a"]
    assert DeviceRule(allow=True, type="c", major=1, minor=3, access="wr").v1_lines() == [
        "c 1:3 rw"
    ]
    assert DeviceRule(allow=True, type="c", major=136, access="rwm").v1_lines() == ["c 136:* rwm"]
    # a narrower "a" rule must not become the kernel's whole-list reset
    assert DeviceRule(allow=True, type="a", access="r").v1_lines() == ["c *:* r", "b *:* r"]


def test_default_device_rules_mirror_docker() -> None:
    lines = [line for rule in DEFAULT_DEVICE_RULES for line in rule.v1_lines()]
    assert all(rule.allow for rule in DEFAULT_DEVICE_RULES)
    for expected in ("c 1:3 rwm", "c 1:5 rwm", "c 1:9 rwm", "c 5:2 rwm", "c 136:* rwm"):
        assert expected in lines
    assert "c 10:229 rwm" not in lines  # fuse stays denied
