"""Campaign stores under faults: damaged during a run, rows deleted, a full disk, a read-only folder, a value that
is not a number, tasks that stay failed; and the report's caution about z from few seeds.

The runs attach to one embedded local Dask cluster (one worker, 127.0.0.1) shared by the module; tasks are at
d = 20, a few milliseconds each.
"""

from __future__ import annotations

import contextlib
import inspect
import math
import os
import shutil
import sqlite3
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from sobolev_rf.derive.errors import UserError
from sobolev_rf.numeric import cli
from sobolev_rf.numeric.campaign import engine, results
from sobolev_rf.numeric.campaign import store as store_module
from sobolev_rf.numeric.campaign.engine import Campaign, grid, open_store, run_campaign
from sobolev_rf.numeric.campaign.results import report_rows, report_text, summarize
from sobolev_rf.numeric.campaign.store import ERRORS

D = 20


def small(seeds: int, p_over_d: tuple[float, ...] = (1.0,)) -> Campaign:
    points, axes = grid(p_over_d=list(p_over_d), n_over_d=[1.0], lam=[1e-2])
    return Campaign(points, (D,), seeds, None, axes)


def statuses(path: Path) -> dict[str, int]:
    with contextlib.closing(sqlite3.connect(path)) as conn:
        return dict(conn.execute("SELECT status, COUNT(*) FROM tasks GROUP BY status").fetchall())


def quick_check(path: Path) -> str:
    with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as conn:
        return str(conn.execute("PRAGMA quick_check").fetchone()[0])


