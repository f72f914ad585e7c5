"""The one-step study's CSV files and printed table (:mod:`sobolev_rf.numeric.studies.onestep`, ``sobolev-rf
onestep``)."""

from __future__ import annotations

import numpy as np

from ..artifacts import csv_text, fmt
from ..studies.onestep import READOUTS, STEPS, Curves, GainMap, OnestepSettings


def errors_csv(command: str, curves: Curves) -> str:
    """onestep_errors.csv: the theory lines (where there is theory), then the simulation points."""
    rows = [
        [step, readout, "theory", fmt(e), fmt(y), "nan"]
        for (step, readout), ys in curves.theory.items()
        for e, y in zip(curves.etas, ys)
        if np.isfinite(y)
    ]
    rows += [
        [step, readout, "simulation", fmt(e), fmt(m), fmt(s)]
        for (step, readout), (xs, ms, ss) in curves.sim.items()
        for e, m, s in zip(xs, ms, ss)
    ]
    return csv_text(command, ["step", "readout", "source", "eta", "eps_L2", "eps_L2_se"], rows)


def gain_csv(command: str, gain: GainMap) -> str:
    """onestep_gain.csv: one row per (α₀, η̃) of the map."""
    a0 = np.repeat(gain.alpha0, len(gain.etas))
    et = np.tile(gain.etas, len(gain.alpha0))
    rows = [
        [fmt(a), fmt(e), fmt(x), fmt(y), fmt(x - y)]
        for a, e, x, y in zip(a0, et, gain.l2_step.ravel(), gain.sobolev_step.ravel())
    ]
    return csv_text(command, ["alpha0", "eta", "eps_L2_l2_step", "eps_L2_sobolev_step", "gain"], rows)


def overlap_csv(command: str, settings: OnestepSettings, overlaps: dict[float, np.ndarray]) -> str:
    """onestep_overlap.csv: γ against α₀ for every τ₁k₁."""
    alpha_axis = np.asarray(settings.overlap_alpha0)
    rows = [[fmt(tk), fmt(a), fmt(g)] for tk, gs in overlaps.items() for a, g in zip(alpha_axis, gs)]
    return csv_text(command, ["tau_step_k_step", "alpha0", "gamma"], rows)


def table(settings: OnestepSettings, curves: Curves, gain: GainMap) -> str:
    """The simulated eps_L2 of every step and readout at the simulated η̃, and the range of the gain map."""
    lines = [f"{'step':8s} {'readout':8s} " + " ".join(f"{'eta=' + format(e, 'g'):>16s}" for e in settings.sim_etas)]
    for step in STEPS:
        for readout in READOUTS:
            xs, ms, ss = curves.sim[step, readout]
            cells = [f"{m:.4f} ± {s:.4f}" if np.isfinite(s) else f"{m:.4f}" for m, s in zip(ms, ss)]
            lines.append(f"{step:8s} {readout:8s} " + " ".join(f"{c:>16s}" for c in cells))
    g = gain.gain
    lines.append(f"gain of the Sobolev step (L2 readout): max {np.nanmax(g):.4f}, min {np.nanmin(g):.4f} over the map")
    return "\n".join(lines)
