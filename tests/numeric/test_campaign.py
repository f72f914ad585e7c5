"""Campaigns: grid expansion, task keys, the SQLite store, the command line, and runs on a real local cluster.

The cluster tests start Dask's LocalCluster (bound to 127.0.0.1, ephemeral ports) through
:func:`run_campaign`; fault cases (killed workers and clients, an attached ``dask scheduler``) are in
tests/numeric/test_campaign_faults.py.
"""

from __future__ import annotations

import hashlib
import math
import sqlite3
from pathlib import Path

import pytest

from sobolev_rf.derive.errors import UserError
from sobolev_rf.derive.params import STEP_OPTIONS, ModelParams, ParameterError
from sobolev_rf.derive.values import split_list
from sobolev_rf.numeric import cli
from sobolev_rf.numeric.campaign.engine import (
    CAMPAIGN_OPTIONS,
    GRID_AXES,
    Campaign,
    campaign_from_options,
    grid,
    open_store,
    point_key,
    run_campaign,
    simulate_task,
    task_key,
)
from sobolev_rf.numeric.campaign.results import export_rows, report_rows, report_text, summarize, write_summary
from sobolev_rf.numeric.campaign.store import ERRORS, Store

#: The campaign of the cluster tests: 2 points × d = (200, 400000) × 3 seeds. Every task at d = 400000
#: asks the simulator for far more than its memory limit, so it fails at once with a one-line message.
D_OK, D_HUGE = 200, 400_000


def small_campaign() -> Campaign:
    points, axes = grid(p_over_d=[1.0, 2.0], n_over_d=[1.0], lam=[1e-2])
    return Campaign(points, (D_OK, D_HUGE), 3, None, axes)


def rows_by_key(store: Path) -> dict[str, tuple]:
    with sqlite3.connect(store) as conn:
        return {r[0]: r[1:] for r in conn.execute(f"SELECT task_key, status, {', '.join(ERRORS)}, message FROM tasks")}


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# -- grid and keys ---------------------------------------------------------------------------------------


def test_grid_is_the_outer_product_in_axis_order() -> None:
    points, axes = grid(activation=["relu", "tanh"], k=[1, 2], p_over_d=[0.5, 1.0, 1.0, 2.0], lam=[0.0, 1e-3])
    assert [name for name, _ in axes] == ["activation", "k", "tau", "p_over_d", "n_over_d", "lam", "noise_f", "noise_g"]
    assert dict(axes)["p_over_d"] == (0.5, 1.0, 2.0)  # repeated values dropped
    assert len(points) == 2 * 2 * 3 * 2
    assert (points[0].activation, points[0].k, points[0].p_over_d, points[0].lam) == ("relu", 1, 0.5, 0.0)
    assert (points[1].p_over_d, points[1].lam) == (0.5, 1e-3)  # the last axis runs fastest
    assert points[-1].activation == "tanh" and points[-1].k == 2 and points[-1].alignment == (1.0, 1.0)
    taus = grid(tau=[0, 0.5, 1.0])[0]
    assert [p.tau for p in taus] == [0, 0.5, 1] and isinstance(taus[2].tau, int)
    with pytest.raises(UserError):
        grid(activation=["x +"])
    with pytest.raises(UserError):
        grid(k=[1, 2], alignment=[0.5])  # ϖ must have k entries at every k


def test_list_splitting_keeps_commas_inside_expressions() -> None:
    assert split_list("relu, Max(0, x),x*erf(x/sqrt(2))") == ["relu", "Max(0, x)", "x*erf(x/sqrt(2))"]
    assert split_list("1:2:3,log:1:10:2") == ["1:2:3", "log:1:10:2"]


def test_a_campaign_from_option_texts() -> None:
    none = {**dict.fromkeys((*GRID_AXES, *CAMPAIGN_OPTIONS, *STEP_OPTIONS)), "step": "none"}
    assert campaign_from_options(none) is None  # no option: the store's own campaign
    c = campaign_from_options({**none, "k": "1,2", "p_over_d": "1:2:2", "d": "20,40", "seeds": "3"})
    assert c is not None and (c.ds, c.seeds, c.n_test) == ((20, 40), 3, None)
    assert c.points == tuple(ModelParams(k=k, p_over_d=p) for k in (1, 2) for p in (1.0, 2.0))
    step = campaign_from_options({**none, "step": "sobolev", "step_dirs": "shared", "tau_step": "0:1:2/d"})
    assert step is not None and dict(step.axes or ())["tau_step"] == (0.0, 1.0)
    assert {p.step_weight(10) for p in step.points} == {0.0, 0.1}
    with pytest.raises(ParameterError, match=r"^--tau-step item '1': a shared-direction step"):
        campaign_from_options({**none, "step": "sobolev", "step_dirs": "shared", "tau_step": "1"})
    with pytest.raises(ParameterError, match=r"^--eta needs a first-layer step"):
        campaign_from_options({**none, "eta": "1"})


