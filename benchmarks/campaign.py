"""Campaign engine benchmarks: speed-up of 2 workers over 1, overhead per task, and the attach path.

1. 32 tasks at d = 300 (one point, 32 seeds) on the embedded LocalCluster with 1 and with 2 workers.
   ``run`` is the time from the first submission to the last stored result (the cluster is up and its
   workers have imported the simulator); ``wall`` adds starting the cluster. On a shared machine other
   work skews single pairs of runs: each timed run first waits for the machine to be idle (--wait-quiet),
   and the speed-up is also reported over the "clean" pairs only (the 1-worker run kept the machine at most
   70 % busy, and the tasks of the 2-worker run took at most 25 % longer than those of the 1-worker run).
2. Overhead per task at d = 50: a campaign of N tasks on one worker against the same tasks run one after
   the other in this process (``serial``), and against the simulator time measured inside the tasks:
   overhead = (run − serial)/N and (run − Σ task time)/N. It covers Dask's scheduling and transport and the
   client's SQLite commit of every result.
3. The attach path: a ``dask scheduler`` and two ``dask worker`` processes started here on 127.0.0.1, the
   32 tasks of (1) run through ``--scheduler``, results compared bit for bit with the local run.

Prints a table and writes benchmarks/results/campaign.json.
Run:  python benchmarks/campaign.py [--repeats 3] [--overhead-tasks 200]
"""

from __future__ import annotations

import os

for _name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):  # as on the workers
    os.environ.setdefault(_name, "1")

import argparse  # noqa: E402
import json  # noqa: E402
import signal  # noqa: E402
import sqlite3  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

from reporting import write_results  # noqa: E402

from sobolev_rf.numeric.campaign.engine import Campaign, grid, run_campaign, simulate_task  # noqa: E402
from sobolev_rf.numeric.campaign.store import ERRORS  # noqa: E402


def one_point(d: int, seeds: int) -> Campaign:
    points, axes = grid(p_over_d=[2.0], n_over_d=[1.0], lam=[1e-2])
    return Campaign(points, (d,), seeds, None, axes)


def _cpu_times() -> tuple[float, float]:
    with open("/proc/stat") as fh:
        values = [float(v) for v in fh.readline().split()[1:]]
    return values[3] + values[4], sum(values)  # idle + iowait, total


def idle_fraction(seconds: float = 1.0) -> float:
    """The machine's idle CPU fraction over ``seconds`` (1.0 where /proc/stat is missing)."""
    try:
        idle0, total0 = _cpu_times()
        time.sleep(seconds)
        idle1, total1 = _cpu_times()
    except OSError:
        return 1.0
    return (idle1 - idle0) / max(total1 - total0, 1e-9)


#: Largest busy fraction of the machine during a 1-worker run for its pair to count as clean.
CLEAN_BUSY = 0.7
#: Largest ratio of the summed task times of the 2-worker run to the 1-worker run for a clean pair.
CLEAN_SLOWDOWN = 1.25
#: Before each timed run, wait (at most this long) until the machine is at least 90 % idle.
QUIET = {"wait_s": 0.0, "min_idle": 0.9}


def wait_quiet() -> float:
    """Wait until other work leaves the machine idle (at most ``QUIET['wait_s']``); returns the idle fraction."""
    deadline = time.monotonic() + QUIET["wait_s"]
    idle = idle_fraction(0.5)
    while idle < QUIET["min_idle"] and time.monotonic() < deadline:
        idle = idle_fraction(1.0)
    return idle


def timed_run(campaign: Campaign, folder: Path, name: str, **kwargs) -> dict:
    store = folder / f"{name}.sqlite"
    idle = wait_quiet()
    busy0 = _cpu_times() if os.path.exists("/proc/stat") else None
    t0 = time.perf_counter()
    stats = run_campaign(campaign, store, **kwargs)
    wall = time.perf_counter() - t0
    assert stats.done == campaign.size and stats.failed == 0, stats
    machine_busy = None
    if busy0 is not None:
        busy1 = _cpu_times()
        machine_busy = 1.0 - (busy1[0] - busy0[0]) / max(busy1[1] - busy0[1], 1e-9)
    return {
        "wall_s": wall,
        "run_s": stats.run_s,
        "startup_s": stats.startup_s,
        "idle_before": idle,
        "machine_busy": machine_busy,
        "task_s": stats.task_s + stats.theory_s,
        "workers": stats.workers,
        "store": store,
    }


