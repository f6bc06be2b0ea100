"""Docker-shaped fields for ``orchestrator inspect``, so that ``inspect -f`` templates written
for Docker work: ``{{.State.Status}}``, ``{{.State.Pid}}``, ``{{.State.ExitCode}}``,
``{{.Name}}``, ``{{.Config.Image}}``, ``{{.NetworkSettings.Networks}}``... They sit next to our
own (lower-case) keys in the same object."""

from __future__ import annotations

from typing import Any

ZERO_TIME = "0001-01-01T00:00:00Z"


def fields(
    container: Any,
    status: dict[str, Any],
    addresses: dict[str, str],
    ports: list[Any],
    command: list[str],
    image_config: dict[str, Any],
    supervised: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """``supervised``: what the supervisor has recorded of it (orchestrator.keep)."""
    record = container.record
    options = record.get("options") or {}
    run_config = image_config.get("config") or {}
    state = status.get("state")
    checked = record.get("healthcheck")  # the one the supervisor runs (flags over image)
    healthcheck = checked if "healthcheck" in record else run_config.get("Healthcheck")
    docker_state: dict[str, Any] = {
        "Status": state,
        "Running": state in ("running", "paused"),
        "Paused": state == "paused",
        "Restarting": False,
        "OOMKilled": bool(status.get("oom_killed")),
        "Dead": False,
        "Pid": int(status.get("pid") or 0),
        "ExitCode": int(status.get("exit_code") or 0),
        "Error": "exit status unknown" if status.get("exit_unknown") else "",
        "StartedAt": status.get("started") or ZERO_TIME,
        "FinishedAt": status.get("finished") or ZERO_TIME,
    }
    if checked and state in ("running", "paused"):
        # The supervisor runs it (orchestrator.keep) and records the verdict.
        docker_state["Health"] = {
            "Status": (supervised or {}).get("health") or "starting",
            "FailingStreak": 0,
            "Log": [],
        }
    network = str(options.get("network") or "none")
    env = list(run_config.get("Env") or []) + list(options.get("env") or [])
    return {
        "Id": container.id,
        "Name": "/" + container.name,
        "Created": record.get("created"),
        "Path": command[0] if command else "",
        "Args": command[1:],
        "Image": record.get("image_id"),
        "State": docker_state,
        "RestartCount": int((supervised or {}).get("restart_count") or 0),
        "Config": {
            "Image": record.get("image"),
            "Cmd": options.get("command") or run_config.get("Cmd"),
            "Entrypoint": options.get("entrypoint") or run_config.get("Entrypoint"),
            "Env": env,
            "Labels": dict(options.get("labels") or {}),
            "Hostname": options.get("hostname") or container.id[:12],
            "Domainname": options.get("domainname") or "",
            "User": options.get("user") or run_config.get("User") or "",
            "WorkingDir": options.get("workdir") or run_config.get("WorkingDir") or "",
            "Tty": bool(options.get("tty")),
            "OpenStdin": bool(options.get("interactive")),
            "StopSignal": options.get("stop_signal") or run_config.get("StopSignal") or "SIGTERM",
            "Healthcheck": healthcheck,
        },
        "HostConfig": {
            "NetworkMode": network,
            "AutoRemove": bool(options.get("auto_remove")),
            "ReadonlyRootfs": bool(options.get("read_only")),
            "Memory": options.get("memory") or 0,
            "MemorySwap": options.get("memory_swap") or 0,
            "NanoCpus": int((options.get("cpus") or 0) * 1e9),
            "CpuShares": options.get("cpu_shares") or 0,
            "PidsLimit": options.get("pids_limit"),
            "CapAdd": options.get("cap_add") or None,
            "CapDrop": options.get("cap_drop") or None,
            "Init": bool(options.get("init")),
        },
        "Mounts": [_mount(m) for m in record.get("mounts") or []],
        "NetworkSettings": {
            "Networks": {name: {"IPAddress": ip} for name, ip in addresses.items()},
            "IPAddress": next(iter(addresses.values()), ""),
            "Ports": _ports(ports),
        },
    }


def _mount(raw: dict[str, Any]) -> dict[str, Any]:
    volume = raw.get("type") == "volume"
    return {
        "Type": raw.get("type"),
        "Name": raw.get("source") if volume else None,
        "Source": raw.get("host_path") if volume else raw.get("source"),
        "Destination": raw.get("target"),
        "RW": not raw.get("read_only", False),
    }


def _ports(bindings: list[Any]) -> dict[str, list[dict[str, str]]]:
    out: dict[str, list[dict[str, str]]] = {}
    for b in bindings:
        out.setdefault(f"{b.port}/{b.protocol}", []).append(
            {"HostIp": b.host_ip or "0.0.0.0", "HostPort": str(b.host_port)}
        )
    return out
