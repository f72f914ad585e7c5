"""On-disk cache of generated artifacts, safe under concurrent use by several processes.

An artifact is keyed by ``sha256`` of everything that produced it (the system's fingerprint, the
generator's version and sources, the backend and, for C, the compiler). In the cache folder the key
names:

* ``KEY.lock``: the build lock, created exclusively (``O_CREAT | O_EXCL``), so exactly one process
  builds. It holds its owner: host, pid, the process's start time. A waiting process says in one
  line on stderr what it waits for, and breaks the lock at once when its owner is gone (on this host:
  no such process, a zombie, or another process under that pid), or when the lock is older than
  :data:`STALE_LOCK_SECONDS`. The owner releases it on SIGINT and SIGTERM too.
* ``KEY.<ext>``: the source, written atomically.
* ``KEY.<artifact ext>``: the built artifact (the source itself for NumPy, a shared library for C),
  moved into place atomically.
* ``KEY.ready``: the sha256 of the artifact, written last. An artifact is used only when its hash
  matches this marker; otherwise it is rebuilt.
* ``KEY.<ext>.failed``: a failed build renames its source here, so waiting processes stop waiting
  and report the failure; the next request tries again.

An entry whose marker matches but which does not load (a damaged library, JSON of another format) is
discarded and rebuilt, once: any failure to load means rebuild, and only a fresh build that does not
load is an error.

The folder is ``$SOBOLEV_RF_CACHE``, else ``~/.cache/sobolev-rf``. Compiled code is loaded from it, so
it is used only when it is a folder owned by the user and not writable by group or others. Otherwise,
or when it cannot be written, the cache is ``sobolev-rf-cache-<uid>`` in the system's temporary folder
(created with mode 0700, checked the same way and never through a link), else a fresh private folder.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
import socket
import stat
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple, TypeVar

from ..derive.errors import UserError
from .atomic import WriteError, atomic_write_text, process_alive

#: Seconds after which a lock is broken whoever holds it (a build takes seconds).
STALE_LOCK_SECONDS = 300.0
#: Seconds after which a lock without a readable owner (damaged, or its owner died creating it) is broken.
UNREADABLE_LOCK_SECONDS = 10.0
#: A wait longer than this is announced on stderr.
ANNOUNCE_AFTER_SECONDS = 1.0
_POLL_SECONDS = 0.02
#: Permission bits of cache files: never writable by group or others.
FILE_MODE = 0o644
#: What to do when the cache cannot be written (in WriteError's message).
_WRITE_HINT = "free some space there or point SOBOLEV_RF_CACHE to another folder"

T = TypeVar("T")


class CodegenError(RuntimeError):
    """Generating or building an artifact failed (here or in a concurrent process)."""


def warn(message: str) -> None:
    """One warning line on stderr."""
    print(f"sobolev-rf: warning: {message}", file=sys.stderr)


# --------------------------------------------------------------------------------------------------
# the folder
# --------------------------------------------------------------------------------------------------

_UNWRITABLE = "it cannot be written"


def _unsuitable(folder: Path, follow_links: bool) -> str | None:
    """Why ``folder`` cannot hold the cache (None: it can). Created (mode 0700) if missing."""
    try:
        folder.mkdir(mode=0o700, parents=follow_links, exist_ok=True)
        st = folder.stat() if follow_links else folder.lstat()
    except OSError:
        return _UNWRITABLE
    if not stat.S_ISDIR(st.st_mode):
        return "it is not a folder" if follow_links else "it is not a folder but a link or a file"
    if st.st_uid != os.getuid():
        return f"it belongs to another user (uid {st.st_uid})"
    if st.st_mode & 0o022:
        return f"group or others may write it (mode {stat.S_IMODE(st.st_mode):04o}; chmod go-w fixes that)"
    try:
        probe = folder / f".probe-{os.getpid()}-{uuid.uuid4().hex}"
        probe.touch()
        probe.unlink()
    except OSError:
        return _UNWRITABLE
    return None


def _choose_folder(configured: Path) -> Path:
    """``configured`` if it suits, else the shared temporary folder if it suits, else a fresh one."""
    reason = _unsuitable(configured, follow_links=True)
    if reason is None:
        return configured
    shared = Path(tempfile.gettempdir()) / f"sobolev-rf-cache-{os.getuid()}"
    shared_reason = _unsuitable(shared, follow_links=False)
    chosen = shared if shared_reason is None else Path(tempfile.mkdtemp(prefix="sobolev-rf-cache-"))
    for folder, why in ((configured, reason), (shared, shared_reason)):
        if why is not None and why != _UNWRITABLE:  # an unwritable folder is an ordinary setup
            warn(f"the cache folder {folder} is not used, since code is loaded from it and {why}; using {chosen}")
    return chosen


_FOLDERS: dict[str | None, Path] = {}


def cache_dir() -> Path:
    """The cache folder (see the module's docstring), chosen once per process and setting."""
    configured = os.environ.get("SOBOLEV_RF_CACHE")
    if configured not in _FOLDERS:
        _FOLDERS[configured] = _choose_folder(Path(configured) if configured else Path.home() / ".cache" / "sobolev-rf")
    return _FOLDERS[configured]


# --------------------------------------------------------------------------------------------------
# entries
# --------------------------------------------------------------------------------------------------


def artifact_key(fingerprint: str, generator_version: str, backend: str) -> str:
    """sha256 hex digest of the system fingerprint, the generator version and the backend."""
    return hashlib.sha256(f"{fingerprint}\0{generator_version}\0{backend}".encode()).hexdigest()


def file_hash(path: Path) -> str:
    """sha256 hex digest of a file's bytes."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


@dataclass(frozen=True)
class ArtifactPaths:
    """The files belonging to one cache key."""

    key: str
    source: Path
    artifact: Path
    ready: Path

    @property
    def failed(self) -> Path:
        return self.source.with_name(self.source.name + ".failed")

    @property
    def lock(self) -> Path:
        return self.source.with_name(self.key + ".lock")


def artifact_paths(folder: Path, key: str, source_ext: str, artifact_ext: str) -> ArtifactPaths:
    """Paths of source, artifact and ready marker of ``key`` in ``folder``."""
    return ArtifactPaths(key, folder / f"{key}.{source_ext}", folder / f"{key}.{artifact_ext}", folder / f"{key}.ready")


#: Artifact → (size and mtime of it and of its marker, its sha256) when its hash last matched the marker.
_VERIFIED: dict[Path, tuple[tuple[int, int, int, int], str]] = {}


def _valid_hash(paths: ArtifactPaths) -> str | None:
    """The artifact's sha256 if the ready marker exists and matches it (not hashed again while neither
    file changed), else None."""
    try:
        a, r = paths.artifact.stat(), paths.ready.stat()
        stamp = (a.st_size, a.st_mtime_ns, r.st_size, r.st_mtime_ns)
        if paths.artifact in _VERIFIED and _VERIFIED[paths.artifact][0] == stamp:
            return _VERIFIED[paths.artifact][1]
        digest = file_hash(paths.artifact)
        if paths.ready.read_text().strip() != digest:
            return None
    except (OSError, UnicodeDecodeError):
        return None
    _VERIFIED[paths.artifact] = (stamp, digest)
    return digest


def verified_hash(artifact: Path) -> str:
    """The sha256 of an artifact that :func:`get_artifact` just returned (or :func:`load_artifact` loaded)."""
    return _VERIFIED[artifact][1]


# --------------------------------------------------------------------------------------------------
# the build lock
# --------------------------------------------------------------------------------------------------

_HOST = socket.gethostname()


def _process_stat(pid: int) -> tuple[str, int] | None:
    """(state, start time in clock ticks since boot) of a process from ``/proc``; None where that cannot
    be read; FileNotFoundError when ``/proc`` exists but the process does not."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        if Path("/proc/self/stat").exists():
            raise
        return None
    except OSError:
        return None
    try:
        fields = text[text.rindex(")") + 2 :].split()
        return fields[0], int(fields[19])
    except (ValueError, IndexError):
        return None


