"""eps_grad (and eps_H1's expectation over V) after one first-layer step: derived theory against the simulator.

The gradient errors of the readout after a step (derive/onestep_grad.py) at a few points (τ = 0 readout: points
0-2; Sobolev readout τ = 1: points 3-4), against the exact two-phase simulator (a real step on its own batch,
then the ridge on σ(W₁x)) at several input dimensions d. The theory is ``solve``'s (for τ > 0 averaged over the
readout's ζ shift), so the table's z is (simulation − theory)/SE with the simulation's SE over seeds.
eps_H1 at τ = 0 does not self-average (its seed spread is large); the theory is its expectation over V.
Then the Richardson value 2m(2d) − m(d) of the gap over the two largest sizes (a 1/d finite-size gap
extrapolates to 0).

    python benchmarks/onestep_grad.py [--d 200,400,800,1600] [--seeds 32,24,16,8] [--points 0,1,2] [--out NAME]

Prints Markdown tables and writes them to benchmarks/results/NAME.md, the numbers to NAME.json (default
onestep_grad). The many-seed run for eps_H1 at small d:
``--d 200,400 --seeds 256,96 --points 0,1 --out onestep_grad_h1``; the Sobolev readout:
``--d 200,400,800 --seeds 32,24,12 --points 3,4 --out onestep_grad_tau``. ``--planted`` replaces the real step by
a planted spiked layer W₁ = B + r1ûᵀ (Gaussian bulk, closed-form r, c_W², γ), the model the theory is derived for:
``--planted --d 400,800,1600 --seeds 24,16,8 --points 1,4 --out onestep_grad_planted`` (at τ = 0 it also
reports eps_H1_V, each seed's eps_H1 averaged over v exactly, which is free of eps_H1's heavy-tailed V noise).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from planted import planted_directions
from reporting import mean_se, paired_diff, richardson_by_key, write_results, z_score

from sobolev_rf.derive.params import ModelParams
from sobolev_rf.numeric.simulation.exact import simulate
from sobolev_rf.numeric.theory.solve import solve

RESULTS = Path(__file__).resolve().parent / "results"
KEYS = ("eps_L2", "eps_grad", "eps_H1")
TANH = ModelParams(activation="tanh", teacher="tanh", k=1, tau=0, p_over_d=1.5, n_over_d=3.0, lam=0.01)
POINTS = {
    "tanh, L2 step η̃ = 2, α₀ = 2": TANH.with_(alignment=(0.5,), step="l2", eta=2.0, alpha0=2.0),
    "tanh, Sobolev step η̃ = 1, α₀ = 2, τ₁ = k₁ = 1": TANH.with_(
        alignment=(0.5,), step="sobolev", eta=1.0, alpha0=2.0, tau_step=1.0, k_step=1
    ),
    "ReLU student, L2 step η̃ = 1, α₀ = 4": TANH.with_(
        activation="relu", alignment=(0.5,), step="l2", eta=1.0, alpha0=4.0
    ),
    "Sobolev readout τ = 1, tanh, L2 step η̃ = 2, α₀ = 2": TANH.with_(
        tau=1.0, alignment=(1.0,), step="l2", eta=2.0, alpha0=2.0
    ),
    "Sobolev readout τ = 1, tanh, Sobolev step η̃ = 1, α₀ = 2, τ₁ = k₁ = 1": TANH.with_(
        tau=1.0, alignment=(1.0,), step="sobolev", eta=1.0, alpha0=2.0, tau_step=1.0, k_step=1
    ),
}


def run_point(name: str, params: ModelParams, dims: list[int], seeds: list[int]) -> dict:
    th = solve(params)
    theory = {"eps_L2": th.eps_L2, "eps_grad": th.eps_grad, "eps_H1": th.eps_H1}
    no_step = solve(params.with_(eta=0.0))
    out: dict = {"params": params.as_dict(), "theory": theory, "sizes": {}}
    out["theory_no_step"] = {"eps_L2": no_step.eps_L2, "eps_grad": no_step.eps_grad, "eps_H1": no_step.eps_H1}
    for d, s in zip(dims, seeds, strict=True):
        t0 = time.time()
        sim = simulate(params, d, s)
        row: dict = {"seeds": s}
        for key in KEYS:
            m, se = mean_se(sim.per_seed[key])
            row[key] = {"sim": m, "sim_se": se, "diff": m - theory[key]}
        row["seconds"] = time.time() - t0
        out["sizes"][d] = row
        print(f"  {name}: d = {d} done in {row['seconds']:.0f} s", flush=True)
    if len(dims) >= 2:
        small, large = out["sizes"][dims[-2]], out["sizes"][dims[-1]]
        out["richardson"] = richardson_by_key(small, large, KEYS, se="sim_se")
    return out


def planted_seed(params: ModelParams, d: int, seed: int, n_test: int = 4000) -> dict[str, float]:
    """The readout (k = 1, any τ ≥ 0) on a planted spiked layer W₁ = B + r1ûᵀ (B Gaussian with rows of squared
    norm c_W²; r, c_W², γ = ⟨û, θ₀⟩ of the closed form): the model the theory is derived for, without the
    step's departures from it. Returns eps_L2, eps_grad, eps_H1 on fresh inputs and β = ⟨û, v⟩."""
    from sobolev_rf.numeric.simulation.functions import numpy_pair
    from sobolev_rf.numeric.theory.onestep import spike_scaling

    spike = spike_scaling(params).at(params.eta, params.alpha0)
    r, cW2, gamma = float(spike.r), float(spike.cW2), float(spike.gamma)
    sigma, dsigma = numpy_pair(params.activation)
    phi, dphi = numpy_pair(params.teacher)
    rng = np.random.default_rng(seed)
    tau, lam, varpi = params.tau, params.lam, float(np.asarray(params.alignment)[0])
    p, n = round(params.p_over_d * d), round(params.n_over_d * d)
    u, theta0 = planted_directions(rng, d, gamma)
    g = rng.standard_normal(d)
    v = g - theta0 * (theta0 @ g) + varpi * theta0  # ⟨v, θ₀⟩ = ϖ exactly
    W = rng.standard_normal((p, d)) * np.sqrt(cW2 / d) + r * np.outer(np.ones(p), u)
    zeta = W @ v
    X = rng.standard_normal((n, d))
    H, omega = X @ W.T, X @ theta0
    rows = [sigma(H)] + ([np.sqrt(tau) * dsigma(H) * zeta] if tau > 0 else [])
    A = np.vstack(rows)
    b = np.concatenate([phi(omega)] + ([np.sqrt(tau) * varpi * dphi(omega)] if tau > 0 else []))
    a = np.linalg.solve(A.T @ A + n * lam * np.eye(p), A.T @ b)
    Xt = rng.standard_normal((n_test, d))
    Ht, wt = Xt @ W.T, Xt @ theta0
    ds = dsigma(Ht)
    grad = (ds * a) @ W - np.outer(dphi(wt), theta0)
    along = grad @ theta0  # the error along θ₀; the rest is what a fresh v^⊥ sees
    out = {
        "eps_L2": float(np.mean((phi(wt) - sigma(Ht) @ a) ** 2)),
        "eps_grad": float(np.mean(np.sum(grad**2, axis=1))),
        "eps_H1": float(np.mean((grad @ v) ** 2)),
        "beta": float(u @ v),
    }
    if tau == 0:  # a does not see V: eps_H1's expectation over v^⊥ ~ N(0, I − θ₀θ₀ᵀ), exactly, per seed
        out["eps_H1_V"] = float(varpi**2 * np.mean(along**2) + np.mean(np.sum(grad**2, axis=1) - along**2))
    return out


