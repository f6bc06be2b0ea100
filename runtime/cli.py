"""``python -m runtime``: the OCI runtime command line (runc's and crun's conventions).

    python -m runtime [--root DIR] create [--bundle DIR] [--pid-file F] ID
    python -m runtime start ID
    python -m runtime state ID
    python -m runtime kill ID [SIGNAL]
    python -m runtime delete [--force] ID
    python -m runtime run [--bundle DIR] [--detach] ID
    python -m runtime list | pause ID | resume ID | spec [--rootless]

As with runc, the container's stdio is this process's stdio unless ``--log-path`` (ours) sends it
to a JSON log instead.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from runtime.errors import Error


def default_root() -> Path:
    base = os.environ.get("ORCHESTRATOR_ROOT") or "/var/lib/orchestrator"
    return Path(base) / "runtime"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m runtime", description="An OCI container runtime."
    )
    parser.add_argument("--root", type=Path, default=None, help="state directory")
    parser.add_argument("--log", help="accepted for runc compatibility; ignored")
    parser.add_argument("--log-format", help="accepted for runc compatibility; ignored")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    for name in ("create", "run"):
        p = sub.add_parser(name, help=f"{name} a container from a bundle")
        p.add_argument("--bundle", "-b", default=".", help="bundle directory (default: .)")
        p.add_argument("--pid-file", help="write the container's pid here")
        p.add_argument(
            "--console-socket",
            help="with process.terminal: send the terminal's master to this unix socket",
        )
        p.add_argument("--log-path", help="send the container's output to this JSON log")
        if name == "run":
            p.add_argument(
                "--detach", "-d", action="store_true", help="do not wait for the container"
            )
        p.add_argument("id")
    for name, text in (
        ("start", "start a created container"),
        ("state", "print the OCI state JSON"),
        ("pause", "freeze a container"),
        ("resume", "thaw a container"),
    ):
        p = sub.add_parser(name, help=text)
        p.add_argument("id")
    p = sub.add_parser("kill", help="send a signal (default SIGTERM)")
    p.add_argument("--all", "-a", action="store_true", help="signal every process of the container")
    p.add_argument("id")
    p.add_argument("signal", nargs="?", default="SIGTERM")
    p = sub.add_parser("exec", help="run a command in a running container")
    p.add_argument("--env", "-e", action="append", default=[], help="KEY=VALUE, repeatable")
    p.add_argument("--user", "-u", help="user[:group] (default: the container's)")
    p.add_argument("--cwd", help="working directory (default: the container's)")
    p.add_argument("id")
    p.add_argument("cmd", nargs=argparse.REMAINDER, help="command and arguments")
    p = sub.add_parser("delete", help="remove a stopped container")
    p.add_argument("--force", "-f", action="store_true", help="kill it first if it runs")
    p.add_argument("id")
    p = sub.add_parser("list", help="list containers")
    p.add_argument("--format", "-f", choices=("table", "json"), default="table")
    p = sub.add_parser("spec", help="write a default config.json in the current directory")
    p.add_argument("--bundle", "-b", default=".")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return run_command(args)
    except Error as exc:
        if args.debug:
            raise
        print(f"runtime: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def run_command(args: argparse.Namespace) -> int:
    from runtime.api import Runtime
    from runtime.spec import parse_signal

    rt = Runtime(args.root or default_root())
    command = args.command
    if command in ("create", "run"):
        from runtime.spec import load_bundle

        config = load_bundle(args.bundle)
        for warning in config.warnings:
            print(f"runtime: warning: {warning}", file=sys.stderr)
        terminal = config.terminal
        options = {
            "pid_file": args.pid_file,
            "log_path": args.log_path,
            "inherit_stdio": not args.log_path and not terminal,
            "console_socket": args.console_socket,
        }
        if command == "create" or args.detach:
            (rt.create if command == "create" else rt.run)(args.id, args.bundle, **options)
            return 0
        if not terminal or args.console_socket:
            rt.run(args.id, args.bundle, **options)
            try:
                result = rt.wait(args.id) or {}
            finally:
                rt.delete(args.id, force=True)
            return int(result.get("exit_code") or 0)
        # In the foreground with a terminal: ours is joined to the container's, as runc does.
        from runtime.attach import relay, window_size

        rt.create(args.id, args.bundle, **options)
        try:
            waiter = rt.connect_waiter(args.id)
            sock = rt.attach(args.id, *window_size())
            rt.start(args.id)
            relay(sock, interactive=True)
            result = rt.wait(args.id) or {}
            waiter.close()
            sock.close()
        finally:
            rt.delete(args.id, force=True)
        return int(result.get("exit_code") or 0)
    if command == "start":
        rt.start(args.id)
    elif command == "state":
        print(json.dumps(rt.state(args.id).oci(), indent=2))
    elif command == "kill":
        try:
            sig = parse_signal(args.signal)
        except ValueError as exc:
            raise Error(str(exc)) from None
        if args.all:
            rt.kill_all(args.id, sig)
        else:
            rt.kill(args.id, sig)
    elif command == "exec":
        if not args.cmd:
            raise Error("exec: give the command to run")
        return rt.exec(args.id, args.cmd, env=tuple(args.env), user=args.user, cwd=args.cwd)
    elif command == "delete":
        rt.delete(args.id, force=args.force)
    elif command == "pause":
        rt.pause(args.id)
    elif command == "resume":
        rt.resume(args.id)
    elif command == "list":
        from runtime.state import Unreadable

        unreadable: list[Unreadable] = []
        states = rt.list(unreadable)
        for broken in unreadable:
            print(f"runtime: warning: {broken}", file=sys.stderr)
        if args.format == "json":
            print(json.dumps([s.details() for s in states], indent=2))
        else:
            print(f"{'ID':20} {'PID':>8} {'STATUS':10} {'BUNDLE':40} CREATED")
            for s in states:
                d = s.details()
                print(f"{s.id:20} {d['pid']:>8} {s.status:10} {s.bundle:40} {d['created']}")
    elif command == "spec":
        from runtime.specgen import default_spec, write_bundle

        path = Path(args.bundle) / "config.json"
        if path.exists():
            raise Error(f"{path} already exists")
        write_bundle(Path(args.bundle), default_spec(["sh"]))
    return 0
