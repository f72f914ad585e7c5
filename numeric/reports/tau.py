"""The τ study's CSV files and printed table (:mod:`sobolev_rf.numeric.studies.tau`, ``sobolev-rf tau``)."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..artifacts import csv_text, fmt
from ..studies.tau import CLEAR_GAIN, MAP_N_RANGE, MAP_P_RANGE, TAU_LARGE, Settings, Study, status_text

CURVE_COLUMNS = (
    "kind",
    "tau",
    "eps_L2",
    "eps_L2_se",
    "eps_H1",
    "eps_H1_se",
    "eps_grad",
    "eps_grad_se",
    "status",
    "gain_over_tau0",
    "gain_over_tau1",
    "d",
    "seeds",
)


MAP_COLUMNS = (
    "quantity",
    "p_over_d",
    "n_over_d",
    "status",
    "tau_star",
    "eps_star",
    "eps_tau0",
    "eps_tau0plus",
    "eps_tau1",
    "eps_tau_large",
    "gain_over_tau0",
    "gain_over_tau1",
    "tau_best",
    "eps_best",
)


NOISE_COLUMNS = (
    "noise",
    "delta",
    "noise_f",
    "noise_g",
    "quantity",
    "status",
    "tau_star",
    "eps_star",
    "eps_tau0",
    "eps_tau1",
    "gain_over_tau0",
    "gain_over_tau1",
)


def curve_csv(settings: Settings, study: Study) -> str:
    """tau_curve.csv: theory (kind=theory), the ends (theory_tau0, theory_tau0plus, theory_tau_large at
    τ = 1e8), optima (optimum_<error>, tau = τ* with status and gains) and simulation points."""
    qs = settings.quantities
    rows: list[list[Any]] = []

    def errs(values: dict[str, float], ses: dict[str, float] | None = None) -> list[str]:
        out = []
        for q in qs:
            out += [fmt(values[q]) if q in values else "", fmt(ses[q]) if ses and q in ses else ""]
        return out

    for i, tau in enumerate(settings.curve_taus):
        rows.append(["theory", fmt(tau), *errs({q: study.curve[q][i] for q in qs}), "", "", "", "", ""])
    pt = study.point
    ends = (
        ("theory_tau0", 0.0, pt.value_zero),
        ("theory_tau0plus", 0.0, pt.value_zero_plus),
        ("theory_tau_large", TAU_LARGE, pt.value_infinity),
    )
    for kind, tau, vals in ends:
        rows.append([kind, fmt(tau), *errs({q: float(vals[q]) for q in qs}), "", "", "", "", ""])
    for q in qs:
        rows.append(
            [
                f"optimum_{q}",
                fmt(float(pt.tau_star[q])),
                *errs({q: float(pt.value[q])}),
                str(pt.status[q]),
                fmt(float(pt.gain(q, "zero"))),
                fmt(float(pt.gain(q, "one"))),
                "",
                "",
            ]
        )
    for s in study.sims:
        rows.append(["simulation", fmt(s.tag), *errs(s.mean, s.se), "", "", "", settings.sim_d, settings.seeds])
    return csv_text(settings.command, CURVE_COLUMNS, rows)


def maps_csv(settings: Settings, study: Study) -> str:
    """tau_maps.csv: one row per (error, n/d, p/d)."""
    m = study.maps
    rows: list[list[Any]] = []
    for q in settings.quantities:
        g0, g1 = m.gain(q, "zero"), m.gain(q, "one")
        for i, nd in enumerate(study.n_over_d):
            for j, pd in enumerate(study.p_over_d):
                rows.append(
                    [
                        q,
                        fmt(pd),
                        fmt(nd),
                        str(m.status[q][i, j]),
                        fmt(m.tau_star[q][i, j]),
                        fmt(m.value[q][i, j]),
                        fmt(m.value_zero[q][i, j]),
                        fmt(m.value_zero_plus[q][i, j]),
                        fmt(m.value_one[q][i, j]),
                        fmt(m.value_infinity[q][i, j]),
                        fmt(g0[i, j]),
                        fmt(g1[i, j]),
                        fmt(m.tau_best[q][i, j]),
                        fmt(m.value_best[q][i, j]),
                    ]
                )
    return csv_text(settings.command, MAP_COLUMNS, rows)


def noise_csv(settings: Settings, study: Study) -> str:
    """tau_noise.csv: τ* against Δ_g (noise=gradient) and Δ_f (noise=function) at the model point."""
    p = settings.params
    rows: list[list[Any]] = []
    for kind, res in study.noise.items():
        for i, delta in enumerate(settings.deltas):
            nf, ng = (p.noise_f, delta) if kind == "gradient" else (delta, p.noise_g)
            for q in settings.quantities:
                rows.append(
                    [
                        kind,
                        fmt(delta),
                        fmt(nf),
                        fmt(ng),
                        q,
                        str(res.status[q][i]),
                        fmt(res.tau_star[q][i]),
                        fmt(res.value[q][i]),
                        fmt(res.value_zero[q][i]),
                        fmt(res.value_one[q][i]),
                        fmt(res.gain(q, "zero")[i]),
                        fmt(res.gain(q, "one")[i]),
                    ]
                )
    return csv_text(settings.command, NOISE_COLUMNS, rows)


def map_summary(settings: Settings, study: Study) -> list[str]:
    """Lines describing the maps: per error, how often τ* is 0, 0⁺, interior, ∞, where a tuned τ beats
    both τ = 0 and τ = 1 by more than :data:`CLEAR_GAIN`, and the largest gains."""
    m = study.maps
    k = settings.params.k
    ratio = study.p_over_d[None, :] / study.n_over_d[:, None]
    lines = [
        f"Maps over p/d ∈ [{MAP_P_RANGE[0]:g}, {MAP_P_RANGE[1]:g}] × n/d ∈ [{MAP_N_RANGE[0]:g}, "
        f"{MAP_N_RANGE[1]:g}] ({settings.grid}×{settings.grid} cells, "
        f"{settings.params.describe(omit=('tau', 'ratios'))}):"
    ]
    for q in settings.quantities:
        st = m.status[q]
        counts = ", ".join(
            f"{name} {int(np.count_nonzero(st == name))}"
            for name in ("zero", "zero_plus", "interior", "infinity")
            if np.any(st == name)
        )
        g0, g1 = m.gain(q, "zero"), m.gain(q, "one")
        both = (g0 > CLEAR_GAIN) & (g1 > CLEAR_GAIN)
        line = f"  {q}: τ* status counts: {counts}."
        if both.any():
            r = ratio[both]
            line += (
                f" Tuned τ beats both τ = 0 and τ = 1 by > {100 * CLEAR_GAIN:g} % in {int(both.sum())} cells "
                f"(p/n from {r.min():.2g} to {r.max():.2g}; best min-gain "
                f"{100 * float(np.nanmax(np.minimum(g0, g1))):.0f} %)."
            )
        else:
            line += f" Nowhere does a tuned τ beat both τ = 0 and τ = 1 by > {100 * CLEAR_GAIN:g} %."
        zero = st == "zero"
        if zero.any():
            line += (
                f" τ* = 0 where p/n ≥ {ratio[zero].min():.2g} (of cells with p/n ≥ that: "
                f"{100 * zero[ratio >= ratio[zero].min()].mean():.0f} %)."
            )
        line += (
            f" Max gain over τ = 0: {100 * float(np.nanmax(g0)):.3g} %, over τ = 1: {100 * float(np.nanmax(g1)):.3g} %."
        )
        lines.append(line)
    lines.append(f"  (interpolation thresholds: p = n for τ = 0, p = {1 + k}n for every τ > 0)")
    return lines


def summary_table(settings: Settings, study: Study) -> str:
    """The stdout table: optima at the model point, the τ*(Δ) study, the map summary."""
    pt = study.point
    lines = [
        f"Optimal Sobolev weight τ* (d → ∞ theory) at {settings.params.describe(omit=('tau',))}",
        f"{'error':<10}{'τ*':>10}{'ε(τ*)':>11}{'ε(0)':>11}{'ε(0⁺)':>11}{'ε(1)':>11}{'ε(∞)':>11}"
        f"{'gain/τ=0':>10}{'gain/τ=1':>10}",
    ]
    lines.append("-" * len(lines[-1]))
    for q in settings.quantities:
        lines.append(
            f"{q:<10}{status_text(str(pt.status[q]), float(pt.tau_star[q])):>10}{float(pt.value[q]):>11.5f}"
            f"{float(pt.value_zero[q]):>11.5f}{float(pt.value_zero_plus[q]):>11.5f}"
            f"{float(pt.value_one[q]):>11.5f}{float(pt.value_infinity[q]):>11.4g}"
            f"{100 * float(pt.gain(q, 'zero')):>9.2f}%{100 * float(pt.gain(q, 'one')):>9.2f}%"
        )
    lines.append("")
    for kind, sym in (("gradient", "Δ_g"), ("function", "Δ_f")):
        res = study.noise[kind]
        lines.append(
            f"τ* against {sym} ({'Δ_f' if kind == 'gradient' else 'Δ_g'} fixed): "
            + "; ".join(
                f"{q}: "
                + ", ".join(
                    f"{status_text(s, t)}"
                    for s, t in zip(
                        res.status[q][[0, len(settings.deltas) // 2, -1]],
                        res.tau_star[q][[0, len(settings.deltas) // 2, -1]],
                    )
                )
                for q in settings.quantities
            )
            + f"  (at {sym} = 0, {settings.deltas[len(settings.deltas) // 2]:.3g}, {settings.deltas[-1]:g})"
        )
    lines.append("")
    lines += map_summary(settings, study)
    return "\n".join(lines)