def run_planted(name: str, params: ModelParams, dims: list[int], seeds: list[int]) -> dict:
    """:func:`planted_seed` over seeds against the theory with the planted layer's spike (Σ = (c_W², 0, 2c_W⁴):
    a Gaussian bulk); for τ > 0 the theory at each seed's ζ shift r⟨û, v⟩, paired. At τ = 0 also eps_H1_V, each
    seed's eps_H1 averaged over v exactly (ϖ²E(φ′ − ⟨θ₀, ∇f⟩)² + E‖(I − θ₀θ₀ᵀ)∇f‖²), against the theory's eps_H1."""
    from sobolev_rf.numeric.theory.onestep import (
        ReadoutSpike,
        rotated_alignment,
        solve_readout,
        solve_sobolev_readout,
        spike_scaling,
    )

    closed = spike_scaling(params).at(params.eta, params.alpha0)
    cW2 = float(closed.cW2)
    spike = ReadoutSpike(closed.r, cW2, closed.gamma, cW2, 0.0, 2 * cW2**2)
    al = np.asarray(params.alignment, dtype=float)
    args = (params.activation, params.teacher, spike, params.p_over_d, params.n_over_d, params.lam)
    out: dict = {"sizes": {}}
    for d, s in zip(dims, seeds, strict=True):
        t0 = time.time()
        per = [planted_seed(params, d, 2000 + i) for i in range(s)]
        if params.tau > 0:
            beta = np.array([[q["beta"]] for q in per])
            shift, varpi = rotated_alignment(np.broadcast_to(al, beta.shape), float(spike.r) * beta)
            th = solve_sobolev_readout(*args, params.tau, shift, varpi).outputs
        else:
            th = solve_readout(*args, varpi2=float(np.mean(al**2))).outputs
        row: dict = {"seeds": s}
        for key in KEYS + (("eps_H1_V",) if params.tau == 0 else ()):
            theory = th[key.removesuffix("_V")]
            diff, diff_se = paired_diff([q[key] for q in per], theory)
            row[key] = {"theory": float(np.mean(theory)), "diff": diff, "diff_se": diff_se}
        row["seconds"] = time.time() - t0
        out["sizes"][d] = row
        print(f"  {name} (planted): d = {d} done in {row['seconds']:.0f} s", flush=True)
    return out


