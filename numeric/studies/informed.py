"""Data-informed gradient subspaces, a study OUTSIDE the d → ∞ theory (``sobolev-rf informed``).

MODEL.md draws the projection directions v_l ~ N(0, I_d) independently of the teacher, so the alignment
ϖ = Vᵀθ₀ stays O(1) and the theory is stated at fixed ϖ. Active-subspace and derivative-informed methods
instead take V from data: the dominant eigenvectors of the gradient covariance estimated from m pilot samples
(:func:`sobolev_rf.numeric.simulation.exact.draw_directions` with ``subspace="informed"``). Then v₁ ≈ √d·θ₀ and
ϖ₁ ≈ √d grows with d — a different regime, for which only the simulator speaks.

At one model point and for each d the study simulates, over the same seeds,

- ``random``:   Sobolev training (τ = 1) with random V (the model), ϖ ~ N(0, I_k) drawn per seed;
- ``informed``: Sobolev training (τ = 1) with informed V from m = round(pilot_ratio·d) pilot gradients with the
  point's gradient noise Δ_g (ϖ realised, reported as ϖ₁/√d);
- ``L2``:       plain L2 training (τ = 0) for reference (its eps_H1 uses the random V of ``random``),

and compares them with the d → ∞ theory of the random model averaged over ϖ ~ N(0, I_k) (the mean of the exact
quadratic law, :func:`sobolev_rf.numeric.studies.alignment.alignment_laws`) and at the realised ϖ of the seeds.
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass
from typing import Any

import numpy as np

from ...derive.errors import UserError
from ...derive.params import ModelParams
from ..quantities import ERRORS
from ..simulation.batch import SimJob, simulate_batch
from ..simulation.exact import MEMORY_LIMIT_BYTES, memory_estimate, sizes
from ..theory.solve import solve
from .alignment import alignment_laws

#: The compared arms: (name, τ, subspace).
ARMS: tuple[tuple[str, int, str], ...] = (("random", 1, "random"), ("informed", 1, "informed"), ("L2", 0, "random"))


LABELS = {"random": "Sobolev, random V (the model)", "informed": "Sobolev, informed V", "L2": "L2 training (τ = 0)"}


OUTSIDE = "informed: outside the theory (ϖ₁ ~ √d)"


#: Stream tag of the per-seed alignment draws of the random arms.
_ALIGNMENT_STREAM = 0x1F0


@dataclass(frozen=True)
class Settings:
    params: ModelParams
    ds: tuple[int, ...]
    seeds: int
    pilot_ratio: float
    n_test: int | None


def _alignment(d: int, seed: int, k: int) -> tuple[float, ...]:
    """The seed's ϖ ~ N(0, I_k) of the random arms (shared by ``random`` and ``L2``)."""
    rng = np.random.default_rng([_ALIGNMENT_STREAM, d, seed])
    return tuple(float(a) for a in rng.standard_normal(k))


@dataclass(frozen=True)
class ArmResult:
    """One arm at one d: per-seed errors and realised alignments (seeds × k)."""

    arm: str
    tau: int
    subspace: str
    d: int
    p: int
    n: int
    pilot: int | None
    errors: dict[str, np.ndarray]
    alignment: np.ndarray

    def mean(self, key: str) -> float:
        return float(np.mean(self.errors[key]))

    def se(self, key: str) -> float:
        values = self.errors[key]
        return float(np.std(values, ddof=1) / math.sqrt(len(values)))

    @property
    def ratio(self) -> np.ndarray:
        """ϖ₁/√d per seed."""
        return self.alignment[:, 0] / math.sqrt(self.d)


