"""The project's main job on its embedded default (``sobolev-rf demo``, ``make demo``).

Default model: ReLU features σ, tanh teacher φ, λ = 1e-3, noiseless labels, alignment ϖ = 1 (:data:`BASE`).

1. Double descent: eps_L2 and eps_H1 along p/d ∈ [0.1, 6] at n/d = 1 for L2 training (τ = 0), Sobolev training
   with k = 1 and with k = 2: d → ∞ theory (:func:`sobolev_rf.numeric.theory.solve.solve_path`) and finite-size
   simulation points (one :func:`~sobolev_rf.numeric.simulation.batch.simulate_batch`, mean ± SE over seeds).
2. Phase diagram: theory eps_L2 of L2 and Sobolev (τ = 1, k = 1) training over a log-spaced (p/d, n/d) grid in
   [0.2, 5]².
"""

from __future__ import annotations

import math
import shlex
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ...derive.errors import UserError
from ...derive.params import ModelParams, training_rows
from ..progress import Progress
from ..simulation.batch import SimJob, SimPoint, simulate_batch
from ..theory.solve import solve_grid, solve_path

#: The embedded default model point; τ, k and the ratios are set per figure.
BASE = ModelParams(activation="relu", teacher="tanh", k=1, tau=0, lam=1e-3, noise_f=0.0, noise_g=0.0)
#: Training configurations of the double-descent figure: (label, τ, k).
CONFIGS: tuple[tuple[str, int, int], ...] = (("L2 (τ=0)", 0, 1), ("Sobolev τ=1, k=1", 1, 1), ("Sobolev τ=1, k=2", 1, 2))
#: Quantities written to the double-descent CSV.
QUANTITIES = ("eps_L2", "eps_H1", "eps_grad", "train_loss", "train_error_L2")
DD_N_OVER_D = 1.0
DD_RANGE = (0.1, 6.0)
PHASE_RANGE = (0.2, 5.0)
#: p/d values near which the summary table compares theory and simulation.
TABLE_P_OVER_D = (0.5, 4.0)


@dataclass(frozen=True)
class Settings:
    """Resolved demo options: sizes of the grids, the simulation and where to write."""

    out: Path
    d: int
    seeds: int
    grid: int
    points: int
    sim_points: int
    quick: bool

    def command(self) -> str:
        """The command line that reproduces this run exactly (all sizes explicit)."""
        words = (
            ["sobolev-rf", "demo"]
            + (["--quick"] if self.quick else [])
            + ["--d", str(self.d), "--seeds", str(self.seeds), "--grid", str(self.grid), "--out", str(self.out)]
        )
        return shlex.join(words)


def theory_point(params: ModelParams) -> dict[str, float]:
    """The d → ∞ prediction at one point; NaN where the solver cannot resolve it."""
    (result,) = solve_path([params])
    if isinstance(result, UserError):
        return {key: math.nan for key in QUANTITIES}
    return {key: float(getattr(result, key)) for key in QUANTITIES}


def theory_many(points: Sequence[ModelParams], label: str) -> list[dict[str, float]]:
    """The d → ∞ prediction at every point (continuation along the sequence, progress bar); all quantities
    NaN where the solver cannot resolve a point, with a warning on stderr."""
    out = []
    with Progress(len(points), label) as bar:
        for start in range(0, len(points), 8):
            for result in solve_path(list(points[start : start + 8])):
                out.append(
                    {key: math.nan for key in QUANTITIES}
                    if isinstance(result, UserError)
                    else {key: float(getattr(result, key)) for key in QUANTITIES}
                )
            bar.update(min(8, len(points) - start))
    failed = sum(not math.isfinite(row["eps_L2"]) for row in out)
    if failed == len(out):
        raise UserError(f"the asymptotic solver resolved none of the {len(out)} points of '{label}'.")
    if failed:
        print(
            f"sobolev-rf demo: warning: {failed} of {len(out)} theory points of '{label}' did not converge "
            f"(left blank)",
            file=sys.stderr,
        )
    return out


@dataclass(frozen=True)
class DoubleDescent:
    """Theory along p/d = ``xs`` (``theory[i]``: the rows of configuration i) and the simulation points
    (tag: configuration index)."""

    xs: np.ndarray
    theory: list[list[dict[str, float]]]
    sims: list[SimPoint]


def double_descent(settings: Settings) -> DoubleDescent:
    """Theory and simulation along p/d for :data:`CONFIGS`.

    The theory grid is log-spaced plus the interpolation thresholds p = rn (r = 1 + k training rows per sample
    for τ > 0, 1 for τ = 0), so the peaks are resolved.
    """
    thresholds = [training_rows(k, tau) * DD_N_OVER_D for _, tau, k in CONFIGS]
    xs = np.union1d(np.geomspace(*DD_RANGE, settings.points), [t for t in thresholds if DD_RANGE[0] < t < DD_RANGE[1]])
    base = BASE.with_(n_over_d=DD_N_OVER_D)
    theory_points = [base.with_(tau=tau, k=k, p_over_d=float(x)) for _, tau, k in CONFIGS for x in xs]
    theory = theory_many(theory_points, "theory: double descent")
    jobs = [
        SimJob(index, base.with_(tau=tau, k=k, p_over_d=float(x)), settings.d, settings.seeds)
        for index, (_, tau, k) in enumerate(CONFIGS)
        for x in np.geomspace(*DD_RANGE, settings.sim_points)
    ]
    sims = simulate_batch(jobs, QUANTITIES)
    return DoubleDescent(xs, [theory[i * len(xs) : (i + 1) * len(xs)] for i in range(len(CONFIGS))], sims)


@dataclass(frozen=True)
class PhaseDiagram:
    """Theory of τ = 0 (``l2``) and τ = 1, k = 1 (``sobolev``): eps_L2 and eps_H1 as arrays indexed [n/d, p/d]
    (NaN where the solver did not converge)."""

    p_over_d: np.ndarray
    n_over_d: np.ndarray
    l2: dict[str, np.ndarray]
    sobolev: dict[str, np.ndarray]


def phase_diagram(settings: Settings) -> PhaseDiagram:
    """Theory eps_L2 and eps_H1 of τ = 0 and τ = 1 (k = 1) over the (p/d, n/d) grid, by the grid solver."""
    ps = np.geomspace(*PHASE_RANGE, settings.grid)
    ns = np.geomspace(*PHASE_RANGE, settings.grid)
    mapping = dict(BASE.with_(k=1).grid_mapping(), p_over_d=ps[None, :], n_over_d=ns[:, None])
    values = []
    with Progress(2, "theory: phase diagram") as bar:
        for tau in (0, 1):
            result = solve_grid(1, tau, mapping)
            values.append({q: np.where(result.converged, result.outputs[q], np.nan) for q in ("eps_L2", "eps_H1")})
            failed = int(np.count_nonzero(~result.converged))
            if failed == result.converged.size:
                raise UserError(f"the asymptotic solver resolved none of the {failed} points of the phase diagram.")
            if failed:
                print(
                    f"sobolev-rf demo: warning: {failed} of {result.converged.size} theory points of the phase "
                    f"diagram (τ = {tau}) did not converge (left blank)",
                    file=sys.stderr,
                )
            bar.update()
    return PhaseDiagram(ps, ns, values[0], values[1])
