"""Registry credentials: ``<state root>/auth.json`` (mode 0600), and the environment.

    creds = Credentials.load(state_root)
    creds.set("localhost:5000", "alice", "s3cret")      # what ``orchestrator login`` does
    creds.get("localhost:5000")                          # ("alice", "s3cret")
    creds.remove("localhost:5000")                       # ``orchestrator logout``

The file has the shape of Docker's ``config.json`` so that it reads familiarly::

    {"auths": {"localhost:5000": {"auth": "<base64 of user:password>"}}}

Keys are registry hosts as references name them (``localhost:5000``, ``ghcr.io``, ``docker.io``);
``https://index.docker.io/v1/`` and a scheme or a trailing slash are normalised away.

``$ORCHESTRATOR_REGISTRY_AUTH`` holds the same JSON (entries may also be written
``{"username": ..., "password": ...}``); where it names a registry it wins over the file. It is
read-only: ``login`` and ``logout`` change the file only. The file is replaced atomically (temp
file created 0600, fsync, rename), so a reader never sees half of it and it is never readable by
others, even for a moment.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runtime.errors import Error

AUTH_FILE = "auth.json"
ENV_VAR = "ORCHESTRATOR_REGISTRY_AUTH"
_HUB_ALIASES = ("index.docker.io", "registry-1.docker.io", "registry.hub.docker.com")


class AuthFileError(Error):
    """The credentials file or ``$ORCHESTRATOR_REGISTRY_AUTH`` cannot be read."""


def normalize_registry(name: str) -> str:
    """``https://index.docker.io/v1/`` -> ``docker.io``; ``http://localhost:5000/`` ->
    ``localhost:5000``."""
    text = name.strip()
    for scheme in ("https://", "http://"):
        if text.startswith(scheme):
            text = text[len(scheme) :]
    text = text.split("/", 1)[0]
    lowered = text.lower()
    if lowered in _HUB_ALIASES:
        return "docker.io"
    return lowered


@dataclass
class Credentials:
    """Credentials per registry, from the file under the state root and the environment."""

    path: Path | None
    _file: dict[str, tuple[str, str]] = field(default_factory=dict)
    _env: dict[str, tuple[str, str]] = field(default_factory=dict)

    @classmethod
    def load(cls, state_root: Path | None, env: dict[str, str] | None = None) -> Credentials:
        """Read ``<state_root>/auth.json`` (absent is empty) and ``$ORCHESTRATOR_REGISTRY_AUTH``."""
        path = Path(state_root) / AUTH_FILE if state_root is not None else None
        file_entries: dict[str, tuple[str, str]] = {}
        if path is not None:
            try:
                data = path.read_bytes()
            except FileNotFoundError:
                data = b""
            except OSError as exc:
                raise AuthFileError(f"cannot read {path}: {exc.strerror}") from None
            if data.strip():
                file_entries = _parse(data, str(path))
        environ = os.environ if env is None else env
        env_entries = _parse(environ[ENV_VAR].encode(), ENV_VAR) if environ.get(ENV_VAR) else {}
        return cls(path, file_entries, env_entries)

    def get(self, registry: str) -> tuple[str, str] | None:
        key = normalize_registry(registry)
        return self._env.get(key) or self._file.get(key)

    def registries(self) -> list[str]:
        return sorted(set(self._file) | set(self._env))

    def set(self, registry: str, username: str, password: str) -> None:
        if not username or ":" in username:
            raise AuthFileError("the user name must be non-empty and contain no ':'")
        self._file[normalize_registry(registry)] = (username, password)
        self._save()

    def remove(self, registry: str) -> bool:
        """Forget the stored credentials of ``registry``; false if there were none."""
        if self._file.pop(normalize_registry(registry), None) is None:
            return False
        self._save()
        return True

    def _save(self) -> None:
        if self.path is None:
            raise AuthFileError("no state root to store credentials in")
        auths = {
            key: {"auth": base64.b64encode(f"{user}:{password}".encode()).decode()}
            for key, (user, password) in sorted(self._file.items())
        }
        data = json.dumps({"auths": auths}, indent=1).encode() + b"\n"
        _write_private(self.path, data)


def _parse(data: bytes, where: str) -> dict[str, tuple[str, str]]:
    try:
        doc: Any = json.loads(data)
    except ValueError:
        raise AuthFileError(f"{where} is not valid JSON") from None
    auths = doc.get("auths") if isinstance(doc, dict) else None
    if not isinstance(auths, dict):
        raise AuthFileError(f'{where}: expected {{"auths": {{REGISTRY: {{...}}}}}}')
    out: dict[str, tuple[str, str]] = {}
    for registry, entry in auths.items():
        if not isinstance(entry, dict):
            raise AuthFileError(f"{where}: the entry for {registry!r} is not an object")
        if isinstance(entry.get("auth"), str):
            try:
                decoded = base64.b64decode(entry["auth"], validate=True).decode()
            except (binascii.Error, UnicodeDecodeError):
                raise AuthFileError(f"{where}: the entry for {registry!r} is not base64") from None
            user, sep, password = decoded.partition(":")
            if not sep:
                raise AuthFileError(f"{where}: the entry for {registry!r} is not user:password")
        elif isinstance(entry.get("username"), str) and isinstance(entry.get("password"), str):
            user, password = entry["username"], entry["password"]
        else:
            raise AuthFileError(f"{where}: the entry for {registry!r} has no credentials")
        out[normalize_registry(str(registry))] = (user, password)
    return out


def _write_private(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        raise AuthFileError(f"cannot write {path}: {exc.strerror}") from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
