"""The wire formats between the runtime's processes, in one place, with one version.

Who talks to whom:

- a client (the CLI, the supervisor) to the **fork server** of a runtime root, over
  ``<root>/forkserver.<VERSION>.sock`` (a stream socket): one request per connection, its first
  line the operation:

  ``launch``  + a ``LaunchRequest`` (two more lines: the request, the config JSON), with the
              caller's stdio as SCM_RIGHTS when the container inherits it. The answer, on the
              same connection, comes from the monitor (or a pre-made init): ``{"pid", "monitor_pid"}``
              or ``{"error"}``.
  ``enter``   + an ``EnterRequest`` (one more line), with stdio for an exec. The answer comes
              from a fresh child of the server (runtime.enter): ``{"terminal": true}`` with the
              terminal's master, ``{"socket": true}`` with a socket, then ``{"exit_code"}`` or
              ``{"error"}``; the caller may send ``{"signal": N}`` lines meanwhile. A ``mount``
              or ``unmount`` job answers ``{"done": true}`` or ``{"error"}``.
  ``ping``    answered ``{"pong": PID, "pool": READY}``.
  ``stop``    ends the server.

- a client to a container's **monitor**, over ``monitor.sock`` in the container's state
  directory: a client that sends nothing is a *waiter* and receives the exit record (one JSON
  line, ``ExitRecord``) when the container ends; ``attach ROWS COLS`` joins its terminal
  (acknowledged ``attached``); ``stdin`` feeds its input.

- between a monitor, its helper, the setup child and the init: JSON lines over pipes and socket
  pairs (runtime.channel), private to one start, never seen by another version.

A fork server of another version has another socket name, so it is never spoken to: the version
is bumped whenever one of these formats changes.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any, TypedDict

VERSION = 4
FORK_SERVER_SOCKET = f"forkserver.{VERSION}.sock"
MONITOR_SOCKET = "monitor.sock"
MAX_REQUEST = 1024 * 1024

# fork server operations (the first line of a request)
LAUNCH, ENTER, PING, STOP = b"launch", b"enter", b"ping", b"stop"

# monitor socket commands, and the acknowledgement of an attach
ATTACH, STDIN, ATTACHED = b"attach", b"stdin", b"attached\n"


class ExitRecord(TypedDict):
    """What a monitor records in exit.json and tells its waiters."""

    exit_code: int | None
    signal: int | None
    oom_killed: bool
    finished: str | None


def encode(**message: Any) -> bytes:
    """One message: a JSON object on one line."""
    return json.dumps(message).encode() + b"\n"


@dataclass(frozen=True)
class EnterRequest:
    """Work inside a running container (runtime.enter): ``job`` is ``exec`` (with ``exec``:
    args, env, user, cwd, tty, window), ``socket`` (with ``socket``: family, type, proto),
    ``mount`` or ``unmount`` (with ``mount``: runtime.hotmount.MountSpec as a dict);
    ``target`` names the container (runtime.enter.Target as a dict)."""

    job: str
    target: dict[str, Any]
    exec: dict[str, Any] | None = None
    socket: list[int] | None = field(default=None)
    mount: dict[str, Any] | None = None

    def to_wire(self) -> bytes:
        return ENTER + b"\n" + json.dumps(asdict(self)).encode() + b"\n"

    @classmethod
    def from_wire(cls, data: bytes) -> EnterRequest:
        _, line, _ = data.split(b"\n", 2)
        raw = json.loads(line)
        return cls(
            job=str(raw["job"]),
            target=dict(raw["target"]),
            exec=raw.get("exec"),
            socket=raw.get("socket"),
            mount=raw.get("mount"),
        )


def launch_to_wire(
    request: dict[str, Any], config: dict[str, Any], config_text: bytes | None = None
) -> bytes:
    """A launch: ``{id, bundle, directory, options}`` and the config JSON, a line each
    (``config_text``: the config as one line of JSON already)."""
    text = config_text if config_text is not None else json.dumps(config).encode()
    return b"%s\n%s\n%s\n" % (LAUNCH, json.dumps(request).encode(), text)


def launch_from_wire(data: bytes) -> tuple[dict[str, Any], bytes]:
    """The request dict and the config's JSON text of a launch. The request is parsed in the
    monitor, the config by whoever does the start (a helper, a pre-made init): what a monitor
    parses stays in its memory as long as its container runs."""
    _, request_line, config_line = data.split(b"\n", 2)
    return json.loads(request_line), config_line


def lines_expected(op: bytes) -> int:
    """How many newline-ended lines a complete request of ``op`` has (the op's included)."""
    return {LAUNCH: 3, ENTER: 2}.get(op, 1)
