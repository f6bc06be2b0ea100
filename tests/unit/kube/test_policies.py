"""Networks that separate services become NetworkPolicies."""

from __future__ import annotations

from .conftest import Export, get, kinds, notes

THREE_TIERS = """
services:
  proxy: {image: nginx, restart: always, ports: ["80:80", "127.0.0.1:8080:8080"], networks: [front]}
  app: {image: app, restart: always, expose: [8000], networks: [front, back]}
  db: {image: postgres, restart: always, expose: [5432], networks: [back]}
  sidecar: {image: x, restart: always, network_mode: "service:app"}
networks: {front: {}, back: {}}
"""

PART_OF = "app.kubernetes.io/part-of"


def _pod_labels(result: object, name: str) -> dict[str, str]:
    body = get(result, "Deployment", name)  # type: ignore[arg-type]
    labels: dict[str, str] = body["spec"]["template"]["metadata"]["labels"]
    return labels


def test_networks_become_policies(export: Export) -> None:
    result = export(THREE_TIERS)
    assert _pod_labels(result, "app")["network.orchestrator/front"] == "true"
    assert _pod_labels(result, "app")["network.orchestrator/back"] == "true"
    assert "network.orchestrator/front" not in _pod_labels(result, "db")
    # network_mode: service:app shares app's networks.
    assert _pod_labels(result, "sidecar")["network.orchestrator/back"] == "true"
    # The selector stays the service's own.
    selector = get(result, "Deployment", "app")["spec"]["selector"]["matchLabels"]
    assert set(selector) == {PART_OF, "app.kubernetes.io/name"}
    back = {"matchLabels": {PART_OF: "shop", "network.orchestrator/back": "true"}}
    assert get(result, "NetworkPolicy", "network-back")["spec"] == {
        "podSelector": back,
        "policyTypes": ["Ingress"],
        "ingress": [{"from": [{"podSelector": back}]}],
    }
    # Published ports are open to anyone; the loopback one is not published at all.
    assert get(result, "NetworkPolicy", "proxy-published")["spec"]["ingress"] == [
        {"ports": [{"port": 80, "protocol": "TCP"}]}
    ]
    assert "enforces them" in notes(result)["networks"]


def test_one_network_needs_no_policy(export: Export) -> None:
    result = export("services: {a: {image: x, restart: always}, b: {image: x, restart: always}}")
    assert not [k for k in kinds(result) if k.startswith("NetworkPolicy/")]
    assert "networks" not in notes(result)


def test_internal_network_limits_egress(export: Export) -> None:
    result = export(
        """
        services:
          db: {image: x, restart: always, networks: [private]}
          app: {image: x, restart: always, networks: [private, public]}
        networks: {private: {internal: true}, public: {}}
        """
    )
    spec = get(result, "NetworkPolicy", "internal-private")["spec"]
    assert spec["policyTypes"] == ["Egress"]
    assert spec["podSelector"]["matchExpressions"] == [
        {"key": "network.orchestrator/public", "operator": "DoesNotExist"}
    ]
    assert spec["egress"][0] == {
        "to": [
            {
                "podSelector": {
                    "matchLabels": {PART_OF: "shop", "network.orchestrator/private": "true"}
                }
            }
        ]
    }
    assert {"port": 53, "protocol": "UDP"} in spec["egress"][1]["ports"]


def test_wait_across_networks_is_let_through(export: Export) -> None:
    result = export(
        """
        services:
          web: {image: x, restart: always, networks: [front], depends_on: [db]}
          db: {image: x, restart: always, expose: [5432], networks: [back]}
        networks: {front: {}, back: {}}
        """
    )
    spec = get(result, "NetworkPolicy", "db-from-web")["spec"]
    assert spec["ingress"] == [
        {
            "from": [
                {"podSelector": {"matchLabels": {PART_OF: "shop", "app.kubernetes.io/name": "web"}}}
            ],
            "ports": [{"port": 5432, "protocol": "TCP"}],
        }
    ]
    assert "shares no network" in notes(result)["services.web.depends_on.db"]
