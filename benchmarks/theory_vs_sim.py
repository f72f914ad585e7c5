"""Theory vs the exact finite-size simulator over a set of configurations and d = 200, 400, 800: a campaign.

The configurations × d × seeds run as one campaign (numeric/campaign/) on the embedded local Dask cluster
(or on --scheduler tcp://HOST:PORT), kept in the SQLite store --store: an interrupted run resumes where it
stopped. Writes a Markdown table and JSON (default: benchmarks/results/theory_vs_sim.{md,json}) with the
theory, the simulation mean ± standard error, the relative gap and the z-score of each error.
Run:  python benchmarks/theory_vs_sim.py [--seeds 4] [--ds 200,400,800] [--workers N | --scheduler ADDR]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from reporting import write_results

from sobolev_rf.derive.params import ModelParams
from sobolev_rf.numeric.campaign.engine import Campaign, open_store, run_campaign
from sobolev_rf.numeric.campaign.results import summarize

KEYS = ("eps_L2", "eps_H1", "eps_grad", "train_loss")

CONFIGS = [
    dict(activation="relu", teacher="tanh", k=1, tau=1, p_over_d=2.0, n_over_d=1.0, lam=1e-2),
    dict(activation="relu", teacher="tanh", k=1, tau=0, p_over_d=2.0, n_over_d=1.0, lam=1e-2),
    dict(activation="relu", teacher="tanh", k=1, tau=1, p_over_d=0.5, n_over_d=1.5, lam=1e-3, alignment=(0.0,)),
    dict(
        activation="tanh",
        teacher="tanh",
        k=2,
        tau=1,
        p_over_d=1.0,
        n_over_d=1.0,
        lam=1e-1,
        noise_f=0.1,
        noise_g=0.1,
        alignment=(0.5, -1.5),
    ),
    dict(activation="tanh", teacher="tanh", k=1, tau=1, p_over_d=6.0, n_over_d=0.75, lam=1e-4),
    dict(activation="erf", teacher="x + x**2/2", k=1, tau=1, p_over_d=0.6, n_over_d=1.2, lam=1e-3, alignment=(1.3,)),
    dict(
        activation="erf", teacher="tanh", k=3, tau=1, p_over_d=2.0, n_over_d=0.4, lam=1e-2, alignment=(1.0, 0.5, -0.7)
    ),
    dict(activation="softplus", teacher="tanh", k=1, tau=1, p_over_d=3.0, n_over_d=1.0, lam=1e-2, noise_g=0.5),
    dict(activation="softplus", teacher="x + x**2/2", k=2, tau=0, p_over_d=1.5, n_over_d=2.0, lam=1e-3),
    dict(activation="gelu", teacher="tanh", k=1, tau=1, p_over_d=1.0, n_over_d=2.0, lam=1e-3, noise_f=0.2),
    dict(
        activation="gelu", teacher="x + x**2/2", k=2, tau=1, p_over_d=4.0, n_over_d=0.5, lam=1e-2, alignment=(2.0, 0.0)
    ),
    dict(
        activation="relu",
        teacher="x + x**2/2",
        k=3,
        tau=1,
        p_over_d=1.0,
        n_over_d=0.5,
        lam=1e-2,
        noise_f=0.1,
        noise_g=0.1,
    ),
    dict(activation="x + x**2/2 + x**3/6", teacher="tanh", k=1, tau=1, p_over_d=1.0, n_over_d=1.0, lam=1e-1),
]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, default=4)
    ap.add_argument("--ds", default="200,400,800")
    ap.add_argument("--out", default="benchmarks/results/theory_vs_sim")
    ap.add_argument(
        "--store", default=None, help="campaign store (default: sobolev-rf-out/theory_vs_sim-s<SEEDS>-d<DS>.sqlite)"
    )
    ap.add_argument("--workers", type=int, default=None, help="local worker processes (default: the cores)")
    ap.add_argument("--scheduler", default=None, help="attach to this Dask scheduler, tcp://HOST:PORT")
    args = ap.parse_args()
    ds = tuple(int(v) for v in args.ds.split(","))
    campaign = Campaign(tuple(ModelParams(**cfg) for cfg in CONFIGS), ds, args.seeds)
    store = Path(args.store or f"sobolev-rf-out/theory_vs_sim-s{args.seeds}-d{'_'.join(map(str, ds))}.sqlite")
    store.parent.mkdir(parents=True, exist_ok=True)

    def bar(p) -> None:
        sys.stderr.write(
            f"\rtheory vs simulation: {p.done} done, {p.failed} failed, {p.running} running of {p.total} tasks"
        )
        sys.stderr.flush()

    stats = run_campaign(campaign, store, scheduler=args.scheduler, workers=args.workers, progress=bar)
    sys.stderr.write(
        f"\n{stats.ran} tasks run now in {stats.run_s:.1f} s on {stats.workers} worker(s); store {store}\n"
    )
    campaign, st = open_store(campaign, store, lock=False)
    try:
        summary = summarize(campaign, st)
        seconds: dict[tuple[str, int], float] = {}
        for t in st.tasks():
            seconds[(t["point_key"], t["d"])] = seconds.get((t["point_key"], t["d"]), 0.0) + (t["seconds"] or 0.0)
    finally:
        st.close()
    rows = []
    for (key, _), r in zip(((k, d) for k in campaign.point_keys for d in campaign.ds), summary):
        row = {
            "config": r["params"],
            "d": r["d"],
            "seeds": r["done"],
            "failed": r["failed"],
            "sim_seconds": seconds.get((key, r["d"]), 0.0),
        }
        if r["first_message"]:
            row["message"] = r["first_message"]
        for key_ in KEYS:
            th, mean, se, z = (r[f"{key_}_{s}"] for s in ("theory", "mean", "se", "z"))
            clean = [None if v != v else v for v in (th, mean, se, z)]  # NaN → null
            row[key_] = {
                "theory": clean[0],
                "sim": clean[1],
                "se": clean[2],
                "z": clean[3],
                "rel_gap": None if clean[0] is None or clean[1] is None or not th else (mean - th) / th,
            }
        rows.append(row)
    write_results(args.out + ".json", rows, default=float, end="")
    lines = [
        "| σ | φ | k | τ | p/d | n/d | λ | Δ_f | Δ_g | ϖ | d | "
        + " | ".join(f"{k} theory | {k} sim ± se | gap | z" for k in KEYS)
        + " |",
        "|" + "---|" * (11 + 4 * len(KEYS)),
    ]
    for r in rows:
        c = r["config"]
        cells = [
            c["activation"],
            c["teacher"],
            c["k"],
            c["tau"],
            c["p_over_d"],
            c["n_over_d"],
            c["lam"],
            c["noise_f"],
            c["noise_g"],
            ",".join(f"{a:g}" for a in c["alignment"]),
            r["d"],
        ]
        for key in KEYS:
            v = r[key]
            if v["theory"] is None or v["sim"] is None:
                cells += ["—", "—", "—", "—"]
            else:
                se = "—" if v["se"] is None else f"{v['se']:.4f}"
                z = "—" if v["z"] is None else f"{v['z']:+.2f}"
                cells += [f"{v['theory']:.4f}", f"{v['sim']:.4f} ± {se}", f"{100 * v['rel_gap']:+.1f}%", z]
        lines.append("| " + " | ".join(str(x) for x in cells) + " |")
    table = "\n".join(lines)
    write_results(args.out + ".md", table + "\n")
    print(table)


if __name__ == "__main__":
    main()
