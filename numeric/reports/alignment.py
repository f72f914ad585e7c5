"""The alignment study's CSV files and printed table (:mod:`sobolev_rf.numeric.studies.alignment`,
``sobolev-rf alignment``)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from ...derive.params import ModelParams
from ..artifacts import csv_text, fmt
from ..studies.alignment import KEYS, QUANTILES, Comparison, Draws, LawSummary, QuadraticLaw

LAW_COLUMNS = ("error", "kind", "label", "x", "x_hi", "value", "sim_value")


def law_csv(
    command: str, summaries: Sequence[LawSummary], draws: Draws | None, comparisons: dict[str, Comparison]
) -> str:
    """Long-format CSV: rows of kind cdf, bin, quantile, mean, sd, ks, coef per error (see :data:`LAW_COLUMNS`)."""
    rows: list[list[Any]] = []
    for s in summaries:
        law = s.law
        sim = None if draws is None else np.sort(draws.sim[s.key])
        c = comparisons.get(s.key)
        for x, value in zip(s.grid, s.cdf):
            emp = "" if sim is None else fmt(np.searchsorted(sim, x, side="right") / len(sim))
            rows.append([s.key, "cdf", "", fmt(x), "", fmt(value), emp])
        for lo, hi, mass in zip(s.edges[:-1], s.edges[1:], s.masses):
            frac = "" if sim is None else fmt(np.count_nonzero((sim >= lo) & (sim < hi)) / len(sim))
            rows.append([s.key, "bin", "", fmt(lo), fmt(hi), fmt(mass), frac])
        rows.append(
            [
                s.key,
                "bin",
                "below",
                "",
                fmt(s.edges[0]),
                fmt(s.below),
                "" if sim is None else fmt(np.count_nonzero(sim < s.edges[0]) / len(sim)),
            ]
        )
        rows.append(
            [
                s.key,
                "bin",
                "above",
                fmt(s.edges[-1]),
                "",
                fmt(s.above),
                "" if sim is None else fmt(np.count_nonzero(sim >= s.edges[-1]) / len(sim)),
            ]
        )
        for q, x in s.quantiles.items():
            rows.append(
                [
                    s.key,
                    "quantile",
                    f"q{round(100 * q):02d}",
                    fmt(x),
                    "",
                    fmt(q),
                    "" if sim is None else fmt(float(np.quantile(sim, q))),
                ]
            )
        rows.append(
            [s.key, "mean", "mean", fmt(law.mean), "", fmt(law.cdf(law.mean)), "" if c is None else fmt(c.sim_mean)]
        )
        rows.append(
            [
                s.key,
                "sd",
                "sd",
                fmt(math.sqrt(law.variance)),
                "",
                "",
                "" if sim is None else fmt(float(np.std(sim, ddof=1))),
            ]
        )
        if s.minimum is not None:
            rows.append([s.key, "support_min", "min", fmt(s.minimum), "", "0", ""])
        if c is not None:
            rows.append([s.key, "ks", "simulation", "", "", fmt(c.ks), fmt(c.ks_pvalue)])
            rows.append([s.key, "ks", "theory_at_draws", "", "", fmt(c.ks_theory_draws), ""])
            rows.append([s.key, "per_draw", "rel_dev_mean", "", "", fmt(c.rel_dev_mean), fmt(c.rel_dev_se)])
            rows.append([s.key, "per_draw", "rel_dev_rms", "", "", fmt(c.rel_dev_rms), ""])
        rows.append([s.key, "coef", "c", "", "", fmt(law.c), ""])
        for i, b in enumerate(law.b, 1):
            rows.append([s.key, "coef", f"b_{i}", "", "", fmt(b), ""])
        for i in range(len(law.b)):
            for j in range(i, len(law.b)):
                rows.append([s.key, "coef", f"A_{i + 1}_{j + 1}", "", "", fmt(law.A[i, j]), ""])
    return csv_text(command, LAW_COLUMNS, rows)


def samples_csv(command: str, params: ModelParams, laws: dict[str, QuadraticLaw], draws: Draws) -> str:
    """One row per draw (retained draws first, then skipped ones): ϖ, seed, e(ϖ) and simulated errors."""
    k = params.k
    columns = (
        ["draw", "status", "sim_seed", "d", "p", "n", "n_test"]
        + [f"varpi_{i + 1}" for i in range(k)]
        + [f"theory_{key}" for key in KEYS]
        + [f"sim_{key}" for key in KEYS]
    )
    rows: list[list[Any]] = []
    for i, (varpi, seed) in enumerate(zip(draws.varpi, draws.seeds)):
        rows.append(
            [i, "ok", seed, draws.d, draws.p, draws.n, draws.n_test]
            + [fmt(a) for a in varpi]
            + [fmt(laws[key](varpi)[0]) for key in KEYS]
            + [fmt(draws.sim[key][i]) for key in KEYS]
        )
    for varpi, seed in draws.skipped:
        rows.append(
            ["", f"skipped: no unit θ₀ with Vᵀθ₀ = ϖ at d = {draws.d}", seed, draws.d, draws.p, draws.n, draws.n_test]
            + [fmt(a) for a in varpi]
            + [fmt(laws[key](varpi)[0]) for key in KEYS]
            + [""] * len(KEYS)
        )
    return csv_text(command, columns, rows)


def summary_table(
    params: ModelParams, summaries: Sequence[LawSummary], draws: Draws | None, comparisons: dict[str, Comparison]
) -> str:
    """The printed table: theory mean, sd, quantiles; simulation mean ± SE, KS distances, per-draw deviation."""
    lines = [f"Law of the test errors over ϖ ~ N(0, I_{params.k})   ({params.describe(omit=('alignment',))})"]
    if draws is not None:
        lines.append(
            f"simulation: {len(draws.seeds)} draws of ϖ, one seed each, d = {draws.d}, p = {draws.p}, "
            f"n = {draws.n}, {draws.n_test} test points"
        )
    head = f"{'error':<9}{'mean':>9}{'sd':>9}" + "".join(f"{f'q{round(100 * q):02d}':>9}" for q in QUANTILES)
    if draws is not None:
        head += (
            f"  |{'sim mean ± SE':>19}{'e(ϖ_i) mean':>13}{'KS sim':>8}{'(p)':>7}{'KS e(ϖ_i)':>11}"
            f"{'sim/e(ϖ_i) − 1 per draw':>29}"
        )
    lines += [head, "-" * len(head)]
    for s in summaries:
        law = s.law
        line = f"{s.key:<9}{law.mean:>9.4f}{math.sqrt(law.variance):>9.4f}" + "".join(
            f"{s.quantiles[q]:>9.4f}" for q in QUANTILES
        )
        c = comparisons.get(s.key)
        if c is not None:
            line += (
                f"  |{f'{c.sim_mean:.4f} ± {c.sim_se:.4f}':>19}{c.theory_at_draws_mean:>13.4f}{c.ks:>8.3f}"
                f"{c.ks_pvalue:>7.2f}{c.ks_theory_draws:>11.3f}"
                f"{f'{100 * c.rel_dev_mean:+.1f}% ± {100 * c.rel_dev_se:.1f}% (rms {100 * c.rel_dev_rms:.0f}%)':>29}"
            )
        lines.append(line)
    if draws is not None:
        lines.append(
            "KS sim: distance between the simulated errors and the exact law (p: its p-value); KS e(ϖ_i): the "
            "same for the exact e(ϖ) at the drawn ϖ_i (pure sampling of ϖ, no finite-size effect)."
        )
        lines.append(
            "The finite-d scatter of each draw around e(ϖ_i) (rms column) smears the law, most visibly at its "
            "lower edge, so KS sim > KS e(ϖ_i) at finite d; the per-draw deviation is the sharp check."
        )
        if draws.skipped:
            lines.append(
                f"note: {len(draws.skipped)} draw(s) of ϖ were skipped and redrawn: at d = {draws.d} no unit "
                "θ₀ has Vᵀθ₀ = ϖ (ϖᵀ(VᵀV)⁻¹ϖ ≥ 1); the samples are conditioned on |ϖ| being realisable."
            )
    if params.tau == 0:
        lines.append(
            "note: for τ = 0 eps_H1 does not self-average over V; the theory gives its expectation over V, so "
            "the per-draw eps_H1 scatter includes O(1) fluctuations."
        )
    return "\n".join(lines)