def check_sizes(settings: Settings) -> None:
    """Refuse runs beyond the simulator's memory/work limits before any work (via a dry validation)."""
    params = settings.params
    d = max(settings.ds)
    p, n = sizes(params, d)
    pilot = max(1, round(settings.pilot_ratio * d))
    need = memory_estimate(d, p, n, params.k, 1, params.lam, min(1000, settings.n_test or 2000), pilot)
    if need > MEMORY_LIMIT_BYTES:
        raise UserError(
            f"d = {d}, p = {p}, n = {n} needs about {need / 2**30:.1f} GiB (limit "
            f"{MEMORY_LIMIT_BYTES / 2**30:.0f} GiB); reduce --d or the ratios p/d, n/d."
        )
    total = sum(
        3
        * settings.seeds
        * ((settings.n_test or max(2000, 2 * sizes(params, x)[0])) + sizes(params, x)[1] * (1 + params.k))
        * sizes(params, x)[0]
        * x
        for x in settings.ds
    )
    if total > 5e13:
        raise UserError(
            f"the study needs about {total:.1e} floating-point operations (limit 5e13, hours on a "
            "laptop); reduce --d, --seeds or --n-test."
        )


def simulate_arms(settings: Settings) -> list[ArmResult]:
    """Every arm at every d, over seeds 0..S−1 (one simulation batch, one seed per job)."""
    params = settings.params
    jobs = []
    for d in settings.ds:
        pilot = max(1, round(settings.pilot_ratio * d))
        for arm, tau, subspace in ARMS:
            for seed in range(settings.seeds):
                if subspace == "informed":
                    options = dict(n_test=settings.n_test, subspace="informed", pilot=pilot)
                    jobs.append(SimJob((d, arm, pilot), params.with_(tau=tau), d, (seed,), options))
                else:
                    point = params.with_(tau=tau, alignment=_alignment(d, seed, params.k))
                    jobs.append(SimJob((d, arm, None), point, d, (seed,), dict(n_test=settings.n_test)))
    points = simulate_batch(jobs, ERRORS + ("alignment",), label="informed study")
    out = []
    for start in range(0, len(points), settings.seeds):
        arm_points = points[start : start + settings.seeds]
        d, arm, pilot = arm_points[0].tag
        _, tau, subspace = next(a for a in ARMS if a[0] == arm)
        out.append(
            ArmResult(
                arm,
                tau,
                subspace,
                d,
                arm_points[-1].p,
                arm_points[-1].n,
                pilot,
                {key: np.array([s.mean[key] for s in arm_points]) for key in ERRORS},
                np.array([s.mean["alignment"] for s in arm_points]),
            )
        )
    return out


def theory_laws(params: ModelParams) -> dict[int, dict[str, Any]]:
    """The quadratic law in ϖ of each error for τ = 1 and τ = 0 (empty where the solver fails)."""
    laws: dict[int, dict[str, Any]] = {}
    for tau in (1, 0):
        try:
            with np.errstate(all="ignore"):
                laws[tau] = alignment_laws(params.with_(tau=tau), lambda p: solve(p).to_dict(), keys=ERRORS)
        except UserError:
            laws[tau] = {}
        bad = [key for key in ERRORS if key not in laws[tau] or not math.isfinite(laws[tau][key].mean)]
        if bad:
            print(
                f"sobolev-rf informed: warning: the d → ∞ theory (τ = {tau}) did not resolve {', '.join(bad)} "
                "at this point (left blank)",
                file=sys.stderr,
            )
    return laws


def theory_at(laws: dict[int, dict[str, Any]], result: ArmResult) -> tuple[dict[str, float], dict[str, float]]:
    """(E over ϖ ~ N(0, I_k), mean over the seeds' realised ϖ) of each error; NaN for the informed arm."""
    if result.subspace == "informed":
        return {key: math.nan for key in ERRORS}, {key: math.nan for key in ERRORS}
    law = laws.get(result.tau, {})
    mean = {key: law[key].mean if key in law else math.nan for key in ERRORS}
    realised = {key: float(np.mean(law[key](result.alignment))) if key in law else math.nan for key in ERRORS}
    return mean, realised
