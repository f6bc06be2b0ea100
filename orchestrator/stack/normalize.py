"""The normalised form of a stack, as ``orchestrator config`` prints it, and config hashes.

    stack_dict(stack)       # plain dict in Compose's normalised shape (long syntax everywhere)
    config_hash(service)    # sha256 hex of what decides whether its containers must be recreated

The normalised form is itself a valid stack file: loading it again gives the same model and the
same hashes. Its shape follows ``docker compose config``: ports, volumes, secrets and configs in
long syntax, ``environment``/``labels`` as mappings, ``command`` as a list, durations written the Go
way (``1m30s``), relative paths made absolute, ``$`` written ``$$``. One spelling per setting:
memory, CPU and pids limits appear under ``deploy.resources``, replicas under ``deploy.replicas``.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from orchestrator.durations import format_duration
from orchestrator.stack.model import (
    FileObject,
    FileRef,
    Mount,
    Network,
    Port,
    Service,
    Stack,
    Volume,
)

# Settings that do not change a running container: changing them never recreates it.
HASH_EXCLUDED = ("build", "profiles", "depends_on", "deploy.replicas")


def stack_dict(stack: Stack, services: list[str] | None = None) -> dict[str, Any]:
    names = services if services is not None else list(stack.services)
    out: dict[str, Any] = {"name": stack.name}
    out["services"] = {n: service_dict(stack.services[n]) for n in sorted(names)}
    used_networks = {net.name for n in names for net in stack.services[n].networks}
    networks = {
        k: network_dict(v)
        for k, v in stack.networks.items()
        if k != "default" or k in used_networks
    }
    if networks:
        out["networks"] = networks
    if stack.volumes:
        out["volumes"] = {k: volume_dict(v) for k, v in stack.volumes.items()}
    if stack.secrets:
        out["secrets"] = {k: file_object_dict(v, secret=True) for k, v in stack.secrets.items()}
    if stack.configs:
        out["configs"] = {k: file_object_dict(v, secret=False) for k, v in stack.configs.items()}
    out.update(stack.extensions)
    escaped: dict[str, Any] = escape(out)
    return escaped


def config_hash(service: Service) -> str:
    data = service_dict(service)
    for dotted in HASH_EXCLUDED:
        node = data
        *parents, last = dotted.split(".")
        for p in parents:
            node = node.get(p, {})
        node.pop(last, None)
    data.pop("deploy", None) if data.get("deploy") == {} else None
    data = {k: v for k, v in data.items() if not k.startswith("x-")}
    blob = json.dumps(data, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


def escape(node: Any) -> Any:
    """Write every ``$`` in a string value as ``$$`` so the output loads back unchanged."""
    if isinstance(node, str):
        return node.replace("$", "$$")
    if isinstance(node, dict):
        return {k: escape(v) for k, v in node.items()}
    if isinstance(node, list):
        return [escape(v) for v in node]
    return node


def service_dict(s: Service) -> dict[str, Any]:
    d: dict[str, Any] = {}
    if s.image is not None:
        d["image"] = s.image
    if s.build is not None:
        b: dict[str, Any] = {"context": s.build.context}
        if s.build.dockerfile:
            b["dockerfile"] = s.build.dockerfile
        if s.build.args:
            b["args"] = dict(s.build.args)
        if s.build.target:
            b["target"] = s.build.target
        d["build"] = b
    if s.command is not None:
        d["command"] = list(s.command)
    if s.entrypoint is not None:
        d["entrypoint"] = list(s.entrypoint)
    if s.environment:
        d["environment"] = dict(s.environment)
    for key in ("working_dir", "user", "hostname", "domainname", "container_name"):
        value = getattr(s, key)
        if value is not None:
            d[key] = value
    if s.labels:
        d["labels"] = dict(s.labels)
    if s.depends_on:
        d["depends_on"] = {
            dep.service: {"condition": dep.condition, "required": dep.required}
            | ({"restart": True} if dep.restart else {})
            for dep in s.depends_on
        }
    if s.links:
        d["links"] = [
            link.service if link.alias == link.service else f"{link.service}:{link.alias}"
            for link in s.links
        ]
    if s.volumes:
        d["volumes"] = [mount_dict(m) for m in s.volumes]
    if s.volumes_from:
        d["volumes_from"] = [
            ("container:" if v.kind == "container" else "")
            + v.source
            + (":ro" if v.read_only else "")
            for v in s.volumes_from
        ]
    if s.tmpfs:
        d["tmpfs"] = [_tmpfs_text(m) for m in s.tmpfs]
    if s.ports:
        d["ports"] = [port_dict(p) for p in s.ports]
    if s.expose:
        d["expose"] = list(s.expose)
    if s.network_mode is not None:
        d["network_mode"] = s.network_mode
    if s.networks:
        nets: dict[str, Any] = {}
        for n in s.networks:
            spec: dict[str, Any] = {}
            if n.aliases:
                spec["aliases"] = list(n.aliases)
            if n.ipv4_address:
                spec["ipv4_address"] = n.ipv4_address
            if n.ipv6_address:
                spec["ipv6_address"] = n.ipv6_address
            nets[n.name] = spec or None
        d["networks"] = nets
    if s.extra_hosts:
        d["extra_hosts"] = [f"{h.hostname}={h.address}" for h in s.extra_hosts]
    deploy: dict[str, Any] = {}
    r = s.restart
    if r.delay_ns is not None or r.window_ns is not None:
        policy: dict[str, Any] = {
            "condition": {"no": "none", "on-failure": "on-failure"}.get(r.name, "any")
        }
        if r.max_attempts is not None:
            policy["max_attempts"] = r.max_attempts
        if r.delay_ns is not None:
            policy["delay"] = format_duration(r.delay_ns)
        if r.window_ns is not None:
            policy["window"] = format_duration(r.window_ns)
        deploy["restart_policy"] = policy
    elif r.name != "no":
        d["restart"] = r.name + (f":{r.max_attempts}" if r.max_attempts is not None else "")
    if s.replicas != 1:
        deploy["replicas"] = s.replicas
    res = s.resources
    limits = {
        k: v
        for k, v in (("cpus", res.cpus), ("memory", res.memory_limit), ("pids", res.pids_limit))
        if v is not None
    }
    reservations = {
        k: v
        for k, v in (("cpus", res.cpu_reservation), ("memory", res.memory_reservation))
        if v is not None
    }
    if limits or reservations:
        deploy["resources"] = ({"limits": limits} if limits else {}) | (
            {"reservations": reservations} if reservations else {}
        )
    if deploy:
        d["deploy"] = deploy
    for key, value in (
        ("memswap_limit", res.memswap_limit),
        ("cpu_shares", res.cpu_shares),
        ("cpu_quota", res.cpu_quota),
        ("cpu_period", res.cpu_period),
        ("cpuset", res.cpuset),
        ("shm_size", res.shm_size),
    ):
        if value is not None:
            d[key] = value
    if s.ulimits:
        d["ulimits"] = {
            u.name: u.soft if u.soft == u.hard else {"soft": u.soft, "hard": u.hard}
            for u in s.ulimits
        }
    if s.healthcheck is not None:
        h = s.healthcheck
        if h.disable:
            d["healthcheck"] = {"disable": True}
        else:
            hc: dict[str, Any] = {"test": list(h.test)}
            for key in ("interval", "timeout", "start_period", "start_interval"):
                ns = getattr(h, f"{key}_ns")
                if ns is not None:
                    hc[key] = format_duration(ns)
            if h.retries is not None:
                hc["retries"] = h.retries
            d["healthcheck"] = hc
    if s.stop_signal is not None:
        d["stop_signal"] = s.stop_signal
    if s.stop_grace_period_ns is not None:
        d["stop_grace_period"] = format_duration(s.stop_grace_period_ns)
    if s.init is not None:
        d["init"] = s.init
    for key in ("read_only", "tty", "stdin_open"):
        if getattr(s, key):
            d[key] = True
    if s.cap_add:
        d["cap_add"] = list(s.cap_add)
    if s.cap_drop:
        d["cap_drop"] = list(s.cap_drop)
    if s.no_new_privileges:
        d["security_opt"] = ["no-new-privileges:true"]
    if s.seccomp:
        d.setdefault("security_opt", []).append(f"seccomp:{s.seccomp}")
    if s.sysctls:
        d["sysctls"] = dict(s.sysctls)
    if s.profiles:
        d["profiles"] = list(s.profiles)
    if s.platform is not None:
        d["platform"] = s.platform
    if s.secrets:
        d["secrets"] = [file_ref_dict(f) for f in s.secrets]
    if s.configs:
        d["configs"] = [file_ref_dict(f) for f in s.configs]
    d.update(s.extensions)
    return d


def port_dict(p: Port) -> dict[str, Any]:
    d: dict[str, Any] = {"mode": p.mode, "target": p.target}
    if p.published is not None:
        d["published"] = p.published
    if p.host_ip is not None:
        d["host_ip"] = p.host_ip
    d["protocol"] = p.protocol
    if p.name is not None:
        d["name"] = p.name
    if p.app_protocol is not None:
        d["app_protocol"] = p.app_protocol
    return d


def mount_dict(m: Mount) -> dict[str, Any]:
    d: dict[str, Any] = {"type": m.type}
    if m.source is not None:
        d["source"] = m.source
    d["target"] = m.target
    if m.read_only:
        d["read_only"] = True
    if m.type == "bind":
        bind: dict[str, Any] = {"create_host_path": m.create_host_path}
        if m.propagation:
            bind["propagation"] = m.propagation
        if m.selinux:
            bind["selinux"] = m.selinux
        d["bind"] = bind
    elif m.type == "volume":
        vol: dict[str, Any] = {}
        if m.nocopy:
            vol["nocopy"] = True
        if m.subpath:
            vol["subpath"] = m.subpath
        d["volume"] = vol
    else:
        tmp: dict[str, Any] = {}
        if m.tmpfs_size is not None:
            tmp["size"] = m.tmpfs_size
        if m.tmpfs_mode is not None:
            tmp["mode"] = f"{m.tmpfs_mode:04o}"
        if tmp:
            d["tmpfs"] = tmp
    return d


def _tmpfs_text(m: Mount) -> str:
    opts = []
    if m.read_only:
        opts.append("ro")
    if m.tmpfs_size is not None:
        opts.append(f"size={m.tmpfs_size}")
    if m.tmpfs_mode is not None:
        opts.append(f"mode={m.tmpfs_mode:04o}")
    return m.target + (":" + ",".join(opts) if opts else "")


def file_ref_dict(f: FileRef) -> dict[str, Any]:
    d: dict[str, Any] = {"source": f.source, "target": f.target}
    if f.uid is not None:
        d["uid"] = f.uid
    if f.gid is not None:
        d["gid"] = f.gid
    d["mode"] = f"{f.mode:04o}"
    return d


def network_dict(n: Network) -> dict[str, Any]:
    d: dict[str, Any] = {"name": n.name}
    if n.external:
        d["external"] = True
        return d
    if n.driver:
        d["driver"] = n.driver
    if n.driver_opts:
        d["driver_opts"] = dict(n.driver_opts)
    if n.ipam:
        d["ipam"] = {
            "config": [
                {
                    k: v
                    for k, v in (
                        ("subnet", c.subnet),
                        ("gateway", c.gateway),
                        ("ip_range", c.ip_range),
                    )
                    if v
                }
                for c in n.ipam
            ]
        }
    for key in ("internal", "enable_ipv6", "attachable"):
        if getattr(n, key):
            d[key] = True
    if n.labels:
        d["labels"] = dict(n.labels)
    return d


def volume_dict(v: Volume) -> dict[str, Any]:
    d: dict[str, Any] = {"name": v.name}
    if v.external:
        d["external"] = True
        return d
    if v.driver:
        d["driver"] = v.driver
    if v.driver_opts:
        d["driver_opts"] = dict(v.driver_opts)
    if v.labels:
        d["labels"] = dict(v.labels)
    return d


def file_object_dict(f: FileObject, *, secret: bool) -> dict[str, Any]:
    d: dict[str, Any] = {"name": f.name}
    if f.external:
        d["external"] = True
    elif f.file is not None:
        d["file"] = f.file
    elif f.environment is not None:
        d["environment"] = f.environment
    elif f.content is not None and not secret:
        d["content"] = f.content
    return d
