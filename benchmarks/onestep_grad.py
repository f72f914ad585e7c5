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
``--d 200,400,800 --seeds 32,24,12 --points 3,4 --out onestep_grad_tau``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

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
            v = sim.per_seed[key]
            row[key] = {"sim": float(v.mean()), "sim_se": float(v.std(ddof=1) / np.sqrt(s))}
            row[key]["diff"] = row[key]["sim"] - theory[key]
        row["seconds"] = time.time() - t0
        out["sizes"][d] = row
        print(f"  {name}: d = {d} done in {row['seconds']:.0f} s", flush=True)
    if len(dims) >= 2:
        a, b = dims[-2], dims[-1]
        out["richardson"] = {
            key: {
                "value": 2 * out["sizes"][b][key]["diff"] - out["sizes"][a][key]["diff"],
                "se": float(np.hypot(2 * out["sizes"][b][key]["sim_se"], out["sizes"][a][key]["sim_se"])),
            }
            for key in KEYS
        }
    return out


def table(name: str, res: dict) -> str:
    lines = [f"### {name}", ""]
    lines.append("| quantity | d | seeds | simulation ± SE | theory | sim − theory | z |")
    lines.append("|---|---|---|---|---|---|---|")
    for key in KEYS:
        for d, row in res["sizes"].items():
            e = row[key]
            z = e["diff"] / e["sim_se"] if e["sim_se"] > 0 else float("nan")
            lines.append(
                f"| {key} | {d} | {row['seeds']} | {e['sim']:.5f} ± {e['sim_se']:.5f} | {res['theory'][key]:.5f} | "
                f"{e['diff']:+.5f} | {z:+.1f} |"
            )
        if "richardson" in res:
            r = res["richardson"][key]
            z = r["value"] / r["se"]
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
    args = parser.parse_args()
    dims = [int(x) for x in args.d.split(",")]
    seeds = [int(x) for x in args.seeds.split(",")]
    if len(dims) != len(seeds):
        parser.error("--d and --seeds need the same number of entries")
    names = list(POINTS)
    chosen = names if args.points == "all" else [names[int(i)] for i in args.points.split(",")]
    results, tables = {}, []
    for name in chosen:
        results[name] = run_point(name, POINTS[name], dims, seeds)
        tables.append(table(name, results[name]))
        print(tables[-1] + "\n", flush=True)
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{args.out}.json"
    path.write_text(json.dumps(results, indent=1, default=str) + "\n")
    (RESULTS / f"{args.out}.md").write_text("\n\n".join(tables) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