def _own_start() -> int | None:
    try:
        found = _process_stat(os.getpid())
    except FileNotFoundError:
        return None
    return found[1] if found else None


def _owner_alive(owner: dict[str, Any]) -> bool | None:
    """Whether a lock's owner still runs; None where that cannot be told (another host)."""
    pid = owner.get("pid")
    if owner.get("host") != _HOST or not isinstance(pid, int) or pid <= 0:
        return None
    try:
        found = _process_stat(pid)
    except FileNotFoundError:
        return False
    if found is not None:
        state, start = found
        return state not in "ZXx" and owner.get("start") in (None, start)
    return process_alive(pid)


class _LockState(NamedTuple):
    """A lock as a waiting process sees it."""

    owner: dict[str, Any] | None  # None: unreadable
    age: float
    inode: int


def _read_lock(path: Path) -> _LockState | None:
    """The lock at ``path``, None when there is none."""
    try:
        with open(path, "rb") as fh:
            st = os.fstat(fh.fileno())
            raw = fh.read(4096)
    except FileNotFoundError:
        return None
    except OSError:
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            return None
        raw = b""
    try:
        owner = json.loads(raw)
    except ValueError:
        owner = None
    return _LockState(owner if isinstance(owner, dict) else None, time.time() - st.st_mtime, st.st_ino)


