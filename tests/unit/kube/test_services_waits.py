"""Services (names, published ports, aliases) and depends_on as init containers."""

from __future__ import annotations

from .conftest import Export, get, kinds, notes, pod


def test_exposed_and_published_ports(export: Export) -> None:
    result = export(
        """
        services:
          web:
            image: x
            ports: ["8080:80", "127.0.0.1:9000:9000", {target: 53, published: "5353", protocol: udp, name: dns}]
            expose: ["3000-3001"]
        """
    )
    assert get(result, "Service", "web")["spec"] == {
        "type": "ClusterIP",
        "selector": {"app.kubernetes.io/part-of": "shop", "app.kubernetes.io/name": "web"},
        "ports": [
            {"name": "tcp-80", "port": 80, "targetPort": 80, "protocol": "TCP"},
            {"name": "tcp-9000", "port": 9000, "targetPort": 9000, "protocol": "TCP"},
            {"name": "dns", "port": 53, "targetPort": 53, "protocol": "UDP"},
            {"name": "tcp-3000", "port": 3000, "targetPort": 3000, "protocol": "TCP"},
            {"name": "tcp-3001", "port": 3001, "targetPort": 3001, "protocol": "TCP"},
        ],
    }
    published = get(result, "Service", "web-published")["spec"]
    assert published["type"] == "LoadBalancer"
    assert published["ports"] == [
        {"name": "tcp-8080", "port": 8080, "targetPort": 80, "protocol": "TCP"},
        {"name": "udp-5353", "port": 5353, "targetPort": 53, "protocol": "UDP"},
    ]
    assert "port-forward service/web 9000:9000" in notes(result)["services.web.ports[1]"]
    assert [
        p["containerPort"]
        for p in get(result, "Deployment", "web")["spec"]["template"]["spec"]["containers"][0][
            "ports"
        ]
    ] == [80, 9000, 53, 3000, 3001]


def test_service_without_ports_gets_a_headless_service(export: Export) -> None:
    result = export("services: {db: {image: postgres}}")
    assert get(result, "Service", "db")["spec"] == {
        "clusterIP": "None",
        "selector": {"app.kubernetes.io/part-of": "shop", "app.kubernetes.io/name": "db"},
    }
    assert "Service/db-published" not in kinds(result)


def test_aliases_get_services_of_their_own(export: Export) -> None:
    result = export(
        """
        services:
          db: {image: postgres, container_name: pg_main, expose: [5432], networks: {back: {aliases: [database]}}}
          web: {image: x, links: ["db:sql"], networks: [back]}
        networks: {back: {}}
        """
    )
    for alias in ("pg-main", "database", "sql"):
        spec = get(result, "Service", alias)["spec"]
        assert spec["selector"]["app.kubernetes.io/name"] == "db"
        assert spec["ports"][0]["port"] == 5432
    assert "becomes 'pg-main'" in notes(result)["services.db.container_name"]


def test_alias_that_is_another_services_name_is_not_kept(export: Export) -> None:
    result = export(
        """
        services:
          db: {image: x, networks: {default: {aliases: [web]}}}
          web: {image: x}
        """
    )
    assert get(result, "Service", "web")["spec"]["selector"]["app.kubernetes.io/name"] == "web"
    assert (
        "already the name of services.web" in notes(result)["services.db.networks.default.aliases"]
    )


def _script(container: dict[str, object]) -> str:
    command = container["command"]
    assert isinstance(command, list)
    return str(command[2])


def test_depends_on_waits_in_init_containers(export: Export) -> None:
    result = export(
        """
        services:
          web:
            image: x
            depends_on:
              api: {condition: service_started}
              db: {condition: service_healthy}
              cache: {condition: service_started}
          api: {image: x, expose: [8080]}
          db: {image: postgres, expose: [5432], healthcheck: {test: pg_isready}}
          cache: {image: redis}
        """
    )
    init = pod(result, "web")["initContainers"]
    assert [c["name"] for c in init] == ["wait-for-api", "wait-for-cache", "wait-for-db"]
    assert all(c["image"] == "busybox:1.37" for c in init)
    assert _script(init[0]) == (
        "until nc -z -w 2 api 8080; do echo 'waiting for api:8080'; sleep 2; done"
    )
    # No ports: the headless Service's name resolves only while a pod is ready.
    assert 'nslookup "cache$${domain:+.$$domain}"' in _script(init[1])
    assert "nc -z -w 2 db 5432" in _script(init[2])
    for c in init:
        assert c["securityContext"]["runAsNonRoot"] is True
        assert c["securityContext"]["allowPrivilegeEscalation"] is False


def test_links_wait_too(export: Export) -> None:
    result = export("services: {web: {image: x, links: [db]}, db: {image: y, expose: [5432]}}")
    assert [c["name"] for c in pod(result, "web")["initContainers"]] == ["wait-for-db"]


def test_completed_successfully_waits_for_the_job_through_the_api(export: Export) -> None:
    result = export(
        """
        services:
          migrate: {image: app}
          web: {image: app, depends_on: {migrate: {condition: service_completed_successfully}}}
        """,
        namespace="prod",
    )
    spec = pod(result, "web")
    (wait,) = spec["initContainers"]
    assert wait["image"] == "registry.k8s.io/kubectl:v1.36.0"
    assert wait["command"] == [
        "kubectl",
        "wait",
        "--for=condition=complete",
        "--timeout=-1s",
        "job/migrate",
    ]
    assert wait["volumeMounts"] == [
        {
            "name": "job-waiter-token",
            "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount",
            "readOnly": True,
        }
    ]
    # The token reaches the init container only.
    assert spec["serviceAccountName"] == "shop-job-waiter"
    assert spec["automountServiceAccountToken"] is False
    assert "volumeMounts" not in spec["containers"][0]
    role = get(result, "Role", "shop-job-waiter")
    assert role["rules"] == [
        {"apiGroups": ["batch"], "resources": ["jobs"], "verbs": ["get", "list", "watch"]}
    ]
    binding = get(result, "RoleBinding", "shop-job-waiter")
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "shop-job-waiter", "namespace": "prod"}
    ]
    assert "ServiceAccount/shop-job-waiter" in kinds(result)


def test_no_rbac_without_job_waits(export: Export) -> None:
    result = export("services: {a: {image: x, depends_on: [b]}, b: {image: x}}")
    assert not [m for m in result.manifests if m.kind in ("ServiceAccount", "Role", "RoleBinding")]
