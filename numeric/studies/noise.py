"""Label noise and the ridge: optimal λ, the λ → 0⁺ limit and where interpolating the noise is benign.

Symbols as in MODEL.md. Function labels y = φ(ω) + √Δ_f ε and gradient labels ỹ_l = ϖ_l φ′(ω) + √Δ_g ε_l
train the random-feature model by ridge regression on the Sobolev loss
L(w) = (1/n) Σ_i [(y_i − f_w(x_i))² + τ Σ_l (ỹ_il − v_lᵀ∇f_w(x_i))²] + λ‖w‖². Every error ε ∈ {eps_L2, eps_H1,
eps_grad} is measured on fresh *noiseless* test data and predicted in the proportional limit by
:func:`sobolev_rf.numeric.theory.solve.solve`; λ = 0 there is the exact limit λ → 0⁺ (minimum-norm
interpolant when p > rn, r = 1 + k training rows per sample for τ > 0 and r = 1 for τ = 0), with infinite error at
the interpolation threshold p = rn.

**Affine structure.** At fixed (σ, φ, k, τ, p/d, n/d, ϖ, λ) the resolvent order parameters (V, Ω of the
solver) do not depend on the labels, and the errors are quadratic in the labels, so they are *affine* in the
noise variances:

    ε(λ; Δ_f, Δ_g) = ε₀(λ) + Δ_f ε_f(λ) + Δ_g ε_g(λ),      ε_f, ε_g ≥ 0,

with ε_g ≡ 0 when τ = 0 or k = 0 (gradient labels are then not part of the training loss). Three solves per λ
(Δ = 0, Δ_f = 1, Δ_g = 1) therefore give the error at *every* noise level (:func:`noise_response`); the
tests check the affine law against direct solves.

**Optimal ridge.** λ*(Δ) = argmin_{λ>0} ε(λ; Δ) (:func:`optimal_lambda`: a coarse log-λ scan finds the basin,
errors can have two local minima near thresholds, then bounded Brent on log₁₀ λ refines it).

**Benign interpolation.** The point is *benign* when interpolating the noise costs nothing:
ε(0⁺) ≤ min_{λ>0} ε(λ) · (1 + rtol). This includes the case where the minimiser over the bracket sits at
its lower edge and the λ → 0⁺ value is below it. For τ = 0 the gradient noise Δ_g does not enter the
training at all, so "benign for Δ_g" carries no information; :func:`noise_map` then skips that study.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from numpy.typing import NDArray
from scipy import interpolate, optimize

from ...derive.errors import UserError
from ...derive.params import ModelParams
from ..progress import Progress
from ..quantities import ERRORS
from ..simulation.batch import SimJob, SimPoint, simulate_batch
from ..theory.solve import SolverError, TheoryResult, solve, solve_path

Array = NDArray[np.float64]

#: Errors that can be optimised over λ.
QUANTITIES = ERRORS
#: The two noise studies: name → (ModelParams field that is varied, the other noise field, symbol).
NOISE_KINDS = {"function": ("noise_f", "noise_g", "Δ_f"), "gradient": ("noise_g", "noise_f", "Δ_g")}
#: Default search interval of λ > 0.
DEFAULT_BRACKET = (1e-6, 1e2)
#: Relative tolerance of the benign test ε(0⁺) ≤ min_{λ>0} ε(λ)·(1 + BENIGN_RTOL).
BENIGN_RTOL = 1e-6


def gradient_noise_enters(params: ModelParams) -> bool:
    """Whether Δ_g enters the training loss at all (τ = 1 and k ≥ 1)."""
    return params.tau > 0 and params.k >= 1


def check_quantity(params: ModelParams, quantity: str) -> None:
    """Raise :class:`UserError` unless ``quantity`` is a reported error defined at ``params``."""
    if quantity not in QUANTITIES:
        raise UserError(f"quantity must be one of {', '.join(QUANTITIES)}, got {quantity!r}.")
    if quantity == "eps_H1" and params.k == 0:
        raise UserError("eps_H1 needs k >= 1 gradient directions; use --k 1 or another quantity.")


def check_bracket(bracket: Sequence[float]) -> tuple[float, float]:
    """``bracket`` as (lo, hi) with 0 < lo < hi < ∞, else :class:`UserError`."""
    try:
        lo, hi = (float(b) for b in bracket)
    except (TypeError, ValueError):
        raise UserError(f"the λ bracket must be two numbers 0 < lo < hi, got {bracket!r}.") from None
    if not (math.isfinite(lo) and math.isfinite(hi) and 0 < lo < hi):
        raise UserError(f"the λ bracket must satisfy 0 < lo < hi < ∞, got ({lo:g}, {hi:g}).")
    return lo, hi


def _value(result: TheoryResult | UserError, quantity: str) -> float:
    """``quantity`` of a solver result; NaN for a failed solve or an undefined quantity."""
    if isinstance(result, UserError):
        return math.nan
    value = getattr(result, quantity)
    return math.nan if value is None else float(value)


def error_at_zero(params: ModelParams, quantity: str = "eps_L2") -> float:
    """ε(λ → 0⁺) of ``quantity``; +∞ where the solver reports the interpolation threshold or fails."""
    try:
        return _value(solve(params.with_(lam=0.0)), quantity)
    except SolverError:
        return math.inf


@dataclass(frozen=True)
class Optimum:
    """The optimal ridge of one model point and one error.

    Unpacks as ``lam, value = optimum`` where ``lam`` is λ* (0.0 meaning λ → 0⁺ when :attr:`benign`) and
    ``value`` = ε(λ*). ``lam_positive``/``value_positive`` are the best λ > 0 in the bracket and its error,
    ``value_zero`` is ε(0⁺) (+∞ at the interpolation threshold). ``at_upper_edge``: the minimiser sits at the
    upper end of the bracket (ε may keep decreasing beyond it, towards the mean-only predictor).
    """

    quantity: str
    lam: float
    value: float
    lam_positive: float
    value_positive: float
    value_zero: float
    benign: bool
    at_upper_edge: bool
    bracket: tuple[float, float]
    evaluations: int

    def __iter__(self) -> Iterator[float]:
        return iter((self.lam, self.value))


def _benign(value_zero: float, value_positive: float, rtol: float) -> bool:
    return bool(math.isfinite(value_zero) and value_zero <= value_positive * (1.0 + rtol))


def optimal_lambda(
    params: ModelParams,
    bracket: Sequence[float] = DEFAULT_BRACKET,
    quantity: str = "eps_L2",
    scan: int = 25,
    xatol: float = 1e-3,
    rtol: float = BENIGN_RTOL,
) -> Optimum:
    """λ* = argmin over λ ∈ [lo, hi] ∪ {0⁺} of the asymptotic error ``quantity`` at ``params`` (its λ ignored).

    1. Coarse scan: ε at ``scan`` log-spaced λ in the bracket (continuation from large to small λ); the grid
       minimiser locates the basin (ε(λ) may have two local minima near the interpolation threshold).
    2. Bounded Brent (:func:`scipy.optimize.minimize_scalar`) on x = log₁₀ λ between the grid neighbours of
       the basin, to ``xatol`` in x.
    3. ε(0⁺) from the exact λ → 0⁺ solve; the point is benign when ε(0⁺) ≤ min_{λ>0} ε · (1 + rtol), and then
       λ* = 0 (returned as 0.0) and ε(λ*) = ε(0⁺).

    Returns an :class:`Optimum` (unpacks as ``(lam_star, value)``). Raises :class:`UserError` for a bad
    quantity or bracket and :class:`SolverError` when no λ of the scan could be solved.
    """
    check_quantity(params, quantity)
    lo, hi = check_bracket(bracket)
    if scan < 3:
        raise UserError(f"scan must be >= 3 points, got {scan}.")
    xs = np.linspace(math.log10(lo), math.log10(hi), scan)
    results = solve_path([params.with_(lam=float(10.0**x)) for x in xs[::-1]])[::-1]
    values = np.array([_value(r, quantity) for r in results])
    solved = [(float(x), r) for x, r in zip(xs, results) if isinstance(r, TheoryResult)]
    return refine_optimum(params, quantity, xs, values, error_at_zero(params, quantity), solved, xatol, rtol)


def refine_optimum(
    params: ModelParams,
    quantity: str,
    xs: Array,
    values: Array,
    value_zero: float,
    starts: Sequence[tuple[float, TheoryResult]] = (),
    xatol: float = 1e-3,
    rtol: float = BENIGN_RTOL,
) -> Optimum:
    """Steps 2–3 of :func:`optimal_lambda` from a scan already made: ε = ``values`` at λ = 10^``xs``
    (ascending x = log₁₀ λ spanning the bracket, NaN where unsolved) and ε(0⁺) = ``value_zero``.
    ``starts``: (x, solver result) pairs used as warm starts of the Brent evaluations (optional)."""
    values = np.asarray(values, dtype=float)
    if not np.isfinite(values).any():
        raise SolverError(
            f"no λ in [{10.0 ** xs[0]:g}, {10.0 ** xs[-1]:g}] could be solved at this point; move p/d or n/d."
        )
    evaluations = len(xs) + 1
    i = int(np.nanargmin(values))
    a, b = xs[max(i - 1, 0)], xs[min(i + 1, len(xs) - 1)]

    def objective(x: float) -> float:
        nonlocal evaluations
        evaluations += 1
        start = min(starts, key=lambda pair: abs(pair[0] - x))[1] if starts else None  # nearest scan point
        try:
            value = _value(solve(params.with_(lam=float(10.0**x)), start=start), quantity)
        except UserError:
            value = math.nan
        return value if math.isfinite(value) else math.inf

    best_x, best = float(xs[i]), float(values[i])
    if b > a:
        res = optimize.minimize_scalar(objective, bounds=(a, b), method="bounded", options={"xatol": xatol})
        if math.isfinite(res.fun) and res.fun < best:
            best_x, best = float(res.x), float(res.fun)
    benign = _benign(value_zero, best, rtol)
    lam_pos = float(10.0**best_x)
    return Optimum(
        quantity=quantity,
        lam=0.0 if benign else lam_pos,
        value=value_zero if benign else best,
        lam_positive=lam_pos,
        value_positive=best,
        value_zero=value_zero,
        benign=benign,
        at_upper_edge=bool(best_x >= xs[-1] - 2 * xatol),
        bracket=(float(10.0 ** xs[0]), float(10.0 ** xs[-1])),
        evaluations=evaluations,
    )


@dataclass(frozen=True)
class NoiseResponse:
    """The affine noise law ε(λ; Δ_f, Δ_g) = ε₀(λ) + Δ_f ε_f(λ) + Δ_g ε_g(λ) of one model point.

    ``lams`` (ascending, λ > 0) is the grid; ``base[q]``, ``slope_f[q]``, ``slope_g[q]`` are arrays over it
    (NaN where a solve failed) and ``zero_*[q]`` their λ → 0⁺ values (+∞ base at the interpolation
    threshold). ``slope_g`` is identically 0 when Δ_g does not enter training (τ = 0 or k = 0).
    """

    params: ModelParams
    lams: Array
    quantities: tuple[str, ...]
    base: dict[str, Array]
    slope_f: dict[str, Array]
    slope_g: dict[str, Array]
    zero_base: dict[str, float]
    zero_slope_f: dict[str, float]
    zero_slope_g: dict[str, float]

    def curve(self, quantity: str, noise_f: float, noise_g: float) -> Array:
        """ε(λ) over :attr:`lams` at the noise levels (Δ_f, Δ_g)."""
        return self.base[quantity] + noise_f * self.slope_f[quantity] + noise_g * self.slope_g[quantity]

    def at_zero(self, quantity: str, noise_f: float, noise_g: float) -> float:
        """ε(0⁺) at (Δ_f, Δ_g)."""
        base = self.zero_base[quantity]
        if not math.isfinite(base):
            return math.inf
        return base + noise_f * self.zero_slope_f[quantity] + noise_g * self.zero_slope_g[quantity]


def noise_response(
    params: ModelParams, lams: Sequence[float] | np.ndarray, quantities: Sequence[str] = ("eps_L2", "eps_H1")
) -> NoiseResponse:
    """ε₀, ε_f, ε_g of the affine noise law on the λ grid ``lams`` and at λ → 0⁺ (``params``' own λ and noise
    levels are ignored). Costs 3 continuation sweeps (2 when Δ_g does not enter training)."""
    for q in quantities:
        check_quantity(params, q)
    grid = np.sort(np.asarray([float(v) for v in lams], dtype=float))
    if grid.size == 0 or not np.all(np.isfinite(grid)) or grid[0] <= 0:
        raise UserError("the λ grid must hold finite values > 0.")
    clean = params.with_(noise_f=0.0, noise_g=0.0)
    settings = [("base", clean), ("f", clean.with_(noise_f=1.0))]
    if gradient_noise_enters(params):
        settings.append(("g", clean.with_(noise_g=1.0)))
    curves: dict[str, dict[str, Array]] = {}
    zeros: dict[str, dict[str, float]] = {}
    for name, point in settings:
        results = solve_path([point.with_(lam=float(v)) for v in grid[::-1]])[::-1]
        curves[name] = {q: np.array([_value(r, q) for r in results]) for q in quantities}
        try:
            zero = solve(point.with_(lam=0.0))
            zeros[name] = {q: _value(zero, q) for q in quantities}
        except SolverError:
            zeros[name] = {q: math.inf for q in quantities}
    base, zb = curves["base"], zeros["base"]
    slope_f = {q: curves["f"][q] - base[q] for q in quantities}
    zf = {q: zeros["f"][q] - zb[q] if math.isfinite(zb[q]) else math.nan for q in quantities}
    if "g" in curves:
        slope_g = {q: curves["g"][q] - base[q] for q in quantities}
        zg = {q: zeros["g"][q] - zb[q] if math.isfinite(zb[q]) else math.nan for q in quantities}
    else:
        slope_g = {q: np.zeros_like(base[q]) for q in quantities}
        zg = {q: 0.0 for q in quantities}
    return NoiseResponse(
        params=params,
        lams=grid,
        quantities=tuple(quantities),
        base=base,
        slope_f=slope_f,
        slope_g=slope_g,
        zero_base=zb,
        zero_slope_f=zf,
        zero_slope_g=zg,
    )


def minimise_on_grid(lams: Array, values: Array) -> tuple[float, float]:
    """(λ, ε) minimising a smooth error sampled on a log-spaced λ grid.

    The grid minimiser brackets the basin; a cubic spline of ε in log₁₀ λ (through the finite samples) is then
    minimised by bounded Brent between the neighbouring grid points. Returns (NaN, NaN) when no value is
    finite. Accurate to O(h⁴) in the grid step h; used for maps, where :func:`optimal_lambda` would cost
    ~50 solves per cell.
    """
    finite = np.isfinite(values)
    if not finite.any():
        return math.nan, math.nan
    x, y = np.log10(lams[finite]), values[finite]
    i = int(np.argmin(y))
    best_x, best = float(x[i]), float(y[i])
    if len(x) >= 4:
        spline = interpolate.CubicSpline(x, y)
        a, b = x[max(i - 1, 0)], x[min(i + 1, len(x) - 1)]
        if b > a:
            res = optimize.minimize_scalar(
                lambda t: float(spline(t)), bounds=(a, b), method="bounded", options={"xatol": 1e-4}
            )
            if res.fun < best:
                best_x, best = float(res.x), float(res.fun)
    return float(10.0**best_x), best


@dataclass(frozen=True)
class NoiseMap:
    """Optimal λ and benign region over a (Δ, p/d) grid for one noise study (``kind``) and one error.

    Arrays have shape (len(deltas), len(p_over_d)): ``eps_zero`` = ε(0⁺), ``lam_positive``/``eps_positive``
    = the best λ > 0 and its error, ``benign`` = ε(0⁺) ≤ ε_positive·(1 + rtol), ``lam_star`` = 0 where benign,
    else ``lam_positive``; ``eps_star`` = ε(λ*). ``background`` is the fixed level of the other noise.
    """

    kind: str
    quantity: str
    deltas: Array
    p_over_d: Array
    background: float
    eps_zero: Array
    lam_positive: Array
    eps_positive: Array
    benign: NDArray[np.bool_]
    at_upper_edge: NDArray[np.bool_] = field(repr=False, default_factory=lambda: np.zeros((0, 0), dtype=bool))

    @property
    def lam_star(self) -> Array:
        return np.where(self.benign, 0.0, self.lam_positive)

    @property
    def eps_star(self) -> Array:
        return np.where(self.benign, self.eps_zero, self.eps_positive)


def noise_maps(
    params: ModelParams,
    p_over_d: Sequence[float] | np.ndarray,
    deltas: Sequence[float] | np.ndarray,
    lams: Sequence[float] | np.ndarray,
    quantities: Sequence[str] = ("eps_L2", "eps_H1"),
    kinds: Sequence[str] = ("function", "gradient"),
    rtol: float = BENIGN_RTOL,
    progress: Callable[[int], None] | None = None,
) -> dict[tuple[str, str], NoiseMap]:
    """Noise maps over (Δ, p/d) at ``params``' n/d, σ, φ, k, τ, ϖ for each noise study and error.

    "function": Δ_f = Δ with Δ_g fixed at ``params.noise_g``; "gradient": Δ_g = Δ with Δ_f fixed at
    ``params.noise_f``. Each p/d column costs one :func:`noise_response` (3 λ sweeps); every (Δ, kind, error)
    cell then minimises its affine curve by :func:`minimise_on_grid`. The gradient study is skipped (absent
    from the result) when Δ_g does not enter training (τ = 0 or k = 0). Returns {(kind, quantity): NoiseMap}.
    """
    kinds = [k for k in kinds if k in NOISE_KINDS and (k != "gradient" or gradient_noise_enters(params))]
    ps = np.asarray([float(v) for v in p_over_d])
    ds = np.asarray([float(v) for v in deltas])
    grid = np.sort(np.asarray(lams, dtype=float))
    shape = (len(ds), len(ps))
    store = {
        (k, q): {name: np.full(shape, math.nan) for name in ("zero", "lam", "eps")} for k in kinds for q in quantities
    }
    for j, pd in enumerate(ps):
        response = noise_response(params.with_(p_over_d=float(pd)), grid, quantities)
        for kind in kinds:
            for q in quantities:
                cell = store[(kind, q)]
                for i, delta in enumerate(ds):
                    nf, ng = (delta, params.noise_g) if kind == "function" else (params.noise_f, delta)
                    lam, eps = minimise_on_grid(grid, response.curve(q, nf, ng))
                    cell["zero"][i, j] = response.at_zero(q, nf, ng)
                    cell["lam"][i, j], cell["eps"][i, j] = lam, eps
        if progress is not None:
            progress(1)
    out = {}
    for (kind, q), cell in store.items():
        benign = np.array(
            [[_benign(z, e, rtol) for z, e in zip(rz, re)] for rz, re in zip(cell["zero"], cell["eps"])], dtype=bool
        ).reshape(shape)
        upper = cell["lam"] >= grid[-1] * (1 - 1e-6)
        out[(kind, q)] = NoiseMap(
            kind=kind,
            quantity=q,
            deltas=ds,
            p_over_d=ps,
            background=params.noise_g if kind == "function" else params.noise_f,
            eps_zero=cell["zero"],
            lam_positive=cell["lam"],
            eps_positive=cell["eps"],
            benign=benign,
            at_upper_edge=upper,
        )
    return out


@dataclass(frozen=True)
class LambdaCurve:
    """ε(λ) of one noise study at one noise level Δ, with its optima (one :class:`Optimum` per error)."""

    kind: str
    delta: float
    noise_f: float
    noise_g: float
    lams: Array
    values: dict[str, Array]
    zero: dict[str, float]
    optima: dict[str, Optimum]


def lambda_curves(
    params: ModelParams,
    levels: Sequence[float] | np.ndarray,
    lams: Sequence[float] | np.ndarray,
    quantities: Sequence[str] = ("eps_L2", "eps_H1"),
    kinds: Sequence[str] = ("function", "gradient"),
    xatol: float = 1e-3,
    progress: Callable[[int], None] | None = None,
) -> list[LambdaCurve]:
    """ε(λ) on the log-spaced grid ``lams`` (which is also the search bracket of λ*) at the noise levels
    ``levels`` for each noise study, all from one :func:`noise_response`, and the optimum of every curve and
    error: the affine curve is the scan of :func:`optimal_lambda`, refined by Brent with direct solves
    (:func:`refine_optimum`). The gradient study is skipped when Δ_g does not enter training. Levels are
    Δ_f (function study, Δ_g = ``params.noise_g``) or Δ_g (gradient study, Δ_f = ``params.noise_f``)."""
    kinds = [k for k in kinds if k in NOISE_KINDS and (k != "gradient" or gradient_noise_enters(params))]
    response = noise_response(params, lams, quantities)
    xs = np.log10(response.lams)
    out = []
    for kind in kinds:
        for delta in levels:
            nf, ng = (float(delta), params.noise_g) if kind == "function" else (params.noise_f, float(delta))
            point = params.with_(noise_f=nf, noise_g=ng)
            optima = {}
            for q in quantities:
                optima[q] = refine_optimum(
                    point, q, xs, response.curve(q, nf, ng), response.at_zero(q, nf, ng), xatol=xatol
                )
                if progress is not None:
                    progress(1)
            out.append(
                LambdaCurve(
                    kind=kind,
                    delta=float(delta),
                    noise_f=nf,
                    noise_g=ng,
                    lams=response.lams,
                    values={q: response.curve(q, nf, ng) for q in quantities},
                    zero={q: response.at_zero(q, nf, ng) for q in quantities},
                    optima=optima,
                )
            )
    return out


def largest_benign_delta(noise_map: NoiseMap) -> Array:
    """Per p/d column: the largest Δ of the grid below which every Δ is benign (NaN if Δ_min is not)."""
    out = np.full(len(noise_map.p_over_d), math.nan)
    order = np.argsort(noise_map.deltas)
    for j in range(len(noise_map.p_over_d)):
        column = noise_map.benign[order, j]
        if column[0]:
            stop = int(np.argmin(column)) if not column.all() else len(column)
            out[j] = noise_map.deltas[order][stop - 1]
    return out


# --------------------------------------------------------------------------------------------- the study

#: The two studies in output order, with their display names.
KIND_TITLES = {"function": "function-label noise", "gradient": "gradient-label noise"}
KIND_SYMBOL = {"function": "Δ_f", "gradient": "Δ_g"}
#: λ values of the simulation points on the λ curves (--quick: the middle one only).
SIM_LAMS = (1e-4, 0.3, 30.0)
#: The map's p/d axis, in units of the interpolation threshold (1 + k for τ > 0)·n/d.
MAP_P_RANGE = (0.1, 20.0)
#: The map's smallest positive Δ relative to --delta-max (log-spaced in between, plus a row Δ = 0).
MAP_DELTA_SPAN = 1e-3


@dataclass(frozen=True)
class Settings:
    """Resolved options of one run of the noise study (``sobolev-rf noise``)."""

    out: Path
    params: ModelParams
    user_lam: float | None
    quantity: str
    quantities: tuple[str, ...]
    levels: tuple[float, ...]
    delta_max: float
    grid: int
    lam_grid: Array  # λ grid of the maps (ascending)
    curve_lams: Array  # λ grid of the drawn curves
    bracket: tuple[float, float]
    xatol: float
    sim_d: int
    seeds: int
    sim_lams: tuple[float, ...]
    quick: bool
    command: str

    @property
    def threshold(self) -> float:
        """p/d of the interpolation threshold p = rn."""
        return self.params.training_rows * self.params.n_over_d

    def map_axes(self) -> tuple[Array, Array]:
        """(p/d values, Δ values) of the maps: p/d log-spaced over :data:`MAP_P_RANGE` × threshold, Δ = 0 plus
        ``grid − 1`` log-spaced values up to --delta-max."""
        ps = self.threshold * np.geomspace(*MAP_P_RANGE, self.grid)
        deltas = np.concatenate([[0.0], np.geomspace(self.delta_max * MAP_DELTA_SPAN, self.delta_max, self.grid - 1)])
        return ps, deltas


@dataclass
class Study:
    """Everything one run computes: the λ curves, the maps keyed by (noise kind, error), the simulation points
    (tag: (kind, Δ, λ))."""

    curves: list[LambdaCurve]
    maps: dict[tuple[str, str], NoiseMap]
    sims: list[SimPoint]


def study_point(params: ModelParams, kind: str, delta: float) -> ModelParams:
    """``params`` with the studied noise set to ``delta`` (the other noise keeps its value)."""
    return params.with_(noise_f=delta) if kind == "function" else params.with_(noise_g=delta)


def compute(settings: Settings) -> Study:
    """Simulations first (they fail fast on bad sizes), then the λ curves and the maps."""
    params = settings.params
    kinds = ["function"] + (["gradient"] if gradient_noise_enters(params) else [])
    sims = []
    if settings.sim_d:
        jobs = [
            SimJob((kind, delta, lam), study_point(params, kind, delta).with_(lam=lam), settings.sim_d, settings.seeds)
            for kind in kinds
            for delta in settings.levels
            for lam in settings.sim_lams
        ]
        sims = simulate_batch(jobs, settings.quantities)
    with Progress(len(kinds) * len(settings.levels) * len(settings.quantities), "theory: optimal λ") as bar:
        curves = lambda_curves(
            params, settings.levels, settings.curve_lams, settings.quantities, kinds, settings.xatol, bar.update
        )
    ps, deltas = settings.map_axes()
    with Progress(len(ps), "theory: noise maps") as bar:
        maps = noise_maps(params, ps, deltas, settings.lam_grid, settings.quantities, kinds, progress=bar.update)
    if not all(np.isfinite(m.eps_positive).any() for m in maps.values()):
        raise UserError("the asymptotic solver resolved no cell of a noise map; try other p/d, n/d or activations.")
    return Study(curves, maps, sims)
