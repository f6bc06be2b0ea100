"""The model's units in Kubernetes' spelling: bytes as quantities (``512Mi``), CPUs as
millicores (``1500m``), nanoseconds as whole seconds (rounded up: Kubernetes counts seconds)."""

from __future__ import annotations

_BINARY = (
    ("Ei", 1 << 60),
    ("Pi", 1 << 50),
    ("Ti", 1 << 40),
    ("Gi", 1 << 30),
    ("Mi", 1 << 20),
    ("Ki", 1 << 10),
)


def memory_quantity(size: int) -> str:
    """Bytes in the largest binary unit that divides them exactly."""
    for suffix, unit in _BINARY:
        if size >= unit and size % unit == 0:
            return f"{size // unit}{suffix}"
    return str(size)


def cpu_quantity(cpus: float) -> str:
    """``1.5`` -> ``1500m``, ``2.0`` -> ``2`` (Kubernetes keeps millicores at most)."""
    milli = max(1, round(cpus * 1000))
    return str(milli // 1000) if milli % 1000 == 0 else f"{milli}m"


def seconds(ns: int, minimum: int = 1) -> int:
    """Nanoseconds as whole seconds, rounded up, at least ``minimum``."""
    return max(minimum, -(-ns // 1_000_000_000))
