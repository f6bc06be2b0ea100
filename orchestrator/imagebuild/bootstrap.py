"""``orchestrator image bootstrap``: a Debian base image made with debootstrap.

    image = bootstrap(root, "debian-app-base", BootstrapOptions(
        suite="bookworm", variant="minbase", packages=("nginx-light", "python3")))

debootstrap (the Debian package) installs the suite into a scratch folder under the state root
(``<root>/tmp/bootstrap-<pid>-<hex>``), from the mirror apt uses on this machine
(``/etc/apt/sources.list`` and ``sources.list.d``, one-line and deb822 files) unless one is
given, with Release signatures checked against the host's keyring. The tree is then tidied as
Docker's Debian images are (no device nodes, no downloaded .debs or package lists, no copy of the
host's resolv.conf and hostname, a ``policy-rc.d`` that keeps services from starting), packed as
one layer tar and imported into the image store; the scratch is removed, including whatever a
killed debootstrap left mounted in it.

The packed tar is kept in a cache (``$ORCHESTRATOR_CACHE_DIR``, else
``$XDG_CACHE_HOME/orchestrator``, else ``/var/cache/orchestrator``; under ``bootstrap/``), keyed
by distribution, suite, architecture, variant, components and the set of packages: a second run on
the same machine imports it in seconds (and does not read it at all when the store already has the
layer). The image's config is derived from the cache entry only, so the same entry always gives
the same image id, and builds ``FROM`` it keep their cache. ``no_cache`` bootstraps afresh and
replaces the entry.

Errors a user can cause or fix (debootstrap missing, not root, the mirror unreachable, a suite or
package the mirror does not have) are ``UserError``: one line, with the log's path when
debootstrap itself failed.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, TextIO

from orchestrator.errors import UserError
from orchestrator.paths import images_dir

__all__ = [
    "BootstrapOptions",
    "BootstrapResult",
    "bootstrap",
    "cache_dir",
    "cache_key",
    "host_suite",
    "mirror_from_apt",
]

DEFAULT_MIRROR = "http://deb.debian.org/debian"
VARIANTS = ("minbase", "buildd", "standard")
DISTRIBUTIONS = ("debian",)

_PACKAGE_RE = re.compile(r"[a-z0-9][a-z0-9.+-]+(?::[a-z0-9-]+)?")
_SUITE_RE = re.compile(r"[a-z0-9][a-z0-9.+_-]{0,63}")
_COMPONENT_RE = re.compile(r"[a-z0-9][a-z0-9/_-]{0,63}")

# What debootstrap's own progress lines look like: "I: Retrieving libc6 2.36-9"
_PER_PACKAGE = re.compile(r"I: (Retrieving|Validating|Extracting|Unpacking|Configuring) ")


@dataclasses.dataclass(frozen=True)
class BootstrapOptions:
    suite: str
    variant: str = "minbase"
    packages: tuple[str, ...] = ()
    components: tuple[str, ...] = ("main",)
    mirror: str | None = None  # None: the one apt uses here
    distribution: str = "debian"
    no_cache: bool = False

    def check(self) -> None:
        if self.distribution not in DISTRIBUTIONS:
            raise UserError(
                f"cannot bootstrap {self.distribution!r}: only {', '.join(DISTRIBUTIONS)}"
            )
        if not _SUITE_RE.fullmatch(self.suite):
            raise UserError(f"--suite {self.suite!r}: not a suite name (bookworm, trixie...)")
        if self.variant not in VARIANTS:
            raise UserError(f"--variant {self.variant!r}: expected one of {', '.join(VARIANTS)}")
        for name in self.packages:
            if not _PACKAGE_RE.fullmatch(name):
                raise UserError(f"--include {name!r}: not a Debian package name")
        for name in self.components:
            if not _COMPONENT_RE.fullmatch(name):
                raise UserError(f"--components {name!r}: not an archive component")
        if not self.components:
            raise UserError("--components: at least one (main)")

    def key(self, architecture: str) -> dict[str, Any]:
        """What the cached tree depends on (not the mirror: every mirror has the same suite)."""
        return {
            "distribution": self.distribution,
            "suite": self.suite,
            "architecture": architecture,
            "variant": self.variant,
            "components": sorted(set(self.components)),
            "packages": sorted(set(self.packages)),
        }


@dataclasses.dataclass(frozen=True)
class BootstrapResult:
    image: Any  # runtime.image.model.Image
    cached: bool  # the tree came from the cache
    seconds: float
    cache_file: Path | None  # the cache entry (None when it could not be written)


# -- where things come from ------------------------------------------------------------------


def cache_dir() -> Path:
    """``$ORCHESTRATOR_CACHE_DIR``, else ``$XDG_CACHE_HOME/orchestrator``, else
    ``/var/cache/orchestrator`` (root) or ``~/.cache/orchestrator``."""
    explicit = os.environ.get("ORCHESTRATOR_CACHE_DIR")
    if explicit:
        return Path(explicit).absolute()
    xdg = os.environ.get("XDG_CACHE_HOME")
    if xdg:
        return Path(xdg).absolute() / "orchestrator"
    if os.geteuid() == 0:
        return Path("/var/cache/orchestrator")
    return Path.home() / ".cache" / "orchestrator"


def cache_key(options: BootstrapOptions, architecture: str) -> str:
    """The file name (without extension) of the cache entry for ``options``."""
    key = options.key(architecture)
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    return f"{options.distribution}-{options.suite}-{architecture}-{options.variant}-{digest}"


def dpkg_architecture() -> str:
    """This machine's Debian architecture (amd64, arm64...)."""
    try:
        done = subprocess.run(
            ["dpkg", "--print-architecture"], capture_output=True, text=True, check=True
        )
        if done.stdout.strip():
            return done.stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        pass
    machine = os.uname().machine
    return {
        "x86_64": "amd64",
        "aarch64": "arm64",
        "armv7l": "armhf",
        "i686": "i386",
        "ppc64le": "ppc64el",
    }.get(machine, machine)


