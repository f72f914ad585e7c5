"""The alignment study's figure (:mod:`sobolev_rf.numeric.studies.alignment`): per error the exact law over
ϖ ~ N(0, I_k) as mass per bin and CDF, with the simulated draws, and simulation against e(ϖ) per draw."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import FormatStrFormatter, LogLocator, NullFormatter

from ...derive.params import ModelParams
from ..artifacts import png_bytes
from ..studies.alignment import Comparison, Draws, LawSummary
from .style import TEX


def law_png(
    params: ModelParams,
    summaries: Sequence[LawSummary],
    draws: Draws | None,
    comparisons: dict[str, Comparison],
    description: str,
) -> bytes:
    """The figure: per error a column of (mass per bin + histogram, CDF + empirical CDF, sim vs e(ϖ))."""
    rows = 3 if draws is not None else 2
    fig = Figure(figsize=(5.2 * len(summaries), 3.9 * rows + 0.8), layout="constrained")
    axes = np.atleast_2d(fig.subplots(rows, len(summaries)))
    qstyle = {"color": "0.35", "ls": ":", "lw": 1.2}
    for col, s in enumerate(summaries):
        name = TEX[s.key]
        law = s.law
        sim = None if draws is None else draws.sim[s.key]
        # --- mass per bin ---------------------------------------------------------------------------------
        ax = axes[0, col]
        widths = np.diff(s.edges)
        exact_height = s.masses / widths
        ax.stairs(exact_height, s.edges, color="C0", lw=2.0, label="exact law: mass per bin / width")
        top = float(np.max(exact_height))
        if sim is not None:
            counts, _ = np.histogram(sim, bins=s.edges)
            sim_height = counts / (len(sim) * widths)
            ax.stairs(
                sim_height,
                s.edges,
                fill=True,
                color="C1",
                alpha=0.35,
                label=f"simulation, d = {draws.d if draws else 0}, {len(sim)} draws",
            )
            top = max(top, float(np.max(sim_height)))
        # the CDF is exact (k = 1) or accurate to ~1e-9 (k ≥ 2), so its derivative on the grid is the density
        fine_x = 0.5 * (s.grid[1:] + s.grid[:-1])
        ax.plot(fine_x, np.diff(s.cdf) / np.diff(s.grid), color="C0", lw=0.8, alpha=0.6, label="exact density dF/dx")
        ax.set_ylim(0, 1.3 * top)
        if s.minimum is not None and params.k == 1 and float(np.abs(law.A).max()) > 0:
            ax.annotate(
                "integrable 1/√ singularity\nat the lower edge",
                (s.minimum, 1.2 * top),
                xytext=(8, -4),
                textcoords="offset points",
                fontsize=8,
                color="C0",
                va="top",
            )
        tail = f"P({s.key} > {s.edges[-1]:.3g}) = {s.above:.3f}"
        if sim is not None:
            tail += f"; simulation {np.count_nonzero(sim >= s.edges[-1])}/{len(sim)}"
        ax.text(0.98, 0.97, tail, transform=ax.transAxes, ha="right", va="top", fontsize=8, color="0.3")
        ax.set_xlabel(f"{name}  ({s.key})")
        ax.set_ylabel("probability density")
        ax.set_title(f"{name}: mean {law.mean:.3g}, sd {math.sqrt(law.variance):.3g}", fontsize=11)
        ax.legend(fontsize=8, loc="center right")
        # --- CDF ------------------------------------------------------------------------------------------
        ax = axes[1, col]
        ax.plot(s.grid, s.cdf, color="C0", lw=2.0, label="exact CDF (d → ∞)")
        if sim is not None and draws is not None:
            xs = np.sort(sim)
            ax.step(
                np.concatenate([[s.grid[0]], xs, [max(s.grid[-1], xs[-1])]]),
                np.concatenate([[0.0], np.arange(1, len(xs) + 1) / len(xs), [1.0]]),
                where="post",
                color="C1",
                lw=1.5,
                label=f"simulation (KS distance {comparisons[s.key].ks:.3f})",
            )
            theory = np.sort(law(draws.varpi))
            ax.step(
                np.concatenate([[s.grid[0]], theory, [max(s.grid[-1], theory[-1])]]),
                np.concatenate([[0.0], np.arange(1, len(theory) + 1) / len(theory), [1.0]]),
                where="post",
                color="0.55",
                lw=1.0,
                ls="--",
                label=f"e(ϖ) at the same draws (KS {comparisons[s.key].ks_theory_draws:.3f})",
            )
        ax.axvline(law.mean, color="C3", ls="--", lw=1.2, label=f"mean {law.mean:.3g}")
        for q, x in s.quantiles.items():
            ax.axvline(x, **qstyle)
            ax.annotate(
                f"q{round(100 * q)}",
                (x, 1.0),
                xycoords=("data", "axes fraction"),
                xytext=(2, -10),
                textcoords="offset points",
                fontsize=8,
                color="0.3",
            )
        ax.plot([], [], **qstyle, label="5 / 50 / 95 % quantiles")
        ax.set_xlim(s.grid[0], s.grid[-1])
        ax.set_ylim(0, 1.05)
        ax.set_xlabel(f"{name}  ({s.key})")
        ax.set_ylabel(f"P({s.key} ≤ x)")
        ax.legend(fontsize=8, loc="lower right")
        ax.grid(True, alpha=0.25)
        # --- per draw -------------------------------------------------------------------------------------
        if draws is not None and sim is not None:
            ax = axes[2, col]
            theory = law(draws.varpi)
            c = comparisons[s.key]
            ax.scatter(
                theory,
                sim,
                s=14,
                color="C1",
                alpha=0.75,
                edgecolor="none",
                label=f"one draw ϖ_i, one seed, d = {draws.d}",
            )
            low, high = min(theory.min(), sim.min()), max(theory.max(), sim.max())
            log = low > 0 and high / low > 4  # a χ²-like spread: log axes show the bulk and the tail
            lim = [low / 1.1, high * 1.1] if log else [low - 0.05 * (high - low), high + 0.05 * (high - low)]
            ax.plot(lim, lim, color="0.3", lw=1.0, label="simulation = theory")
            if log:
                ax.set_xscale("log")
                ax.set_yscale("log")
                for axis in (ax.xaxis, ax.yaxis):
                    axis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
                    axis.set_major_formatter(FormatStrFormatter("%g"))
                    axis.set_minor_formatter(NullFormatter())
            ax.set_xlim(lim)
            ax.set_ylim(lim)
            ax.set_xlabel("theory e(ϖ_i)  (d → ∞, same ϖ_i)")
            ax.set_ylabel(f"simulated {name}")
            ax.text(
                0.03,
                0.97,
                f"sim/e(ϖ) − 1: mean {100 * c.rel_dev_mean:+.1f} % ± {100 * c.rel_dev_se:.1f} %"
                f"\nrms {100 * c.rel_dev_rms:.1f} % per draw",
                transform=ax.transAxes,
                va="top",
                fontsize=8.5,
            )
            ax.legend(fontsize=8, loc="lower right")
            ax.grid(True, alpha=0.25)
    sim_line = (
        "exact law (lines) vs finite-size simulation at a fresh draw ϖ_i ~ N(0, I$_{k}$) "
        f"(d = {draws.d}, p = {draws.p}, n = {draws.n}, {len(draws.seeds)} draws, one seed each)".replace(
            "$_{k}$", f"$_{{{params.k}}}$"
        )
        if draws is not None
        else "exact law (no simulation)"
    )
    fig.suptitle(
        f"Law of the test errors over the alignment ϖ ~ N(0, I$_{params.k}$)\n"
        f"{params.describe(omit=('alignment',))}\n{sim_line}",
        fontsize=11,
    )
    return png_bytes(fig, description)
