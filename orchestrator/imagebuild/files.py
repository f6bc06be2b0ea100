"""The instructions that write files into a new layer without a container: COPY and ADD (from the
context, an earlier stage or an image) and WORKDIR when the directory is missing.
"""

from __future__ import annotations

import re
import shutil
import stat
from typing import Any

from orchestrator.imagebuild.copy import LayerWriter, find_sources, plan_copy
from orchestrator.imagebuild.dockerfile import Instruction
from orchestrator.imagebuild.ignore import clean
from orchestrator.imagebuild.state import StageRun, State
from orchestrator.imagebuild.steps import StepBase
from orchestrator.imagebuild.trees import Escape, LayerTree, TreeError
from runtime.errors import Error as RuntimeError_
from runtime.errors import NotFound

_URL_RE = re.compile(r"^(?:[a-zA-Z][a-zA-Z0-9+.-]*://|git@)")


class FileSteps(StepBase):
    """Handlers of COPY, ADD and WORKDIR."""

    def _sources_tree(self, run: StageRun, inst: Instruction) -> tuple[Any, str]:
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

    def _do_copy(self, run: StageRun, inst: Instruction) -> None:
        self._copy(run, inst, unpack=False)

    def _do_add(self, run: StageRun, inst: Instruction) -> None:
        self._copy(run, inst, unpack=True)

    def _copy(self, run: StageRun, inst: Instruction, *, unpack: bool) -> None:
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

    def _chown(self, run: StageRun, inst: Instruction, lower: LayerTree) -> tuple[int, int] | None:
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

    def _do_workdir(self, run: StageRun, inst: Instruction) -> None:
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
