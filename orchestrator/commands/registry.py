"""``pull``, ``push``, ``login`` and ``logout``: images to and from registries.

    orchestrator login localhost:5000 -u alice --password-stdin < password.txt
    orchestrator push localhost:5000/busybox:1
    orchestrator pull localhost:5000/busybox:1
    orchestrator pull localhost:5000/busybox@sha256:...
    orchestrator logout localhost:5000

Progress goes to stderr: bars redrawn in place on a terminal, one line per finished blob
elsewhere. The result (digest, status, reference) goes to stdout. Credentials live in
``<state root>/auth.json`` (0600); ``$ORCHESTRATOR_REGISTRY_AUTH`` may hold the same JSON and
then wins (see ``runtime.image.auth``).
"""

from __future__ import annotations

import argparse
import getpass
import sys
import threading
import time
from typing import TYPE_CHECKING, TextIO

from orchestrator.errors import UserError

if TYPE_CHECKING:
    from runtime.image.auth import Credentials
    from runtime.image.store import ImageStore


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("pull", help="pull an image from a registry")
    p.add_argument("reference", metavar="NAME[:TAG|@DIGEST]")
    p.add_argument(
        "--platform",
        metavar="OS/ARCH[/VARIANT]",
        help="for multi-platform images (default: this machine)",
    )
    p.add_argument("-q", "--quiet", action="store_true", help="print only the reference")
    p.set_defaults(func=pull_command)

    p = sub.add_parser("push", help="push an image to a registry")
    p.add_argument("source", metavar="NAME[:TAG]", help="the image (its name says where it goes)")
    p.add_argument("dest", nargs="?", metavar="DEST[:TAG]", help="push under this name instead")
    p.add_argument(
        "--chunk-size",
        metavar="BYTES",
        type=_size,
        help="upload blobs larger than this in chunks of this size (default: in one request)",
    )
    p.add_argument("-q", "--quiet", action="store_true", help="print only the digest")
    p.set_defaults(func=push_command)

    p = sub.add_parser("login", help="store credentials for a registry")
    p.add_argument("registry", metavar="REGISTRY", help="host[:port], e.g. localhost:5000")
    p.add_argument("-u", "--username", required=True)
    p.add_argument(
        "--password-stdin", action="store_true", help="read the password from standard input"
    )
    p.set_defaults(func=login_command)

    p = sub.add_parser("logout", help="forget the credentials of a registry")
    p.add_argument("registry", metavar="REGISTRY")
    p.set_defaults(func=logout_command)


