"""The cost study's CSV files and printed table (:mod:`sobolev_rf.numeric.studies.cost`, ``sobolev-rf cost``)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from ...derive.errors import UserError
from ..artifacts import csv_text, fmt, plus_minus
from ..simulation.batch import SimPoint
from ..studies.cost import H1_NOTE, QUANTITIES, CostGrid, Settings, l2_samples
from ..theory.solve import solve

MAP_COLUMNS = ("c", "p_over_d", "n_over_d", "n_l2_over_d") + tuple(
    f"{q}_{part}" for q in QUANTITIES for part in ("sobolev", "l2", "log10_ratio", "winner")
)


BREAKEVEN_COLUMNS = ("p_over_d", "n_over_d", "k", "c_max") + tuple(
    f"{q}_{part}" for q in QUANTITIES for part in ("c_star", "status")
)


CURVE_COLUMNS = ("kind", "training", "c", "p_over_d", "n_over_d", "budget_over_d", "d", "seeds") + tuple(
    name for q in QUANTITIES for name in (q, f"{q}_se")
)


def _notes(settings: Settings) -> list[str]:
    k = settings.base.k
    return [
        f"Sobolev: tau=1, n samples, k={k} projections each, budget n(1+ck); L2: tau=0, n(1+ck) samples; "
        "log10_ratio = log10(eps_sobolev/eps_l2) < 0: Sobolev wins",
        f"c_star: largest c in [0, {settings.c_max:g}] at which Sobolev wins; status crossing | window "
        f"(Sobolev also loses at some smaller c) | never (c_star = 0) | capped (wins up to c_max)",
        H1_NOTE,
    ]


def _csv(settings: Settings, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """CSV headed by ``# command:`` and ``# note:`` lines."""
    text = csv_text(settings.command, columns, rows)
    first, rest = text.split("\n", 1)
    return "\n".join([first] + [f"# note: {n}" for n in _notes(settings)]) + "\n" + rest


def _winner(ratio: float) -> str:
    return "" if not math.isfinite(ratio) else ("sobolev" if ratio < 0 else "l2")


def map_csv(settings: Settings, grid: CostGrid) -> str:
    rows = []
    for c in settings.costs:
        for index in np.ndindex(*grid.p_over_d.shape):
            p, n = float(grid.p_over_d[index]), float(grid.n_over_d[index])
            row: list[Any] = [fmt(c), fmt(p), fmt(n), fmt(float(l2_samples(n, settings.base.k, c)))]
            for q in QUANTITIES:
                r = float(grid.log_ratio[c][q][index])
                row += [fmt(float(grid.sobolev[q][index])), fmt(float(grid.l2[c][q][index])), fmt(r), _winner(r)]
            rows.append(row)
    return _csv(settings, MAP_COLUMNS, rows)


def breakeven_csv(settings: Settings, grid: CostGrid) -> str:
    rows = []
    for index in np.ndindex(*grid.p_over_d.shape):
        row: list[Any] = [
            fmt(float(grid.p_over_d[index])),
            fmt(float(grid.n_over_d[index])),
            settings.base.k,
            fmt(settings.c_max),
        ]
        for q in QUANTITIES:
            row += [fmt(float(grid.c_star[q][index])), str(grid.status[q][index])]
        rows.append(row)
    return _csv(settings, BREAKEVEN_COLUMNS, rows)


