"""Theory vs the exact finite-size simulator over a set of configurations and d = 200, 400, 800.

Writes a Markdown table and JSON (default: benchmarks/results/theory_vs_sim.{md,json}).
Run:  python benchmarks/theory_vs_sim.py [--seeds 4] [--ds 200,400,800]
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from sobolev_rf.codegen.atomic import atomic_write_text
from sobolev_rf.derive.params import ModelParams
from sobolev_rf.numeric.asymptotics import solve
from sobolev_rf.numeric.progress import Progress
from sobolev_rf.numeric.simulate import simulate

KEYS = ("eps_L2", "eps_H1", "eps_grad", "train_loss")

CONFIGS = [
    dict(activation="relu", teacher="tanh", k=1, tau=1, p_over_d=2.0, n_over_d=1.0, lam=1e-2),
    dict(activation="relu", teacher="tanh", k=1, tau=0, p_over_d=2.0, n_over_d=1.0, lam=1e-2),
    dict(activation="relu", teacher="tanh", k=1, tau=1, p_over_d=0.5, n_over_d=1.5, lam=1e-3, alignment=(0.0,)),
    dict(activation="tanh", teacher="tanh", k=2, tau=1, p_over_d=1.0, n_over_d=1.0, lam=1e-1,
         noise_f=0.1, noise_g=0.1, alignment=(0.5, -1.5)),
    dict(activation="tanh", teacher="tanh", k=1, tau=1, p_over_d=6.0, n_over_d=0.75, lam=1e-4),
    dict(activation="erf", teacher="x + x**2/2", k=1, tau=1, p_over_d=0.6, n_over_d=1.2, lam=1e-3,
         alignment=(1.3,)),
    dict(activation="erf", teacher="tanh", k=3, tau=1, p_over_d=2.0, n_over_d=0.4, lam=1e-2,
         alignment=(1.0, 0.5, -0.7)),
    dict(activation="softplus", teacher="tanh", k=1, tau=1, p_over_d=3.0, n_over_d=1.0, lam=1e-2,
         noise_g=0.5),
    dict(activation="softplus", teacher="x + x**2/2", k=2, tau=0, p_over_d=1.5, n_over_d=2.0, lam=1e-3),
    dict(activation="gelu", teacher="tanh", k=1, tau=1, p_over_d=1.0, n_over_d=2.0, lam=1e-3, noise_f=0.2),
    dict(activation="gelu", teacher="x + x**2/2", k=2, tau=1, p_over_d=4.0, n_over_d=0.5, lam=1e-2,
         alignment=(2.0, 0.0)),
    dict(activation="relu", teacher="x + x**2/2", k=3, tau=1, p_over_d=1.0, n_over_d=0.5, lam=1e-2,
         noise_f=0.1, noise_g=0.1),
    dict(activation="x + x**2/2 + x**3/6", teacher="tanh", k=1, tau=1, p_over_d=1.0, n_over_d=1.0,
         lam=1e-1),
]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, default=4)
    ap.add_argument("--ds", default="200,400,800")
    ap.add_argument("--out", default="benchmarks/results/theory_vs_sim")
    args = ap.parse_args()
    ds = [int(v) for v in args.ds.split(",")]
    rows = []
    with Progress(len(CONFIGS) * len(ds), "theory vs simulation", enabled=True) as bar:
        for cfg in CONFIGS:
            params = ModelParams(**cfg)
            theory = solve(params).to_dict()
            for d in ds:
                t0 = time.perf_counter()
                sim = simulate(params, d=d, seeds=args.seeds, progress=False)
                row = {"config": params.as_dict(), "d": d, "seeds": args.seeds,
                       "sim_seconds": time.perf_counter() - t0}
                for key in KEYS:
                    th = theory[key]
                    mean, se = sim.mean.get(key), sim.se.get(key)
                    row[key] = {"theory": th, "sim": mean, "se": se,
                                "rel_gap": None if th is None or mean is None else (mean - th) / th}
                rows.append(row)
                bar.update()
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out + ".json", json.dumps(rows, indent=1, default=float))
    lines = ["| σ | φ | k | τ | p/d | n/d | λ | Δ_f | Δ_g | ϖ | d | " +
             " | ".join(f"{k} theory | {k} sim ± se | gap" for k in KEYS) + " |",
             "|" + "---|" * (11 + 3 * len(KEYS))]
    for r in rows:
        c = r["config"]
        cells = [c["activation"], c["teacher"], c["k"], c["tau"], c["p_over_d"], c["n_over_d"], c["lam"],
                 c["noise_f"], c["noise_g"], ",".join(f"{a:g}" for a in c["alignment"]), r["d"]]
        for key in KEYS:
            v = r[key]
            if v["theory"] is None:
                cells += ["—", "—", "—"]
            else:
                cells += [f"{v['theory']:.4f}", f"{v['sim']:.4f} ± {v['se']:.4f}", f"{100 * v['rel_gap']:+.1f}%"]
        lines.append("| " + " | ".join(str(x) for x in cells) + " |")
    table = "\n".join(lines)
    atomic_write_text(args.out + ".md", table + "\n")
    print(table)


if __name__ == "__main__":
    main()
