"""Command-line start-up and throughput, as ratios to ``python -c "import numpy"`` on the same machine.

Every row is the median wall time of ``--repeats`` runs of a real process (``sobolev-rf`` of this
checkout's environment), measured in one run of this script:

* ``--help`` and a warm ``solve`` (derived system, kernel and Hermite coefficients already cached);
* a warm ``solve`` at k = 1, 100, 1000 and 10,000 (the warm cost should not depend on k);
* the cold cost at k = 1000: derive, generate and compile into an empty cache (``derive --k 1000``,
  then ``solve --k 1000``), each in a fresh cache folder;
* ``sweep`` of a 128 × 128 and a 1024 × 1024 (p/d, n/d) grid to a CSV file, and of the 1024 × 1024 grid to
  a NetCDF file, warm: points per second of wall time, start-up and writing the file included;
* the peak resident memory (``ru_maxrss`` of the process) of ``sweep`` at 1500 × 1500 and at its 4-million-point
  cap (2000 × 2000), to CSV and to NetCDF (target ≤ 1 GB: the grid is solved and written in chunks);
* the same 1024 × 1024 grid through the Python API (``solve_grid`` in this process, no CSV).

Each row also has the CPU seconds (user + system) of its median run, and the file the load averages before and
after (``os.getloadavg``) and the number of CPUs: on a shared machine the wall times rise with the load while
the CPU seconds and the ratios of one run stay comparable.

    .venv/bin/python benchmarks/cli.py [--repeats 5]      # writes benchmarks/results/cli.json
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from reporting import write_results

HERE = Path(__file__).resolve().parent
EXE = str(Path(sys.executable).with_name("sobolev-rf"))


#: CPU seconds (user + system) of the last process :func:`wall` ran.
LAST_CPU = [0.0]


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def wall(cmd: list[str], env: dict[str, str] | None = None) -> float:
    """Seconds of wall time of one process (its output discarded; a failure stops the benchmark); its CPU
    seconds go to :data:`LAST_CPU`."""
    cpu = _children_cpu()
    start = time.perf_counter()
    proc = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed: {proc.stderr.strip()}")
    LAST_CPU[0] = _children_cpu() - cpu
    return elapsed


def peak_rss(cmd: list[str]) -> tuple[float, float]:
    """(seconds, peak resident memory in bytes) of one process (its output discarded)."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed with exit code {proc.returncode}")
    return time.perf_counter() - start, usage.ru_maxrss * 1024.0  # Linux: kilobytes


def median(cmd: list[str], repeats: int, env: dict[str, str] | None = None, warm: bool = True) -> float:
    """The median wall time of ``repeats`` runs (after one warm-up run); :data:`LAST_CPU` is the median CPU."""
    if warm:
        wall(cmd, env)
    runs = []
    for _ in range(repeats):
        runs.append((wall(cmd, env), LAST_CPU[0]))
    LAST_CPU[0] = statistics.median(c for _, c in runs)
    return statistics.median(w for w, _ in runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    r = args.repeats
    rows: list[dict[str, object]] = []
    load = os.getloadavg()
    print(f"load averages {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} on {os.cpu_count()} CPUs")
    base = median([sys.executable, "-c", "import numpy"], r)

    def add(name: str, seconds: float, target: str = "", points: int | None = None) -> None:
        row: dict[str, object] = {
            "case": name,
            "seconds": seconds,
            "cpu_seconds": LAST_CPU[0],
            "ratio_to_numpy_import": seconds / base,
            "target": target,
        }
        if points is not None:
            row["points_per_second"] = points / seconds
        rows.append(row)
        extra = f"  {points / seconds:12,.0f} points/s" if points is not None else ""
        print(
            f"{name:44s} {seconds:8.3f} s  (CPU {LAST_CPU[0]:6.3f} s)  {seconds / base:6.2f}×{extra}  {target}",
            flush=True,
        )

    unit = 'python -c "import numpy"'
    print(f"{unit:44s} {base:8.3f} s  (the unit)")
    add("sobolev-rf --help", median([EXE, "--help"], r), "≤ 3×")
    add("sobolev-rf solve (warm)", median([EXE, "solve"], r), "≤ 5×")
    for k in (1, 100, 1000, 10_000):
        add(f"sobolev-rf solve --k {k} (warm)", median([EXE, "solve", "--k", str(k), "--p-over-d", str(3 * k + 5)], r))
    for label, cmd in (
        ("derive --k 1000 (cold cache)", [EXE, "derive", "--k", "1000"]),
        ("solve --k 1000 (cold cache: derive, generate, compile)", [EXE, "solve", "--k", "1000", "--p-over-d", "3005"]),
    ):
        times, cpus = [], []
        for _ in range(max(1, r // 2)):
            with tempfile.TemporaryDirectory() as folder:
                times.append(wall(cmd, dict(os.environ, SOBOLEV_RF_CACHE=folder)))
                cpus.append(LAST_CPU[0])
        LAST_CPU[0] = statistics.median(cpus)
        add(label, statistics.median(times), "≤ 5 s" if "solve" in label else "")
    with tempfile.TemporaryDirectory() as folder:
        for n, suffix, target in (
            (128, "csv", "≥ 2e4 points/s"),
            (1024, "csv", "≥ 2e5 points/s"),
            (1024, "nc", "≥ 2e5 points/s"),
        ):
            out = str(Path(folder) / f"grid.{suffix}")
            cmd = [EXE, "sweep", "--p-over-d", f"0.1:10:{n}", "--n-over-d", f"log:0.1:10:{n}", "--out", out]
            kind = "NetCDF" if suffix == "nc" else "CSV"
            add(f"sweep {n}×{n} to {kind} (warm)", median(cmd, r if n == 128 else max(1, r // 2)), target, n * n)
        for n in (1500, 2000):
            for suffix in ("csv", "nc"):
                out = str(Path(folder) / f"grid.{suffix}")
                cmd = [EXE, "sweep", "--p-over-d", f"0.1:10:{n}", "--n-over-d", f"log:0.1:10:{n}", "--out", out]
                cpu = _children_cpu()
                seconds, rss = peak_rss(cmd)
                LAST_CPU[0] = _children_cpu() - cpu
                kind = "NetCDF" if suffix == "nc" else "CSV"
                add(f"sweep {n}×{n} to {kind}: peak RSS {rss / 2**20:,.0f} MiB", seconds, "≤ 1 GB", n * n)
                rows[-1]["peak_rss_bytes"] = rss
    import numpy as np

    from sobolev_rf.numeric import solve_grid

    grid = dict(p_over_d=np.linspace(0.1, 10, 1024)[:, None], n_over_d=np.geomspace(0.1, 10, 1024)[None, :])
    solve_grid(1, 1, dict(grid, p_over_d=grid["p_over_d"][:4]))
    times, cpus = [], []
    for _ in range(3):
        start, cpu = time.perf_counter(), time.process_time()
        solve_grid(1, 1, grid)
        times.append(time.perf_counter() - start)
        cpus.append(time.process_time() - cpu)
    LAST_CPU[0] = statistics.median(cpus)
    add("solve_grid 1024×1024 (API, no CSV)", statistics.median(times), "≥ 2e5 points/s", 1024 * 1024)
    results = HERE / "results"
    write_results(
        results / "cli.json",
        {
            "numpy_import_seconds": base,
            "repeats": r,
            "cpus": os.cpu_count(),
            "load_average_before": load,
            "load_average_after": os.getloadavg(),
            "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
            "rows": rows,
        },
        indent=2,
    )
    print(f"wrote {results / 'cli.json'}")


if __name__ == "__main__":
    main()