def curve_csv(settings: Settings, cut: CostGrid, xs: np.ndarray, sims: Sequence[SimPoint]) -> str:
    base = settings.base
    n = base.n_over_d
    rows: list[list[Any]] = []
    for i, x in enumerate(xs):
        rows.append(
            ["theory", "sobolev", "", fmt(x), fmt(n), "", "", ""]
            + [v for q in QUANTITIES for v in (fmt(float(cut.sobolev[q][i])), "")]
        )
        for c in settings.costs:
            nn = float(l2_samples(n, base.k, c))
            rows.append(
                ["theory", "l2", fmt(c), fmt(x), fmt(nn), fmt(nn), "", ""]
                + [v for q in QUANTITIES for v in (fmt(float(cut.l2[c][q][i])), "")]
            )
    for s in sims:
        training, c = s.tag
        rows.append(
            [
                "simulation",
                training,
                "" if c is None else fmt(c),
                fmt(s.p_over_d),
                fmt(s.n_over_d),
                fmt(s.n_over_d) if training == "l2" else "",
                settings.d,
                settings.seeds,
            ]
            + [fmt(v) for q in QUANTITIES for v in (s.mean[q], s.se[q])]
        )
    return _csv(settings, CURVE_COLUMNS, rows)


def summary(
    settings: Settings, grid: CostGrid, breakevens: Sequence[tuple[float, dict[str, Any]]], sims: Sequence[SimPoint]
) -> str:
    """The table printed on stdout."""
    base = settings.base
    lines = [
        f"Sobolev (τ = 1, n samples, k = {base.k}) vs L2 (τ = 0, n(1 + ck) samples) at equal budget; "
        f"{base.describe(omit=('tau', 'ratios'))}",
        "",
        f"Share of the map p/d ∈ [{grid.p_over_d.min():.3g}, {grid.p_over_d.max():.3g}], n/d ∈ "
        f"[{grid.n_over_d.min():.3g}, {grid.n_over_d.max():.3g}] where Sobolev wins (d → ∞ theory):",
    ]
    lines.append(f"{'c':>8}" + "".join(f"{q:>12}" for q in QUANTITIES))
    for c in settings.costs:
        lines.append(f"{c:>8g}" + "".join(f"{100 * grid.win_share(c, q):>11.0f}%" for q in QUANTITIES))
    lines += [
        "",
        f"Break-even cost c* (brentq on the point solver; capped at c_max = {settings.c_max:g}; "
        "'window': Sobolev also loses at some smaller c):",
        f"{'p/d':>8}{'n/d':>7}" + "".join(f"{q:>18}" for q in QUANTITIES),
    ]
    for p, values in breakevens:
        lines.append(f"{p:>8.3g}{base.n_over_d:>7.3g}" + "".join(f"{values[q]:>18}" for q in QUANTITIES))
    if sims:
        se_note = f"{settings.seeds} seeds, mean ± SE" if settings.seeds > 1 else "1 seed"
        lines += [
            "",
            f"Theory (d → ∞) vs simulation (d = {settings.d}, {se_note}) at equal budget, "
            f"Sobolev n/d = {base.n_over_d:g}:",
            f"{'p/d':>7}  {'training':<16}{'eps_L2 theory':>14}{'simulation':>20}"
            f"{'eps_H1 theory':>15}{'simulation':>20}",
        ]
        for s in sims:
            training, c = s.tag
            params = base.with_(tau=1 if training == "sobolev" else 0, p_over_d=s.p_over_d, n_over_d=s.n_over_d)
            try:
                th = solve(params)
                t_l2, t_h1 = f"{th.eps_L2:.4f}", f"{th.eps_H1:.4f}"
            except UserError:
                t_l2 = t_h1 = "n/a"
            name = "Sobolev" if training == "sobolev" else f"L2 c={c:g} n/d={s.n_over_d:.3g}"
            lines.append(
                f"{s.p_over_d:>7.3g}  {name:<16}{t_l2:>14}{plus_minus(s.mean['eps_L2'], s.se['eps_L2']):>20}"
                f"{t_h1:>15}{plus_minus(s.mean['eps_H1'], s.se['eps_H1']):>20}"
            )
        lines.append(
            f"(L2 eps_H1: {H1_NOTE}. Its law over V is right-skewed: with few seeds the simulated mean "
            "usually falls below the expectation and the SE understates the spread.)"
        )
    return "\n".join(lines)
