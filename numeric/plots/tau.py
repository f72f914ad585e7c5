"""The τ study's figures (:mod:`sobolev_rf.numeric.studies.tau`): the curves ε(τ), the maps of τ* and its gains,
and τ* against the label noise."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from matplotlib.collections import LineCollection, PolyCollection
from matplotlib.colors import LogNorm, TwoSlopeNorm
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import FixedLocator, FuncFormatter

from ..artifacts import png_bytes
from ..studies.tau import CLEAR_GAIN, Settings, Study, status_text
from .style import N_LABEL, P_LABEL, STAR, TEX, cells, log_cell_edges, log_ticks, outline, plain_log_labels

STATUS_STYLE = {
    "zero": dict(face="0.82", hatch="//", label="τ* = 0: L2 training is optimal"),
    "zero_plus": dict(face="0.93", hatch="..", label="τ* = 0⁺: best as τ → 0⁺ (not at τ = 0)"),
    "infinity": dict(face="0.35", hatch="xx", label="τ* = ∞: the larger τ the better"),
}


def maps_png(settings: Settings, study: Study) -> bytes:
    """3 rows (errors) × 3 columns (τ*, gain over τ = 0, gain over τ = 1) over (p/d, n/d)."""
    m = study.maps
    qs = settings.quantities
    k = settings.params.k
    xe, ye = log_cell_edges(study.p_over_d), log_cell_edges(study.n_over_d)
    fig = Figure(figsize=(17, 4.3 * len(qs) + 1.6), layout="constrained")
    axes = fig.subplots(len(qs), 3, squeeze=False)
    gains = np.concatenate([np.ravel(m.gain(q, ref)) for q in qs for ref in ("zero", "one")])
    gains = gains[np.isfinite(gains) & (gains > m.rtol)]
    gmax = max(float(gains.max()) * 100 if gains.size else 1.0, 1.0)
    gain_norm = LogNorm(vmin=0.01, vmax=gmax)
    tau_norm = TwoSlopeNorm(0.0, -4.0, 4.0)
    line = np.array([ye[0], ye[-1]])
    for r, q in enumerate(qs):
        st = m.status[q]
        logtau = np.where(st == "interior", np.log10(np.where(m.tau_star[q] > 0, m.tau_star[q], 1.0)), np.nan)
        both = (m.gain(q, "zero") > CLEAR_GAIN) & (m.gain(q, "one") > CLEAR_GAIN)
        panels = [
            (
                np.ma.masked_invalid(logtau),
                "RdBu_r",
                tau_norm,
                r"$\log_{10}\tau^*$ (interior optimum)",
                f"{q}: optimal weight τ*",
            ),
            (None, "magma_r", gain_norm, "gain over τ = 0 [%]", f"{q}: ε(τ = 0)/ε(τ*) − 1 (tuned vs L2 training)"),
            (None, "magma_r", gain_norm, "gain over τ = 1 [%]", f"{q}: ε(τ = 1)/ε(τ*) − 1 (tuned vs τ = 1)"),
        ]
        for c, (values, cmap, norm, clabel, title) in enumerate(panels):
            ax = axes[r, c]
            if values is None:
                gain = 100 * m.gain(q, "zero" if c == 1 else "one")
                values = np.ma.masked_where(~np.isfinite(gain) | (gain <= 100 * m.rtol), np.maximum(gain, 0.01))
            mesh = ax.pcolormesh(xe, ye, values, cmap=cmap, norm=norm, shading="flat")
            bar = fig.colorbar(mesh, ax=ax, label=clabel, extend="both" if c == 0 else "neither")
            bar.ax.minorticks_off()
            if c == 0:
                for name, style in STATUS_STYLE.items():
                    polygons = cells(st == name, xe, ye)
                    if polygons:
                        ax.add_collection(
                            PolyCollection(
                                polygons, facecolors=style["face"], edgecolors="0.5", linewidths=0, hatch=style["hatch"]
                            )
                        )
            elif both.any():
                ax.add_collection(LineCollection(outline(both, xe, ye), colors="tab:green", linewidths=2.0))
            ax.plot(line, line, color="black", ls="--", lw=1.2)
            ax.plot((1 + k) * line, line, color="black", ls=":", lw=1.5)
            ax.plot([settings.params.p_over_d], [settings.params.n_over_d], **STAR)
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.set_xlim(xe[0], xe[-1])
            ax.set_ylim(ye[0], ye[-1])
            log_ticks(ax.xaxis, [0.1, 0.2, 0.5, 1, 2, 5, 10])
            log_ticks(ax.yaxis, [0.1, 0.2, 0.5, 1, 2, 5])
            ax.set_xlabel(P_LABEL)
            ax.set_ylabel(N_LABEL)
            ax.set_title(title, fontsize=10)
    handles: list[Any] = [
        Patch(facecolor=s["face"], edgecolor="0.4", hatch=s["hatch"], label=s["label"]) for s in STATUS_STYLE.values()
    ]
    handles += [
        Line2D(
            [], [], color="tab:green", lw=2, label=f"tuned τ* beats both τ = 0 and τ = 1 by > {100 * CLEAR_GAIN:g} %"
        ),
        Line2D([], [], color="black", ls="--", label="p = n (threshold of τ = 0)"),
        Line2D([], [], color="black", ls=":", label=f"p = {1 + k}n (threshold of every τ > 0)"),
        Line2D([], [], color="gold", marker="*", mec="black", ms=11, ls="none", label="model point of tau_curve.png"),
    ]
    fig.legend(handles=handles, loc="outside lower center", ncols=4, fontsize=9)
    fig.suptitle(
        f"The optimal Sobolev weight τ* and what tuning it gains (d → ∞ theory)\n"
        f"{settings.params.describe(omit=('tau', 'ratios'))}; white gain cells: < {100 * m.rtol:g} % (a tie); "
        f"red τ* > 1, blue τ* < 1"
    )
    return png_bytes(fig, settings.command)


def curve_png(settings: Settings, study: Study) -> bytes:
    """Errors against τ at the model point: one panel per error."""
    qs = settings.quantities
    pt = study.point
    fig = Figure(figsize=(6.0 * len(qs), 5.0), layout="constrained")
    axes = fig.subplots(1, len(qs), squeeze=False)[0]
    lo, hi = settings.curve_taus[0], settings.curve_taus[-1]
    for ax, q in zip(axes, qs):
        status, tau_star, value = str(pt.status[q]), float(pt.tau_star[q]), float(pt.value[q])
        zero, zero_plus, large = float(pt.value_zero[q]), float(pt.value_zero_plus[q]), float(pt.value_infinity[q])
        finite = np.concatenate(
            [
                study.curve[q][np.isfinite(study.curve[q])],
                [v for v in (zero, zero_plus, value) if math.isfinite(v)],
                [s.mean[q] for s in study.sims if math.isfinite(s.mean[q])],
            ]
        )
        y_lo, y_hi = (finite.min() / 1.25, min(finite.max(), 30 * finite.min()) * 1.25) if finite.size else (0.1, 10)
        ax.plot(settings.curve_taus, study.curve[q], color="C0", lw=2, label="d → ∞ theory")
        ax.axhline(zero, color="C3", ls="--", lw=1.3, label=f"τ = 0 (L2 training): {zero:.3g}")
        if abs(zero_plus - zero) > 1e-9 * abs(zero):
            ax.axhline(zero_plus, color="C1", ls=":", lw=1.8, label=f"τ → 0⁺ limit: {zero_plus:.3g}")
        if math.isfinite(large):
            inside = y_lo <= large <= y_hi
            ax.axhline(
                large if inside else y_hi * 10,
                color="C2",
                ls="-.",
                lw=1.3,
                label=f"τ → ∞ limit: {large:.3g}" + ("" if inside else " (off the chart)"),
            )
        ax.axvline(1.0, color="0.5", lw=0.8)
        x_star = tau_star if status == "interior" else (hi if status == "infinity" else lo)
        if status:
            ax.plot(
                [x_star],
                [value],
                marker="*",
                ms=15,
                color="gold",
                mec="black",
                mew=0.8,
                ls="none",
                zorder=6,
                clip_on=False,
                label=f"τ* = {status_text(status, tau_star)}",
            )
        pos = [s for s in study.sims if s.tag > 0]
        if pos:
            se = np.array([s.se[q] for s in pos])
            ax.errorbar(
                [s.tag for s in pos],
                [s.mean[q] for s in pos],
                yerr=se if np.isfinite(se).any() else None,
                fmt="o",
                ms=5,
                capsize=3,
                color="black",
                mfc="white",
                mew=1.2,
                zorder=5,
                label=f"simulation d = {settings.sim_d} (± SE)",
            )
        for s in study.sims:
            if s.tag == 0:
                ax.errorbar(
                    [lo],
                    [s.mean[q]],
                    yerr=[s.se[q]] if math.isfinite(s.se[q]) else None,
                    fmt="s",
                    ms=6,
                    capsize=3,
                    color="C3",
                    mfc="white",
                    mew=1.3,
                    zorder=5,
                    clip_on=False,
                    label="simulation at τ = 0 (left edge)",
                )
        if settings.user_tau is not None and settings.user_tau > 0:
            ax.axvline(settings.user_tau, color="0.2", ls=":", lw=1.2, label=f"given τ = {settings.user_tau:g}")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlim(lo, hi)
        ax.set_ylim(y_lo, y_hi)
        plain_log_labels(ax)
        ax.set_xlabel("Sobolev weight  τ")
        ax.set_ylabel(f"test error {TEX[q]}")
        gains = (
            f"gain {100 * float(pt.gain(q, 'zero')):.2g} % over τ = 0, "
            f"{100 * float(pt.gain(q, 'one')):.2g} % over τ = 1"
        )
        ax.set_title(f"{q}: τ* = {status_text(status, tau_star)}\n{gains}", fontsize=10)
        ax.grid(True, which="both", alpha=0.25)
        ax.legend(fontsize=8, loc="best", framealpha=0.85)
    note = ""
    if any(s.tag == 0 for s in study.sims):
        note = "; at τ = 0 eps_H1 does not self-average over V (its simulation scatters around the theory's mean)"
    fig.suptitle(
        f"Test errors against the Sobolev weight τ at {settings.params.describe(omit=('tau',))}\n"
        f"vertical line: τ = 1; star: the optimum τ*{note}"
    )
    return png_bytes(fig, settings.command)


def noise_png(settings: Settings, study: Study) -> bytes:
    """τ* at the model point against Δ_g (left) and Δ_f (right), one line per error; τ* = 0, 0⁺ and ∞ drawn
    on labelled bands below and above the axis range."""
    qs = settings.quantities
    inner = np.concatenate(
        [np.log10(res.tau_star[q][res.status[q] == "interior"]) for res in study.noise.values() for q in qs]
    )
    lo_dec = math.floor(min(float(inner.min()) if inner.size else 0.0, -1.0) - 0.3)
    hi_dec = math.ceil(max(float(inner.max()) if inner.size else 0.0, 1.0) + 0.3)
    lo, hi = 10.0**lo_dec, 10.0**hi_dec
    y_zero, y_inf = lo_dec - 1.2, hi_dec + 1.2
    fig = Figure(figsize=(13, 5.2), layout="constrained")
    axes = fig.subplots(1, 2)
    deltas = settings.deltas
    x = np.where(deltas > 0, deltas, deltas[deltas > 0].min() / 4 if (deltas > 0).any() else 1e-4)
    colors = {"eps_L2": "C0", "eps_H1": "C1", "eps_grad": "C2"}
    markers = {"eps_L2": "o", "eps_H1": "s", "eps_grad": "D"}
    for ax, kind, sym in ((axes[0], "gradient", r"$\Delta_g$"), (axes[1], "function", r"$\Delta_f$")):
        res = study.noise[kind]
        for q in qs:
            st = res.status[q]
            y = np.where(
                st == "interior",
                np.log10(np.where(res.tau_star[q] > 0, res.tau_star[q], 1.0)),
                np.where(st == "infinity", y_inf, y_zero),
            )
            y = np.where(st == "", np.nan, y)
            ax.plot(x, y, color=colors[q], lw=1.6, marker=markers[q], ms=5, label=q)
            plus = st == "zero_plus"
            if plus.any():
                ax.plot(x[plus], y[plus], ls="none", marker=markers[q], ms=8, mfc="white", color=colors[q])
        ax.axhspan(y_zero - 0.6, math.log10(lo) - 0.6, color="0.9", zorder=0)
        ax.axhspan(math.log10(hi) + 0.6, y_inf + 0.6, color="0.9", zorder=0)
        ax.axhline(0.0, color="0.5", lw=0.8)
        ticks = [y_zero] + list(range(lo_dec, hi_dec + 1, 1 if hi_dec - lo_dec <= 6 else 2)) + [y_inf]
        ax.yaxis.set_major_locator(FixedLocator(ticks))
        ax.yaxis.set_major_formatter(
            FuncFormatter(
                lambda v, _: "0 / 0⁺" if abs(v - y_zero) < 1e-9 else ("∞" if abs(v - y_inf) < 1e-9 else f"{10.0**v:g}")
            )
        )
        ax.set_ylim(y_zero - 0.6, y_inf + 0.6)
        ax.set_xscale("log")
        ax.set_xlim(x.min() / 1.5, x.max() * 1.5)
        if (deltas == 0).any():
            ax.axvline(x[deltas == 0][0] * 1.7, color="0.6", lw=0.8, ls=":")
            ax.annotate("Δ = 0", (x[deltas == 0][0], y_inf + 0.3), ha="center", fontsize=8, color="0.3")
        ax.set_xlabel(f"noise variance {sym}")
        ax.set_ylabel("optimal weight τ*")
        other = ("Δ_f", settings.params.noise_f) if kind == "gradient" else ("Δ_g", settings.params.noise_g)
        ax.set_title(
            f"τ* against {'gradient' if kind == 'gradient' else 'function'}-label noise ({other[0]} = {other[1]:g})",
            fontsize=10,
        )
        ax.grid(True, alpha=0.25)
        ax.legend(fontsize=9, loc="best")
    fig.suptitle(
        f"Does the optimal weight depend on the label noise?  d → ∞ theory at "
        f"{settings.params.describe(omit=('tau',))}\nbands: τ* = 0 (L2 training; hollow marker: 0⁺) below, τ* = ∞ "
        f"above; the leftmost point of each curve is Δ = 0"
    )
    return png_bytes(fig, settings.command)
