"""The RUN step: the command runs in a container of our own runtime, in a fresh network
namespace, on an overlay of the state's layers with a new upper directory, which becomes the
step's layer. Its output goes to the build's output, prefixed with the step number.

:func:`build_run_bundle` writes the container's OCI bundle; the rest runs it and keeps its changes.
"""

from __future__ import annotations

import json
import secrets
import select
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from orchestrator.imagebuild.dockerfile import Instruction
from orchestrator.imagebuild.state import DEFAULT_SHELL, StageRun, State
from orchestrator.imagebuild.steps import StepBase
from orchestrator.imagebuild.trees import LayerTree
from orchestrator.paths import runtime_dir
from runtime.errors import Error as RuntimeError_
from runtime.image.manifests import DEFAULT_PATH_ENV
from runtime.logs import Tail

RUN_MOUNTPOINTS = ("/proc", "/dev", "/sys", "/sys/fs/cgroup")
# Files the runtime mounts over; made in the upper directory when the image lacks them.
RUN_MOUNTED_FILES = ("/etc/hosts", "/etc/hostname", "/etc/resolv.conf")


class RunStep(StepBase):
    """The handler of RUN, and the container that runs its command."""

    _runtime: Any  # the runtime's API, made on first use

    def _do_run(self, run: StageRun, inst: Instruction) -> None:
        if "mount" in inst.flags:
            raise self._error(inst, "RUN --mount is not supported")
        network = inst.flags.get("network")
        if network not in (None, "none", "default"):
            raise self._error(inst, f"RUN --network={network}: builds have no network")
        rc = run.state.run_config
        if inst.exec_form is not None:
            args = list(inst.exec_form)
            if not args:
                raise self._error(inst, "RUN needs a command")
        else:
            shell = rc.get("Shell") or DEFAULT_SHELL
            args = [*shell, inst.args]
        env = run.state.env()
        build_env = {k: v for k, v in sorted(run.args.items()) if k not in env}
        text = "RUN " + " ".join(args)
        if build_env:
            prefix = " ".join(f"{k}={v}" for k, v in build_env.items())
            text = f"RUN |{len(build_env)} {prefix} " + " ".join(args)

        def compute() -> State:
            upper = self._run_container(run, inst, args, build_env)
            return self._commit(run.state, upper, text)

        self._cached(run, inst, {"instruction": "RUN", "args": args, "env": build_env}, compute)

    def _run_container(
        self, run: StageRun, inst: Instruction, args: list[str], build_env: dict[str, str]
    ) -> Path:
        """Run the step's command; the upper directory with its changes."""
        state = run.state
        rc = state.run_config
        box = self._scratch_dir("run")
        lowers = self._layer_dirs(state)
        lower_tree = LayerTree(lowers)
        missing = [m for m in RUN_MOUNTPOINTS if lower_tree.lstat(m.lstrip("/")) is None]
        missing_files = [f for f in RUN_MOUNTED_FILES if lower_tree.lstat(f.lstrip("/")) is None]
        env = [str(e) for e in rc.get("Env") or []]
        env += [f"{k}={v}" for k, v in build_env.items()]
        if not any(e.startswith("PATH=") for e in env):
            env.insert(0, DEFAULT_PATH_ENV)
        bundle = build_run_bundle(
            box,
            args,
            env=env,
            cwd=str(rc.get("WorkingDir") or "/"),
            user=str(rc.get("User") or ""),
            lowers=lowers,
        )
        code = self._execute(inst, bundle.path, box / "run.log")
        if code != 0:
            raise self._error(inst, f"exited with code {code}")
        # The runtime made these mount points in the upper directory: not the command's doing.
        for mounted in missing_files:
            path = bundle.upper / mounted.lstrip("/")
            try:
                if path.is_file() and not path.is_symlink() and path.stat().st_size == 0:
                    path.unlink()
            except OSError:
                pass
        for mountpoint in sorted(missing, key=len, reverse=True):
            path = bundle.upper / mountpoint.lstrip("/")
            try:
                if path.is_dir() and not path.is_symlink() and not any(path.iterdir()):
                    path.rmdir()
            except OSError:
                pass
        shutil.rmtree(bundle.work, ignore_errors=True)
        return bundle.upper

    @property
    def runtime(self) -> Any:
        if self._runtime is None:
            from runtime.api import Runtime

            self._runtime = Runtime(runtime_dir(self.root), fork_server=True)
        return self._runtime

    def _execute(self, inst: Instruction, bundle: Path, log: Path) -> int:
        """Run the step's container to its end, streaming its output; its exit code."""
        from runtime import monitor_client

        rt = self.runtime
        cid = f"build-{secrets.token_hex(8)}"
        prefix = f"#{self.step} "
        tail = _LogTail(log, prefix, self.out)
        launched = False
        try:
            try:
                current = rt.run(cid, bundle, log_path=str(log), log_max_size=1 << 50)
            except RuntimeError_ as exc:
                raise self._error(inst, f"cannot start: {exc}") from None
            launched = True
            sock = monitor_client.connect(current.directory)  # None: gone, wait() reads its record
            try:
                while sock is not None:
                    ready, _, _ = select.select([sock], [], [], 0.05)
                    tail.pump()
                    if ready and not sock.recv(4096):
                        break
            except OSError:
                pass
            finally:
                if sock is not None:
                    sock.close()
            result = rt.wait(cid) or {}
            tail.pump()
            tail.flush()
        finally:
            tail.close()
            if launched:
                try:
                    rt.delete(cid, force=True)
                except RuntimeError_:
                    pass
        code = result.get("exit_code")
        if code is None:
            raise self._error(inst, "the step's container ended without an exit status")
        return int(code)


