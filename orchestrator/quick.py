"""The command line's entry point: a container command goes to a warm copy of the CLI kept by
the state root's fork server (runtime.warmcli, runtime.zygote) when one runs, so that it does
not pay the CLI's imports again; anything else, or when that copy cannot serve the call, runs
here (orchestrator.cli). Imports nothing that costs.

ORCHESTRATOR_NO_WARM=1 always runs the command here.
"""

from __future__ import annotations

import os
import sys

ENTRY = "orchestrator.cli:main"
# What the warm copy imports once: the container commands' whole path.
PRELOAD = (
    "orchestrator.cli",
    "orchestrator.commands.containers",
    "orchestrator.containers",
    "orchestrator.description",
    "orchestrator.bundle",
    "orchestrator.mountspec",
    "orchestrator.mountplan",
    "orchestrator.netflags",
    "orchestrator.networks",
    "orchestrator.seccompprofile",
    "orchestrator.stack.units",
    "orchestrator.volumes",
    "orchestrator.paths",
    "orchestrator.dockerinspect",
    "orchestrator.eventlog",
    "orchestrator.gotemplate",
    "orchestrator.logview",
    "orchestrator.pslist",
    "orchestrator.runpull",
    "orchestrator.workdir",
    "runtime.api",
    "runtime.attach",
    "runtime.forkserver",
    "runtime.image.store",
    "runtime.logs",
    "runtime.monitor_client",
    "runtime.spec",
    "runtime.specgen",
    "orchestrator.stack.model",
    "runtime.hooks",
    "runtime.monitor",
    "runtime.net.hosts",
    "runtime.net.nft",
    # a stack's verbs (-f FILE / -p NAME): the loader, and the supervisor's client
    "orchestrator.commands.stack",
    "orchestrator.stack",
    "orchestrator.stack.loader",
    "orchestrator.stack.schema",
    "orchestrator.stack.graph",
    "orchestrator.supervisor.httpclient",
    "orchestrator.supervisor.observe",
    "orchestrator.timespec",
)
# Container commands served warm: they act through the runtime and their own files only.
VERBS = frozenset(
    (
        "create", "exec", "inspect", "kill", "logs", "pause", "ps", "restart", "rm", "run",
        "start", "stop", "unpause", "wait", "images", "port",
    )
)  # fmt: skip
# A stack's verbs served warm (with -f/-p, or without for the stack-only ones); not `run`,
# `exec` or `attach` (a terminal may be theirs), nor `supervisor` (a daemon of its own).
STACK_VERBS = frozenset(
    (
        "ps", "logs", "stop", "start", "restart", "kill", "pause", "unpause", "rm", "top",
        "stats", "port", "images", "wait", "create", "up", "down", "ls", "events", "scale",
    )
)  # fmt: skip
STACK_ONLY = frozenset(("up", "down", "ls", "events", "scale"))
_GLOBAL_WITH_VALUE = ("-f", "--file", "-p", "--project-name", "--profile")


def main() -> int:
    argv = sys.argv[1:]
    if not os.environ.get("ORCHESTRATOR_NO_WARM"):
        from runtime import warmcli

        warmcli.WARM = __name__  # a fork server this process starts keeps a warm copy
        root = warm_root(argv)
    else:
        root = None
    if root is not None and os.geteuid() == 0:
        status = warmcli.call(os.path.join(root, "runtime"), ENTRY, sys.argv)
        if status is not None:
            # Served: nothing of ours is left to flush or finalise, and an interpreter's
            # orderly exit costs a few milliseconds.
            os._exit(status)
        if warmcli.last_refusal == "absent" and _starts_containers(argv):
            _start_fork_server(root)  # it loads while we do
    from orchestrator.cli import main as cli_main

    try:
        return cli_main(argv)
    finally:
        forkserver = sys.modules.get("runtime.forkserver")
        if forkserver is not None:
            forkserver.abandon_early()


def warm_up(rounds: int = 10) -> None:
    """(in the zygote, once) Run the commands' pure first steps, parsing and descriptions, a
    few times: CPython specialises code on its first executions, better paid here once than
    in every worker."""
    import json

    from orchestrator.cli import build_parser
    from orchestrator.commands import containers
    from runtime.specgen import default_spec

    examples = (
        ["run", "--rm", "busybox", "true"],
        ["run", "-d", "--name", "w", "-e", "A=1", "-v", "/a:/b", "-p", "80", "busybox", "sh"],
        ["create", "--name", "w", "busybox"],
        ["ps", "-a", "--format", "json"],
        ["logs", "w"],
        ["stop", "-t", "1", "w"],
        ["rm", "-f", "w"],
        ["exec", "w", "true"],
        ["inspect", "w"],
    )
    for _ in range(rounds):
        for argv in examples:
            try:
                args = build_parser(only=argv[0]).parse_args(argv)
                if argv[0] in ("run", "create"):
                    containers._options(args)
            except (Exception, SystemExit):
                pass  # only a warm-up
        json.dumps(default_spec(["true"]))


def warm_root(argv: list[str]) -> str | None:
    """The state root when ``argv`` is a container command that may be served warm; None for
    anything else. Conservative: for the verbs that may take a terminal or stdin, such a flag
    anywhere (``-t``, ``-i``, ``-it``, also in the container's own arguments) runs the command
    here."""
    root = os.environ.get("ORCHESTRATOR_ROOT") or "/var/lib/orchestrator"
    stacked = False
    i = 0
    while i < len(argv) and argv[i].startswith("-"):
        if argv[i] in ("--root", *_GLOBAL_WITH_VALUE) and i + 1 < len(argv):
            if argv[i] == "--root":
                root = argv[i + 1]
            else:
                stacked = True
            i += 2
            continue
        return None  # --debug, --help, an = form...: here
    if i >= len(argv):
        return None
    verb = argv[i]
    if stacked or verb in STACK_ONLY:
        if verb not in STACK_VERBS:
            return None
    elif verb not in VERBS:
        return None
    terminal_flags = not stacked and verb not in STACK_ONLY and verb in _TERMINAL_VERBS
    for word in argv[i + 1 :]:
        if word.startswith("--help") or word == "-h":
            return None
        if not terminal_flags:
            continue  # (its -t is a time or timestamps; -i means nothing)
        if word.startswith(("--tty", "--interactive")):
            return None
        if word[:1] == "-" and word[1:2] != "-" and ("t" in word or "i" in word):
            return None
    return root


# The verbs where -t/-i may give a terminal or stdin (elsewhere -t is a time or timestamps).
_TERMINAL_VERBS = frozenset(("run", "create", "exec", "start"))


def _starts_containers(argv: list[str]) -> bool:
    return any(word in ("run", "create", "start", "restart") for word in argv[:4])


def _start_fork_server(root: str) -> None:
    """Start the state root's fork server (as the runtime would at the first launch) now,
    without waiting: it loads while this process imports the CLI."""
    from orchestrator.paths import runtime_dir, state_root
    from runtime.cgroups import default_parent
    from runtime.errors import Error
    from runtime.forkserver import ForkServerClient, default_config

    where = runtime_dir(state_root(root))
    try:
        ForkServerClient(where, default_config(where, cgroup_parent=default_parent())).start_early()
    except (OSError, Error):
        pass  # the ordinary start says what is wrong