def rows(store: Path) -> dict:
    with sqlite3.connect(store) as conn:
        return {r[0]: r[1:] for r in conn.execute(f"SELECT task_key, {', '.join(ERRORS)} FROM tasks")}


def speedup(folder: Path, repeats: int) -> dict:
    c = one_point(300, 32)
    runs: dict[int, list[dict]] = {1: [], 2: []}
    for r in range(repeats):
        for workers in (1, 2):
            runs[workers].append(timed_run(c, folder, f"speedup_w{workers}_r{r}", workers=workers))
    same = all(rows(x["store"]) == rows(runs[1][0]["store"]) for w in (1, 2) for x in runs[w])
    # A pair is clean when nothing else ran: one worker and the client keep a 2-core machine about half
    # busy, and with two workers each task takes about as long as with one (other work slows them down).
    clean = [
        r
        for r in range(repeats)
        if (runs[1][r]["machine_busy"] or 0) <= CLEAN_BUSY
        and runs[2][r]["task_s"] <= CLEAN_SLOWDOWN * runs[1][r]["task_s"]
        and min(runs[1][r]["idle_before"], runs[2][r]["idle_before"]) >= 0.9
    ]
    med = {
        w: {k: statistics.median(x[k] for x in runs[w]) for k in ("run_s", "wall_s", "startup_s", "task_s")}
        for w in runs
    }
    return {
        "tasks": c.size,
        "d": 300,
        "repeats": repeats,
        "median": {str(w): v for w, v in med.items()},
        "all_run_s": {str(w): [x["run_s"] for x in runs[w]] for w in runs},
        "idle_before": {str(w): [x["idle_before"] for x in runs[w]] for w in runs},
        "machine_busy_during": {str(w): [x["machine_busy"] for x in runs[w]] for w in runs},
        "speedup_run": med[1]["run_s"] / med[2]["run_s"],
        "speedup_wall": med[1]["wall_s"] / med[2]["wall_s"],
        "clean_pairs": clean,
        "speedup_run_clean": (
            statistics.median(runs[1][r]["run_s"] for r in clean)
            / statistics.median(runs[2][r]["run_s"] for r in clean)
        )
        if clean
        else None,
        "speedup_run_per_pair": [runs[1][r]["run_s"] / runs[2][r]["run_s"] for r in range(repeats)],
        "task_time_ratio_per_pair": [runs[2][r]["task_s"] / runs[1][r]["task_s"] for r in range(repeats)],
        "identical_results": same,
        "last_store": str(runs[2][-1]["store"]),
    }


def overhead(folder: Path, repeats: int, tasks: int) -> dict:
    c = one_point(50, tasks)
    point = c.points[0].as_dict()
    simulate_task(point, 50, 0, None)  # imports and σ, φ built once, as the warm-up does on a worker
    serial, runs = [], []
    for r in range(repeats):
        wait_quiet()
        t0 = time.perf_counter()
        for seed in range(tasks):
            simulate_task(point, 50, seed, None)
        serial.append(time.perf_counter() - t0)
        runs.append(timed_run(c, folder, f"overhead_r{r}", workers=1))
    run_s = statistics.median(x["run_s"] for x in runs)
    task_s = statistics.median(x["task_s"] for x in runs)
    serial_s = statistics.median(serial)
    return {
        "tasks": tasks,
        "d": 50,
        "repeats": repeats,
        "run_s": run_s,
        "serial_s": serial_s,
        "task_s": task_s,
        "per_task_ms": 1e3 * run_s / tasks,
        "serial_per_task_ms": 1e3 * serial_s / tasks,
        "overhead_vs_serial_ms": 1e3 * (run_s - serial_s) / tasks,
        "overhead_vs_task_time_ms": 1e3 * (run_s - task_s) / tasks,
        "startup_s": statistics.median(x["startup_s"] for x in runs),
    }


