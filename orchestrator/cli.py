"""The ``orchestrator`` command line."""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence
from typing import Any

from orchestrator.commands import COMMAND_MODULES, COMMANDS
from orchestrator.errors import UserError


def build_parser(stack_verbs: bool = False, only: str | None = None) -> argparse.ArgumentParser:
    """The command line; with ``stack_verbs``, the stack's own ``ps``, ``logs``, ``stop``,
    ``start`` and ``restart`` replace the single-container ones (``-f``/``-p`` given). With
    ``only`` (a command's name), just that command's parser is made: the others cost time at
    every start and are not needed to parse it."""
    parser = _Parser(
        prog="orchestrator",
        description="Run Compose-style stacks on an embedded container runtime.",
    )
    parser.add_argument(
        "--root", help="state directory (default $ORCHESTRATOR_ROOT or /var/lib/orchestrator)"
    )
    parser.add_argument(
        "-f",
        "--file",
        dest="files",
        action="append",
        default=[],
        metavar="FILE",
        help="stack file (repeatable; later files override earlier ones)",
    )
    parser.add_argument("-p", "--project-name", dest="project_name", help="project name")
    parser.add_argument(
        "--profile",
        action="append",
        dest="global_profiles",
        default=[],
        metavar="PROFILE",
        help="enable services of this profile (repeatable; default $COMPOSE_PROFILES)",
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks for errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    if stack_verbs:
        from orchestrator.commands import stack

        stack.add_parsers(_Only(sub, only) if only else sub, shared=True)
        return parser
    modules = COMMANDS.get(only or "")
    adder: Any = _Only(sub, only) if modules and only else sub
    for name in modules or COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
            continue  # a command group not written yet
        module.add_parsers(adder)
    return parser


class _Parser(argparse.ArgumentParser):
    """No abbreviated options, here and in every subparser (``run --pid 5`` is not
    ``--pids-limit 5``): subparsers are made of their parent's class."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs["allow_abbrev"] = False
        super().__init__(*args, **kwargs)


class _Only:
    """Stands for the subparsers while only ``name``'s parser is made: the others' parsers,
    and whatever is added to them, go nowhere."""

    def __init__(self, sub: Any, name: str) -> None:
        self.sub = sub
        self.name = name
        self.choices = sub.choices

    def add_parser(self, name: str, **kwargs: Any) -> Any:
        if name == self.name or self.name in kwargs.get("aliases", ()):
            return self.sub.add_parser(name, **kwargs)
        return _Nowhere()


class _Nowhere:
    def __getattr__(self, name: str) -> Any:
        return lambda *args, **kwargs: self


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    stacked = _stack_mode(argv)
    verb = _command_word(argv)
    parser = build_parser(stack_verbs=stacked, only=verb)
    # Docker's statuses for run, create and exec: 125 for the CLI's own errors, 126 and 127
    # when the command cannot be run or found; the container's own otherwise.
    docker = not stacked and verb in ("run", "create", "exec")
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        if docker and exc.code == 2:
            return 125
        raise
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return 2
    if args.global_profiles and not getattr(args, "profiles", None):
        args.profiles = args.global_profiles  # Compose's place for it: before the command
    try:
        return int(args.func(args) or 0)
    except UserError as exc:
        if args.debug:
            raise
        print(f"orchestrator: {exc}", file=sys.stderr)
        if docker and exc.exit_code == 1 and not getattr(exc, "own_status", False):
            return 125
        return exc.exit_code
    except _runtime_error() as exc:
        if args.debug:
            raise
        print(f"orchestrator: {exc}", file=sys.stderr)
        return _exec_status(str(exc)) if docker else 1
    except KeyboardInterrupt:
        return 130
    except OSError as exc:
        # The state root is a file, read-only, full...: one line naming it, not a traceback.
        if args.debug or isinstance(exc, BrokenPipeError) or exc.errno is None:
            raise
        print(f"orchestrator: {_os_error(exc, args)}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        # The reader went away (``orchestrator logs | head``): not an error worth a traceback.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


_GLOBAL_WITH_VALUE = ("--root", "-f", "--file", "-p", "--project-name", "--profile")
_SHARED_VERBS = (
    *("ps", "logs", "stop", "start", "restart", "kill", "pause", "unpause", "rm", "exec"),
    *("run", "top", "stats", "port", "images", "wait", "create"),
)


def _stack_mode(argv: list[str]) -> bool:
    """Whether the command is a stack's version of a container verb: ``-f`` or ``-p`` given
    before it (as Compose's ``docker compose -f x ps`` against Docker's ``docker ps``)."""
    stacked = False
    i = 0
    while i < len(argv):
        word = argv[i]
        if word in _GLOBAL_WITH_VALUE:
            stacked = stacked or word != "--root"
            i += 2
            continue
        if word.startswith(("--file=", "--project-name=", "--profile=")) or (
            word[:2] in ("-f", "-p") and len(word) > 2
        ):
            stacked = True
        elif not word.startswith("-"):
            return stacked and word in _SHARED_VERBS
        i += 1
    return False


def _command_word(argv: list[str]) -> str | None:
    """The command's name: the first word that is not a global option (or its value)."""
    i = 0
    while i < len(argv):
        word = argv[i]
        if word in _GLOBAL_WITH_VALUE:
            i += 2
            continue
        if not word.startswith("-"):
            return word
        i += 1
    return None


def _exec_status(message: str) -> int:
    """127 for a command not found, 126 for one that cannot be executed, else 125."""
    if message.startswith("exec "):
        if message.endswith("executable file not found in $PATH"):
            return 127
        if message.endswith("permission denied"):
            return 126
    return 125


def _os_error(exc: OSError, args: argparse.Namespace) -> str:
    from orchestrator.paths import state_root

    root = state_root(getattr(args, "root", None))
    if root.exists() and not root.is_dir():
        return f"the state root {root} is not a directory"
    where = f"{exc.filename}: " if exc.filename else ""
    if str(exc.filename or "").startswith(str(root)) and not os.access(root, os.W_OK):
        where = f"the state root {root}: "
    return f"{where}{exc.strerror}"


def _runtime_error() -> type[Exception]:
    from runtime.errors import Error

    return Error
