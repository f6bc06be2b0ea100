"""The builder: runs a parsed Dockerfile, step by step, into an image in the store.

    image = Builder(root).build(BuildOptions(context=Path("."), tags=["app:1"]))

Each stage starts from its FROM (an image of the store, ``scratch``, or an earlier stage) and
carries an image state (``state.py``): the OCI config (run config and history included) and the
layer chain. Every instruction after FROM is one step, handled by one of:

- ``run_step.py``: RUN, in a container of our own runtime; its upper directory becomes the step's
  layer (``ImageStore.commit_diff``; an empty one adds no layer).
- ``files.py``: COPY and ADD write their files into a fresh upper directory (no container
  needed), which becomes the layer the same way; WORKDIR does too when the directory is missing.
- ``metadata.py``: the other instructions change the config only, with a history entry marked
  ``empty_layer``.

Each step goes through the cache (``cache.py``, by way of ``steps.py``): a hit prints ``CACHED``
and reuses the recorded state. Only the target stage and the stages it depends on are built. The
image is recorded (and tagged) only once every step has succeeded: a failing build leaves no
image, no container, no mount and no working directory behind; the layers of the steps that did
succeed stay in the store as cache until ``image prune``.
"""

from __future__ import annotations

import copy
import dataclasses
import secrets
import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

from orchestrator.imagebuild.cache import BuildCache
from orchestrator.imagebuild.dockerfile import Instruction, Stage, parse
from orchestrator.imagebuild.files import FileSteps
from orchestrator.imagebuild.ignore import IgnoreRules
from orchestrator.imagebuild.metadata import MetadataSteps
from orchestrator.imagebuild.run_step import RunStep
from orchestrator.imagebuild.state import BuildError, BuildOptions, StageRun, State
from orchestrator.imagebuild.substitute import SubstitutionError, expand
from orchestrator.imagebuild.trees import ContextTree
from orchestrator.paths import images_dir
from runtime.errors import Error as RuntimeError_
from runtime.errors import NotFound
from runtime.image.manifests import DEFAULT_PATH_ENV, host_architecture
from runtime.image.model import Image
from runtime.image.store import ImageStore, owner_tag

__all__ = ["BuildError", "BuildOptions", "Builder", "State"]


def onbuild_triggers(state: State, path: str, from_inst: Instruction) -> list[Instruction]:
    """The base's ONBUILD triggers as instructions (numbered as the FROM line), taken out of
    the config: they run in this build, and are not passed on to its children (Docker's rule)."""
    texts = state.run_config.pop("OnBuild", None) or []
    if not texts:
        return []
    trigger_file = parse("FROM scratch\n" + "\n".join(str(t) for t in texts), path)
    return [
        dataclasses.replace(t, line=from_inst.line, original=f"ONBUILD {t.original}")
        for t in trigger_file.stages[0].instructions
    ]


class Builder(MetadataSteps, FileSteps, RunStep):
    def __init__(self, root: Path, out: TextIO | None = None, err: TextIO | None = None) -> None:
        self.root = root
        self.out = out or sys.stdout
        self.err = err or sys.stderr
        self.store = ImageStore(images_dir(root))
        self.cache = BuildCache(root)
        self._runtime = None
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
        self.used_args = set()
        self.global_args = self._global_args()
        self.results = {}
        self.hashes = {}
        if options.target is not None:
            target = self.df.stage(options.target)
            if target is None:
                raise BuildError(f"{display}: target stage {options.target!r} not found")
        else:
            target = self.df.stages[-1]
        self.work = self.cache.tmp_root() / f"b-{owner_tag()}-{secrets.token_hex(6)}"
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

    # -- arguments --------------------------------------------------------------------------------

    def _global_args(self) -> dict[str, str]:
        values: dict[str, str] = {}
        self.global_declared = set()
        for inst in self.df.global_args:
            for name, default in self._arg_words(inst, values):
                self.global_declared.add(name)
                if name in self.options.build_args:
                    values[name] = self.options.build_args[name]
                    self.used_args.add(name)
                elif default is not None:
                    values[name] = default
        return values

    # -- stages -----------------------------------------------------------------------------------

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
        triggers = onbuild_triggers(state, self.df.path, inst)
        steps = [i for i in [*triggers, *stage.instructions] if i.keyword != "ARG"]
        run = StageRun(stage, state, total=1 + len(steps))
        self.step += 1
        self._print(f"#{self.step} [{stage.label} 1/{run.total}] FROM {base}")
        for trigger in triggers:  # the base image's ONBUILD, right after FROM, as Docker runs them
            self._instruction(run, trigger)
        for inst in stage.instructions:
            self._instruction(run, inst)
        self.results[stage.index] = run.state
        return run.state

    def _instruction(self, run: StageRun, inst: Instruction) -> None:
        """ARG only sets a value for the later steps: it is not a numbered step."""
        handler: Callable[[StageRun, Instruction], None] = getattr(
            self, f"_do_{inst.keyword.lower()}"
        )
        if inst.keyword == "ARG":
            handler(run, inst)
            return
        self.step += 1
        run.position += 1
        self._print(f"#{self.step} [{run.stage.label} {run.position}/{run.total}] {inst.original}")
        handler(run, inst)
