"""The noise study's figures (:mod:`sobolev_rf.numeric.studies.noise`): errors against λ at a few noise levels,
and the maps of λ* and of the benign region over (p/d, Δ)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from matplotlib.collections import LineCollection, PolyCollection
from matplotlib.colors import LogNorm, Normalize
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import FixedLocator, FuncFormatter

from ..artifacts import png_bytes
from ..simulation.batch import SimPoint
from ..studies.noise import KIND_SYMBOL, KIND_TITLES, Settings
from .style import P_LABEL, TEX, cells, log_cell_edges, outline, plain_log_labels

KIND_TEX = {"function": r"$\Delta_f$", "gradient": r"$\Delta_g$"}


def lambda_png(settings: Settings, curves: Sequence[Any], sims: Sequence[SimPoint]) -> bytes:
    """Errors against λ: one row per noise study, one column per error."""
    kinds = list(dict.fromkeys(c.kind for c in curves))
    qs = settings.quantities
    fig = Figure(figsize=(6.2 * len(qs), 4.6 * len(kinds) + 0.9), layout="constrained")
    axes = np.atleast_2d(fig.subplots(len(kinds), len(qs), squeeze=False))
    lo = settings.curve_lams[0]
    for r, kind in enumerate(kinds):
        rows = [c for c in curves if c.kind == kind]
        for col, q in enumerate(qs):
            ax = axes[r, col]
            for color, c in zip(("C0", "C1", "C3", "C2", "C4", "C5"), rows):
                opt = c.optima[q]
                lam_txt = (
                    "λ* → 0⁺ (benign)"
                    if opt.benign
                    else (f"λ* ≥ {opt.lam:g} (end of search range)" if opt.at_upper_edge else f"λ* = {opt.lam:.2g}")
                )
                ax.plot(c.lams, c.values[q], color=color, lw=1.8, label=f"{KIND_SYMBOL[kind]} = {c.delta:g}: {lam_txt}")
                if math.isfinite(c.zero[q]):
                    ax.axhline(c.zero[q], color=color, ls="--", lw=1.1, alpha=0.8)
                x_star = lo if opt.benign else opt.lam
                ax.plot(
                    [x_star], [opt.value], marker="*", ms=13, color=color, mec="black", mew=0.7, zorder=5, clip_on=False
                )
                pts = [s for s in sims if s.tag[:2] == (kind, c.delta)]
                if pts:
                    se = np.array([s.se[q] for s in pts])
                    ax.errorbar(
                        [s.tag[2] for s in pts],
                        [s.mean[q] for s in pts],
                        yerr=se if np.isfinite(se).any() else None,
                        fmt="o",
                        ms=5,
                        capsize=3,
                        color=color,
                        mfc="white",
                        mew=1.3,
                        zorder=4,
                    )
            if settings.user_lam is not None and settings.user_lam > 0:
                ax.axvline(settings.user_lam, color="0.3", ls=":", lw=1.2)
            ax.set_xscale("log")
            ax.set_yscale("log")
            plain_log_labels(ax)
            ax.set_xlim(settings.curve_lams[0], settings.curve_lams[-1])
            ax.set_xlabel("ridge  λ")
            ax.set_ylabel(f"test error {TEX[q]}")
            other = "Δ_g" if kind == "function" else "Δ_f"
            background = settings.params.noise_g if kind == "function" else settings.params.noise_f
            ax.set_title(f"{KIND_TITLES[kind]} ({other} = {background:g}): {q}")
            ax.grid(True, which="both", alpha=0.25)
            handles, _ = ax.get_legend_handles_labels()
            style = [
                Line2D([], [], color="0.3", ls="--", lw=1.1, label="λ → 0⁺ level (dashed)"),
                Line2D([], [], color="0.3", marker="*", ms=11, ls="none", mec="black", label="optimal λ*"),
            ]
            if sims:
                style.append(
                    Line2D(
                        [],
                        [],
                        color="0.3",
                        marker="o",
                        mfc="white",
                        ls="none",
                        label=f"simulation d = {settings.sim_d} (± SE)",
                    )
                )
            if settings.user_lam is not None and settings.user_lam > 0:
                style.append(Line2D([], [], color="0.3", ls=":", label=f"given λ = {settings.user_lam:g}"))
            ax.legend(handles=handles + style, fontsize=8, loc="best", framealpha=0.85)
    sim_text = (
        f"points: simulation d = {settings.sim_d}, {settings.seeds} seed{'s' if settings.seeds > 1 else ''} (mean ± SE)"
        if sims
        else "no simulation points"
    )
    note = (
        ""
        if "gradient" in kinds
        else (
            "\nτ = 0 (or k = 0): gradient labels are not in the training loss, "
            "Δ_g has no effect; gradient-noise study skipped"
        )
    )
    if settings.params.tau == 0 and "eps_H1" in qs:
        note += "\nτ = 0: eps_H1 does not self-average over V; theory gives its mean over V, one simulation seed "
        note += "scatters around it"
    fig.suptitle(
        f"Test errors against the ridge λ at {settings.params.describe(omit=('lam', 'noise'))}\n"
        f"lines: d → ∞ theory; dashed: λ → 0⁺ limit; stars: optimal λ* (at the left edge when "
        f"λ* → 0⁺); {sim_text}{note}"
    )
    return png_bytes(fig, settings.command)


def _delta_coordinates(deltas: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(row centres, sorted row edges) of the Δ axis in units of log₁₀ Δ: one row per positive Δ (log-spaced,
    centred on log₁₀ Δ) and, for Δ = 0, a row of height max(step, 0.35) below them."""
    positive = np.sort(deltas[deltas > 0])
    logs = np.log10(positive)
    step = float(logs[1] - logs[0]) if len(logs) > 1 else 1.0
    pos_edges = np.concatenate([[logs[0] - step / 2], 0.5 * (logs[1:] + logs[:-1]), [logs[-1] + step / 2]])
    gap = max(step, 0.35)
    zero_centre = pos_edges[0] - gap / 2
    y = np.where(deltas > 0, np.log10(np.where(deltas > 0, deltas, 1.0)), zero_centre)
    edges = np.concatenate([[pos_edges[0] - gap], pos_edges]) if (deltas == 0).any() else pos_edges
    return y, edges