def host_suite(os_release: Path = Path("/etc/os-release")) -> str:
    """This machine's Debian codename (``bookworm``), or ``stable`` elsewhere."""
    fields: dict[str, str] = {}
    with contextlib.suppress(OSError):
        for line in os_release.read_text().splitlines():
            key, eq, value = line.partition("=")
            if eq:
                fields[key.strip()] = value.strip().strip("\"'")
    codename = fields.get("VERSION_CODENAME", "")
    if fields.get("ID") == "debian" and _SUITE_RE.fullmatch(codename):
        return codename
    return "stable"


@dataclasses.dataclass(frozen=True)
class AptSource:
    uri: str
    suites: tuple[str, ...]
    components: tuple[str, ...]


def apt_sources(etc_apt: Path = Path("/etc/apt")) -> list[AptSource]:
    """The ``deb`` entries apt uses, in apt's order: sources.list, then sources.list.d's
    ``*.list`` (one-line format) and ``*.sources`` (deb822) files by name. Disabled ones
    (``Enabled: no``, other file names) are left out."""
    files = [etc_apt / "sources.list"]
    with contextlib.suppress(OSError):
        files += sorted(
            p for p in (etc_apt / "sources.list.d").iterdir() if p.suffix in (".list", ".sources")
        )
    found: list[AptSource] = []
    for path in files:
        try:
            text = path.read_text(errors="replace")
        except OSError:
            continue
        if path.suffix == ".sources":
            found += _deb822_sources(text)
        else:
            found += _one_line_sources(text)
    return found


def _one_line_sources(text: str) -> Iterator[AptSource]:
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        line = re.sub(r"\[[^\]]*\]", " ", line)  # options: [arch=amd64 signed-by=...]
        words = line.split()
        if len(words) >= 3 and words[0] == "deb":
            yield AptSource(words[1], (words[2],), tuple(words[3:]))


