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

Faults become one-line :class:`UserError` s: a write that fails (a full disk) is rolled back, so the store keeps
every result committed before it; a store whose pages are damaged raises :class:`CorruptStore`; a value
that is not a number where a number belongs names its row and column. A store in a folder that cannot be
written is read with SQLite's ``immutable`` flag (its journal then cannot hold anything unmerged).
"""

from __future__ import annotations

import json
import math
import os
import sqlite3
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, NoReturn

from ...codegen.atomic import staged_temp
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


class CorruptStore(UserError):
    """A store whose SQLite pages are damaged; ``detail`` is SQLite's own word on it."""

    def __init__(self, message: str, detail: str) -> None:
        super().__init__(message)
        self.detail = detail


class _NotANumber(ValueError):
    def __init__(self, column: str, value: Any) -> None:
        super().__init__(column)
        self.column = column
        self.value = value


def _reals(columns: Sequence[str], values: Sequence[Any]) -> dict[str, float]:
    """Stored REALs by column (NULL → NaN); anything but a number raises :class:`_NotANumber`."""
    out = {}
    for column, value in zip(columns, values):
        if value is None:
            out[column] = math.nan
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            out[column] = float(value)
        else:
            raise _NotANumber(column, value)
    return out


def _damaged_value(path: Path, row: str, bad: _NotANumber) -> UserError:
    shown = bad.value[:40] if isinstance(bad.value, (str, bytes)) else bad.value
    return UserError(
        f"{path}: the {bad.column} column of {row} holds {shown!r}, not a number: the store was edited or "
        "damaged; delete that row (the next run computes it again) or use another --store."
    )


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
            conn = _connect(target, "ro" if readonly else "rw")
            try:
                tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            except sqlite3.OperationalError as exc:
                if not (readonly and _cannot_write_beside(exc)):
                    raise
                # a WAL store in a folder that cannot be written: SQLite cannot make its shared-memory file,
                # but a store closed cleanly (no -wal left) is complete in its main file
                conn.close()
                conn = None
                if _has_journal(target):
                    raise UserError(
                        f"{target} has results in {target.name}-wal that are not merged yet, and its folder cannot "
                        "be written; copy the store with its -wal file into a writable folder."
                    ) from None
                conn = _connect(target, "ro&immutable=1")
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
                raise CorruptStore(
                    f"{target} is a corrupt campaign store (SQLite: {check[:200]}); use another --store.", check[:200]
                )
            json.loads(meta["spec"])
            if lock and not readonly:
                lock_fd = _take_lock(target)
            if not readonly:
                conn.execute("PRAGMA journal_mode = WAL")
                conn.execute("PRAGMA synchronous = NORMAL")
            return cls(target, conn, lock_fd)
        except sqlite3.DatabaseError as exc:
            _close_quietly(conn, lock_fd)
            if not readonly and _cannot_write_beside(exc):
                raise UserError(
                    f"{target} cannot be written here ({_one_line(exc)}); read it with --no-run, or copy it into "
                    "a writable folder to run it."
                ) from None
            if _errorname(exc) == "SQLITE_FULL":
                raise UserError(f"{target} cannot be opened: the disk is full; free some space.") from None
            detail = _one_line(exc)
            raise CorruptStore(
                f"{target} is not a readable campaign store ({detail}); use another --store.", detail
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
            fd, tmp_name = staged_temp(parent / target.name)
        except OSError as exc:
            raise UserError(f"cannot create the store {target}: {exc.strerror}.") from None
        umask = os.umask(0)
        os.umask(umask)
        os.fchmod(fd, 0o666 & ~umask)
        os.close(fd)
        tmp = Path(tmp_name)
        try:
            try:
                Store._fill(tmp, spec, fingerprint, points, tasks)
            except sqlite3.Error as exc:
                why = "the disk is full" if _errorname(exc) == "SQLITE_FULL" else _one_line(exc)
                raise UserError(f"cannot create the store {target} ({why}); nothing was written.") from None
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

    @staticmethod
    def _fill(
        tmp: Path,
        spec: Mapping[str, Any],
        fingerprint: str,
        points: Sequence[tuple[str, Mapping[str, Any]]],
        tasks: Iterable[tuple[str, str, int, int]],
    ) -> None:
        """Write the schema, the campaign record and every point and task (pending) into the new file."""
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

    def first_failure(self) -> str | None:
        """The message of one failed task (None when no task failed)."""
        row = self._conn.execute("SELECT message FROM tasks WHERE status = 'failed' LIMIT 1").fetchone()
        return None if row is None else row[0]

    def points(self) -> list[dict[str, Any]]:
        """Every point in order: ``key``, ``params`` (dict), ``theory_status``, ``theory_message``, ``theory``."""
        cols = ", ".join(ERRORS)
        out = []
        for row in self._conn.execute(
            f"SELECT point_key, params, theory_status, theory_message, {cols}, idx FROM points ORDER BY idx"
        ):
            idx = row[-1]
            try:
                params = json.loads(row[1])
                if not isinstance(params, dict):
                    raise ValueError
            except (TypeError, ValueError):
                raise UserError(
                    f"{self.path}: the parameters of point {idx} are not a JSON record: the store was edited or "
                    "damaged; use another --store."
                ) from None
            try:
                theory = _reals(ERRORS, row[4:-1])
            except _NotANumber as bad:
                raise _damaged_value(self.path, f"point {idx} (its theory value)", bad) from None
            out.append(
                {
                    "key": row[0],
                    "params": params,
                    "theory_status": row[2],
                    "theory_message": row[3],
                    "theory": theory,
                }
            )
        return out

    def tasks(self) -> list[dict[str, Any]]:
        """Every task in campaign order: keys, d, seed, status, the five errors, message, seconds, worker."""
        cols = ", ".join(f"t.{e}" for e in ERRORS)
        n = len(ERRORS)
        out = []
        for row in self._conn.execute(
            f"SELECT t.task_key, t.point_key, t.d, t.seed, t.status, {cols}, t.message, t.seconds, t.worker, p.idx "
            "FROM tasks t JOIN points p USING (point_key) ORDER BY p.idx, t.d, t.seed"
        ):
            try:
                errors = _reals(ERRORS, row[5 : 5 + n])
                seconds = None if row[6 + n] is None else _reals(("seconds",), (row[6 + n],))["seconds"]
            except _NotANumber as bad:
                where = f"the task of point {row[-1]}, d = {row[2]}, seed = {row[3]}"
                raise _damaged_value(self.path, where, bad) from None
            out.append(
                {
                    "key": row[0],
                    "point_key": row[1],
                    "d": row[2],
                    "seed": row[3],
                    "status": row[4],
                    "errors": errors,
                    "message": row[5 + n],
                    "seconds": seconds,
                    "worker": row[7 + n],
                }
            )
        return out

    def holds_grid(self, point_keys: Sequence[str], ds: Sequence[int], seeds: int) -> bool:
        """Whether the store holds a row for every point and every (point, d, seed) of the grid: every point
        key, and as many task rows on those points, d values and seeds as the grid has (the row of a
        (point, d, seed) is unique)."""
        stored = {row[0] for row in self._conn.execute("SELECT point_key FROM points")}
        if not stored >= set(point_keys):
            return False
        marks = ", ".join("?" * len(ds))
        (count,) = self._conn.execute(
            f"SELECT COUNT(*) FROM tasks WHERE d IN ({marks}) AND seed >= 0 AND seed < ?", (*ds, seeds)
        ).fetchone()
        return bool(count == len(point_keys) * len(ds) * seeds)

    # -- writing (client only) -----------------------------------------------------------------------

    def restore_rows(
        self, points: Sequence[tuple[str, Mapping[str, Any]]], tasks: Iterable[tuple[str, str, int, int]]
    ) -> int:
        """Add, as pending, the rows of ``points`` (point_key, params, in order) and ``tasks`` (task_key,
        point_key, d, seed) that the store lacks (rows deleted from it); returns how many task rows were added."""
        self._begin()
        try:
            self._conn.executemany(
                "INSERT OR IGNORE INTO points (point_key, idx, params) VALUES (?, ?, ?)",
                [(key, i, json.dumps(dict(params), sort_keys=True)) for i, (key, params) in enumerate(points)],
            )
            before = self._conn.total_changes
            self._conn.executemany(
                "INSERT OR IGNORE INTO tasks (task_key, point_key, d, seed) VALUES (?, ?, ?, ?)", tasks
            )
            added = self._conn.total_changes - before
        except BaseException as exc:
            self._rollback(exc)
        self._commit()
        return added

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

    def record_theory(self, point_key: str, result: Mapping[str, Any]) -> None:
        """Store a point's theory value (``status`` done/failed, ``errors``, ``message``)."""
        errors = result.get("errors") or {}
        sets = ", ".join(f"{e} = ?" for e in ERRORS)
        self._write(
            f"UPDATE points SET theory_status = ?, theory_message = ?, {sets} WHERE point_key = ?",
            (result["status"], result.get("message"), *[_sql_value(errors.get(e)) for e in ERRORS], point_key),
        )

    def _write(self, sql: str, values: Sequence[Any]) -> None:
        """One statement in its own committed transaction."""
        self._begin()
        try:
            self._conn.execute(sql, values)
        except BaseException as exc:
            self._rollback(exc)
        self._commit()

    def _begin(self) -> None:
        try:
            self._conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise self._write_error(exc) from None

    def _commit(self) -> None:
        try:
            self._conn.execute("COMMIT")
        except sqlite3.Error as exc:
            self._rollback(exc)

    def _rollback(self, exc: BaseException) -> NoReturn:
        """Undo the open transaction (SQLite may have undone it already) and raise ``exc``, a failed write
        as a one-line UserError."""
        if self._conn.in_transaction:
            try:
                self._conn.execute("ROLLBACK")
            except sqlite3.Error:
                pass
        if isinstance(exc, sqlite3.Error):
            raise self._write_error(exc) from None
        raise exc

    def _write_error(self, exc: sqlite3.Error) -> UserError:
        name = _errorname(exc)
        if name == "SQLITE_FULL":
            return UserError(
                f"cannot write to the store {self.path}: the disk is full; every result stored before is kept: "
                "free some space and run the same command again to finish."
            )
        if name.startswith("SQLITE_CORRUPT") or name == "SQLITE_NOTADB":
            return UserError(
                f"the store {self.path} is damaged ({_one_line(exc)}); its results cannot be trusted: move it "
                "aside and run the campaign again into a new --store."
            )
        return UserError(
            f"cannot write to the store {self.path} ({_one_line(exc)}); every result stored before is kept: run "
            "the same command again to finish."
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


def _connect(target: Path, mode: str) -> sqlite3.Connection:
    """A connection in autocommit mode; ``mode``: the URI's ``mode=`` value (``ro``, ``rw``, ``ro&immutable=1``)."""
    return sqlite3.connect(
        f"file:{_uri_path(target)}?mode={mode}",
        uri=True,
        isolation_level=None,
        timeout=30.0,
        check_same_thread=False,
    )


def _errorname(exc: BaseException) -> str:
    return str(getattr(exc, "sqlite_errorname", ""))


def _cannot_write_beside(exc: BaseException) -> bool:
    """SQLite could not write the file or create its journal files beside it (a read-only file or folder)."""
    name = _errorname(exc)
    return name.startswith("SQLITE_READONLY") or name.startswith("SQLITE_CANTOPEN")


def _has_journal(target: Path) -> bool:
    """A non-empty ``-wal`` file beside the store: results not merged into the main file yet."""
    try:
        return Path(f"{target}-wal").stat().st_size > 0
    except OSError:
        return False


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
