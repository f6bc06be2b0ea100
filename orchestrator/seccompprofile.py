"""The seccomp profile of a container the orchestrator makes: Docker's default, none, or the
user's, as the ``linux.seccomp`` of its config.json.

    section = seccompprofile.oci_section(description.seccomp, bounding_capabilities)

``choice`` (``ContainerDescription.seccomp``): None for Docker's default profile,
``"unconfined"`` for none, or the JSON text of a profile (``--security-opt seccomp=FILE``, a
stack's ``security_opt: [seccomp:FILE]``, read when the container is described, as Docker does).
A profile is in Docker's format (``archMap`` or ``architectures``; ``syscalls`` entries with
``names`` or ``name``, ``action``, ``errnoRet``, ``args``, and ``includes``/``excludes`` by
capability, architecture or kernel version) or is a plain OCI ``linux.seccomp``. It becomes the
OCI section for this machine and the container's bounding capabilities the way Docker makes it
(moby/profiles seccomp/seccomp_linux.go): a call allowed only with CAP_SYS_ADMIN, say, is
allowed when the container has that capability.

The default profile is moby's ``seccomp/default.json`` (github.com/moby/profiles, Apache-2.0),
kept verbatim as data beside this module (``seccomp_default.json``). The runtime compiles the
section (runtime.seccomp).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from orchestrator.errors import UserError

UNCONFINED = "unconfined"
DEFAULT_PROFILE = Path(__file__).with_name("seccomp_default.json")

# this machine -> (libseccomp's name, which Docker's "arches" filters use; OCI's name)
_MACHINES = {
    "x86_64": ("amd64", "SCMP_ARCH_X86_64"),
    "aarch64": ("arm64", "SCMP_ARCH_AARCH64"),
}
_OCI_KEYS = ("names", "action", "errnoRet", "args")


def read_choice(value: str, where: str) -> str:
    """The ``seccomp=`` value of a security option: ``unconfined``, or a profile file whose
    text is returned (checked to be a JSON object)."""
    if value == UNCONFINED:
        return UNCONFINED
    if not value:
        raise UserError(f"{where}: seccomp= needs 'unconfined' or a profile file")
    try:
        text = Path(value).read_text()
    except OSError as exc:
        raise UserError(f"{where}: cannot read seccomp profile {value}: {exc.strerror}") from None
    try:
        if not isinstance(json.loads(text), dict):
            raise ValueError("not a JSON object")
    except ValueError as exc:
        raise UserError(f"{where}: seccomp profile {value} is not valid: {exc}") from None
    return text


def oci_section(choice: str | None, bounding: list[str]) -> dict[str, Any] | None:
    """``linux.seccomp`` for a container whose bounding set is ``bounding`` (None: unconfined).
    Docker's default profile's sections are made once per bounding set in a process and shared:
    the caller must not change them (config.json is only written from them)."""
    if choice == UNCONFINED:
        return None
    if choice is None:
        key = tuple(bounding)
        if key not in _DEFAULT_SECTIONS:
            _DEFAULT_SECTIONS[key] = _section(DEFAULT_PROFILE.read_text(), bounding)
        return _DEFAULT_SECTIONS[key]
    return _section(choice, bounding)


_DEFAULT_SECTIONS: dict[tuple[str, ...], dict[str, Any] | None] = {}


def _section(text: str, bounding: list[str]) -> dict[str, Any] | None:
    try:
        profile = json.loads(text)
    except ValueError as exc:
        raise UserError(f"seccomp profile: not valid JSON: {exc}") from None
    if not isinstance(profile, dict):
        raise UserError("seccomp profile: must be a JSON object")
    return convert(profile, bounding, os.uname().machine, _kernel())


def convert(
    profile: dict[str, Any], bounding: list[str], machine: str, kernel: tuple[int, int]
) -> dict[str, Any] | None:
    """A profile in Docker's format as the OCI section for ``machine``, the container's
    ``bounding`` capabilities and the ``kernel`` (major, minor)."""
    if not profile.get("defaultAction") and not profile.get("syscalls"):
        return None  # Docker's rule: an empty profile means no filter
    if profile.get("architectures") and profile.get("archMap"):
        raise UserError("seccomp profile: give 'architectures' or 'archMap', not both")
    arch, oci_arch = _MACHINES.get(machine, (machine, ""))
    section: dict[str, Any] = {
        k: profile[k]
        for k in ("defaultAction", "defaultErrnoRet", "architectures", "flags")
        if profile.get(k) is not None
    }
    for entry in profile.get("archMap") or []:
        if entry.get("architecture") == oci_arch:
            section["architectures"] = [oci_arch, *(entry.get("subArchitectures") or [])]
            break
    held = set(bounding)
    syscalls = []
    for call in profile.get("syscalls") or []:
        if call.get("name"):
            if call.get("names"):
                raise UserError("seccomp profile: a syscall entry has both 'name' and 'names'")
            call = {**call, "names": [call["name"]]}
        excludes, includes = call.get("excludes") or {}, call.get("includes") or {}
        if arch in (excludes.get("arches") or []):
            continue
        if any(c in held for c in excludes.get("caps") or []):
            continue
        if excludes.get("minKernel") and kernel >= _version(excludes["minKernel"]):
            continue
        if includes.get("arches") and arch not in includes["arches"]:
            continue
        if not all(c in held for c in includes.get("caps") or []):
            continue
        if includes.get("minKernel") and kernel < _version(includes["minKernel"]):
            continue
        syscalls.append({k: call[k] for k in _OCI_KEYS if call.get(k) is not None})
    section["syscalls"] = syscalls
    return section


def _version(text: str) -> tuple[int, int]:
    try:
        major, minor = [*str(text).split("."), "0"][:2]
        return int(major), int(minor)
    except ValueError:
        raise UserError(f"seccomp profile: minKernel {text!r} is not MAJOR.MINOR") from None


def _kernel() -> tuple[int, int]:
    release = os.uname().release
    parts = release.split(".")
    try:
        return int(parts[0]), int("".join(c for c in parts[1] if c.isdigit()) or 0)
    except (IndexError, ValueError):
        return (0, 0)