def attach(folder: Path, reference: Path) -> dict:
    dask = Path(sys.executable).with_name("dask")
    info = folder / "scheduler.json"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    procs = []
    try:

        def start(*argv: str) -> None:
            procs.append(
                subprocess.Popen(
                    [str(dask), *argv],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    env=env,
                    start_new_session=True,
                    cwd=folder,
                )
            )

        t0 = time.perf_counter()
        start(
            "scheduler",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--no-dashboard",
            "--dashboard-address",
            "127.0.0.1:0",
            "--scheduler-file",
            str(info),
        )
        while not info.exists() or not info.read_text().strip():
            time.sleep(0.05)
        time.sleep(0.1)
        address = json.loads(info.read_text())["address"]
        for i in range(2):
            start(
                "worker",
                "--scheduler-file",
                str(info),
                "--host",
                "127.0.0.1",
                "--nthreads",
                "1",
                "--nworkers",
                "1",
                "--no-dashboard",
                "--dashboard-address",
                "127.0.0.1:0",
                "--name",
                f"w{i}",
            )
        from distributed import Client

        with Client(address, timeout="60s", set_as_default=False) as client:
            client.wait_for_workers(2, timeout=120)
        up = time.perf_counter() - t0
        result = timed_run(one_point(300, 32), folder, "attach", scheduler=address)
        return {
            "scheduler": address,
            "cluster_start_s": up,
            "workers": result["workers"],
            "run_s": result["run_s"],
            "wall_s": result["wall_s"],
            "identical_to_local": rows(result["store"]) == rows(reference),
        }
    finally:
        for p in reversed(procs):  # workers before their scheduler
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            p.wait()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--overhead-tasks", type=int, default=200)
    ap.add_argument("--out", default="benchmarks/results/campaign.json")
    ap.add_argument(
        "--wait-quiet",
        type=float,
        default=120.0,
        metavar="S",
        help="before each timed run wait up to S seconds for the machine to be 90 %% idle "
        "(other work skews a 2-core machine; default: %(default)s)",
    )
    args = ap.parse_args()
    QUIET["wait_s"] = args.wait_quiet
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        sp = speedup(folder, args.repeats)
        ov = overhead(folder, args.repeats, args.overhead_tasks)
        at = attach(folder, Path(sp.pop("last_store")))
    result = {
        "cores": os.cpu_count(),
        "load_average_before": load_before,
        "load_average_after": os.getloadavg(),
        "speedup": sp,
        "overhead": ov,
        "attach": at,
    }
    write_results(args.out, result)
    m = sp["median"]
    print(
        f"| benchmark | value |\n|---|---|\n"
        f"| 32 tasks at d = 300, 1 worker: run / wall (median of {sp['repeats']}) | "
        f"{m['1']['run_s']:.2f} s / {m['1']['wall_s']:.2f} s |\n"
        f"| same, 2 workers | {m['2']['run_s']:.2f} s / {m['2']['wall_s']:.2f} s |\n"
        f"| speed-up 2 vs 1 workers: run / wall | {sp['speedup_run']:.2f}× / {sp['speedup_wall']:.2f}× |\n"
        f"| speed-up over the {len(sp['clean_pairs'])} pair(s) with nothing else running | "
        f"{'—' if sp['speedup_run_clean'] is None else format(sp['speedup_run_clean'], '.2f') + '×'} |\n"
        f"| results identical for 1 and 2 workers | {sp['identical_results']} |\n"
        f"| d = 50, {ov['tasks']} tasks on 1 worker: per task | {ov['per_task_ms']:.2f} ms "
        f"(serial in-process {ov['serial_per_task_ms']:.2f} ms) |\n"
        f"| overhead per task vs serial / vs task time | {ov['overhead_vs_serial_ms']:.2f} ms / "
        f"{ov['overhead_vs_task_time_ms']:.2f} ms |\n"
        f"| attach: dask scheduler + 2 dask workers, 32 tasks at d = 300: run | {at['run_s']:.2f} s "
        f"(identical to local: {at['identical_to_local']}) |\n"
        f"| load average before / after | {load_before[0]:.2f} / {result['load_average_after'][0]:.2f} |\n"
        f"| machine busy during the 1- / 2-worker runs (median) | "
        f"{statistics.median(sp['machine_busy_during']['1']):.0%} / "
        f"{statistics.median(sp['machine_busy_during']['2']):.0%} |"
    )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
