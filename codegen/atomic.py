"""Atomic file writes: a reader never sees a half-written file, and a failed write leaves nothing behind.

:func:`atomic_write_files` stages every file as a temporary file next to its target, and only when all of
them are complete on disk moves them into place with ``os.replace``. A failure while staging (read-only
folder, full disk, a file where a folder is expected) removes the temporary files and the folders it
created and raises :class:`WriteError`: one line for the user, no traceback. A staged file is named after
its target, host and process (:func:`staged_temp`), so one left by a process that was killed before it
could clean up (SIGKILL) is removed by the next write to the same target.
"""

from __future__ import annotations

import contextlib
import errno
import glob
import os
import re
import socket
import stat
import tempfile
from collections.abc import Mapping
from pathlib import Path

from ..derive.errors import UserError


class WriteError(UserError, OSError):
    """A file could not be written; the message names it, says why and what to do (an OSError too)."""

    def __init__(self, path: Path, cause: OSError, hint: str = "choose another output path") -> None:
        super().__init__(f"cannot write {path}: {_reason(path, cause)}; {hint}.")
        self.errno, self.strerror, self.filename = cause.errno, cause.strerror, str(path)

    def __str__(self) -> str:
        return str(self.args[0])


def _reason(path: Path, cause: OSError) -> str:
    """Why ``path`` cannot be written, in words (a file in the way is named)."""
    if isinstance(cause, (FileExistsError, NotADirectoryError)) or cause.errno in (errno.EEXIST, errno.ENOTDIR):
        for folder in path.parents:
            if folder.exists() and not folder.is_dir():
                return f"{folder} is a file, not a folder"
    if isinstance(cause, IsADirectoryError) or path.is_dir():
        return "it is a folder"
    return cause.strerror or str(cause) or type(cause).__name__


def _make_folders(folder: Path) -> list[Path]:
    """Create ``folder`` and its missing parents; the folders created, outermost first."""
    missing = [f for f in (folder, *folder.parents) if not f.is_dir()][::-1]
    created = []
    for f in missing:
        try:
            f.mkdir()
        except FileExistsError:
            if not f.is_dir():
                raise
            continue
        created.append(f)
    return created


#: This host in the names of staged files (letters and digits only).
_HOST = re.sub(r"[^A-Za-z0-9]", "", socket.gethostname()) or "host"


def process_alive(pid: int) -> bool:
    """Whether process ``pid`` of this host exists (a reused pid counts as alive: what it owns is kept)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        pass
    return True


def staged_temp(target: Path) -> tuple[int, str]:
    """A new temporary file next to ``target``, ``.NAME.HOST-PID-XXXXXXXX.tmp``: (descriptor, path). Staged
    files for the same target left by a dead process of this host are removed first. A target that exists and
    is neither a regular file nor a folder (a device such as /dev/full, a pipe, a socket) is refused: moving a
    staged file onto it would replace the device itself."""
    try:
        mode = os.stat(target).st_mode
    except FileNotFoundError:
        pass
    else:
        if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
            raise OSError(errno.EINVAL, "it is a device, pipe or socket, not a regular file", str(target))
    prefix = f".{target.name}.{_HOST}-"
    for old in target.parent.glob(glob.escape(prefix) + "*-*.tmp"):
        pid = old.name[len(prefix) :].split("-", 1)[0]
        if pid.isdigit() and int(pid) != os.getpid() and not process_alive(int(pid)):
            with contextlib.suppress(OSError):
                old.unlink()
    return tempfile.mkstemp(prefix=f"{prefix}{os.getpid()}-", suffix=".tmp", dir=target.parent)


def _stage(target: Path, data: bytes, mode: int) -> str:
    """Write ``data`` to a new temporary file next to ``target``, flushed to disk; its path."""
    fd, tmp = staged_temp(target)
    try:
        os.fchmod(fd, mode)
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        os.unlink(tmp)
        raise
    os.close(fd)
    return tmp


def atomic_write_files(
    files: Mapping[Path, bytes], mode: int | None = None, hint: str = "choose another output path"
) -> list[Path]:
    """Write every ``path → data``, all or nothing: each file is staged completely (folders created as
    needed), then all are moved into place. ``mode``: the files' permission bits (default ``0o666``
    less the umask). Raises :class:`WriteError` (ending in ``hint``, what to do) with nothing left
    behind when a file cannot be written."""
    if mode is None:
        umask = os.umask(0)
        os.umask(umask)
        mode = 0o666 & ~umask
    targets = [Path(p) for p in files]
    created: list[Path] = []
    staged: list[str] = []
    current = targets[0] if targets else Path()
    try:
        for current, data in zip(targets, files.values()):
            if current.is_dir():
                raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), str(current))
            created += _make_folders(current.parent)
            staged.append(_stage(current, data, mode))
        for current, tmp in zip(targets, staged):
            os.replace(tmp, current)
    except BaseException as exc:
        for tmp in staged:
            try:
                os.unlink(tmp)
            except FileNotFoundError:
                pass
        for folder in reversed(created):
            try:
                folder.rmdir()
            except OSError:
                pass
        if isinstance(exc, OSError) and not isinstance(exc, WriteError):
            raise WriteError(current, exc, hint) from exc
        raise
    return targets


def atomic_write_bytes(
    path: str | os.PathLike[str], data: bytes, mode: int | None = None, hint: str = "choose another output path"
) -> Path:
    """Write ``data`` to ``path`` through a temporary file in the same folder and ``os.replace``
    (:class:`WriteError` when it cannot be written)."""
    return atomic_write_files({Path(path): data}, mode, hint)[0]


def atomic_write_text(
    path: str | os.PathLike[str], text: str, mode: int | None = None, hint: str = "choose another output path"
) -> Path:
    """Text version of :func:`atomic_write_bytes` (UTF-8)."""
    return atomic_write_bytes(path, text.encode("utf-8"), mode, hint)
