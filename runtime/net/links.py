"""Docker's legacy-link environment variables, pure logic.

For ``--link db:database`` the container gets, from the linked container's address, exposed
ports and environment::

    DATABASE_NAME=/web/database
    DATABASE_PORT=tcp://172.18.0.2:5432                 (the lowest exposed port)
    DATABASE_PORT_5432_TCP=tcp://172.18.0.2:5432
    DATABASE_PORT_5432_TCP_ADDR=172.18.0.2
    DATABASE_PORT_5432_TCP_PORT=5432
    DATABASE_PORT_5432_TCP_PROTO=tcp
    DATABASE_ENV_POSTGRES_DB=app                        (HOME and PATH left out)
"""

from __future__ import annotations

import re
from collections.abc import Iterable


def env_prefix(alias: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]", "_", alias).upper()


def parse_exposed(item: str) -> tuple[int, str]:
    """``80``, ``80/tcp`` or ``53/udp`` as (port, protocol)."""
    port, _, proto = item.partition("/")
    return int(port), (proto or "tcp").lower()


def link_env(
    alias: str, parent: str, address: str, exposed: Iterable[str], env: Iterable[str]
) -> list[str]:
    """The variables container ``parent`` gets for its link ``alias`` to a container at
    ``address`` that exposes ``exposed`` (``80/tcp``) and has the environment ``env``."""
    prefix = env_prefix(alias)
    result = [f"{prefix}_NAME=/{parent.lstrip('/')}/{alias}"]
    ports = sorted({parse_exposed(item) for item in exposed}, key=lambda p: (p[0], p[1]))
    if ports:
        port, proto = ports[0]
        result.append(f"{prefix}_PORT={proto}://{address}:{port}")
    for port, proto in ports:
        key = f"{prefix}_PORT_{port}_{proto.upper()}"
        result += [
            f"{key}={proto}://{address}:{port}",
            f"{key}_ADDR={address}",
            f"{key}_PORT={port}",
            f"{key}_PROTO={proto}",
        ]
    for item in env:
        name, sep, value = item.partition("=")
        if sep and name not in ("HOME", "PATH"):
            result.append(f"{prefix}_ENV_{name}={value}")
    return result
