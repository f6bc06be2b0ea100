"""``cp`` between a container and the host, with Docker's rules, as tar streams.

    copy_out(containers, c, "/etc/hosts", "./hosts")    # cp c:/etc/hosts ./hosts
    copy_in(containers, c, "-", "/srv")                 # cp - c:/srv (a tar on our stdin)

The container's side runs in a child process whose root is the container's: ``chroot`` to
``/proc/<pid>/root`` (opened, then checked against the init's start time) for a running,
paused or created container, or, for a stopped one, to its overlay (image layers under its
upper directory) mounted in a private mount namespace that dies with the child (nothing is
mounted on the host). So every path there, and every symlink on it, resolves inside the
container as openat2's RESOLVE_IN_ROOT would: a symlink to /etc is the container's /etc. The
child imports nothing after the chroot (``sys.path`` is emptied: a module the image planted
never loads) and looks no user or group up by name (no NSS library of the image is loaded):
owners travel as numbers. The host's side runs in the CLI process; what it extracts is checked
by tarfile's ``tar`` filter (no member outside the destination, even through a symlink the
archive made), with the modes kept as Docker keeps them.

Docker's rules: ``SRC/.`` copies a directory's contents; a directory goes into an existing
directory under its own name, or becomes the destination when that does not exist; a file
replaces an existing file, or goes into a directory; ``DEST/`` must be a directory; a
directory never replaces a file. ``-a`` keeps owners (else they are ours: root);
``-L`` copies what a source symlink points to.
"""

from __future__ import annotations

import contextlib
import json
import os
import posixpath
import shutil
import stat
import sys
import tarfile
from collections.abc import Callable, Iterator
from typing import IO, Any

from orchestrator.errors import UserError

Header = dict[str, Any]


class CopyError(UserError):
    pass


# -- the source's side ---------------------------------------------------------------------------


def inspect_source(path: str, follow: bool, shown: str) -> Header:
    """What a copy of ``path`` carries: its kind, the name its top entry has in the archive
    and the path to read (``-L`` resolved). ``shown`` names it in errors."""
    contents = path.endswith("/.") or path == "."
    must_be_dir = path.endswith("/") or contents
    clean = posixpath.normpath(path) if path else path
    try:
        st = os.stat(clean) if follow else os.lstat(clean)
    except FileNotFoundError:
        raise CopyError(f"{shown}: no such file or directory") from None
    except NotADirectoryError:
        raise CopyError(f"{shown}: not a directory") from None
    except OSError as exc:
        raise CopyError(f"{shown}: {exc.strerror}") from None
    is_dir = stat.S_ISDIR(st.st_mode)
    if must_be_dir and not is_dir:
        raise CopyError(f"{shown}: not a directory")
    read = os.path.realpath(clean) if follow else clean
    name = "." if contents else (posixpath.basename(clean) or ".")
    return {"dir": is_dir, "name": name, "contents": contents, "read": read}


def pack(header: Header, out: IO[bytes]) -> None:
    """Write the tar of a source ``inspect_source`` described to ``out``."""
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        tar.add(header["read"], arcname=header["name"], recursive=True)


# -- the destination's side ----------------------------------------------------------------------


def unpack(
    dest: str, header: Header | None, stream: IO[bytes], keep_owners: bool, shown: str
) -> None:
    """Extract a tar from ``stream`` at ``dest`` by Docker's rules; ``header`` describes the
    source (None: a tar given as it is, ``cp - c:DIR``, extracted into the directory)."""
    trailing = dest.endswith("/")
    clean = posixpath.normpath(dest) if dest else dest
    try:
        st: os.stat_result | None = os.stat(clean)
    except FileNotFoundError:
        st = None
    except NotADirectoryError:
        raise CopyError(f"{shown}: not a directory") from None
    except OSError as exc:
        raise CopyError(f"{shown}: {exc.strerror}") from None
    if header is None:
        if st is None or not stat.S_ISDIR(st.st_mode):
            raise CopyError(f"{shown}: the destination must be an existing directory")
        _extract(stream, clean, None, None, keep_owners)
        return
    if st is not None and stat.S_ISDIR(st.st_mode):
        if header["contents"]:
            _extract(stream, clean, header["name"], None, keep_owners)
        else:
            _extract(stream, clean, header["name"], header["name"], keep_owners)
        return
    if st is not None:
        if header["dir"]:
            raise CopyError(f"{shown}: cannot copy a directory to a file")
        if trailing:
            raise CopyError(f"{shown}: not a directory")
    elif trailing and not header["dir"]:
        raise CopyError(f"{shown}: no such directory")
    parent = posixpath.dirname(clean) or "."
    if not os.path.isdir(parent):
        raise CopyError(f"{shown}: no such file or directory")
    _extract(stream, parent, header["name"], posixpath.basename(clean), keep_owners)


