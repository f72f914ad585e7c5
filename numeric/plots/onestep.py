"""The one-step study's figure: errors against η̃, the Sobolev step's gain over (α₀, η̃), the overlap γ(α₀)."""

from __future__ import annotations

import numpy as np
from matplotlib.colors import TwoSlopeNorm
from matplotlib.figure import Figure

from ..artifacts import png_bytes
from ..studies.onestep import READOUTS, STEPS, Curves, GainMap

_COLORS = {"none": "0.35", "l2": "C0", "sobolev": "C3"}
_STEP_LABEL = {"none": "no step", "l2": "L2 step", "sobolev": "Sobolev step"}
_READOUT = {"l2": ("-", "o", "L2 readout"), "sobolev": ("--", "s", "Sobolev readout")}


def onestep_png(
    curves: Curves,
    gain: GainMap,
    overlaps: dict[float, np.ndarray],
    alpha0_axis: np.ndarray,
    title: str,
    description: str,
) -> bytes:
    """Three panels: (a) eps_L2 against η̃, theory lines (solid: L2 readout; dashed: Sobolev readout, where
    the theory covers it) and simulation points ± SE; (b) the gain map, red where the Sobolev step is better;
    (c) γ against α₀ for every τ₁k₁."""
    fig = Figure(figsize=(17, 5), layout="constrained")
    ax, bx, cx = fig.subplots(1, 3)
    for step in STEPS:
        for readout in READOUTS:
            style, marker, rlabel = _READOUT[readout]
            color = _COLORS[step]
            y = curves.theory[step, readout]
            label = f"{_STEP_LABEL[step]}, {rlabel}"
            if np.any(np.isfinite(y)):
                ax.plot(curves.etas, y, style, color=color, label=label)
                label = "_"
            if (step, readout) in curves.sim:
                x, m, s = curves.sim[step, readout]
                ax.errorbar(
                    x,
                    m,
                    yerr=s,
                    fmt=marker,
                    color=color,
                    mfc="white" if readout == "sobolev" else color,
                    capsize=3,
                    ms=5,
                    label=label,
                )
    ax.set_xlabel(r"normalised step $\tilde\eta$")
    ax.set_ylabel(r"test error $\varepsilon_{L^2}$")
    ax.set_yscale("log")
    ax.set_title("(a) lines: theory, points: simulation ± SE", fontsize=10)
    ax.legend(fontsize=7)
    g = gain.gain
    finite = g[np.isfinite(g)]
    bound = float(np.max(np.abs(finite))) if finite.size else 1.0
    mesh = bx.pcolormesh(
        gain.etas,
        gain.alpha0,
        g,
        cmap="RdBu_r",
        shading="nearest",
        norm=TwoSlopeNorm(0.0, -bound or -1.0, bound or 1.0),
    )
    moving = gain.etas > 0  # at η̃ = 0 both steps are the random-features model: the gain is exactly 0
    if finite.size and np.nanmin(g) < 0 < np.nanmax(g) and np.count_nonzero(moving) > 1:
        bx.contour(gain.etas[moving], gain.alpha0, g[:, moving], levels=[0.0], colors="k", linewidths=1)
    bx.set_yscale("log")
    bx.set_xlabel(r"normalised step $\tilde\eta$")
    bx.set_ylabel(r"step batch $\alpha_0 = n_0/d$")
    bx.set_title(r"(b) $\varepsilon_{L^2}$(L2 step) − $\varepsilon_{L^2}$(Sobolev step), L2 readout", fontsize=10)
    fig.colorbar(mesh, ax=bx)
    for tk, gamma in overlaps.items():
        cx.plot(alpha0_axis, gamma, label=rf"$\tau_1k_1 = {tk:g}$" + (" (L2 step)" if tk == 0 else ""))
    cx.set_xscale("log")
    cx.set_xlabel(r"step batch $\alpha_0$")
    cx.set_ylabel(r"overlap $\gamma = \langle \hat u, \theta_0\rangle$")
    cx.set_ylim(0, 1.02)
    cx.set_title("(c) the spike's overlap with the teacher", fontsize=10)
    cx.legend(fontsize=8)
    fig.suptitle(title, fontsize=11)
    return png_bytes(fig, description)
