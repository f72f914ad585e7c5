"""The one-step readout theory: speed, theory against the simulator, and the Sobolev-readout verdict.

1. speed: medians of warm theory points with a step (``solve``: the L2 readout, and the Sobolev readout τ = 1
   with k = 1 and 2, averaged over the readout's ζ shift) against the median of a warm random-features point,
   and a 64 × 64 (α₀, η̃) map (``solve_map``), all warm (derivation and compilation cached);
2. theory vs simulation (τ = 0 readout after a real first-layer step, numeric/simulation): mean ± SE over
   seeds at each d, z = (mean − theory)/SE and the Richardson value 2m(2d) − m(d) of the two largest sizes;
3. the premise of the Sobolev readout's theory after a step (τ > 0), the conditional Gaussian equivalence of
   the joint features (σ(w_jᵀx), σ′(w_jᵀx)ζ_jl) given κ = ⟨û, x⟩, is measured directly:
   on a planted spiked layer W₁ = B + r1ûᵀ (B Gaussian with rows of norm c_W; r, c_W, γ of the closed form),
   the same data, V and W₁ are used to train ridge on the real features and on their conditional equivalents
   μ₀(κ) + μ₁(κ)Bx + μ₂(κ)ξ and (ν₀(κ) + ν₁(κ)Bx + ν₂(κ)ξ′)ζ_l (ν the coefficients of σ′, ξ′ correlated with
   ξ as σ′'s residual is with σ's, one ξ′ for all l, ζ exact, so the common shift r⟨û, v_l⟩ is in it). The
   paired difference of eps_L2 (real − equivalent) over seeds at several d says whether the equivalence holds
   (difference → 0, like 1/d) or not; τ = 0 is the control.

Prints Markdown tables and writes JSON to benchmarks/results/onestep.json.

    python benchmarks/onestep.py [--d 400,800] [--seeds 3] [--ge-d 200,400,800] [--skip-sim]
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
from planted import planted_directions
from reporting import paired_diff, richardson, write_results, z_score
from scipy.interpolate import CubicSpline

from sobolev_rf.derive.params import ModelParams
from sobolev_rf.numeric.simulation.exact import simulate
from sobolev_rf.numeric.theory.onestep import solve_map, spike_scaling
from sobolev_rf.numeric.theory.solve import solve

RESULTS = Path(__file__).resolve().parent / "results"
BASE = ModelParams(activation="tanh", teacher="tanh", k=1, tau=0.0, p_over_d=2.0, n_over_d=3.0, lam=1e-3)
POINTS = {
    "tanh, L2 step η̃ = 1": BASE.with_(step="l2", eta=1.0, alpha0=4.0),
    "tanh, Sobolev step η̃ = 1": BASE.with_(step="sobolev", eta=1.0, alpha0=4.0, tau_step=1.0, k_step=1),
    "ReLU, L2 step η̃ = 1": ModelParams(
        activation="relu", teacher="tanh", k=1, tau=0.0, p_over_d=2.0, n_over_d=1.0, lam=1e-3
    ).with_(step="l2", eta=1.0, alpha0=4.0),
}


#: The Sobolev readout (τ > 0) after the Sobolev step, with k = 1 and 2 gradient rows.
SOBOLEV_READOUT = {k: POINTS["tanh, Sobolev step η̃ = 1"].with_(k=k, tau=1.0, alignment=(1.0, 0.5)[:k]) for k in (1, 2)}


def _median_ms(params: ModelParams, repeats: int) -> float:
    """The median wall time of a warm ``solve`` (derivation, compilation and spike scaling cached)."""
    solve(params)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        solve(params)
        times.append(time.perf_counter() - start)
    return float(np.median(times)) * 1e3


def speed() -> dict[str, float]:
    out = {
        "rf_point_ms": _median_ms(BASE.with_(tau=0.0), 41),
        "onestep_point_ms": _median_ms(POINTS["tanh, L2 step η̃ = 1"], 41),
    }
    for k, params in SOBOLEV_READOUT.items():
        out[f"sobolev_readout_k{k}_ms"] = _median_ms(params, 21 if k == 1 else 9)
        out[f"sobolev_readout_k{k}_ratio"] = out[f"sobolev_readout_k{k}_ms"] / out["rf_point_ms"]
    step = POINTS["tanh, L2 step η̃ = 1"]
    eta, a0 = np.meshgrid(np.linspace(0, 3, 64), np.geomspace(0.25, 16, 64))
    solve_map(step, eta[:2, :2], a0[:2, :2])
    start = time.perf_counter()
    res = solve_map(step, eta, a0)
    out["map_64x64_s"] = time.perf_counter() - start
    out["map_converged"] = float(np.mean(res.converged))
    out["ratio"] = out["onestep_point_ms"] / out["rf_point_ms"]
    return out


def theory_vs_sim(sizes: list[int], seeds: int) -> list[dict]:
    rows = []
    for name, params in POINTS.items():
        theory = solve(params).eps_L2
        row = {"point": name, "theory": theory, "sim": {}}
        for d in sizes:
            start = time.perf_counter()
            res = simulate(params, d, seeds)
            m, se = float(res.mean["eps_L2"]), float(res.se["eps_L2"])
            row["sim"][d] = {"mean": m, "se": se, "z": z_score(m - theory, se), "seconds": time.perf_counter() - start}
            print(f"  {name} d = {d}: {m:.5f} ± {se:.5f} (theory {theory:.5f})", flush=True)
        if len(sizes) >= 2:
            a, b = row["sim"][sizes[-2]], row["sim"][sizes[-1]]
            value, se = richardson(a["mean"], a["se"], b["mean"], b["se"])
            row["richardson"] = {"value": value, "se": se}
        rows.append(row)
    return rows


def _conditional(f, df, r: float, cW: float, grid: np.ndarray) -> dict[str, CubicSpline]:
    """Conditional coefficients of σ and σ′ on a κ grid (Gauss–Hermite in z), as splines in κ."""
    z, w = np.polynomial.hermite_e.hermegauss(120)
    w = w / math.sqrt(2 * math.pi)
    h = r * grid[:, None] + cW * z[None, :]
    s, ds = f(h), df(h)
    m0, m1 = s @ w, (s * z) @ w / cW
    n0, n1 = ds @ w, (ds * z) @ w / cW
    m2 = np.sqrt(np.maximum((s * s) @ w - m0**2 - cW**2 * m1**2, 0))
    n2 = np.sqrt(np.maximum((ds * ds) @ w - n0**2 - cW**2 * n1**2, 0))
    cross = (s * ds) @ w - m0 * n0 - cW**2 * m1 * n1
    rho = np.clip(cross / np.maximum(m2 * n2, 1e-300), -1, 1)
    return {k: CubicSpline(grid, v) for k, v in dict(m0=m0, m1=m1, m2=m2, n0=n0, n1=n1, n2=n2, rho=rho).items()}


def ge_pair(d: int, seed: int, tau: float, eta: float = 1.0, alpha0: float = 4.0) -> tuple[float, float]:
    """(eps_L2 real, eps_L2 conditional equivalent) on the same planted spiked layer, data and V (tanh/tanh,
    p = d, n = 3d, k = 1, λ = 1e-3)."""
    spike = spike_scaling(BASE.with_(step="l2", eta=1.0, alpha0=1.0)).at(eta, alpha0)
    r, cW2, gamma = float(spike.r), float(spike.cW2), float(spike.gamma)
    rng = np.random.default_rng(seed)
    p, n, lam = d, 3 * d, 1e-3
    u, theta0 = planted_directions(rng, d, gamma)
    B = rng.standard_normal((p, d)) * math.sqrt(cW2 / d)
    W = B + r * np.outer(np.ones(p), u)
    v = rng.standard_normal(d)
    zeta = W @ v  # ζ_j = ⟨w_j, v⟩, shifted by r⟨û, v⟩
    varpi = float(v @ theta0)
    f, df = np.tanh, lambda x: 1 - np.tanh(x) ** 2
    coef = _conditional(f, df, r, math.sqrt(cW2), np.linspace(-9, 9, 721))

    def design(X: np.ndarray, equivalent: bool, noise: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        if not equivalent:
            H = X @ W.T
            return f(H), df(H) * zeta
        kappa = np.clip(X @ u, -9, 9)[:, None]
        G = X @ B.T
        xi = noise.standard_normal(G.shape)
        rho = coef["rho"](kappa)
        xi2 = rho * xi + np.sqrt(np.maximum(1 - rho**2, 0)) * noise.standard_normal(G.shape)
        F0 = coef["m0"](kappa) + coef["m1"](kappa) * G + coef["m2"](kappa) * xi
        F1 = (coef["n0"](kappa) + coef["n1"](kappa) * G + coef["n2"](kappa) * xi2) * zeta
        return F0, F1

    X, Xt = rng.standard_normal((n, d)), rng.standard_normal((4000, d))
    y, yt = np.tanh(X @ theta0), np.tanh(Xt @ theta0)
    g = varpi * (1 - y**2)
    out = []
    for equivalent in (False, True):
        noise = np.random.default_rng(seed + 10_000)
        F0, F1 = design(X, equivalent, noise)
        A = np.vstack([F0, math.sqrt(tau) * F1]) if tau > 0 else F0
        b = np.concatenate([y, math.sqrt(tau) * g]) if tau > 0 else y
        a = np.linalg.solve(A.T @ A / n + lam * np.eye(p), A.T @ b / n)
        T0, _ = design(Xt, equivalent, noise)
        out.append(float(np.mean((yt - T0 @ a) ** 2)))
    return out[0], out[1]


def ge_verdict(sizes: list[int], seeds: int) -> list[dict]:
    rows = []
    for tau in (0.0, 1.0):
        for d in sizes:
            start = time.perf_counter()
            pairs = np.array([ge_pair(d, s, tau) for s in range(seeds)])
            diff, diff_se = paired_diff(pairs[:, 0], pairs[:, 1])
            row = {
                "tau": tau,
                "d": d,
                "real": float(pairs[:, 0].mean()),
                "equivalent": float(pairs[:, 1].mean()),
                "diff": diff,
                "diff_se": diff_se,
                "seconds": time.perf_counter() - start,
            }
            rows.append(row)
            print(
                f"  tau = {tau:g} d = {d}: real {row['real']:.5f}, equivalent {row['equivalent']:.5f}, "
                f"difference {row['diff']:+.5f} ± {row['diff_se']:.5f}",
                flush=True,
            )
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--d", default="400,800", help="simulation sizes of the theory-vs-simulation table")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--ge-d", default="200,400,800", help="sizes of the Sobolev-readout equivalence check")
    ap.add_argument("--ge-seeds", type=int, default=4)
    ap.add_argument("--skip-sim", action="store_true", help="speed only")
    args = ap.parse_args()
    result: dict = {"speed": speed()}
    s = result["speed"]
    print("| quantity | value |\n|---|---|")
    print(f"| warm random-features point | {s['rf_point_ms']:.2f} ms |")
    print(f"| warm one-step point | {s['onestep_point_ms']:.2f} ms ({s['ratio']:.1f}× RF; target ≤ 20×) |")
    for k in SOBOLEV_READOUT:
        print(
            f"| warm one-step point, Sobolev readout τ = 1, k = {k} | {s[f'sobolev_readout_k{k}_ms']:.2f} ms "
            f"({s[f'sobolev_readout_k{k}_ratio']:.1f}× RF; target ≤ 20×) |"
        )
    print(
        f"| 64 × 64 (α₀, η̃) map | {s['map_64x64_s']:.2f} s (target ≤ 30 s), "
        f"{100 * s['map_converged']:.0f} % converged |"
    )
    if not args.skip_sim:
        sizes = [int(x) for x in args.d.split(",")]
        result["theory_vs_sim"] = theory_vs_sim(sizes, args.seeds)
        print("\n| point | theory | " + " | ".join(f"d = {d}" for d in sizes) + " | Richardson |")
        print("|---" * (3 + len(sizes)) + "|")
        for row in result["theory_vs_sim"]:
            cells = [f"{c['mean']:.4f} ± {c['se']:.4f} (z = {c['z']:+.1f})" for c in row["sim"].values()]
            rich = row.get("richardson")
            rtext = f"{rich['value']:.4f} ± {rich['se']:.4f}" if rich else "—"
            print(f"| {row['point']} | {row['theory']:.4f} | " + " | ".join(cells) + f" | {rtext} |")
        ge_sizes = [int(x) for x in args.ge_d.split(",")]
        result["sobolev_readout_equivalence"] = ge_verdict(ge_sizes, args.ge_seeds)
        print("\n| readout | d | real features | conditional equivalent | real − equivalent |\n|---|---|---|---|---|")
        for row in result["sobolev_readout_equivalence"]:
            print(
                f"| τ = {row['tau']:g} | {row['d']} | {row['real']:.5f} | {row['equivalent']:.5f} | "
                f"{row['diff']:+.5f} ± {row['diff_se']:.5f} |"
            )
    path = RESULTS / "onestep.json"
    previous = json.loads(path.read_text()) if path.is_file() else {}
    write_results(path, previous | result, indent=2, default=str, end="")  # --skip-sim keeps the last tables


if __name__ == "__main__":
    main()
