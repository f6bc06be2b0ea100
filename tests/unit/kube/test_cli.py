"""`orchestrator export kubernetes`: the stream, a directory of files, the messages, errors on
one line, and the import cost it must not add to other commands."""

from __future__ import annotations

import stat
import subprocess
import sys
from pathlib import Path

import pytest

from orchestrator.cli import main
from orchestrator.stack.yamlsafe import parse_yaml_text

STACK = """
name: shop
services:
  web: {build: ., ports: ["80:80"], restart: always, secrets: [pw]}
  db: {image: postgres, restart: always, volumes: ["data:/var/lib/postgresql/data"]}
volumes: {data: {}}
secrets: {pw: {file: ./pw.txt}}
"""


@pytest.fixture
def stack_file(tmp_path: Path) -> Path:
    path = tmp_path / "compose.yaml"
    path.write_text(STACK)
    (tmp_path / "pw.txt").write_text("secret\n")
    return path


def test_stream_to_stdout(stack_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["-f", str(stack_file), "export", "kubernetes", "--namespace", "prod"]) == 0
    out, err = capsys.readouterr()
    docs = out.split("\n---\n")
    assert docs[0] == "# Written by `orchestrator export kubernetes` from stack shop"
    kinds = [parse_yaml_text(d).data["kind"] for d in docs[1:]]
    assert kinds == [
        "Namespace",
        "Secret",
        "PersistentVolumeClaim",
        "Service",
        "Service",
        "Service",
        "StatefulSet",
        "Deployment",
    ]
    assert "orchestrator: warning: services.web.build: the image 'shop-web'" in err


def test_directory_of_files(
    stack_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out_dir = tmp_path / "k8s"
    args = ["-f", str(stack_file), "export", "kubernetes", "-o", str(out_dir)]
    assert main([*args, "--registry", "registry.example.com/team"]) == 0
    out, _ = capsys.readouterr()
    names = sorted(p.name for p in out_dir.iterdir())
    assert names == [
        "04-secret-pw.yaml",
        "06-persistentvolumeclaim-data.yaml",
        "08-service-db.yaml",
        "08-service-web-published.yaml",
        "08-service-web.yaml",
        "09-statefulset-db.yaml",
        "10-deployment-web.yaml",
    ]
    assert stat.S_IMODE((out_dir / "04-secret-pw.yaml").stat().st_mode) == 0o600
    body = parse_yaml_text((out_dir / "10-deployment-web.yaml").read_text()).data
    assert body["spec"]["template"]["spec"]["containers"][0]["image"] == (
        "registry.example.com/team/shop-web:latest"
    )
    assert out == (
        f"wrote 7 objects to {out_dir}\n"
        "push the locally built images first:\n"
        "  orchestrator push shop-web:latest registry.example.com/team/shop-web:latest\n"
    )
    # A second export replaces the first one's files, and those of removed objects go.
    stack_file.write_text(STACK.replace('ports: ["80:80"], ', ""))
    assert main(args) == 0
    assert "08-service-web-published.yaml" not in {p.name for p in out_dir.iterdir()}


def test_refuses_a_directory_with_other_files(
    stack_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out_dir = tmp_path / "k8s"
    out_dir.mkdir()
    (out_dir / "kustomization.yaml").write_text("resources: []\n")
    assert main(["-f", str(stack_file), "export", "kubernetes", "-o", str(out_dir)]) == 1
    _, err = capsys.readouterr()
    assert err == (
        f"orchestrator: {out_dir} holds kustomization.yaml, which an export did not write: "
        "write into an empty directory\n"
    )
    assert (out_dir / "kustomization.yaml").exists()


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--namespace", "Bad_NS"], "--namespace 'Bad_NS' must be lowercase"),
        (["--registry", "http://x"], "--registry 'http://x' must be HOST[:PORT][/PATH]"),
    ],
)
def test_errors_are_one_line(
    stack_file: Path, capsys: pytest.CaptureFixture[str], extra: list[str], message: str
) -> None:
    assert main(["-f", str(stack_file), "export", "kubernetes", *extra]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith(f"orchestrator: {message}") and err.count("\n") == 1


def test_name_collision_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "compose.yaml"
    path.write_text("services: {web.app: {image: x}, web_app: {image: x}}\n")
    assert main(["-f", str(path), "export", "kubernetes"]) == 1
    _, err = capsys.readouterr()
    assert err == (
        "orchestrator: services.web_app and services.web.app both become the Service "
        "'web-app' in Kubernetes: rename one of them\n"
    )


def test_cli_loads_no_export_code_until_asked() -> None:
    """Building the parser (what every command does) imports none of orchestrator.kube."""
    code = (
        "import sys; from orchestrator.cli import build_parser; build_parser(); "
        "print(sorted(m for m in sys.modules if m.startswith(('orchestrator.kube', 'kubernetes_validate'))))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
