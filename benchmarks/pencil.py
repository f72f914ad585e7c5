"""Benchmark of the pencil / operator-valued fixed-point chain and of limiting spectral densities.

Part 1, fixed points. For auto-fpt's examples (Marchenko–Pastur, anisotropic MP, the two random-features
traces, ridge-regression bias and variance with Θ a data column, subordination) and the Sobolev resolvent
(k = 1, 2), all stated in ``sobolev-rf pencil`` syntax, it reports the seconds to parse the expression, build
the pencil and derive the reduced fixed-point equations ("pencil + equations", median of REPEATS runs; target
≤ 1 s each), the seconds to solve them, the pencil size, the pencil check error (uᵀL⁻¹v against direct
evaluation on small random matrices) and the relative error of the trace against one finite draw (N = 2000).

Part 2, spectra. The seconds for a 400-point limiting spectral density (continuation along x, atoms; median
of REPEATS runs after one warm-up; target ≤ 2 s) of the MP law, a two-point-covariance Wishart matrix, the
random-features Gram matrix and the Sobolev Gram matrix (k = 1 at p = 3n, k = 2 at p = 4n), with the
derivation time and what was found.

Part 3, the command line (``--cli``: only this part). Each README spectrum showcase (400 points), the summed
Sobolev Gram matrix at k = 32 (part 4's command line), and
``pencil --solve`` (two MP resolvents and each auto-fpt example of part 1) next to ``solve``, run as ``sobolev-rf``
subprocesses with a fresh private cache: one cold call (derive, generate, build), then REPEATS warm calls (the
stored system and kernel); medians of the wall time (start-up included) and of the CPU time (user + system:
what the machine's load does not inflate), and a warm ``pencil --solve``'s CPU time over a warm ``solve``'s.
Targets: a warm spectrum ≤ 0.5 s, k = 32 ≤ 2 s cold, a warm ``pencil --solve`` ≤ 2 × a warm ``solve``.

Part 4, exchangeable copies (``--copies``: only this part). The Sobolev Gram matrix with k gradient blocks,
written out (D1, …, Dk: k = 1, 2, 3; the derivation grows with k) and summed, ``sum(D, k, …)`` (one system for
every k): derive seconds and unknowns, the seconds of a 400-point spectrum on the generated kernel (median of 3
after a warm-up), the largest relative difference of m(x + iy) at three points against one finite draw
(p = max(1200, 100k), so at least 100 samples), and the command
line at k = 32, cold (fresh cache) and warm (median of 3). Targets: k = 32 ≤ 2 s cold, ≤ 0.5 s warm.

    python benchmarks/pencil.py [--json] [--no-finite] [--cli] [--copies]
        (writes benchmarks/results/pencil.json; --cli writes benchmarks/results/pencil_cli.json, --copies
        benchmarks/results/pencil_copies.json)
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import scipy.special
import sympy as sp
from reporting import write_results

from sobolev_rf.derive.laws import GaussianMatrix, declare_diagonals
from sobolev_rf.derive.matrix_syntax import declare_shapes, parse_expression
from sobolev_rf.derive.ovfp import derive_system
from sobolev_rf.derive.pencil import check_pencil, linearize
from sobolev_rf.numeric.studies.spectrum import StieltjesSolver, resolvent_system, spectral_density
from sobolev_rf.numeric.theory.ovfp import solve_system

RESULTS = Path(__file__).resolve().parent / "results" / "pencil.json"
REPEATS = 5
N = 2000
LAM = 0.1


# ======================================================================================= finite draws
def _normal_grid(size: int, rng: np.random.Generator) -> np.ndarray:
    """Randomly permuted normal quantiles: an empirical N(0, 1) law up to O(1/size)."""
    return rng.permutation(scipy.special.ndtri((np.arange(size) + 0.5) / size))


class Data:
    """The data columns (d = N rows) of the ridge and subordination cases, and one shared Gaussian draw."""

    def __init__(self, folder: Path) -> None:
        rng = np.random.default_rng(7)
        self.s = rng.uniform(0.5, 2.5, N)
        self.t = rng.exponential(1.0, N)
        self.s2 = 0.5 * self.s + rng.uniform(0.0, 1.0, N)
        self.path = folder / "columns.csv"
        self.path.write_text(
            "S,T,S2\n"
            + "\n".join(f"{a!r},{b!r},{c!r}" for a, b, c in zip(self.s.tolist(), self.t.tolist(), self.s2.tolist()))
            + "\n"
        )
        self._gram: tuple[np.ndarray, np.ndarray] | None = None

    def gram(self) -> tuple[np.ndarray, np.ndarray]:
        """Z₁ᵀZ₁, Z₂ᵀZ₂ for Z ∈ ℝ^{2N×N} split into two groups of N rows."""
        if self._gram is None:
            Z = np.random.default_rng(11).standard_normal((2 * N, N))
            self._gram = (Z[:N].T @ Z[:N], Z[N:].T @ Z[N:])
        return self._gram


def _finite_cases(data: Data) -> dict[str, Callable[[], float]]:
    def mp() -> float:
        G = (data.gram()[0] + data.gram()[1]) / (2 * N)
        return float(np.mean(1 / (LAM + np.linalg.eigvalsh(G))))

    def amp() -> float:
        c = np.sqrt(np.where(np.arange(N) < 0.3 * N, 1.0, 3.0))
        M = c[:, None] * (data.gram()[0] + data.gram()[1]) / (2 * N) * c[None, :]
        return float(np.mean(1 / (LAM + np.linalg.eigvalsh(M))))

    rf_cache: dict[str, float] = {}

    def rf(which: str) -> Callable[[], float]:
        def run() -> float:
            if not rf_cache:
                rng = np.random.default_rng(3)
                dd, pp = 1000, N
                nn = int(round(pp / 1.5))
                X, T, E = rng.standard_normal((nn, dd)), rng.standard_normal((dd, pp)), rng.standard_normal((nn, pp))
                A = 0.8 * X @ T / math.sqrt(dd) + 0.6 * E
                R = np.linalg.inv(LAM * np.eye(pp) + A.T @ A / nn)
                rf_cache["R"] = float(np.trace(R) / pp)
                rf_cache["RW"] = float(np.sum(R * (T.T @ T / dd)) / pp)
            return rf_cache[which]

        return run

    ridge_cache: dict[str, float] = {}

    def ridge(part: str) -> Callable[[], float]:
        def run() -> float:
            if not ridge_cache:
                r = np.sqrt(data.s)
                Shat = r[:, None] * (data.gram()[0] + data.gram()[1]) / (2 * N) * r[None, :]
                Q = np.linalg.inv(Shat + LAM * np.eye(N))
                QS = Q * data.s[None, :]
                ridge_cache["bias"] = float(np.sum((Q * data.t[None, :]) * QS.T) / N)
                ridge_cache["variance"] = float(np.sum((Q @ Shat) * QS.T) / N)
            return ridge_cache[part]

        return run

    def subordination() -> float:
        r1, r2 = np.sqrt(data.s), np.sqrt(data.s2)
        M = r1[:, None] * data.gram()[0] * r1[None, :] / N + r2[:, None] * data.gram()[1] * r2[None, :] / N
        return float(np.mean(1 / (1 + np.linalg.eigvalsh(M))))

    def sobolev(k: int) -> Callable[[], float]:
        def run() -> float:
            rng = np.random.default_rng(1)
            pp, dd = N, N // 2
            Th = rng.standard_normal((dd, pp))
            W = Th.T @ Th / dd
            inner = 0.3 * np.eye(pp) + 1.0 * W
            for _ in range(k):
                zeta = _normal_grid(pp, rng)
                inner += 0.7 * zeta[:, None] * W * zeta[None, :] + 0.1 * np.diag(zeta**2)
            return float(np.trace(np.linalg.inv(inner)) / pp)

        return run

    return {
        "marchenko_pastur": mp,
        "anisotropic_mp": amp,
        "rf_trace_R": rf("R"),
        "rf_trace_RW": rf("RW"),
        "ridge_bias": ridge("bias"),
        "ridge_variance": ridge("variance"),
        "subordination": subordination,
        "sobolev_k1": sobolev(1),
        "sobolev_k2": sobolev(2),
    }


# ======================================================================================= cases (pencil syntax)
RIDGE = "inv(R*Zt*Z*R/n + lam)"
RFA = "(k1*X*Th/sqrt(d) + ks*E)"
SOBOLEV = "inv(a + b*Tht*Th/d + c*({terms}) + e*({squares}))"


def fixed_point_cases(data: Data) -> list[dict[str, Any]]:
    """Each case: expression, --shape, --diag, parameter point (dimensions as ratios)."""
    ridge_diags = [f"S,T,S2=d@{data.path}", "R=d@sqrt(S)"]
    ridge_point = {"lam": LAM, "n": 1.0, "d": 0.5}
    out = [
        dict(
            case="marchenko_pastur",
            expr="inv(lam*I + Zt*Z/n)",
            shapes=["Z=n,d"],
            diags=[],
            point={"lam": LAM, "n": 1.0, "d": 0.5},
        ),
        dict(
            case="anisotropic_mp",
            expr="inv(lam*I + C*Zt*Z*C/n)",
            shapes=["Z=n,d"],
            diags=["Sg=d@1:0.3,3:0.7", "C=d@sqrt(Sg)"],
            point={"lam": LAM, "n": 1.0, "d": 0.5},
        ),
        dict(
            case="rf_trace_R",
            expr=f"inv(lam*I + t{RFA}*{RFA}/n)",
            shapes=["X=n,d", "Th=d,p", "E=n,p"],
            diags=[],
            point={"lam": LAM, "k1": 0.8, "ks": 0.6, "p": 2.0, "d": 1.0, "n": 2 / 1.5},
        ),
        dict(
            case="rf_trace_RW",
            expr=f"inv(lam*I + t{RFA}*{RFA}/n) * Tht*Th/d",
            shapes=["X=n,d", "Th=d,p", "E=n,p"],
            diags=[],
            point={"lam": LAM, "k1": 0.8, "ks": 0.6, "p": 2.0, "d": 1.0, "n": 2 / 1.5},
        ),
        dict(
            case="ridge_bias", expr=f"{RIDGE} * T * {RIDGE} * S", shapes=["Z=n,d"], diags=ridge_diags, point=ridge_point
        ),
        dict(
            case="ridge_variance",
            expr=f"{RIDGE} * R*Zt*Z*R/n * {RIDGE} * S",
            shapes=["Z=n,d"],
            diags=ridge_diags,
            point=ridge_point,
        ),
        dict(
            case="subordination",
            expr="inv(I + R1*Z1t*Z1*R1/n1 + R2*Z2t*Z2*R2/n2)",
            shapes=["Z1=n1,d", "Z2=n2,d"],
            diags=[f"S1,T,S2=d@{data.path}", "R1=d@sqrt(S1)", "R2=d@sqrt(S2)"],
            point={"n1": 1.0, "n2": 1.0, "d": 1.0},
        ),
    ]
    for k in (1, 2):
        ds = [f"D{l + 1}" for l in range(k)]
        expr = SOBOLEV.format(
            terms=" + ".join(f"{D}*Tht*Th*{D}/d" for D in ds), squares=" + ".join(f"{D}*{D}" for D in ds)
        )
        out.append(
            dict(
                case=f"sobolev_k{k}",
                expr=expr,
                shapes=["Th=d,p"],
                diags=[f"{D}=p" for D in ds],
                point={"a": 0.3, "b": 1.0, "c": 0.7, "e": 0.1, "p": 2.0, "d": 1.0},
            )
        )
    return out


def _derive(case: dict[str, Any]) -> tuple[Any, Any, Any]:
    mats, dims = declare_shapes(case["shapes"])
    dmats, laws = declare_diagonals(case["diags"], dims, mats)
    gauss = [GaussianMatrix(n) for n in mats]
    mats.update(dmats)
    expr = parse_expression(case["expr"], mats, dims)
    pencil = linearize(expr)
    return expr, pencil, derive_system(pencil, gauss, laws)


def run_fixed_point(case: dict[str, Any], finite: Callable[[], float] | None) -> dict[str, Any]:
    times = []
    for _ in range(REPEATS):
        t0 = time.perf_counter()
        expr, pencil, system = _derive(case)
        times.append(time.perf_counter() - t0)
    t1 = time.perf_counter()
    sol = solve_system(system, case["point"])
    t2 = time.perf_counter()
    sizes = {"n": 7, "p": 9, "d": 5, "n1": 6, "n2": 8}
    # the check draws every matrix as Gaussian: diagonal ones are compared as general square matrices
    check = check_pencil(pencil, expr, sizes, np.random.default_rng(0))
    row = {
        "case": case["case"],
        "expression": case["expr"].replace(str(Path(tempfile.gettempdir())), "$TMP"),
        "pencil_and_equations_s": round(statistics.median(times), 4),
        "solve_s": round(t2 - t1, 4),
        "pencil_blocks": pencil.size,
        "pencil_dimension": sp.sstr(pencil.dimension),
        "unknowns": len(system.unknowns),
        "pencil_check_rel_error": check,
        "trace": sol.outputs["r"],
        "fixed_point_residual": sol.residual,
    }
    if finite is not None:
        row["finite_N2000_rel_error"] = abs(finite() / row["trace"] - 1)
    return row


# ======================================================================================= spectra
SPECTRA = [
    dict(
        case="marchenko_pastur",
        expr="Ft*F/n",
        shapes=["F=n,p"],
        diags=[],
        values={"n": 1.0, "p": 2.0},
        x=(0.0, 6.0),
        eta=1e-6,
    ),
    dict(
        case="wishart_two_point",
        expr="C*Xt*X*C/n",
        shapes=["X=n,d"],
        diags=["C=d@1,2"],
        values={"n": 1.0, "d": 0.5},
        x=(0.0, 12.0),
        eta=1e-6,
    ),
    dict(
        case="rf_gram",
        expr=f"t{RFA}*{RFA}/n",
        shapes=["X=n,d", "Th=d,p", "E=n,p"],
        diags=[],
        values={"n": 1.0, "p": 2.0, "d": 1.0, "k1": 0.5, "ks": 0.3},
        x=(0.0, 3.0),
        eta=1e-4,
    ),
    dict(
        case="sobolev_gram_k1_p3n",
        expr="t(a1*X*Th/sqrt(d) + s1*E)*(a1*X*Th/sqrt(d) + s1*E)/n"
        " + D*t(b1*X*Th/sqrt(d) + s2*Ep)*(b1*X*Th/sqrt(d) + s2*Ep)*D/n",
        shapes=["X=n,d", "Th=d,p", "E=n,p", "Ep=n,p"],
        diags=["D=p"],
        values={"n": 1.0, "d": 1.0, "p": 3.0, "a1": 0.5, "s1": 0.3, "b1": 0.4, "s2": 0.3},
        x=(0.0, 2.0),
        eta=1e-4,
    ),
    dict(
        case="sobolev_gram_k2_p4n",
        expr="t(a1*X*Th/sqrt(d) + s1*E)*(a1*X*Th/sqrt(d) + s1*E)/n"
        " + D1*t(b1*X*Th/sqrt(d) + s2*Ep)*(b1*X*Th/sqrt(d) + s2*Ep)*D1/n"
        " + D2*t(b1*X*Th/sqrt(d) + s2*Ep)*(b1*X*Th/sqrt(d) + s2*Ep)*D2/n",
        shapes=["X=n,d", "Th=d,p", "E=n,p", "Ep=n,p"],
        diags=["D1=p", "D2=p"],
        values={"n": 1.0, "d": 1.0, "p": 4.0, "a1": 0.5, "s1": 0.3, "b1": 0.4, "s2": 0.3},
        x=(0.0, 2.0),
        eta=1e-4,
    ),
]


def run_spectrum(case: dict[str, Any], points: int = 400) -> dict[str, Any]:
    t0 = time.perf_counter()
    mats, dims = declare_shapes(case["shapes"])
    dmats, laws = declare_diagonals(case["diags"], dims, mats)
    gauss = {k: False for k in mats}
    mats.update(dmats)
    expr = parse_expression(case["expr"], mats, dims)
    system, z = resolvent_system(expr, gauss, laws)
    solver = StieltjesSolver(system, z, case["values"])
    t1 = time.perf_counter()
    x = np.linspace(*case["x"], points)
    spectral_density(solver, x, case["eta"])  # warm-up: compiles the numerical functions
    times, spec = [], None
    for _ in range(3):
        t2 = time.perf_counter()
        spec = spectral_density(solver, x, case["eta"])
        times.append(time.perf_counter() - t2)
    assert spec is not None
    return {
        "case": case["case"],
        "points": points,
        "eta": case["eta"],
        "derive_s": round(t1 - t0, 4),
        "spectrum_s": round(statistics.median(times), 4),
        "unknowns": len(system.unknowns),
        "atoms": [[round(a, 10), round(w, 10)] for a, w in spec.atoms],
        "mass_on_grid": round(float(np.trapezoid(np.nan_to_num(spec.density), x)) + sum(w for _, w in spec.atoms), 6),
        **{k: v for k, v in spec.stats.items()},
    }


# ======================================================================================= command line
SHOWCASES = {
    "marchenko_pastur": "'Ft*F/n' --shape F=n,p --param n=1 --param p=2 --x 0:6:400 --eta 1e-9",
    "wishart_two_point": "'C*Xt*X*C/n' --shape X=n,d --diag C=d@1,2 --param n=1 --param d=0.5 --x 0:12:400 --eta 1e-6",
    "rf_gram": "'t(k1*X*Th/sqrt(d) + ks*E)*(k1*X*Th/sqrt(d) + ks*E)/n' --shape X=n,d --shape Th=d,p --shape E=n,p "
    "--param k1=0.5 --param ks=0.3 --param n=1 --param d=1 --param p=2 --x 0:2.5:400",
    "sobolev_gram_k1": "'t(a1*X*Th/sqrt(d) + s1*E)*(a1*X*Th/sqrt(d) + s1*E)/n + D*t(b1*X*Th/sqrt(d) + s2*Ep)"
    "*(b1*X*Th/sqrt(d) + s2*Ep)*D/n' --shape X=n,d --shape Th=d,p --shape E=n,p --shape Ep=n,p --diag D=p "
    "--param a1=0.5 --param s1=0.3 --param b1=0.4 --param s2=0.3 --param n=1 --param d=1 --param p=3 --x 0:2:400",
}
SOLVES = {
    "pencil_solve_mp": "pencil 'inv(lam*I + Ft*F/n)' --shape F=n,p --solve --param lam=0.5 --param n=1 --param p=2",
    "pencil_solve_complex": "pencil 'inv(Ft*F/n - z*I)' --shape F=n,p --solve --param z=1+0.01j "
    "--param n=1 --param p=2",
    "solve": "solve --k 1 --tau 1",
}


def _timed(command: str, env: dict[str, str]) -> tuple[float, float]:
    """Wall and CPU (user + system) seconds of one ``sobolev-rf`` subprocess."""
    import os
    import resource
    import shlex
    import subprocess

    exe = str(Path(sys.executable).with_name("sobolev-rf"))
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run([exe, *shlex.split(command)], env={**os.environ, **env}, check=True, capture_output=True)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def _pencil_solve(case: dict[str, Any]) -> str:
    """``pencil EXPR --shape … --diag … --solve --param …`` of an auto-fpt example (:func:`fixed_point_cases`)."""
    import shlex

    argv = ["pencil", case["expr"], *[a for s in case["shapes"] for a in ("--shape", s)]]
    argv += [a for d in case["diags"] for a in ("--diag", d)]
    argv += ["--solve", *[a for k, v in case["point"].items() for a in ("--param", f"{k}={v!r}")]]
    return shlex.join(argv)


def run_cli(repeats: int = 3) -> list[dict[str, Any]]:
    """Cold and warm times of every showcase and solve command, of the summed Sobolev Gram matrix at k = 32
    (:func:`copies_command`) and of ``pencil --solve`` on each auto-fpt example (see the module docstring)."""
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        data = Data(Path(tmp))
        commands = {**{k: "spectrum " + v for k, v in SHOWCASES.items()}, "sobolev_gram_k32": copies_command(32)}
        commands.update(SOLVES)
        commands.update({f"pencil_solve_{c['case']}": _pencil_solve(c) for c in fixed_point_cases(data)})
        for case, command in commands.items():
            with tempfile.TemporaryDirectory() as cache:
                env = {"SOBOLEV_RF_CACHE": cache}
                cold = _timed(command, env)
                warm = [_timed(command, env) for _ in range(repeats)]
            rows.append(
                {
                    "case": case,
                    "cold_wall_s": round(cold[0], 3),
                    "cold_cpu_s": round(cold[1], 3),
                    "warm_wall_s": round(statistics.median(w for w, _ in warm), 3),
                    "warm_cpu_s": round(statistics.median(c for _, c in warm), 3),
                }
            )
    return rows


# ======================================================================================= exchangeable copies
GRAM_F = "t(a1*X*Th/sqrt(d) + s1*E)*(a1*X*Th/sqrt(d) + s1*E)/n"
GRAM_G = "{D}*t(b1*X*Th/sqrt(d) + s2*Ep)*(b1*X*Th/sqrt(d) + s2*Ep)*{D}/n"
GRAM_SHAPES = ["X=n,d", "Th=d,p", "E=n,p", "Ep=n,p"]
GRAM_VALUES = {"n": 1.0, "d": 1.0, "a1": 0.5, "s1": 0.3, "b1": 0.4, "s2": 0.3}
#: (k, p/n) of the copies benchmark: p/n = 3 for one or two blocks (an atom at 0 for k = 1), else p/n = k (k + 1
#: rows per sample: below the interpolation threshold p = (k + 1)n, no atom).
COPIES = [(1, 3.0), (2, 3.0), (3, 3.0), (8, 8.0), (32, 32.0)]


def _gram(k: int | None) -> tuple[str, list[str]]:
    """The Sobolev Gram matrix's expression and diagonals: k blocks written out, or summed (None)."""
    if k is None:
        return f"{GRAM_F} + sum(D, k, {GRAM_G.format(D='D')})", ["D=p"]
    return GRAM_F + "".join(" + " + GRAM_G.format(D=f"D{l}") for l in range(1, k + 1)), [
        f"D{l}=p" for l in range(1, k + 1)
    ]


