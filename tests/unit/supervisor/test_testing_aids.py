"""orchestrator.testing, used as its docstring says."""

from __future__ import annotations

from pathlib import Path

from orchestrator.testing import exited, plan_text, running


def test_the_documented_example(tmp_path: Path) -> None:
    stack = tmp_path / "compose.yaml"
    stack.write_text(
        "services:\n  db: {image: busybox}\n  web: {image: busybox, depends_on: [db]}\n"
    )
    assert plan_text(stack, [running("db", config_hash="old")]) == (
        "recreate db-1: its configuration changed\ncreate web-1: no container\n"
    )
    assert plan_text(stack, [running("db"), exited("web", exit_code=1)]) == (
        "start web-1: it is exited\n"
    )
    assert plan_text(stack, [running("db"), running("web")], scale={"web": 0}) == (
        "remove web-1: scaled to 0\n"
    )