def _size(text: str) -> int:
    units = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30}
    t = text.strip().lower().removesuffix("b").removesuffix("i")
    mult = units.get(t[-1:], 1)
    try:
        value = int(t[:-1] if t[-1:] in units else t) * mult
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid size {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError("size must be positive")
    return value


def _store(args: argparse.Namespace) -> ImageStore:
    from orchestrator.paths import images_dir, state_root
    from runtime.image.store import ImageStore

    return ImageStore(images_dir(state_root(args.root)))


def _credentials(args: argparse.Namespace) -> Credentials:
    from orchestrator.paths import state_root
    from runtime.image.auth import Credentials

    return Credentials.load(state_root(args.root))


def _progress(quiet: bool) -> LineProgress:
    if quiet:
        return LineProgress(None)
    if sys.stderr.isatty():
        return BarProgress(sys.stderr)
    return LineProgress(sys.stderr)


def pull_command(args: argparse.Namespace) -> int:
    from runtime.image.transfer import pull

    platform = _platform(args.platform) if args.platform else None
    progress = _progress(args.quiet)
    try:
        result = pull(
            _store(args),
            args.reference,
            credentials=_credentials(args),
            progress=progress,
            platform=platform,
        )
    finally:
        progress.close()
    ref = result.reference
    if args.quiet:
        print(ref.familiar)
        return 0
    if result.manifest_digest != result.digest:
        print(f"Digest: {result.digest} (platform manifest {result.manifest_digest})")
    else:
        print(f"Digest: {result.digest}")
    if result.downloaded:
        status = f"Downloaded newer image for {ref.familiar}"
    else:
        status = f"Image is up to date for {ref.familiar}"
    print(f"Status: {status} ({result.image.short_id})")
    return 0


def push_command(args: argparse.Namespace) -> int:
    from runtime.image.transfer import push

    progress = _progress(args.quiet)
    try:
        result = push(
            _store(args),
            args.source,
            args.dest,
            credentials=_credentials(args),
            progress=progress,
            chunk_size=args.chunk_size,
        )
    finally:
        progress.close()
    if args.quiet:
        print(result.digest)
    else:
        print(f"{result.reference.tag}: digest: {result.digest} size: {result.size}")
    return 0


def login_command(args: argparse.Namespace) -> int:
    from runtime.image.auth import normalize_registry
    from runtime.image.digest import parse_reference
    from runtime.image.registry import RegistryClient
    from runtime.image.transport import RegistryError

    registry = normalize_registry(args.registry)
    parse_reference(f"{registry}/x")  # a valid host[:port], or a clear error
    if args.password_stdin:
        password = sys.stdin.read().rstrip("\r\n")
    elif sys.stdin.isatty():
        password = getpass.getpass("Password: ")
    else:
        raise UserError("login: give the password on standard input with --password-stdin")
    if not password:
        raise UserError("login: empty password")
    creds = _credentials(args)
    with RegistryClient(registry, (args.username, password)) as client:
        try:
            client.ping()
        except RegistryError as exc:
            raise UserError(f"login to {registry} failed: {exc}") from None
    creds.set(registry, args.username, password)
    print("Login Succeeded")
    return 0


def logout_command(args: argparse.Namespace) -> int:
    from runtime.image.auth import normalize_registry

    registry = normalize_registry(args.registry)
    if _credentials(args).remove(registry):
        print(f"Removing login credentials for {registry}")
    else:
        print(f"Not logged in to {registry}")
    return 0


def _platform(text: str) -> tuple[str, str, str | None]:
    parts = text.split("/")
    if len(parts) not in (2, 3) or not all(parts):
        raise UserError(f"invalid platform {text!r}: expected OS/ARCH[/VARIANT]")
    return parts[0], parts[1], parts[2] if len(parts) == 3 else None


# -- progress -----------------------------------------------------------------------------------------


def human(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    raise AssertionError


class LineProgress:
    """One line per finished blob (logs, pipes); nothing at all when ``out`` is None."""

    def __init__(self, out: TextIO | None) -> None:
        self.out = out
        self._lock = threading.Lock()
        self._items: dict[str, list[float]] = {}  # key -> [done, total, started]

    def start(self, key: str, action: str, total: int | None) -> None:
        with self._lock:
            self._items[key] = [0, total or 0, time.monotonic()]

    def advance(self, key: str, n: int) -> None:
        with self._lock:
            item = self._items.get(key)
            if item is not None:
                item[0] += n

    def finish(self, key: str, status: str) -> None:
        with self._lock:
            item = self._items.get(key)
            detail = ""
            if item is not None and item[0]:
                detail = f" ({human(item[0])} in {time.monotonic() - item[2]:.1f}s)"
            self._emit(f"{key}: {status}{detail}")

    def _emit(self, line: str) -> None:
        if self.out is not None:
            print(line, file=self.out, flush=True)

    def close(self) -> None:
        pass


class BarProgress(LineProgress):
    """Bars redrawn in place on a terminal, one line per blob, at most ten times a second."""

    WIDTH = 30

    def __init__(self, out: TextIO) -> None:
        super().__init__(out)
        self._order: list[str] = []
        self._status: dict[str, str] = {}
        self._finished: set[str] = set()
        self._drawn = 0
        self._last = 0.0

    def start(self, key: str, action: str, total: int | None) -> None:
        super().start(key, action, total)
        with self._lock:
            if key not in self._status:
                self._order.append(key)
            self._status[key] = action
            self._draw(force=True)

    def advance(self, key: str, n: int) -> None:
        super().advance(key, n)
        with self._lock:
            self._draw(force=False)

    def finish(self, key: str, status: str) -> None:
        with self._lock:
            if key not in self._status:
                self._order.append(key)
            self._status[key] = status
            self._finished.add(key)
            self._draw(force=True)

    def _line(self, key: str) -> str:
        status = self._status[key]
        item = self._items.get(key)
        if item is None or not item[1]:
            return f"{key}: {status}"
        if key in self._finished:
            return f"{key}: {status} ({human(item[0])})"
        done, total = item[0], item[1]
        filled = int(self.WIDTH * min(done / total, 1.0))
        bar = "=" * filled + (">" if filled < self.WIDTH else "") + " " * (self.WIDTH - filled - 1)
        return f"{key}: {status:<20} [{bar[: self.WIDTH]}] {human(done)}/{human(total)}"

    def _draw(self, *, force: bool) -> None:
        now = time.monotonic()
        if not force and now - self._last < 0.1:
            return
        self._last = now
        assert self.out is not None
        text = f"\x1b[{self._drawn}A" if self._drawn else ""
        text += "".join(f"\x1b[2K{self._line(k)}\n" for k in self._order)
        self._drawn = len(self._order)
        self.out.write(text)
        self.out.flush()