def test_task_keys_depend_on_point_d_and_seed_only() -> None:
    a = ModelParams(p_over_d=2.0, lam=1e-3)
    b = ModelParams(p_over_d="2", lam=0.001, alignment=(1,))  # the same point, spelled differently
    assert point_key(a) == point_key(b)
    assert point_key(a) != point_key(a.with_(noise_f=1e-12))
    assert point_key(a.with_(lam=-0.0)) == point_key(a.with_(lam=0.0))
    keys = {task_key(point_key(a), d, s) for d in (100, 200) for s in range(3)}
    assert len(keys) == 6
    c = small_campaign()
    assert len(set(t[0] for t in c.tasks())) == c.size == 12
    assert Campaign.from_spec(c.spec()).fingerprint() == c.fingerprint()
    assert Campaign(c.points, c.ds, 4, None, c.axes).fingerprint() != c.fingerprint()


def test_a_task_is_the_simulator_at_its_seed() -> None:
    from sobolev_rf.numeric.simulation.exact import simulate

    point = ModelParams(k=2, p_over_d=1.5, n_over_d=0.8, lam=1e-2, noise_f=0.1)
    sim = simulate(point, d=40, seeds=[0, 3], progress=False)
    for i, seed in enumerate((0, 3)):
        out = simulate_task(point.as_dict(), 40, seed, None)
        assert out["status"] == "done"
        assert out["errors"] == {e: float(sim.per_seed[e][i]) for e in ERRORS}
    failed = simulate_task(point.as_dict(), D_HUGE, 0, None)
    assert failed["status"] == "failed" and "GiB" in failed["message"] and "\n" not in failed["message"]


def test_campaign_validation() -> None:
    points, axes = grid()
    for ds, seeds in (((1,), 1), ((50, 50), 1), ((50,), 0), ((50.5,), 1)):
        with pytest.raises(UserError):
            Campaign(points, ds, seeds)
    with pytest.raises(UserError):
        Campaign(grid(k=[3])[0], (3,), 1)  # d must exceed k
    with pytest.raises(UserError):
        Campaign(points + points, (50,), 1)


# -- the store -------------------------------------------------------------------------------------------