def _abandoned(lock: _LockState, timeout: float) -> bool:
    """Whether nobody will release ``lock``: its owner is gone, or it is too old."""
    if lock.age > timeout:
        return True
    if lock.owner is None:
        return lock.age > UNREADABLE_LOCK_SECONDS
    return _owner_alive(lock.owner) is False


def _break_lock(path: Path, seen: _LockState) -> None:
    """Remove the abandoned lock ``seen`` (moved aside first: a lock taken meanwhile is put back)."""
    grave = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex}.broken")
    try:
        os.rename(path, grave)
    except FileNotFoundError:
        return
    try:
        if os.stat(grave).st_ino != seen.inode:
            with contextlib.suppress(OSError):
                os.link(grave, path)
    finally:
        with contextlib.suppress(OSError):
            os.unlink(grave)


def _describe(lock: _LockState) -> str:
    owner = lock.owner or {}
    who = f"process {owner.get('pid')} on {owner.get('host')}" if lock.owner else "a process"
    return f"{who} (lock taken {lock.age:.0f} s ago)"


@contextlib.contextmanager
def terminate_cleanly() -> Iterator[None]:
    """While held: SIGTERM raises SystemExit (as SIGINT raises KeyboardInterrupt), so that a build or a
    command being stopped cleans up; only in the main thread and where SIGTERM has its default action."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        yield
        return

    def terminate(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


@contextlib.contextmanager
def _holding(path: Path, what: str) -> Iterator[bool]:
    """Take the lock at ``path`` if free: yields True while held (released on exit, SIGINT and SIGTERM
    included), False when another process holds it."""
    owner = {"host": _HOST, "pid": os.getpid(), "start": _own_start(), "what": what}
    with terminate_cleanly():
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
        except FileExistsError:
            yield False
            return
        except OSError as exc:
            raise WriteError(path, exc, _WRITE_HINT) from exc
        inode = os.fstat(fd).st_ino
        try:
            try:
                os.write(fd, json.dumps(owner).encode())
            except OSError as exc:
                raise WriteError(path, exc, _WRITE_HINT) from exc
            finally:
                os.close(fd)
            yield True
        finally:
            with contextlib.suppress(OSError):
                if os.stat(path).st_ino == inode:  # still ours (not broken as stale and taken by another)
                    os.unlink(path)


def _wait_for_other(paths: ArtifactPaths, what: str, timeout: float) -> None:
    """Wait while another process builds; return when it is done or its lock was broken, raise if its
    build failed; say in one line what is awaited when that takes a while."""
    start = time.monotonic()
    announced = seen_lock = False
    while True:
        if _valid_hash(paths) is not None:
            return
        lock = _read_lock(paths.lock)
        if lock is None:
            if seen_lock and paths.failed.exists():
                raise CodegenError(f"a concurrent build of {what} failed; see {paths.failed}")
            return
        seen_lock = True
        if _abandoned(lock, timeout):
            _break_lock(paths.lock, lock)
            return
        if not announced and time.monotonic() - start >= ANNOUNCE_AFTER_SECONDS:
            print(f"sobolev-rf: waiting for {_describe(lock)} to build {what} ({paths.lock})", file=sys.stderr)
            announced = True
        time.sleep(_POLL_SECONDS)


# --------------------------------------------------------------------------------------------------
# building and loading
# --------------------------------------------------------------------------------------------------


def _remove_leftovers(paths: ArtifactPaths) -> None:
    """With the lock held: the marker first (nobody trusts the rest meanwhile), the artifact, an earlier
    failure, and the temporary files of a builder that died."""
    for path in (paths.ready, paths.artifact, paths.failed):
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
    for path in paths.source.parent.glob(f".{paths.key}.*"):
        if not path.name.endswith(".broken"):
            with contextlib.suppress(OSError):
                path.unlink()


def _build(
    paths: ArtifactPaths, generate: Callable[[], str], build: Callable[[Path, Path], None] | None, what: str
) -> None:
    """Generate, build and mark one entry (the lock held)."""
    _remove_leftovers(paths)
    try:
        atomic_write_text(paths.source, generate(), FILE_MODE, _WRITE_HINT)
        if build is not None:
            tmp = paths.artifact.with_name(f".{paths.artifact.name}.{os.getpid()}.{uuid.uuid4().hex}")
            try:
                build(paths.source, tmp)
                os.chmod(tmp, 0o755)
                os.replace(tmp, paths.artifact)
            finally:
                tmp.unlink(missing_ok=True)
        atomic_write_text(paths.ready, file_hash(paths.artifact), FILE_MODE, _WRITE_HINT)
    except UserError:
        # bad input found while generating (e.g. an activation that does not parse), or a full disk: not a
        # failed build; leave nothing behind
        paths.source.unlink(missing_ok=True)
        raise
    except Exception as exc:
        with contextlib.suppress(OSError):
            os.replace(paths.source, paths.failed)
        if isinstance(exc, CodegenError):
            raise
        raise CodegenError(f"building {what} ({paths.artifact.name}) failed: {exc}") from exc
    except BaseException:
        # interrupted (SIGINT, SIGTERM): not a failure; the next process builds it
        paths.source.unlink(missing_ok=True)
        raise


def load_artifact(
    folder: Path,
    key: str,
    source_ext: str,
    artifact_ext: str,
    generate: Callable[[], str],
    load: Callable[[Path], T],
    build: Callable[[Path, Path], None] | None = None,
    what: str = "",
    timeout: float = STALE_LOCK_SECONDS,
) -> T:
    """``load(artifact)`` of a valid artifact for ``key``, generating and building it if needed.

    ``generate()`` returns the source text; ``build(source, target)`` writes the artifact to
    ``target`` (``None``: the source is the artifact). Concurrent callers build it once. An entry that
    ``load`` refuses (any exception) is built again, once; ``what`` names the entry in messages.
    """
    folder.mkdir(parents=True, exist_ok=True)
    paths = artifact_paths(folder, key, source_ext, artifact_ext)
    what = what or paths.artifact.name
    refused: str | None = None  # the hash of an entry that did not load
    built = False
    while True:
        digest = _valid_hash(paths)
        if digest is not None and digest != refused:
            try:
                return load(paths.artifact)
            except Exception as exc:
                if built:
                    raise CodegenError(f"{what} was built but does not load: {exc}") from exc
                warn(f"{what} in the cache does not load ({type(exc).__name__}: {exc}); building it again")
                refused = digest
        with _holding(paths.lock, what) as held:
            if not held:
                _wait_for_other(paths, what, timeout)
                continue
            digest = _valid_hash(paths)
            if digest is not None and digest != refused:
                continue  # built by another process meanwhile
            _build(paths, generate, build, what)
            built = True


def get_artifact(
    folder: Path,
    key: str,
    source_ext: str,
    artifact_ext: str,
    generate: Callable[[], str],
    build: Callable[[Path, Path], None] | None = None,
    timeout: float = STALE_LOCK_SECONDS,
    what: str = "",
) -> Path:
    """Path of a valid artifact for ``key`` (:func:`load_artifact` without loading)."""
    return load_artifact(folder, key, source_ext, artifact_ext, generate, lambda path: path, build, what, timeout)
