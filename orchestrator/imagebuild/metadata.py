"""The instructions that change the image config only (ARG, ENV, LABEL, CMD, ENTRYPOINT, SHELL,
USER, EXPOSE, VOLUME, STOPSIGNAL, HEALTHCHECK, MAINTAINER, ONBUILD): each adds a history entry
marked ``empty_layer`` and no layer.
"""

from __future__ import annotations

import json
import re
from typing import Any

from orchestrator.durations import DurationError, parse_duration
from orchestrator.imagebuild.dockerfile import Instruction, _raw_words, split_key_values
from orchestrator.imagebuild.state import DEFAULT_SHELL, StageRun, State
from orchestrator.imagebuild.steps import StepBase, instruction_error

_ARG_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class MetadataSteps(StepBase):
    """Handlers (``_do_<keyword>``) of the instructions that change the config only."""

    def _arg_words(self, inst: Instruction, env: dict[str, str]) -> list[tuple[str, str | None]]:
        out: list[tuple[str, str | None]] = []
        for word in _raw_words(inst.args, self.df.escape):
            name, eq, raw = word.partition("=")
            if not _ARG_NAME_RE.fullmatch(name):
                raise self._error(inst, f"invalid argument name {name!r}")
            out.append((name, self._expand(inst, raw, env) if eq else None))
        return out

    def _do_arg(self, run: StageRun, inst: Instruction) -> None:
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

    def _do_env(self, run: StageRun, inst: Instruction) -> None:
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

    def _do_label(self, run: StageRun, inst: Instruction) -> None:
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

    def _command_form(self, run: StageRun, inst: Instruction) -> list[str]:
        if inst.exec_form is not None:
            return list(inst.exec_form)
        shell = run.state.run_config.get("Shell") or DEFAULT_SHELL
        return [*shell, inst.args]

    def _do_cmd(self, run: StageRun, inst: Instruction) -> None:
        cmd = self._command_form(run, inst)
        run.cmd_set = True
        self._metadata(run, inst, "CMD " + json.dumps(cmd), lambda s: s.run_config.update(Cmd=cmd))

    def _do_entrypoint(self, run: StageRun, inst: Instruction) -> None:
        entrypoint = self._command_form(run, inst)
        keep_cmd = run.cmd_set

        def change(state: State) -> None:
            state.run_config["Entrypoint"] = entrypoint
            if not keep_cmd:
                state.run_config.pop("Cmd", None)  # the base image's CMD goes, as in Docker

        self._metadata(run, inst, "ENTRYPOINT " + json.dumps(entrypoint), change)

    def _do_shell(self, run: StageRun, inst: Instruction) -> None:
        shell = list(inst.exec_form or [])
        self._metadata(
            run, inst, "SHELL " + json.dumps(shell), lambda s: s.run_config.update(Shell=shell)
        )

    def _do_user(self, run: StageRun, inst: Instruction) -> None:
        user = self._expand(inst, inst.args, run.subst_env()).strip()
        if not user:
            raise self._error(inst, "USER needs a user name or id")
        self._metadata(run, inst, f"USER {user}", lambda s: s.run_config.update(User=user))

    def _do_expose(self, run: StageRun, inst: Instruction) -> None:
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

    def _do_volume(self, run: StageRun, inst: Instruction) -> None:
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

    def _do_stopsignal(self, run: StageRun, inst: Instruction) -> None:
        from runtime.spec import parse_signal

        value = self._expand(inst, inst.args, run.subst_env()).strip()
        try:
            parse_signal(value)
        except ValueError as exc:
            raise self._error(inst, str(exc)) from None
        self._metadata(
            run, inst, f"STOPSIGNAL {value}", lambda s: s.run_config.update(StopSignal=value)
        )

    def _do_healthcheck(self, run: StageRun, inst: Instruction) -> None:
        check = healthcheck_config(inst, self.df.path)
        self._metadata(
            run,
            inst,
            "HEALTHCHECK " + json.dumps(check, sort_keys=True),
            lambda s: s.run_config.update(Healthcheck=check),
        )

    def _do_maintainer(self, run: StageRun, inst: Instruction) -> None:
        author = inst.args.strip()
        self._metadata(run, inst, f"MAINTAINER {author}", lambda s: s.config.update(author=author))

    def _do_onbuild(self, run: StageRun, inst: Instruction) -> None:
        trigger = inst.args.strip()
        keyword = trigger.split(None, 1)[0].upper()
        if keyword in ("ONBUILD", "FROM", "MAINTAINER"):
            raise self._error(inst, f"{keyword} is not allowed as an ONBUILD trigger")

        def change(state: State) -> None:
            triggers = list(state.run_config.get("OnBuild") or [])
            triggers.append(trigger)
            state.run_config["OnBuild"] = triggers

        self._metadata(run, inst, f"ONBUILD {trigger}", change)


_HEALTHCHECK_DURATIONS = (
    ("interval", "Interval"),
    ("timeout", "Timeout"),
    ("start-period", "StartPeriod"),
    ("start-interval", "StartInterval"),
)


def healthcheck_config(inst: Instruction, file: str) -> dict[str, Any]:
    """The image config's ``Healthcheck`` for a HEALTHCHECK instruction of Dockerfile ``file``:
    ``{"Test": [...], "Interval": ns, ...}``."""
    args = inst.args.strip()
    if args.upper() == "NONE":
        if inst.flags:
            raise instruction_error(file, inst, "HEALTHCHECK NONE takes no options")
        return {"Test": ["NONE"]}
    word, _, rest = args.partition(" ")
    if word.upper() != "CMD" or not rest.strip():
        raise instruction_error(file, inst, "expected HEALTHCHECK [OPTIONS] CMD command, or NONE")
    rest = rest.strip()
    exec_form = None
    if rest.startswith("["):
        try:
            value = json.loads(rest)
            if isinstance(value, list) and all(isinstance(v, str) for v in value):
                exec_form = value
        except ValueError:
            pass
    check: dict[str, Any] = {"Test": ["CMD", *exec_form] if exec_form else ["CMD-SHELL", rest]}
    for flag, key in _HEALTHCHECK_DURATIONS:
        text = inst.flags.get(flag)
        if text is None:
            continue
        # The grammar of the stack file's healthcheck durations: one parser for both.
        try:
            ns = parse_duration(text, f"--{flag}")
        except DurationError as exc:
            raise instruction_error(file, inst, exc.message) from None
        if flag != "start-period" and ns == 0:
            raise instruction_error(file, inst, f"--{flag} {text!r} must be more than 0")
        check[key] = ns
    retries = inst.flags.get("retries")
    if retries is not None:
        if not retries.isdigit() or int(retries) < 1:
            raise instruction_error(file, inst, f"--retries={retries}: must be at least 1")
        check["Retries"] = int(retries)
    return check
