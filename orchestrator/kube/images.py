"""Image names in the cluster: a service's image as it is, or, for an image built on this
machine, the name it gets in the registry given with ``--registry`` (and the push that puts it
there)."""

from __future__ import annotations

from orchestrator.errors import UserError
from orchestrator.kube.base import Notes, Push
from orchestrator.stack.model import Service
from runtime.image.digest import InvalidReference, parse_reference


def check_registry(prefix: str) -> str:
    """``--registry``: ``HOST[:PORT][/PATH]``, without scheme; the trailing ``/`` dropped."""
    text = prefix.strip().rstrip("/")
    if not text or "://" in text or any(c.isspace() for c in text) or "@" in text:
        raise UserError(
            f"--registry {prefix!r} must be HOST[:PORT][/PATH], such as registry.example.com/team"
        )
    try:
        parse_reference(text + "/x", default_tag=False)
    except InvalidReference as exc:
        raise UserError(f"--registry {prefix!r} is not a registry prefix: {exc}") from None
    return text


def local_image(project: str, service: Service) -> str:
    """The image a service runs: its ``image``, or what building it is named (Compose's
    ``PROJECT-SERVICE``)."""
    if service.image is not None:
        return service.image
    return f"{project}-{service.name}".lower()


def cluster_image(
    project: str, service: Service, registry: str | None, notes: Notes, pushes: list[Push]
) -> str:
    """The image reference the pod names; records the push a built image needs."""
    local = local_image(project, service)
    if service.build is None:
        return local
    try:
        ref = parse_reference(local)
    except InvalidReference as exc:
        raise UserError(f"services.{service.name}.image: {exc}") from None
    if registry is None:
        notes.service(
            service.name,
            "build",
            f"the image {local!r} is built on this machine and no cluster can pull it: "
            "pass --registry PREFIX to name it in a registry and push it there",
        )
        return local
    path = ref.path.removeprefix("library/") if ref.domain == "docker.io" else ref.path
    remote = f"{registry}/{path}"
    if ref.tag is not None:
        remote += f":{ref.tag}"
    if not any(p.local == ref.familiar and p.remote == remote for p in pushes):
        pushes.append(Push(service.name, ref.familiar, remote))
    return remote
