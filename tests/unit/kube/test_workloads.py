"""What each service becomes: the workload kind, its pod, its container (one test per key)."""

from __future__ import annotations

import pytest

from orchestrator.errors import UserError

from .conftest import Export, container, get, kinds, notes, pod


def test_plain_service_is_a_deployment_with_stack_labels(export: Export) -> None:
    result = export("services: {web: {image: nginx:1.27, deploy: {replicas: 3}}}")
    body = get(result, "Deployment", "web")
    assert body["metadata"]["labels"] == {
        "app.kubernetes.io/managed-by": "orchestrator",
        "app.kubernetes.io/part-of": "shop",
        "app.kubernetes.io/name": "web",
    }
    assert body["spec"]["replicas"] == 3
    assert body["spec"]["selector"] == {
        "matchLabels": {"app.kubernetes.io/part-of": "shop", "app.kubernetes.io/name": "web"}
    }
    spec = body["spec"]["template"]["spec"]
    assert spec["containers"] == [{"name": "web", "image": "nginx:1.27"}]
    # As in Compose: no API token, no variables naming every Service.
    assert spec["enableServiceLinks"] is False
    assert spec["automountServiceAccountToken"] is False


def test_one_replica_with_a_named_volume_is_a_statefulset(export: Export) -> None:
    result = export(
        """
        services: {db: {image: postgres, volumes: ["data:/var/lib/postgresql/data"]}}
        volumes: {data: {}}
        """
    )
    body = get(result, "StatefulSet", "db")
    assert body["spec"]["serviceName"] == "db"
    assert body["spec"]["replicas"] == 1
    assert pod(result, "db")["volumes"] == [
        {"name": "data-data", "persistentVolumeClaim": {"claimName": "data"}}
    ]
    assert container(result, "db")["volumeMounts"] == [
        {"name": "data-data", "mountPath": "/var/lib/postgresql/data"}
    ]


def test_service_awaited_to_complete_is_a_job(export: Export) -> None:
    result = export(
        """
        services:
          migrate: {image: app, command: ["migrate"], restart: "on-failure:2", scale: 2}
          web: {image: app, depends_on: {migrate: {condition: service_completed_successfully}}}
        """
    )
    job = get(result, "Job", "migrate")
    assert job["apiVersion"] == "batch/v1"
    assert job["spec"]["backoffLimit"] == 2
    assert job["spec"]["completions"] == job["spec"]["parallelism"] == 2
    assert job["spec"]["template"]["spec"]["restartPolicy"] == "OnFailure"
    assert "Service/migrate" not in kinds(result)


def test_job_without_restart_runs_once(export: Export) -> None:
    result = export(
        """
        services:
          seed: {image: app}
          web: {image: app, depends_on: {seed: {condition: service_completed_successfully}}}
        """
    )
    assert get(result, "Job", "seed")["spec"]["backoffLimit"] == 0
    assert pod(result, "seed")["restartPolicy"] == "Never"


def test_entrypoint_and_command_become_command_and_args_with_dollars_kept(
    export: Export,
) -> None:
    result = export(
        """
        services:
          a: {image: x, entrypoint: ["/bin/sh", "-c"], command: ["echo $$HOME $$(date)"]}
          b: {image: x, command: "run --port 80"}
          c: {image: x, entrypoint: [], command: ["python", "app.py"]}
        """
    )
    # An entrypoint cleared: the command is the program.
    assert container(result, "c")["command"] == ["python", "app.py"]
    assert "args" not in container(result, "c")
    assert "services.c.entrypoint" not in notes(result)
    assert container(result, "a")["command"] == ["/bin/sh", "-c"]
    # Kubernetes expands $(VAR) itself; $$ is its spelling of a literal $.
    assert container(result, "a")["args"] == ["echo $$HOME $$(date)"]
    assert "command" not in container(result, "b")
    assert container(result, "b")["args"] == ["run", "--port", "80"]


def test_working_dir_tty_stdin(export: Export) -> None:
    c = container(
        export("services: {a: {image: x, working_dir: /srv, tty: true, stdin_open: true}}"), "a"
    )
    assert (c["workingDir"], c["tty"], c["stdin"]) == ("/srv", True, True)


