"""A guard for "nothing silently lost": every field of the stack model is known to the export
(translated, warned about, or deliberately without effect, as docs/kubernetes.md says). A field
added to orchestrator/stack/model.py fails this test until the export handles it."""

from __future__ import annotations

import dataclasses

import pytest

from orchestrator.stack import model

HANDLED: dict[type, set[str]] = {
    model.Service: {
        "name",
        "image",
        "build",
        "command",
        "entrypoint",
        "environment",
        "working_dir",
        "user",
        "hostname",
        "domainname",
        "container_name",
        "labels",
        "depends_on",
        "links",
        "volumes",
        "volumes_from",
        "tmpfs",
        "ports",
        "expose",
        "networks",
        "network_mode",
        "extra_hosts",
        "restart",
        "replicas",
        "resources",
        "ulimits",
        "healthcheck",
        "stop_signal",
        "stop_grace_period_ns",
        "init",
        "read_only",
        "cap_add",
        "cap_drop",
        "no_new_privileges",
        "seccomp",
        "sysctls",
        "tty",
        "stdin_open",
        "profiles",
        "platform",
        "secrets",
        "configs",
        "extensions",
        "config_hash",
    },
    model.Build: {"context", "dockerfile", "args", "target"},  # built here, then pushed
    model.Port: {
        "target",
        "published_start",
        "published_end",
        "host_ip",
        "protocol",
        "mode",
        "name",
        "app_protocol",
    },
    model.Mount: {
        "type",
        "target",
        "source",
        "read_only",
        "create_host_path",
        "propagation",
        "selinux",
        "nocopy",
        "subpath",
        "tmpfs_size",
        "tmpfs_mode",
    },
    model.VolumesFrom: {"source", "kind", "read_only"},
    model.ServiceNetwork: {"name", "aliases", "ipv4_address", "ipv6_address"},
    model.Healthcheck: {
        "test",
        "interval_ns",
        "timeout_ns",
        "retries",
        "start_period_ns",
        "start_interval_ns",
        "disable",
    },
    model.Ulimit: {"name", "soft", "hard"},
    model.Resources: {
        "memory_limit",
        "memory_reservation",
        "memswap_limit",
        "cpus",
        "cpu_reservation",
        "cpu_shares",
        "cpu_quota",
        "cpu_period",
        "cpuset",
        "pids_limit",
        "shm_size",
    },
    model.RestartPolicy: {
        "name",
        "max_attempts",
        "delay_ns",
        "window_ns",
        "backoff_delay_ns",
        "backoff_max_ns",
        "backoff_reset_ns",
    },
    model.DependsOn: {"service", "condition", "restart", "required"},
    model.Link: {"service", "alias"},
    model.FileRef: {"source", "target", "uid", "gid", "mode"},
    model.ExtraHost: {"hostname", "address"},
    model.Network: {
        "key",
        "name",
        "driver",
        "driver_opts",
        "ipam",
        "internal",
        "enable_ipv6",
        "attachable",
        "labels",
        "external",
    },
    model.IpamConfig: {"subnet", "gateway", "ip_range"},
    model.Volume: {"key", "name", "driver", "driver_opts", "labels", "external"},
    model.FileObject: {"key", "name", "file", "environment", "content", "external"},
    model.Stack: {
        "name",
        "project_dir",
        "files",
        "services",
        "networks",
        "volumes",
        "secrets",
        "configs",
        "extensions",
        "disabled_services",
        "warnings",
    },
}


@pytest.mark.parametrize("cls", list(HANDLED), ids=lambda c: c.__name__)
def test_every_model_field_is_known_to_the_export(cls: type) -> None:
    fields = {f.name for f in dataclasses.fields(cls)}
    assert fields - HANDLED[cls] == set(), (
        f"{cls.__name__} gained fields: translate them in orchestrator/kube (or warn), "
        "add them to docs/kubernetes.md, then here"
    )
