"""The Sobolev readout (τ > 0) after one first-layer step: derived theory against the exact simulator.

For each point and input dimension d the exact two-phase simulator (a real step on its own batch, then
the Sobolev ridge on σ(W₁x)) runs over seeds. The theory is evaluated three ways:

- ``theory``: the derived system at the closed-form spike (r, c_W², γ) and each seed's measured
  ⟨û, v_l⟩ (the readout's ζ shift c = r⟨û, v⟩ and its second alignment vector ν vary over seeds), averaged
  over the seeds as the simulation is; the table's z is the paired difference (simulation − theory)/SE;
- ``theory E_ν``: the same averaged over ν ~ N(0, I_k) by quadrature (what ``solve`` reports);
- ``no shift``: the derived system with the shift c set to 0 (an ablation: how much the shift matters).

Then the Richardson value 2m(2d) − m(d) of the paired difference over the two largest sizes (a 1/d
finite-size gap extrapolates to 0). ``--planted`` adds the same comparison on a planted spiked layer
W₁ = B + r1ûᵀ (Gaussian bulk, closed-form r, c_W², γ): the readout theory alone, without the real step's
deviations from the spiked model.

    python benchmarks/onestep_tau.py [--d 200,400,800] [--seeds 24,16,8] [--points all]

Prints Markdown tables and writes JSON to benchmarks/results/onestep_tau.json.
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
from sobolev_rf.numeric.theory.onestep import (
    ReadoutSpike,
    alignment_law,
    rotated_alignment,
    solve_sobolev_readout,
    spike_scaling,
)

RESULTS = Path(__file__).resolve().parent / "results"
KEYS = ("eps_L2", "eps_H1", "train_error_L2", "train_loss")
TANH = ModelParams(activation="tanh", teacher="tanh", k=1, tau=1.0, p_over_d=1.5, n_over_d=3.0, lam=0.01)
POINTS = {
    "tanh, L2 step η̃ = 2, k = 1": TANH.with_(alignment=(1.0,), step="l2", eta=2.0, alpha0=2.0),
    "tanh, L2 step η̃ = 2, k = 2": TANH.with_(k=2, alignment=(1.0, 0.5), step="l2", eta=2.0, alpha0=2.0),
    "ReLU, L2 step η̃ = 1, k = 1": ModelParams(
        activation="relu", teacher="tanh", k=1, tau=1.0, p_over_d=1.5, n_over_d=3.0, lam=0.01, alignment=(-1.0,)
    ).with_(step="l2", eta=1.0, alpha0=4.0),
    "tanh, Sobolev step η̃ = 1, k = 1": TANH.with_(
        alignment=(1.0,), step="sobolev", eta=1.0, alpha0=2.0, tau_step=1.0, k_step=1
    ),
}


def theory(
    params: ModelParams, shift: np.ndarray, varpi: np.ndarray, spike: ReadoutSpike | None = None
) -> dict[str, np.ndarray]:
    """The derived system at each (shift, ϖ′); ``spike`` defaults to the closed form with its rows' spread."""
    spike = spike or spike_scaling(params).at(params.eta, params.alpha0)
    res = solve_sobolev_readout(
        params.activation,
        params.teacher,
        spike,
        params.p_over_d,
        params.n_over_d,
        params.lam,
        params.tau,
        shift,
        varpi,
        params.noise_f,
        params.noise_g,
    )
    if not np.all(res.converged):
        raise RuntimeError("the theory did not converge")
    return res.outputs


