"""On-disk cache of generated artifacts, safe under concurrent use by several processes.

An artifact is keyed by ``sha256(system fingerprint + generator version + backend)``. In the cache
folder (``$SOBOLEV_RF_CACHE``, else ``~/.cache/sobolev-rf``; a folder that cannot be written falls
back to a private temporary folder) the key names:

* ``KEY.<ext>``: the source. Creating it with ``open(path, "x")`` is the build lock: exactly one
  process wins and builds; its content is then written atomically over the empty lock file.
* ``KEY.<artifact ext>``: the built artifact (the source itself for NumPy, a shared library for C),
  moved into place atomically.
* ``KEY.ready``: the sha256 of the artifact, written last. An artifact is used only when its hash
  matches this marker; on a mismatch (stale or corrupted) all three files are removed and rebuilt.
* ``KEY.<ext>.failed``: a failed build renames its source here, so waiting processes stop waiting
  and report the failure; the next request tries again.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..derive.errors import UserError
from .atomic import atomic_write_text

#: Seconds a process waits for another one's build before it treats the lock as abandoned.
STALE_LOCK_SECONDS = 300.0
_POLL_SECONDS = 0.02


class CodegenError(RuntimeError):
    """Generating or building an artifact failed (here or in a concurrent process)."""


def _writable(folder: Path) -> bool:
    """Whether files can be created in ``folder`` (created if missing)."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".probe-{os.getpid()}-{uuid.uuid4().hex}"
        probe.touch()
        probe.unlink()
        return True
    except OSError:
        return False


_FOLDERS: dict[str | None, Path] = {}


def cache_dir() -> Path:
    """The cache folder: ``$SOBOLEV_RF_CACHE`` or ``~/.cache/sobolev-rf``, or a temp folder if read-only
    (probed once per process and setting)."""
    configured = os.environ.get("SOBOLEV_RF_CACHE")
    if configured not in _FOLDERS:
        folder = Path(configured) if configured else Path.home() / ".cache" / "sobolev-rf"
        if not _writable(folder):
            folder = Path(tempfile.gettempdir()) / f"sobolev-rf-cache-{os.getuid()}"
            if not _writable(folder):
                folder = Path(tempfile.mkdtemp(prefix="sobolev-rf-cache-"))
        _FOLDERS[configured] = folder
    return _FOLDERS[configured]


def artifact_key(fingerprint: str, generator_version: str, backend: str) -> str:
    """sha256 hex digest of the system fingerprint, the generator version and the backend."""
    return hashlib.sha256(f"{fingerprint}\0{generator_version}\0{backend}".encode()).hexdigest()


def file_hash(path: Path) -> str:
    """sha256 hex digest of a file's bytes."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


@dataclass(frozen=True)
class ArtifactPaths:
    """The files belonging to one cache key."""

    source: Path
    artifact: Path
    ready: Path

    @property
    def failed(self) -> Path:
        return self.source.with_name(self.source.name + ".failed")


def artifact_paths(folder: Path, key: str, source_ext: str, artifact_ext: str) -> ArtifactPaths:
    """Paths of source, artifact and ready marker of ``key`` in ``folder``."""
    return ArtifactPaths(folder / f"{key}.{source_ext}", folder / f"{key}.{artifact_ext}", folder / f"{key}.ready")


#: Artifact → (size and mtime of it and of its marker, its sha256) when its hash last matched the marker.
_VERIFIED: dict[Path, tuple[tuple[int, int, int, int], str]] = {}


def _valid(paths: ArtifactPaths) -> bool:
    """The ready marker exists and matches the artifact's hash (not hashed again while neither file changed)."""
    try:
        a, r = paths.artifact.stat(), paths.ready.stat()
        stamp = (a.st_size, a.st_mtime_ns, r.st_size, r.st_mtime_ns)
        if paths.artifact in _VERIFIED and _VERIFIED[paths.artifact][0] == stamp:
            return True
        digest = file_hash(paths.artifact)
        if paths.ready.read_text().strip() != digest:
            return False
    except OSError:
        return False
    _VERIFIED[paths.artifact] = (stamp, digest)
    return True


def verified_hash(artifact: Path) -> str:
    """The sha256 of an artifact that :func:`get_artifact` just returned."""
    return _VERIFIED[artifact][1]


def _discard(paths: ArtifactPaths) -> None:
    """Remove a stale or corrupted entry (marker first, so nobody trusts the rest meanwhile)."""
    for path in (paths.ready, paths.artifact, paths.source):
        try:
            path.unlink()
        except FileNotFoundError:
            pass


def get_artifact(
    folder: Path,
    key: str,
    source_ext: str,
    artifact_ext: str,
    generate: Callable[[], str],
    build: Callable[[Path, Path], None] | None = None,
    timeout: float = STALE_LOCK_SECONDS,
) -> Path:
    """Path of a valid artifact for ``key``, generating and building it if needed.

    ``generate()`` returns the source text; ``build(source, target)`` writes the artifact to
    ``target`` (``None``: the source is the artifact). Concurrent callers build it once.
    """
    folder.mkdir(parents=True, exist_ok=True)
    paths = artifact_paths(folder, key, source_ext, artifact_ext)
    while True:
        if _valid(paths):
            return paths.artifact
        if paths.ready.exists():
            _discard(paths)
        try:
            with open(paths.source, "x"):
                pass
        except FileExistsError:
            _wait_for_other(paths, timeout)
            continue
        try:
            atomic_write_text(paths.source, generate())
            if build is not None:
                tmp = paths.artifact.with_name(f".{paths.artifact.name}.{os.getpid()}.{uuid.uuid4().hex}")
                try:
                    build(paths.source, tmp)
                    os.replace(tmp, paths.artifact)
                finally:
                    if tmp.exists():
                        tmp.unlink()
            atomic_write_text(paths.ready, file_hash(paths.artifact))
            _valid(paths)  # records the verified hash
        except UserError:
            # bad input found while generating (e.g. an activation that does not parse): not a failed
            # build; release the lock and leave nothing behind
            paths.source.unlink(missing_ok=True)
            raise
        except BaseException as exc:
            try:
                os.replace(paths.source, paths.failed)
            except OSError:
                pass
            if isinstance(exc, Exception) and not isinstance(exc, CodegenError):
                raise CodegenError(f"building {paths.artifact.name} failed: {exc}") from exc
            raise
        return paths.artifact


def _wait_for_other(paths: ArtifactPaths, timeout: float) -> None:
    """Wait while another process holds the lock; raise if its build failed; break an abandoned lock."""
    seen = -1.0
    while True:
        if _valid(paths):
            return
        try:
            seen = paths.source.stat().st_mtime
            age = time.time() - seen
        except FileNotFoundError:
            try:
                failed_now = paths.failed.stat().st_mtime >= seen >= 0.0
            except FileNotFoundError:
                failed_now = False
            if failed_now:
                raise CodegenError(f"a concurrent build of {paths.artifact.name} failed; see {paths.failed}") from None
            return
        if paths.ready.exists() and not _valid(paths):
            return
        if age > timeout:
            try:
                paths.source.unlink()
            except FileNotFoundError:
                pass
            return
        time.sleep(_POLL_SECONDS)
