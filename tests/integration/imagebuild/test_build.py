"""``orchestrator build`` and ``commit`` end to end: real containers, overlay and cgroups."""

from __future__ import annotations

import gzip
import io
import json
import re
import tarfile
from pathlib import Path

import pytest

from tests.cli import Orc
from tests.integration.imagebuild.conftest import nothing_left, write_context

pytestmark = pytest.mark.root

MULTISTAGE = """\
# syntax=docker/dockerfile:1
ARG BASE=busybox
FROM $BASE AS builder
ARG FLAVOUR=plain
RUN mkdir -p /out && echo "built $FLAVOUR" > /out/result.txt && echo compiling
RUN echo extra > /out/extra.txt

FROM ${BASE}
ENV GREETING="hello world" \\
    APP=/app
WORKDIR $APP
COPY src/ ./src/
COPY --from=builder /out/result.txt ./
COPY --from=0 /out/extra.txt ${APP}/
RUN echo "$GREETING" > /app/greeting.txt && chown -R nobody /app
USER nobody
STOPSIGNAL SIGUSR1
CMD ["sh", "-c", "echo $GREETING; pwd; id -u; cat result.txt extra.txt greeting.txt; find src -type f | sort"]
"""


def _context(tmp_path: Path) -> Path:
    return write_context(
        tmp_path / "ctx",
        {
            "Dockerfile": MULTISTAGE,
            "src/main.py": "print('hi')\n",
            "src/notes.md": "notes\n",
            "src/cache/x.pyc": "bytecode",
            "src/deep/er/y.pyc": "bytecode",
            "src/deep/keep.pyc": "kept",
            "secret.txt": "password",
            ".dockerignore": "# build junk\nsecret.txt\n**/*.pyc\n!src/deep/keep.pyc\nsrc/*.md\n",
        },
    )


def _steps(output: str) -> dict[int, str]:
    """Step number -> its status line (CACHED or DONE), for the steps that have one."""
    status: dict[int, str] = {}
    for line in output.splitlines():
        match = re.fullmatch(r"#(\d+) (CACHED|DONE [0-9.]+s)", line)
        if match:
            status[int(match.group(1))] = match.group(2).split()[0]
    return status


def _image_id(output: str) -> str:
    match = re.search(r"writing image (sha256:\w+)", output)
    assert match, output
    return match.group(1)


def _step_of(output: str, text: str) -> int:
    for line in output.splitlines():
        match = re.match(r"#(\d+) \[[^\]]+\] (.*)", line)
        if match and match.group(2).startswith(text):
            return int(match.group(1))
    raise AssertionError(f"no step {text!r} in:\n{output}")


def test_multistage_build_runs_with_its_config(orc: Orc, tmp_path: Path, state_root: Path) -> None:
    ctx = _context(tmp_path)
    done = orc("build", "-t", "app:1", "--build-arg", "FLAVOUR=special", str(ctx))
    assert "#2 compiling" in done.stdout.splitlines() or any(
        line.endswith(" compiling") for line in done.stdout.splitlines()
    )
    assert "naming to docker.io/library/app:1" in done.stdout
    run = orc("run", "--rm", "app:1")
    assert run.stdout.splitlines() == [
        "hello world",
        "/app",
        "65534",
        "built special",
        "extra",
        "hello world",
        "src/deep/keep.pyc",
        "src/main.py",
    ]
    info = json.loads(orc("image", "inspect", "app:1").stdout)[0]
    text = json.dumps(info)
    assert "SIGUSR1" in text and '"User": "nobody"' in text and '"WorkingDir": "/app"' in text
    history = orc("image", "history", "--no-trunc", "app:1").stdout
    assert "ENV GREETING=hello world APP=/app" in history
    nothing_left(state_root)


def test_rebuild_is_cached_and_a_change_reruns_from_its_copy(
    orc: Orc, tmp_path: Path, state_root: Path
) -> None:
    ctx = _context(tmp_path)
    first = orc("build", "-t", "app", str(ctx)).stdout
    image_id = orc("images", "-q", "--no-trunc").stdout.split()
    again = orc("build", "-t", "app", str(ctx)).stdout
    status = _steps(again)
    assert status and set(status.values()) == {"CACHED"}, again
    assert len(status) == len(_steps(first))
    assert _image_id(first) == _image_id(again)
    assert orc("images", "-q", "--no-trunc").stdout.split() == image_id
    # An ignored file changing changes nothing.
    (ctx / "secret.txt").write_text("another password")
    assert set(_steps(orc("build", "-t", "app", str(ctx)).stdout).values()) == {"CACHED"}
    # A copied file changing reruns its COPY and every later step, nothing before.
    (ctx / "src" / "main.py").write_text("print('changed')\n")
    third = orc("build", "-t", "app", str(ctx)).stdout
    status = _steps(third)
    copy_step = _step_of(third, "COPY src/")
    assert all(s == "CACHED" for n, s in status.items() if n < copy_step), third
    assert all(s == "DONE" for n, s in status.items() if n >= copy_step), third
    assert "print('changed')" in orc("run", "--rm", "app", "cat", "/app/src/main.py").stdout
    # --no-cache runs everything again.
    assert set(_steps(orc("build", "--no-cache", "-t", "app", str(ctx)).stdout).values()) == {
        "DONE"
    }
    nothing_left(state_root)


