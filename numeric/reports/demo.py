"""The demo's CSV files and printed table (:mod:`sobolev_rf.numeric.studies.demo`, ``sobolev-rf demo``)."""

from __future__ import annotations

import math
from typing import Any

from ..artifacts import csv_text, fmt, plus_minus
from ..studies.demo import (
    CONFIGS,
    DD_N_OVER_D,
    QUANTITIES,
    TABLE_P_OVER_D,
    DoubleDescent,
    PhaseDiagram,
    Settings,
    theory_point,
)

DD_COLUMNS = ("kind", "config", "tau", "k", "p_over_d", "n_over_d", "d", "seeds") + tuple(
    name for key in QUANTITIES for name in (key, f"{key}_se")
)
PHASE_COLUMNS = ("p_over_d", "n_over_d", "eps_L2_tau0", "eps_L2_tau1", "eps_L2_diff", "eps_H1_tau0", "eps_H1_tau1")


def double_descent_csv(settings: Settings, dd: DoubleDescent) -> str:
    """double_descent.csv: the theory rows, then the simulation points, of each configuration."""
    rows: list[list[Any]] = []
    for index, (label, tau, k) in enumerate(CONFIGS):
        for x, row in zip(dd.xs, dd.theory[index]):
            rows.append(
                ["theory", label, tau, k, fmt(x), fmt(DD_N_OVER_D), "", ""]
                + [item for key in QUANTITIES for item in (fmt(row[key]), "")]
            )
        for s in dd.sims:
            if s.tag == index:
                rows.append(
                    ["simulation", label, tau, k, fmt(s.p_over_d), fmt(DD_N_OVER_D), settings.d, settings.seeds]
                    + [fmt(v) for key in QUANTITIES for v in (s.mean[key], s.se[key])]
                )
    return csv_text(settings.command(), DD_COLUMNS, rows)


def phase_csv(settings: Settings, phase: PhaseDiagram) -> str:
    """phase_diagram.csv: one row per (p/d, n/d) cell, n/d the outer loop."""
    a, b = phase.l2, phase.sobolev
    rows = [
        [
            fmt(p),
            fmt(n),
            fmt(a["eps_L2"][i, j]),
            fmt(b["eps_L2"][i, j]),
            fmt(b["eps_L2"][i, j] - a["eps_L2"][i, j]),
            fmt(a["eps_H1"][i, j]),
            fmt(b["eps_H1"][i, j]),
        ]
        for i, n in enumerate(phase.n_over_d)
        for j, p in enumerate(phase.p_over_d)
    ]
    return csv_text(settings.command(), PHASE_COLUMNS, rows)


def summary_table(dd: DoubleDescent, d: int, seeds: int) -> str:
    """Theory against simulation for every configuration at the simulated p/d nearest :data:`TABLE_P_OVER_D`."""
    head = (
        f"{'configuration':<18}{'p/d':>7}{'n/d':>6}  {'eps_L2 theory':>14}  {'eps_L2 simulation':>20}"
        f"  {'eps_H1 theory':>14}  {'eps_H1 simulation':>20}"
    )
    lines = [
        f"Theory (d → ∞) vs simulation (d = {d}, {seeds} seed{'s' if seeds > 1 else ''}, mean ± SE)",
        head,
        "-" * len(head),
    ]
    for index, (label, _, _) in enumerate(CONFIGS):
        points = [s for s in dd.sims if s.tag == index]
        chosen = {min(points, key=lambda s: abs(math.log(s.p_over_d / t))).p_over_d for t in TABLE_P_OVER_D}
        for s in points:
            if s.p_over_d not in chosen:
                continue
            th = theory_point(s.params.with_(p_over_d=s.p_over_d))
            lines.append(
                f"{label:<18}{s.p_over_d:>7.3g}{s.params.n_over_d:>6.3g}  {th['eps_L2']:>14.4f}  "
                f"{plus_minus(s.mean['eps_L2'], s.se['eps_L2']):>20}  {th['eps_H1']:>14.4f}  "
                f"{plus_minus(s.mean['eps_H1'], s.se['eps_H1']):>20}"
            )
    return "\n".join(lines)
