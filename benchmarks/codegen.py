"""Throughput of the generated solvers: a 128×128 (p/d, n/d) grid, k = 1, τ = 1, NumPy vs C.

Rows: each backend with continuation along p/d (what ``sweep`` does) and without (every point from the
cold start), at λ = 10⁻² and at λ = 10⁻⁷ (where some cold starts next to the peak fail and continuation
rescues them: compare the converged counts), and with continuation at λ = 0 (the λ → 0⁺ branches, whose cold
starts follow
the λ > 0 solution down to small λ). Reports points per second (median of 3 runs, the artifacts already
cached) and writes benchmarks/results/codegen.json.
"""

from __future__ import annotations

import platform
import statistics
import time
from pathlib import Path

import numpy as np
from reporting import write_results

from sobolev_rf.codegen.jit import find_compiler
from sobolev_rf.numeric.theory.solve import solve_grid

SIZE = 128
REPEATS = 3


def grid(lam: float) -> dict[str, object]:
    """The benchmark grid: p/d and n/d log-spaced over [0.2, 5], ReLU student, tanh teacher."""
    axis = np.geomspace(0.2, 5.0, SIZE)
    return dict(activation="relu", teacher="tanh", p_over_d=axis[:, None], n_over_d=axis[None, :], lam=lam)


def measure(backend: str, continuation: bool, lam: float) -> dict[str, float]:
    """Median wall time and points/s of ``solve_grid`` on the grid with ``backend``."""
    params = grid(lam)
    solve_grid(1, 1, params, backend=backend)
    times, converged = [], 0
    for _ in range(REPEATS):
        start = time.perf_counter()
        result = solve_grid(1, 1, params, backend=backend, continuation=continuation)
        times.append(time.perf_counter() - start)
        converged = int(np.count_nonzero(result.converged))
    median = statistics.median(times)
    return {"seconds_median": median, "points_per_second": SIZE * SIZE / median, "converged": converged}


def monte_carlo_seconds() -> float:
    """Median wall time of one exact simulation seed at d = 400 for a mid-grid point (p/d = 2, n/d = 1)."""
    from sobolev_rf.derive.params import ModelParams
    from sobolev_rf.numeric.simulation.exact import simulate

    params = ModelParams(activation="relu", teacher="tanh", k=1, tau=1, p_over_d=2.0, n_over_d=1.0, lam=1e-2)
    times = []
    for seed in range(REPEATS):
        start = time.perf_counter()
        simulate(params, d=400, seeds=[seed], progress=False)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    backends = ["numpy"] + (["c"] if find_compiler() else [])
    cases = [(b, cont, lam) for lam in (1e-2, 1e-7) for b in backends for cont in (True, False)] + [
        (b, True, 0.0) for b in backends
    ]
    rows: dict[str, dict[str, float]] = {}
    for b, cont, lam in cases:
        name = f"{b}{'' if cont else '_cold'}{'' if lam == 1e-2 else f'_lam{lam:g}'}"
        rows[name] = {"backend": b, "continuation": cont, "lam": lam, **measure(b, cont, lam)}
    mc = monte_carlo_seconds()
    print(
        f"{'case':20s} {'continuation':>12s} {'lam':>6s} {'seconds':>10s} {'points/s':>12s} {'converged':>12s} "
        f"{'vs Monte Carlo':>15s}"
    )
    for name, r in rows.items():
        r["speedup_vs_monte_carlo"] = mc * r["points_per_second"]
        print(
            f"{name:20s} {str(r['continuation']):>12s} {r['lam']:6g} {r['seconds_median']:10.3f} "
            f"{r['points_per_second']:12.0f} {r['converged']:>6d}/{SIZE * SIZE} {r['speedup_vs_monte_carlo']:14.3g}x"
        )
    ratios: dict[str, float] = {}
    if "c" in rows:
        ratios["c_over_numpy"] = rows["c"]["points_per_second"] / rows["numpy"]["points_per_second"]
        print(f"C / NumPy (continuation, lam = 1e-2): {ratios['c_over_numpy']:.2f}x")
    for b in backends:
        ratios[f"{b}_continuation_over_cold"] = rows[b]["points_per_second"] / rows[f"{b}_cold"]["points_per_second"]
        print(f"{b}: continuation / cold start: {ratios[f'{b}_continuation_over_cold']:.2f}x")
    print(f"Monte Carlo, one grid point (d = 400, one seed): {mc:.3f} s")
    out = Path(__file__).parent / "results" / "codegen.json"
    write_results(
        out,
        {
            "grid": f"{SIZE}x{SIZE} p/d x n/d in [0.2, 5], k=1, tau=1",
            "repeats": REPEATS,
            "machine": platform.platform(),
            "processor": platform.processor(),
            "results": rows,
            "ratios": ratios,
            "monte_carlo_seconds_per_point": mc,
        },
        indent=2,
    )
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