def _gram_system(k: int | None) -> tuple[Any, str, Any, float]:
    """The derived resolvent system of :func:`_gram` (no cache), its z, the parsed pieces and the derive seconds."""
    text, diags = _gram(k)
    t0 = time.perf_counter()
    mats, dims = declare_shapes(GRAM_SHAPES)
    dmats, laws = declare_diagonals(diags, dims, mats)
    gauss = {m: False for m in mats}
    mats.update(dmats)
    expr = parse_expression(text, mats, dims)
    system, z = resolvent_system(expr, gauss, laws)
    return system, z, (expr, mats, gauss, laws), time.perf_counter() - t0


def _copies_rows(summed: Any, kernel: Any, z: str, parsed: Any, finite: bool, repeats: int) -> list[dict[str, Any]]:
    """The rows of part 4: one per (k, p/n) of :data:`COPIES` (module docstring)."""
    from sobolev_rf.numeric.studies.spectrum import finite_eigenvalues

    rows = []
    for k, ratio in COPIES:
        values = {**GRAM_VALUES, "p": ratio}
        row: dict[str, Any] = {"k": k, "p_over_n": ratio, "summed_unknowns": len(summed.unknowns)}
        if k <= 3:
            written, zw, _, written_s = _gram_system(k)
            row["written_out_derive_s"] = round(written_s, 3)
            row["written_out_unknowns"] = len(written.unknowns)
        solver = StieltjesSolver(kernel, z, {**values, "k": float(k)})
        top = 1.0 + 1.6 * k  # the spectrum reaches about (1 + √(p/n))² times the blocks' variance
        x = np.linspace(0.0, top, 400)
        spectral_density(solver, x, 1e-4)
        times, spec = [], None
        for _ in range(repeats):
            t0 = time.perf_counter()
            spec = spectral_density(solver, x, 1e-4)
            times.append(time.perf_counter() - t0)
        assert spec is not None
        row["spectrum_s"] = round(statistics.median(times), 3)
        row["unresolved"] = int((~spec.converged).sum())
        row["atoms"] = [[round(a, 8), round(w, 8)] for a, w in spec.atoms]
        row["mass"] = {key: round(v, 6) for key, v in spec.masses().items()}
        if finite:
            points = np.array([0.1, 0.3, 0.6]) * top + 0.05j * top
            m = solver.from_infinity(points)[1]
            expr, mats, gauss, laws = parsed
            size = max(1200, 100 * k)  # at least 100 samples (rows per gradient block)
            eig = finite_eigenvalues(expr, mats, gauss, laws, {**values, "k": float(k)}, size, np.random.default_rng(k))
            row["finite_p"] = size
            drawn = np.array([np.mean(1 / (eig - w)) for w in points])
            row["finite_points"] = [[round(w.real, 4), round(w.imag, 4)] for w in points]
            row["finite_rel_diff"] = float(np.max(np.abs(drawn - m)) / np.max(np.abs(m)))
        rows.append(row)
    return rows


