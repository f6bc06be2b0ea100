"""Volumes, tmpfs, bind mounts, volumes_from, configs and secrets."""

from __future__ import annotations

import base64

from .conftest import Export, container, get, kinds, manifest, notes, pod


def test_shared_named_volume_asks_for_read_write_many(export: Export) -> None:
    result = export(
        """
        services:
          web: {image: x, volumes: ["code:/srv"], deploy: {replicas: 2}}
          php: {image: y, volumes: ["code:/var/www:ro"]}
        volumes: {code: {labels: {com.example.team: web}}}
        """
    )
    claim = get(result, "PersistentVolumeClaim", "code")
    assert claim["spec"] == {
        "accessModes": ["ReadWriteMany"],
        "resources": {"requests": {"storage": "1Gi"}},
    }
    assert claim["metadata"]["labels"]["com.example.team"] == "web"
    assert "ReadWriteMany" in notes(result)["volumes.code"]
    # Two replicas: a Deployment; one replica with the volume: a StatefulSet.
    assert "Deployment/web" in kinds(result) and "StatefulSet/php" in kinds(result)
    assert container(result, "php")["volumeMounts"] == [
        {"name": "data-code", "mountPath": "/var/www", "readOnly": True}
    ]


def test_external_volume_is_referenced_not_written(export: Export) -> None:
    result = export(
        """
        services: {db: {image: x, volumes: ["pg:/data"]}}
        volumes: {pg: {external: true, name: shared_pg}}
        """
    )
    assert "PersistentVolumeClaim/shared-pg" not in kinds(result)
    assert pod(result, "db")["volumes"][0]["persistentVolumeClaim"] == {"claimName": "shared-pg"}
    assert "must exist" in notes(result)["volumes.pg.external"]


def test_anonymous_volume_tmpfs_and_shm(export: Export) -> None:
    result = export(
        """
        services:
          a:
            image: x
            volumes: ["/cache", {type: tmpfs, target: /scratch, tmpfs: {size: 64m}}]
            tmpfs: ["/run:size=1m"]
            shm_size: 256m
        """
    )
    assert pod(result, "a")["volumes"] == [
        {"name": "anon-cache", "emptyDir": {}},
        {"name": "tmpfs-scratch", "emptyDir": {"medium": "Memory", "sizeLimit": "64Mi"}},
        {"name": "tmpfs-run", "emptyDir": {"medium": "Memory", "sizeLimit": "1Mi"}},
        {"name": "shm", "emptyDir": {"medium": "Memory", "sizeLimit": "256Mi"}},
    ]
    assert [m["mountPath"] for m in container(result, "a")["volumeMounts"]] == [
        "/cache",
        "/scratch",
        "/run",
        "/dev/shm",
    ]


def test_bind_mounted_project_file_is_copied_into_a_configmap(export: Export) -> None:
    result = export(
        "services: {web: {image: nginx, volumes: ['./conf/nginx.conf:/etc/nginx/nginx.conf:ro', './run.sh:/run.sh']}}",
        files={"conf/nginx.conf": "events {}\n", "run.sh": "#!/bin/sh\n"},
        modes={"run.sh": 0o755},
    )
    assert get(result, "ConfigMap", "web-nginx-conf")["data"] == {"nginx.conf": "events {}\n"}
    assert container(result, "web")["volumeMounts"][0] == {
        "name": "files-web-nginx-conf",
        "mountPath": "/etc/nginx/nginx.conf",
        "subPath": "nginx.conf",
        "readOnly": True,
    }
    messages = notes(result)
    assert "copied into the ConfigMap 'web-nginx-conf'" in messages["services.web.volumes[0]"]
    assert "read-only in the cluster" in messages["services.web.volumes[1]"]
    assert pod(result, "web")["volumes"][1]["configMap"]["items"] == [
        {"key": "run.sh", "path": "run.sh", "mode": 0o755}
    ]


