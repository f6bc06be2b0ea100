"""Who the container runs as and what it may do: ``user``, ``read_only``, ``cap_add`` and
``cap_drop``, ``no-new-privileges``, ``seccomp``, and the pod's ``sysctls``."""

from __future__ import annotations

import re
from typing import Any

from orchestrator.kube.base import Context
from orchestrator.stack.model import Service

# Sysctls the kubelet allows without --allowed-unsafe-sysctls (namespaced and isolated).
SAFE_SYSCTLS = frozenset(
    {
        "kernel.shm_rmid_forced",
        "net.ipv4.ip_local_port_range",
        "net.ipv4.tcp_syncookies",
        "net.ipv4.ping_group_range",
        "net.ipv4.ip_unprivileged_port_start",
        "net.ipv4.ip_local_reserved_ports",
        "net.ipv4.tcp_keepalive_time",
        "net.ipv4.tcp_fin_timeout",
        "net.ipv4.tcp_keepalive_intvl",
        "net.ipv4.tcp_keepalive_probes",
        "net.ipv4.tcp_rmem",
        "net.ipv4.tcp_wmem",
    }
)
_ID = re.compile(r"[0-9]{1,10}")


def container_security(ctx: Context, service: Service) -> dict[str, Any]:
    sc: dict[str, Any] = {}
    if service.user is not None:
        user, _, group = service.user.partition(":")
        uid = "0" if user == "root" else user
        gid = "0" if group == "root" else group
        if _ID.fullmatch(uid):
            sc["runAsUser"] = int(uid)
        if gid and _ID.fullmatch(gid):
            sc["runAsGroup"] = int(gid)
        names = [n for n in (uid, gid) if n and not _ID.fullmatch(n)]
        if names:
            ctx.notes.service(
                service.name,
                "user",
                f"{', '.join(repr(n) for n in names)}: Kubernetes takes numeric user and group "
                "IDs only; the image's default is used instead (write the numbers)",
            )
    if service.no_new_privileges:
        sc["allowPrivilegeEscalation"] = False
    if service.seccomp == "unconfined":
        sc["seccompProfile"] = {"type": "Unconfined"}
    elif service.seccomp is not None:
        sc["seccompProfile"] = {"type": "RuntimeDefault"}
        ctx.notes.service(
            service.name,
            "security_opt",
            f"seccomp profile {service.seccomp}: a Localhost profile must be installed on every "
            "node (securityContext.seccompProfile.localhostProfile); RuntimeDefault is used",
        )
    caps: dict[str, list[str]] = {}
    if service.cap_add:
        caps["add"] = list(service.cap_add)
    if service.cap_drop:
        caps["drop"] = list(service.cap_drop)
    if caps:
        sc["capabilities"] = caps
    if service.read_only:
        sc["readOnlyRootFilesystem"] = True
    return sc


def pod_sysctls(ctx: Context, service: Service) -> list[dict[str, str]]:
    unsafe = [k for k in service.sysctls if k not in SAFE_SYSCTLS]
    for key in unsafe:
        ctx.notes.service(
            service.name,
            f"sysctls.{key}",
            "is not a safe sysctl: the kubelet must allow it (--allowed-unsafe-sysctls), or "
            "the pod is refused",
        )
    return [{"name": k, "value": v} for k, v in service.sysctls.items()]