def planted_table(name: str, res: dict) -> str:
    lines = [f"### {name}: planted spiked layer (the readout theory alone)", ""]
    lines.append("| quantity | d | seeds | theory | planted − theory ± SE | z |")
    lines.append("|---|---|---|---|---|---|")
    for key in KEYS + ("eps_H1_V",):
        for d, row in res["sizes"].items():
            if key not in row:
                continue
            e = row[key]
            z = z_score(e["diff"], e["diff_se"])
            gap = f"{e['diff']:+.5f} ± {e['diff_se']:.5f}"
            lines.append(f"| {key} | {d} | {row['seeds']} | {e['theory']:.5f} | {gap} | {z:+.1f} |")
    return "\n".join(lines)


def table(name: str, res: dict) -> str:
    lines = [f"### {name}", ""]
    lines.append("| quantity | d | seeds | simulation ± SE | theory | sim − theory | z |")
    lines.append("|---|---|---|---|---|---|---|")
    for key in KEYS:
        for d, row in res["sizes"].items():
            e = row[key]
            z = z_score(e["diff"], e["sim_se"])
            lines.append(
                f"| {key} | {d} | {row['seeds']} | {e['sim']:.5f} ± {e['sim_se']:.5f} | {res['theory'][key]:.5f} | "
                f"{e['diff']:+.5f} | {z:+.1f} |"
            )
        if "richardson" in res:
            r = res["richardson"][key]
            z = z_score(r["value"], r["se"])
            lines.append(f"| {key} | Richardson | | | | {r['value']:+.5f} ± {r['se']:.5f} | {z:+.1f} |")
    nos = res["theory_no_step"]
    lines += ["", "No step (η̃ = 0): " + ", ".join(f"{k} = {nos[k]:.5f}" for k in KEYS)]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--d", default="200,400,800,1600", help="input dimensions")
    parser.add_argument("--seeds", default="32,24,16,8", help="seeds per dimension")
    parser.add_argument("--points", default="0,1,2", help="comma-separated point indices (0-based) or 'all'")
    parser.add_argument("--out", default="onestep_grad", help="name of the JSON file in benchmarks/results")
    parser.add_argument("--planted", action="store_true", help="the planted spiked layer instead of the real step")
    args = parser.parse_args()
    dims = [int(x) for x in args.d.split(",")]
    seeds = [int(x) for x in args.seeds.split(",")]
    if len(dims) != len(seeds):
        parser.error("--d and --seeds need the same number of entries")
    names = list(POINTS)
    chosen = names if args.points == "all" else [names[int(i)] for i in args.points.split(",")]
    results, tables = {}, []
    for name in chosen:
        if args.planted:
            results[name] = run_planted(name, POINTS[name], dims, seeds)
            tables.append(planted_table(name, results[name]))
        else:
            results[name] = run_point(name, POINTS[name], dims, seeds)
            tables.append(table(name, results[name]))
        print(tables[-1] + "\n", flush=True)
    path = write_results(RESULTS / f"{args.out}.json", results, default=str)
    write_results(RESULTS / f"{args.out}.md", "\n\n".join(tables) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
