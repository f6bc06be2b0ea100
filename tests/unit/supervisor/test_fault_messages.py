"""The one-line messages of host faults (orchestrator.supervisor.faults)."""

from __future__ import annotations

import errno
import sqlite3

from orchestrator.supervisor.faults import describe, is_host_fault


def test_a_full_disk_is_a_host_fault_said_with_its_file() -> None:
    exc = OSError(errno.ENOSPC, "No space left on device", "/var/lib/x/state.json")
    assert is_host_fault(exc)
    assert describe(exc) == "No space left on device: /var/lib/x/state.json"


def test_the_database_is_named() -> None:
    exc = sqlite3.OperationalError("database or disk is full")
    assert is_host_fault(exc)
    assert describe(exc) == "the supervisor's database: database or disk is full"


def test_a_bug_is_no_host_fault() -> None:
    assert not is_host_fault(KeyError("x"))
    assert not is_host_fault(OSError(errno.ENOENT, "No such file or directory"))
    assert describe(ValueError()) == "ValueError"
