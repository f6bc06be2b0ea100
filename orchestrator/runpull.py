"""``run --pull missing|always|never`` and ``create --pull``: the image pulled before the container
is made, as Docker does, when its name points at a registry (``localhost:5000/app:1``: a host
with a dot or a port, or ``localhost``). A plain name (``busybox``) would mean Docker Hub, which
this tool does not reach on its own: such an image must be imported, built or pulled by a
name with its registry."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

from orchestrator.errors import NotFoundError, UserError

if TYPE_CHECKING:
    from runtime.image.store import ImageStore


def ensure_image(root: Path, name: str, policy: str) -> None:
    from orchestrator.paths import images_dir
    from runtime.errors import NotFound
    from runtime.image.store import ImageStore

    store = ImageStore(images_dir(root))
    try:
        store.resolve(name)
        present = True
    except NotFound:
        present = False
    except Exception:
        return  # a malformed name and such: the creation names the problem
    if policy == "never" and not present:
        raise NotFoundError(f"No such image: {name}")
    if policy == "missing" and present:
        return
    registry = _registry_of(name)
    if registry is None:
        if policy == "always":
            raise UserError(f"--pull always: {name} names no registry (give HOST[:PORT]/{name})")
        return  # missing: the creation says "no such image", with what to do
    if not present:
        print(f"Unable to find image '{name}' locally", file=sys.stderr, flush=True)
    _pull(root, store, name, newly=not present)


def _registry_of(name: str) -> str | None:
    """The registry a name points at explicitly; None for a plain (Docker Hub) name."""
    first, sep, _ = name.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost"):
        return first
    return None


def _pull(root: Path, store: ImageStore, name: str, newly: bool) -> None:
    from orchestrator.commands.registry import LineProgress
    from runtime.image.auth import Credentials
    from runtime.image.transfer import pull

    progress = LineProgress(sys.stderr)
    try:
        result = pull(
            store,
            name,
            credentials=Credentials.load(root),
            progress=progress,
        )
    finally:
        progress.close()
    print(f"Digest: {result.digest}", file=sys.stderr)
    # (Docker's words: "newer" also when every layer was here already, the name was not)
    status = "Downloaded newer image" if newly or result.downloaded else "Image is up to date"
    print(f"Status: {status} for {result.reference.familiar}", file=sys.stderr)