def planted_seed(params: ModelParams, d: int, seed: int, n_test: int = 4000) -> dict[str, float]:
    """The Sobolev ridge on the real features σ(W₁x), σ′(W₁x)ζ_l of a planted spiked layer W₁ = B + r1ûᵀ (B
    Gaussian with rows of norm c_W, r, c_W², γ = ⟨û, θ₀⟩ of the closed form): exactly the model the readout
    theory is derived for, without the step's deviations from it. Returns the errors and ⟨û, v_l⟩."""
    from sobolev_rf.numeric.simulation.functions import numpy_pair

    spike = spike_scaling(params).at(params.eta, params.alpha0)
    r, cW2, gamma = float(spike.r), float(spike.cW2), float(spike.gamma)
    sigma, dsigma = numpy_pair(params.activation)
    phi, dphi = numpy_pair(params.teacher)
    rng = np.random.default_rng(seed)
    k, tau, lam = params.k, params.tau, params.lam
    p, n = round(params.p_over_d * d), round(params.n_over_d * d)
    u, theta0 = planted_directions(rng, d, gamma)
    varpi = np.asarray(params.alignment, dtype=float)
    g = rng.standard_normal((d, k))
    v = g - np.outer(theta0, theta0 @ g) + np.outer(theta0, varpi)  # ⟨v_l, θ₀⟩ = ϖ_l exactly
    W = rng.standard_normal((p, d)) * np.sqrt(cW2 / d) + r * np.outer(np.ones(p), u)
    zeta = W @ v

    def rows(X: np.ndarray) -> tuple[np.ndarray, list[np.ndarray], np.ndarray, np.ndarray]:
        H, omega = X @ W.T, X @ theta0
        ds = dsigma(H)
        return sigma(H), [ds * zeta[:, l] for l in range(k)], phi(omega), dphi(omega)

    F0, F, y, dy = rows(rng.standard_normal((n, d)))
    A = np.vstack([F0] + [np.sqrt(tau) * f for f in F])
    b = np.concatenate([y] + [np.sqrt(tau) * varpi[l] * dy for l in range(k)])
    w = np.linalg.solve(A.T @ A + n * lam * np.eye(p), A.T @ b)
    res = b - A @ w
    T0, T, yt, dyt = rows(rng.standard_normal((n_test, d)))
    return {
        "eps_L2": float(np.mean((yt - T0 @ w) ** 2)),
        "eps_H1": float(np.mean([np.mean((varpi[l] * dyt - T[l] @ w) ** 2) for l in range(k)])),
        "train_error_L2": float(np.mean(res[:n] ** 2)),
        "train_loss": float(res @ res / n + lam * w @ w),
        "beta": (u @ v).tolist(),
    }


def run_planted(name: str, params: ModelParams, dims: list[int], seeds: list[int]) -> dict:
    spike = spike_scaling(params).at(params.eta, params.alpha0)
    al = np.asarray(params.alignment, dtype=float)
    out: dict = {"sizes": {}}
    for d, s in zip(dims, seeds):
        t0 = time.time()
        per = [planted_seed(params, d, 1000 + i) for i in range(s)]
        beta = np.array([q["beta"] for q in per])
        c_shift, c_varpi = rotated_alignment(np.broadcast_to(al, beta.shape), float(spike.r) * beta)
        # a Gaussian bulk: spike entries of variance c_W²/d, squared row norms of variance 2c_W⁴/d, uncorrelated
        planted = ReadoutSpike(spike.r, spike.cW2, spike.gamma, spike.cW2, 0.0, 2 * float(spike.cW2) ** 2)
        th = theory(params, c_shift, c_varpi, planted)
        row = {"seeds": s, "seconds": time.time() - t0}
        for key in KEYS:
            row[key] = _against_theory(np.array([q[key] for q in per]), th[key])
        out["sizes"][d] = row
        print(f"  {name} (planted): d = {d} done in {row['seconds']:.0f} s", flush=True)
    return out


def _against_theory(sim: np.ndarray, theory: np.ndarray) -> dict[str, float]:
    """The simulation's mean ± SE over seeds, the theory's mean and the paired difference ± SE."""
    m, se = mean_se(sim)
    diff, diff_se = paired_diff(sim, theory)
    return {"sim": m, "sim_se": se, "theory": float(theory.mean()), "diff": diff, "diff_se": diff_se}


def _size_rows(res: dict, key: str) -> list[str]:
    """One Markdown row per size d: simulation ± SE, theory, the difference ± SE and its z."""
    lines = []
    for d, row in res["sizes"].items():
        e = row[key]
        z = z_score(e["diff"], e["diff_se"])
        lines.append(
            f"| {key} | {d} | {row['seeds']} | {e['sim']:.5f} ± {e['sim_se']:.5f} | {e['theory']:.5f} | "
            f"{e['diff']:+.5f} ± {e['diff_se']:.5f} | {z:+.1f} |"
        )
    return lines