@dataclass(frozen=True)
class RunBundle:
    path: Path  # the OCI bundle: config.json and an empty rootfs/
    upper: Path  # overlayfs upper directory: the command's changes
    work: Path  # overlayfs work directory


def build_run_bundle(
    box: Path, args: list[str], *, env: list[str], cwd: str, user: str, lowers: list[Path]
) -> RunBundle:
    """Write, under the empty directory ``box``, the OCI bundle of a RUN step's container: ``args``
    run as ``user`` (the image's USER, or root when empty) in ``cwd`` with ``env``, host name
    ``buildbox``, no network, on an overlay of ``lowers`` (lowest first) and a new upper
    directory. The bundle comes from the same builder as every other container's."""
    from orchestrator.bundle import RootFilesystem, build_spec
    from orchestrator.description import ContainerDescription

    upper, work, bundle = box / "upper", box / "work", box / "bundle"
    for d in (upper, work, bundle / "rootfs"):
        d.mkdir(parents=True)
    lower_dirs = tuple(str(p) for p in lowers)
    if not lower_dirs:  # FROM scratch: overlayfs needs a lower directory all the same
        (box / "empty").mkdir()
        lower_dirs = (str(box / "empty"),)
    step = ContainerDescription(
        image="",
        command=tuple(args),
        entrypoint=(),
        env=tuple(env),
        user=user,
        workdir=cwd,
        hostname="buildbox",
        network="none",
    )
    rootfs = RootFilesystem(lower_dirs, str(upper), str(work))
    spec = build_spec(f"build-{box.name}", "build", box, step, None, rootfs)
    (bundle / "config.json").write_text(json.dumps(spec))
    return RunBundle(bundle, upper, work)


class _LogTail:
    """Copies a step container's log entries to the build output as they appear."""

    def __init__(self, path: Path, prefix: str, out: TextIO) -> None:
        self.tail = Tail(path)
        self.prefix = prefix
        self.out = out

    def pump(self) -> None:
        entries = self.tail.read_new()
        for entry in entries:
            text = entry.text
            self.out.write(self.prefix + text if text.endswith("\n") else self.prefix + text + "\n")
        if entries:
            self.out.flush()

    def flush(self) -> None:
        self.out.flush()

    def close(self) -> None:
        self.tail.close()
