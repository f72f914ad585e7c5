"""The noise study's CSV files and printed table (:mod:`sobolev_rf.numeric.studies.noise`, ``sobolev-rf noise``)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..artifacts import csv_text, fmt
from ..simulation.batch import SimPoint
from ..studies.noise import KIND_SYMBOL, KIND_TITLES, MAP_P_RANGE, Settings, largest_benign_delta

LAMBDA_COLUMNS = (
    "kind",
    "noise",
    "delta",
    "noise_f",
    "noise_g",
    "lam",
    "eps_L2",
    "eps_L2_se",
    "eps_H1",
    "eps_H1_se",
    "benign",
    "d",
    "seeds",
)


BENIGN_COLUMNS = (
    "noise",
    "quantity",
    "delta",
    "noise_f",
    "noise_g",
    "p_over_d",
    "n_over_d",
    "eps_lam0",
    "lam_star",
    "eps_star",
    "lam_best_positive",
    "eps_best_positive",
    "benign",
    "lam_at_upper_edge",
)


def lambda_csv(settings: Settings, curves: Sequence[Any], sims: Sequence[SimPoint]) -> str:
    """noise_lambda.csv: theory curves (kind=theory), λ → 0⁺ values (kind=theory_lam0, lam = 0), optima
    (kind=optimum_<error>, lam = λ*, 0 when benign) and simulation points (kind=simulation)."""
    rows: list[list[Any]] = []
    qs = settings.quantities

    def errors(values: dict[str, float], ses: dict[str, float] | None = None) -> list[str]:
        cells = []
        for q in ("eps_L2", "eps_H1"):
            cells += [fmt(values[q]) if q in values else "", fmt(ses[q]) if ses and q in ses else ""]
        return cells

    for c in curves:
        head = [c.kind, fmt(c.delta), fmt(c.noise_f), fmt(c.noise_g)]
        for i, lam in enumerate(c.lams):
            rows.append(["theory", *head, fmt(lam), *errors({q: c.values[q][i] for q in qs}), "", "", ""])
        rows.append(["theory_lam0", *head, "0", *errors(c.zero), "", "", ""])
        for q in qs:
            opt = c.optima[q]
            rows.append([f"optimum_{q}", *head, fmt(opt.lam), *errors({q: opt.value}), int(opt.benign), "", ""])
    for s in sims:
        kind, delta, lam = s.tag
        nf, ng = (delta, settings.params.noise_g) if kind == "function" else (settings.params.noise_f, delta)
        rows.append(
            [
                "simulation",
                kind,
                fmt(delta),
                fmt(nf),
                fmt(ng),
                fmt(lam),
                *errors(s.mean, s.se),
                "",
                settings.sim_d,
                settings.seeds,
            ]
        )
    return csv_text(settings.command, LAMBDA_COLUMNS, rows)


def benign_csv(settings: Settings, maps: dict[tuple[str, str], Any]) -> str:
    """noise_benign.csv: one row per (noise study, error, Δ, p/d)."""
    rows: list[list[Any]] = []
    for (kind, q), m in maps.items():
        lam_star, eps_star = m.lam_star, m.eps_star
        for i, delta in enumerate(m.deltas):
            nf, ng = (delta, m.background) if kind == "function" else (m.background, delta)
            for j, pd in enumerate(m.p_over_d):
                rows.append(
                    [
                        kind,
                        q,
                        fmt(delta),
                        fmt(nf),
                        fmt(ng),
                        fmt(pd),
                        fmt(settings.params.n_over_d),
                        fmt(m.eps_zero[i, j]),
                        fmt(lam_star[i, j]),
                        fmt(eps_star[i, j]),
                        fmt(m.lam_positive[i, j]),
                        fmt(m.eps_positive[i, j]),
                        int(m.benign[i, j]),
                        int(m.at_upper_edge[i, j]),
                    ]
                )
    return csv_text(settings.command, BENIGN_COLUMNS, rows)


def _lam_text(opt: Any) -> str:
    if opt.benign:
        return "0⁺ benign"
    if opt.at_upper_edge:
        return f"≥{opt.lam:.3g}"
    return f"{opt.lam:.3g}"


def summary_table(settings: Settings, curves: Sequence[Any], maps: dict[tuple[str, str], Any]) -> str:
    """The stdout table: optima per noise level, then where the maps find benign regimes."""
    qs = settings.quantities
    lines = [f"Optimal ridge λ* (d → ∞ theory) at {settings.params.describe(omit=('lam', 'noise'))}"]
    head = f"{'noise':<10}{'Δ':>7}"
    for q in qs:
        head += f"  {'λ*(' + q + ')':>14}{q + '(λ*)':>14}{q + '(0⁺)':>14}"
    lines += [head, "-" * len(head)]
    for c in curves:
        row = f"{c.kind:<10}{c.delta:>7.3g}"
        for q in qs:
            opt = c.optima[q]
            zero = f"{opt.value_zero:.4f}" if math.isfinite(opt.value_zero) else "∞"
            row += f"  {_lam_text(opt):>14}{opt.value:>14.4f}{zero:>14}"
        lines.append(row)
    if not any(c.kind == "gradient" for c in curves):
        lines.append(
            "gradient noise: not studied, τ = 0 or k = 0 means the gradient labels are not in the "
            "training loss (Δ_g has no effect)."
        )
    lines.append("")
    lines.append(
        f"Benign regimes ({settings.quantity}, λ → 0⁺ at least as good as every λ > 0) over "
        f"p/d ∈ [{MAP_P_RANGE[0] * settings.threshold:.3g}, {MAP_P_RANGE[1] * settings.threshold:.3g}], "
        f"n/d = {settings.params.n_over_d:g}, threshold p/d = {settings.threshold:g}:"
    )
    for (kind, q), m in maps.items():
        if q != settings.quantity:
            continue
        sym = KIND_SYMBOL[kind]
        best = largest_benign_delta(m)
        noiseless = m.benign[int(np.argmin(m.deltas))]
        if not noiseless.any():
            lines.append(f"  {KIND_TITLES[kind]}: no benign cell on the grid (even {sym} = 0 wants λ* > 0).")
            continue
        first = m.p_over_d[noiseless].min()
        j = int(np.nanargmax(np.where(np.isfinite(best), best, -1.0)))
        lines.append(
            f"  {KIND_TITLES[kind]}: {sym} = 0 is benign for p/d ≥ {first:.3g} "
            f"({int(noiseless.sum())} of {len(noiseless)} columns); the widest benign range is "
            f"{sym} ≤ {best[j]:.3g} at p/d = {m.p_over_d[j]:.3g}."
        )
    return "\n".join(lines)