def planted_table(name: str, res: dict) -> str:
    lines = [f"### {name}: planted spiked layer (the readout theory alone)", ""]
    lines.append("| quantity | d | seeds | planted simulation ± SE | theory | sim − theory ± SE | z |")
    lines.append("|---|---|---|---|---|---|---|")
    for key in KEYS:
        lines += _size_rows(res, key)
    return "\n".join(lines)


def run_point(name: str, params: ModelParams, dims: list[int], seeds: list[int]) -> dict:
    spike = spike_scaling(params).at(params.eta, params.alpha0)
    al = np.asarray(params.alignment, dtype=float)
    shift, varpi, weight = alignment_law(al, spike)
    expected = {key: float(weight @ v) for key, v in theory(params, shift, varpi).items() if key in KEYS}
    ablation = theory(params, np.zeros(1), al[None, :])
    out: dict = {"params": params.as_dict(), "sizes": {}}
    out["theory_expected"] = expected
    out["theory_no_shift"] = {key: float(ablation[key][0]) for key in KEYS}
    out["spike"] = {"r": float(spike.r), "cW2": float(spike.cW2), "gamma": float(spike.gamma)}
    for d, s in zip(dims, seeds):
        t0 = time.time()
        sim = simulate(params, d, s)
        beta = sim.per_seed["spike_overlap_l"]
        c_shift, c_varpi = rotated_alignment(np.broadcast_to(al, beta.shape), float(spike.r) * beta)
        th = theory(params, c_shift, c_varpi)
        row = {"seeds": s, "seconds": time.time() - t0}
        for key in KEYS:
            row[key] = _against_theory(sim.per_seed[key], th[key])
        row["measured_spike"] = {k: float(sim.mean[k]) for k in ("spike_r", "spike_gamma", "c_W")}
        out["sizes"][d] = row
        print(f"  {name}: d = {d} done in {row['seconds']:.0f} s", flush=True)
    if len(dims) >= 2:
        small, large = out["sizes"][dims[-2]], out["sizes"][dims[-1]]
        out["richardson"] = richardson_by_key(small, large, KEYS, se="diff_se")
    return out


def table(name: str, res: dict) -> str:
    lines = [f"### {name}", "", f"spike (closed form): {res['spike']}", ""]
    lines.append("| quantity | d | seeds | simulation ± SE | theory | sim − theory ± SE | z |")
    lines.append("|---|---|---|---|---|---|---|")
    for key in KEYS:
        lines += _size_rows(res, key)
        extra = f"E_ν theory {res['theory_expected'][key]:.5f}; no-shift ablation {res['theory_no_shift'][key]:.5f}"
        if "richardson" in res:
            r = res["richardson"][key]
            extra += f"; Richardson 2Δ(2d) − Δ(d) = {r['value']:+.5f} ± {r['se']:.5f}"
        lines.append(f"| {key} | | | {extra} | | | |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--d", default="200,400,800")
    parser.add_argument("--seeds", default="24,16,8")
    parser.add_argument("--points", default="all", help="comma-separated indices into the point list, or all")
    parser.add_argument("--planted", action="store_true", help="also the planted spiked layer (the readout alone)")
    parser.add_argument("--out", default=str(RESULTS / "onestep_tau.json"))
    args = parser.parse_args()
    dims = [int(x) for x in args.d.split(",")]
    seeds = [int(x) for x in args.seeds.split(",")]
    names = list(POINTS)
    if args.points != "all":
        names = [names[int(i)] for i in args.points.split(",")]
    results = {}
    for name in names:
        results[name] = run_point(name, POINTS[name], dims, seeds)
        print(table(name, results[name]), flush=True)
        if args.planted:
            results[name]["planted"] = run_planted(name, POINTS[name], dims, seeds)
            print(planted_table(name, results[name]["planted"]), flush=True)
    write_results(args.out, results, default=str, end="")


if __name__ == "__main__":
    main()
