"""The builder: runs a parsed Dockerfile, step by step, into an image in the store.

    image = Builder(root).build(BuildOptions(context=Path("."), tags=["app:1"]))

Each stage starts from its FROM (an image of the store, ``scratch``, or an earlier stage) and
carries an image state: the OCI config (run config and history included) and the layer chain.
Every instruction after FROM is one step:

- RUN runs in a container of our own runtime, in a fresh network namespace, on an overlay of
  the state's layers with a new upper directory; its output goes to the build's output,
  prefixed with the step number. The upper directory becomes the step's layer
  (``ImageStore.commit_diff``; an empty one adds no layer).
- COPY and ADD write their files into a fresh upper directory (no container needed), which
  becomes the layer the same way; WORKDIR does too when the directory is missing.
- The other instructions change the config only, with a history entry marked ``empty_layer``.

Each step goes through the cache (``cache.py``): a hit prints ``CACHED`` and reuses the
recorded state. Only the target stage and the stages it depends on are built. The image is
recorded (and tagged) only once every step has succeeded: a failing build leaves no image, no
container, no mount and no working directory behind; the layers of the steps that did succeed
stay in the store as cache until ``image prune``.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import re
import secrets
import select
import shutil
import socket
import stat
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from orchestrator.errors import UserError
from orchestrator.imagebuild.cache import BuildCache, canonical
from orchestrator.imagebuild.copy import LayerWriter, find_sources, plan_copy
from orchestrator.imagebuild.dockerfile import (
    DockerfileError,
    Instruction,
    Stage,
    _raw_words,
    parse,
    split_key_values,
)
from orchestrator.imagebuild.ignore import IgnoreRules, clean
from orchestrator.imagebuild.substitute import SubstitutionError, expand, expand_words
from orchestrator.imagebuild.trees import ContextTree, Escape, LayerTree, TreeError
from orchestrator.paths import images_dir, runtime_dir
from runtime.errors import Error as RuntimeError_
from runtime.errors import NotFound
from runtime.image.model import Image
from runtime.image.store import DEFAULT_PATH_ENV, ImageStore, LayerInfo, host_architecture
from runtime.logs import Tail

DEFAULT_SHELL = ["/bin/sh", "-c"]
RUN_MOUNTPOINTS = ("/proc", "/dev", "/sys", "/sys/fs/cgroup")
_URL_RE = re.compile(r"^(?:[a-zA-Z][a-zA-Z0-9+.-]*://|git@)")
_ARG_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_DURATION_RE = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
_DURATION_UNITS = {
    "ns": 1,
    "us": 1_000,
    "µs": 1_000,
    "ms": 1_000_000,
    "s": 1_000_000_000,
    "m": 60_000_000_000,
    "h": 3_600_000_000_000,
}


@dataclass
class BuildOptions:
    context: Path
    dockerfile: Path | None = None  # default: CONTEXT/Dockerfile
    tags: list[str] = field(default_factory=list)
    build_args: dict[str, str] = field(default_factory=dict)
    target: str | None = None
    no_cache: bool = False


@dataclass
class State:
    """An image being built: its config (without rootfs) and its layers, lowest first."""

    config: dict[str, Any]
    layers: list[LayerInfo]

    @property
    def run_config(self) -> dict[str, Any]:
        value = self.config.get("config")
        if not isinstance(value, dict):
            value = {}
            self.config["config"] = value
        return value

    def digest(self) -> str:
        return "sha256:" + hashlib.sha256(canonical(self.to_json())).hexdigest()

    def to_json(self) -> dict[str, Any]:
        return {
            "config": self.config,
            "layers": [[la.blob, la.diff_id, la.size, la.media_type] for la in self.layers],
        }

    @classmethod
    def from_json(cls, value: dict[str, Any]) -> State:
        layers = [LayerInfo(str(b), str(d), int(s), str(m)) for b, d, s, m in value["layers"]]
        return cls(dict(value["config"]), layers)

    def copy(self) -> State:
        return State(copy.deepcopy(self.config), list(self.layers))

    def env(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for item in self.run_config.get("Env") or []:
            key, _, value = str(item).partition("=")
            out[key] = value
        return out


@dataclass
class _StageRun:
    stage: Stage
    state: State
    args: dict[str, str] = field(default_factory=dict)  # ARGs declared in this stage, with values
    cmd_set: bool = False
    position: int = 1
    total: int = 1

    def subst_env(self) -> dict[str, str]:
        return {**self.args, **self.state.env()}


class BuildError(UserError):
    pass


def _timestamp() -> str:
    from runtime.logs import timestamp

    return timestamp()


class Builder:
    def __init__(self, root: Path, out: TextIO | None = None, err: TextIO | None = None) -> None:
        self.root = root
        self.out = out or sys.stdout
        self.err = err or sys.stderr
        self.store = ImageStore(images_dir(root))
        self.cache = BuildCache(root)
        self._runtime: Any = None
        self.step = 0
        self.cached_steps = 0
        self.run_steps = 0

    # -- entry point ------------------------------------------------------------------------------

    def build(self, options: BuildOptions) -> Image:
        context = options.context
        if not context.is_dir():
            raise BuildError(f"build context {context} is not a directory")
        dockerfile = options.dockerfile or context / "Dockerfile"
        display = str(dockerfile)
        try:
            text = dockerfile.read_text()
        except OSError as exc:
            raise BuildError(f"cannot read {display}: {exc.strerror}") from None
        except UnicodeDecodeError:
            raise BuildError(f"{display}: not UTF-8 text") from None
        self.df = parse(text, display)
        self.options = options
        ignore_file = context / ".dockerignore"
        rules = IgnoreRules.parse(ignore_file.read_text() if ignore_file.is_file() else "")
        self.context = ContextTree(context, rules)
        self.used_args: set[str] = set()
        self.global_args = self._global_args()
        self.results: dict[int, State] = {}
        self.hashes: dict[Path, str] = {}
        if options.target is not None:
            target = self.df.stage(options.target)
            if target is None:
                raise BuildError(f"{display}: target stage {options.target!r} not found")
        else:
            target = self.df.stages[-1]
        self.work = self.cache.tmp_root() / f"b-{os.getpid()}-{secrets.token_hex(6)}"
        self.work.mkdir(mode=0o700)
        try:
            # Layers of steps no image references yet: kept from rmi and prune meanwhile.
            with self.store.lease():
                for stage in self._needed(target):
                    self._build_stage(stage)
                final = self._build_stage(target)
                config = dict(final.config)
                image = self.store.record_config(config, final.layers, options.tags)
        finally:
            shutil.rmtree(self.work, ignore_errors=True)
        unused = sorted(set(options.build_args) - self.used_args)
        if unused:
            self.err.write(f"warning: build arguments not used: {', '.join(unused)}\n")
        self._print(f"writing image {image.id}")
        for tag in image.repo_tags:
            self._print(f"naming to {tag}")
        return image

    def _print(self, line: str) -> None:
        self.out.write(line + "\n")
        self.out.flush()

    def _error(self, inst: Instruction, message: str) -> DockerfileError:
        return DockerfileError(
            message, file=self.df.path, line=inst.line, instruction=inst.describe()
        )

    # -- arguments --------------------------------------------------------------------------------

    def _global_args(self) -> dict[str, str]:
        values: dict[str, str] = {}
        self.global_declared: set[str] = set()
        for inst in self.df.global_args:
            for name, default in self._arg_words(inst, values):
                self.global_declared.add(name)
                if name in self.options.build_args:
                    values[name] = self.options.build_args[name]
                    self.used_args.add(name)
                elif default is not None:
                    values[name] = default
        return values

    def _arg_words(self, inst: Instruction, env: dict[str, str]) -> list[tuple[str, str | None]]:
        out: list[tuple[str, str | None]] = []
        for word in _raw_words(inst.args, self.df.escape):
            name, eq, raw = word.partition("=")
            if not _ARG_NAME_RE.fullmatch(name):
                raise self._error(inst, f"invalid argument name {name!r}")
            out.append((name, self._expand(inst, raw, env) if eq else None))
        return out

    def _expand(self, inst: Instruction, word: str, env: dict[str, str]) -> str:
        try:
            return expand(word, env, self.df.escape)
        except SubstitutionError as exc:
            raise self._error(inst, str(exc)) from None

    def _expand_words(self, inst: Instruction, text: str, env: dict[str, str]) -> list[str]:
        try:
            return expand_words(text, env, self.df.escape)
        except SubstitutionError as exc:
            raise self._error(inst, str(exc)) from None

    # -- stages -----------------------------------------------------------------------------------

    def _stage_ref(self, name: str, before: int) -> Stage | None:
        stage = self.df.stage(name)
        if stage is not None and stage.index < before:
            return stage
        return None

    def _needed(self, stage: Stage) -> list[Stage]:
        """The stages ``stage`` builds on (FROM, COPY --from), earliest first, so that each is
        built before the steps that need it and the output reads in order."""
        seen: dict[int, Stage] = {}
        todo = [stage]
        while todo:
            current = todo.pop()
            refs = [current.base]
            refs += [str(i.flags["from"]) for i in current.instructions if i.flags.get("from")]
            for ref in refs:
                try:
                    name = expand(ref, self.global_args, self.df.escape)
                except SubstitutionError:
                    continue
                dep = self._stage_ref(name, current.index)
                if dep is not None and dep.index not in seen:
                    seen[dep.index] = dep
                    todo.append(dep)
        return [seen[i] for i in sorted(seen)]

    def _build_stage(self, stage: Stage) -> State:
        done = self.results.get(stage.index)
        if done is not None:
            return done
        assert stage.from_instruction is not None
        inst = stage.from_instruction
        base = self._expand(inst, stage.base, self.global_args)
        if not base:
            raise self._error(inst, "the base image name is empty")
        if stage.platform is not None:
            platform = self._expand(inst, stage.platform, self.global_args)
            if platform and platform not in (f"linux/{host_architecture()}", "linux"):
                raise self._error(inst, f"platform {platform} cannot be built on this host")
        ref = self._stage_ref(base, stage.index)
        if ref is not None:
            state = self._build_stage(ref).copy()
        elif base == "scratch":
            state = State(
                {
                    "architecture": host_architecture(),
                    "os": "linux",
                    "config": {"Env": [DEFAULT_PATH_ENV]},
                    "history": [],
                },
                [],
            )
        else:
            try:
                image = self.store.resolve(base)
            except NotFound:
                raise self._error(
                    inst, f"no such image {base!r} (import or pull it first, or name a stage)"
                ) from None
            except RuntimeError_ as exc:
                raise self._error(inst, str(exc)) from None
            config = copy.deepcopy(image.config)
            config.pop("rootfs", None)
            state = State(config, self.store.image_layers(image))
        steps = [i for i in stage.instructions if i.keyword != "ARG"]
        run = _StageRun(stage, state, total=1 + len(steps))
        self.step += 1
        self._print(f"#{self.step} [{stage.label} 1/{run.total}] FROM {base}")
        for inst in stage.instructions:
            self._instruction(run, inst)
        self.results[stage.index] = run.state
        return run.state

    def _instruction(self, run: _StageRun, inst: Instruction) -> None:
        """ARG only sets a value for the later steps: it is not a numbered step."""
        handler: Callable[[_StageRun, Instruction], None] = getattr(
            self, f"_do_{inst.keyword.lower()}"
        )
        if inst.keyword == "ARG":
            handler(run, inst)
            return
        self.step += 1
        run.position += 1
        self._print(f"#{self.step} [{run.stage.label} {run.position}/{run.total}] {inst.original}")
        handler(run, inst)

    # -- the cache --------------------------------------------------------------------------------

    def _cached(
        self,
        run: _StageRun,
        inst: Instruction,
        material: dict[str, Any],
        compute: Callable[[], State],
    ) -> None:
        parent = run.state
        step = self.step
        key = BuildCache.key(parent=parent.digest(), **material)
        if not self.options.no_cache:
            hit = self.cache.get(key)
            if hit is not None:
                try:
                    state = State.from_json(hit)
                except (KeyError, TypeError, ValueError):
                    state = None
                if state is not None and self._layers_present(state, parent):
                    self._print(f"#{step} CACHED")
                    self.cached_steps += 1
                    run.state = state
                    return
        started = time.monotonic()
        state = compute()
        self.cache.put(key, state.to_json())
        self.run_steps += 1
        self._print(f"#{step} DONE {time.monotonic() - started:.2f}s")
        run.state = state

    def _layers_present(self, state: State, parent: State) -> bool:
        lease = self.store.active_lease
        if lease is not None:  # held first, then checked: present now means present later
            lease.add(*(d for la in state.layers for d in (la.diff_id, la.blob)))
        known = {la.diff_id for la in parent.layers}
        return all(
            self.store.layer_known(la.blob, la.diff_id)
            for la in state.layers
            if la.diff_id not in known
        )

    def _metadata(
        self, run: _StageRun, inst: Instruction, text: str, change: Callable[[State], None]
    ) -> None:
        def compute() -> State:
            state = run.state.copy()
            change(state)
            self._history(state, text, layer=None)
            return state

        self._cached(run, inst, {"instruction": text}, compute)

    def _history(self, state: State, text: str, layer: LayerInfo | None) -> None:
        now = _timestamp()
        entry: dict[str, Any] = {
            "created": now,
            "created_by": text,
            "comment": "orchestrator build",
        }
        if layer is None:
            entry["empty_layer"] = True
        else:
            state.layers.append(layer)
        history = list(state.config.get("history") or [])
        history.append(entry)
        state.config["history"] = history
        state.config["created"] = now

    def _layer_tree(self, state: State) -> LayerTree:
        return LayerTree(self._layer_dirs(state))

    def _layer_dirs(self, state: State) -> list[Path]:
        if not state.layers:
            return []
        fake = Image(
            id="sha256:" + "0" * 64,
            manifest_digest="",
            config={},
            layers=tuple(la.diff_id for la in state.layers),
        )
        return self.store.layer_dirs(fake)

    def _commit(self, state: State, upper: Path, text: str) -> State:
        new = state.copy()
        layer = self.store.commit_diff(upper)
        self._history(new, text, layer)
        return new

    def _scratch_dir(self, name: str) -> Path:
        path = self.work / f"{name}-{self.step}-{secrets.token_hex(3)}"
        path.mkdir(mode=0o755)
        return path

    # -- instructions that change the files -------------------------------------------------------

    def _do_run(self, run: _StageRun, inst: Instruction) -> None:
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
        self, run: _StageRun, inst: Instruction, args: list[str], build_env: dict[str, str]
    ) -> Path:
        from runtime.spec import (
            ANNOTATION_LOWERDIRS,
            ANNOTATION_UPPERDIR,
            ANNOTATION_USER,
            ANNOTATION_WORKDIR,
        )
        from runtime.specgen import default_spec

        state = run.state
        rc = state.run_config
        box = self._scratch_dir("run")
        upper, work, bundle = box / "upper", box / "work", box / "bundle"
        for d in (upper, work, bundle / "rootfs"):
            d.mkdir(parents=True)
        lowers = [str(p) for p in self._layer_dirs(state)]
        if not lowers:
            (box / "empty").mkdir()
            lowers = [str(box / "empty")]
        lower_tree = LayerTree([Path(p) for p in lowers])
        missing = [m for m in RUN_MOUNTPOINTS if lower_tree.lstat(m.lstrip("/")) is None]
        env = [str(e) for e in rc.get("Env") or []]
        env += [f"{k}={v}" for k, v in build_env.items()]
        if not any(e.startswith("PATH=") for e in env):
            env.insert(0, DEFAULT_PATH_ENV)
        spec = default_spec(
            args, env=env, cwd=str(rc.get("WorkingDir") or "/"), hostname="buildbox"
        )
        user = str(rc.get("User") or "")
        if user:
            spec["annotations"][ANNOTATION_USER] = user
        spec["annotations"].update(
            {
                ANNOTATION_LOWERDIRS: json.dumps(lowers),
                ANNOTATION_UPPERDIR: str(upper),
                ANNOTATION_WORKDIR: str(work),
            }
        )
        (bundle / "config.json").write_text(json.dumps(spec))
        code = self._execute(inst, bundle, box / "run.log")
        if code != 0:
            raise self._error(inst, f"exited with code {code}")
        for mountpoint in sorted(missing, key=len, reverse=True):
            path = upper / mountpoint.lstrip("/")
            try:
                if path.is_dir() and not path.is_symlink() and not any(path.iterdir()):
                    path.rmdir()
            except OSError:
                pass
        shutil.rmtree(work, ignore_errors=True)
        return upper

    @property
    def runtime(self) -> Any:
        if self._runtime is None:
            from runtime.api import Runtime

            self._runtime = Runtime(runtime_dir(self.root), fork_server=True)
        return self._runtime

    def _execute(self, inst: Instruction, bundle: Path, log: Path) -> int:
        """Run the step's container to its end, streaming its output; its exit code."""
        from runtime.monitor import socket_address

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
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
            try:
                dirfd, address = socket_address(current.directory)
                try:
                    sock.connect(address)
                finally:
                    os.close(dirfd)
                while True:
                    ready, _, _ = select.select([sock], [], [], 0.05)
                    tail.pump()
                    if ready and not sock.recv(4096):
                        break
            except OSError:
                pass  # the monitor is already gone: wait() reads its record
            finally:
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

    def _sources_tree(self, run: _StageRun, inst: Instruction) -> tuple[Any, str]:
        """(tree, what identifies it) for COPY's sources: the context or ``--from``."""
        source = inst.flags.get("from")
        if source is None:
            return self.context, "context"
        name = self._expand(inst, source, run.subst_env())
        stage = self._stage_ref(name, run.stage.index)
        if stage is not None:
            state = self._build_stage(stage)
            return self._layer_tree(state), "stage:" + state.digest()
        if self.df.stage(name) is not None:
            raise self._error(inst, f"--from={name}: a stage can only copy from an earlier stage")
        try:
            image = self.store.resolve(name)
        except NotFound:
            raise self._error(inst, f"--from={name}: no such stage or image") from None
        except RuntimeError_ as exc:
            raise self._error(inst, f"--from={name}: {exc}") from None
        return LayerTree(self.store.layer_dirs(image)), "image:" + image.id

    def _do_copy(self, run: _StageRun, inst: Instruction) -> None:
        self._copy(run, inst, unpack=False)

    def _do_add(self, run: _StageRun, inst: Instruction) -> None:
        self._copy(run, inst, unpack=True)

    def _copy(self, run: _StageRun, inst: Instruction, *, unpack: bool) -> None:
        env = run.subst_env()
        if inst.exec_form is not None:
            words = [self._expand(inst, w, env) for w in inst.exec_form]
        else:
            words = self._expand_words(inst, inst.args, env)
        if len(words) < 2:
            raise self._error(inst, f"{inst.keyword} needs a source and a destination")
        sources, dest = words[:-1], words[-1]
        for src in sources:
            if _URL_RE.match(src):
                raise self._error(
                    inst,
                    f"{src}: ADD from a URL is not supported (builds have no network): "
                    "download it into the context and ADD or COPY the file",
                )
        tree, origin = self._sources_tree(run, inst)
        workdir = str(run.state.run_config.get("WorkingDir") or "/")
        if not dest.startswith("/"):
            dest = workdir.rstrip("/") + "/" + dest
        many = len(sources) > 1 or any(set("*?[") & set(s) for s in sources)
        if many and not dest.endswith("/"):
            raise self._error(
                inst, "when copying several files the destination must be a directory ending in /"
            )
        lower = self._layer_tree(run.state)
        try:
            found = find_sources(tree, sources)
            plan = plan_copy(found, dest, lower, many=many, unpack=unpack and origin == "context")
            digest = plan.digest(self.hashes)
        except Escape as exc:
            raise self._error(inst, f"{exc}: outside the build context") from None
        except TreeError as exc:
            raise self._error(inst, str(exc)) from None
        except OSError as exc:
            raise self._error(inst, f"{exc.filename}: {exc.strerror}") from None
        owner = self._chown(run, inst, lower)
        mode = self._chmod(inst)
        text = f"{inst.keyword} " + " ".join(
            [*(f"--{k}={v}" for k, v in sorted(inst.flags.items()) if v is not None), *words]
        )

        def compute() -> State:
            upper = self._scratch_dir("copy")
            try:
                LayerWriter(upper, lower, owner, mode).write(plan)
            except OSError as exc:
                raise self._error(inst, f"{exc.filename or ''}: {exc.strerror}") from None
            except RuntimeError_ as exc:
                raise self._error(inst, str(exc)) from None
            state = self._commit(run.state, upper, text)
            shutil.rmtree(upper, ignore_errors=True)
            return state

        material = {"instruction": text, "files": digest, "origin": origin, "owner": owner}
        self._cached(run, inst, material, compute)

    def _chmod(self, inst: Instruction) -> int | None:
        value = inst.flags.get("chmod")
        if value is None:
            return None
        if not re.fullmatch(r"[0-7]{3,4}", value):
            raise self._error(inst, f"--chmod={value}: use an octal mode such as 755")
        return int(value, 8)

    def _chown(self, run: _StageRun, inst: Instruction, lower: LayerTree) -> tuple[int, int] | None:
        value = inst.flags.get("chown")
        if value is None:
            return None
        value = self._expand(inst, value, run.subst_env())
        user, _, group = value.partition(":")
        uid = self._id(inst, lower, "etc/passwd", user, 2)
        gid = self._id(inst, lower, "etc/group", group, 2) if group else uid
        return uid, gid

    def _id(self, inst: Instruction, lower: LayerTree, file: str, name: str, column: int) -> int:
        if name.isdigit():
            return int(name)
        try:
            path = lower.host_path(lower.resolve(file))
            lines = path.read_text(errors="replace").splitlines()
        except (TreeError, OSError):
            lines = []
        for line in lines:
            fields = line.split(":")
            if len(fields) > column and fields[0] == name and fields[column].isdigit():
                return int(fields[column])
        raise self._error(inst, f"--chown: no {name!r} in the image's /{file}")

    def _do_workdir(self, run: _StageRun, inst: Instruction) -> None:
        path = self._expand(inst, inst.args, run.subst_env())
        if not path:
            raise self._error(inst, "WORKDIR needs a path")
        current = str(run.state.run_config.get("WorkingDir") or "/")
        if not path.startswith("/"):
            path = current.rstrip("/") + "/" + path
        path = clean(path)
        text = f"WORKDIR {path}"
        lower = self._layer_tree(run.state)
        try:
            real = lower.resolve(path.lstrip("/")) if lower.top_first else path.lstrip("/")
        except TreeError as exc:
            raise self._error(inst, str(exc)) from None
        st = lower.lstat(real) if lower.top_first else None
        if st is not None and stat.S_ISDIR(st.st_mode):
            self._metadata(run, inst, text, lambda s: s.run_config.update(WorkingDir=path))
            return
        if st is not None:
            raise self._error(inst, f"{path} exists in the image and is not a directory")

        def compute() -> State:
            upper = self._scratch_dir("workdir")
            LayerWriter(upper, lower, None, None).ensure_dir(path)
            state = self._commit(run.state, upper, text)
            state.run_config["WorkingDir"] = path
            shutil.rmtree(upper, ignore_errors=True)
            return state

        self._cached(run, inst, {"instruction": text, "create": True}, compute)

    # -- instructions that change the config only -------------------------------------------------

    def _do_arg(self, run: _StageRun, inst: Instruction) -> None:
        for name, default in self._arg_words(inst, run.subst_env()):
            if name in self.options.build_args:
                run.args[name] = self.options.build_args[name]
                self.used_args.add(name)
            elif default is not None:
                run.args[name] = default
            elif name in self.global_args:
                run.args[name] = self.global_args[name]
            else:
                run.args.pop(name, None)

    def _do_env(self, run: _StageRun, inst: Instruction) -> None:
        pairs = split_key_values(inst.args, self.df.escape)
        if pairs is None:
            raise self._error(inst, "ENV needs NAME=VALUE pairs")
        env = run.subst_env()
        values = [(self._expand(inst, k, env), self._expand(inst, v, env)) for k, v in pairs]
        for key, _ in values:
            if not key or "=" in key:
                raise self._error(inst, f"invalid variable name {key!r}")
        text = "ENV " + " ".join(f"{k}={v}" for k, v in values)

        def change(state: State) -> None:
            current = state.env()
            for key, value in values:
                current[key] = value
            state.run_config["Env"] = [f"{k}={v}" for k, v in current.items()]

        self._metadata(run, inst, text, change)

    def _do_label(self, run: _StageRun, inst: Instruction) -> None:
        pairs = split_key_values(inst.args, self.df.escape)
        if pairs is None:
            raise self._error(inst, "LABEL needs KEY=VALUE pairs")
        env = run.subst_env()
        values = [(self._expand(inst, k, env), self._expand(inst, v, env)) for k, v in pairs]
        text = "LABEL " + " ".join(f"{k}={v}" for k, v in values)

        def change(state: State) -> None:
            labels = dict(state.run_config.get("Labels") or {})
            labels.update(values)
            state.run_config["Labels"] = labels

        self._metadata(run, inst, text, change)

    def _command_form(self, run: _StageRun, inst: Instruction) -> list[str]:
        if inst.exec_form is not None:
            return list(inst.exec_form)
        shell = run.state.run_config.get("Shell") or DEFAULT_SHELL
        return [*shell, inst.args]

    def _do_cmd(self, run: _StageRun, inst: Instruction) -> None:
        cmd = self._command_form(run, inst)
        run.cmd_set = True
        self._metadata(run, inst, "CMD " + json.dumps(cmd), lambda s: s.run_config.update(Cmd=cmd))

    def _do_entrypoint(self, run: _StageRun, inst: Instruction) -> None:
        entrypoint = self._command_form(run, inst)
        keep_cmd = run.cmd_set

        def change(state: State) -> None:
            state.run_config["Entrypoint"] = entrypoint
            if not keep_cmd:
                state.run_config.pop("Cmd", None)  # the base image's CMD goes, as in Docker

        self._metadata(run, inst, "ENTRYPOINT " + json.dumps(entrypoint), change)

    def _do_shell(self, run: _StageRun, inst: Instruction) -> None:
        shell = list(inst.exec_form or [])
        self._metadata(
            run, inst, "SHELL " + json.dumps(shell), lambda s: s.run_config.update(Shell=shell)
        )

    def _do_user(self, run: _StageRun, inst: Instruction) -> None:
        user = self._expand(inst, inst.args, run.subst_env()).strip()
        if not user:
            raise self._error(inst, "USER needs a user name or id")
        self._metadata(run, inst, f"USER {user}", lambda s: s.run_config.update(User=user))

    def _do_expose(self, run: _StageRun, inst: Instruction) -> None:
        ports: list[str] = []
        for word in self._expand_words(inst, inst.args, run.subst_env()):
            number, _, proto = word.partition("/")
            proto = (proto or "tcp").lower()
            if proto not in ("tcp", "udp", "sctp"):
                raise self._error(inst, f"invalid protocol in {word!r}")
            first, _, last = number.partition("-")
            if not first.isdigit() or (last and not last.isdigit()):
                raise self._error(inst, f"invalid port {word!r}")
            low, high = int(first), int(last or first)
            if not 0 < low <= high <= 65535:
                raise self._error(inst, f"invalid port {word!r}")
            ports += [f"{p}/{proto}" for p in range(low, high + 1)]

        def change(state: State) -> None:
            exposed = dict(state.run_config.get("ExposedPorts") or {})
            exposed.update({p: {} for p in ports})
            state.run_config["ExposedPorts"] = exposed

        self._metadata(run, inst, "EXPOSE " + " ".join(ports), change)

    def _do_volume(self, run: _StageRun, inst: Instruction) -> None:
        env = run.subst_env()
        if inst.exec_form is not None:
            volumes = [self._expand(inst, v, env) for v in inst.exec_form]
        else:
            volumes = self._expand_words(inst, inst.args, env)
        if not volumes or any(not v.strip() for v in volumes):
            raise self._error(inst, "VOLUME needs a path")

        def change(state: State) -> None:
            current = dict(state.run_config.get("Volumes") or {})
            current.update({v: {} for v in volumes})
            state.run_config["Volumes"] = current

        self._metadata(run, inst, "VOLUME " + json.dumps(volumes), change)

    def _do_stopsignal(self, run: _StageRun, inst: Instruction) -> None:
        from runtime.spec import parse_signal

        value = self._expand(inst, inst.args, run.subst_env()).strip()
        try:
            parse_signal(value)
        except ValueError as exc:
            raise self._error(inst, str(exc)) from None
        self._metadata(
            run, inst, f"STOPSIGNAL {value}", lambda s: s.run_config.update(StopSignal=value)
        )

    def _do_healthcheck(self, run: _StageRun, inst: Instruction) -> None:
        args = inst.args.strip()
        if args.upper() == "NONE":
            if inst.flags:
                raise self._error(inst, "HEALTHCHECK NONE takes no options")
            check: dict[str, Any] = {"Test": ["NONE"]}
        else:
            word, _, rest = args.partition(" ")
            if word.upper() != "CMD" or not rest.strip():
                raise self._error(inst, "expected HEALTHCHECK [OPTIONS] CMD command, or NONE")
            rest = rest.strip()
            exec_form = None
            if rest.startswith("["):
                try:
                    value = json.loads(rest)
                    if isinstance(value, list) and all(isinstance(v, str) for v in value):
                        exec_form = value
                except ValueError:
                    pass
            check = {"Test": ["CMD", *exec_form] if exec_form else ["CMD-SHELL", rest]}
            for flag, key in (
                ("interval", "Interval"),
                ("timeout", "Timeout"),
                ("start-period", "StartPeriod"),
                ("start-interval", "StartInterval"),
            ):
                value = inst.flags.get(flag)
                if value is not None:
                    check[key] = self._duration(inst, flag, value)
            retries = inst.flags.get("retries")
            if retries is not None:
                if not retries.isdigit() or int(retries) < 1:
                    raise self._error(inst, f"--retries={retries}: must be at least 1")
                check["Retries"] = int(retries)
        self._metadata(
            run,
            inst,
            "HEALTHCHECK " + json.dumps(check, sort_keys=True),
            lambda s: s.run_config.update(Healthcheck=check),
        )

    def _duration(self, inst: Instruction, flag: str, value: str) -> int:
        total = 0.0
        pos = 0
        for match in _DURATION_RE.finditer(value):
            if match.start() != pos:
                break
            total += float(match.group(1)) * _DURATION_UNITS[match.group(2)]
            pos = match.end()
        if pos != len(value) or not value:
            raise self._error(inst, f"--{flag}={value}: not a duration (e.g. 30s, 1m30s)")
        if flag != "start-period" and total == 0:
            raise self._error(inst, f"--{flag}={value}: must be more than 0")
        return int(total)

    def _do_maintainer(self, run: _StageRun, inst: Instruction) -> None:
        author = inst.args.strip()
        self._metadata(run, inst, f"MAINTAINER {author}", lambda s: s.config.update(author=author))

    def _do_onbuild(self, run: _StageRun, inst: Instruction) -> None:
        trigger = inst.args.strip()
        keyword = trigger.split(None, 1)[0].upper()
        if keyword in ("ONBUILD", "FROM", "MAINTAINER"):
            raise self._error(inst, f"{keyword} is not allowed as an ONBUILD trigger")

        def change(state: State) -> None:
            triggers = list(state.run_config.get("OnBuild") or [])
            triggers.append(trigger)
            state.run_config["OnBuild"] = triggers

        self._metadata(run, inst, f"ONBUILD {trigger}", change)


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
