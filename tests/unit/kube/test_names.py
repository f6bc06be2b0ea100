"""Names Kubernetes accepts, derived stably from stack names."""

from __future__ import annotations

import pytest

from orchestrator.kube import names


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("web", "web"),
        ("Web_App.1", "web-app-1"),
        ("2fa", "s-2fa"),
        ("_x_", "x"),
        ("a" * 70, "a" * 54 + "-" + "6bd5e503"),
    ],
)
def test_dns_label(text: str, expected: str) -> None:
    assert names.dns_label(text) == expected
    assert names.is_dns_label(names.dns_label(text))


def test_derived_names_keep_their_role() -> None:
    assert names.derived("web", "env") == "web-env"
    assert names.derived("web", "2") == "web-2"
    assert names.derived("web", "nginx.conf") == "web-nginx-conf"
    long = names.derived("a" * 63, "published")
    assert long.endswith("-published") and len(long) == 63
    assert long != names.derived("a" * 62 + "b", "published")


def test_labels_and_keys() -> None:
    assert names.is_label("com.example/tier", "backend")
    assert not names.is_label("com.example/tier", "two words")
    assert not names.is_label("Bad_Prefix!/x", "v")
    assert names.label_value("my stack") == "my-stack"
    assert names.is_label("k", names.label_value("x" * 80))
    assert names.data_key("db_password") == "db_password"
    assert names.data_key("a b") == "a_b"
    assert names.port_name("TCP", 80, "http") == "http"
    assert names.port_name("TCP", 80, "not--valid") == "tcp-80"
    assert names.port_name("UDP", 53, "a-very-long-port-name") == "udp-53"
