"""The informed study's figure (:mod:`sobolev_rf.numeric.studies.informed`): the errors of the three arms against d."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import FixedLocator, FormatStrFormatter, NullFormatter

from ..artifacts import png_bytes
from ..studies.informed import ARMS, LABELS, OUTSIDE, ArmResult, Settings


def figure(results: Sequence[ArmResult], laws: dict[int, dict[str, Any]], settings: Settings, command: str) -> bytes:
    """Three panels (eps_L2, eps_H1, eps_grad) against d: simulation means ± SE of the three arms, the random
    model's d → ∞ theory (mean over ϖ ~ N(0, I_k)) as lines; the informed arm is marked outside the theory."""
    fig = Figure(figsize=(15, 5.4), layout="constrained")
    axes = fig.subplots(1, 3)
    style = {"random": ("C0", "o", 1), "informed": ("C3", "s", 1), "L2": ("C2", "^", 0)}
    ds = np.array(settings.ds, dtype=float)
    span = np.array([ds[0] / 1.15, ds[-1] * 1.15])
    panels = (
        ("eps_L2", r"test error $\varepsilon_{L^2}$"),
        ("eps_H1", r"projected-gradient error $\varepsilon_{H^1}$" + "\n(informed: along v₁ ≈ √d θ₀, grows ∝ d)"),
        ("eps_grad", r"full-gradient error $\varepsilon_{\nabla}$"),
    )
    offsets = {"random": 0.97, "informed": 1.0, "L2": 1.03}
    for ax, (key, ylabel) in zip(axes, panels):
        for arm, _, _ in ARMS:
            color, marker, tau = style[arm]
            rs = [r for r in results if r.arm == arm]
            x = np.array([r.d for r in rs]) * offsets[arm]
            ax.errorbar(
                x,
                [r.mean(key) for r in rs],
                yerr=[r.se(key) for r in rs],
                fmt=marker,
                ms=6,
                capsize=3,
                color=color,
                mfc="white" if arm != "informed" else color,
                mew=1.4,
                lw=1.2,
            )
            if arm != "informed" and key in laws.get(tau, {}):
                ax.plot(span, [laws[tau][key].mean] * 2, color=color, lw=1.6, ls="-" if tau else "--")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlim(*span)
        ax.xaxis.set_major_locator(FixedLocator(list(ds)))
        ax.xaxis.set_major_formatter(FormatStrFormatter("%g"))
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel("input dimension d")
        ax.set_ylabel(ylabel)
        ax.grid(True, which="both", alpha=0.25)
    handles = [
        Line2D(
            [], [], color="C0", marker="o", mfc="white", lw=1.6, label=f"{LABELS['random']}: sim. ± SE, theory line"
        ),
        Line2D(
            [],
            [],
            color="C2",
            marker="^",
            mfc="white",
            lw=1.6,
            ls="--",
            label=f"{LABELS['L2']}: sim. ± SE, theory line",
        ),
        Line2D(
            [],
            [],
            color="C3",
            marker="s",
            ls="none",
            label=f"{LABELS['informed']} (pilot m = {settings.pilot_ratio:g}·d): sim. ± SE",
        ),
        Line2D([], [], color="none", label=OUTSIDE + ", no theory line"),
    ]
    fig.legend(handles=handles, loc="outside lower center", ncol=2, fontsize=9, frameon=False)
    informed = [r for r in results if r.arm == "informed"]
    realised = ", ".join(f"d = {r.d}: {np.mean(r.ratio):.3f}" for r in informed)
    fig.suptitle(
        f"Data-informed vs random gradient subspaces ({settings.params.describe(omit=('tau', 'alignment'))})\n"
        f"lines: d → ∞ theory of the random model, mean over ϖ ~ N(0, I_k); points: {settings.seeds} seeds "
        f"(± SE); informed realised ϖ₁/√d — {realised}"
    )
    return png_bytes(fig, command)