def _extract(
    stream: IO[bytes], directory: str, top: str | None, new_top: str | None, keep_owners: bool
) -> None:
    """Extract into ``directory``, the archive's top entry ``top`` renamed ``new_top`` (None:
    its contents go straight into ``directory``)."""

    def rename(name: str) -> str | None:
        name = posixpath.normpath(name)
        if top is None:
            return name
        first, _, rest = (name + "/").partition("/")
        rest = rest.rstrip("/")
        if top != "." and first != top:
            return None  # not ours: our own archives have only the one top entry
        if top == ".":
            rest = "" if name == "." else name
        if new_top is None:
            return rest or None
        return posixpath.join(new_top, rest) if rest else new_top

    def members(tar: tarfile.TarFile) -> Iterator[tarfile.TarInfo]:
        for member in tar:
            name = rename(member.name)
            if name is None:
                continue
            changes: dict[str, Any] = {"name": name}
            if member.islnk():
                link = rename(member.linkname)
                if link is None:
                    continue
                changes["linkname"] = link
            yield member.replace(**changes, deep=False)

    def checked(member: tarfile.TarInfo, path: str) -> tarfile.TarInfo:
        safe = tarfile.tar_filter(member, path)  # raises for a member outside ``path``
        owners: dict[str, Any] = {"uname": "", "gname": ""}
        if not keep_owners:
            owners.update(uid=os.getuid(), gid=os.getgid())
        return safe.replace(mode=member.mode, **owners, deep=False)

    try:
        with tarfile.open(fileobj=stream, mode="r|") as tar:
            tar.extractall(directory, members=members(tar), numeric_owner=True, filter=checked)
    except tarfile.FilterError as exc:
        raise CopyError(f"refused an archive member: {exc}") from None
    except tarfile.TarError as exc:
        raise CopyError(f"reading the archive: {exc}") from None
    except OSError as exc:
        where = f"{exc.filename}: " if exc.filename else ""
        raise CopyError(f"{where}{exc.strerror}") from None


# -- inside the container ------------------------------------------------------------------------


