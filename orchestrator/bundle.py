"""The one place where a container description becomes an OCI bundle's config.json.

``orchestrator run``, a stack's containers and the Dockerfile builder's RUN steps all come
through ``build_spec``: the command and environment from the description and the image, the
user, capabilities, limits, the overlay root filesystem, the hosts files, and the annotations
that say what the container is. Networks, volumes and security options are added here too.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from orchestrator import ocimounts
from orchestrator.description import (
    ANNOTATION_IMAGE,
    ANNOTATION_NAME,
    STOP_SIGNAL_ANNOTATION,
    ContainerDescription,
)
from orchestrator.errors import UserError
from orchestrator.seccompprofile import oci_section as seccomp_section

if TYPE_CHECKING:
    from orchestrator.networks import NetworkSetup
    from runtime.image.model import Image

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# Where the init goes in the container (Docker's place for it), and where it comes from.
INIT_PATH = "/sbin/docker-init"
INIT_BINARIES = ("/usr/bin/tini-static", "/usr/bin/docker-init", "/usr/libexec/podman/catatonit")


@dataclass(frozen=True)
class RootFilesystem:
    """An overlay root: read-only layers (lowest first) under a writable upper directory."""

    lowers: tuple[str, ...]
    upper: str
    work: str


def build_spec(
    container_id: str,
    name: str,
    directory: Path,
    description: ContainerDescription,
    image: Image | None,
    rootfs: RootFilesystem,
    network: NetworkSetup | None = None,
) -> dict[str, Any]:
    """The config.json of the container ``description`` describes; ``image``'s config fills in
    what it leaves out (None: no image config, as for a build step, whose description is
    complete). Hosts files, for a container with its own network namespace, are written into
    ``directory`` and mounted from there."""
    from runtime.spec import (
        ANNOTATION_LOWERDIRS,
        ANNOTATION_UPPERDIR,
        ANNOTATION_USER,
        ANNOTATION_WORKDIR,
    )
    from runtime.specgen import default_spec

    if not rootfs.lowers:
        raise UserError(f"image {description.image} has no layers to run")
    args = command_of(description, image)
    if description.init:
        args = [INIT_PATH, "--", *args]
    link_env = network.env if network else ()
    env = merge_env(image.env if image else [], (*link_env, *description.env))
    own_network = description.network != "host"
    hostname = (network and network.hostname) or description.hostname or container_id[:12]
    spec = default_spec(
        args,
        rootfs="rootfs",
        env=env,
        cwd=description.workdir or (image.working_dir if image else "") or "/",
        hostname=hostname if own_network else None,
        network=own_network,
    )
    user = description.user if description.user is not None else (image.user if image else "")
    if user:
        spec["annotations"][ANNOTATION_USER] = user
    spec["root"]["readonly"] = description.read_only
    capability_list = capabilities(description)
    for key in ("bounding", "effective", "permitted"):
        spec["process"]["capabilities"][key] = capability_list
    spec["process"]["noNewPrivileges"] = description.no_new_privileges
    seccomp = seccomp_section(description.seccomp, capability_list)
    if seccomp is not None:
        spec["linux"]["seccomp"] = seccomp
    spec["process"]["terminal"] = description.tty
    if description.tty:
        spec["process"]["env"].append("TERM=xterm")
    spec["linux"]["resources"].update(resources(description))
    _kernel_settings(spec, description)
    _copy_files(spec, directory, description)
    spec["annotations"].update(
        {
            ANNOTATION_LOWERDIRS: json.dumps(list(rootfs.lowers)),
            ANNOTATION_UPPERDIR: rootfs.upper,
            ANNOTATION_WORKDIR: rootfs.work,
            ANNOTATION_NAME: name,
            ANNOTATION_IMAGE: description.image,
            **description.annotations(),
        }
    )
    stop_signal = description.stop_signal or (image.stop_signal if image else None)
    if stop_signal:
        spec["annotations"][STOP_SIGNAL_ANNOTATION] = stop_signal
    if own_network:
        files = Path(network.files_from) if network and network.files_from else directory
        if files == directory:
            write_network_files(
                directory, hostname, description, network.hosts if network else None
            )
        for file in ("hosts", "hostname", "resolv.conf"):
            spec["mounts"].append(
                {
                    "destination": f"/etc/{file}",
                    "type": "bind",
                    "source": str(files / file),
                    "options": ["rbind", "rprivate"],
                }
            )
    else:  # --network host: copies of the host's files (orchestrator.hostnetfiles)
        from orchestrator import hostnetfiles

        hostnetfiles.write(directory, description)
        for file in ("hosts", "hostname", "resolv.conf"):
            spec["mounts"].append(
                {
                    "destination": f"/etc/{file}",
                    "type": "bind",
                    "source": str(directory / file),
                    "options": ["rbind", "rprivate"],
                }
            )
    if description.init:
        spec["mounts"].append(
            {
                "destination": INIT_PATH,
                "type": "bind",
                "source": init_binary(),
                "options": ["bind", "ro", "nosuid", "nodev"],
            }
        )
    # Volumes, host folders and tmpfs, resolved by orchestrator.mountplan; last, because a
    # mount at /etc/hosts or /dev/shm replaces the one made above.
    ocimounts.add_to_spec(spec, description.mounts)
    return spec


def init_binary() -> str:
    """The host's static init for ``--init``/``init: true`` (Debian's tini, as Docker's
    docker-init is): static, so that it runs in any image."""
    for candidate in INIT_BINARIES:
        if os.access(candidate, os.X_OK):
            return candidate
    raise UserError(
        "--init (a service's init: true) needs a static init on the host: "
        "install Debian's tini package (/usr/bin/tini-static)"
    )


def command_of(description: ContainerDescription, image: Image | None) -> list[str]:
    """Docker's rules: the entrypoint (ours, else the image's) followed by the command (ours,
    else the image's unless we replaced the entrypoint)."""
    image_entrypoint = (image.entrypoint if image else None) or []
    entrypoint = (
        list(description.entrypoint) if description.entrypoint is not None else image_entrypoint
    )
    if description.command:
        cmd = list(description.command)
    elif description.entrypoint is not None:
        cmd = []  # a new entrypoint drops the image's Cmd, as in Docker
    else:
        cmd = (image.cmd if image else None) or []
    args = entrypoint + cmd
    if not args:
        raise UserError(f"image {description.image} has no command: give one after the image name")
    return args


def merge_env(image_env: list[str], extra: tuple[str, ...]) -> list[str]:
    """The image's environment, then ours over it; ``NAME`` alone takes the value from our own
    environment (left out when unset, as Docker does); PATH defaults to the usual one."""
    merged: dict[str, str] = {}
    for item in [*image_env, *extra]:
        key, sep, value = item.partition("=")
        if not key or "\0" in item:
            raise UserError(f"invalid environment variable {item!r}")
        if not sep:
            host_value = os.environ.get(key)
            if host_value is None:
                continue
            value = host_value
        merged[key] = value
    merged.setdefault("PATH", DEFAULT_PATH)
    return [f"{k}={v}" for k, v in merged.items()]


def capabilities(description: ContainerDescription) -> list[str]:
    """Docker's order: the default set, less what is dropped, plus what is added."""
    from runtime.linux import caps

    result = set(caps.DOCKER_DEFAULT)
    try:
        if "ALL" in (c.upper() for c in description.cap_drop):
            result = set()
        else:
            result -= set(caps.names_of(caps.mask(list(description.cap_drop))))
        if "ALL" in (c.upper() for c in description.cap_add):
            result = set(caps.NAMES)
        else:
            result |= set(caps.names_of(caps.mask(list(description.cap_add))))
    except ValueError as exc:
        raise UserError(str(exc)) from None
    return sorted(result, key=caps.NUMBERS.__getitem__)


def resources(description: ContainerDescription) -> dict[str, Any]:
    """``linux.resources`` from the description's limits."""
    result: dict[str, Any] = {}
    memory: dict[str, Any] = {}
    if description.memory is not None:
        memory["limit"] = description.memory
        # Docker's default: as much swap as memory, unless told otherwise.
        memory["swap"] = (
            description.memory_swap
            if description.memory_swap is not None
            else description.memory * 2
        )
    if description.memory_reservation is not None:
        memory["reservation"] = description.memory_reservation
    if memory:
        result["memory"] = memory
    cpu: dict[str, Any] = {}
    if description.cpus is not None:
        if description.cpus <= 0:
            raise UserError("--cpus must be more than 0")
        cpu["period"] = 100_000
        cpu["quota"] = max(1000, int(description.cpus * 100_000))
    if description.cpu_shares is not None:
        cpu["shares"] = description.cpu_shares
    if description.cpus is None and description.cpu_quota is not None:
        cpu["quota"] = description.cpu_quota
        cpu["period"] = description.cpu_period or 100_000
    elif description.cpus is None and description.cpu_period is not None:
        cpu["period"] = description.cpu_period
    if description.cpuset is not None:
        cpu["cpus"] = description.cpuset
    if cpu:
        result["cpu"] = cpu
    if description.pids_limit is not None:
        result["pids"] = {"limit": description.pids_limit}
    return result


def write_network_files(
    directory: Path,
    hostname: str,
    description: ContainerDescription | None = None,
    hosts: str | None = None,
) -> None:
    """hosts, hostname and resolv.conf, as Docker writes them; ``hosts``: the content that
    the container's networks give (orchestrator.networks), else the one of a lone container."""
    from runtime.net.hosts import host_resolv_conf, render_hosts, render_resolv

    if hosts is None:
        extra = description.extra_hosts if description else ()
        domain = description.domainname if description else None
        hosts = render_hosts(hostname, (), (), extra, domain)
    (directory / "hosts").write_text(hosts)
    (directory / "hostname").write_text(hostname + "\n")
    if description is None or description.network == "none":
        resolv = "# no network: no name servers\n"
    else:
        resolv = render_resolv(
            host_resolv_conf(), description.dns, description.dns_search, description.dns_options
        )
    (directory / "resolv.conf").write_text(resolv)


def _kernel_settings(spec: dict[str, Any], description: ContainerDescription) -> None:
    """ulimits as the process's rlimits, sysctls, the size of /dev/shm."""
    if description.ulimits:
        spec["process"]["rlimits"] = [
            {"type": f"RLIMIT_{name.upper()}", "soft": soft, "hard": hard}
            for name, soft, hard in description.ulimits
        ]
    if description.sysctls:
        spec["linux"].setdefault("sysctl", {}).update(description.sysctls)
    if description.shm_size is not None:
        for mount in spec["mounts"]:
            if mount.get("destination") == "/dev/shm":
                options = [o for o in mount.get("options", []) if not o.startswith("size=")]
                mount["options"] = [*options, f"size={description.shm_size}"]


def _copy_files(spec: dict[str, Any], directory: Path, description: ContainerDescription) -> None:
    """Secrets and configs: their content written into the container's folder when it is made,
    with their owner and mode, and bound read-only at their targets."""
    if not description.files:
        return
    folder = directory / "files"
    folder.mkdir(mode=0o700, exist_ok=True)
    for index, copy in enumerate(description.files):
        path = folder / str(index)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        try:
            os.write(fd, copy.content.encode())
            os.fchown(fd, copy.uid, copy.gid)
            os.fchmod(fd, copy.mode)
        finally:
            os.close(fd)
        spec["mounts"].append(
            {
                "destination": copy.target,
                "type": "bind",
                "source": str(path),
                "options": ["rbind", "ro", "nosuid", "nodev", "noexec", "rprivate"],
            }
        )
