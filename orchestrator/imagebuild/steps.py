"""The machinery every build step uses: output, errors, variable substitution, the step cache,
history entries, the layer trees of an image state and commits of a new layer.

Each group of instruction handlers is a subclass of :class:`StepBase` (``metadata``, ``files``,
``run_step``); :class:`~orchestrator.imagebuild.builder.Builder` joins them and runs the stages.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

from orchestrator.imagebuild.cache import BuildCache
from orchestrator.imagebuild.dockerfile import Dockerfile, DockerfileError, Instruction, Stage
from orchestrator.imagebuild.state import BuildOptions, StageRun, State
from orchestrator.imagebuild.substitute import SubstitutionError, expand, expand_words
from orchestrator.imagebuild.trees import ContextTree, LayerTree
from runtime.image.layers import LayerInfo
from runtime.image.model import Image
from runtime.image.store import ImageStore


def instruction_error(file: str, inst: Instruction, message: str) -> DockerfileError:
    """``FILE:LINE: INSTRUCTION: message``."""
    return DockerfileError(message, file=file, line=inst.line, instruction=inst.describe())


def _timestamp() -> str:
    from runtime.logs import timestamp

    return timestamp()


class StepBase:
    """A build's state (the builder sets it) and the helpers its steps share."""

    # Set by Builder: at construction, then at the start of each build.
    root: Path
    out: TextIO
    err: TextIO
    store: ImageStore
    cache: BuildCache
    step: int  # the number of the step running, counted across stages
    cached_steps: int
    run_steps: int
    df: Dockerfile
    options: BuildOptions
    context: ContextTree
    used_args: set[str]
    global_args: dict[str, str]
    global_declared: set[str]
    results: dict[int, State]  # stage index -> its final state, once built
    hashes: dict[Path, str]
    work: Path

    def _build_stage(self, stage: Stage) -> State:
        """The final state of ``stage``, built first if needed (by the builder's stage loop)."""
        raise NotImplementedError

    # -- output, errors, substitution -------------------------------------------------------------

    def _print(self, line: str) -> None:
        self.out.write(line + "\n")
        self.out.flush()

    def _error(self, inst: Instruction, message: str) -> DockerfileError:
        return instruction_error(self.df.path, inst, message)

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

    def _stage_ref(self, name: str, before: int) -> Stage | None:
        stage = self.df.stage(name)
        if stage is not None and stage.index < before:
            return stage
        return None

    # -- the cache --------------------------------------------------------------------------------

    def _cached(
        self,
        run: StageRun,
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
        self, run: StageRun, inst: Instruction, text: str, change: Callable[[State], None]
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

    # -- layers -----------------------------------------------------------------------------------

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
