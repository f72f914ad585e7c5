"""Is Sobolev training worth its cost? Sobolev and L2 training compared at an equal evaluation budget.

Symbols follow MODEL.md. One function value y_i = φ(ω_i) costs one evaluation; one gradient projection
ỹ_il = v_lᵀ∇φ(x_i) costs c evaluations (c = 1 for a forward finite difference, c ≈ 2–4 for reverse-mode
differentiation). The two trainings compared, at the same σ, φ, p/d, λ, Δ_f, Δ_g and ϖ, are

    Sobolev (τ = 1):  n samples, k projections each        budget  B = n(1 + ck)
    L2      (τ = 0):  n′ = n(1 + ck) samples, no gradients  budget  B = n′

so that the L2 run gets, in extra samples, exactly what the Sobolev run spends on gradients. For a reported
quantity ε ∈ {eps_L2, eps_H1, eps_grad} (MODEL.md) write

    ε_S(p/d, n/d)     = ε[τ = 1, k, p/d, n/d]                (independent of c)
    ε_0(p/d, n/d; c)  = ε[τ = 0, p/d, (1 + ck)·n/d]
    ρ(c)              = log(ε_S / ε_0(c))                    (ρ < 0: Sobolev wins)
    g(c)              = −ρ(c) = log ε_0(c) − log ε_S         (g > 0: Sobolev wins)

ε_0 depends on c only through n′ = n(1 + ck): it follows the L2 learning curve in n′, which (for small λ) has
its double-descent peak at n′ = p, i.e. at c_peak = (p/n − 1)/k. The interpolation thresholds are
p = n(1 + ck) for the L2 run and p = (k + 1)n for the Sobolev run.

**Break-even cost.** c* = sup{c ∈ [0, c_max] : g(c) > 0}, the largest cost of one projection at which
Sobolev training still wins. It is found by scanning g on a grid of c (0, a geometric grid on
[10⁻³, c_max] and c_peak), bracketing the last sign change and solving g(c) = 0 on the bracket, where
ε_S = ε_0(c*): :func:`break_even_cost` with :func:`scipy.optimize.brentq` on the point solver
:func:`~sobolev_rf.numeric.theory.solve.solve`; :func:`cost_grid` by vectorised regula falsi (Illinois) on the generated
grid solver :func:`~sobolev_rf.numeric.theory.solve.solve_grid` (the point solver where the grid solver does not
converge). Each c* carries a status, because c* = ∞ and c* = 0 both occur:

* ``crossing``: Sobolev wins for every scanned c < c* and loses above it;
* ``window``: Sobolev wins just below c* but loses at some smaller c (the win set is not an interval
  [0, c*); typically the L2 run is near its own peak n(1 + ck) = p);
* ``never``: c* = 0, L2 training wins at every scanned c, even at c = 0 (gradients for free);
* ``capped``: Sobolev still wins at c_max; c* ≥ c_max is reported as c_max.

For τ = 0 the error eps_H1 along the k directions v_l is not self-averaging over V (the L2 fit never sees
V); it is reported, as by :func:`~sobolev_rf.numeric.theory.solve.solve`, as its expectation over V at fixed
ϖ. The Sobolev eps_H1 is self-averaging.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy import optimize

from ...derive.errors import UserError
from ...derive.params import ModelParams
from ..progress import Progress
from ..quantities import ERRORS
from ..simulation.batch import SimJob, SimPoint, simulate_batch

#: Quantities compared (MODEL.md names).
QUANTITIES = ERRORS
#: Largest cost of one projection considered; c* at or beyond it is reported as this value, status "capped".
C_MAX = 100.0
#: Smallest positive c of the scan grid (below it the grid holds only c = 0).
C_MIN = 1e-3
#: Geometric scan points on [C_MIN, c_max].
SCAN_POINTS = 96
#: Statuses of a break-even cost (module docstring).
STATUSES = ("crossing", "window", "never", "capped")
#: Note written into every CSV and figure of the cost command.
H1_NOTE = "for L2 training (τ = 0) eps_H1 is not self-averaging over V; the value is its expectation over V at fixed ϖ"
#: Steps of the vectorised (Illinois) break-even refinement before the point solver takes over.
REFINE_STEPS = 30


def l2_samples(n_over_d: Any, k: int, c: Any) -> Any:
    """n′/d = (1 + ck)·n/d: the L2 sample ratio with the budget of Sobolev training on n/d."""
    return np.asarray(n_over_d, dtype=float) * (1.0 + np.asarray(c, dtype=float) * k)


def equal_budget(params: ModelParams, c: float) -> tuple[ModelParams, ModelParams]:
    """(Sobolev point τ = 1 with n samples, L2 point τ = 0 with n(1 + ck) samples) of ``params`` at cost c."""
    check_params(params)
    c = check_cost(c)
    sob = params.with_(tau=1)
    return sob, params.with_(tau=0, n_over_d=float(l2_samples(params.n_over_d, params.k, c)))


def check_params(params: ModelParams) -> None:
    """The comparison needs at least one projection."""
    if params.k < 1:
        raise UserError(f"the cost comparison needs k >= 1 gradient projections, got k = {params.k}; pass --k 1.")


def check_cost(c: Any, name: str = "c") -> float:
    """A cost of one projection: a finite number >= 0."""
    try:
        value = float(c)
    except (TypeError, ValueError):
        raise UserError(f"{name} must be a number >= 0, got {c!r}.") from None
    if not math.isfinite(value) or value < 0:
        raise UserError(f"{name} must be a finite number >= 0, got {c!r}.")
    return value


def _check_quantity(quantity: str) -> None:
    if quantity not in QUANTITIES:
        raise UserError(f"quantity must be one of {', '.join(QUANTITIES)}, got {quantity!r}.")


# ---------------------------------------------------------------------------------------------------------------
# Evaluation of the errors: generated grid solver (λ > 0) with the point solver as fallback


def _point_values(params: ModelParams) -> dict[str, float]:
    """The quantities at one point by the point solver; NaN where it fails."""
    from ..theory.solve import solve

    try:
        result = solve(params)
    except UserError:
        return {q: math.nan for q in QUANTITIES}
    return {q: float(getattr(result, q)) for q in QUANTITIES}


#: Largest number of unconverged grid points re-solved one by one with the point solver.
MAX_FALLBACK = 400


def evaluate(
    base: ModelParams, tau: int, p_over_d: Any, n_over_d: Any, backend: str = "auto"
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """The quantities of τ-training at the broadcast arrays (p/d, n/d), other parameters from ``base``.

    Uses :func:`~sobolev_rf.numeric.theory.solve.solve_grid` (needs λ > 0); points it does not resolve are solved
    by :func:`~sobolev_rf.numeric.theory.solve.solve` (at most :data:`MAX_FALLBACK`, NaN beyond). With λ = 0
    every point goes through the point solver. Returns (arrays per quantity, mask of resolved points).
    """
    p, n = np.broadcast_arrays(np.asarray(p_over_d, dtype=float), np.asarray(n_over_d, dtype=float))
    shape = p.shape
    out = {q: np.full(shape, np.nan) for q in QUANTITIES}
    ok = np.zeros(shape, dtype=bool)
    if base.lam > 0 and p.size:
        from ..theory.solve import solve_grid

        arrays = {
            "activation": base.activation,
            "teacher": base.teacher,
            "p_over_d": p,
            "n_over_d": n,
            "lam": base.lam,
            "noise_f": base.noise_f,
            "noise_g": base.noise_g,
            "alignment": base.alignment,
        }
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore", RuntimeWarning)
            result = solve_grid(base.k, tau, arrays, backend)
        ok = np.asarray(result.converged, dtype=bool).reshape(shape).copy()
        for q in QUANTITIES:
            v = np.asarray(result.outputs[q], dtype=float).reshape(shape)
            ok &= np.isfinite(v) & (v > 0)
            out[q] = v
        for q in QUANTITIES:
            out[q] = np.where(ok, out[q], np.nan)
    todo = np.argwhere(~ok)
    limit = len(todo) if base.lam == 0 else MAX_FALLBACK
    for index in map(tuple, todo[:limit]):
        values = _point_values(base.with_(tau=tau, p_over_d=float(p[index]), n_over_d=float(n[index])))
        if all(math.isfinite(values[q]) and values[q] > 0 for q in QUANTITIES):
            ok[index] = True
            for q in QUANTITIES:
                out[q][index] = values[q]
    return out, ok


# ---------------------------------------------------------------------------------------------------------------
# Break-even cost of one point (brentq on the point solver)


@dataclass(frozen=True)
class BreakEven:
    """Break-even cost c* of one point and one quantity (module docstring: statuses)."""

    quantity: str
    c_star: float
    status: str
    c_max: float
    #: ε_S: the quantity of Sobolev training (τ = 1, n samples, k projections)
    eps_sobolev: float
    #: ε_0(c*): the quantity of L2 training with n(1 + c*k) samples (equals ε_S for a crossing)
    eps_l2_at_c_star: float
    #: ε_0(0): L2 training with the same n samples and no gradients
    eps_l2_at_zero: float
    #: the scanned costs and g(c) = log ε_0(c) − log ε_S (g > 0: Sobolev wins)
    scan_c: np.ndarray = field(repr=False, default_factory=lambda: np.zeros(0))
    scan_g: np.ndarray = field(repr=False, default_factory=lambda: np.zeros(0))

    def text(self) -> str:
        """``0.53``, ``≥100 (capped)``, ``0 (never)``, ``1.7 (window)``."""
        if self.status == "capped":
            return f"≥{self.c_max:g} (capped)"
        if self.status == "never":
            return "0 (never)"
        return f"{self.c_star:.4g}" + (" (window)" if self.status == "window" else "")


def scan_costs(p_over_d: Any, n_over_d: Any, k: int, c_max: float = C_MAX, points: int = SCAN_POINTS) -> np.ndarray:
    """The scan grid of c for each point, shape (points + 2, *broadcast shape), sorted along axis 0:
    0, a geometric grid on [:data:`C_MIN`, c_max] and the L2 peak c_peak = (p/n − 1)/k (clipped into range)."""
    p, n = np.broadcast_arrays(np.asarray(p_over_d, dtype=float), np.asarray(n_over_d, dtype=float))
    grid = np.concatenate([[0.0], np.geomspace(min(C_MIN, c_max), c_max, points)])
    peak = np.clip((p / n - 1.0) / k, 0.0, c_max)
    scan = np.concatenate(
        [np.broadcast_to(grid.reshape((-1,) + (1,) * p.ndim), (len(grid),) + p.shape), peak[None]], axis=0
    )
    return np.sort(scan, axis=0)


def _classify(
    g: np.ndarray, scan: np.ndarray, c_max: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """From g on the scan grid (axis 0): (status, c* where decided, bracket low, bracket high, g(low), g(high)).

    NaN entries of g (unresolved points) are skipped. c* is c_max for "capped", 0 for "never" and NaN (to be
    refined inside [low, high], where g(low) > 0 >= g(high)) for "crossing"/"window"; "nan" where no scanned
    point was resolved.
    """
    shape = g.shape[1:]
    status = np.full(shape, "never", dtype="<U8")
    c_star = np.zeros(shape)
    lo, hi, glo, ghi = (np.full(shape, np.nan) for _ in range(4))
    for index in np.ndindex(*shape):
        col = g[(slice(None),) + index]
        cs = scan[(slice(None),) + index]
        good = np.isfinite(col)
        if not good.any():
            status[index], c_star[index] = "nan", np.nan
            continue
        col, cs = col[good], cs[good]
        wins = col > 0
        if not wins.any():
            continue
        last = int(np.nonzero(wins)[0][-1])
        if last == len(col) - 1:
            status[index], c_star[index] = "capped", c_max
            continue
        status[index] = "window" if not wins[:last].all() else "crossing"
        c_star[index] = np.nan
        lo[index], hi[index], glo[index], ghi[index] = cs[last], cs[last + 1], col[last], col[last + 1]
    return status, c_star, lo, hi, glo, ghi


def break_even_cost(
    params: ModelParams, quantity: str = "eps_L2", c_max: float = C_MAX, points: int = SCAN_POINTS, rtol: float = 1e-11
) -> BreakEven:
    """Break-even cost c* of the point ``params`` (its τ is ignored) for ``quantity``.

    ε_S = ε[τ = 1] at (p/d, n/d); g(c) = log ε[τ = 0, n/d·(1 + ck)] − log ε_S is scanned on
    :func:`scan_costs` (generated grid solver when λ > 0, point solver otherwise) and the last sign change
    from g > 0 (Sobolev wins) to g ≤ 0 is solved by :func:`scipy.optimize.brentq` with the point solver
    :func:`~sobolev_rf.numeric.theory.solve.solve` at every evaluation.
    """
    from ..theory.solve import solve

    check_params(params)
    _check_quantity(quantity)
    c_max = check_cost(c_max, "c_max")
    if c_max <= 0:
        raise UserError(f"c_max must be > 0, got {c_max!r}.")
    sob = params.with_(tau=1)
    try:
        eps_s = float(getattr(solve(sob), quantity))
    except UserError as exc:
        raise UserError(
            f"Sobolev training at p/d = {params.p_over_d:g}, n/d = {params.n_over_d:g} could not be "
            f"solved ({exc}); move the point off the threshold p = (k+1)n or raise λ."
        ) from None
    scan = scan_costs(params.p_over_d, params.n_over_d, params.k, c_max, points)
    values, _ = evaluate(params, 0, params.p_over_d, l2_samples(params.n_over_d, params.k, scan))
    with np.errstate(all="ignore"):
        g = np.log(values[quantity]) - math.log(eps_s)
    status, c_star, lo, hi, _, _ = _classify(g, scan, c_max)
    st, cs = str(status[()]), float(c_star[()])
    if st == "nan":
        raise UserError(f"L2 training at p/d = {params.p_over_d:g} could not be solved at any scanned budget; raise λ.")

    def eps_l2(c: float) -> float:
        return float(
            getattr(solve(params.with_(tau=0, n_over_d=float(l2_samples(params.n_over_d, params.k, c)))), quantity)
        )

    if st in ("crossing", "window"):

        def gfun(c: float) -> float:
            return math.log(eps_l2(c)) - math.log(eps_s)

        cs = float(optimize.brentq(gfun, float(lo[()]), float(hi[()]), xtol=1e-14, rtol=rtol, maxiter=200))
    at_star = eps_l2(cs)
    return BreakEven(
        quantity=quantity,
        c_star=cs,
        status=st,
        c_max=c_max,
        eps_sobolev=eps_s,
        eps_l2_at_c_star=at_star,
        eps_l2_at_zero=float(np.exp(g[0]) * eps_s) if math.isfinite(g[0]) else eps_l2(0.0),
        scan_c=scan,
        scan_g=g,
    )


# ---------------------------------------------------------------------------------------------------------------
# Maps over (p/d, n/d)


@dataclass
class CostGrid:
    """Everything the cost command draws, over broadcast arrays of (p/d, n/d) (shape ``shape``).

    ``sobolev[q]``: ε_S; ``l2[c][q]``: ε_0(c); ``log_ratio[c][q]`` = log₁₀(ε_S/ε_0(c)) (< 0: Sobolev wins);
    ``c_star[q]``, ``status[q]``: break-even cost and its status (module docstring); NaN / "nan" where the
    solvers did not resolve the point.
    """

    p_over_d: np.ndarray
    n_over_d: np.ndarray
    k: int
    costs: tuple[float, ...]
    c_max: float
    sobolev: dict[str, np.ndarray]
    l2: dict[float, dict[str, np.ndarray]]
    log_ratio: dict[float, dict[str, np.ndarray]]
    c_star: dict[str, np.ndarray]
    status: dict[str, np.ndarray]
    resolved: np.ndarray

    def win_share(self, c: float, quantity: str) -> float:
        """Fraction of the resolved points where Sobolev training wins at cost c."""
        r = self.log_ratio[c][quantity]
        good = np.isfinite(r)
        return float(np.mean(r[good] < 0)) if good.any() else math.nan


def _refine(
    base: ModelParams,
    p: np.ndarray,
    n: np.ndarray,
    eps_s: np.ndarray,
    quantity_index: np.ndarray,
    lo: np.ndarray,
    hi: np.ndarray,
    glo: np.ndarray,
    ghi: np.ndarray,
    backend: str,
    steps: int = REFINE_STEPS,
    rtol: float = 1e-11,
) -> np.ndarray:
    """Solve g(c) = 0 on [lo, hi] (g(lo) > 0 >= g(hi)) for flat arrays of items at once: the Illinois variant of
    regula falsi, one grid-solver call per step for all unfinished items. An item whose step the grid solver
    cannot resolve, or that is unfinished after ``steps`` steps, is solved by brentq on the point solver."""
    from ..theory.solve import solve

    lo, hi, glo, ghi = lo.copy(), hi.copy(), glo.copy(), ghi.copy()
    side = np.zeros(len(p), dtype=int)  # +1: lo moved last, −1: hi moved last
    done = ghi == 0
    bad = np.zeros(len(p), dtype=bool)
    root = np.where(done, hi, np.nan)
    for _ in range(steps):
        act = np.nonzero(~done & ~bad)[0]
        if not len(act):
            break
        x = (lo[act] * ghi[act] - hi[act] * glo[act]) / (ghi[act] - glo[act])
        x = np.where(np.isfinite(x) & (x > lo[act]) & (x < hi[act]), x, 0.5 * (lo[act] + hi[act]))
        values, ok = evaluate(base, 0, p[act], l2_samples(n[act], base.k, x), backend)
        stack = np.stack([values[q] for q in QUANTITIES])
        with np.errstate(all="ignore"):
            gx = np.log(stack[quantity_index[act], np.arange(len(act))]) - np.log(eps_s[act])
        good = ok & np.isfinite(gx)
        bad[act[~good]] = True
        a, x, gx = act[good], x[good], gx[good]
        up = gx > 0
        # Illinois: halve the stale end's g when the same end moves twice in a row
        ghi[a[up & (side[a] == 1)]] *= 0.5
        glo[a[~up & (side[a] == -1)]] *= 0.5
        lo[a[up]], glo[a[up]], side[a[up]] = x[up], gx[up], 1
        hi[a[~up]], ghi[a[~up]], side[a[~up]] = x[~up], gx[~up], -1
        fin = (hi[a] - lo[a] <= rtol * hi[a]) | (gx == 0)
        root[a[fin]] = np.where(gx[fin] == 0, x[fin], hi[a[fin]])
        done[a[fin]] = True
    for i in np.nonzero(~done)[0]:
        q = QUANTITIES[quantity_index[i]]
        point = base.with_(p_over_d=float(p[i]), n_over_d=float(n[i]))

        def gfun(c: float, point: ModelParams = point, q: str = q, e: float = float(eps_s[i])) -> float:
            nn = float(l2_samples(point.n_over_d, point.k, c))
            return math.log(float(getattr(solve(point.with_(tau=0, n_over_d=nn)), q))) - math.log(e)

        try:
            root[i] = optimize.brentq(gfun, float(lo[i]), float(hi[i]), xtol=1e-14, rtol=rtol)
        except (UserError, ValueError):
            root[i] = np.nan
    return root


def cost_grid(
    base: ModelParams,
    p_over_d: Any,
    n_over_d: Any,
    costs: Sequence[float],
    c_max: float = C_MAX,
    points: int = SCAN_POINTS,
    backend: str = "auto",
    step: Callable[[str], None] | None = None,
) -> CostGrid:
    """ε_S, ε_0(c) for every c of ``costs``, log ratios and break-even costs over the broadcast (p/d, n/d).

    ``base`` supplies σ, φ, k, λ (> 0 for speed; λ = 0 falls back to the point solver), Δ_f, Δ_g and ϖ; its τ,
    p/d and n/d are ignored. ``step(label)`` is called after each stage (for a progress bar; 4 + len(costs)
    stages). Break-even costs: scan on :func:`scan_costs`, bracket, vectorised Illinois steps (:func:`_refine`).
    """
    check_params(base)
    costs = tuple(check_cost(c) for c in costs)
    c_max = check_cost(c_max, "c_max")
    if c_max <= 0:
        raise UserError(f"c_max must be > 0, got {c_max!r}.")
    tick = step or (lambda label: None)
    p, n = np.broadcast_arrays(np.asarray(p_over_d, dtype=float), np.asarray(n_over_d, dtype=float))
    p, n = np.array(p), np.array(n)
    sob, ok_s = evaluate(base, 1, p, n, backend)
    tick("Sobolev training")
    l2: dict[float, dict[str, np.ndarray]] = {}
    ratio: dict[float, dict[str, np.ndarray]] = {}
    for c in costs:
        values, _ = evaluate(base, 0, p, l2_samples(n, base.k, c), backend)
        l2[c] = values
        with np.errstate(all="ignore"):
            ratio[c] = {q: np.log10(sob[q] / values[q]) for q in QUANTITIES}
        tick(f"L2 training at c = {c:g}")
    scan = scan_costs(p, n, base.k, c_max, points)
    scanned, _ = evaluate(base, 0, np.broadcast_to(p, scan.shape), l2_samples(n, base.k, scan), backend)
    tick("scan of c")
    c_star: dict[str, np.ndarray] = {}
    status: dict[str, np.ndarray] = {}
    brackets = []
    for qi, q in enumerate(QUANTITIES):
        with np.errstate(all="ignore"):
            g = np.log(scanned[q]) - np.log(sob[q])[None]
        st, cs, lo, hi, glo, ghi = _classify(g, scan, c_max)
        st = np.where(ok_s, st, "nan")
        cs = np.where(ok_s, cs, np.nan)
        status[q], c_star[q] = st, cs
        todo = np.argwhere(np.isin(st, ("crossing", "window")))
        brackets.append((qi, todo, lo, hi, glo, ghi))
    tick("brackets")
    flat = [
        (qi, tuple(ix), lo[tuple(ix)], hi[tuple(ix)], glo[tuple(ix)], ghi[tuple(ix)])
        for qi, todo, lo, hi, glo, ghi in brackets
        for ix in todo
    ]
    if flat:
        qidx = np.array([f[0] for f in flat])
        idx = [f[1] for f in flat]
        c_lo, c_hi, g_lo, g_hi = (np.array([f[j] for f in flat]) for j in (2, 3, 4, 5))
        roots = _refine(
            base,
            np.array([p[i] for i in idx]),
            np.array([n[i] for i in idx]),
            np.array([sob[QUANTITIES[qi]][i] for qi, i in zip(qidx, idx)]),
            qidx,
            c_lo,
            c_hi,
            g_lo,
            g_hi,
            backend=backend,
        )
        for qi, i, r in zip(qidx, idx, roots):
            c_star[QUANTITIES[qi]][i] = r
    tick("break-even refinement")
    return CostGrid(
        p_over_d=p,
        n_over_d=n,
        k=base.k,
        costs=costs,
        c_max=c_max,
        sobolev=sob,
        l2=l2,
        log_ratio=ratio,
        c_star=c_star,
        status=status,
        resolved=ok_s,
    )


# --------------------------------------------------------------------------------------------- the study

#: Map range of p/d and n/d (extended to include the model point).
MAP_RANGE = (0.2, 5.0)
#: Most costs one run compares (one row of the cost map each).
MAX_COSTS = 4
#: Largest k (the generated system grows with k).
MAX_K = 6
#: Relative distance kept between a simulated p/d and an interpolation threshold.
THRESHOLD_GAP = 0.12


@dataclass(frozen=True)
class Settings:
    """Resolved options of one run of the cost study (``sobolev-rf cost``)."""

    base: ModelParams
    costs: tuple[float, ...]
    c_max: float
    out: Path
    grid: int
    points: int
    d: int
    seeds: int
    sim_points: int
    quick: bool
    command: str


@dataclass
class Study:
    """Everything one run computes: the map ``grid`` over (``ps``, ``ns``), the ``cut`` along p/d = ``xs`` at the
    model's n/d, the break-even costs of the printed points and the simulation points (tag: (training, c))."""

    grid: CostGrid
    ps: np.ndarray
    ns: np.ndarray
    cut: CostGrid
    xs: np.ndarray
    breakevens: list[tuple[float, dict[str, str]]]
    sims: list[SimPoint]