class Inside:
    """How to reach a container's root from a child process: an open /proc/PID/root, or its
    overlay to mount privately."""

    def __init__(self, containers: Any, container: Any) -> None:
        from runtime.errors import NotFound
        from runtime.state import STOPPED, process_start_time

        self.root_fd: int | None = None
        self.overlay: tuple[list[str], str, str, str] | None = None
        record = container.record
        self.mounts = [*(record.get("mounts") or ()), *(record.get("attached") or ())]
        try:
            current = containers.runtime.state(container.id)
        except NotFound:
            current = None
        if current is not None and current.status != STOPPED and current.pid:
            try:
                fd = os.open(f"/proc/{current.pid}/root", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
            except OSError:
                fd = None
            # (opened first, checked after: a recycled pid cannot hand us another root)
            if fd is not None and process_start_time(current.pid) == current.record.get(
                "pid_start"
            ):
                self.root_fd = fd
                return
            if fd is not None:
                os.close(fd)
        config = json.loads((container.bundle / "config.json").read_text())
        from runtime.spec import ANNOTATION_LOWERDIRS, ANNOTATION_UPPERDIR, ANNOTATION_WORKDIR

        notes = config.get("annotations", {})
        self.overlay = (
            list(json.loads(notes[ANNOTATION_LOWERDIRS])),
            notes[ANNOTATION_UPPERDIR],
            notes[ANNOTATION_WORKDIR],
            str(container.bundle / "rootfs"),
        )

    def close(self) -> None:
        if self.root_fd is not None:
            os.close(self.root_fd)
            self.root_fd = None

    def enter(self) -> None:
        """In the child: make the container's root ours (and nothing else importable)."""
        if self.root_fd is not None:
            os.fchdir(self.root_fd)
        else:
            assert self.overlay is not None
            from runtime.linux import syscalls as sc
            from runtime.rootfs import mount_overlay

            sc.unshare(sc.CLONE_NEWNS)
            sc.mount(None, "/", None, sc.MS_REC | sc.MS_PRIVATE)  # nothing reaches the host
            lowers, upper, work, target = self.overlay
            mount_overlay(tuple(lowers), upper, work, target)
            self._bind_volumes(target)
            os.chdir(target)
        os.chroot(".")
        os.chdir("/")
        os.umask(0o022)
        # No lookups by name (the image's NSS libraries), no imports from the image.
        tarfile.pwd = None  # type: ignore[attr-defined]
        tarfile.grp = None  # type: ignore[attr-defined]
        sys.path[:] = []
        sys.path_importer_cache.clear()

    def _bind_volumes(self, target: str) -> None:
        """A stopped container's volumes and binds, where a running one has them (each target
        resolved inside the root)."""
        from orchestrator.mountspec import Mount
        from runtime.bindmount import bind
        from runtime.linux import syscalls as sc
        from runtime.rootfs import ensure_dir, ensure_file

        rootfd = os.open(target, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            for raw in self.mounts:
                with contextlib.suppress(Exception):
                    m = Mount.from_record(raw)
                    if m.type not in ("volume", "bind") or not m.host_path:
                        continue
                    # (the mount point made as the runtime would make it at the start)
                    make = ensure_dir if os.path.isdir(m.host_path) else ensure_file
                    fd = make(rootfd, m.target)
                    try:
                        bind(
                            m.host_path,
                            fd,
                            sc.MS_BIND | sc.MS_REC | (sc.MS_RDONLY if m.read_only else 0),
                        )
                    finally:
                        os.close(fd)
        finally:
            os.close(rootfd)


def in_container(inside: Inside, job: Callable[[int], None]) -> tuple[int, int]:
    """Fork a child that enters the container and runs ``job(ctl_fd)``; its pid and our end
    of its control pipe (JSON lines: a header, or ``{"error": ...}``, or ``{"ok": true}``)."""
    ctl_r, ctl_w = os.pipe2(os.O_CLOEXEC)
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:  # the child: never returns
        status = 1
        try:
            os.close(ctl_r)
            inside.enter()
            job(ctl_w)
            status = 0
        except UserError as exc:
            _send(ctl_w, {"error": str(exc)})
        except BrokenPipeError:
            pass
        except BaseException as exc:
            _send(ctl_w, {"error": f"{type(exc).__name__}: {exc}"})
        finally:
            os._exit(status)
    os.close(ctl_w)
    return pid, ctl_r


def _send(fd: int, message: dict[str, Any]) -> None:
    with contextlib.suppress(OSError):
        os.write(fd, (json.dumps(message) + "\n").encode())


def _receive(fd: int) -> dict[str, Any] | None:
    """One JSON line from the control pipe; None at its end."""
    data = b""
    while not data.endswith(b"\n"):
        chunk = os.read(fd, 1)
        if not chunk:
            return None
        data += chunk
    return dict(json.loads(data))


def _reap(pid: int) -> int:
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


# -- the two directions --------------------------------------------------------------------------


def container_path(path: str) -> str:
    """A container's paths are from its root, as Docker's are."""
    return path if path.startswith("/") else "/" + path


def copy_out(
    containers: Any, container: Any, src: str, dest: str, follow: bool, keep_owners: bool
) -> None:
    """``cp CONTAINER:SRC DEST`` (``-`` for a tar on our stdout)."""
    shown_src = f"{container.name}:{src}"
    inside = Inside(containers, container)
    data_r, data_w = os.pipe2(os.O_CLOEXEC)

    def job(ctl: int) -> None:
        os.close(data_r)
        header = inspect_source(container_path(src), follow, shown_src)
        _send(ctl, header)
        with open(data_w, "wb") as out:
            pack(header, out)

    try:
        pid, ctl = in_container(inside, job)
    finally:
        inside.close()
    os.close(data_w)
    try:
        header = _receive(ctl)
        if header is None or "error" in header:
            raise CopyError(header["error"] if header else f"{shown_src}: the copy failed")
        with open(data_r, "rb", closefd=False) as stream:
            if dest == "-":
                shutil.copyfileobj(stream, sys.stdout.buffer, 1 << 16)
                sys.stdout.buffer.flush()
            else:
                unpack(dest, header, stream, keep_owners, dest)
        late = _receive(ctl)
        if late is not None and "error" in late:
            raise CopyError(late["error"])
    finally:
        os.close(data_r)
        os.close(ctl)
        status = _reap(pid)
    if status != 0:
        raise CopyError(f"{shown_src}: the copy failed")


def copy_in(
    containers: Any, container: Any, src: str, dest: str, follow: bool, keep_owners: bool
) -> None:
    """``cp SRC CONTAINER:DEST`` (``-``: a tar on our stdin, extracted into DEST)."""
    shown_dest = f"{container.name}:{dest}"
    header = None if src == "-" else inspect_source(src, follow, src)
    inside = Inside(containers, container)
    data_r, data_w = os.pipe2(os.O_CLOEXEC)

    def job(ctl: int) -> None:
        os.close(data_w)
        with open(data_r, "rb") as stream:
            unpack(container_path(dest), header, stream, keep_owners, shown_dest)
        _send(ctl, {"ok": True})

    try:
        pid, ctl = in_container(inside, job)
    finally:
        inside.close()
    os.close(data_r)
    try:
        with contextlib.suppress(BrokenPipeError), open(data_w, "wb", closefd=False) as out:
            if header is None:
                shutil.copyfileobj(sys.stdin.buffer, out, 1 << 16)
            else:
                pack(header, out)
        os.close(data_w)
        data_w = -1
        answer = _receive(ctl)
        if answer is None or "error" in answer:
            raise CopyError(answer["error"] if answer else f"{shown_dest}: the copy failed")
    finally:
        if data_w >= 0:
            os.close(data_w)
        os.close(ctl)
        status = _reap(pid)
    if status != 0:
        raise CopyError(f"{shown_dest}: the copy failed")
