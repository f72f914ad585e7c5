"""The numerical fixed point of an operator-valued system (:class:`~sobolev_rf.derive.ovfp.OVSystem`).

:class:`FixedPoint` solves g = Φ(g) at many points at once, on an *evaluator* of Φ, of the output traces and
of the Jacobian: the generated NumPy kernel of the stored system (:class:`KernelEvaluator`, loaded from the
cache without SymPy; real or complex arithmetic; numerical expectations as sums over their stored rules), or,
for a derived system used directly (:meth:`FixedPoint.of`), SymPy's ``lambdify`` (:mod:`.ovfp_symbolic`).

* real parameters (:meth:`FixedPoint.solve`): damped fixed-point iteration in double precision from the
  perturbative branch g = 0 (scipy ``root`` as fallback), then Newton polishing (30-digit mpmath on the
  symbolic evaluator; double precision on a kernel, which estimates the quadrature error from its stored
  checks);
* complex parameters (:meth:`FixedPoint.continue_from_infinity`): the physical branch, continued from
  z → i∞ by vectorised damped Newton steps (:meth:`FixedPoint.newton`), all points at once; on a kernel
  with a C library (:mod:`sobolev_rf.codegen.complex_kernel`) every complex evaluation and each point's
  Newton solve run there (the same steps, without the cost of a NumPy call per step), and every real
  evaluation on its real twin (no SciPy import for erfcx or E₁).

SymPy is not imported here.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from ...derive.errors import UserError

if TYPE_CHECKING:
    from ...derive.ovfp import OVSystem


# ======================================================================================= special functions
#: e^x E_ν(x) of order ν > 1: the upward recursion where |x| < 2 (it loses |x|^ν/ν! in precision); the power
#: series about 0 in the sector π − |arg x| < √(2/|x|) around the negative axis (below |x| = 100), where the
#: terms (−x)^k/k! nearly share one phase (cancellation at most e); the continued fraction elsewhere, 80 levels,
#: or 300 within 1.5 of the negative axis's angle (below |x| = 100), where it converges slowly.
EXPINT_SMALL = 2.0
EXPINT_SERIES_MAX = 100.0
EXPINT_LEVELS = (80, 300)
EULER_GAMMA = 0.57721566490153286061


def _scaled_expint_asymptotic(nu: float, x: np.ndarray) -> np.ndarray:
    """e^x E_ν(x) ~ (1/x) Σ_k (−1)^k (ν)_k x^{−k} for |x| ≥ 60 (25 terms: relative error below 1e-15)."""
    term = np.ones_like(x)
    total = np.ones_like(x)
    for k in range(25):
        term = -term * (nu + k) / x
        total = total + term
    return total / x


def _scaled_expint_fraction(nu: float, x: np.ndarray, levels: int) -> np.ndarray:
    """e^x E_ν(x) = 1/(x + ν − 1·ν/(x + ν + 2 − 2(ν + 1)/(x + ν + 4 − …))), ``levels`` levels from the bottom
    (relative error below 1e-14 for |x| ≥ 2 outside the sector of :func:`_scaled_expint_series`, with the
    levels of :data:`EXPINT_LEVELS`)."""
    t = np.zeros_like(x)
    for m in range(levels, 0, -1):
        t = m * (nu + m - 1) / (x + nu + 2 * m - t)
    return 1.0 / (x + nu - t)


def _scaled_expint_series(nu: float, x: np.ndarray) -> np.ndarray:
    """e^x E_ν(x) by the power series about 0 (DLMF 8.19.10, and 8.19.8 for an integer order n):
    E_ν(x) = Γ(1 − ν) x^{ν−1} − Σ_k (−x)^k/(k!(1 − ν + k)), E_n(x) = (−x)^{n−1}/(n−1)! (ψ(n) − Log x) −
    Σ_{k≠n−1} (−x)^k/(k!(1 − n + k)); near the negative axis, where the terms do not cancel."""
    n = int(nu) if float(nu).is_integer() else 0
    term, total, below = np.ones_like(x), np.zeros_like(x), np.zeros_like(x)
    bound = max(float(np.max(np.abs(x), initial=0.0)), nu)
    k = 0
    while True:
        if k == n - 1:
            below = term
        else:
            add = term / (1 - nu + k)
            total = total + add
            if k > bound and np.all(np.abs(add) <= 1e-17 * np.abs(total)):
                break
        k += 1
        term = term * -x / k
    if n:
        psi = -EULER_GAMMA + sum(1.0 / j for j in range(1, n))
        return np.exp(x) * (below * (psi - np.log(x)) - total)
    return math.gamma(1 - nu) * np.exp(x + (nu - 1) * np.log(x)) - np.exp(x) * total


def scaled_expint(nu: Any, x: Any) -> Any:
    """e^x E_ν(x) for arrays (real or complex, principal branch), ν a positive half-integer (a number, or an
    array of one value: the order is a parameter of a sum of copies).

    ν = ½: √(π/x) erfcx(√x); ν = 1: e^x E₁(x) (SciPy's complex exp1); both with the asymptotic series for
    |x| ≥ 60. ν > 1: the upward recursion e^x E_{ν+1}(x) = (1 − x e^x E_ν(x))/ν where |x| < 2 (it loses
    |x|^ν/ν! in precision), the power series about 0 in the sector (π − |arg x|)²|x| < 2 around the negative
    axis (|x| < 100), the continued fraction elsewhere (:data:`EXPINT_LEVELS`). Relative error against
    mpmath below 1e-13 for ν = 3/2 … 24, at every argument (tests). Real x ≤ 0 gives nan (the solver must not
    go there); other ν fall back to mpmath element by element."""
    import scipy.special

    nus = np.unique(np.asarray(nu, dtype=float))
    if nus.size != 1:
        raise ValueError("scaled_expint takes one order at a time")
    nu = float(nus[0])
    x = np.asarray(x)
    real = not np.iscomplexobj(x)
    xc = x.astype(complex)
    two_nu = 2 * float(nu)
    if two_nu != round(two_nu) or nu <= 0 or nu > 200:
        import mpmath

        f = np.frompyfunc(lambda t: complex(mpmath.expint(float(nu), t) * mpmath.exp(t)), 1, 1)
        out = f(xc).astype(complex)
    else:
        size = np.abs(xc)
        big = size >= (60.0 if nu <= 1 else EXPINT_SMALL)
        small = np.where(big, 1.0, xc)
        with np.errstate(all="ignore"):
            if round(two_nu) % 2:  # half-integer: start at ν = 1/2
                r = np.sqrt(small)
                f = np.sqrt(np.pi) / r * scipy.special.erfcx(r)
                start = 0.5
            else:
                f = np.exp(small) * scipy.special.exp1(small)
                start = 1.0
            v = start
            while v < nu - 1e-12:
                f = (1 - small * f) / v
                v += 1
            out = np.array(np.broadcast_to(f, xc.shape), dtype=complex)
            if nu <= 1:
                out[big] = _scaled_expint_asymptotic(nu, xc[big])
            else:
                gap = np.pi - np.abs(np.angle(xc))
                near = big & (size < EXPINT_SERIES_MAX)
                series = near & (gap * gap * size < 2)
                slow = near & ~series & (gap < 1.5)
                out[series] = _scaled_expint_series(nu, xc[series])
                out[slow] = _scaled_expint_fraction(nu, xc[slow], EXPINT_LEVELS[1])
                rest = big & ~series & ~slow
                out[rest] = _scaled_expint_fraction(nu, xc[rest], EXPINT_LEVELS[0])
    if real:
        with np.errstate(invalid="ignore"):
            return np.where(x > 0, out.real, np.nan) if out.ndim else (float(out.real) if x > 0 else math.nan)
    return out if out.ndim else complex(out)


def difference_jacobian(
    F: Callable[[np.ndarray, Sequence[np.ndarray]], np.ndarray], x: np.ndarray, params: Sequence[np.ndarray]
) -> np.ndarray:
    """∂F_i/∂x_j (n × n × P) at P points by forward differences with relative steps, all n columns in one
    evaluation of n·P points (unknowns near a pole are tiny or huge, hence relative steps)."""
    n, size = x.shape
    f = F(x, params)
    h = 1e-7 * np.maximum(np.abs(x), 1e-4)
    xp = np.repeat(x[:, None, :], n, axis=1)  # (unknown, column, point)
    xp[np.arange(n), np.arange(n), :] += h
    wide = [np.tile(p, n) for p in params]
    fp = F(xp.reshape(n, n * size), wide).reshape(n, n, size)
    return (fp - f[:, None, :]) / h[None, :, :]


class Evaluator(Protocol):
    """Φ, the output traces and the Jacobian of Φ(g) − g at P points (unknowns × P, one array per parameter)."""

    unknowns: tuple[str, ...]
    parameters: tuple[str, ...]
    output_names: tuple[str, ...]

    def phi(self, x: np.ndarray, params: Sequence[np.ndarray]) -> np.ndarray: ...

    def outputs(self, x: np.ndarray, params: Sequence[np.ndarray]) -> np.ndarray: ...

    def jacobian(self, x: np.ndarray, params: Sequence[np.ndarray]) -> np.ndarray: ...


class KernelEvaluator:
    """The generated NumPy module of a stored system (residual g − Φ(g), outputs, Jacobian), real or complex;
    ``names`` gives the real names of its unknowns and parameters (the module's are neutral, g0…, q0…)."""

    def __init__(
        self,
        module: Any,
        names: Mapping[str, Sequence[str]] | None = None,
        complex_kernel: Any = None,
        checks: Sequence[str] = (),
    ) -> None:
        self.module = module
        names = names or {}
        self.unknowns = tuple(names.get("unknowns", module.UNKNOWNS))
        self.parameters = tuple(names.get("parameters", module.PARAMETERS))
        #: the module's outputs that are quadrature checks (Q_n − Q_{n/2} of a numerical expectation), not traces
        self.checks = tuple(checks)
        self._shown = [j for j, name in enumerate(module.OUTPUTS) if name not in self.checks]
        self.output_names = tuple(module.OUTPUTS[j] for j in self._shown)
        #: the system's C kernel (:class:`~sobolev_rf.codegen.complex_kernel.ComplexCKernel`), used for every
        #: evaluation (complex ones and their Newton solves; real ones on its real twin); None: NumPy does them
        self.complex_kernel = complex_kernel

    def _complex(self, x: np.ndarray, params: Sequence[np.ndarray]) -> np.ndarray | None:
        """The parameters as rows (points × parameters) when the complex C kernel takes this evaluation."""
        if self.complex_kernel is None or not (np.iscomplexobj(x) or any(np.iscomplexobj(p) for p in params)):
            return None
        return self._rows(x, params, complex) if self.complex_kernel.available() else None

    def _real(self, x: np.ndarray, params: Sequence[np.ndarray]) -> np.ndarray | None:
        """The parameters as rows when the C kernel's real twin takes this (real) evaluation."""
        if self.complex_kernel is None or np.iscomplexobj(x) or any(np.iscomplexobj(p) for p in params):
            return None
        return self._rows(x, params, float) if self.complex_kernel.available(real=True) else None

    @staticmethod
    def _rows(x: np.ndarray, params: Sequence[np.ndarray], dtype: type) -> np.ndarray:
        theta: np.ndarray = np.empty((x.shape[1], len(params)), dtype)
        for j, p in enumerate(params):
            theta[:, j] = p
        return theta

    @staticmethod
    def _theta(params: Sequence[np.ndarray]) -> list[Any]:
        """The parameters, each one that is constant over the points as a NumPy scalar (same arithmetic as an
        array: 1/0 is inf, not an exception): the subexpressions of the parameters alone are then computed
        once, not once per point."""
        out: list[Any] = []
        for p in params:
            a = np.asarray(p)
            if a.ndim and a.size and np.all(a == a.flat[0]):
                out.append(a.flat[0])
            else:
                out.append(a)
        return out

    def phi(self, x: np.ndarray, params: Sequence[np.ndarray]) -> np.ndarray:
        if not len(x):
            return x.copy()
        theta = self._complex(x, params)
        if theta is not None:
            return x - self.complex_kernel.residual(x.T, theta).T
        theta = self._real(x, params)
        if theta is not None:
            return x - self.complex_kernel.real_residual(x.T, theta).T
        with np.errstate(all="ignore"):
            r = self.module.residual(x, self._theta(params))
        return x - np.broadcast_to(r, x.shape)

    def outputs(self, x: np.ndarray, params: Sequence[np.ndarray]) -> np.ndarray:
        return self._all_outputs(x, params)[self._shown]

    def quadrature_error(self, x: np.ndarray, params: Sequence[np.ndarray]) -> float:
        """The largest |Q_n − Q_{n/2}| of the system's numerical expectations at ``x`` (0 without any)."""
        if not self.checks:
            return 0.0
        checks = [j for j, name in enumerate(self.module.OUTPUTS) if name in self.checks]
        return float(np.max(np.abs(self._all_outputs(x, params)[checks])))

    def _all_outputs(self, x: np.ndarray, params: Sequence[np.ndarray]) -> np.ndarray:
        theta = self._complex(x, params)
        if theta is not None:
            return self.complex_kernel.outputs(x.T, theta).T
        theta = self._real(x, params)
        if theta is not None:
            return self.complex_kernel.real_outputs(x.T, theta).T
        with np.errstate(all="ignore"):
            values = self.module.outputs(x, self._theta(params))
        return np.stack([np.broadcast_to(values[name], x.shape[1:]) for name in self.module.OUTPUTS])

    def jacobian(self, x: np.ndarray, params: Sequence[np.ndarray]) -> np.ndarray:
        n = x.shape[0]
        theta = self._complex(x, params)
        if theta is not None:
            return -np.moveaxis(self.complex_kernel.jacobian(x.T, theta), 0, -1)
        theta = self._real(x, params)
        if theta is not None:
            return -np.moveaxis(self.complex_kernel.real_jacobian(x.T, theta), 0, -1)
        with np.errstate(all="ignore"):
            J = np.broadcast_to(self.module.jacobian(x, self._theta(params)), (n, n) + x.shape[1:])
        return -J

    def newton(
        self, x0: np.ndarray, params: Sequence[np.ndarray], tol: float, max_iter: int
    ) -> tuple[np.ndarray, np.ndarray] | None:
        """:meth:`FixedPoint.newton` at every point on its own in the complex C kernel (None: not complex,
        or no such kernel)."""
        if not len(x0):
            return None
        theta = self._complex(x0, params)
        if theta is None:
            return None
        u, ok = self.complex_kernel.newton(x0.T, theta, tol, max_iter)
        return u.T, ok


@dataclass
class OVSolution:
    """Numerical solution of an :class:`OVSystem`."""

    unknowns: dict[str, float | complex]
    outputs: dict[str, float | complex]
    residual: float
    iterations: int
    method: str
    quadrature_error: float = 0.0


#: Newton's tolerance on the intermediate rungs of a continuation (the last rung, s = 0, uses 1e-12).
RUNG_TOLERANCE = 1e-8


class FixedPoint:
    """Numerical solution of the fixed point g = Φ(g) on an :class:`Evaluator`."""

    def __init__(self, evaluator: Evaluator) -> None:
        self.evaluator = evaluator
        self.unknowns = evaluator.unknowns
        self.parameters = evaluator.parameters
        self.output_names = evaluator.output_names

    @classmethod
    def of(cls, system: OVSystem) -> FixedPoint:
        """The solver of a derived system through SymPy's ``lambdify`` (kept for the last few systems, so
        their functions are built once)."""
        for cached in _SOLVERS:
            if getattr(cached.evaluator, "system", None) is system:
                return cached
        from .ovfp_symbolic import SymbolicEvaluator

        fresh = cls(SymbolicEvaluator(system))
        _SOLVERS.insert(0, fresh)
        del _SOLVERS[8:]
        return fresh

    def phi(self, x: np.ndarray, params: Sequence[np.ndarray]) -> np.ndarray:
        """Φ at P points: ``x`` (unknowns × P), ``params`` one array of P values per parameter."""
        return self.evaluator.phi(x, params)

    def output_values(self, x: np.ndarray, params: Sequence[np.ndarray]) -> np.ndarray:
        """The normalised traces of every output (outputs × P) at the unknowns ``x``."""
        return self.evaluator.outputs(x, params)

    def _params_array(self, values: Mapping[Any, Any], size: int | None = None) -> tuple[list[np.ndarray], int]:
        given = {str(k): v for k, v in values.items()}
        missing = [p for p in self.parameters if p not in given]
        if missing:
            raise UserError(f"missing parameter values for {', '.join(missing)}; pass them as name=value.")
        arrays = [np.atleast_1d(np.asarray(given[p])) for p in self.parameters]
        size = size or max([len(a) for a in arrays], default=1)
        out = []
        for a in arrays:
            if np.iscomplexobj(a) and not np.any(a.imag):
                a = a.real
            out.append(np.broadcast_to(a.astype(complex if np.iscomplexobj(a) else float), (size,)).copy())
        return out, size

    def newton(
        self, x0: np.ndarray, params: Sequence[np.ndarray], tol: float = 1e-12, max_iter: int = 30
    ) -> tuple[np.ndarray, np.ndarray]:
        """Damped Newton on Φ(g) − g = 0 at P independent points (the evaluator's Jacobian, backtracking);
        returns the unknowns and a mask of the converged points (scaled residual below ``tol``, or below 1e-9
        with a last step below 1e-10: close to a pole the residual stalls at the rounding level)."""
        n, size = x0.shape
        x = x0.astype(complex if (np.iscomplexobj(x0) or any(np.iscomplexobj(p) for p in params)) else float)
        if n == 0:
            return x, np.ones(size, bool)
        compiled = getattr(self.evaluator, "newton", None)
        done = compiled(x, params, tol, max_iter) if compiled is not None and size else None
        if done is not None:
            return done

        def F(y: np.ndarray, idx: np.ndarray) -> np.ndarray:
            return self.phi(y, [p[idx] for p in params]) - y

        def norm(f: np.ndarray, y: np.ndarray) -> np.ndarray:
            r = np.max(np.abs(f) / (1 + np.abs(y)), axis=0)
            return np.where(np.isfinite(r), r, np.inf)

        every = np.arange(size)
        f = F(x, every)
        res = norm(f, x)
        moved = np.full(size, np.inf)  # relative size of the last accepted Newton step
        for _ in range(max_iter):
            idx = np.flatnonzero((res >= tol) & ~((moved < 1e-10) & (res < 1e-9)))
            if idx.size == 0:
                break
            xa, fa = x[:, idx], f[:, idx]
            J = np.transpose(self.evaluator.jacobian(xa, [p[idx] for p in params]), (2, 0, 1)).astype(x.dtype)
            J[~np.isfinite(J)] = 0
            try:
                step = np.linalg.solve(J, -fa.T[..., None])[..., 0].T
            except np.linalg.LinAlgError:
                step = np.stack([np.linalg.lstsq(J[i], -fa[:, i], rcond=None)[0] for i in range(idx.size)], axis=1)
            t = np.ones(idx.size)
            todo = np.ones(idx.size, bool)
            ra = res[idx]
            for _ in range(5):
                k = np.flatnonzero(todo)
                xn = xa[:, k] + t[k] * step[:, k]
                fn = F(xn, idx[k])
                rn = norm(fn, xn)
                ok = rn < np.maximum(ra[k], tol)
                moved[idx[k[ok]]] = np.max(np.abs(xn[:, ok] - xa[:, k[ok]]) / (1 + np.abs(xn[:, ok])), axis=0)
                x[:, idx[k[ok]]] = xn[:, ok]
                f[:, idx[k[ok]]] = fn[:, ok]
                res[idx[k[ok]]] = rn[ok]
                todo[k[ok]] = False
                t[k[~ok]] /= 2
                if not todo.any():
                    break
            if todo.all():
                break
        # converged: a small residual, or (near a pole, where the residual cannot get small in double
        # precision) Newton steps that no longer move the solution
        return x, (res < tol) | ((moved < 1e-10) & (res < 1e-9))

    def _fixed_point(self, params: Sequence[np.ndarray], size: int, max_iter: int = 400) -> np.ndarray:
        """Plain iteration g ← Φ(g) from g = 0 at P points (used where it contracts: far from the spectrum)."""
        n = len(self.unknowns)
        dtype = complex if any(np.iscomplexobj(p) for p in params) else float
        x = np.zeros((n, size), dtype=dtype)
        for start in (1e-8, 1e-4, 1.0):  # nudge the start where a closed form is singular at g = 0
            bad = ~np.all(np.isfinite(self.phi(x, params)), axis=0)
            if not bad.any():
                break
            x[:, bad] = start
        for _ in range(max_iter):
            new = self.phi(x, params)
            done = np.max(np.abs(new - x) / (1 + np.abs(x)), axis=0, initial=0) < 1e-14
            x = new
            if done.all():
                break
        return x

    def continue_from_infinity(
        self,
        params: Sequence[np.ndarray],
        x_top: np.ndarray | None = None,
        callback: Callable[[int, int], None] | None = None,
        height: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Solve at P points with complex parameters on the physical branch.

        Every complex parameter moves along p(s) = p + i s·sign(Im p) (sign +1 where Im p = 0), from s = s₀ =
        10³(1 + max|p|), where g ← Φ(g) from g = 0 converges (the perturbative branch, G ≈ Λ⁻¹, continuous
        from z → i∞), down to s = 0; each rung is a Newton solve from the previous one, with the step in s
        shrunk where Newton fails or the solution jumps.  Returns the unknowns (n × P) and a converged mask.
        ``callback(done, total)`` reports progress.  With ``height`` (and ``x_top``, the solution there) the
        path starts at s = ``height`` instead: a descent from a point already solved on the same branch."""
        size = len(params[0]) if params else 1
        cidx = [i for i, p in enumerate(params) if np.iscomplexobj(p)]
        sign = {i: np.where(params[i].imag < 0, -1.0, 1.0) for i in cidx}
        scale = 1 + np.max(np.abs(np.array(params)), axis=0) if params else np.ones(size)
        imag = np.min(np.array([np.abs(params[i].imag) for i in cidx]), axis=0) if cidx else np.zeros(size)
        floor = np.maximum(0.1 * imag, 1e-14 * scale)

        def at(s: np.ndarray, idx: np.ndarray) -> list[np.ndarray]:
            out = []
            for i, p in enumerate(params):
                out.append(p[idx] + 1j * s * sign[i][idx] if i in cidx else p[idx])
            return out

        s = 1e3 * scale if height is None else np.array(height, dtype=float)
        x = self._fixed_point(at(s, np.arange(size)), size) if x_top is None else x_top.astype(complex)
        x, ok = self.newton(x, at(s, np.arange(size)))
        ratio = np.full(size, 0.25)
        done = np.zeros(size, bool)
        failed = ~ok
        steps = 0
        while True:
            idx = np.flatnonzero(~done & ~failed)
            if idx.size == 0:
                break
            steps += 1
            target = s[idx] * ratio[idx]
            target = np.where(target < floor[idx], 0.0, target)
            # intermediate rungs only need to stay on the branch: a loose tolerance there, the full one at s = 0
            loose = target > 0
            xn, conv = x[:, idx].copy(), np.zeros(idx.size, bool)
            for part, tol in ((loose, RUNG_TOLERANCE), (~loose, 1e-12)):
                if part.any():
                    xn[:, part], conv[part] = self.newton(x[:, idx[part]], at(target[part], idx[part]), tol, 10)
            # a continuous step: no unknown changes by more than 3/4 of its size (growth up to ×7 per rung,
            # as near a pole of the resolvent, where unknowns grow like 1/s)
            old_x = x[:, idx]
            jump = (
                np.max(np.abs(xn - old_x) / (1 + np.abs(old_x) + np.abs(xn)), axis=0)
                if len(self.unknowns)
                else np.zeros(idx.size)
            )
            good = conv & (jump < 0.75)
            g_idx, b_idx = idx[good], idx[~good]
            x[:, g_idx] = xn[:, good]
            s[g_idx] = target[good]
            done[g_idx] = target[good] == 0
            ratio[g_idx] = np.maximum(ratio[g_idx] ** 1.5, 1e-3)
            ratio[b_idx] = np.sqrt(ratio[b_idx])
            failed[b_idx] = ratio[b_idx] > 0.9
            if callback is not None:
                callback(int(done.sum()), size)
            if steps > 5000:
                break
        return x, done

    def solve(
        self,
        values: Mapping[Any, Any],
        tol: float = 1e-13,
        max_iter: int = 5000,
        damping: float = 1.0,
        herglotz: Mapping[str, int] | None = None,
    ) -> OVSolution:
        """Solve g = Φ(g) for parameter ``values`` (by name; dimensions may be given as ratios, e.g.
        p = p/d, d = 1, since every coefficient is homogeneous of degree 0 in the dimensions).

        Complex values (e.g. z = x + iη) are solved on the physical branch, continued from z → i∞
        (:meth:`continue_from_infinity`); ``herglotz`` maps output names to the sign their imaginary part
        must have (e.g. +1 for (1/N) tr (M − z)⁻¹ with Im z > 0), which is checked."""
        pv, _ = self._params_array(values, 1)
        is_complex = any(np.iscomplexobj(p) for p in pv)
        if is_complex:
            return self._solve_complex(pv, herglotz or {})
        n = len(self.unknowns)

        def phi(x: np.ndarray) -> np.ndarray:
            return self.phi(np.asarray(x, dtype=float).reshape(n, 1), pv)[:, 0].astype(float)

        def safe_phi(y: np.ndarray) -> np.ndarray:
            try:
                return phi(y)
            except (ZeroDivisionError, ValueError, OverflowError, TypeError):
                return np.full(n, np.nan)

        # start on the perturbative branch g = 0 (G = Λ⁻¹); nudge it where a closed form is singular there
        x, fx = np.zeros(n), np.full(n, np.nan)
        method, it, omega, res = "fixed-point", 0, damping, np.inf
        with np.errstate(all="ignore"):
            for start in (0.0, 1e-8, 1e-4, 1.0):
                x = np.full(n, start)
                fx = safe_phi(x)
                if np.all(np.isfinite(fx)):
                    break
            for _ in range(1, max_iter + 1):
                r = fx - x
                new_res = float(np.max(np.abs(r) / (1 + np.abs(x)))) if n else 0.0
                if new_res > res and omega > 1 / 64:
                    omega /= 2
                res = new_res
                if not np.isfinite(res) or res < 1e-12:
                    break
                step = omega
                while True:  # shrink the step until Φ stays finite (e.g. inside the domain of sqrt)
                    y = x + step * r
                    fy = safe_phi(y)
                    if np.all(np.isfinite(fy)) or step < 1e-6:
                        break
                    step /= 2
                x, fx = y, fy
        if not (np.isfinite(res) and res < 1e-9):
            import scipy.optimize

            with np.errstate(all="ignore"):
                sol = scipy.optimize.root(
                    lambda y: phi(y) - y, x if np.all(np.isfinite(x)) else np.zeros(n), method="hybr", tol=1e-14
                )
                x, method = sol.x, "scipy-root"
                res = float(np.max(np.abs(phi(x) - x))) if n else 0.0
            if not np.isfinite(res) or res > 1e-6:
                raise UserError(
                    f"the fixed-point iteration did not converge (residual {res:.2e}); check the parameter values."
                )
        xm, res, outs, qerr = self._polish(np.asarray(x, dtype=float), pv)
        return OVSolution(
            unknowns={str(u): float(v) for u, v in zip(self.unknowns, xm)},
            outputs={k: float(v) for k, v in zip(self.output_names, outs)},
            residual=res,
            iterations=it,
            method=method + "+newton",
            quadrature_error=qerr,
        )

    def _polish(self, x: np.ndarray, pv: list[np.ndarray]) -> tuple[list[Any], float, list[Any], float]:
        """Unknowns, residual, outputs and quadrature error after Newton polishing: 30-digit mpmath on an
        evaluator that offers it (numerical expectations), else double-precision Newton steps (closed forms)."""
        pvals = [complex(p[0]) if np.iscomplexobj(p) else float(p[0]) for p in pv]
        polish = getattr(self.evaluator, "polish", None)
        if polish is not None:
            real = not np.iscomplexobj(x) and not any(isinstance(v, complex) for v in pvals)
            if real:
                import mpmath

                return polish([mpmath.mpf(float(v)) for v in x], [mpmath.mpf(v) for v in pvals], pvals)
            return polish([complex(v) for v in x], pvals, pvals)
        y, _ = self.newton(np.asarray(x).reshape(-1, 1), pv, tol=1e-15, max_iter=6)
        with np.errstate(all="ignore"):
            res = float(np.max(np.abs(self.phi(y, pv) - y), initial=0.0))
            outs = self.output_values(y, pv)[:, 0]
            check = getattr(self.evaluator, "quadrature_error", None)
            qerr = check(y, pv) if check is not None else 0.0
        return list(y[:, 0]), res, list(outs), qerr

    def _solve_complex(self, pv: list[np.ndarray], herglotz: Mapping[str, int]) -> OVSolution:
        x, ok = self.continue_from_infinity(pv)
        if not ok[0]:
            raise UserError(
                "the continuation from z → i∞ did not reach the requested complex parameters "
                "(no converged physical branch); move them away from the real axis."
            )
        xm, res, outs, qerr = self._polish(x[:, 0].astype(complex), pv)
        outputs = {k: complex(v) for k, v in zip(self.output_names, outs)}
        for name, s in herglotz.items():
            val = outputs[name]
            if s * val.imag < -1e-9 * abs(val):
                raise UserError(
                    f"the solution is not on the physical branch: Im tr({name}) = {val.imag:.3g} has the wrong sign."
                )
        return OVSolution(
            unknowns={str(u): complex(v) for u, v in zip(self.unknowns, xm)},
            outputs=outputs,
            residual=res,
            iterations=0,
            method="continuation-from-i-infinity+newton",
            quadrature_error=qerr,
        )


def cached_fixed_point(
    producer: str,
    key: Mapping[str, Any],
    derive: Callable[[], tuple[OVSystem, dict[str, Any]]],
    backend: str = "auto",
) -> tuple[FixedPoint, dict[str, Any]]:
    """The solver of a derived operator-valued system, through the cache of derived systems and kernels.

    ``derive()`` returns the system and plain-data ``meta`` to keep with it; it runs (with SymPy) only when
    the cache has no record for ``producer`` and ``key`` (see :func:`sobolev_rf.codegen.jit.system_record`).
    The system is stored as a :class:`~sobolev_rf.derive.system.System` (numerical expectations as sums over
    the nodes of their stored rules) and solved on its generated NumPy kernel (real or complex arithmetic;
    Jacobian by differences), so a warm call imports no SymPy; its evaluations and complex Newton solves go to
    the system's C kernel (:func:`~sobolev_rf.codegen.complex_kernel.load_complex_kernel`, complex arithmetic
    and a real twin; the NumPy module is then loaded only if asked for) unless ``backend`` is ``"numpy"`` or
    the system has none."""
    from ...codegen import jit

    def build() -> Any:
        system, meta = derive()
        return system.to_system(meta={**meta, "jacobian": "differences"})

    record = jit.system_record(producer, key, build)
    meta = dict(record["meta"])
    fast = None
    if backend != "numpy":
        from ...codegen.complex_kernel import load_complex_kernel

        fast = load_complex_kernel(record)
    module: Any = _numpy_module(record) if fast is None else _DeferredModule(record)
    return FixedPoint(KernelEvaluator(module, meta["names"], fast, meta.get("quadrature_checks", ()))), meta


class _DeferredModule:
    """The generated NumPy module of a system record, generated or loaded on first use (beside a C kernel,
    which evaluates everything, only if asked for). Its names come from the record."""

    def __init__(self, record: Mapping[str, Any]) -> None:
        from ...codegen import jit

        self._record = record
        self._module: Any = None
        self.UNKNOWNS, self.PARAMETERS, self.OUTPUTS = (
            jit.record_names(record, part) for part in ("unknowns", "parameters", "outputs")
        )

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        if self._module is None:
            self._module = _numpy_module(self._record)
        return getattr(self._module, name)


def _numpy_module(record: Mapping[str, Any]) -> Any:
    """The generated NumPy module of a system record (generated, or loaded from the cache)."""
    from ...codegen import jit

    kernel: Any = jit.load_kernel(record, "numpy")
    return kernel.module


#: The most recently used solvers of derived systems (a short list: systems are not hashable).
_SOLVERS: list[FixedPoint] = []


def sobolev_traces(k: int, p_over_d: float, a: float, b: float, c: float, e: float) -> dict[str, float]:
    """(1/p)tr Q, (1/p)tr(QW), (1/p)tr(Q D₁WD₁), (1/p)tr(Q D₁²) from the pencil/operator-valued route.

    Keys: ``trQ``, ``trQW``, ``trQD1WD1``, ``trQD1sq`` (all normalised by p).
    """
    from ...derive.ovfp import sobolev_system

    sol = FixedPoint.of(sobolev_system(int(k))).solve({"a": a, "b": b, "c": c, "e": e, "p": p_over_d, "d": 1.0})
    names = {"trQ": "Q", "trQW": "QW", "trQD1WD1": "QD1WD1", "trQD1sq": "QD1sq"}
    return {key: float(sol.outputs[name].real) for key, name in names.items()}


def solve_system(system: OVSystem, values: Mapping[Any, Any], herglotz: Mapping[str, int] | None = None) -> OVSolution:
    """Solve the fixed point of ``system`` at parameter ``values`` (:meth:`FixedPoint.solve`)."""
    return FixedPoint.of(system).solve(values, herglotz=herglotz)