def copies_command(k: int) -> str:
    """``spectrum`` of the summed Sobolev Gram matrix with k blocks at p/n = k, 400 points (the last row of
    :data:`COPIES` for k = 32)."""
    text, _ = _gram(None)
    return (
        f"spectrum '{text}' "
        + " ".join(f"--shape {s}" for s in GRAM_SHAPES)
        + " --diag D=p "
        + " ".join(f"--param {key}={v:g}" for key, v in GRAM_VALUES.items())
        + f" --param p={k} --param k={k} --x 0:{int(1 + 1.6 * k)}:400"
    )


def run_copies(finite: bool = True, repeats: int = 3) -> dict[str, Any]:
    """Part 4 (module docstring)."""
    import os

    from sobolev_rf.numeric.theory.ovfp import cached_fixed_point

    summed, z, parsed, summed_s = _gram_system(None)
    before = os.environ.get("SOBOLEV_RF_CACHE")
    with tempfile.TemporaryDirectory() as cache:  # the spectra on the generated kernels, as the command line
        os.environ["SOBOLEV_RF_CACHE"] = cache
        try:
            kernel, _ = cached_fixed_point("benchmark-copies", {"expression": _gram(None)[0]}, lambda: (summed, {}))
            rows = _copies_rows(summed, kernel, z, parsed, finite, repeats)
        finally:
            if before is None:
                del os.environ["SOBOLEV_RF_CACHE"]
            else:
                os.environ["SOBOLEV_RF_CACHE"] = before
    command = copies_command(32)
    with tempfile.TemporaryDirectory() as cache:
        env = {"SOBOLEV_RF_CACHE": cache}
        cold = _timed(command, env)
        warm = [_timed(command, env) for _ in range(repeats)]
    cli = {
        "command": "sobolev-rf " + command,
        "cold_wall_s": round(cold[0], 3),
        "cold_cpu_s": round(cold[1], 3),
        "warm_wall_s": round(statistics.median(w for w, _ in warm), 3),
        "warm_cpu_s": round(statistics.median(c for _, c in warm), 3),
    }
    return {
        "benchmark": "pencil-copies",
        "load": _load(),
        "summed_derive_s": round(summed_s, 3),
        "rows": rows,
        "cli_k32": cli,
    }


