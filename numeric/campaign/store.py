"""The SQLite store of a campaign: one row per task, one per model point, and the campaign it belongs to.

Layout (format version :data:`FORMAT_VERSION`):

- ``meta(key, value)``: ``format`` (the marker :data:`FORMAT_MARKER`), ``version``, ``fingerprint`` (the
  hash of the campaign, :meth:`~sobolev_rf.numeric.campaign.engine.Campaign.fingerprint`) and ``spec`` (the
  campaign as JSON, enough to rebuild it);
- ``points(point_key, idx, params, theory_status, theory_message, <errors>)``: each model point, its
  parameters as JSON and its d → ∞ theory value (filled in when the theory task returns);
- ``tasks(task_key, point_key, d, seed, status, <errors>, message, seconds, worker, finished_at)``: every
  (point, d, seed), created ``pending`` with the store and turned ``done`` or ``failed`` as its result
  arrives.

A new store is built in a temporary file next to the target and linked into place only when complete, so a
reader never sees a half-made store and an existing file is never replaced. The journal is in WAL mode and
every result is committed on its own, so a client killed at any moment loses at most the results that had
not arrived yet. Only the client process writes; a ``flock`` on the database file keeps a second client
from running the same store at the same time (it goes with the process, also on SIGKILL).
SQLite stores NaN as NULL; NULL errors read back as NaN.
"""

from __future__ import annotations

import json
import math
import os
import sqlite3
import tempfile
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from ...derive.errors import UserError

#: The five reported errors (MODEL.md), stored per task and per point (theory).
ERRORS = ("eps_L2", "eps_H1", "eps_grad", "train_loss", "train_error_L2")
FORMAT_MARKER = "sobolev-rf campaign store"
FORMAT_VERSION = "1"
STATUSES = ("pending", "done", "failed")

_ERROR_COLUMNS = ", ".join(f"{e} REAL" for e in ERRORS)
SCHEMA = f"""
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE points (
    point_key TEXT PRIMARY KEY,
    idx INTEGER NOT NULL UNIQUE,
    params TEXT NOT NULL,
    theory_status TEXT NOT NULL DEFAULT 'pending' CHECK (theory_status IN ('pending', 'done', 'failed')),
    theory_message TEXT,
    {_ERROR_COLUMNS}
);
CREATE TABLE tasks (
    task_key TEXT PRIMARY KEY,
    point_key TEXT NOT NULL REFERENCES points(point_key),
    d INTEGER NOT NULL,
    seed INTEGER NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'done', 'failed')),
    {_ERROR_COLUMNS},
    message TEXT,
    seconds REAL,
    worker TEXT,
    finished_at REAL,
    UNIQUE (point_key, d, seed)
);
CREATE INDEX tasks_status ON tasks(status);
"""


def _real(value: Any) -> float:
    """A stored REAL (NULL → NaN)."""
    return math.nan if value is None else float(value)


def _sql_value(value: Any) -> float | None:
    """A float for SQLite (NaN and ±inf as NULL: SQLite has no NaN)."""
    if value is None:
        return None
    x = float(value)
    return x if math.isfinite(x) else None