def test_failing_run_names_line_and_code_and_leaves_nothing(
    orc: Orc, tmp_path: Path, state_root: Path
) -> None:
    ctx = write_context(
        tmp_path / "ctx",
        {
            "Dockerfile": "FROM busybox\nRUN echo before > /x\nRUN echo about to fail; exit 3\nCMD true\n"
        },
    )
    images = orc("images", "-q").stdout
    done = orc("build", "-t", "broken", str(ctx), check=False)
    assert done.returncode == 1
    assert done.stderr.splitlines() == [
        f"orchestrator: {ctx}/Dockerfile:3: RUN echo about to fail; exit 3: exited with code 3"
    ]
    assert "about to fail" in done.stdout
    assert orc("images", "-q").stdout == images
    assert orc("ps", "-a", "-q").stdout == ""
    nothing_left(state_root)


@pytest.mark.parametrize(
    ("dockerfile", "extra", "message"),
    [
        (
            "FROM busybox\nCOPY ../outside.txt /x\n",
            {},
            ":2: COPY ../outside.txt /x: ../outside.txt: outside the build context",
        ),
        (
            "FROM busybox\nCOPY link /x\n",
            {"symlink": ("link", "/etc/passwd")},
            ":2: COPY link /x: link: symlink /link points outside",
        ),
        (
            "FROM busybox\nCOPY up /x\n",
            {"symlink": ("up", "../outside.txt")},
            ":2: COPY up /x: up: symlink /up points outside",
        ),
        ("FROM busybox\nCOPY /missing /x\n", {}, ":2: COPY /missing /x: /missing: not found"),
        (
            "FROM busybox\nCOPY --from=nope /a /b\n",
            {},
            ":2: COPY --from=nope /a /b: --from=nope: no such stage or image",
        ),
        ("FROM nosuchimage\n", {}, ":1: FROM nosuchimage: no such image 'nosuchimage'"),
        (
            "FROM busybox\nADD http://example.com/x.tgz /x\n",
            {},
            ":2: ADD http://example.com/x.tgz /x: http://example.com/x.tgz: ADD from a URL is not supported",
        ),
        ("FROM busybox\nBOGUS x\n", {}, ":2: BOGUS: unknown instruction 'BOGUS'"),
        ("RUN true\n", {}, ":1: RUN: no FROM before this instruction"),
    ],
)
def test_errors_are_one_line_with_file_and_line(
    orc: Orc,
    tmp_path: Path,
    state_root: Path,
    dockerfile: str,
    extra: dict[str, tuple[str, str]],
    message: str,
) -> None:
    (tmp_path / "outside.txt").write_text("outside")
    ctx = write_context(tmp_path / "ctx", {"Dockerfile": dockerfile, "a": "a"})
    if "symlink" in extra:
        name, target = extra["symlink"]
        (ctx / name).symlink_to(target)
    done = orc("build", "-t", "bad", str(ctx), check=False)
    assert done.returncode == 1
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"orchestrator: {ctx}/Dockerfile{message}"), (
        done.stderr
    )
    # (the repository column: an image id's hex may contain "bad" too)
    repositories = [line.split()[0] for line in orc("images").stdout.splitlines()[1:]]
    assert "bad" not in repositories
    nothing_left(state_root)


def test_add_unpacks_local_tars_and_copy_keeps_them(orc: Orc, tmp_path: Path) -> None:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in (
            ("pkg/bin/tool", b"#!/bin/sh\necho tool\n"),
            ("pkg/README", b"readme\n"),
        ):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o755
            tar.addfile(info, io.BytesIO(data))
    ctx = write_context(
        tmp_path / "ctx",
        {
            "Dockerfile": (
                "FROM busybox\n"
                "ADD plain.tar /opt/\n"
                "ADD packed.tar.gz /srv\n"
                "COPY plain.tar /kept/\n"
                "ADD --chown=nobody:nobody notes.txt /notes.txt\n"
            ),
            "plain.tar": buf.getvalue(),
            "packed.tar.gz": gzip.compress(buf.getvalue()),
            "notes.txt": "n\n",
        },
    )
    orc("build", "-t", "added", str(ctx))
    out = orc(
        "run",
        "--rm",
        "added",
        "sh",
        "-c",
        "/opt/pkg/bin/tool; cat /srv/pkg/README; ls /kept; stat -c '%u:%g' /notes.txt",
    ).stdout
    assert out.split() == ["tool", "readme", "plain.tar", "65534:65534"]


