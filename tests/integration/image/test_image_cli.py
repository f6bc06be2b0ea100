"""The image commands end to end, through orchestrator.cli.main."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from orchestrator.cli import main
from tests.image_fixtures import docker_archive, file, oci_layout, tar_bytes

pytestmark = pytest.mark.root


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_import_list_tag_inspect_history_save_rmi_prune(
    state_root: Path, busybox_tar: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(capsys, "image", "import", str(busybox_tar), "busybox:1.0")
    assert code == 0 and out.startswith("sha256:") and "busybox:1.0" in out
    image_id = out.split()[0]

    assert run(capsys, "tag", "busybox:1.0", "mine/bb:x")[0] == 0
    code, out, _ = run(capsys, "images")
    assert code == 0
    assert out.splitlines()[0].split() == ["REPOSITORY", "TAG", "IMAGE", "ID", "CREATED", "SIZE"]
    assert "busybox" in out and "mine/bb" in out and image_id[7:19] in out

    code, out, _ = run(capsys, "image", "ls", "--format", "json")
    rows = json.loads(out)
    assert {(r["repository"], r["tag"]) for r in rows} == {("busybox", "1.0"), ("mine/bb", "x")}

    code, out, _ = run(capsys, "images", "-q")
    assert out.split() == [image_id[7:19]]

    code, out, _ = run(capsys, "image", "inspect", "busybox:1.0")
    [info] = json.loads(out)
    assert info["Id"] == image_id and info["RepoTags"] == ["busybox:1.0", "mine/bb:x"]
    assert info["Config"]["Env"][0].startswith("PATH=")

    code, out, _ = run(capsys, "image", "history", "busybox:1.0")
    assert code == 0 and f"import {busybox_tar.name}" in out

    for fmt in ("oci", "docker"):
        saved = tmp_path / f"saved-{fmt}.tar"
        assert (
            run(capsys, "image", "save", "busybox:1.0", "-o", str(saved), "--format", fmt)[0] == 0
        )
        assert saved.stat().st_size > 1_000_000

    code, out, _ = run(capsys, "rmi", "mine/bb:x")
    assert out.strip() == "Untagged: mine/bb:x"
    code, out, _ = run(capsys, "rmi", "busybox:1.0")
    assert "Deleted: " + image_id in out
    code, out, _ = run(capsys, "images", "-q")
    assert out == ""

    # Saved archives come back.
    code, out, _ = run(capsys, "image", "import", str(tmp_path / "saved-docker.tar"))
    assert code == 0 and "busybox:1.0" in out
    code, out, _ = run(capsys, "image", "import", str(tmp_path / "saved-oci.tar"), "again:1")
    assert code == 0 and out.split()[0] == image_id
    assert run(capsys, "rmi", "-f", image_id)[0] == 0
    code, out, _ = run(capsys, "image", "prune")
    assert code == 0


def test_user_errors_are_one_line(
    state_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(capsys, "rmi", "nope")
    assert code == 1 and err == "orchestrator: no such image: nope\n"
    code, _, err = run(capsys, "image", "import", str(tmp_path / "missing.tar"), "x")
    assert code == 1 and err.count("\n") == 1 and "no such file" in err
    code, _, err = run(capsys, "tag", "nope", "x")
    assert code == 1 and "no such image" in err
    evil = tmp_path / "evil.tar"
    evil.write_bytes(tar_bytes([file("../../escape", b"x")]))
    code, _, err = run(capsys, "image", "import", str(evil), "evil")
    assert code == 1 and err.count("\n") == 1 and "leaves the layer" in err
    code, _, err = run(capsys, "image", "import", str(evil), "Bad:Name")
    assert code == 1 and "lowercase" in err


def test_rmi_refuses_an_image_in_use(
    state_root: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    path = docker_archive(tmp_path / "d.tar", [tar_bytes([file("a")])], ["used:1"])
    code, out, _ = run(capsys, "image", "import", str(path))
    image_id = out.split()[0]
    import orchestrator.commands.images as images

    monkeypatch.setattr(images, "_in_use", lambda root: {image_id})
    code, out, err = run(capsys, "rmi", "used:1")
    assert code == 1 and "used by a container" in err
    code, out, err = run(capsys, "rmi", "-f", "used:1")
    assert code == 0 and out.strip() == "Untagged: used:1"
    code, out, err = run(capsys, "image", "prune", "-a")
    assert code == 0
    code, out, _ = run(capsys, "image", "inspect", image_id)
    assert code == 0  # kept for the container


def test_import_oci_dir_and_skopeo_archive(
    state_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    layout = oci_layout(tmp_path / "oci", [tar_bytes([file("hi", b"hi")])], ref_name="v1")
    code, out, err = run(capsys, "image", "import", str(layout), "fromdir:v1")
    assert code == 0, err
    if shutil.which("skopeo"):
        archive = tmp_path / "sk.tar"
        subprocess.run(
            ["skopeo", "copy", "-q", f"oci:{layout}:v1", f"docker-archive:{archive}:sk/img:2"],
            check=True,
        )
        code, out, err = run(capsys, "image", "import", str(archive))
        assert code == 0 and "sk/img:2" in out, err


def test_the_command_line_entry_point(state_root: Path, busybox_tar: Path) -> None:
    exe = Path(__file__).resolve().parents[3] / ".venv/bin/orchestrator"
    if not exe.exists():
        pytest.skip("no installed entry point")
    done = subprocess.run(
        [str(exe), "image", "import", str(busybox_tar), "bb"], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