def _load() -> str:
    """The 1-minute load average per CPU (the wall times are only comparable at a low load)."""
    import os

    return f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", action="store_true", help="print JSON instead of tables")
    parser.add_argument("--no-finite", action="store_true", help="skip the finite-matrix comparison")
    parser.add_argument("--cli", action="store_true", help="only the command-line timings (part 3)")
    parser.add_argument("--copies", action="store_true", help="only the exchangeable copies (part 4)")
    args = parser.parse_args(argv)
    if args.copies:
        out = run_copies(finite=not args.no_finite)
        text = json.dumps(out, indent=2)
        write_results(RESULTS.with_name("pencil_copies.json"), text + "\n")
        if args.json:
            print(text)
            return 0
        print(
            f"Sobolev Gram, k gradient blocks (load {out['load']}); "
            f"summed: derived once in {out['summed_derive_s']:.2f} s"
        )
        print(
            f"{'k':>3}{'p/n':>6}{'written s':>11}{'unknowns':>10}{'summed unk':>12}{'spectrum s':>12}{'unresolved':>12}"
            f"{'finite diff':>13}  atoms"
        )
        for r in out["rows"]:
            ws = f"{r['written_out_derive_s']:.2f}" if "written_out_derive_s" in r else "-"
            wu = str(r.get("written_out_unknowns", "-"))
            fd = f"{r['finite_rel_diff']:.1e} (p={r['finite_p']})" if "finite_rel_diff" in r else "-"
            atoms = ", ".join(f"{w:.6g} at {a:.3g}" for a, w in r["atoms"]) or "none"
            print(
                f"{r['k']:>3}{r['p_over_n']:>6g}{ws:>11}{wu:>10}{r['summed_unknowns']:>12}{r['spectrum_s']:>12.3f}"
                f"{r['unresolved']:>12}{fd:>22}  {atoms}"
            )
        c = out["cli_k32"]
        print(
            f"command line, k = 32: cold {c['cold_wall_s']:.2f} s wall / {c['cold_cpu_s']:.2f} s CPU, "
            f"warm {c['warm_wall_s']:.2f} s wall / {c['warm_cpu_s']:.2f} s CPU (median of 3)"
        )
        return 0
    if args.cli:
        cli = run_cli()
        load = _load()
        text = json.dumps({"benchmark": "pencil-cli", "load": load, "rows": cli}, indent=2)
        write_results(RESULTS.with_name("pencil_cli.json"), text + "\n")
        if args.json:
            print(text)
            return 0
        print(f"command line (load {load}); medians of 3 warm calls")
        print(
            f"{'case':<30}{'cold wall s':>12}{'cold cpu s':>12}{'warm wall s':>12}{'warm cpu s':>12}{'cpu/solve':>10}"
        )
        solve = next(r for r in cli if r["case"] == "solve")
        for r in cli:
            ratio = f"{r['warm_cpu_s'] / solve['warm_cpu_s']:>9.1f}x" if r["case"].startswith("pencil_solve") else ""
            print(
                f"{r['case']:<30}{r['cold_wall_s']:>12.2f}{r['cold_cpu_s']:>12.2f}"
                f"{r['warm_wall_s']:>12.2f}{r['warm_cpu_s']:>12.2f}{ratio}"
            )
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        data = Data(Path(tmp))
        finite = _finite_cases(data)
        rows = [run_fixed_point(c, None if args.no_finite else finite[c["case"]]) for c in fixed_point_cases(data)]
    spectra = [run_spectrum(c) for c in SPECTRA]
    text = json.dumps({"benchmark": "pencil", "repeats": REPEATS, "rows": rows, "spectra": spectra}, indent=2)
    write_results(RESULTS, text + "\n")
    if args.json:
        print(text)
        return 0
    print(
        f"{'case':<18}{'pencil+eqs s':>13}{'solve s':>9}{'blocks':>8}{'unknowns':>10}{'check err':>11}"
        f"{'N=2000 err':>12}"
    )
    for r in rows:
        fin = r.get("finite_N2000_rel_error", float("nan"))
        print(
            f"{r['case']:<18}{r['pencil_and_equations_s']:>13.3f}{r['solve_s']:>9.3f}{r['pencil_blocks']:>8}"
            f"{r['unknowns']:>10}{r['pencil_check_rel_error']:>11.1e}{fin:>12.2e}"
        )
    print(f"\n{'spectrum (400 points)':<22}{'derive s':>10}{'spectrum s':>12}{'unknowns':>10}  atoms")
    for r in spectra:
        atoms = ", ".join(f"{w:.6g} at {a:.3g}" for a, w in r["atoms"]) or "none"
        print(f"{r['case']:<22}{r['derive_s']:>10.3f}{r['spectrum_s']:>12.3f}{r['unknowns']:>10}  {atoms}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
