"""The Sobolev readout (τ > 0) on a real stepped layer and on variants of it: which departure of the real step
from the spiked model moves eps_L2.

On one step's W₁ (the exact step of numeric/simulation/onestep.py) and one training/test draw, the Sobolev ridge
on σ(Wx) and σ′(Wx)ζ_l (ζ = Wv, MODEL.md) runs for W₁ itself and for variants that each remove one feature of the
real layer, paired over seeds (same step, same data):

- ``isotropic``: each bulk row keeps its norm and gets a uniform direction in û^⊥ (t_j, e_j, Σ stay; the bulk's
  alignment with θ₀, with v and with the rows' own start goes);
- ``renorm``: every bulk row set to the mean norm (the norm channel e_j goes);
- ``detrend``: the part of t_j that follows e_j removed (Σ_te goes); ``renorm_detrend`` both;
- ``planted``: W = t ûᵀ + a Gaussian bulk of rows of norm² c_W² (the spike entries t_j stay).

The theory (derive/onestep.py's Sobolev readout, the closed-form spike with its rows' spread, at each seed's
measured ⟨û, v⟩) is given for the real layer and for the deterministic variants (with their Σ); the redrawn
variants (``isotropic``, ``planted``) change the random features themselves, so their paired differences carry
a full resampling's spread. Prints a Markdown table and writes JSON and Markdown to
benchmarks/results/onestep_tau_swaps.*.

    python benchmarks/onestep_tau_swaps.py [--d 400,800] [--seeds 8]
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import numpy as np
from onestep_tau import theory
from reporting import mean_se, paired_diff, write_results
from threadpoolctl import threadpool_limits

from sobolev_rf.derive.params import ModelParams
from sobolev_rf.numeric.simulation.functions import numpy_pair
from sobolev_rf.numeric.simulation.onestep import StepFunctions, StepSpec, step_first_layer
from sobolev_rf.numeric.theory.onestep import ReadoutSpike, rotated_alignment, spike_scaling

RESULTS = Path(__file__).resolve().parent / "results"
POINT = ModelParams(
    activation="tanh", teacher="tanh", k=1, tau=1.0, p_over_d=1.5, n_over_d=3.0, lam=0.01, alignment=(1.0,)
).with_(step="sobolev", eta=1.0, alpha0=2.0, tau_step=1.0, k_step=1)
VARIANTS = ("real", "renorm", "detrend", "renorm_detrend", "isotropic", "planted")
#: The deterministic variants (no redraw: their paired differences are precise) and their theory's Σ from the
#: closed form (Σ_tt, Σ_te, Σ_ee): ``renorm`` (Σ_tt, 0, 0), ``detrend`` (Σ_tt − Σ_te²/Σ_ee, 0, Σ_ee), both.
EXACT = ("real", "renorm", "detrend", "renorm_detrend")
KEYS = ("eps_L2", "eps_H1")


def _ridge(params: ModelParams, w: np.ndarray, v: np.ndarray, theta0: np.ndarray, data: tuple) -> dict[str, float]:
    """eps_L2 and eps_H1 of the Sobolev ridge (τ, λ of ``params``) on σ(Wx), σ′(Wx)ζ_l with ζ = Wv."""
    sigma, dsigma = numpy_pair(params.activation)
    phi, dphi = numpy_pair(params.teacher)
    varpi = np.asarray(params.alignment, dtype=float)
    zeta = w @ v
    k, tau, lam = params.k, params.tau, params.lam

    def rows(x: np.ndarray) -> tuple[np.ndarray, list[np.ndarray], np.ndarray, np.ndarray]:
        h, omega = x @ w.T, x @ theta0
        ds = dsigma(h)
        return sigma(h), [ds * zeta[:, l] for l in range(k)], phi(omega), dphi(omega)

    x, xt = data
    f0, f, y, dy = rows(x)
    a = np.vstack([f0] + [math.sqrt(tau) * g for g in f])
    b = np.concatenate([y] + [math.sqrt(tau) * varpi[l] * dy for l in range(k)])
    coef = np.linalg.solve(a.T @ a + len(y) * lam * np.eye(w.shape[0]), a.T @ b)
    t0, t, yt, dyt = rows(xt)
    return {
        "eps_L2": float(np.mean((yt - t0 @ coef) ** 2)),
        "eps_H1": float(np.mean([np.mean((varpi[l] * dyt - t[l] @ coef) ** 2) for l in range(k)])),
    }


def swap_seed(params: ModelParams, d: int, seed: int, n_test: int = 4000) -> dict:
    rng = np.random.default_rng([seed, d, 30])
    p, n = round(params.p_over_d * d), round(params.n_over_d * d)
    theta0 = rng.standard_normal(d)
    theta0 /= np.linalg.norm(theta0)
    varpi = np.asarray(params.alignment, dtype=float)
    g = rng.standard_normal((d, params.k))
    v = g - np.outer(theta0, theta0 @ g) + np.outer(theta0, varpi)  # ⟨v_l, θ₀⟩ = ϖ_l, ‖v_l‖ ≈ √d
    theta = rng.standard_normal((d, p))
    fns = StepFunctions.of(params)
    theta1, _signs = step_first_layer(fns, StepSpec.of(params, d), theta, v, theta0, varpi, rng)
    w0, w1 = theta.T / math.sqrt(d), theta1.T / math.sqrt(d)
    delta = w1 - w0
    u = delta.T @ np.ones(p)
    for _ in range(100):
        u = delta.T @ (delta @ u)
        u /= np.linalg.norm(u)
    if float(np.sum(delta @ u)) < 0:
        u = -u
    t = w1 @ u
    bulk = w1 - np.outer(t, u)
    e = np.sum(bulk * bulk, axis=1)
    gen = np.random.default_rng([seed, d, 31])
    z = gen.standard_normal(bulk.shape)
    z -= np.outer(z @ u, u)
    iso = z * np.sqrt(e / np.sum(z * z, axis=1))[:, None]
    dt, de = t - t.mean(), e - e.mean()
    detrended = t - float(dt @ de) / float(de @ de) * de
    flat = bulk * np.sqrt(e.mean() / e)[:, None]
    z = gen.standard_normal(bulk.shape)
    z -= np.outer(z @ u, u)
    planted = z * math.sqrt(float(e.mean()) / (d - 1))
    weights = {
        "real": w1,
        "isotropic": iso + np.outer(t, u),
        "renorm": flat + np.outer(t, u),
        "detrend": bulk + np.outer(detrended, u),
        "renorm_detrend": flat + np.outer(detrended, u),
        "planted": planted + np.outer(t, u),
    }
    data = (rng.standard_normal((n, d)), rng.standard_normal((n_test, d)))
    out: dict = {"seed": seed, "overlap": (u @ v).tolist()}  # ⟨û, v_l⟩ with ‖v_l‖ ≈ √d, as the theory takes it
    for name in VARIANTS:
        out[name] = _ridge(params, weights[name], v, theta0, data)
    return out


def run(params: ModelParams, sizes: list[int], seeds: int) -> list[dict]:
    spike = spike_scaling(params).at(params.eta, params.alpha0)
    al = np.asarray(params.alignment, dtype=float)
    rows = []
    for d in sizes:
        start = time.perf_counter()
        with threadpool_limits(1):
            runs = [swap_seed(params, d, s) for s in range(seeds)]
        beta = np.array([r["overlap"] for r in runs])
        shift, varpi = rotated_alignment(np.broadcast_to(al, beta.shape), float(spike.r) * beta)
        tt, te, ee = (float(x) for x in (spike.sigma_tt, spike.sigma_te, spike.sigma_ee))
        channels = {
            "real": (tt, te, ee),
            "renorm": (tt, 0.0, 0.0),
            "detrend": (tt - te**2 / ee, 0.0, ee),
            "renorm_detrend": (tt - te**2 / ee, 0.0, 0.0),
        }
        th = {
            name: theory(params, shift, varpi, ReadoutSpike(spike.r, spike.cW2, spike.gamma, *channels[name]))
            for name in EXACT
        }
        row: dict = {"d": d, "seeds": seeds, "seconds": time.perf_counter() - start}
        for key in KEYS:
            real = np.array([r["real"][key] for r in runs])
            row[key] = {"theory": float(np.mean(th["real"][key]))}
            row[key]["real_minus_theory"] = paired_diff(real, th["real"][key])
            for name in VARIANTS:
                sim = np.array([r[name][key] for r in runs])
                m, se = mean_se(sim)
                diff, diff_se = paired_diff(sim, real)
                row[key][name] = {
                    "sim": m,
                    "se": se,
                    "minus_real": diff,
                    "minus_real_se": diff_se,
                    "theory_minus_real": float(np.mean(th[name][key] - th["real"][key])) if name in th else math.nan,
                }
        rows.append(row)
        print(f"  d = {d}: {row['seconds']:.0f} s", flush=True)
    return rows


def table(rows: list[dict]) -> str:
    lines = [
        "| quantity | d (seeds) | theory | real − theory | variant | simulation ± SE | variant − real (paired) "
        "| theory: variant − real |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        for key in KEYS:
            q = row[key]
            m, se = q["real_minus_theory"]
            for i, name in enumerate(VARIANTS):
                head = (
                    f"| {key} | {row['d']} ({row['seeds']}) | {q['theory']:.5f} | {m:+.5f} ± {se:.5f} "
                    if i == 0
                    else "| | | | "
                )
                e = q[name]
                lines.append(
                    head
                    + f"| {name} | {e['sim']:.5f} ± {e['se']:.5f} | {e['minus_real']:+.5f} ± {e['minus_real_se']:.5f} "
                    + (f"| {e['theory_minus_real']:+.5f} |" if math.isfinite(e["theory_minus_real"]) else "| — |")
                )
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--d", default="400,800")
    ap.add_argument("--seeds", type=int, default=8)
    ap.add_argument("--out", default="onestep_tau_swaps")
    args = ap.parse_args()
    rows = run(POINT, [int(d) for d in args.d.split(",")], args.seeds)
    body = table(rows)
    print(body)
    write_results(RESULTS / f"{args.out}.json", {"point": POINT.as_dict(), "rows": rows}, end="")
    header = "The Sobolev readout on a real stepped layer and its variants (benchmarks/onestep_tau_swaps.py).\n\n"
    write_results(RESULTS / f"{args.out}.md", header + body + "\n")


if __name__ == "__main__":
    main()
