"""The cost study's figures (:mod:`sobolev_rf.numeric.studies.cost`): the log error ratio at equal budget over
(p/d, n/d), the break-even cost c*, and the cut along p/d with simulation points."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from matplotlib.colors import ListedColormap, LogNorm, TwoSlopeNorm
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import FixedLocator, FormatStrFormatter, FuncFormatter, NullFormatter

from ..artifacts import png_bytes
from ..simulation.batch import SimPoint
from ..studies.cost import H1_NOTE, QUANTITIES, CostGrid, Settings, l2_samples
from .style import NAMES, P_LABEL, STAR, TEX, log_cell_edges


def _log_axes(ax: Any, x: bool = True, y: bool = True) -> None:

    ticks = [0.1, 0.2, 0.5, 1, 2, 5, 10, 20]
    for flag, axis, scale in ((x, ax.xaxis, ax.set_xscale), (y, ax.yaxis, ax.set_yscale)):
        if flag:
            scale("log")
            axis.set_major_locator(FixedLocator(ticks))
            axis.set_major_formatter(FormatStrFormatter("%g"))
            axis.set_minor_formatter(NullFormatter())


def _threshold_lines(ax: Any, k: int, c: float | None, ylim: tuple[float, float]) -> list:
    """Lines p = (k+1)n and (for a cost c) p = n(1 + ck) on a (p/d, n/d) map."""
    ns = np.array(ylim)
    handles = [ax.plot((k + 1) * ns, ns, color="0.1", ls=":", lw=1.8, label=f"p = {k + 1}n (Sobolev threshold)")[0]]
    if c is not None:
        handles.append(
            ax.plot(
                (1 + c * k) * ns,
                ns,
                color="0.1",
                ls="--",
                lw=1.2,
                label="p = n(1 + ck): L2 threshold at equal budget (each row's c)",
            )[0]
        )
    return handles


def cost_map_png(settings: Settings, grid: CostGrid, ps: np.ndarray, ns: np.ndarray) -> bytes:
    """One row per c, one column per quantity: log₁₀(ε_S/ε_L2 at equal budget), diverging colours (blue: Sobolev
    better), contour 0 = break-even, both thresholds, the model point."""

    base = settings.base
    rows = len(settings.costs)
    fig = Figure(figsize=(17, 4.6 * rows + 1.0), layout="constrained")
    axes = np.atleast_2d(fig.subplots(rows, 3, squeeze=False))
    xe, ye = log_cell_edges(ps), log_cell_edges(ns)
    legend: list = []
    for r, c in enumerate(settings.costs):
        for j, q in enumerate(QUANTITIES):
            ax = axes[r, j]
            values = grid.log_ratio[c][q]
            finite = np.abs(values[np.isfinite(values)])
            span = float(min(max(finite.max() if finite.size else 1.0, 0.05), 1.0))
            mesh = ax.pcolormesh(
                xe, ye, np.ma.masked_invalid(values), cmap="RdBu_r", norm=TwoSlopeNorm(0.0, -span, span), shading="flat"
            )
            fig.colorbar(
                mesh,
                ax=ax,
                extend="both",
                label=r"$\log_{10}$ " + TEX[q] + "(Sobolev) / " + TEX[q] + "(L2)",
            )

            handles = [Line2D([], [], color="k", lw=1.6, label="break-even: ratio 1 (contour 0)")]
            if np.nanmin(values) < 0 < np.nanmax(values):
                ax.contour(ps, ns, values, levels=[0.0], colors="k", linewidths=1.6)
            handles += _threshold_lines(ax, base.k, c, (ye[0], ye[-1]))
            handles += ax.plot(
                [base.p_over_d], [base.n_over_d], **STAR, label=f"model point ({base.p_over_d:g}, {base.n_over_d:g})"
            )
            ax.set_xlim(xe[0], xe[-1])
            ax.set_ylim(ye[0], ye[-1])
            _log_axes(ax)
            ax.set_xlabel(P_LABEL)
            ax.set_ylabel("Sobolev samples per input dimension  n/d")
            share = grid.win_share(c, q)
            ax.set_title(f"{NAMES[q]}, c = {c:g}: Sobolev wins on {100 * share:.0f} % (blue)", fontsize=10)
            if r == 0 and j == 0:
                legend = handles
    fig.legend(
        handles=[h for h in legend if "break-even" not in h.get_label()]
        + [h for h in legend if "break-even" in h.get_label()]
        if legend
        else [],
        loc="outside lower center",
        ncol=4,
        fontsize=9,
    )
    fig.suptitle(
        f"Sobolev (τ = 1, n samples, k = {base.k} projections) vs L2 training (τ = 0, n(1 + ck) samples) "
        f"at equal budget n(1 + ck), d → ∞ theory\n{base.describe(omit=('tau', 'ratios'))};  blue: Sobolev better.  "
        f"Note: {H1_NOTE}.",
        fontsize=11,
    )
    return png_bytes(fig, settings.command)


def breakeven_png(settings: Settings, grid: CostGrid, ps: np.ndarray, ns: np.ndarray) -> bytes:
    """One panel per quantity: c* on a log colour scale, 'never' (c* = 0) grey, 'capped' dark, 'window' dotted,
    contours c* = each requested c, the Sobolev threshold and the model point."""

    base = settings.base
    fig = Figure(figsize=(18, 5.6), layout="constrained")
    axes = fig.subplots(1, 3)
    xe, ye = log_cell_edges(ps), log_cell_edges(ns)
    legend: dict[str, Any] = {}
    for ax, q in zip(axes, QUANTITIES):
        cs, st = grid.c_star[q], grid.status[q]
        inner = np.isin(st, ("crossing", "window")) & np.isfinite(cs) & (cs > 0)
        vals = np.where(inner, cs, np.nan)
        vmin = float(np.nanmin(vals)) if inner.any() else 1e-2
        vmin = 10 ** math.floor(math.log10(max(min(vmin, settings.c_max / 10), 1e-4)))
        mesh = ax.pcolormesh(
            xe,
            ye,
            np.ma.masked_invalid(vals),
            cmap="viridis",
            norm=LogNorm(vmin=vmin, vmax=settings.c_max),
            shading="flat",
        )
        fig.colorbar(mesh, ax=ax, label="break-even cost c* (evaluations per projection)")
        for mask, color in ((st == "never", "0.72"), (st == "capped", "#5b0a3c")):
            if mask.any():
                ax.pcolormesh(
                    xe, ye, np.ma.masked_where(~mask, np.ones_like(cs)), cmap=ListedColormap([color]), shading="flat"
                )
        handles: list[Any] = [
            Patch(color="0.72", label="c* = 0: L2 wins at every c (even c = 0)"),
            Patch(color="#5b0a3c", label=f"c* ≥ {settings.c_max:g}: Sobolev wins up to c_max (capped)"),
        ]
        window = st == "window"
        if window.any():
            ax.contourf(ps, ns, window.astype(float), levels=[0.5, 1.5], colors="none", hatches=[".."])
            handles.append(
                Patch(
                    facecolor="none",
                    edgecolor="0.2",
                    hatch="..",
                    label="window (dots): Sobolev also loses at some c < c*",
                )
            )
        for c, style in zip(settings.costs, ("-", "--", "-.", ":")):
            ok = np.isfinite(cs)
            if c > 0 and ok.any() and np.nanmin(cs) < c < np.nanmax(cs):
                ax.contour(ps, ns, np.where(ok, cs, 0.0), levels=[c], colors="white", linewidths=1.5, linestyles=style)
                handles.append(Line2D([], [], color="white", ls=style, lw=1.5, label=f"contour c* = {c:g} (white)"))
        handles += _threshold_lines(ax, base.k, None, (ye[0], ye[-1]))
        handles += ax.plot([base.p_over_d], [base.n_over_d], **STAR, label="model point")
        ax.set_xlim(xe[0], xe[-1])
        ax.set_ylim(ye[0], ye[-1])
        _log_axes(ax)
        ax.set_facecolor("0.45")
        ax.set_xlabel(P_LABEL)
        ax.set_ylabel("Sobolev samples per input dimension  n/d")
        ax.set_title(f"break-even cost for {NAMES[q]}", fontsize=10)
        legend = {h.get_label(): h for h in [*legend.values(), *handles]}
    fig.legend(handles=list(legend.values()), loc="outside lower center", ncol=4, fontsize=9, facecolor="0.93")
    fig.suptitle(
        f"Break-even cost c*: the largest cost of one gradient projection at which Sobolev training "
        f"(budget n(1 + c·{base.k})) still beats L2 training with the same budget\n"
        f"{base.describe(omit=('tau', 'ratios'))}; "
        f"d → ∞ theory.  Note: {H1_NOTE}.",
        fontsize=11,
    )
    return png_bytes(fig, settings.command)


def _minor_label(value: float, _: Any) -> str:
    """Label the minor log ticks 2, 3 and 5 (× 10ⁿ) as plain numbers, the others not at all."""
    if value <= 0:
        return ""
    mantissa = value / 10 ** math.floor(math.log10(value) + 1e-9)
    return f"{value:g}" if any(abs(mantissa - m) < 1e-6 for m in (2, 3, 5)) else ""


def curve_png(settings: Settings, cut: CostGrid, xs: np.ndarray, sims: Sequence[SimPoint]) -> bytes:
    """2×2: eps_L2, eps_H1, eps_grad against p/d for Sobolev and for L2 at equal budget (each c), theory lines
    and simulation points ± SE; c* along the cut."""

    base = settings.base
    n = base.n_over_d
    fig = Figure(figsize=(13, 9.5), layout="constrained")
    axes = fig.subplots(2, 2).ravel()
    l2_colors = ["C0", "C2", "C1", "C4"]
    have_se = settings.seeds > 1
    for ax, q in zip(axes[:3], QUANTITIES):
        ax.plot(xs, cut.sobolev[q], color="C3", lw=2, label=f"Sobolev τ=1, n/d = {n:g}, k = {base.k} (theory)")
        s_rows = [s for s in sims if s.tag[0] == "sobolev"]
        if s_rows:
            ax.errorbar(
                [s.p_over_d for s in s_rows],
                [s.mean[q] for s in s_rows],
                yerr=[s.se[q] for s in s_rows] if have_se else None,
                fmt="o",
                ms=5,
                capsize=3,
                color="C3",
                mfc="white",
                mew=1.4,
                label=f"Sobolev (simulation d = {settings.d})",
            )
        for color, c in zip(l2_colors, settings.costs):
            nn = float(l2_samples(n, base.k, c))
            ax.plot(xs, cut.l2[c][q], color=color, lw=1.6, ls="--", label=f"L2 τ=0, n/d = {nn:g} (c = {c:g}, theory)")
            rows = [s for s in sims if s.tag == ("l2", c)]
            if rows:
                ax.errorbar(
                    [s.p_over_d for s in rows],
                    [s.mean[q] for s in rows],
                    yerr=[s.se[q] for s in rows] if have_se else None,
                    fmt="s",
                    ms=5,
                    capsize=3,
                    color=color,
                    mfc="white",
                    mew=1.4,
                    label=f"L2 c = {c:g} (simulation)",
                )
            ax.axvline(nn, color=color, ls=":", lw=1)
        ax.axvline((base.k + 1) * n, color="C3", ls=":", lw=1)
        ax.set_yscale("log")
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.yaxis.set_minor_formatter(FuncFormatter(_minor_label))
        _log_axes(ax, y=False)
        ax.set_xlabel(P_LABEL)
        ax.set_ylabel(TEX[q])
        ax.set_title(NAMES[q] + (" (L2: expectation over V)" if q == "eps_H1" else ""), fontsize=10)
        ax.grid(True, which="both", alpha=0.25)
    axes[0].legend(fontsize=7.5, loc="best")
    ax = axes[3]
    for color, q in zip(("C4", "C1", "C9"), QUANTITIES):
        cs = np.where(np.isin(cut.status[q], ("crossing", "window", "capped")), cut.c_star[q], np.nan)
        ax.plot(xs, cs, color=color, lw=1.8, label=f"c* for {NAMES[q]}")
        never = cut.status[q] == "never"
        if never.any():
            ax.plot(
                xs[never],
                np.full(never.sum(), 0.0),
                "|",
                color=color,
                ms=10,
                mew=2,
                label=f"c* = 0 ({q}): L2 wins at every c",
                clip_on=False,
            )
    for c in settings.costs:
        if c > 0:
            ax.axhline(c, color="0.35", ls="-.", lw=1)
            ax.annotate(f"c = {c:g}", (xs[0], c), xytext=(2, 2), textcoords="offset points", fontsize=8)
    ax.axhline(settings.c_max, color="k", ls=":", lw=1)
    ax.annotate(
        f"c_max = {settings.c_max:g} (capped)",
        (xs[0], settings.c_max),
        xytext=(2, -10),
        textcoords="offset points",
        fontsize=8,
    )
    ax.set_yscale("symlog", linthresh=0.01)
    ax.set_ylim(0, settings.c_max * 2)
    _log_axes(ax, y=False)
    ax.set_xlabel(P_LABEL)
    ax.set_ylabel("break-even cost c*")
    ax.set_title(
        "largest c at which Sobolev still wins (above a c line: wins at that c, unless in a window)", fontsize=9
    )
    ax.grid(True, which="both", alpha=0.25)
    ax.legend(fontsize=7.5, loc="best")
    seeds = f"{settings.seeds} seed{'s' if settings.seeds > 1 else ''}" + (" (± SE)" if have_se else "")
    fig.suptitle(
        f"Equal budget n(1 + ck) at Sobolev n/d = {n:g}: lines d → ∞ theory, points d = {settings.d}, "
        f"{seeds}; dotted verticals: interpolation thresholds\n"
        f"{base.describe(omit=('tau', 'ratios'))}.  Note: {H1_NOTE}.",
        fontsize=10,
    )
    return png_bytes(fig, settings.command)
