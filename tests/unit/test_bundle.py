"""One container description, one bundle builder: a stack service and `run`'s flags meet in
the same description, and the builder turns it (with the image's config) into config.json."""

from __future__ import annotations

from pathlib import Path

from orchestrator.bundle import RootFilesystem, build_spec
from orchestrator.description import ContainerDescription, from_service, labels_of
from orchestrator.stack import load_stack
from runtime.image.model import Image

STACK = """
name: shop
services:
  web:
    image: busybox
    command: ["httpd", "-f"]
    environment:
      GREETING: hello
    labels:
      tier: front
    user: nobody
    working_dir: /www
    mem_limit: 64m
    cpus: 0.5
    pids_limit: 50
    read_only: true
    cap_drop: [NET_RAW]
    stop_signal: SIGINT
    stop_grace_period: 3s
"""

IMAGE = Image(
    id="sha256:" + "0" * 64,
    manifest_digest="sha256:" + "1" * 64,
    config={
        "config": {
            "Env": ["PATH=/bin", "GREETING=from-image", "IMAGE_ONLY=1"],
            "Cmd": ["sh"],
            "WorkingDir": "/",
            "StopSignal": "SIGTERM",
        }
    },
)

ROOTFS = RootFilesystem(("/layers/a", "/layers/b"), "/c/upper", "/c/work")


def test_a_service_becomes_a_bundle_that_says_what_it_is(tmp_path: Path) -> None:
    (tmp_path / "compose.yaml").write_text(STACK)
    stack = load_stack([tmp_path / "compose.yaml"])
    service = stack.services["web"]
    description = from_service(stack.name, service, 2, "shop-web-2")
    assert description.stop_timeout == 3.0
    assert description.identity.config_hash == service.config_hash != ""

    spec = build_spec("c" * 64, "shop-web-2", tmp_path, description, IMAGE, ROOTFS)
    assert spec["process"]["args"] == ["httpd", "-f"]
    env = spec["process"]["env"]
    assert "GREETING=hello" in env and "IMAGE_ONLY=1" in env and "PATH=/bin" in env
    assert spec["process"]["cwd"] == "/www"
    assert spec["root"]["readonly"] is True
    assert "CAP_NET_RAW" not in spec["process"]["capabilities"]["bounding"]
    resources = spec["linux"]["resources"]
    assert resources["memory"]["limit"] == 64 * 1024 * 1024
    assert resources["cpu"]["quota"] == 50_000 and resources["pids"]["limit"] == 50
    annotations = spec["annotations"]
    assert annotations["org.orchestrator.project"] == "shop"
    assert annotations["org.orchestrator.service"] == "web"
    assert annotations["org.orchestrator.replica"] == "2"
    assert annotations["org.orchestrator.config-hash"] == service.config_hash
    assert annotations["org.opencontainers.image.stopSignal"] == "SIGINT"
    assert labels_of(annotations) == {"tier": "front"}
    assert (tmp_path / "hostname").read_text() == "cccccccccccc\n"


def test_the_description_survives_its_record() -> None:
    description = ContainerDescription(
        image="busybox", command=("true",), labels={"a": "b"}, cap_add=("NET_ADMIN",)
    )
    assert ContainerDescription.from_record(description.to_record()) == description


def test_a_build_step_needs_no_image_config(tmp_path: Path) -> None:
    step = ContainerDescription(
        image="", command=("sh", "-c", "make"), env=("A=1",), hostname="buildbox"
    )
    spec = build_spec("b" * 64, "build", tmp_path, step, None, ROOTFS)
    assert spec["process"]["args"] == ["sh", "-c", "make"]
    assert spec["hostname"] == "buildbox"
    assert spec["process"]["cwd"] == "/"