def test_store_round_trip_lock_and_resume_bookkeeping(tmp_path: Path) -> None:
    c = small_campaign()
    path = tmp_path / "c.sqlite"
    campaign, st = open_store(c, path)
    try:
        assert st.counts() == {"pending": 12, "done": 0, "failed": 0}
        with pytest.raises(UserError, match="in use"):
            open_store(c, path)  # a second client is refused while the first runs
        first, second = st.pending_tasks()[:2]
        values = {
            "eps_L2": 0.1 + 1e-17,
            "eps_H1": math.nan,
            "eps_grad": 3.0,
            "train_loss": 1e-300,
            "train_error_L2": 0.5,
        }
        st.record_task(first[0], {"status": "done", "errors": values, "seconds": 0.1, "worker": "h:1"})
        st.record_task(second[0], {"status": "failed", "message": "too big", "errors": {}})
    finally:
        st.close()
    with Store.open(path, c.spec(), c.fingerprint()) as st:  # reopened: nothing lost, resume skips both
        assert st.counts() == {"pending": 10, "done": 1, "failed": 1}
        assert [t[0] for t in st.pending_tasks()] == [t[0] for t in c.tasks()][2:]
        assert len(st.pending_tasks(retry_failed=True)) == 11
        got = next(t for t in st.tasks() if t["key"] == first[0])["errors"]
        assert math.isnan(got.pop("eps_H1")) and got == {k: v for k, v in values.items() if k != "eps_H1"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.sqlite"]


def test_store_of_another_campaign_or_corrupt_is_refused_untouched(tmp_path: Path) -> None:
    c = small_campaign()
    path = tmp_path / "c.sqlite"
    open_store(c, path)[1].close()
    before = digest(path)
    other = Campaign(c.points, (D_OK,), 3, None, c.axes)
    with pytest.raises(UserError, match="another campaign.*d values"):
        run_campaign(other, path, workers=1)
    assert digest(path) == before
    garbage = tmp_path / "garbage.sqlite"
    garbage.write_bytes(b"not a database" * 100)
    foreign = tmp_path / "foreign.sqlite"
    with sqlite3.connect(foreign) as conn:
        conn.execute("CREATE TABLE t (x)")
    damaged = tmp_path / "damaged.sqlite"
    data = bytearray(path.read_bytes())
    data[len(data) // 2 : len(data) // 2 + 2048] = b"\xff" * 2048
    damaged.write_bytes(bytes(data))
    for bad in (garbage, foreign, damaged, tmp_path):
        snapshot = sorted(p.name for p in tmp_path.iterdir())
        sums = {p.name: digest(p) for p in tmp_path.iterdir() if p.is_file()}
        with pytest.raises(UserError) as info:
            run_campaign(c, bad, workers=1)
        assert "\n" not in str(info.value)
        assert sorted(p.name for p in tmp_path.iterdir()) == snapshot
        assert {p.name: digest(p) for p in tmp_path.iterdir() if p.is_file()} == sums


# -- the command line ------------------------------------------------------------------------------------

BAD_COMMAND_LINES = [
    ["campaign"],  # --store is required
    ["campaign", "--store=s.sqlite", "--p-over-d=0"],
    ["campaign", "--store=s.sqlite", "--p-over-d=1:2"],
    ["campaign", "--store=s.sqlite", "--lam=-1"],
    ["campaign", "--store=s.sqlite", "--tau=-1"],
    ["campaign", "--store=s.sqlite", "--tau=0,x"],
    ["campaign", "--store=s.sqlite", "--k=1,x"],
    ["campaign", "--store=s.sqlite", "--k=2", "--alignment=1"],
    ["campaign", "--store=s.sqlite", "--activation=relu,x +"],
    ["campaign", "--store=s.sqlite", "--activation=relu,"],
    ["campaign", "--store=s.sqlite", "--d=1"],
    ["campaign", "--store=s.sqlite", "--d=50,50"],
    ["campaign", "--store=s.sqlite", "--seeds=0"],
    ["campaign", "--store=s.sqlite", "--n-test=nan"],
    ["campaign", "--store=s.sqlite", "--workers=0"],
    ["campaign", "--store=s.sqlite", "--scheduler=localhost:8786"],
    ["campaign", "--store=s.sqlite", "--scheduler=tcp://127.0.0.1:8786", "--workers=2"],
    ["campaign", "--store=s.sqlite", "--export=out.txt"],
    ["campaign", "--store=s.sqlite", "--summary=out.json"],
    ["campaign", "--store=s.sqlite", "--report=0"],
    ["campaign", "--store=s.sqlite"],  # a new store needs the campaign
    ["campaign", "--store=s.sqlite", "--no-run", "--report"],  # --no-run needs an existing store
    ["campaign", "--store=s.sqlite", "--bogus"],
]


@pytest.mark.parametrize("argv", BAD_COMMAND_LINES, ids=[" ".join(a[1:]) or "bare" for a in BAD_COMMAND_LINES])
def test_bad_command_lines_fail_in_one_line_and_write_nothing(
    argv: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    try:
        code: object = cli.main(argv)
    except SystemExit as exc:
        code = exc.code
    out, err = capsys.readouterr()
    assert code == 2 and out == "" and "Traceback" not in err
    assert len(err.splitlines()) == 1, err
    assert list(tmp_path.iterdir()) == []


# -- real local clusters -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def one_worker_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The small campaign, run once on a local cluster of one worker."""
    path = tmp_path_factory.mktemp("campaign") / "one.sqlite"
    seen = []
    stats = run_campaign(small_campaign(), path, workers=1, progress=seen.append)
    assert (stats.total, stats.done, stats.failed, stats.ran, stats.workers) == (12, 6, 6, 12, 1)
    assert seen[0].done == 0 and seen[-1].done + seen[-1].failed == 12 and seen[-1].running == 0
    return path


def test_local_campaign_records_failures_and_resumes(one_worker_store: Path, tmp_path: Path) -> None:
    rows = rows_by_key(one_worker_store)
    c = small_campaign()
    for key, _, d, _seed in c.tasks():
        status, *errors, message = rows[key]
        if d == D_HUGE:
            assert status == "failed" and "GiB" in message and "\n" not in message
        else:
            assert status == "done" and message is None and all(math.isfinite(e) for e in errors)
    # the same command again: nothing runs, no cluster is started
    stats = run_campaign(small_campaign(), one_worker_store, workers=1)
    assert (stats.ran, stats.done, stats.failed, stats.startup_s) == (0, 6, 6, 0.0)
    assert rows_by_key(one_worker_store) == rows
    # the summary says what failed; the report ranks |z|
    campaign, st = open_store(None, one_worker_store, lock=False)
    try:
        summary = summarize(campaign, st)
        assert [(r["d"], r["done"], r["failed"]) for r in summary] == [(D_OK, 3, 0), (D_HUGE, 0, 3)] * 2
        assert all(r["theory_status"] == "done" and math.isfinite(r["eps_L2_theory"]) for r in summary)
        ok = summary[0]
        assert ok["eps_L2_z"] == pytest.approx((ok["eps_L2_mean"] - ok["eps_L2_theory"]) / ok["eps_L2_se"])
        assert "GiB" in summary[1]["first_message"]
        top = report_rows(summary, 3)
        assert len(top) == 3 and abs(top[0]["z"]) >= abs(top[1]["z"]) >= abs(top[2]["z"])
        assert "6 task(s) failed" in report_text(summary)
        columns, table = export_rows(st)
        assert columns[:5] == ["p_over_d", "n_over_d", "lam", "noise_f", "noise_g"]
        assert len(table) == 12 and {r[columns.index("status")] for r in table} == {"done", "failed"}
        write_summary(campaign, st, tmp_path / "s.nc")
        write_summary(campaign, st, tmp_path / "s.csv")
    finally:
        st.close()
    import xarray as xr

    with xr.open_dataset(tmp_path / "s.nc", engine="scipy") as ds:
        assert ds["eps_L2_mean"].dims == ("p_over_d", "d")
        assert list(ds["p_over_d"].values) == [1.0, 2.0] and list(ds["d"].values) == [D_OK, D_HUGE]
        assert float(ds["eps_L2_z"].sel(p_over_d=1.0, d=D_OK)) == pytest.approx(ok["eps_L2_z"], rel=1e-12)
        assert int(ds["seeds_failed"].sum()) == 6 and ds.attrs["failed_tasks"] == 6
    lines = (tmp_path / "s.csv").read_text().splitlines()
    assert lines[0].startswith("# command:") and len(lines) == 2 + 4


def test_simulate_gives_the_bits_of_a_campaign_worker(one_worker_store: Path) -> None:
    """``simulate`` in this process, however many BLAS threads it was given, returns bit for bit what a campaign
    worker (a process of its own, one BLAS thread) stored for the same point, d and seeds."""
    from threadpoolctl import threadpool_limits

    from sobolev_rf.numeric.simulation.exact import simulate

    point = small_campaign().points[0]
    with threadpool_limits(limits=4, user_api="blas"):
        sim = simulate(point, d=D_OK, seeds=[0, 1, 2])
    rows = rows_by_key(one_worker_store)
    for seed in range(3):
        status, *errors, _ = rows[task_key(point_key(point), D_OK, seed)]
        assert status == "done"
        assert [float(x).hex() for x in errors] == [float(sim.per_seed[e][seed]).hex() for e in ERRORS]


def test_the_step_alone_has_the_bits_of_simulate() -> None:
    """``simulate_spike`` (phase 1 of the one-step model alone) pins BLAS as ``simulate`` does: the same bits
    as the step inside ``simulate`` at the same seed, whatever BLAS threads the caller set."""
    import numpy as np
    from threadpoolctl import threadpool_limits

    from sobolev_rf.numeric.simulation.exact import simulate
    from sobolev_rf.numeric.simulation.onestep import simulate_spike

    point = ModelParams(activation="tanh", step="sobolev", p_over_d=2.0, n_over_d=1.0, lam=1e-2)
    with threadpool_limits(limits=4, user_api="blas"):
        alone = simulate_spike(point, 100, [1])["per_seed"]
    full = simulate(point, 100, [1]).per_seed
    for key, values in alone.items():
        assert np.array_equal(values, full[key], equal_nan=True), key


def test_results_do_not_depend_on_the_number_of_workers(one_worker_store: Path, tmp_path: Path) -> None:
    """Two workers, tasks finishing in another order: the same bits in every row."""
    path = tmp_path / "two.sqlite"
    stats = run_campaign(small_campaign(), path, workers=2, theory=False)
    assert stats.workers == 2 and stats.ran == 12
    assert rows_by_key(path) == rows_by_key(one_worker_store)


def test_cli_runs_exports_and_reports(
    one_worker_store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The command line on an existing store: no grid options means the store's own campaign. Failed tasks
    remain: the outputs are written, the line says how to retry them, and the exit status is 1."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SOBOLEV_RF_PROGRESS", "1")  # the bar, also off a terminal
    code = cli.main(["campaign", f"--store={one_worker_store}", "--export=t.csv", "--summary=s.csv", "--report=2"])
    out, err = capsys.readouterr()
    assert code == 1
    assert "12/12" in err and "done 6, failed 6, running 0" in err
    assert "6 of 12 tasks done (0 run now)" in err and "6 failed" in err and "--retry-failed" in err
    assert sum(line.startswith("| ") for line in out.splitlines()) == 1 + 2 and "max |z|" in out
    assert len((tmp_path / "t.csv").read_text().splitlines()) == 2 + 12