def call(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = cli.main(argv)
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return code, out, err


@pytest.fixture(scope="module")
def scheduler() -> Iterator[str]:
    """The address of an embedded local cluster with one worker (as ``run_campaign`` starts it)."""
    client, cluster = engine._connect(None, 1, 30.0)
    try:
        yield cluster.scheduler_address
    finally:
        engine._close(client, cluster)


# -- during a run ----------------------------------------------------------------------------------------


def test_a_store_damaged_during_the_run_is_not_reported_as_success(scheduler: str, tmp_path: Path) -> None:
    """The main file truncated while the campaign runs: every result still arrives, but the run ends in a
    one-line error instead of "16 of 16 done"."""
    path = tmp_path / "s.sqlite"
    cut: list[int] = []

    def truncate(progress: engine.CampaignProgress) -> None:
        if progress.done >= 2 and not cut:
            cut.append(path.stat().st_size)
            os.truncate(path, cut[0] // 2)

    with pytest.raises(UserError) as info:
        run_campaign(small(8, (1.0, 2.0)), path, scheduler=scheduler, progress=truncate, theory=False)
    message = str(info.value)
    assert cut and "damaged" in message and "cannot be trusted" in message and "\n" not in message


def test_deleted_task_rows_are_run_again(
    scheduler: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    c = small(6)
    assert run_campaign(c, "s.sqlite", scheduler=scheduler).done == 6
    with contextlib.closing(sqlite3.connect("s.sqlite")) as conn, conn:
        conn.execute("DELETE FROM tasks WHERE seed IN (1, 4, 5)")
    code, out, _ = call(["campaign", "--store=s.sqlite", "--no-run", "--report"], capsys)
    assert code == 0 and "3 task(s) pending" in out  # only read: the missing rows count as pending
    code, _, err = call(["campaign", "--store=s.sqlite", f"--scheduler={scheduler}"], capsys)
    assert code == 0, err
    assert "6 of 6 tasks done (3 run now" in err and "3 task row(s) missing from the store were added back" in err
    assert statuses(tmp_path / "s.sqlite") == {"done": 6}


def test_a_full_disk_stops_the_run_in_one_line_and_keeps_the_store(
    scheduler: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """SQLite's own "database or disk is full" (the file may not grow by one page): exit 2 in one line, the
    store passes SQLite's check with every result stored before, and the same command finishes later."""
    monkeypatch.chdir(tmp_path)
    argv = ["campaign", "--store=s.sqlite", "--p-over-d=1", "--n-over-d=1", "--lam=0.01", f"--d={D}", "--seeds=60"]
    open_store(small(60), "s.sqlite")[1].close()
    connect = sqlite3.connect

    def no_room(*args: object, **kwargs: object) -> sqlite3.Connection:
        conn = connect(*args, **kwargs)  # type: ignore[arg-type]
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
        conn.execute(f"PRAGMA max_page_count = {pages}")
        return conn

    monkeypatch.setattr(store_module.sqlite3, "connect", no_room)
    code, _, err = call([*argv, f"--scheduler={scheduler}"], capsys)
    assert code == 2 and len(err.splitlines()) == 1 and "the disk is full" in err, err
    monkeypatch.setattr(store_module.sqlite3, "connect", connect)
    assert quick_check(tmp_path / "s.sqlite") == "ok"
    stored = statuses(tmp_path / "s.sqlite")
    assert 0 < stored["done"] < 60
    code, _, err = call([*argv, f"--scheduler={scheduler}"], capsys)
    assert code == 0 and f"60 of 60 tasks done ({60 - stored['done']} run now" in err


def test_failed_tasks_are_counted_with_their_remedy_and_exit_1(
    scheduler: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Tasks whose workers kept dying are stored as failed: a plain rerun runs nothing, says how many failed
    and how to retry them, and exits 1; --retry-failed runs them."""
    monkeypatch.chdir(tmp_path)
    c = small(4)
    assert run_campaign(c, "s.sqlite", scheduler=scheduler).done == 4
    killed = "Dask: Attempted to run task 'sim-x' on 4 different workers, but all those workers died while running it."
    with contextlib.closing(sqlite3.connect("s.sqlite")) as conn, conn:
        conn.execute("UPDATE tasks SET status = 'failed', eps_L2 = NULL, message = ? WHERE seed IN (0, 2)", (killed,))
    code, _, err = call(["campaign", "--store=s.sqlite"], capsys)
    assert code == 1 and "2 of 4 tasks done (0 run now)" in err
    assert "2 failed (e.g. Dask: Attempted" in err and "--retry-failed" in err
    code, _, err = call(["campaign", "--store=s.sqlite", "--retry-failed", f"--scheduler={scheduler}"], capsys)
    assert code == 0 and "4 of 4 tasks done (2 run now" in err and "failed" not in err


# -- reading ---------------------------------------------------------------------------------------------


def test_a_value_that_is_not_a_number_names_its_row(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    c = small(3)
    campaign, st = open_store(c, "s.sqlite")
    with st:
        for key, *_ in st.pending_tasks():
            st.record_task(key, {"status": "done", "errors": dict.fromkeys(ERRORS, 0.5)})
    with contextlib.closing(sqlite3.connect("s.sqlite")) as conn, conn:
        conn.execute("UPDATE tasks SET eps_grad = 'n/a' WHERE seed = 1")
    code, out, err = call(["campaign", "--store=s.sqlite", "--no-run", "--export=t.csv", "--report"], capsys)
    assert code == 2 and out == "" and len(err.splitlines()) == 1
    assert "eps_grad column of the task of point 0, d = 20, seed = 1 holds 'n/a', not a number" in err
    assert not (tmp_path / "t.csv").exists()


@contextlib.contextmanager
def unprivileged() -> Iterator[None]:
    """Run the block without the power to write where permissions forbid it: as root, under the effective
    user id of ``nobody`` (restored afterwards); otherwise as is."""
    if os.geteuid() != 0:
        yield
        return
    os.setresuid(-1, 65534, -1)
    try:
        yield
    finally:
        os.setresuid(-1, 0, -1)


@pytest.fixture
def open_folder() -> Iterator[Path]:
    """A folder that every user can reach (the test folder of a root run is private to root)."""
    folder = Path(tempfile.mkdtemp(prefix="sobolev-rf-ro-"))
    os.chmod(folder, 0o755)
    try:
        yield folder
    finally:
        for path in (folder, *folder.rglob("*")):
            if path.is_dir():
                os.chmod(path, 0o777)
        shutil.rmtree(folder)


def test_a_store_in_a_read_only_folder_is_read(open_folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--no-run, --export and --report read an intact store whose folder cannot be written."""
    shelf, out = open_folder / "shelf", open_folder / "out"
    shelf.mkdir()
    out.mkdir(mode=0o777)
    os.chmod(out, 0o777)
    c = small(3)
    campaign, st = open_store(c, shelf / "s.sqlite")
    with st:
        for i, (key, *_) in enumerate(st.pending_tasks()):
            st.record_task(key, {"status": "done", "errors": dict.fromkeys(ERRORS, 0.5 + i / 10)})
        st.record_theory(c.point_keys[0], {"status": "done", "errors": dict.fromkeys(ERRORS, 0.55)})
    argv = ["campaign", f"--store={shelf / 's.sqlite'}", "--no-run", "--report"]
    shutil.copytree(shelf, open_folder / "copy")  # once in a writable folder: every module the command needs
    assert cli.main([*argv[:1], f"--store={open_folder / 'copy' / 's.sqlite'}", *argv[2:]]) == 0
    capsys.readouterr()
    os.chmod(shelf, 0o555)
    before = sorted(p.name for p in shelf.iterdir())
    with unprivileged():
        assert not os.access(shelf, os.W_OK, effective_ids=True)
        code, report, err = call([*argv, f"--export={out / 't.csv'}"], capsys)
    assert code == 0, err
    assert "wrote 3 tasks" in err and len((out / "t.csv").read_text().splitlines()) == 2 + 3
    assert report.startswith("| σ | φ |") and "| relu | tanh |" in report and "5 comparisons" in report
    assert sorted(p.name for p in shelf.iterdir()) == before


# -- the report ------------------------------------------------------------------------------------------


def test_the_report_weighs_z_by_the_number_of_seeds(tmp_path: Path) -> None:
    """z from 2 seeds (se itself from 2 values) ranks below a smaller z from 30 seeds, is marked, and the
    report says what |z| means at that number of seeds (Student's t with S − 1 degrees of freedom)."""
    from scipy.stats import t

    points, axes = grid(p_over_d=[1.0, 2.0], n_over_d=[1.0], lam=[1e-2])
    c = Campaign(points, (D,), 30, None, axes)
    campaign, st = open_store(c, tmp_path / "s.sqlite")
    with st:
        few, many = c.point_keys
        pending = st.pending_tasks()
        for key, point, _, seed in pending:
            # point 0: seeds 0 and 1 only, mean 1 and se 0.01 against 0.5: z = 50; point 1: 30 seeds,
            # mean 1 and se 0.12 against 0.4: z = 5
            if point == few and seed < 2:
                value = 1.0 + (0.01 if seed else -0.01)
            elif point == many:
                value = 1.0 + 0.12 * math.sqrt(29) * (1 if seed % 2 else -1)
            else:
                continue
            st.record_task(key, {"status": "done", "errors": dict.fromkeys(ERRORS, value)})
        st.record_theory(few, {"status": "done", "errors": dict.fromkeys(ERRORS, 0.5)})
        st.record_theory(many, {"status": "done", "errors": dict.fromkeys(ERRORS, 0.4)})
        rows = summarize(campaign, st)
    assert [round(rows[0]["eps_L2_z"], 6), round(rows[1]["eps_L2_z"], 6)] == [50.0, 5.0]
    top = report_rows(rows, 10)
    assert [x["seeds"] for x in top[:5]] == [30] * 5 and [x["seeds"] for x in top[5:]] == [2] * 5
    assert top[0]["p"] == pytest.approx(2 * t.sf(5.0, 29), rel=1e-9)
    assert top[-1]["p"] == pytest.approx(2 * t.sf(50.0, 1), rel=1e-9)  # about 0.013: no strong evidence
    text = report_text(rows, 10)
    lines = text.splitlines()
    assert sum("| 2† |" in line for line in lines) == 5 and "p (t-test)" in lines[0]
    assert "10 comparisons" in text and "5 from fewer than 5 seeds (†)" in text
    assert "Student's t with S − 1 degrees of freedom, so with S = 2 seeds |z| > 12.7" in text
    assert "28 task(s) pending" in text


# -- code ------------------------------------------------------------------------------------------------


def test_only_the_store_touches_its_connection() -> None:
    for module in (engine, results):
        assert "._conn" not in inspect.getsource(module), module.__name__
