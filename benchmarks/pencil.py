"""Benchmark of the pencil / operator-valued fixed-point chain.

For each case (Marchenko–Pastur, anisotropic MP, random-features resolvent, Sobolev k = 1 and k = 2) it
reports the seconds to build the pencil and derive its reduced fixed-point equations, the seconds to solve
them, the pencil size, the pencil check error (uᵀL⁻¹v against direct evaluation on small random matrices)
and the relative error of the first normalised trace against finite random matrices (N = 2000).

    python benchmarks/pencil.py [--json]      (writes benchmarks/results/pencil.json)
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import scipy.special
import sympy as sp
from sympy import Identity, Inverse, MatrixSymbol

from sobolev_rf.codegen.atomic import atomic_write_text
from sobolev_rf.derive.ovfp import DiagonalLaw, GaussianMatrix, derive_system, sobolev_expressions
from sobolev_rf.derive.pencil import check_pencil, linearize

n, p, d = sp.symbols("n p d", positive=True, integer=True)
lam, z, k1, ks = sp.symbols("lam z kappa1 kappastar", positive=True)
RESULTS = Path(__file__).resolve().parent / "results" / "pencil.json"


def _quantile_normal(size: int, rng: np.random.Generator) -> np.ndarray:
    """Randomly permuted normal quantiles: an empirical N(0, 1) law up to O(1/size)."""
    return rng.permutation(scipy.special.ndtri((np.arange(size) + 0.5) / size))


def _finite_mp(rng: np.random.Generator) -> float:
    F = rng.standard_normal((1000, 2000))
    return float(np.mean(1 / (0.5 + np.linalg.eigvalsh(F.T @ F / 1000))))


def _finite_amp(rng: np.random.Generator) -> float:
    c = np.where(rng.random(1000) < 0.3, 1.0, math.sqrt(3.0))
    X = rng.standard_normal((2000, 1000)) * c
    return float(np.mean(1 / (0.2 + np.linalg.eigvalsh(X.T @ X / 2000))))


def _finite_rf(rng: np.random.Generator) -> float:
    dd, pp, nn = 1000, 2000, 1333
    A = 0.8 * rng.standard_normal((nn, dd)) @ rng.standard_normal((dd, pp)) / math.sqrt(dd) \
        + 0.6 * rng.standard_normal((nn, pp))
    return float(np.trace(np.linalg.inv(0.1 * np.eye(pp) + A.T @ A / nn)) / pp)


def _finite_sobolev(k: int) -> Callable[[np.random.Generator], float]:
    def run(rng: np.random.Generator) -> float:
        pp, dd = 2000, 1000
        Th = rng.standard_normal((dd, pp))
        W = Th.T @ Th / dd
        inner = 0.3 * np.eye(pp) + 1.0 * W
        for _ in range(k):
            zeta = _quantile_normal(pp, rng)
            inner += 0.7 * zeta[:, None] * W * zeta[None, :] + 0.1 * np.diag(zeta ** 2)
        return float(np.trace(np.linalg.inv(inner)) / pp)
    return run


def cases() -> list[dict[str, Any]]:
    """The benchmark cases: expression(s), declarations, check sizes, parameter point, finite-matrix run."""
    F = MatrixSymbol("F", n, p)
    X = MatrixSymbol("X", n, d)
    C = MatrixSymbol("C", d, d)
    Th = MatrixSymbol("Theta", d, p)
    E = MatrixSymbol("E", n, p)
    A = k1 * X * Th / sp.sqrt(d) + ks * E
    out = [
        {"case": "marchenko_pastur", "expr": Inverse(lam * Identity(p) + F.T * F / n),
         "gauss": [GaussianMatrix("F")], "diag": [], "output": "r",
         "point": {"lam": 0.5, "p": 2.0, "n": 1.0}, "finite": _finite_mp},
        {"case": "anisotropic_mp", "expr": Inverse(lam * Identity(d) + C * X.T * X * C / n),
         "gauss": [GaussianMatrix("X")], "output": "r",
         "diag": [DiagonalLaw(("C",), "discrete", ((1.0,), (math.sqrt(3.0),)), (0.3, 0.7))],
         "point": {"lam": 0.2, "d": 0.5, "n": 1.0}, "finite": _finite_amp},
        {"case": "rf_resolvent", "expr": Inverse(lam * Identity(p) + A.T * A / n),
         "gauss": [GaussianMatrix(s) for s in ("X", "Theta", "E")], "diag": [], "output": "r",
         "point": {"lam": 0.1, "p": 2.0, "d": 1.0, "n": 2.0 / 1.5, "kappa1": 0.8, "kappastar": 0.6},
         "finite": _finite_rf},
    ]
    for k in (1, 2):
        exprs, gauss, diags = sobolev_expressions(k)
        out.append({"case": f"sobolev_k{k}", "expr": exprs, "gauss": gauss, "diag": diags, "output": "Q",
                    "point": {"a": 0.3, "b": 1.0, "c": 0.7, "e": 0.1, "p": 2.0, "d": 1.0},
                    "finite": _finite_sobolev(k)})
    return out


def run_case(case: dict[str, Any], finite: bool) -> dict[str, Any]:
    t0 = time.perf_counter()
    pencil = linearize(case["expr"])
    t1 = time.perf_counter()
    system = derive_system(pencil, case["gauss"], case["diag"])
    t2 = time.perf_counter()
    sol = system.solve(case["point"])
    t3 = time.perf_counter()
    check = check_pencil(pencil, case["expr"], {"n": 7, "p": 9, "d": 5}, np.random.default_rng(0))
    row = {
        "case": case["case"],
        "build_and_derive_s": round(t2 - t0, 4),
        "build_pencil_s": round(t1 - t0, 4),
        "solve_s": round(t3 - t2, 4),
        "pencil_blocks": pencil.size,
        "pencil_dimension": sp.sstr(pencil.dimension),
        "unknowns": len(system.unknowns),
        "pencil_check_rel_error": check,
        "trace": sol.outputs[case["output"]],
        "fixed_point_residual": sol.residual,
    }
    if finite:
        val = case["finite"](np.random.default_rng(1))
        row["finite_N2000_rel_error"] = abs(val / row["trace"] - 1)
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument("--no-finite", action="store_true", help="skip the finite-matrix comparison")
    args = parser.parse_args(argv)
    rows = [run_case(c, not args.no_finite) for c in cases()]
    text = json.dumps({"benchmark": "pencil", "rows": rows}, indent=2)
    atomic_write_text(RESULTS, text + "\n")
    if args.json:
        print(text)
    else:
        head = f"{'case':<18}{'derive s':>10}{'solve s':>9}{'blocks':>8}{'unknowns':>10}{'check err':>11}{'finite err':>12}"
        print(head)
        for r in rows:
            fin = r.get("finite_N2000_rel_error", float("nan"))
            print(f"{r['case']:<18}{r['build_and_derive_s']:>10.3f}{r['solve_s']:>9.3f}{r['pencil_blocks']:>8}"
                  f"{r['unknowns']:>10}{r['pencil_check_rel_error']:>11.1e}{fin:>12.2e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
