"""The rows' spread after a first-layer step and the τ = 0 readout: why the rows are not all alike, and what it
does to eps_L2.

After a step the rows of W₁ differ in two scalars that the readout can use (derive/spike.py, "Rows differ";
derive/onestep.py): the spike entry t_j = ⟨w¹_j, û⟩ and the squared bulk norm e_j = ‖Πw¹_j‖². Given the spike
coordinate κ a neuron's mean μ₀(κ; t_j, e_j) then varies across rows, along the vectors (t_j − r) and
(e_j − ē), with the functions κμ₁(κ) and μ_e(κ) = ∂μ₀/∂(c_W²): two rank-one channels with d × covariance Σ.

1. ``swaps``: on one step's W₁ and one training/test draw, ridge on σ(Wx) for W₁ itself and for W₁ with its
   rows' spread removed (``renorm``: every bulk row set to the mean norm; ``detrend``: the part of t_j that
   follows e_j removed; both), paired over seeds, against the readout theory with the Σ of each variant
   (measured on that seed's W₁; a Gaussian bulk would have Σ = (c_W², 0, 2c_W⁴));
2. ``readout``: the two-phase simulator (numeric/simulation) at several d against the readout theory without
   the rows' spread (Σ = (c_W², 0, 0), as before) and with it (the closed form), mean ± SE over seeds, z and
   the Richardson value 2m(2d) − m(d) of the two largest sizes.

Prints Markdown tables and writes JSON and Markdown to benchmarks/results/onestep_rows.*.

    python benchmarks/onestep_rows.py [--swap-d 400,800] [--swap-seeds 8] [--d 400,800] [--seeds 6] [--seed0 0]
                                      [--only NAME,...] [--skip-swaps] [--skip-readout]
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import numpy as np
import scipy.linalg
from reporting import mean_se, paired_diff, richardson, write_results, z_score
from scipy.linalg.blas import dsyrk
from threadpoolctl import threadpool_limits

from sobolev_rf.derive.params import ModelParams
from sobolev_rf.numeric.simulation.exact import simulate
from sobolev_rf.numeric.simulation.onestep import StepFunctions, StepSpec, measure_spike, step_first_layer
from sobolev_rf.numeric.theory.onestep import ReadoutSpike, solve_readout, spike_scaling

RESULTS = Path(__file__).resolve().parent / "results"
BASE = ModelParams(activation="tanh", teacher="tanh", k=1, tau=0.0, p_over_d=2.0, n_over_d=3.0, lam=1e-3)
POINTS = {
    "tanh-l2": BASE.with_(step="l2", eta=1.0, alpha0=4.0),
    "tanh-sobolev": BASE.with_(step="sobolev", eta=1.0, alpha0=4.0, tau_step=1.0, k_step=1),
    "tanh-sobolev-sign": BASE.with_(step="sobolev", eta=1.0, alpha0=4.0, tau_step=1.0, k_step=1, second_layer="sign"),
    "relu-l2": ModelParams(activation="relu", teacher="tanh", k=1, tau=0.0, p_over_d=2.0, n_over_d=1.0, lam=1e-3).with_(
        step="l2", eta=1.0, alpha0=4.0
    ),
    "gelu-l2": ModelParams(activation="gelu", teacher="tanh", k=1, tau=0.0, p_over_d=2.0, n_over_d=1.0, lam=1e-3).with_(
        step="l2", eta=1.5, alpha0=3.0
    ),
}
VARIANTS = ("real", "renorm", "detrend", "renorm_detrend", "isotropic", "rotated")


def _ridge_error(params: ModelParams, w: np.ndarray, data: tuple[np.ndarray, ...]) -> float:
    """eps_L2 of ridge (λ of ``params``, MODEL.md's normalisation) on σ(Wx), on the test half of ``data``."""
    fns = StepFunctions.of(params)
    x, y, xt, yt = data
    feat = np.asarray(fns.sigma(x @ w.T))
    gram = dsyrk(1.0, feat.T)
    gram[np.diag_indices_from(gram)] += len(y) * params.lam
    factor = scipy.linalg.cho_factor(gram, lower=False, overwrite_a=True, check_finite=False)
    a = scipy.linalg.cho_solve(factor, feat.T @ y, check_finite=False)
    return float(np.mean((yt - np.asarray(fns.sigma(xt @ w.T)) @ a) ** 2))


def swap_seed(params: ModelParams, d: int, seed: int, n_test: int) -> dict:
    """One step, then ridge on W₁ and on its variants (module docstring) with the same data; measured Σ."""
    rng = np.random.default_rng([seed, d, 20])
    p, n = round(params.p_over_d * d), round(params.n_over_d * d)
    theta0 = rng.standard_normal(d)
    theta0 /= np.linalg.norm(theta0)
    v = rng.standard_normal((d, 1))
    theta = rng.standard_normal((d, p))
    fns = StepFunctions.of(params)
    theta1, signs = step_first_layer(fns, StepSpec.of(params, d), theta, v, theta0, v.T @ theta0, rng)
    spike = measure_spike(theta, theta1, signs, theta0, v)
    w1 = theta1.T / math.sqrt(d)
    u = w1.T @ np.ones(p)  # û: the spike's direction, refined below as the top singular vector of W₁ − W₀
    delta = w1 - theta.T / math.sqrt(d)
    for _ in range(100):
        u = delta.T @ (delta @ u)
        u /= np.linalg.norm(u)
    if float(np.sum(delta @ u)) < 0:
        u = -u
    t = w1 @ u
    bulk = w1 - np.outer(t, u)
    e = np.sum(bulk * bulk, axis=1)
    dt, de = t - t.mean(), e - e.mean()
    sigma = np.array([[dt @ dt, dt @ de], [dt @ de, de @ de]]) * d / p
    beta = sigma[0, 1] / sigma[1, 1]
    flat = bulk * np.sqrt(e.mean() / e)[:, None]
    detrended = t - beta * de
    # isotropic: each bulk row keeps its norm, its direction drawn uniformly in û^⊥ (t_j, e_j and Σ unchanged)
    z = np.random.default_rng([seed, d, 21]).standard_normal(bulk.shape)
    z -= np.outer(z @ u, u)
    iso = z * np.sqrt(e / np.sum(z * z, axis=1))[:, None]
    # rotated: the bulk turned by a uniform rotation of û^⊥ (its Gram matrix, hence its spectrum, stays; its
    # alignment with θ₀ and with the directions behind t_j goes)
    gen = np.random.default_rng([seed, d, 22])
    perp = np.linalg.qr(np.column_stack([u, gen.standard_normal((d, d - 1))]))[0][:, 1:]
    turn = np.linalg.qr(gen.standard_normal((d - 1, d - 1)))[0]
    rotated = ((bulk @ perp) @ turn) @ perp.T
    x = rng.standard_normal((n, d))
    xt = rng.standard_normal((n_test, d))
    phi = fns.phi
    data = (x, np.asarray(phi(x @ theta0)), xt, np.asarray(phi(xt @ theta0)))
    weights = {
        "real": w1,
        "renorm": flat + np.outer(t, u),
        "detrend": bulk + np.outer(detrended, u),
        "renorm_detrend": flat + np.outer(detrended, u),
        "isotropic": iso + np.outer(t, u),
        "rotated": rotated + np.outer(t, u),
    }
    s_tt_d = sigma[0, 0] - 2 * beta * sigma[0, 1] + beta**2 * sigma[1, 1]
    channels = {
        "real": (sigma[0, 0], sigma[0, 1], sigma[1, 1]),
        "renorm": (sigma[0, 0], 0.0, 0.0),
        "detrend": (s_tt_d, 0.0, sigma[1, 1]),
        "renorm_detrend": (s_tt_d, 0.0, 0.0),
        "isotropic": (sigma[0, 0], sigma[0, 1], sigma[1, 1]),
        "rotated": (sigma[0, 0], sigma[0, 1], sigma[1, 1]),
    }
    cW2 = float(e.mean()) * d / (d - 1)
    out = {"seed": seed, "r": float(t.mean()), "gamma": float(u @ theta0), "cW2": cW2, "Sigma": sigma.tolist()}
    for name in VARIANTS:
        res = solve_readout(
            params.activation,
            params.teacher,
            ReadoutSpike(out["r"], cW2, out["gamma"], *channels[name]),
            params.p_over_d,
            params.n_over_d,
            params.lam,
        )
        out[name] = {"sim": _ridge_error(params, weights[name], data), "theory": float(res.outputs["eps_L2"][0])}
    out["measured"] = {k: float(spike[k]) for k in ("sigma_tt", "sigma_te", "sigma_ee")}
    return out


def swaps(names: list[str], sizes: list[int], seeds: int) -> list[dict]:
    rows = []
    for name in names:
        for d in sizes:
            start = time.perf_counter()
            with threadpool_limits(1):
                runs = [swap_seed(POINTS[name], d, s, 4000) for s in range(seeds)]
            row: dict = {"point": name, "d": d, "seeds": seeds, "seconds": time.perf_counter() - start}
            real_sim = np.array([r["real"]["sim"] for r in runs])
            real_th = np.array([r["real"]["theory"] for r in runs])
            for v in VARIANTS:
                sim = np.array([r[v]["sim"] for r in runs])
                th = np.array([r[v]["theory"] for r in runs])
                m, se = mean_se(sim)
                diff, diff_se = paired_diff(sim, real_sim)
                row[v] = {
                    "sim": m,
                    "se": se,
                    "theory": float(th.mean()),
                    "sim_minus_real": diff,
                    "sim_minus_real_se": diff_se,
                    "theory_minus_real": float((th - real_th).mean()),
                }
            row["Sigma"] = np.mean([r["Sigma"] for r in runs], axis=0).tolist()
            rows.append(row)
            print(f"  swaps {name} d = {d}: {row['seconds']:.0f} s", flush=True)
    return rows


def swap_table(rows: list[dict]) -> str:
    lines = [
        "| point | d (seeds) | Σ (tt, te, ee) | variant | simulation ± SE | theory "
        "| sim − real (paired) | theory − real |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        s = row["Sigma"]
        for i, v in enumerate(VARIANTS):
            e = row[v]
            head = (
                f"| {row['point']} | {row['d']} ({row['seeds']}) | {s[0][0]:.3f}, {s[0][1]:.3f}, {s[1][1]:.3f} "
                if i == 0
                else "| | | "
            )
            lines.append(
                head + f"| {v} | {e['sim']:.5f} ± {e['se']:.5f} | {e['theory']:.5f} | "
                f"{e['sim_minus_real']:+.5f} ± {e['sim_minus_real_se']:.5f} | {e['theory_minus_real']:+.5f} |"
            )
    return "\n".join(lines)


def readout(names: list[str], sizes: list[int], seeds: list[int]) -> list[dict]:
    rows = []
    for name in names:
        params = POINTS[name]
        spike = spike_scaling(params).at(params.eta, params.alpha0)
        common = (params.activation, params.teacher)
        args = (params.p_over_d, params.n_over_d, params.lam)
        theory = float(solve_readout(*common, spike, *args).outputs["eps_L2"][0])
        plain = ReadoutSpike(spike.r, spike.cW2, spike.gamma)
        before = float(solve_readout(*common, plain, *args).outputs["eps_L2"][0])
        row: dict = {"point": name, "theory": theory, "theory_without_spread": before, "sim": {}}
        for d in sizes:
            start = time.perf_counter()
            res = simulate(params, d, seeds)
            m, se = float(res.mean["eps_L2"]), float(res.se["eps_L2"])
            row["sim"][d] = {"mean": m, "se": se, "seeds": len(seeds), "seconds": time.perf_counter() - start}
            print(
                f"  readout {name} d = {d}: {m:.5f} ± {se:.5f} (theory {theory:.5f}, before {before:.5f})", flush=True
            )
        if len(sizes) >= 2:
            a, b = row["sim"][sizes[-2]], row["sim"][sizes[-1]]
            value, se = richardson(a["mean"], a["se"], b["mean"], b["se"])
            row["richardson"] = {"mean": value, "se": se}
        rows.append(row)
    return rows


def readout_table(rows: list[dict]) -> str:
    lines = [
        "| point | theory (rows' spread) | theory without it | d (seeds) | simulation ± SE | z | z without |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        first = True
        entries = [(f"{d} ({e['seeds']})", e) for d, e in row["sim"].items()]
        if "richardson" in row:
            entries.append(("Richardson", row["richardson"]))
        for label, e in entries:
            head = (
                f"| {row['point']} | {row['theory']:.5f} | {row['theory_without_spread']:.5f} " if first else "| | | "
            )
            first = False
            z = z_score(e["mean"] - row["theory"], e["se"])
            z0 = z_score(e["mean"] - row["theory_without_spread"], e["se"])
            lines.append(head + f"| {label} | {e['mean']:.5f} ± {e['se']:.5f} | {z:+.1f} | {z0:+.1f} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--swap-d", default="400,800")
    ap.add_argument("--swap-seeds", type=int, default=8)
    ap.add_argument("--d", default="400,800")
    ap.add_argument("--seeds", type=int, default=6)
    ap.add_argument("--seed0", type=int, default=0, help="first seed of the readout's simulations")
    ap.add_argument("--only", default=",".join(POINTS))
    ap.add_argument("--swap-only", default="tanh-sobolev,tanh-l2")
    ap.add_argument("--skip-swaps", action="store_true")
    ap.add_argument("--skip-readout", action="store_true")
    ap.add_argument("--out", default="onestep_rows")
    args = ap.parse_args()
    out: dict = {}
    text = []
    if not args.skip_swaps:
        out["swaps"] = swaps(args.swap_only.split(","), [int(d) for d in args.swap_d.split(",")], args.swap_seeds)
        text.append("Paired swaps (same step, same data):\n\n" + swap_table(out["swaps"]))
    if not args.skip_readout:
        sizes = [int(d) for d in args.d.split(",")]
        out["readout"] = readout(args.only.split(","), sizes, list(range(args.seed0, args.seed0 + args.seeds)))
        text.append("Two-phase simulator against the readout theory:\n\n" + readout_table(out["readout"]))
    body = "\n\n".join(text)
    print(body)
    write_results(RESULTS / f"{args.out}.json", out, end="")
    write_results(
        RESULTS / f"{args.out}.md",
        "The rows' spread after a first-layer step (benchmarks/onestep_rows.py).\n\n" + body + "\n",
    )


if __name__ == "__main__":
    main()
