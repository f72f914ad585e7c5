"""Wall time of one simulator seed at d = 800, p = 1600, n = 800, k = 1, for τ = 0 and τ = 1.

Each repeat runs one seed through its phases and times them separately:
train = draw Θ, V, θ₀, X and labels + solve for w (``draw_problem`` + ``fit``);
test = eps_L2, eps_H1, eps_grad on n_test = max(2000, 2p) fresh points (``estimate_test_errors``);
total = train + test + training errors + order parameters (everything ``run_seed`` does).
Prints a table of medians over the repeats and writes all timings as JSON (``--out``).

Usage: python benchmarks/simulate.py [--repeats 5] [--d 800] [--out benchmarks/results/simulate.json]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np
from reporting import write_results

from sobolev_rf.derive.params import ModelParams
from sobolev_rf.numeric.simulation.exact import (
    ExactFeatures,
    default_n_test,
    draw_problem,
    estimate_test_errors,
    fit,
    order_parameters,
    sizes,
    train_errors,
)
from sobolev_rf.numeric.simulation.functions import numpy_pair

DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "simulate.json"


def time_seed(features: ExactFeatures, params: ModelParams, d: int, seed: int) -> dict[str, float]:
    """Seconds spent in the train phase, the test phase and in total for one seed."""
    p, n = sizes(params, d)
    train_rng, test_rng = (np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(2))
    t0 = time.perf_counter()
    problem = draw_problem(
        features, d, p, n, params.alignment or (), params.tau, params.noise_f, params.noise_g, train_rng
    )
    w = fit(problem, params.lam)
    t1 = time.perf_counter()
    estimate_test_errors(problem, w, features, default_n_test(p), test_rng)
    t2 = time.perf_counter()
    train_errors(problem, w, params.lam)
    order_parameters(problem, w)
    t3 = time.perf_counter()
    return {"train_s": t1 - t0, "test_s": t2 - t1, "total_s": t3 - t0}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="timed seeds per τ (default: %(default)s)")
    parser.add_argument("--d", type=int, default=800, help="input dimension; p = 2d, n = d (default: %(default)s)")
    parser.add_argument("--activation", default="relu", help="student activation σ (default: %(default)s)")
    parser.add_argument("--teacher", default="tanh", help="teacher φ (default: %(default)s)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON output (default: %(default)s)")
    args = parser.parse_args()
    if args.repeats < 1 or args.d < 2:
        parser.error("--repeats must be >= 1 and --d >= 2")

    sigma, dsigma = numpy_pair(args.activation)
    phi, dphi = numpy_pair(args.teacher)
    features = ExactFeatures(sigma, dsigma, phi, dphi)
    results: list[dict[str, Any]] = []
    print(f"{'tau':>3} {'p':>6} {'n':>6} {'N':>6} {'system':>7} {'train [s]':>10} {'test [s]':>10} {'total [s]':>10}")
    for tau in (0, 1):
        params = ModelParams(
            activation=args.activation, teacher=args.teacher, k=1, tau=tau, p_over_d=2.0, n_over_d=1.0, lam=1e-3
        )
        p, n = sizes(params, args.d)
        rows = n * (1 + tau)
        time_seed(features, params, args.d, 10_000)  # warm-up: first-touch allocations, BLAS thread start
        runs = [time_seed(features, params, args.d, seed) for seed in range(args.repeats)]
        medians = {key: statistics.median(run[key] for run in runs) for key in runs[0]}
        system = "primal" if p <= rows else "dual"
        results.append(
            {
                "tau": tau,
                "k": 1,
                "d": args.d,
                "p": p,
                "n": n,
                "rows": rows,
                "system": system,
                "n_test": default_n_test(p),
                "median": medians,
                "runs": runs,
            }
        )
        print(
            f"{tau:>3} {p:>6} {n:>6} {rows:>6} {system:>7} {medians['train_s']:>10.3f} "
            f"{medians['test_s']:>10.3f} {medians['total_s']:>10.3f}"
        )
    record = {
        "benchmark": "one simulator seed (median over repeats)",
        "activation": args.activation,
        "teacher": args.teacher,
        "lam": 1e-3,
        "repeats": args.repeats,
        "machine": {
            "cpus": os.cpu_count(),
            "load_average_1min": os.getloadavg()[0],
            "python": platform.python_version(),
            "numpy": np.__version__,
            "processor": platform.machine(),
        },
        "results": results,
    }
    write_results(args.out, record, indent=2)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