def test_environment_and_env_file_go_into_a_configmap(export: Export) -> None:
    result = export(
        """
        services:
          web:
            image: x
            env_file: [web.env]
            environment: {FROM_STACK: "a $$b", UNSET: null, "bad key": v}
        """,
        files={"web.env": "FROM_FILE=1\nFROM_STACK=overridden\n"},
    )
    cm = get(result, "ConfigMap", "web-env")
    assert cm["data"] == {"FROM_FILE": "1", "FROM_STACK": "a $b"}
    c = container(result, "web")
    assert c["envFrom"] == [{"configMapRef": {"name": "web-env"}}]
    # A name a ConfigMap cannot hold goes inline, its $ doubled so that it stays literal.
    assert c["env"] == [{"name": "bad key", "value": "v"}]


def test_resources_limits_and_reservations(export: Export) -> None:
    result = export(
        """
        services:
          a:
            image: x
            deploy:
              resources:
                limits: {cpus: "1.5", memory: 512M}
                reservations: {cpus: "0.25", memory: 128M}
          b: {image: x, cpu_quota: 50000, cpu_period: 100000, mem_limit: 1g}
        """
    )
    assert container(result, "a")["resources"] == {
        "limits": {"cpu": "1500m", "memory": "512Mi"},
        "requests": {"cpu": "250m", "memory": "128Mi"},
    }
    assert container(result, "b")["resources"] == {"limits": {"cpu": "500m", "memory": "1Gi"}}


def test_healthcheck_becomes_a_readiness_probe_with_dockers_defaults(export: Export) -> None:
    result = export(
        """
        services:
          a: {image: x, healthcheck: {test: ["CMD", "curl", "-f", "http://localhost"], interval: 10s, timeout: 1500ms, retries: 5}}
          b: {image: x, healthcheck: {test: "pg_isready -U app"}}
          c: {image: x, healthcheck: {disable: true}}
        """
    )
    assert container(result, "a")["readinessProbe"] == {
        "exec": {"command": ["curl", "-f", "http://localhost"]},
        "periodSeconds": 10,
        "timeoutSeconds": 2,
        "failureThreshold": 5,
    }
    assert container(result, "b")["readinessProbe"] == {
        "exec": {"command": ["/bin/sh", "-c", "pg_isready -U app"]},
        "periodSeconds": 30,
        "timeoutSeconds": 30,
        "failureThreshold": 3,
    }
    assert "readinessProbe" not in container(result, "c")
    assert "livenessProbe" not in container(result, "a")


def test_security_context(export: Export) -> None:
    result = export(
        """
        services:
          a:
            image: x
            user: "1000:1001"
            read_only: true
            cap_add: [NET_ADMIN]
            cap_drop: [ALL]
            security_opt: ["no-new-privileges:true"]
            sysctls: {net.ipv4.tcp_syncookies: "1"}
          b: {image: x, user: root}
        """
    )
    assert container(result, "a")["securityContext"] == {
        "runAsUser": 1000,
        "runAsGroup": 1001,
        "allowPrivilegeEscalation": False,
        "capabilities": {"add": ["NET_ADMIN"], "drop": ["ALL"]},
        "readOnlyRootFilesystem": True,
    }
    assert pod(result, "a")["securityContext"] == {
        "sysctls": [{"name": "net.ipv4.tcp_syncookies", "value": "1"}]
    }
    assert container(result, "b")["securityContext"] == {"runAsUser": 0}


def test_pod_settings(export: Export) -> None:
    result = export(
        """
        services:
          a:
            image: x
            hostname: box
            init: true
            stop_grace_period: 1m30s
            extra_hosts: ["db.local=10.0.0.5", "cache.local=10.0.0.5", "api.local=10.0.0.6"]
            platform: linux/amd64
        """.replace("linux/amd64", _here())
    )
    spec = pod(result, "a")
    assert spec["hostname"] == "box"
    assert spec["shareProcessNamespace"] is True
    assert spec["terminationGracePeriodSeconds"] == 90
    assert spec["hostAliases"] == [
        {"ip": "10.0.0.5", "hostnames": ["db.local", "cache.local"]},
        {"ip": "10.0.0.6", "hostnames": ["api.local"]},
    ]
    os_name, arch = _here().split("/")
    assert spec["nodeSelector"] == {"kubernetes.io/os": os_name, "kubernetes.io/arch": arch}


