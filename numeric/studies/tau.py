"""The optimal Sobolev weight τ*: where does a tuned gradient weight beat plain L2 (τ = 0) and τ = 1?

Symbols as in MODEL.md. The loss L(w) = (1/n) Σ_i [(y_i − f_w(x_i))² + τ Σ_l (ỹ_il − v_lᵀ∇f_w(x_i))²] + λ‖w‖²
is ridge regression with the k·n gradient rows and their labels scaled by √τ, so every τ ≥ 0 is a model
point and every error ε ∈ {eps_L2, eps_H1, eps_grad} is a function ε(τ) of the weight
(:func:`sobolev_rf.numeric.theory.solve.solve_grid`, τ an array). This module finds

    τ* = argmin_{τ ∈ [0, ∞]} ε(τ)

for many model points at once (:func:`optimal_tau_cells`) or for one (:func:`optimal_tau`), by a log-spaced
scan of τ over a bracket followed by a bounded optimisation on log₁₀ τ around the scan's minimiser
(vectorised golden-section search over the cells; bounded Brent, :func:`scipy.optimize.minimize_scalar`,
for one point). The two ends of [0, ∞] are evaluated, not clipped:

* **τ = 0** is its own system (no gradient rows), solved exactly.
* **τ → 0⁺** is reached continuously by eps_L2 and eps_grad (|ε(τ) − ε(0)| = O(τ)), but *not* by eps_H1:
  for every τ > 0 in the proportional limit the mean direction κ₀′ζ_l of the gradient rows is a spike
  that training fits at no cost, so the constant part of the projected gradient, ϖ_lμ₀′, is learned
  exactly, which at τ = 0 it is not. The limit is ε_H1(0⁺) = ε_H1(0) − J with the jump (κ₀′ ≠ 0)

      J = ϖ̄²(μ₀′ − κ₀′m)² + κ₀′²(q_s − m²),   ϖ̄² = ‖ϖ‖²/k,

  m and q_s the order parameters at τ = 0 (the mean and variance over V of κ₀′s_l − ϖ_lμ₀′,
  s_l = ζ_lᵀw; :func:`zero_plus_jump`). At finite d the crossover sits at τ ~ λ/(pκ₀′²), so τ = 0⁺ means
  "a small positive weight". ``status = "zero_plus"`` reports such an infimum that no τ > 0 attains.
* **τ → ∞** is estimated at τ = :data:`TAU_LARGE` (errors approach their limit like O(1/τ); the value at
  τ = TAU_LARGE/10 is kept as a trend check).

Status of each optimum (``STATUSES``): "zero" (L2 training, τ = 0, is optimal), "zero_plus" (the infimum
is approached as τ → 0⁺ and is below ε(0): only eps_H1), "interior" (a finite τ* > 0), "infinity" (ε keeps
decreasing as τ → ∞). An end wins when its value is within ``rtol`` of the best value found, preferring
zero, then infinity, then zero_plus, over an interior τ*. Gains are ε(ref)/ε(τ*) − 1 ≥ 0 against τ = 0
and τ = 1.

λ must be > 0: at λ → 0⁺ above the threshold p = (1 + k)n the minimum-norm interpolant satisfies the
same constraints for every τ > 0 (rescaling rows and labels does not change them), so ε does not depend
on τ > 0 at all there, and below it the limits τ → 0⁺ and λ → 0⁺ do not commute.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ...derive.errors import UserError
from ...derive.params import ModelParams
from ..progress import Progress
from ..quantities import ERRORS
from ..simulation.batch import SimJob, SimPoint, simulate_batch
from ..theory.coefficients import coefficients
from ..theory.solve import solve, solve_grid

Array = NDArray[np.float64]

#: Errors whose optimal τ is computed.
QUANTITIES = ERRORS
#: Kinds of optimum (see the module docstring).
STATUSES = ("zero", "zero_plus", "interior", "infinity")
#: Default scan bracket of τ > 0 (log-spaced).
DEFAULT_BRACKET = (1e-4, 1e4)
#: The scan's points per decade of τ.
PER_DECADE = 4
#: τ at which the large-τ limit is evaluated (and TAU_LARGE/10 for its trend).
TAU_LARGE = 1e8
#: Decades below the bracket that the refinement may explore when the scan's minimum is at its lower end.
LOWER_EXTENSION = 4.0
#: Relative tie tolerance: an end (τ = 0, 0⁺, ∞) wins when within this fraction of the best value (gains below
#: 0.01 % count as ties).
TIE_RTOL = 1e-4
#: Default tolerance of the refinement in x = log₁₀ τ.
XATOL = 1e-4
_GOLDEN = (math.sqrt(5.0) - 1.0) / 2.0


def check_point(params: ModelParams) -> None:
    """Refuse model points for which τ* is not a question: k = 0 (no gradient term) or λ = 0."""
    if params.k < 1:
        raise UserError("the optimal Sobolev weight needs k >= 1 gradient directions (with k = 0 τ has no effect).")
    if params.lam <= 0:
        raise UserError(
            "the optimal Sobolev weight needs λ > 0: at λ → 0⁺ the interpolant above p = (1 + k)n is the "
            "same for every τ > 0, and below it the limits τ → 0⁺ and λ → 0⁺ do not commute; give --lam > 0."
        )


def check_bracket(bracket: Sequence[float]) -> tuple[float, float]:
    """``bracket`` as (lo, hi) with 0 < lo < hi <= TAU_LARGE/10, else :class:`UserError`."""
    try:
        lo, hi = (float(b) for b in bracket)
    except (TypeError, ValueError):
        raise UserError(f"the τ bracket must be two numbers 0 < lo < hi, got {bracket!r}.") from None
    if not (math.isfinite(lo) and math.isfinite(hi) and 0 < lo < hi <= TAU_LARGE / 10):
        raise UserError(f"the τ bracket must satisfy 0 < lo < hi <= {TAU_LARGE / 10:g}, got ({lo:g}, {hi:g}).")
    return lo, hi


def _broadcast_cells(k: int, cells: Mapping[str, Any]) -> tuple[dict[str, Any], tuple[int, ...]]:
    """The numeric entries of ``cells`` broadcast to one shape and flattened; returns (flat mapping, shape)."""
    numeric = ("p_over_d", "n_over_d", "lam", "noise_f", "noise_g")
    alignment = cells.get("alignment")
    align = [1.0] * k if alignment is None else list(alignment)
    if len(align) != k:
        raise UserError(f"alignment needs k = {k} entries, got {len(align)}.")
    arrays = [np.asarray(cells.get(name, getattr(ModelParams(), name)), dtype=float) for name in numeric]
    arrays += [np.asarray(a, dtype=float) for a in align]
    shape = np.broadcast_shapes(*[a.shape for a in arrays])
    flat = [np.broadcast_to(a, shape).ravel().copy() for a in arrays]
    out: dict[str, Any] = dict(zip(numeric, flat[: len(numeric)]))
    out["alignment"] = flat[len(numeric) :]
    out["activation"] = str(cells.get("activation", "relu"))
    out["teacher"] = str(cells.get("teacher", "tanh"))
    lam = out["lam"]
    if np.any(~np.isfinite(lam)) or np.any(lam <= 0):
        raise UserError(
            "the optimal Sobolev weight needs λ > 0 in every cell (λ → 0⁺ makes ε independent of τ > 0 "
            "above p = (1 + k)n)."
        )
    return out, shape


def zero_plus_jump(k: int, cells: Mapping[str, Any], m: Array, q_s: Array) -> Array:
    """J = ε_H1(0) − ε_H1(0⁺) from the τ = 0 order parameters m, q_s (module docstring); 0 when κ₀′ = 0.

    ``cells`` holds ``activation``, ``teacher`` and ``alignment`` (k arrays or scalars)."""
    k0p = coefficients(str(cells.get("activation", "relu")))[3]
    mu0p = coefficients(str(cells.get("teacher", "tanh")))[3]
    alignment = cells.get("alignment")
    align = [1.0] * k if alignment is None else list(alignment)
    varpi2 = sum(np.asarray(a, dtype=float) ** 2 for a in align) / k
    if abs(k0p) <= 1e-14:
        return np.zeros(np.broadcast(m, q_s, varpi2).shape)
    return varpi2 * (mu0p - k0p * m) ** 2 + k0p**2 * (q_s - m * m)


@dataclass
class TauOptima:
    """Optimal τ of every cell for every error (arrays of the cells' shape, keyed by error name).

    ``tau_star``: τ* (0.0 for "zero" and "zero_plus", inf for "infinity"); ``status``: one of
    :data:`STATUSES`; ``value``: ε(τ*) (ε(0⁺) resp. the τ = TAU_LARGE estimate at the ends);
    ``value_zero`` = ε(0), ``value_zero_plus`` = ε(0⁺), ``value_one`` = ε(1), ``value_infinity`` = ε(TAU_LARGE),
    ``value_large_trend`` = ε(TAU_LARGE/10); ``tau_best``/``value_best``: the best τ > 0 inside the searched
    range and its error (whatever the status). ``scan_taus`` and ``scan[q]`` (scan points × cells) hold the
    scan itself.
    """

    quantities: tuple[str, ...]
    shape: tuple[int, ...]
    tau_star: dict[str, Array]
    status: dict[str, NDArray[np.str_]]
    value: dict[str, Array]
    value_zero: dict[str, Array]
    value_zero_plus: dict[str, Array]
    value_one: dict[str, Array]
    value_infinity: dict[str, Array]
    value_large_trend: dict[str, Array]
    tau_best: dict[str, Array]
    value_best: dict[str, Array]
    scan_taus: Array
    scan: dict[str, Array] = field(repr=False, default_factory=dict)
    rtol: float = TIE_RTOL

    def gain(self, quantity: str, reference: str) -> Array:
        """ε(ref)/ε(τ*) − 1 for ``reference`` "zero" (τ = 0) or "one" (τ = 1); NaN where unresolved."""
        ref = self.value_zero[quantity] if reference == "zero" else self.value_one[quantity]
        with np.errstate(invalid="ignore", divide="ignore"):
            return ref / self.value[quantity] - 1.0


def classify(
    value_zero: Array, value_zero_plus: Array, value_best: Array, value_infinity: Array, rtol: float = TIE_RTOL
) -> tuple[NDArray[np.str_], Array]:
    """(status, value) per cell from the four candidates ε(0), ε(0⁺), the best finite τ > 0 and ε(∞).

    An end wins when its value is within a factor (1 + rtol) of the smallest candidate, in the order
    zero, infinity, zero_plus; otherwise the optimum is interior. NaN candidates never win; cells with no
    finite candidate get status "" and value NaN."""
    cands = np.stack(
        [
            np.asarray(value_zero, float),
            np.asarray(value_infinity, float),
            np.asarray(value_zero_plus, float),
            np.asarray(value_best, float),
        ]
    )
    shape = cands.shape[1:]
    finite = np.isfinite(cands)
    best = np.where(finite, cands, np.inf).min(axis=0)
    status = np.full(shape, "", dtype="<U9")
    value = np.full(shape, np.nan)
    chosen = np.zeros(shape, dtype=bool)
    for name, cand in zip(("zero", "infinity", "zero_plus", "interior"), cands):
        win = ~chosen & np.isfinite(cand) & np.isfinite(best) & (cand <= best + rtol * np.abs(best))
        status[win], value[win] = name, cand[win]
        chosen |= win
    return status, value


def _evaluate(
    k: int,
    flat: Mapping[str, Any],
    taus: Array,
    quantities: Sequence[str],
    backend: str,
    mask: NDArray[np.bool_] | None = None,
) -> dict[str, Array]:
    """ε at one τ per cell (``taus`` of the cells' length) for the cells in ``mask`` (NaN elsewhere)."""
    n = len(taus)
    idx = np.arange(n) if mask is None else np.flatnonzero(mask)
    out = {q: np.full(n, np.nan) for q in quantities}
    if not len(idx):
        return out
    sub = {
        name: (value[idx] if isinstance(value, np.ndarray) else value)
        for name, value in flat.items()
        if name != "alignment"
    }
    sub["alignment"] = [a[idx] for a in flat["alignment"]]
    result = solve_grid(k, taus[idx], sub, backend=backend, continuation=False)
    for q in quantities:
        values = np.where(result.converged, result.outputs[q], np.nan)
        out[q][idx] = values
    return out


def golden_minimise(
    func: Callable[[Array, NDArray[np.bool_]], Array], lo: Array, hi: Array, xatol: float = XATOL
) -> tuple[Array, Array]:
    """Vectorised golden-section search: per cell the minimiser of ``func`` on [lo, hi] (bounded).

    ``func(x, active)`` returns values at x (NaN = not solvable, treated as +∞) for the active cells. Every
    cell shrinks its bracket by the golden ratio per round until hi − lo <= ``xatol``. Returns (x, value) of
    the best point evaluated (NaN where no evaluation was finite)."""
    lo, hi = np.array(lo, dtype=float), np.array(hi, dtype=float)
    n = len(lo)
    best_x, best_v = np.full(n, np.nan), np.full(n, np.inf)

    def call(x: Array, active: NDArray[np.bool_]) -> Array:
        v = np.asarray(func(x, active), dtype=float)
        v = np.where(np.isfinite(v), v, np.inf)
        better = active & (v < best_v)
        best_x[better], best_v[better] = x[better], v[better]
        return v

    everyone = np.ones(n, dtype=bool)
    c = hi - _GOLDEN * (hi - lo)
    d = lo + _GOLDEN * (hi - lo)
    fc, fd = call(c, everyone), call(d, everyone)
    active = (hi - lo) > xatol
    while active.any():
        left = fc < fd  # the minimum lies in [lo, d]
        new_hi = np.where(left, d, hi)
        new_lo = np.where(left, lo, c)
        lo, hi = np.where(active, new_lo, lo), np.where(active, new_hi, hi)
        x_new = np.where(left, lo + (1 - _GOLDEN) * (hi - lo), lo + _GOLDEN * (hi - lo))
        f_new = call(x_new, active)
        c_next = np.where(left, x_new, d)
        fc_next = np.where(left, f_new, fd)
        d_next = np.where(left, c, x_new)
        fd_next = np.where(left, fc, f_new)
        c, fc = np.where(active, c_next, c), np.where(active, fc_next, fc)
        d, fd = np.where(active, d_next, d), np.where(active, fd_next, fd)
        active = active & ((hi - lo) > xatol)
    return best_x, np.where(np.isfinite(best_v), best_v, np.nan)


def expected_work(
    cells: int,
    bracket: Sequence[float] = DEFAULT_BRACKET,
    per_decade: int = PER_DECADE,
    xatol: float = XATOL,
    quantities: int = len(QUANTITIES),
) -> int:
    """An upper estimate of the model points :func:`optimal_tau_cells` solves for ``cells`` cells (the total
    of its ``progress`` calls): the scan plus, per error, the longest golden-section search."""
    xs = _scan_nodes(check_bracket(bracket), per_decade)
    step = float(xs[1] - xs[0])
    width = max(2 * step, LOWER_EXTENSION + step, math.log10(TAU_LARGE) - xs[-1] + step)
    rounds = math.ceil(math.log(width / xatol) / math.log(1 / _GOLDEN)) if width > xatol else 0
    return int(cells) * (len(xs) + 4 + quantities * (2 + rounds))


def _scan_nodes(bracket: tuple[float, float], per_decade: int) -> Array:
    lo, hi = bracket
    count = max(3, int(round(math.log10(hi / lo) * per_decade)) + 1)
    return np.linspace(math.log10(lo), math.log10(hi), count)


def optimal_tau_cells(
    k: int,
    cells: Mapping[str, Any],
    quantities: Sequence[str] = QUANTITIES,
    bracket: Sequence[float] = DEFAULT_BRACKET,
    per_decade: int = PER_DECADE,
    xatol: float = XATOL,
    rtol: float = TIE_RTOL,
    backend: str = "auto",
    progress: Callable[[int], None] | None = None,
) -> TauOptima:
    """τ* of every cell of the broadcast parameter arrays ``cells`` (``activation``, ``teacher``, ``p_over_d``,
    ``n_over_d``, ``lam`` > 0, ``noise_f``, ``noise_g``, ``alignment``; see
    :func:`~sobolev_rf.numeric.theory.solve.parameter_columns`) for each error in ``quantities``.

    1. Scan: ε at ``per_decade`` log-spaced τ per decade of ``bracket``, at τ = 0, 1, TAU_LARGE/10 and
       TAU_LARGE, in one :func:`solve_grid` call (continuation along τ); ε(0⁺) from ε(0) and the jump
       :func:`zero_plus_jump` (eps_H1 only).
    2. Refine: a vectorised golden-section search on x = log₁₀ τ between the scan neighbours of each cell's
       scan minimiser (below the bracket down to LOWER_EXTENSION more decades, above it up to TAU_LARGE
       when the minimiser is at an end), to ``xatol``.
    3. Classify with :func:`classify`.

    ``progress(m)`` is called with the number of model points solved after every solver call (the scan is
    one call, each refinement round another). Raises :class:`UserError` for bad quantities, bracket, k < 1 or
    λ <= 0 anywhere.
    """
    if k < 1:
        raise UserError("the optimal Sobolev weight needs k >= 1 gradient directions.")
    for q in quantities:
        if q not in QUANTITIES:
            raise UserError(f"quantity must be one of {', '.join(QUANTITIES)}, got {q!r}.")
    if per_decade < 1:
        raise UserError(f"per_decade must be >= 1, got {per_decade}.")
    lo, hi = check_bracket(bracket)
    flat, shape = _broadcast_cells(k, cells)
    n = len(flat["lam"])
    xs = _scan_nodes((lo, hi), per_decade)
    specials = np.array([0.0, 1.0, TAU_LARGE / 10, TAU_LARGE])
    taus = np.concatenate([10.0**xs, specials])
    grid_params = {
        name: (value[None, :] if isinstance(value, np.ndarray) else value)
        for name, value in flat.items()
        if name != "alignment"
    }
    grid_params["alignment"] = [a[None, :] for a in flat["alignment"]]
    scan = solve_grid(k, taus[:, None], grid_params, backend=backend, progress=None)
    if progress is not None:
        progress(len(taus) * n)
    values = {
        q: np.where(scan.converged, np.broadcast_to(scan.outputs[q], (len(taus), n)), np.nan)
        for q in set(quantities) | {"m", "q_s"}
    }
    m_s = len(xs)
    zero = {q: values[q][m_s] for q in quantities}
    one = {q: values[q][m_s + 1] for q in quantities}
    trend = {q: values[q][m_s + 2] for q in quantities}
    large = {q: values[q][m_s + 3] for q in quantities}
    jump = zero_plus_jump(k, flat, values["m"][m_s], values["q_s"][m_s])
    zero_plus = {q: zero[q] - jump if q == "eps_H1" else zero[q].copy() for q in quantities}
    nodes = np.concatenate([[xs[0] - LOWER_EXTENSION], xs, [math.log10(TAU_LARGE)]])
    out: dict[str, dict[str, Any]] = {name: {} for name in ("tau_star", "status", "value", "tau_best", "value_best")}
    for q in quantities:
        grid_q = values[q][:m_s]
        finite = np.isfinite(grid_q).any(axis=0)
        i = np.argmin(np.where(np.isfinite(grid_q), grid_q, np.inf), axis=0)  # scan minimiser per cell
        a, b = nodes[i], nodes[i + 2]  # its neighbours (nodes is the scan padded by one at each end)

        def func(x: Array, active: NDArray[np.bool_]) -> Array:
            result = _evaluate(k, flat, 10.0**x, (q,), backend, active & finite)[q]
            if progress is not None:
                progress(int(np.count_nonzero(active & finite)))
            return result

        bx, bv = golden_minimise(func, a, b, xatol)
        scan_best = np.where(finite, grid_q[i, np.arange(n)], np.nan)
        use_scan = ~(bv <= scan_best) & np.isfinite(scan_best)
        bx = np.where(use_scan, xs[i], bx)
        bv = np.where(use_scan, scan_best, bv)
        status, value = classify(zero[q], zero_plus[q], bv, large[q], rtol)
        tau_star = np.where(status == "interior", 10.0**bx, np.where(status == "infinity", np.inf, 0.0))
        tau_star = np.where(status == "", np.nan, tau_star)
        for name, arr in (
            ("tau_star", tau_star),
            ("status", status),
            ("value", value),
            ("tau_best", 10.0**bx),
            ("value_best", bv),
        ):
            out[name][q] = arr.reshape(shape)

    def shaped(d: dict[str, Array]) -> dict[str, Array]:
        return {q: v.reshape(shape) for q, v in d.items()}

    return TauOptima(
        quantities=tuple(quantities),
        shape=shape,
        tau_star=out["tau_star"],
        status=out["status"],
        value=out["value"],
        value_zero=shaped(zero),
        value_zero_plus=shaped(zero_plus),
        value_one=shaped(one),
        value_infinity=shaped(large),
        value_large_trend=shaped(trend),
        tau_best=out["tau_best"],
        value_best=out["value_best"],
        scan_taus=10.0**xs,
        scan={q: values[q][:m_s].reshape((m_s,) + shape) for q in quantities},
        rtol=rtol,
    )


@dataclass(frozen=True)
class TauOptimum:
    """The optimal τ of one model point and one error (see :class:`TauOptima` for the fields)."""

    quantity: str
    tau_star: float
    status: str
    value: float
    value_zero: float
    value_zero_plus: float
    value_one: float
    value_infinity: float
    tau_best: float
    value_best: float
    evaluations: int


def optimal_tau(
    params: ModelParams,
    quantity: str = "eps_L2",
    bracket: Sequence[float] = DEFAULT_BRACKET,
    per_decade: int = PER_DECADE,
    xatol: float = 1e-5,
    rtol: float = TIE_RTOL,
) -> TauOptimum:
    """τ* of one model point (``params.tau`` ignored) for one error: the scan of :func:`optimal_tau_cells`
    (τ = 0, 0⁺, 1, the bracket, ∞), then bounded Brent (:func:`scipy.optimize.minimize_scalar`) on
    x = log₁₀ τ between the scan neighbours of the minimiser, each evaluation a :func:`solve` of the point."""
    from scipy import optimize

    check_point(params)
    if quantity not in QUANTITIES:
        raise UserError(f"quantity must be one of {', '.join(QUANTITIES)}, got {quantity!r}.")
    lo, hi = check_bracket(bracket)
    xs = _scan_nodes((lo, hi), per_decade)
    cells = params.grid_mapping()
    specials = np.array([0.0, 1.0, TAU_LARGE])
    taus = np.concatenate([10.0**xs, specials])
    scan = solve_grid(params.k, taus, cells)
    vals = np.where(scan.converged, scan.outputs[quantity], np.nan)
    m_s = len(xs)
    zero, one, large = (float(v) for v in vals[m_s:])
    jump = float(
        zero_plus_jump(params.k, cells, np.asarray(scan.outputs["m"][m_s]), np.asarray(scan.outputs["q_s"][m_s]))
    )
    zero_plus = zero - jump if quantity == "eps_H1" else zero
    grid_q = vals[:m_s]
    evaluations = len(taus)
    if not np.isfinite(grid_q).any():
        bx, bv = math.nan, math.nan
    else:
        i = int(np.nanargmin(grid_q))
        nodes = np.concatenate([[xs[0] - LOWER_EXTENSION], xs, [math.log10(TAU_LARGE)]])

        def objective(x: float) -> float:
            nonlocal evaluations
            evaluations += 1
            try:
                value = getattr(solve(params.with_(tau=float(10.0**x))), quantity)
            except UserError:
                return math.inf
            return float(value) if value is not None and math.isfinite(value) else math.inf

        res = optimize.minimize_scalar(
            objective, bounds=(nodes[i], nodes[i + 2]), method="bounded", options={"xatol": xatol}
        )
        bx, bv = (float(res.x), float(res.fun)) if res.fun <= grid_q[i] else (float(xs[i]), float(grid_q[i]))
    status, value = classify(np.array(zero), np.array(zero_plus), np.array(bv), np.array(large), rtol)
    st = str(status)
    tau_star = 10.0**bx if st == "interior" else (math.inf if st == "infinity" else (0.0 if st else math.nan))
    return TauOptimum(
        quantity=quantity,
        tau_star=tau_star,
        status=st,
        value=float(value),
        value_zero=zero,
        value_zero_plus=zero_plus,
        value_one=one,
        value_infinity=large,
        tau_best=10.0**bx,
        value_best=bv,
        evaluations=evaluations,
    )


def tau_curve(
    params: ModelParams, taus: Sequence[float] | np.ndarray, quantities: Sequence[str] = QUANTITIES
) -> dict[str, Array]:
    """ε(τ) at ``params`` (its τ ignored) for every τ of ``taus`` (NaN where unresolved)."""
    check_point(params)
    grid = np.asarray([float(t) for t in taus], dtype=float)
    if np.any(~np.isfinite(grid)) or np.any(grid < 0):
        raise UserError("τ values must be finite and >= 0.")
    result = solve_grid(params.k, grid, params.grid_mapping())
    return {q: np.where(result.converged, result.outputs[q], np.nan) for q in quantities}


def status_text(status: str, tau_star: float) -> str:
    """A short text for an optimum: "0 (L2)", "0⁺", "∞" or the number."""
    if status == "zero":
        return "0 (L2)"
    if status == "zero_plus":
        return "0⁺"
    if status == "infinity":
        return "∞"
    if status == "interior":
        return f"{tau_star:.3g}"
    return "n/a"


# --------------------------------------------------------------------------------------------- the study


#: τ values of the simulation points (--quick: 0 and 1 only).
SIM_TAUS = (0.0, 0.1, 0.3, 1.0, 3.0, 10.0)
#: The maps' axes (log-spaced).
MAP_P_RANGE = (0.1, 10.0)
MAP_N_RANGE = (0.1, 5.0)
#: The drawn τ range of the curves.
CURVE_RANGE = (1e-3, 1e3)
#: A cell counts as "tuned beats both" when both gains exceed this fraction.
CLEAR_GAIN = 0.01


@dataclass(frozen=True)
class Settings:
    """Resolved options of one run of the τ study (``sobolev-rf tau``)."""

    out: Path
    params: ModelParams
    user_tau: float | None
    grid: int
    curve_taus: Array
    per_decade: int
    xatol: float
    deltas: Array
    sim_d: int
    seeds: int
    sim_taus: tuple[float, ...]
    quick: bool
    command: str
    quantities: tuple[str, ...] = QUANTITIES

    def map_axes(self) -> tuple[Array, Array]:
        """(p/d values, n/d values) of the maps, log-spaced over :data:`MAP_P_RANGE` and :data:`MAP_N_RANGE`."""
        return np.geomspace(*MAP_P_RANGE, self.grid), np.geomspace(*MAP_N_RANGE, self.grid)


@dataclass
class Study:
    """Everything one run computes: the curves ε(τ), the optima at the model point, over the maps and over Δ
    (``noise["gradient"]``, ``noise["function"]``), and the simulation points (tag: τ)."""

    curve: dict[str, Array]
    point: TauOptima
    maps: TauOptima
    p_over_d: Array
    n_over_d: Array
    noise: dict[str, TauOptima]
    sims: list[SimPoint]


def compute(settings: Settings) -> Study:
    """Simulations first (they fail fast on bad sizes), then the theory under one progress bar."""
    params = settings.params
    sims = []
    if settings.sim_d:
        jobs = [SimJob(tau, params.with_(tau=tau), settings.sim_d, settings.seeds) for tau in settings.sim_taus]
        sims = simulate_batch(jobs, settings.quantities)
    ps, ns = settings.map_axes()
    point = params.grid_mapping()
    grids = {
        "point": point,
        "maps": dict(point, p_over_d=ps[None, :], n_over_d=ns[:, None]),
        "gradient": dict(point, noise_g=settings.deltas),
        "function": dict(point, noise_f=settings.deltas),
    }
    sizes = {"point": 1, "maps": len(ps) * len(ns), "gradient": len(settings.deltas), "function": len(settings.deltas)}
    total = sum(expected_work(n, per_decade=settings.per_decade, xatol=settings.xatol) for n in sizes.values())
    total += len(settings.curve_taus)
    results = {}
    with Progress(total, "theory: optimal τ") as bar:
        for name, cells in grids.items():
            results[name] = optimal_tau_cells(
                params.k,
                cells,
                per_decade=settings.per_decade,
                xatol=settings.xatol,
                progress=lambda m: bar.update(min(m, max(total - bar.count, 0))),
            )
        curve = tau_curve(params, settings.curve_taus)
        bar.update(max(total - bar.count, 0))
    if not all(np.isfinite(results["maps"].value[q]).any() for q in settings.quantities):
        raise UserError("the asymptotic solver resolved no cell of the τ maps; try other activations or λ.")
    return Study(
        curve=curve,
        point=results["point"],
        maps=results["maps"],
        p_over_d=ps,
        n_over_d=ns,
        noise={"gradient": results["gradient"], "function": results["function"]},
        sims=sims,
    )