def test_metadata_instructions_reach_the_image_config(orc: Orc, tmp_path: Path) -> None:
    ctx = write_context(
        tmp_path / "ctx",
        {
            "Dockerfile": (
                "FROM busybox\n"
                "LABEL version=1.0 'quoted key'=\"a b\"\n"
                "EXPOSE 80 53/udp 8000-8001\n"
                'VOLUME /data ["/not-json"\n'
                "HEALTHCHECK --interval=5s --retries=2 CMD wget -q -O- localhost || exit 1\n"
                'SHELL ["/bin/sh", "-ec"]\n'
                "ENTRYPOINT echo entry\n"
                "ARG LATE=late-default\n"
                "ENV FROM_ARG=${LATE:-x} UNSET=${NOPE:-fallback} ALT=${LATE:+set}\n"
                'RUN test "$LATE" = late-default\n'
            ),
        },
    )
    orc("build", "-t", "meta", str(ctx))
    config = json.loads(orc("image", "inspect", "meta").stdout)[0]
    text = json.dumps(config)
    for expected in (
        '"version": "1.0"',
        '"quoted key": "a b"',
        '"80/tcp"',
        '"53/udp"',
        '"8001/tcp"',
        '"/data"',
        '"CMD-SHELL"',
        "5000000000",
        '"Retries": 2',
        '"-ec"',
        "FROM_ARG=late-default",
        "UNSET=fallback",
        "ALT=set",
        '["/bin/sh", "-ec", "echo entry"]',
    ):
        assert expected in text, expected
    # VOLUME's shell form made a volume named '["/not-json"': as in Docker, such an image
    # does not run (a mount target must be absolute), and the error says why.
    refused = orc("run", "--rm", "meta", check=False)
    assert refused.returncode != 0 and "must be an absolute path" in refused.stderr
    history = orc("image", "history", "--no-trunc", "--format", "json", "meta").stdout
    assert "HEALTHCHECK" in history and "RUN |1 LATE=late-default" in history


def test_target_builds_only_the_stages_it_needs(orc: Orc, tmp_path: Path) -> None:
    ctx = write_context(
        tmp_path / "ctx",
        {
            "Dockerfile": (
                "FROM busybox AS base\nRUN echo base > /base\n"
                "FROM busybox AS broken\nRUN exit 1\n"
                "FROM base AS final\nRUN cat /base\n"
            )
        },
    )
    done = orc("build", "--target", "final", "-t", "t", str(ctx))
    assert "[broken" not in done.stdout
    assert orc("run", "--rm", "t", "cat", "/base").stdout == "base\n"
    missing = orc("build", "--target", "nope", str(ctx), check=False)
    assert missing.returncode == 1 and "target stage 'nope' not found" in missing.stderr


def test_commit_keeps_additions_changes_and_deletions(orc: Orc, state_root: Path) -> None:
    script = (
        "echo new > /added.txt; echo changed >> /etc/passwd; rm /bin/vi; "
        "rm -rf /root; mkdir -p /root/fresh; mkdir /tmp/d; ln /added.txt /tmp/d/hard"
    )
    orc(
        "run",
        "--name",
        "changer",
        "-e",
        "MARK=1",
        "--workdir",
        "/tmp",
        "busybox",
        "sh",
        "-c",
        script,
    )
    image_id = orc("commit", "-m", "snapshot", "changer", "snap:1").stdout.strip()
    assert image_id.startswith("sha256:")
    out = orc(
        "run",
        "--rm",
        "snap:1",
        "sh",
        "-c",
        "cat /added.txt; tail -1 /etc/passwd; test -e /bin/vi || echo vi-gone; ls -A /root; "
        "echo $MARK; pwd; stat -c %h /tmp/d/hard",
    ).stdout
    assert out.split() == ["new", "changed", "vi-gone", "fresh", "1", "/tmp", "2"]
    history = orc("image", "history", "snap:1").stdout
    assert "commit changer" in history and "snapshot" in history
    # The runtime's own mount points are not part of the commit.
    layer_listing = orc("run", "--rm", "snap:1", "sh", "-c", "ls /etc").stdout
    assert layer_listing  # the image still runs
    nothing_left(state_root)