def _here() -> str:
    from orchestrator.stack.convert import host_oci_platform

    return host_oci_platform()


def test_stop_signal_needs_the_pod_os(export: Export) -> None:
    result = export("services: {a: {image: x, stop_signal: SIGINT}}")
    assert container(result, "a")["lifecycle"] == {"stopSignal": "SIGINT"}
    assert pod(result, "a")["os"] == {"name": "linux"}
    assert "ContainerStopSignals" in notes(result)["services.a.stop_signal"]


def test_network_mode_host(export: Export) -> None:
    result = export("services: {a: {image: x, network_mode: host}}")
    spec = pod(result, "a")
    assert spec["hostNetwork"] is True
    assert spec["dnsPolicy"] == "ClusterFirstWithHostNet"
    assert "hostNetwork" in notes(result)["services.a.network_mode"]


def test_user_labels_are_labels_or_annotations(export: Export) -> None:
    result = export(
        """
        services:
          a:
            image: x
            labels:
              com.example.tier: backend
              com.example.description: "Accounting web app"
              app.kubernetes.io/name: mine
        """
    )
    body = get(result, "Deployment", "a")
    labels = body["spec"]["template"]["metadata"]["labels"]
    annotations = body["spec"]["template"]["metadata"]["annotations"]
    assert labels["com.example.tier"] == "backend"
    assert labels["app.kubernetes.io/name"] == "a"  # ours wins: it selects the pods
    assert annotations == {
        "com.example.description": "Accounting web app",
        "app.kubernetes.io/name": "mine",
    }


def test_names_become_dns_labels(export: Export) -> None:
    result = export("services: {Web_App: {image: x, ports: ['80']}, 2fa: {image: x}}")
    assert "Deployment/web-app" in kinds(result)
    assert "Service/s-2fa" in kinds(result)
    assert "becomes 'web-app'" in notes(result)["services.Web_App"]
    assert container(result, "web-app")["name"] == "web-app"


def test_colliding_names_are_an_error(export: Export) -> None:
    with pytest.raises(UserError) as info:
        export("services: {web_app: {image: x}, web-app: {image: x}}")
    assert str(info.value) == (
        "services.web-app and services.web_app both become the Service 'web-app' in "
        "Kubernetes: rename one of them"
    )


def test_profiles(export: Export) -> None:
    text = "services: {a: {image: x}, debug: {image: x, profiles: [debug]}}"
    result = export(text)
    assert "Deployment/debug" not in kinds(result)
    assert "--profile" in notes(result)["services.debug.profiles"]
    assert "Deployment/debug" in kinds(export(text, profiles=["debug"]))


def test_namespace(export: Export) -> None:
    result = export("services: {a: {image: x}}", namespace="prod")
    assert result.manifests[0].body == {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {
            "name": "prod",
            "labels": {
                "app.kubernetes.io/managed-by": "orchestrator",
                "app.kubernetes.io/part-of": "shop",
            },
        },
    }
    assert all(m.body["metadata"].get("namespace") == "prod" for m in result.manifests[1:])
    with pytest.raises(UserError, match="--namespace 'Prod'"):
        export("services: {a: {image: x}}", namespace="Prod")


def test_registry_rewrites_built_images_and_lists_pushes(export: Export) -> None:
    text = """
        services:
          web: {build: .}
          api: {build: ./api, image: ghcr.io/me/api:2}
          db: {image: postgres:16}
        """
    result = export(text, registry="registry.example.com:5000/team/")
    assert container(result, "web")["image"] == "registry.example.com:5000/team/shop-web:latest"
    assert container(result, "api")["image"] == "registry.example.com:5000/team/me/api:2"
    assert container(result, "db")["image"] == "postgres:16"
    assert [p.command for p in result.pushes] == [
        "orchestrator push shop-web:latest registry.example.com:5000/team/shop-web:latest",
        "orchestrator push ghcr.io/me/api:2 registry.example.com:5000/team/me/api:2",
    ]
    without = export(text)
    assert container(without, "web")["image"] == "shop-web"
    assert "--registry" in notes(without)["services.web.build"]
    with pytest.raises(UserError, match="must be HOST"):
        export(text, registry="https://registry.example.com")
