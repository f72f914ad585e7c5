"""The spike of one first-layer step: closed form (derive/spike.py) against the simulator (phase 1 of
numeric/simulation/onestep.py) at several d.

For each configuration and d, the measured mean ± SE over seeds of r, γ, the row rescaling(s), the bulk variance and
its part linear in W₀, c_W, the rows' spread Σ (spike entries t_j and squared bulk norms e_j), the first direction's
ζ shift (divided by ϖ₁; mean rγ + ψ) and the spread of that shift over seeds (r√(1 − γ²), from ν ~ N(0, 1)), next to
the theory; z = (mean − theory)/SE, and the Richardson extrapolation 2m(2d) − m(d) of the two largest sizes (which
removes a 1/d finite-size effect). Prints a table (Markdown) and writes JSON and Markdown to benchmarks/results/.

    python benchmarks/spike.py [--d 400,800,1600] [--seeds 10] [--only NAME,...] [--out NAME]
    python benchmarks/spike.py --combine NAME,NAME --out NAME   # one table from earlier runs' JSON
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
from reporting import mean_se, richardson, write_results, z_score

from sobolev_rf.derive.params import ModelParams
from sobolev_rf.derive.spike import spike_theory
from sobolev_rf.numeric.simulation.onestep import simulate_spike

RESULTS = Path(__file__).resolve().parent / "results"

CONFIGS: dict[str, ModelParams] = {
    "tanh-l2": ModelParams(activation="tanh", teacher="tanh", step="l2", eta=1, alpha0=4),
    "tanh-sobolev-fresh": ModelParams(activation="tanh", teacher="tanh", step="sobolev", eta=1, alpha0=4),
    "relu-l2-const": ModelParams(activation="relu", teacher="tanh", step="l2", eta=1, alpha0=2),
    "gelu-sobolev-fresh-k2": ModelParams(
        activation="gelu", teacher="tanh", step="sobolev", eta=1.5, alpha0=3, tau_step=0.5, k_step=2, noise_g=0.1
    ),
    "softplus-sobolev-sign": ModelParams(
        activation="softplus",
        teacher="sin(x) + 1/2",
        step="sobolev",
        eta=2,
        alpha0=2,
        tau_step=0.7,
        k_step=1,
        second_layer="sign",
        noise_f=0.1,
    ),
    "tanh-sobolev-shared": ModelParams(
        activation="tanh",
        teacher="tanh",
        k=2,
        alignment=(1.0, -0.5),
        step="sobolev",
        step_dirs="shared",
        tau_step="2/d",
        k_step=1,
        eta=1,
        alpha0=4,
    ),
}

#: (label, measured key, theory key or None for the ζ-shift column)
COLUMNS = (
    ("r", "spike_r", "r"),
    ("γ", "spike_gamma", "gamma"),
    ("c₊", "row_scale", "row_scale"),
    ("c₋", "row_scale_neg", "row_scale_neg"),
    ("b²", "bulk_variance", "bulk_variance"),
    ("b_lin²", "bulk_linear", "bulk_linear"),
    ("ε (overlap)", "overlap_rescaling", "overlap_rescaling"),
    ("c_W", "c_W", "c_W"),
    ("Σ_tt", "sigma_tt", "sigma_tt"),
    ("Σ_te", "sigma_te", "sigma_te"),
    ("Σ_ee", "sigma_ee", "sigma_ee"),
)


def zeta_shift_ratio(params: ModelParams, per_seed: np.ndarray) -> np.ndarray:
    """Per seed: the ζ shift of the first direction divided by ϖ₁ (its mean over draws is rγ + ψ)."""
    return per_seed[:, 0] / (params.alignment or (1.0,))[0]


def run(names: list[str], ds: list[int], seeds: int) -> list[dict]:
    rows = []
    for name in names:
        params = CONFIGS[name]
        theory = spike_theory(params).as_floats()
        theory_shift = spike_theory(params).zeta_shift_mean(params.alignment or ())[0] / (params.alignment or (1.0,))[0]
        for d in ds:
            start = time.perf_counter()
            sim = simulate_spike(params, d, seeds)
            elapsed = time.perf_counter() - start
            row = {"config": name, "params": params.as_dict(), "d": d, "seeds": seeds, "seconds": elapsed}
            for _label, key, tkey in COLUMNS:
                row[key] = {"mean": float(sim["mean"][key]), "se": float(sim["se"][key]), "theory": theory[tkey]}
            m, se = mean_se(zeta_shift_ratio(params, sim["per_seed"]["zeta_shift_l"]))
            row["zeta_shift_1"] = {"mean": m, "se": se, "theory": theory_shift}
            shift = sim["per_seed"]["zeta_shift_l"][:, 0]
            spread = float(shift.std(ddof=1))
            # the sample std of S Gaussian draws has relative SE ≈ 1/√(2(S − 1))
            row["zeta_spread_1"] = {
                "mean": spread,
                "se": spread / math.sqrt(2 * (seeds - 1)),
                "theory": theory["zeta_shift_spread"],
            }
            rows.append(row)
            print(f"  {name} d={d}: {elapsed:.1f} s", flush=True)
    return rows


def table(rows: list[dict]) -> str:
    keys = [key for _, key, _ in COLUMNS] + ["zeta_shift_1", "zeta_spread_1"]
    labels = [label for label, _, _ in COLUMNS] + ["ζ shift/ϖ₁", "ζ spread"]
    lines = [
        "| config | d | " + " | ".join(labels) + " |",
        "|---|---|" + "---|" * len(labels),
    ]
    by_config: dict[str, list[dict]] = {}
    for row in rows:
        by_config.setdefault(row["config"], []).append(row)
    for name, group in by_config.items():
        theory = group[0]
        lines.append(
            f"| {name} | theory | "
            + " | ".join(
                "—" if k not in theory or not math.isfinite(theory[k]["theory"]) else f"{theory[k]['theory']:.4f}"
                for k in keys
            )
            + " |"
        )
        for row in group:
            cells = []
            for k in keys:
                e = row.get(k, {"mean": math.nan})
                if not math.isfinite(e["mean"]):
                    cells.append("—")
                    continue
                cells.append(f"{e['mean']:.4f} ± {e['se']:.4f} ({z_score(e['mean'] - e['theory'], e['se']):+.1f})")
            lines.append(f"| | {row['d']} ({row['seeds']} seeds) | " + " | ".join(cells) + " |")
        if len(group) >= 2:
            small, large = group[-2], group[-1]
            if large["d"] == 2 * small["d"]:
                cells = []
                for k in keys:
                    if k not in large or k not in small:
                        cells.append("—")
                        continue
                    m, se = richardson(small[k]["mean"], small[k]["se"], large[k]["mean"], large[k]["se"])
                    cells.append("—" if not math.isfinite(m) else f"{m:.4f} ± {se:.4f}")
                lines.append(f"| | Richardson {small['d']}→{large['d']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--d", default="400,800,1600")
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--only", default=",".join(CONFIGS))
    parser.add_argument("--out", default="spike")
    parser.add_argument("--combine", default=None, help="comma-separated earlier outputs to tabulate together")
    args = parser.parse_args()
    if args.combine:
        rows = []
        for name in args.combine.split(","):
            rows += json.loads((RESULTS / f"{name.strip()}.json").read_text())
        order = {name: i for i, name in enumerate(CONFIGS)}
        rows.sort(key=lambda row: (order.get(row["config"], len(order)), row["d"]))
    else:
        ds = [int(x) for x in args.d.split(",")]
        names = [x.strip() for x in args.only.split(",")]
        rows = run(names, ds, args.seeds)
    text = table(rows)
    print(text)
    write_results(RESULTS / f"{args.out}.json", rows, end="")
    write_results(
        RESULTS / f"{args.out}.md",
        "Spike of one first-layer step: measured mean ± SE over seeds (z = (mean − theory)/SE) against "
        "derive/spike.py.\n\n" + text + "\n",
    )


if __name__ == "__main__":
    main()