BENIGN_FACE = "white"
BENIGN_HATCH = "///"


def benign_png(settings: Settings, maps: dict[tuple[str, str], Any]) -> bytes:
    """Maps over (p/d, Δ) for ``settings.quantity``: optimal λ* (top) and interpolation cost (bottom), one
    column per noise study; benign cells hatched and outlined in black."""
    chosen = [(kind, m) for (kind, q), m in maps.items() if q == settings.quantity]
    ncols = len(chosen)
    fig = Figure(figsize=(6.6 * ncols + (3.0 if ncols == 1 else 0), 10.4), layout="constrained")
    axes = fig.subplots(2, ncols, squeeze=False)
    lo, hi = settings.bracket
    ratios = [m.eps_zero / m.eps_star - 1.0 for _, m in chosen]
    finite = np.concatenate([r[np.isfinite(r) & (r > 1e-5)] for r in ratios]) if ratios else np.array([])
    rmax = float(finite.max()) if finite.size else 1.0
    rmin = max(float(finite.min()) if finite.size else 1e-3, rmax * 1e-6, 1e-5)
    ratio_norm = LogNorm(vmin=rmin, vmax=max(rmax, rmin * 10))
    lams = np.concatenate([m.lam_positive[~m.benign & (m.lam_positive > 0)] for _, m in chosen])
    lam_floor = math.floor(math.log10(lams.min())) if lams.size else math.log10(lo)
    lam_norm = Normalize(vmin=max(lam_floor, math.log10(lo)), vmax=math.log10(hi))
    sym_q = TEX[settings.quantity]
    for col, ((kind, m), ratio) in enumerate(zip(chosen, ratios)):
        xe = log_cell_edges(m.p_over_d)
        y, ye = _delta_coordinates(m.deltas)
        order = np.argsort(y)
        benign = m.benign[order]
        loglam = np.log10(np.where(m.lam_positive > 0, m.lam_positive, np.nan))[order]
        ratio_sorted = np.where(np.isinf(ratio), rmax, ratio)[order]
        panels = (
            (
                np.ma.masked_where(benign | ~np.isfinite(loglam), loglam),
                "viridis",
                lam_norm,
                r"optimal ridge $\log_{10}\lambda^*$",
                f"optimal ridge λ* for {settings.quantity}",
            ),
            (
                np.ma.masked_where(benign | ~np.isfinite(ratio_sorted), np.maximum(ratio_sorted, rmin)),
                "plasma",
                ratio_norm,
                sym_q + r"$(\lambda\to0^+)\,/\,$" + sym_q + r"$(\lambda^*) - 1$",
                f"cost of interpolating (λ → 0⁺ vs λ*), {settings.quantity}",
            ),
        )
        for row, (values, cmap, norm, clabel, title) in enumerate(panels):
            ax = axes[row, col]
            mesh = ax.pcolormesh(xe, ye, values, cmap=cmap, norm=norm, shading="flat")
            fig.colorbar(mesh, ax=ax, label=clabel, extend="max" if row == 1 else "neither")
            ax.add_collection(
                PolyCollection(
                    cells(benign, xe, ye), facecolors=BENIGN_FACE, edgecolors="0.55", linewidths=0, hatch=BENIGN_HATCH
                )
            )
            if benign.any():
                ax.add_collection(LineCollection(outline(benign, xe, ye, border=False), colors="black", linewidths=1.8))
            ax.axvline(settings.threshold, color="white" if row == 0 else "0.85", ls="--", lw=1.6)
            factor = settings.params.training_rows
            ax.annotate(
                "p = n" if factor == 1 else f"p = {factor}n",
                (settings.threshold, 0.0),
                xycoords=("data", "axes fraction"),
                xytext=(4, 22),
                textcoords="offset points",
                fontsize=9,
                color="black",
                bbox=dict(boxstyle="round,pad=0.2", fc="white", alpha=0.8),
            )
            ax.axvline(settings.params.p_over_d, color="0.6", ls=":", lw=1.4)
            ax.set_xscale("log")
            ax.set_xlim(xe[0], xe[-1])
            ax.set_ylim(ye[0], ye[-1])
            ys = np.sort(y)
            if (m.deltas == 0).any():
                ax.axhline(ye[1], color="0.3", lw=0.8)
            ticks = [float(ys[0])] + [float(t) for t in range(math.ceil(ys[1] - 1e-9), math.floor(ys[-1] + 1e-9) + 1)]
            ax.yaxis.set_major_locator(FixedLocator(ticks))
            ax.yaxis.set_major_formatter(
                FuncFormatter(lambda v, _, z=ticks[0]: "0" if abs(v - z) < 1e-9 else f"{10.0**v:g}")
            )
            ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
            ax.set_xlabel(P_LABEL)
            ax.set_ylabel(f"noise variance {KIND_TEX[kind]}")
            other = "Δ_g" if kind == "function" else "Δ_f"
            ax.set_title(f"{KIND_TITLES[kind]} ({other} = {m.background:g})\n{title}", fontsize=10)
    handles = [
        Patch(
            facecolor=BENIGN_FACE,
            edgecolor="0.45",
            hatch=BENIGN_HATCH,
            label=f"benign: λ → 0⁺ at least as good as every λ ∈ [{lo:g}, {hi:g}] (black outline)",
        ),
        Line2D([], [], color="0.5", ls="--", lw=1.6, label="interpolation threshold p = rn"),
        Line2D([], [], color="0.6", ls=":", lw=1.4, label=f"p/d = {settings.params.p_over_d:g} of noise_lambda.png"),
    ]
    fig.legend(handles=handles, loc="outside lower center", ncols=3 if ncols > 1 else 1, fontsize=9)
    note = (
        ""
        if any(k == "gradient" for k, _ in chosen)
        else ("\nτ = 0 (or k = 0): gradient labels are not in the training loss, so Δ_g has no effect (no map)")
    )
    fig.suptitle(
        "Where is interpolating the noise benign?  d → ∞ theory at "
        f"{settings.params.describe(omit=('lam', 'noise', 'p_over_d'))}\n"
        f"λ* minimises {settings.quantity} over λ > 0; the bottom row of each map is Δ = 0{note}"
    )
    return png_bytes(fig, settings.command)
