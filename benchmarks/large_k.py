"""Theory against the exact simulator for many gradient directions (k = 8, 16, 32) at growing d.

For each configuration and d the simulation mean ± SE over seeds, the gap to the d → ∞ theory in SEs
and percent, and the Richardson extrapolation 2·m(2d) − m(d) of the two largest d (a finite-size effect
shrinks like 1/d, so it lands on the theory; a theory error would not).

    .venv/bin/python benchmarks/large_k.py [--seeds 4] [--d 200,400,800] [--configs 0,1,2,3] [--name large_k]
    # writes results/NAME.{md,json}
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from reporting import richardson, write_results, z_score

from sobolev_rf.derive.params import ModelParams
from sobolev_rf.numeric.simulation.exact import simulate
from sobolev_rf.numeric.theory.solve import solve

HERE = Path(__file__).resolve().parent
CONFIGS = [
    dict(activation="relu", teacher="tanh", k=8, tau=1, p_over_d=4.0, n_over_d=1.0, lam=1e-2),
    dict(activation="relu", teacher="tanh", k=16, tau=1, p_over_d=4.0, n_over_d=0.5, lam=1e-2),
    dict(activation="tanh", teacher="tanh", k=16, tau=1, p_over_d=12.0, n_over_d=0.5, lam=1e-2, noise_g=0.1),
    dict(activation="relu", teacher="tanh", k=32, tau=1, p_over_d=2.0, n_over_d=0.25, lam=1e-2),
]
KEYS = ("eps_L2", "eps_H1", "eps_grad", "train_loss")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=4)
    parser.add_argument("--d", default="200,400,800")
    parser.add_argument("--configs", default=",".join(map(str, range(len(CONFIGS)))), help="indices into CONFIGS")
    parser.add_argument("--name", default="large_k", help="results file name")
    args = parser.parse_args()
    ds = [int(x) for x in args.d.split(",")]
    rows = []
    lines = ["| config | d | " + " | ".join(f"{k} sim (gap)" for k in KEYS) + " |", "|---|---|" + "---|" * len(KEYS)]
    for cfg in [CONFIGS[int(i)] for i in args.configs.split(",")]:
        params = ModelParams(**cfg)
        theory = solve(params).to_dict()
        name = f"{cfg['activation']}/{cfg['teacher']} k={cfg['k']} p/d={cfg['p_over_d']:g} n/d={cfg['n_over_d']:g}"
        lines.append(f"| {name} | ∞ (theory) | " + " | ".join(f"{theory[k]:.4f}" for k in KEYS) + " |")
        sims = {}
        for d in ds:
            start = time.perf_counter()
            sim = simulate(params, d=d, seeds=args.seeds, progress=False)
            seconds = time.perf_counter() - start
            sims[d] = sim
            cells = []
            for k in KEYS:
                gap = sim.mean[k] - theory[k]
                z = z_score(gap, sim.se[k])
                cells.append(f"{sim.mean[k]:.4f} ± {sim.se[k]:.4f} ({z:+.1f} SE, {100 * gap / theory[k]:+.1f} %)")
                rows.append(
                    {
                        "config": cfg,
                        "d": d,
                        "seeds": args.seeds,
                        "key": k,
                        "theory": theory[k],
                        "mean": sim.mean[k],
                        "se": sim.se[k],
                        "seconds": seconds,
                    }
                )
            lines.append(f"| | {d} | " + " | ".join(cells) + " |")
            print(lines[-1], flush=True)
        a, b = ds[-2], ds[-1]
        rich = {k: richardson(sims[a].mean[k], sims[a].se[k], sims[b].mean[k], sims[b].se[k])[0] for k in KEYS}
        lines.append(
            f"| | Richardson 2·m({b}) − m({a}) | "
            + " | ".join(f"{rich[k]:.4f} ({100 * (rich[k] - theory[k]) / theory[k]:+.1f} %)" for k in KEYS)
            + " |"
        )
        print(lines[-1], flush=True)
    out = HERE / "results"
    write_results(out / f"{args.name}.md", "\n".join(lines) + "\n")
    write_results(out / f"{args.name}.json", rows, indent=2)
    print(f"wrote {out / args.name}.md")


if __name__ == "__main__":
    main()