def test_read_only_directory_of_files_is_copied_writable_one_is_not(export: Export) -> None:
    result = export(
        """
        services:
          web: {image: nginx, volumes: ["./conf.d:/etc/nginx/conf.d:ro", "./src:/app"]}
        """,
        files={"conf.d/a.conf": "a\n", "conf.d/b.bin": b"\xff\x00", "src/main.py": "print()\n"},
    )
    cm = get(result, "ConfigMap", "web-conf-d")
    assert cm["data"] == {"a.conf": "a\n"}
    assert cm["binaryData"] == {"b.bin": base64.b64encode(b"\xff\x00").decode()}
    volumes = {v["name"]: v for v in pod(result, "web")["volumes"]}
    assert volumes["bind-app"] == {"name": "bind-app", "emptyDir": {}}
    assert "writable directory" in notes(result)["services.web.volumes[1]"]


def test_missing_bind_source_and_host_paths(export: Export) -> None:
    result = export(
        """
        services:
          a: {image: x, volumes: ["./missing.conf:/etc/x.conf", "/var/run/docker.sock:/var/run/docker.sock:ro"]}
        """
    )
    volumes = pod(result, "a")["volumes"]
    assert volumes[0] == {"name": "bind-x-conf", "emptyDir": {}}
    assert volumes[1] == {"name": "host-docker-sock", "hostPath": {"path": "/var/run/docker.sock"}}
    messages = notes(result)
    assert "cannot be read here" in messages["services.a.volumes[0]"]
    assert "hostPath" in messages["services.a.volumes[1]"]


def test_volumes_from_repeats_named_volumes(export: Export) -> None:
    result = export(
        """
        services:
          app: {image: x, volumes: ["data:/data", "/tmp/anon"]}
          backup: {image: y, volumes_from: ["app:ro"]}
        volumes: {data: {}}
        """
    )
    assert container(result, "backup")["volumeMounts"] == [
        {"name": "data-data", "mountPath": "/data", "readOnly": True}
    ]
    assert "cannot be shared" in notes(result)["services.backup.volumes_from[0]"]
    assert get(result, "PersistentVolumeClaim", "data")["spec"]["accessModes"] == ["ReadWriteMany"]


def test_configs_and_secrets(export: Export) -> None:
    result = export(
        """
        services:
          web:
            image: x
            configs: [{source: site, target: /etc/site.conf, mode: 0440}, inline]
            secrets: [db_password]
        configs:
          site: {file: ./site.conf}
          inline: {content: "hello\\nworld\\n"}
        secrets:
          db_password: {file: ./pw.txt}
        """,
        files={"site.conf": "listen 80;\n", "pw.txt": "s3cret"},
    )
    assert get(result, "ConfigMap", "site")["data"] == {"site": "listen 80;\n"}
    assert get(result, "ConfigMap", "inline")["data"] == {"inline": "hello\nworld\n"}
    secret = get(result, "Secret", "db-password")
    assert secret["type"] == "Opaque"
    assert secret["data"] == {"db_password": base64.b64encode(b"s3cret").decode()}
    assert manifest(result, "Secret", "db-password").sensitive
    volumes = {v["name"]: v for v in pod(result, "web")["volumes"]}
    assert volumes["config-site"]["configMap"] == {
        "name": "site",
        "items": [{"key": "site", "path": "site", "mode": 0o440}],
    }
    assert volumes["secret-db-password"]["secret"] == {
        "secretName": "db-password",
        "items": [{"key": "db_password", "path": "db_password", "mode": 0o444}],
    }
    mounts = {m["mountPath"]: m for m in container(result, "web")["volumeMounts"]}
    assert mounts["/run/secrets/db_password"]["subPath"] == "db_password"
    assert mounts["/etc/site.conf"] == {
        "name": "config-site",
        "mountPath": "/etc/site.conf",
        "subPath": "site",
        "readOnly": True,
    }
    assert mounts["/inline"]["subPath"] == "inline"


def test_external_and_unreadable_secrets_are_referenced_with_a_warning(export: Export) -> None:
    result = export(
        """
        services: {web: {image: x, secrets: [api_key, tls]}}
        secrets:
          api_key: {external: true}
          tls: {file: ./missing.pem}
        """
    )
    assert not [m for m in result.manifests if m.kind == "Secret"]
    messages = notes(result)
    assert (
        "kubectl create secret generic api-key --from-file=api_key=FILE"
        in messages["secrets.api_key.external"]
    )
    assert "cannot read" in messages["secrets.tls.file"]
    names = {v["secret"]["secretName"] for v in pod(result, "web")["volumes"]}
    assert names == {"api-key", "tls"}
