"""Feature learning with one first-layer step (ONESTEP.md): does a Sobolev step learn better features?

Three pieces, each a function of :class:`OnestepSettings`:

* :func:`error_curves`: eps_L2 against the normalised rate η̃ for no step, an L2 step and a Sobolev step
  (fresh directions, τ₁, k₁), each followed by an L2 readout (τ = 0) and a Sobolev readout (τ, k), theory
  lines from the derived one-step readout systems (the Sobolev readout's averaged over its ζ shift; where
  that theory does not cover the point, k ≥ 3 or the ±1/p layer, simulation only), with simulation points
  ± SE of the exact two-phase simulator;
* :func:`gain_map`: over (α₀, η̃), the gain eps_L2(L2 step) − eps_L2(Sobolev step) of the L2 readout
  (positive: the Sobolev step's features are better);
* :func:`overlap_curves`: the spike's overlap γ = ⟨û, θ₀⟩ against α₀ for several τ₁k₁ (closed forms of
  :mod:`sobolev_rf.derive.spike`): a fresh-direction step acts like k₁ extra samples per sample with signal
  μ₁*(1 + τ₁k₁) and noise (E r² + τ₁²k₁E φ′²)/α₀.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from ...derive.errors import UserError
from ...derive.params import ModelParams
from ..simulation.batch import SimJob, simulate_batch
from ..theory.onestep import check_supported, solve_map, spike_scaling
from ..theory.solve import solve

Array = NDArray[np.float64]
#: The steps and readouts of the study, in plotting order.
STEPS = ("none", "l2", "sobolev")
READOUTS = ("l2", "sobolev")
#: The most η̃ values of the error curves (each a theory point per step and readout; a warm Sobolev-readout
#: point costs about 8 ms at k = 2), and the most points of the (α₀, η̃) map (the τ = 0 readout solves the
#: whole map as one batch of 48 κ-nodes per point).
MAX_CURVE_POINTS = 2_000
MAX_MAP_POINTS = 100_000


@dataclass(frozen=True)
class OnestepSettings:
    """The model point (``base``: σ, φ, p/d, n/d, λ, noise; its k and τ are the Sobolev readout's), the
    Sobolev step (τ₁, k₁, α₀), the η̃ axis of the curves, the simulation (d, seeds, the η̃ of its points)
    and the axes of the map and of the overlap curves."""

    base: ModelParams
    alpha0: float = 4.0
    tau_step: float = 1.0
    k_step: int = 1
    etas: tuple[float, ...] = tuple(np.linspace(0.0, 3.0, 31))
    sim_etas: tuple[float, ...] = (0.5, 1.0, 2.0)
    d: int = 200
    seeds: int = 2
    map_alpha0: tuple[float, ...] = tuple(np.geomspace(0.25, 16.0, 33))
    map_etas: tuple[float, ...] = tuple(np.linspace(0.0, 3.0, 33))
    tau_k: tuple[float, ...] = (0.0, 0.5, 1.0, 2.0, 4.0)
    overlap_alpha0: tuple[float, ...] = field(default=tuple(np.geomspace(0.1, 100.0, 61)))

    def __post_init__(self) -> None:
        if self.base.has_step:
            raise UserError("the study sets the step itself: give the model point without --step.")
        if self.base.k < 1 or self.base.tau <= 0:
            raise UserError("the Sobolev readout of the study needs k >= 1 and tau > 0.")
        if not self.base.lam > 0:
            raise UserError("the one-step theory needs lam > 0.")
        if self.d < 20 or self.seeds < 1:
            raise UserError(f"the simulation needs d >= 20 and seeds >= 1, got d = {self.d}, seeds = {self.seeds}.")
        if min(self.tau_k) < 0:
            raise UserError("every tau_step * k_step of the overlap curves must be >= 0.")
        if len(self.etas) > MAX_CURVE_POINTS:
            raise UserError(f"--eta has {len(self.etas)} values, more than {MAX_CURVE_POINTS}; use fewer.")
        if len(self.map_etas) * len(self.map_alpha0) > MAX_MAP_POINTS:
            raise UserError(
                f"the (alpha0, eta) map has {len(self.map_etas) * len(self.map_alpha0)} points, more than "
                f"{MAX_MAP_POINTS}; use fewer --eta or --map-alpha0 values."
            )
        self.point("sobolev", "l2", 1.0)  # validates the step options in one line

    def point(self, step: str, readout: str, eta: float, alpha0: float | None = None) -> ModelParams:
        """The model point of ``step`` (none, l2, sobolev) and ``readout`` (l2: τ = 0; sobolev: the base τ)."""
        readout_fields = {"tau": 0.0} if readout == "l2" else {}
        if step == "none":
            return self.base.with_(**readout_fields)
        sobolev = dict(tau_step=self.tau_step, k_step=self.k_step) if step == "sobolev" else {}
        a0 = self.alpha0 if alpha0 is None else alpha0
        return self.base.with_(step=step, eta=float(eta), alpha0=float(a0), **readout_fields, **sobolev)

    def simulations(self) -> list[tuple[str, str, float]]:
        """(step, readout, η̃) of every simulation point (no step: once, at η̃ = 0)."""
        out = [("none", r, 0.0) for r in READOUTS]
        return out + [(s, r, e) for s in ("l2", "sobolev") for r in READOUTS for e in self.sim_etas]


@dataclass
class Curves:
    """Theory lines over ``etas`` (NaN where there is no theory) and simulation points, by (step, readout)."""

    etas: Array
    theory: dict[tuple[str, str], Array]
    sim: dict[tuple[str, str], tuple[Array, Array, Array]]  # η̃, mean, SE


def covered(params: ModelParams) -> bool:
    """Whether the one-step theory covers the point with a step ``params`` (:func:`check_supported`)."""
    try:
        check_supported(params)
    except UserError:
        return False
    return True


def error_curves(settings: OnestepSettings, progress: Callable[[int], None] | None = None) -> Curves:
    """eps_L2 against η̃ (module docstring): ``progress(1)`` after every theory line, then the simulation points
    (one simulation batch)."""
    etas = np.asarray(settings.etas, dtype=float)
    theory: dict[tuple[str, str], Array] = {}
    for readout in READOUTS:
        flat = solve(settings.point("none", readout, 0.0)).eps_L2
        theory["none", readout] = np.full(len(etas), flat)
        for step in ("l2", "sobolev"):
            params = settings.point(step, readout, 1.0)
            if covered(params):
                res = solve_map(params, etas, settings.alpha0)
                theory[step, readout] = np.where(res.converged, res.outputs["eps_L2"], np.nan)
            else:
                theory[step, readout] = np.full(len(etas), np.nan)
        if progress:
            progress(1)
    sim: dict[tuple[str, str], tuple[Array, Array, Array]] = {}
    jobs = [SimJob(job, settings.point(*job), settings.d, settings.seeds) for job in settings.simulations()]
    for point in simulate_batch(jobs, ("eps_L2",)):
        step, readout, eta = point.tag
        x, m, s = sim.get((step, readout), (np.empty(0), np.empty(0), np.empty(0)))
        sim[step, readout] = (np.append(x, eta), np.append(m, point.mean["eps_L2"]), np.append(s, point.se["eps_L2"]))
    return Curves(etas, theory, sim)


@dataclass
class GainMap:
    """eps_L2 of the L2 readout after an L2 and a Sobolev step on the (α₀, η̃) grid (rows α₀, columns η̃)."""

    alpha0: Array
    etas: Array
    l2_step: Array
    sobolev_step: Array

    @property
    def gain(self) -> Array:
        """eps_L2(L2 step) − eps_L2(Sobolev step): positive where the Sobolev step is better."""
        return self.l2_step - self.sobolev_step


def gain_map(settings: OnestepSettings) -> GainMap:
    """The map of :class:`GainMap` by the derived readout system, vectorised over the grid."""
    a0, eta = np.meshgrid(settings.map_alpha0, settings.map_etas, indexing="ij")
    out = {}
    for step in ("l2", "sobolev"):
        res = solve_map(settings.point(step, "l2", 1.0), eta, a0)
        out[step] = np.where(res.converged, res.outputs["eps_L2"], np.nan).reshape(a0.shape)
    return GainMap(np.asarray(settings.map_alpha0), np.asarray(settings.map_etas), out["l2"], out["sobolev"])


def overlap_curves(settings: OnestepSettings) -> dict[float, Array]:
    """γ(α₀) over ``overlap_alpha0`` for every τ₁k₁ of ``tau_k`` (k₁ = the study's k_step; τ₁k₁ = 0 is
    the L2 step)."""
    alpha0 = np.asarray(settings.overlap_alpha0, dtype=float)
    out = {}
    for tk in settings.tau_k:
        if tk == 0:
            params = settings.point("l2", "l2", 1.0)
        else:
            params = settings.base.with_(
                step="sobolev", eta=1.0, alpha0=1.0, tau=0.0, tau_step=tk / settings.k_step, k_step=settings.k_step
            )
        out[float(tk)] = np.asarray(spike_scaling(params).at(1.0, alpha0).gamma, dtype=float) * np.ones_like(alpha0)
    return out