def _axis_range(value: float) -> tuple[float, float]:
    """:data:`MAP_RANGE` widened to hold ``value`` with a margin."""
    return min(MAP_RANGE[0], value / 1.5), max(MAP_RANGE[1], value * 1.5)


def _sim_targets(settings: Settings, lo: float, hi: float) -> list[float]:
    """Simulated p/d values along the cut, kept THRESHOLD_GAP (relative) away from every threshold."""
    if settings.sim_points == 0:
        return []
    base = settings.base
    n = base.n_over_d
    thresholds = [(base.k + 1) * n] + [n * (1 + c * base.k) for c in settings.costs]
    xs = np.geomspace(lo * 1.25, hi / 1.1, settings.sim_points) if settings.sim_points > 1 else np.array([lo * 3])
    out = []
    for x in xs:
        for _ in range(4):
            near = [t for t in thresholds if abs(math.log(x / t)) < THRESHOLD_GAP]
            if not near:
                break
            t = near[0]
            x = t * math.exp(-1.5 * THRESHOLD_GAP) if x < t else t * math.exp(1.5 * THRESHOLD_GAP)
        out.append(float(x))
    return out


def compute(settings: Settings) -> Study:
    """The map and the cut (grid solver), the break-even costs of the printed points (point solver), then both
    trainings simulated at the target p/d of the cut (Sobolev once, L2 once per c)."""
    base = settings.base
    p_lo, p_hi = _axis_range(base.p_over_d)
    nlo, nhi = _axis_range(base.n_over_d)
    ps = np.geomspace(p_lo, p_hi, settings.grid)
    ns = np.geomspace(nlo, nhi, settings.grid)
    P, N = np.meshgrid(ps, ns)
    n = base.n_over_d
    thresholds = [(base.k + 1) * n] + [n * (1 + c * base.k) for c in settings.costs]
    xs = np.union1d(np.geomspace(p_lo, p_hi, settings.points), [t for t in thresholds if p_lo < t < p_hi])
    with Progress(8 + 2 * len(settings.costs), "theory: cost maps") as bar:
        grid = cost_grid(base, P, N, settings.costs, settings.c_max, step=lambda label: bar.update())
        cut = cost_grid(base, xs, n, settings.costs, settings.c_max, step=lambda label: bar.update())
    if not grid.resolved.any():
        raise UserError("the solver resolved no point of the map; raise --lam.")
    targets = _sim_targets(settings, p_lo, p_hi)
    table_points = [base.p_over_d] + [t for t in targets if not math.isclose(t, base.p_over_d)]
    breakevens = []
    with Progress(len(table_points) * len(QUANTITIES), "break-even c* (point solver)") as bar:
        for p in table_points:
            values = {}
            for q in QUANTITIES:
                try:
                    values[q] = break_even_cost(base.with_(p_over_d=p), q, settings.c_max).text()
                except UserError:
                    values[q] = "n/a"
                bar.update()
            breakevens.append((p, values))
    jobs = []
    for x in targets:
        jobs.append(SimJob(("sobolev", None), base.with_(tau=1, p_over_d=x), settings.d, settings.seeds))
        for c in settings.costs:
            jobs.append(SimJob(("l2", c), equal_budget(base.with_(p_over_d=x), c)[1], settings.d, settings.seeds))
    return Study(grid, ps, ns, cut, xs, breakevens, simulate_batch(jobs, QUANTITIES))
