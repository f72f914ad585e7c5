"""Time to solve one asymptotic point (median over repeats; the default backend, C where a compiler works), per
configuration, and the residual of its root.

Prints a table and writes JSON (default benchmarks/results/solve.json).
"""

from __future__ import annotations

import argparse
import statistics
import time

from reporting import write_results

from sobolev_rf.derive.params import ModelParams
from sobolev_rf.numeric.theory.solve import solve

CASES = {
    "relu/tanh k=1 tau=0": dict(k=1, tau=0),
    "relu/tanh k=1 tau=1": dict(k=1, tau=1),
    "relu/tanh k=2 tau=1": dict(k=2, tau=1, alignment=(0.5, -1.0)),
    "relu/tanh k=3 tau=1 noisy": dict(k=3, tau=1, noise_f=0.1, noise_g=0.1),
    "tanh/tanh k=1 tau=1 near peak": dict(activation="tanh", k=1, tau=1, p_over_d=2.1, lam=1e-5),
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--out", default="benchmarks/results/solve.json")
    args = ap.parse_args()
    rows = []
    for name, cfg in CASES.items():
        params = ModelParams(**{"lam": 1e-2, **cfg})
        solve(params)  # warm the Hermite-coefficient cache
        times = []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            result = solve(params)
            times.append(time.perf_counter() - t0)
        rows.append(
            {
                "case": name,
                "median_ms": 1e3 * statistics.median(times),
                "min_ms": 1e3 * min(times),
                "residual": result.residual,
            }
        )
    print(f"{'case':32s} {'median ms':>10s} {'min ms':>8s} {'residual':>9s}")
    for r in rows:
        print(f"{r['case']:32s} {r['median_ms']:10.2f} {r['min_ms']:8.2f} {r['residual']:9.1e}")
    write_results(args.out, rows, end="")


if __name__ == "__main__":
    main()