class Store:
    """An open campaign store (use :meth:`open`); a context manager that closes it."""

    def __init__(self, path: Path, conn: sqlite3.Connection, lock_fd: int | None) -> None:
        self.path = path
        self._conn = conn
        self._lock_fd = lock_fd
        meta = dict(conn.execute("SELECT key, value FROM meta"))
        self.fingerprint: str = meta["fingerprint"]
        self.spec: dict[str, Any] = json.loads(meta["spec"])

    # -- opening -------------------------------------------------------------------------------------

    @classmethod
    def open(
        cls,
        path: str | os.PathLike[str],
        spec: Mapping[str, Any] | None = None,
        fingerprint: str | None = None,
        points: Sequence[tuple[str, Mapping[str, Any]]] = (),
        tasks: Iterable[tuple[str, str, int, int]] = (),
        *,
        lock: bool = True,
        readonly: bool = False,
    ) -> Store:
        """Open the store at ``path``, creating it when it does not exist and ``spec`` is given.

        ``spec``/``fingerprint`` describe the campaign the caller means; an existing store must hold the
        same fingerprint (else UserError, and nothing is written). ``points`` are (point_key, params) in
        order and ``tasks`` (task_key, point_key, d, seed): used only to create the store. ``lock`` takes
        the run lock (UserError when another process holds it). ``readonly`` opens without writing.
        """
        target = Path(path)
        if target.exists() or target.is_symlink():
            store = cls._open_existing(target, lock=lock, readonly=readonly)
            if fingerprint is not None and store.fingerprint != fingerprint:
                why = describe_difference(store.spec, spec or {})
                store.close()
                raise UserError(
                    f"{target} holds another campaign ({why}); give the same campaign options, omit "
                    "them to resume the stored campaign, or use another --store."
                )
            return store
        if spec is None or fingerprint is None or readonly:
            raise UserError(f"{target} does not exist; give the campaign options to create it.")
        cls._create(target, spec, fingerprint, points, tasks)
        return cls._open_existing(target, lock=lock, readonly=False)

    @classmethod
    def _open_existing(cls, target: Path, *, lock: bool, readonly: bool) -> Store:
        if not target.is_file():
            raise UserError(f"{target} is not a regular file, so it cannot be a campaign store.")
        lock_fd = None
        conn = None
        try:
            mode = "ro" if readonly else "rw"
            conn = sqlite3.connect(
                f"file:{_uri_path(target)}?mode={mode}",
                uri=True,
                isolation_level=None,
                timeout=30.0,
                check_same_thread=False,
            )
            tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            if not {"meta", "points", "tasks"} <= tables:
                raise UserError(
                    f"{target} is an SQLite database but not a sobolev-rf campaign store "
                    "(no meta, points and tasks tables); use another --store."
                )
            meta = dict(conn.execute("SELECT key, value FROM meta"))
            if meta.get("format") != FORMAT_MARKER or "fingerprint" not in meta or "spec" not in meta:
                raise UserError(
                    f"{target} is an SQLite database but not a sobolev-rf campaign store; use another --store."
                )
            if meta.get("version") != FORMAT_VERSION:
                raise UserError(
                    f"{target} is a campaign store of format {meta.get('version')!r}, this version "
                    f"reads format {FORMAT_VERSION!r}."
                )
            check = " ".join(str(conn.execute("PRAGMA quick_check(1)").fetchone()[0]).split())
            if check != "ok":
                raise UserError(f"{target} is a corrupt campaign store (SQLite: {check[:200]}); use another --store.")
            json.loads(meta["spec"])
            if lock and not readonly:
                lock_fd = _take_lock(target)
            if not readonly:
                conn.execute("PRAGMA journal_mode = WAL")
                conn.execute("PRAGMA synchronous = NORMAL")
            return cls(target, conn, lock_fd)
        except sqlite3.DatabaseError as exc:
            _close_quietly(conn, lock_fd)
            raise UserError(
                f"{target} is not a readable campaign store ({_one_line(exc)}); use another --store."
            ) from None
        except json.JSONDecodeError:
            _close_quietly(conn, lock_fd)
            raise UserError(f"{target} is a corrupt campaign store (its campaign record is not JSON).") from None
        except BaseException:
            _close_quietly(conn, lock_fd)
            raise

    @staticmethod
    def _create(
        target: Path,
        spec: Mapping[str, Any],
        fingerprint: str,
        points: Sequence[tuple[str, Mapping[str, Any]]],
        tasks: Iterable[tuple[str, str, int, int]],
    ) -> None:
        """Build the store in a temporary file and link it into place (never over an existing file)."""
        parent = target.parent if str(target.parent) else Path(".")
        if not parent.is_dir():
            raise UserError(f"the folder of --store {target} does not exist.")
        try:
            fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=parent)
        except OSError as exc:
            raise UserError(f"cannot create the store {target}: {exc.strerror}.") from None
        umask = os.umask(0)
        os.umask(umask)
        os.fchmod(fd, 0o666 & ~umask)
        os.close(fd)
        tmp = Path(tmp_name)
        try:
            conn = sqlite3.connect(tmp, isolation_level=None)
            try:
                conn.execute("PRAGMA journal_mode = DELETE")
                conn.execute("BEGIN")
                for statement in SCHEMA.split(";"):
                    if statement.strip():
                        conn.execute(statement)
                conn.executemany(
                    "INSERT INTO meta (key, value) VALUES (?, ?)",
                    [
                        ("format", FORMAT_MARKER),
                        ("version", FORMAT_VERSION),
                        ("fingerprint", fingerprint),
                        ("spec", json.dumps(spec, sort_keys=True)),
                        ("created_at", repr(time.time())),
                    ],
                )
                conn.executemany(
                    "INSERT INTO points (point_key, idx, params) VALUES (?, ?, ?)",
                    [(key, i, json.dumps(dict(params), sort_keys=True)) for i, (key, params) in enumerate(points)],
                )
                conn.executemany("INSERT INTO tasks (task_key, point_key, d, seed) VALUES (?, ?, ?, ?)", tasks)
                conn.execute("COMMIT")
                conn.execute("PRAGMA journal_mode = WAL")
            finally:
                conn.close()
            try:
                os.link(tmp, target)  # fails if the target appeared meanwhile: nothing is overwritten
            except FileExistsError:
                raise UserError(f"{target} appeared while the store was being created; run again.") from None
            except OSError:  # file systems without hard links
                if target.exists():
                    raise UserError(f"{target} appeared while the store was being created; run again.") from None
                os.replace(tmp, target)
        finally:
            for leftover in (tmp, Path(f"{tmp}-journal"), Path(f"{tmp}-wal"), Path(f"{tmp}-shm")):
                try:
                    leftover.unlink()
                except FileNotFoundError:
                    pass

    # -- reading -------------------------------------------------------------------------------------

    def counts(self) -> dict[str, int]:
        """Number of tasks per status."""
        out = dict.fromkeys(STATUSES, 0)
        out.update(dict(self._conn.execute("SELECT status, COUNT(*) FROM tasks GROUP BY status")))
        return out

    def pending_tasks(self, retry_failed: bool = False) -> list[tuple[str, str, int, int]]:
        """(task_key, point_key, d, seed) of the tasks still to run, in campaign order."""
        statuses = ("pending", "failed") if retry_failed else ("pending",)
        marks = ", ".join("?" * len(statuses))
        return list(
            self._conn.execute(
                f"SELECT t.task_key, t.point_key, t.d, t.seed FROM tasks t JOIN points p USING (point_key) "
                f"WHERE t.status IN ({marks}) ORDER BY p.idx, t.d, t.seed",
                statuses,
            )
        )

    def pending_theory(self) -> list[str]:
        """Point keys whose theory value is not stored yet (failed ones count as stored)."""
        return [
            row[0]
            for row in self._conn.execute("SELECT point_key FROM points WHERE theory_status = 'pending' ORDER BY idx")
        ]

    def points(self) -> list[dict[str, Any]]:
        """Every point in order: ``key``, ``params`` (dict), ``theory_status``, ``theory_message``, ``theory``."""
        cols = ", ".join(ERRORS)
        out = []
        for row in self._conn.execute(
            f"SELECT point_key, params, theory_status, theory_message, {cols} FROM points ORDER BY idx"
        ):
            out.append(
                {
                    "key": row[0],
                    "params": json.loads(row[1]),
                    "theory_status": row[2],
                    "theory_message": row[3],
                    "theory": {e: _real(v) for e, v in zip(ERRORS, row[4:])},
                }
            )
        return out

    def tasks(self) -> list[dict[str, Any]]:
        """Every task in campaign order: keys, d, seed, status, the five errors, message, seconds, worker."""
        cols = ", ".join(f"t.{e}" for e in ERRORS)
        out = []
        for row in self._conn.execute(
            f"SELECT t.task_key, t.point_key, t.d, t.seed, t.status, {cols}, t.message, t.seconds, t.worker "
            "FROM tasks t JOIN points p USING (point_key) ORDER BY p.idx, t.d, t.seed"
        ):
            n = len(ERRORS)
            out.append(
                {
                    "key": row[0],
                    "point_key": row[1],
                    "d": row[2],
                    "seed": row[3],
                    "status": row[4],
                    "errors": {e: _real(v) for e, v in zip(ERRORS, row[5 : 5 + n])},
                    "message": row[5 + n],
                    "seconds": row[6 + n],
                    "worker": row[7 + n],
                }
            )
        return out

    # -- writing (client only) -----------------------------------------------------------------------

    def record_task(self, task_key: str, result: Mapping[str, Any]) -> None:
        """Store one task's result (``status`` done/failed, ``errors``, ``message``, ``seconds``, ``worker``)."""
        status = result["status"]
        if status not in ("done", "failed"):
            raise ValueError(f"bad task status {status!r}")
        errors = result.get("errors") or {}
        sets = ", ".join(f"{e} = ?" for e in ERRORS)
        self._write(
            f"UPDATE tasks SET status = ?, {sets}, message = ?, seconds = ?, worker = ?, finished_at = ? "
            "WHERE task_key = ?",
            (
                status,
                *[_sql_value(errors.get(e)) for e in ERRORS],
                result.get("message"),
                _sql_value(result.get("seconds")),
                result.get("worker"),
                time.time(),
                task_key,
            ),
        )

    def _write(self, sql: str, values: Sequence[Any]) -> None:
        """One statement in its own committed transaction."""
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            self._conn.execute(sql, values)
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        self._conn.execute("COMMIT")

    def record_theory(self, point_key: str, result: Mapping[str, Any]) -> None:
        """Store a point's theory value (``status`` done/failed, ``errors``, ``message``)."""
        errors = result.get("errors") or {}
        sets = ", ".join(f"{e} = ?" for e in ERRORS)
        self._write(
            f"UPDATE points SET theory_status = ?, theory_message = ?, {sets} WHERE point_key = ?",
            (result["status"], result.get("message"), *[_sql_value(errors.get(e)) for e in ERRORS], point_key),
        )

    def close(self) -> None:
        _close_quietly(self._conn, self._lock_fd)
        self._lock_fd = None

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def describe_difference(stored: Mapping[str, Any], wanted: Mapping[str, Any]) -> str:
    """Which part of two campaign specs differs, in a few words."""
    parts = []
    for name, label in (("ds", "d values"), ("seeds", "seeds"), ("n_test", "n_test")):
        if stored.get(name) != wanted.get(name):
            parts.append(f"{label} {stored.get(name)} there, {wanted.get(name)} here")
    sp, wp = stored.get("points", []), wanted.get("points", [])
    if sp != wp:
        if len(sp) != len(wp):
            parts.append(f"{len(sp)} points there, {len(wp)} here")
        else:
            i = next(i for i, (a, b) in enumerate(zip(sp, wp)) if a != b)
            diff = [k for k in sorted(set(sp[i]) | set(wp[i])) if sp[i].get(k) != wp[i].get(k)]
            parts.append(f"point {i} differs in {', '.join(diff)}")
    return "; ".join(parts) or "its fingerprint differs"


def _uri_path(path: Path) -> str:
    from urllib.parse import quote

    return quote(str(path.resolve()))


def _take_lock(target: Path) -> int | None:
    """An exclusive ``flock`` on the store (released when the process ends). None where flock is missing."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover (not POSIX)
        return None
    fd = os.open(target, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise UserError(
            f"{target} is in use by another running campaign; wait for it or use another --store."
        ) from None
    return fd


def _close_quietly(conn: sqlite3.Connection | None, lock_fd: int | None) -> None:
    # the SQLite connection first: closing another descriptor of the file would drop SQLite's POSIX locks
    if conn is not None:
        try:
            conn.close()
        except sqlite3.Error:
            pass
    if lock_fd is not None:
        os.close(lock_fd)


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text or type(exc).__name__
