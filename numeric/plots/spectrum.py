"""The spectrum figure (:mod:`sobolev_rf.numeric.studies.spectrum`): the limiting density, the atoms and the
eigenvalue histogram of one finite draw."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from ..artifacts import png_bytes


def spectrum_png(spec: Any, eigs: Any, title: str, command: str) -> bytes:
    """The limiting density, the atoms as stems at their location (mass annotated, with the draw's fraction
    of eigenvalues there) and the histogram of the draw's other eigenvalues (normalised by the whole draw, so
    that it is comparable with the continuous part)."""
    fig = Figure(figsize=(7.5, 4.6))
    ax = fig.add_subplot(1, 1, 1)
    x, rho = spec.x, spec.density
    span = float(x[-1] - x[0])
    theory_top = float(np.nanmax(rho)) if np.any(np.isfinite(rho)) else 1.0
    # a divergent edge (e.g. x^(-1/2) at a hard edge) must not flatten the plot: clip the y range
    top = min(theory_top, 3 * float(np.nanpercentile(rho, 95))) if np.any(np.isfinite(rho)) else 1.0
    in_draw: dict[float, float] = {}
    if eigs is not None and len(eigs):
        nb = int(np.clip(2.5 * math.sqrt(len(eigs)), 30, 120))
        edges = np.linspace(x[0], x[-1], nb + 1)
        tol = 1e-6 * (1 + float(np.max(np.abs(eigs))))  # rounding: exact zero eigenvalues come out as ±1e-15
        rest = np.ones(len(eigs), bool)
        for a, _ in spec.atoms:
            at = np.abs(eigs - a) <= tol
            in_draw[a] = float(np.mean(at))
            rest &= ~at
        kept = eigs[rest & (eigs >= x[0] - tol) & (eigs <= x[-1] + tol)]
        counts, _ = np.histogram(np.clip(kept, x[0], x[-1]), bins=edges)
        heights = counts / (len(eigs) * np.diff(edges))
        if heights.size:
            hist_top = float(np.max(heights))
            top = max(min(theory_top, 1.5 * hist_top), hist_top)
        ax.bar(
            edges[:-1],
            heights,
            width=np.diff(edges),
            align="edge",
            color="0.80",
            edgecolor="0.65",
            linewidth=0.4,
            label=f"eigenvalues of one draw, N = {len(eigs)}" + (" (atoms apart)" if spec.atoms else ""),
        )
    ax.plot(x, rho, color="C0", lw=1.8, label=f"limiting density (η = {spec.eta:g})")
    ymax = 1.25 * top if top > 0 else 1.0
    for a, w in spec.atoms:
        ax.plot([a, a], [0, 0.8 * ymax], color="C3", lw=1.8, ls="--", clip_on=False, zorder=5)
        ax.plot([a], [0.8 * ymax], marker="v", color="C3", ms=7, clip_on=False, zorder=5)
        note = f"atom at {a:.4g}\nmass {w:.4g}" + (f"\n(draw: {in_draw[a]:.4g})" if a in in_draw else "")
        ax.annotate(
            note, xy=(a, 0.8 * ymax), xytext=(8, 0), textcoords="offset points", color="C3", fontsize=9, va="center"
        )
    if spec.atoms:
        ax.plot([], [], color="C3", ls="--", marker="v", label="atoms (mass annotated)")
    ax.set_ylim(0, ymax)
    pad = 0.02 * span
    lo = min([x[0] - pad] + [a - pad for a, _ in spec.atoms])
    hi = max([x[-1]] + [a + pad for a, _ in spec.atoms])
    ax.set_xlim(lo, hi)  # a little room on the left, so that an atom at the grid's end is not on the axis
    ax.set_xlabel("eigenvalue x")
    ax.set_ylabel("density")
    try:
        ax.set_title("spectrum of " + title, fontsize=10)
        FigureCanvasAgg(fig).draw()  # mathtext that matplotlib cannot typeset fails here, not when saving
    except (ValueError, RuntimeError):
        ax.set_title("spectrum of " + title.replace("$", ""), fontsize=9)
    ax.legend(loc="upper right", fontsize=8, frameon=False)
    ax.grid(alpha=0.25)
    fig.tight_layout()
    return png_bytes(fig, command)
