"""The demo's figures (:mod:`sobolev_rf.numeric.studies.demo`): double descent of L2 and Sobolev training along
p/d, and the phase diagram of eps_L2 over (p/d, n/d)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from matplotlib.colors import LogNorm, TwoSlopeNorm
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from numpy.typing import NDArray

from ..artifacts import png_bytes
from ..studies.demo import CONFIGS, DD_N_OVER_D, DoubleDescent
from .style import N_LABEL, P_LABEL, TEX, log_cell_edges, log_ticks

Array = NDArray[np.float64]


@dataclass(frozen=True)
class Curve:
    """One training configuration along p/d: theory line and simulation points (means and standard errors).

    ``theory[key]`` and ``sim_mean[key]``/``sim_se[key]`` are arrays over ``theory_x`` and ``sim_x``
    respectively, for key in ("eps_L2", "eps_H1"); NaN marks a point the solver could not resolve.
    ``threshold`` is the interpolation threshold p/d = (1 + τk)·n/d of this configuration.
    """

    label: str
    threshold: float
    theory_x: Array
    theory: dict[str, Array]
    sim_x: Array
    sim_mean: dict[str, Array]
    sim_se: dict[str, Array]


def curves(dd: DoubleDescent) -> list[Curve]:
    """One :class:`Curve` per configuration of the double-descent study."""
    from ...derive.params import training_rows

    out = []
    for index, (label, tau, k) in enumerate(CONFIGS):
        lines = dd.theory[index]
        points = [s for s in dd.sims if s.tag == index]
        out.append(
            Curve(
                label=label,
                threshold=training_rows(k, tau) * DD_N_OVER_D,
                theory_x=dd.xs,
                theory={key: np.array([row[key] for row in lines]) for key in ("eps_L2", "eps_H1")},
                sim_x=np.array([s.p_over_d for s in points]),
                sim_mean={key: np.array([s.mean[key] for s in points]) for key in ("eps_L2", "eps_H1")},
                sim_se={key: np.array([s.se[key] for s in points]) for key in ("eps_L2", "eps_H1")},
            )
        )
    return out


def double_descent_png(
    curves: Sequence[Curve], n_over_d: float, d: int, seeds: int, title: str, description: str
) -> bytes:
    """Two panels (eps_L2, eps_H1) against p/d on log-log axes: theory lines, simulation points with
    standard-error bars, and dashed vertical lines at every configuration's interpolation threshold; one
    legend below both panels."""
    fig = Figure(figsize=(12, 5), layout="constrained")
    axes = fig.subplots(1, 2)
    colors = ["C0", "C3", "C2", "C1", "C4"]
    panels = (("eps_L2", f"test error {TEX['eps_L2']}"), ("eps_H1", f"gradient test error {TEX['eps_H1']}"))
    thresholds = sorted({c.threshold for c in curves})
    for ax, (key, ylabel) in zip(axes, panels):
        for color, curve in zip(colors, curves):
            ax.plot(curve.theory_x, curve.theory[key], color=color, lw=1.8)
            se = curve.sim_se[key]
            ax.errorbar(
                curve.sim_x,
                curve.sim_mean[key],
                yerr=se if np.isfinite(se).any() else None,
                fmt="o",
                ms=4.5,
                capsize=3,
                color=color,
                mfc="white",
                mew=1.3,
            )
        for x in thresholds:
            name = "p = n" if np.isclose(x, n_over_d) else f"p = {x / n_over_d:g}n"
            ax.axvline(x, color="0.4", ls="--", lw=1)
            ax.annotate(
                name,
                (x, 1.0),
                xycoords=("data", "axes fraction"),
                xytext=(3, -12),
                textcoords="offset points",
                fontsize=8,
                color="0.3",
            )
        ax.set_xscale("log")
        ax.set_yscale("log")
        log_ticks(ax.xaxis, [0.1, 0.2, 0.5, 1, 2, 3, 6])
        ax.set_xlabel(P_LABEL)
        ax.set_ylabel(ylabel)
        ax.grid(True, which="both", alpha=0.25)
    handles = [
        Line2D([], [], color=color, lw=1.8, marker="o", ms=4.5, mfc="white", mew=1.3, label=curve.label)
        for color, curve in zip(colors, curves)
    ]
    handles += [
        Line2D([], [], color="0.3", lw=1.8, label="line: d → ∞ theory"),
        Line2D([], [], color="0.3", marker="o", ms=4.5, mfc="white", ls="none", label=f"points: simulation, d = {d}"),
    ]
    fig.legend(handles=handles, loc="outside lower center", ncols=len(handles), fontsize=9)
    fig.suptitle(f"{title}\nn/d = {n_over_d:g}; points: mean ± SE over {seeds} seed{'s' if seeds > 1 else ''}")
    return png_bytes(fig, description)


def phase_png(
    p_over_d: Array, n_over_d: Array, eps_l2: Array, eps_sobolev: Array, title: str, description: str
) -> bytes:
    """Three panels over the (p/d, n/d) grid: eps_L2 of L2 training, of Sobolev training (shared log colour
    scale) and their log ratio log₁₀(Sobolev / L2) (diverging, centred at 0), each with the lines p = n and
    p = 2n.

    ``eps_l2`` and ``eps_sobolev`` have shape (len(n_over_d), len(p_over_d)); NaN cells are left blank.
    """
    fig = Figure(figsize=(16, 5), layout="constrained")
    axes = fig.subplots(1, 3)
    xe, ye = log_cell_edges(p_over_d), log_cell_edges(n_over_d)
    both = np.concatenate([eps_l2[np.isfinite(eps_l2)], eps_sobolev[np.isfinite(eps_sobolev)]])
    positive = both[both > 0]
    vmin, vmax = (float(positive.min()), float(positive.max())) if positive.size else (1e-3, 1.0)
    lognorm = LogNorm(vmin=vmin, vmax=max(vmax, vmin * 1.0001))
    with np.errstate(divide="ignore", invalid="ignore"):
        diff = np.log10(eps_sobolev / eps_l2)
    finite = diff[np.isfinite(diff)]
    span = float(np.abs(finite).max()) if finite.size and np.abs(finite).max() > 0 else 1.0
    panels = (
        (eps_l2, "L2 training (τ = 0)", "viridis", lognorm, TEX["eps_L2"]),
        (eps_sobolev, "Sobolev training (τ = 1, k = 1)", "viridis", lognorm, TEX["eps_L2"]),
        (
            diff,
            "ratio: Sobolev / L2",
            "RdBu_r",
            TwoSlopeNorm(0.0, -span, span),
            r"$\log_{10}$ " + TEX["eps_L2"] + "(Sobolev) / " + TEX["eps_L2"] + "(L2)   (blue: Sobolev better)",
        ),
    )
    n_line = np.array([ye[0], ye[-1]])
    for ax, (values, name, cmap, norm, clabel) in zip(axes, panels):
        mesh = ax.pcolormesh(xe, ye, np.ma.masked_invalid(values), cmap=cmap, norm=norm, shading="flat")
        fig.colorbar(mesh, ax=ax, label=clabel)
        ax.plot(n_line, n_line, color="white" if cmap == "viridis" else "black", ls="--", lw=1.3, label="p = n")
        ax.plot(2 * n_line, n_line, color="white" if cmap == "viridis" else "black", ls=":", lw=1.6, label="p = 2n")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlim(xe[0], xe[-1])
        ax.set_ylim(ye[0], ye[-1])
        log_ticks(ax.xaxis, [0.2, 0.5, 1, 2, 5])
        log_ticks(ax.yaxis, [0.2, 0.5, 1, 2, 5])
        ax.set_xlabel(P_LABEL)
        ax.set_ylabel(N_LABEL)
        ax.set_title(name)
        ax.legend(fontsize=8, loc="lower right", facecolor="0.85")
    fig.suptitle(title)
    return png_bytes(fig, description)