def _deb822_sources(text: str) -> Iterator[AptSource]:
    stanzas: list[dict[str, str]] = [{}]
    key = ""
    for raw in text.splitlines():
        if raw.startswith("#"):
            continue
        if not raw.strip():
            if stanzas[-1]:
                stanzas.append({})
            key = ""
            continue
        if raw[0] in " \t" and key:
            stanzas[-1][key] += " " + raw.strip()
            continue
        name, colon, value = raw.partition(":")
        if colon:
            key = name.strip().lower()
            stanzas[-1][key] = value.strip()
    for stanza in stanzas:
        if "deb" not in stanza.get("types", "").split():
            continue
        if stanza.get("enabled", "yes").lower() in ("no", "false", "0"):
            continue
        suites = tuple(stanza.get("suites", "").split())
        components = tuple(stanza.get("components", "").split())
        for uri in stanza.get("uris", "").split():
            yield AptSource(uri, suites, components)


def mirror_from_apt(suite: str, sources: Iterable[AptSource] | None = None) -> str:
    """The archive apt uses for ``suite``: an entry with that very suite, else the first
    Debian archive entry that is not a security one, else deb.debian.org."""
    usable = [
        s
        for s in (apt_sources() if sources is None else sources)
        if s.uri.split(":", 1)[0] in ("http", "https", "file")
    ]
    for source in usable:
        if suite in source.suites:
            return source.uri.rstrip("/")
    for source in usable:
        security = any(s.endswith(("-security", "/updates")) for s in source.suites)
        if not security and "security" not in source.uri:
            return source.uri.rstrip("/")
    return DEFAULT_MIRROR


def check_mirror(mirror: str, suite: str, timeout: float = 15.0) -> None:
    """One request for the suite's Release file, so that an unreachable mirror or a missing
    suite is said in one line before debootstrap starts."""
    scheme = mirror.split(":", 1)[0]
    if scheme not in ("http", "https", "file"):
        raise UserError(f"--mirror {mirror!r}: expected an http://, https:// or file:// URL")
    url = f"{mirror.rstrip('/')}/dists/{suite}/Release"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as reply:
            reply.read(1)
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            raise UserError(f"the mirror {mirror} has no suite {suite!r} ({url}: 404)") from None
        raise UserError(f"the mirror {mirror} answered {exc.code} for {url}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        if isinstance(exc, urllib.error.URLError) and scheme == "file":
            raise UserError(f"the mirror {mirror} has no suite {suite!r} ({url})") from None
        raise UserError(f"cannot reach the Debian mirror {mirror}: {reason}") from None


def find_debootstrap() -> str:
    found = shutil.which("debootstrap") or shutil.which(
        "debootstrap", path="/usr/sbin:/usr/local/sbin:/sbin"
    )
    if not found:
        raise UserError(
            "debootstrap is not installed (apt-get install debootstrap, or run scripts/install)"
        )
    return found


# -- the command ---------------------------------------------------------------------------------


def bootstrap(
    root: Path,
    ref: str,
    options: BootstrapOptions,
    *,
    err: TextIO | None = None,
    cache: Path | None = None,
) -> BootstrapResult:
    """Make (or take from the cache) the tree of ``options`` and import it as ``ref``."""
    from runtime.image.digest import InvalidReference, parse_tagged
    from runtime.image.store import ImageStore

    started = time.monotonic()
    err = err or sys.stderr
    options.check()
    try:
        parse_tagged(ref)
    except InvalidReference as exc:
        raise UserError(f"{ref}: {exc}") from None
    architecture = dpkg_architecture()
    entries = (cache or cache_dir()) / "bootstrap"
    name = cache_key(options, architecture)
    tar, meta_path = entries / f"{name}.tar", entries / f"{name}.json"
    store = ImageStore(images_dir(root))
    with _cache_lock(entries, name):
        meta = None if options.no_cache else _read_meta(meta_path, tar)
        if meta is not None:
            print(f"using the cached tree {tar}", file=err)
            try:
                image = _import(store, tar, meta, ref, options)
                return BootstrapResult(image, True, time.monotonic() - started, tar)
            except _Damaged as exc:
                print(f"the cached tree is damaged ({exc}): bootstrapping again", file=err)
                _remove(tar, meta_path)
        if os.geteuid() != 0:
            raise UserError("bootstrap needs root (debootstrap makes device nodes and chroots)")
        debootstrap = find_debootstrap()
        mirror = (options.mirror or mirror_from_apt(options.suite)).rstrip("/")
        check_mirror(mirror, options.suite)
        scratch_parent = root / "tmp"
        scratch_parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        _collect_stale(scratch_parent)
        scratch = scratch_parent / f"bootstrap-{os.getpid()}-{secrets.token_hex(4)}"
        scratch.mkdir(mode=0o700)
        try:
            tree = scratch / "rootfs"
            _run_debootstrap(debootstrap, options, mirror, tree, entries / f"{name}.log", err)
            _tidy(tree)
            print("packing the tree", file=err)
            meta = {
                **options.key(architecture),
                "mirror": mirror,
                "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            }
            written = _pack(tree, tar, scratch, err)
            _unmount_below(scratch)
            shutil.rmtree(tree)  # before the import: the disk holds one copy fewer
            try:
                image = _import(store, written, meta, ref, options)
            except BaseException:
                _remove(written)
                raise
            meta["diff_id"] = image.layers[0]
            if written == tar.with_suffix(".tar.new"):
                _write_meta(meta_path, meta)
                os.replace(written, tar)
                cached_file: Path | None = tar
            else:
                cached_file = None
        finally:
            _remove_scratch(scratch)
    return BootstrapResult(image, False, time.monotonic() - started, cached_file)


class _Damaged(Exception):
    pass


@contextlib.contextmanager
def _cache_lock(entries: Path, name: str) -> Iterator[None]:
    """One bootstrap of an entry at a time on a machine: the second waits, then uses it."""
    from runtime.filelock import exclusive

    try:
        entries.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError:
        yield  # no cache here (read-only): nothing to share
        return
    with exclusive(entries / f"{name}.lock"):
        yield


def _read_meta(meta_path: Path, tar: Path) -> dict[str, Any] | None:
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(meta, dict) or not str(meta.get("diff_id", "")).startswith("sha256:"):
        return None
    return meta if tar.is_file() else None


def _write_meta(meta_path: Path, meta: dict[str, Any]) -> None:
    tmp = meta_path.with_suffix(".json.new")
    tmp.write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, meta_path)


def _remove(*paths: Path) -> None:
    for path in paths:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def _run_debootstrap(
    debootstrap: str,
    options: BootstrapOptions,
    mirror: str,
    tree: Path,
    log_path: Path,
    err: TextIO,
) -> None:
    argv = [debootstrap, "--force-check-gpg"]
    if options.variant != "standard":
        argv.append(f"--variant={options.variant}")
    if options.packages:
        argv.append(f"--include={','.join(sorted(set(options.packages)))}")
    argv += [f"--components={','.join(options.components)}", options.suite, str(tree), mirror]
    env = {
        "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "LC_ALL": "C",
        "DEBIAN_FRONTEND": "noninteractive",
        "HOME": "/root",
    }
    for proxy in ("http_proxy", "https_proxy", "no_proxy", "HTTP_PROXY", "HTTPS_PROXY"):
        if proxy in os.environ:
            env[proxy] = os.environ[proxy]
    print(f"debootstrap {' '.join(argv[1:])}", file=err)
    progress = _Progress(err)
    lines: list[str] = []
    proc = subprocess.Popen(
        argv,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=env,
        cwd=tree.parent,
        text=True,
        errors="replace",
        preexec_fn=_end_with_parent,  # the CLI is single-threaded
    )
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            line = line.rstrip("\n")
            lines.append(line)
            progress.line(line)
        status = proc.wait()
    finally:
        progress.done()
        if proc.poll() is None:  # we were interrupted: debootstrap's own trap unmounts
            proc.terminate()
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    if status != 0:
        log = _keep_log(tree, lines, log_path)
        errors = [line for line in lines if line.startswith("E: ")]
        why = errors[-1][3:] if errors else (lines[-1] if lines else f"exit status {status}")
        raise UserError(f"debootstrap failed: {why.strip()}" + (f" (log: {log})" if log else ""))


def _end_with_parent() -> None:
    """(in the child) SIGTERM when the command dies, killed or not: debootstrap's own trap
    then unmounts its chroot's /proc and /sys, and the next bootstrap removes the scratch."""
    import signal

    from runtime.linux import syscalls as sc

    sc.prctl(sc.PR_SET_PDEATHSIG, signal.SIGTERM)


def _keep_log(tree: Path, lines: list[str], log_path: Path) -> Path | None:
    """debootstrap's output and its own log (in the tree, about to be removed), kept."""
    text = "\n".join(lines) + "\n"
    with contextlib.suppress(OSError):
        text += "\n--- debootstrap/debootstrap.log ---\n"
        text += (tree / "debootstrap" / "debootstrap.log").read_text(errors="replace")
    try:
        log_path.parent.mkdir(parents=True, exist_ok=True)
        log_path.write_text(text)
    except OSError:
        return None
    return log_path


class _Progress:
    """debootstrap's lines as progress: on a terminal one line rewritten in place; in a log
    the lines themselves, the per-package ones at most one every 5 seconds."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.tty = out.isatty()
        self.last = 0.0
        self.shown = False

    def line(self, text: str) -> None:
        if not text.strip():
            return
        if self.tty:
            width = max(20, shutil.get_terminal_size().columns - 1)
            self.out.write("\r\033[K" + text[:width])
            self.out.flush()
            self.shown = True
            return
        now = time.monotonic()
        if _PER_PACKAGE.match(text) and now - self.last < 5:
            return
        self.last = now
        print(text, file=self.out, flush=True)

    def done(self) -> None:
        if self.tty and self.shown:
            self.out.write("\r\033[K")
            self.out.flush()


def _tidy(tree: Path) -> None:
    """What Docker's Debian images leave out or add: no device nodes (the runtime makes /dev),
    no downloaded packages or package lists, no host resolv.conf or hostname (the runtime
    mounts its own), and a policy-rc.d so that installing a package starts no service."""
    _empty_dir(tree / "dev")
    for pattern in ("var/cache/apt/archives/*.deb", "var/cache/apt/*.bin", "var/lib/apt/lists/*"):
        for path in tree.glob(pattern):
            if path.is_file() and not path.is_symlink() and path.name != "lock":
                path.unlink()
    for name in ("etc/resolv.conf", "etc/hostname"):
        path = tree / name
        if path.is_symlink() or path.exists():
            path.unlink()
        path.write_text("")
        path.chmod(0o644)
    policy = tree / "usr/sbin/policy-rc.d"
    if policy.parent.is_dir() and not policy.exists():
        policy.write_text(
            "#!/bin/sh\n# no services start in an image (as Docker's images)\nexit 101\n"
        )
        policy.chmod(0o755)


def _empty_dir(path: Path) -> None:
    if not path.is_dir() or path.is_symlink():
        return
    for entry in path.iterdir():
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()


def _pack(tree: Path, tar: Path, scratch: Path, err: TextIO) -> Path:
    """The tree as a layer tar: into the cache (``NAME.tar.new``) when it can be written,
    else into the scratch folder."""
    from runtime.image.difftar import write_diff_tar

    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC
    target = tar.with_suffix(".tar.new")
    try:  # 0600: the tree holds /etc/shadow
        out = os.fdopen(os.open(target, flags, 0o600), "wb")
    except OSError as exc:
        print(f"cannot write the cache ({exc}): the tree is not kept", file=err)
        target = scratch / "rootfs.tar"
        out = os.fdopen(os.open(target, flags, 0o600), "wb")
    try:
        with out:
            write_diff_tar(tree, out)
    except BaseException:
        _remove(target)
        raise
    return target


def _import(
    store: Any, tar: Path, meta: dict[str, Any], ref: str, options: BootstrapOptions
) -> Any:
    """The tar as a one-layer image whose config comes from ``meta`` alone: the same cache
    entry gives the same image id. A cached tar whose layer the store has is not read."""
    from runtime.image.layers import LayerInfo
    from runtime.image.model import InvalidImage

    diff_id = meta.get("diff_id")
    with store.lease() as lease:  # no prune between the layer's import and the image
        layer = None
        if diff_id and store.layer_known(diff_id, diff_id):
            lease.add(diff_id)
            layer = LayerInfo(diff_id, diff_id, tar.stat().st_size, _TAR_MEDIA_TYPE)
        if layer is None:
            try:
                with open(tar, "rb") as f:
                    layer = store.ingest_layer(f, expected_diff_id=diff_id)
            except InvalidImage as exc:
                if diff_id:
                    raise _Damaged(str(exc)) from None
                raise
        return store.record_config(_config(meta, options), [layer], [ref])


def _config(meta: dict[str, Any], options: BootstrapOptions) -> dict[str, Any]:
    from runtime.image.manifests import DEFAULT_PATH_ENV, host_architecture

    packages = " ".join(meta.get("packages") or ())
    include = f" --include {','.join(meta.get('packages') or ())}" if packages else ""
    return {
        "created": meta["created"],
        "architecture": host_architecture(),
        "os": "linux",
        "config": {
            "Env": [DEFAULT_PATH_ENV],
            "Cmd": ["bash"],
            "Labels": {
                "org.orchestrator.bootstrap.suite": str(meta.get("suite", options.suite)),
                "org.orchestrator.bootstrap.variant": str(meta.get("variant", options.variant)),
                "org.orchestrator.bootstrap.packages": packages,
            },
        },
        "history": [
            {
                "created": meta["created"],
                "created_by": f"orchestrator image bootstrap {meta.get('distribution', 'debian')}"
                f" --suite {meta.get('suite')} --variant {meta.get('variant')}{include}",
                "comment": "debootstrap",
            }
        ],
    }


_TAR_MEDIA_TYPE = "application/vnd.oci.image.layer.v1.tar"


# -- the scratch folder ----------------------------------------------------------------------------


def _mounts_below(path: Path) -> list[str]:
    prefix = str(path).rstrip("/") + "/"
    found = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            target = _unescape(line.split()[4])
            if target.startswith(prefix) or target == prefix.rstrip("/"):
                found.append(target)
    return found


def _unescape(field: str) -> str:
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def _unmount_below(path: Path) -> None:
    """Detach whatever is mounted in ``path`` (a killed debootstrap leaves /proc and /sys in
    its chroot), deepest first."""
    from runtime.linux import syscalls as sc

    for target in sorted(_mounts_below(path), key=len, reverse=True):
        with contextlib.suppress(OSError):
            sc.umount2(target, sc.MNT_DETACH | sc.UMOUNT_NOFOLLOW)
    left = _mounts_below(path)
    if left:
        raise UserError(f"cannot unmount {left[0]} (left by debootstrap); remove it by hand")


def _remove_scratch(scratch: Path) -> None:
    _unmount_below(scratch)  # never remove through a mount
    shutil.rmtree(scratch, ignore_errors=True)


def _collect_stale(parent: Path) -> None:
    """Scratch folders of bootstraps that were killed (their process is gone)."""
    for entry in parent.glob("bootstrap-*-*"):
        try:
            pid = int(entry.name.split("-")[1])
        except (IndexError, ValueError):
            continue
        if pid != os.getpid() and not Path(f"/proc/{pid}").exists():
            _remove_scratch(entry)
