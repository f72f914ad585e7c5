"""The numerical fixed point of an operator-valued system (:class:`~sobolev_rf.derive.ovfp.OVSystem`).

:class:`FixedPoint` evaluates Φ and the output traces of a derived system at many points at once, and solves
g = Φ(g):

* real parameters (:meth:`FixedPoint.solve`): damped fixed-point iteration in double precision from the
  perturbative branch g = 0 (scipy ``root`` as fallback), then Newton polishing in 30-digit mpmath
  arithmetic, so closed-form systems reach 1e-13;
* complex parameters (:meth:`FixedPoint.continue_from_infinity`): the physical branch, continued from
  z → i∞ by vectorised damped Newton steps (:meth:`FixedPoint.newton`);
* numerical expectations (:class:`~sobolev_rf.derive.expectations.GaussExpectation`,
  :class:`~sobolev_rf.derive.expectations.LawExpectation`): tensor Gauss–Hermite (n = 120, 60, 28, 14 nodes
  per axis in 1, 2, 3, ≥ 4 dimensions), exact sums over data, Gauss–Legendre; the reported error is
  |Q_n − Q_{n/2}|, a conservative estimate for Q_n since for an integrand analytic in a strip |Im ζ| < σ the
  error decays geometrically in σ√n.  Never Monte Carlo.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import mpmath
import numpy as np
import scipy.optimize
import scipy.special
import sympy as sp

from ...derive.errors import UserError
from ...derive.expectations import GaussExpectation, LawExpectation
from ...derive.laws import DiagonalLaw
from ...derive.ovfp import OVSystem, sobolev_system


# ======================================================================================= special functions
def _scaled_expint_asymptotic(nu: float, x: np.ndarray) -> np.ndarray:
    """e^x E_ν(x) ~ (1/x) Σ_k (−1)^k (ν)_k x^{−k} for |x| ≥ 60 (25 terms: relative error below 1e-15)."""
    term = np.ones_like(x)
    total = np.ones_like(x)
    for k in range(25):
        term = -term * (nu + k) / x
        total = total + term
    return total / x


def scaled_expint(nu: float, x: Any) -> Any:
    """e^x E_ν(x) for arrays (real or complex, principal branch), ν a non-negative half-integer.

    ν = ½: √(π/x) erfcx(√x); ν = 1: e^x E₁(x) (SciPy's complex exp1); upward recursion
    e^x E_{ν+1}(x) = (1 − x e^x E_ν(x))/ν; the asymptotic series for |x| ≥ 60. Real x ≤ 0 gives nan (the
    solver must not go there); other ν fall back to mpmath element by element."""
    x = np.asarray(x)
    real = not np.iscomplexobj(x)
    xc = x.astype(complex)
    two_nu = 2 * float(nu)
    if two_nu != round(two_nu) or nu <= 0 or nu > 12:
        f = np.frompyfunc(lambda t: complex(mpmath.expint(float(nu), t) * mpmath.exp(t)), 1, 1)
        out = f(xc).astype(complex)
    else:
        big = np.abs(xc) >= 60
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
            out = np.where(big, _scaled_expint_asymptotic(float(nu), np.where(big, xc, 60.0)), f) if big.any() else f
    if real:
        with np.errstate(invalid="ignore"):
            return np.where(x > 0, out.real, np.nan) if out.ndim else (float(out.real) if x > 0 else math.nan)
    return out if out.ndim else complex(out)


def _erfcx(x: Any) -> Any:
    return scipy.special.erfcx(x)


_FLOAT_FUNCS = {"Erfcx": _erfcx, "ScaledExpint": scaled_expint}
_MP_FUNCS = {
    "Erfcx": lambda x: mpmath.exp(x**2) * mpmath.erfc(x),
    "ScaledExpint": lambda nu, x: mpmath.expint(nu, x) * mpmath.exp(x),
}


# ======================================================================================= solutions
@dataclass
class OVSolution:
    """Numerical solution of an :class:`OVSystem`."""

    unknowns: dict[str, float | complex]
    outputs: dict[str, float | complex]
    residual: float
    iterations: int
    method: str
    quadrature_error: float = 0.0


class FixedPoint:
    """Numerical evaluation and solution of the fixed point g = Φ(g) of an :class:`OVSystem`."""

    def __init__(self, system: OVSystem) -> None:
        self.system = system
        self._compiled: dict[str, Any] = {}

    @classmethod
    def of(cls, system: OVSystem) -> FixedPoint:
        """The evaluator of ``system``, kept for the last few systems (their compiled functions are built once)."""
        for cached in _SOLVERS:
            if cached.system is system:
                return cached
        fresh = cls(system)
        _SOLVERS.insert(0, fresh)
        del _SOLVERS[8:]
        return fresh

    # ------------------------------------------------------------------------------- numerics
    def _compile(self) -> dict[str, Any]:
        if self._compiled:
            return self._compiled
        args = list(self.system.unknowns) + list(self.system.parameters)
        quad: list[tuple[sp.Symbol, Callable[..., Any], tuple[sp.Symbol, ...]]] = []
        cache: dict[sp.Expr, sp.Symbol] = {}

        def strip(expr: sp.Expr) -> sp.Expr:
            reps = {}
            for node in expr.atoms(GaussExpectation, LawExpectation):
                if node not in cache:
                    sym = sp.Dummy(f"quad{len(cache)}")
                    cache[node] = sym
                    zs = tuple(node.args[1:])
                    f = sp.lambdify(list(zs) + args, node.args[0], modules=[_FLOAT_FUNCS, "numpy"])
                    quad.append((sym, f, zs))
                reps[node] = cache[node]
            return expr.xreplace(reps)

        rhs = [strip(self.system.equations[u]) for u in self.system.unknowns]
        outs = [strip(e) for e in self.system.outputs.values()]
        qsyms = [q[0] for q in quad]
        self._compiled = {
            "quad": quad,
            "rules": {},
            "phi_float": sp.lambdify(args + qsyms, rhs, modules=[_FLOAT_FUNCS, "numpy"], cse=True),
            "out_float": sp.lambdify(args + qsyms, outs, modules=[_FLOAT_FUNCS, "numpy"], cse=True),
            "phi_mp": sp.lambdify(args + qsyms, rhs, modules=[_MP_FUNCS, "mpmath"]),
            "out_mp": sp.lambdify(args + qsyms, outs, modules=[_MP_FUNCS, "mpmath"]),
        }
        return self._compiled

    def _rule(self, zs: tuple[sp.Symbol, ...], coarse: bool) -> tuple[list[np.ndarray], np.ndarray]:
        """Nodes (one array per coordinate of ``zs``) and weights of the expectation over their laws:
        tensor Gauss–Hermite over normal coordinates (n = 120, 60, 28, 14 per axis in 1, 2, 3, ≥ 4
        dimensions; half as many when ``coarse``) times the rule of each other law (atoms, Gauss–Legendre)."""
        key = (zs, coarse)
        rules = self._compile()["rules"]
        if key in rules:
            return rules[key]
        normal: list[int] = []
        groups: dict[int, tuple[DiagonalLaw, list[int], list[int]]] = {}
        for pos, z in enumerate(zs):
            law, idx = self.system.zeta_laws.get(str(z), (None, 0))
            if law is None or law.kind == "normal":
                normal.append(pos)
            else:
                groups.setdefault(id(law), (law, [], []))
                groups[id(law)][1].append(pos)
                groups[id(law)][2].append(idx)
        factors: list[tuple[list[int], np.ndarray, np.ndarray]] = []
        if normal:
            n = {1: 120, 2: 60, 3: 28}.get(len(normal), 14)
            x, w = np.polynomial.hermite_e.hermegauss(n // 2 if coarse else n)
            w = w / math.sqrt(2 * math.pi)
            grids = np.meshgrid(*([x] * len(normal)), indexing="ij")
            wgrids = np.meshgrid(*([w] * len(normal)), indexing="ij")
            factors.append(
                (normal, np.stack([g.ravel() for g in grids], axis=1), np.prod([g.ravel() for g in wgrids], axis=0))
            )
        for law, positions, idxs in groups.values():
            nodes, w = law.rule(coarse)
            factors.append((positions, nodes[:, idxs], w))
        coords: list[np.ndarray] = [np.zeros(1)] * len(zs)
        weights = np.ones(1)
        for positions, nodes, w in factors:
            m_old, m_new = len(weights), len(w)
            coords = [np.repeat(c, m_new) if len(c) == m_old else c for c in coords]
            for col, pos in enumerate(positions):
                coords[pos] = np.tile(nodes[:, col], m_old)
            weights = np.repeat(weights, m_new) * np.tile(w, m_old)
        rules[key] = (coords, weights)
        return coords, weights

    @staticmethod
    def _integrate(
        f: Callable[..., Any], coords: Sequence[np.ndarray], weights: np.ndarray, vals: Sequence[np.ndarray], size: int
    ) -> np.ndarray:
        """Σ_a w_a f(nodes_a, vals) for ``size`` points at once (chunked so that nodes × points stays small)."""
        chunk = max(1, 2**21 // max(size, 1))
        total: Any = 0
        for start in range(0, len(weights), chunk):
            sl = slice(start, start + chunk)
            res = f(*[c[sl, None] for c in coords], *[v[None, :] for v in vals])
            res = np.broadcast_to(np.asarray(res), (len(weights[sl]), size))
            total = total + weights[sl] @ res
        return np.broadcast_to(np.asarray(total), (size,))

    def expectations(self, vals: Sequence[np.ndarray], with_error: bool = False) -> tuple[list[np.ndarray], float]:
        """Values of every numerical expectation of the system at ``vals`` (unknowns then parameters, each an
        array of P points) and, with ``with_error``, the largest |Q_n − Q_{n/2}| (an error estimate)."""
        comp = self._compile()
        size = len(vals[0]) if vals else 1
        out, err = [], 0.0
        with np.errstate(all="ignore"):
            for _, f, zs in comp["quad"]:
                coords, w = self._rule(zs, False)
                fine = self._integrate(f, coords, w, vals, size)
                out.append(fine)
                if with_error:
                    coords, w = self._rule(zs, True)
                    coarse = self._integrate(f, coords, w, vals, size)
                    err = max(err, float(np.max(np.abs(fine - coarse))))
        return out, err

    def _quad_values(self, vals: Sequence[Any], with_error: bool = False) -> tuple[list[Any], float]:
        arrays = [np.atleast_1d(np.asarray(v)) for v in vals]
        q, err = self.expectations(arrays, with_error)
        return [complex(x[0]) if np.iscomplexobj(x) else float(x[0]) for x in q], err

    def _params_array(
        self, values: Mapping[str | sp.Symbol, Any], size: int | None = None
    ) -> tuple[list[np.ndarray], int]:
        given = {str(k): v for k, v in values.items()}
        missing = [str(p) for p in self.system.parameters if str(p) not in given]
        if missing:
            raise UserError(f"missing parameter values for {', '.join(missing)}; pass them as name=value.")
        arrays = [np.atleast_1d(np.asarray(given[str(p)])) for p in self.system.parameters]
        size = size or max([len(a) for a in arrays], default=1)
        out = []
        for a in arrays:
            if np.iscomplexobj(a) and not np.any(a.imag):
                a = a.real
            out.append(np.broadcast_to(a.astype(complex if np.iscomplexobj(a) else float), (size,)).copy())
        return out, size

    def phi(self, x: np.ndarray, params: Sequence[np.ndarray]) -> np.ndarray:
        """Φ at P points: ``x`` (unknowns × P), ``params`` one array of P values per parameter."""
        comp = self._compile()
        size = x.shape[1]
        vals = list(x) + list(params)
        q, _ = self.expectations(vals)
        with np.errstate(all="ignore"):
            out = comp["phi_float"](*vals, *q)
        return np.array([np.broadcast_to(np.asarray(v), (size,)) for v in out]).reshape(len(self.system.unknowns), size)

    def output_values(self, x: np.ndarray, params: Sequence[np.ndarray]) -> np.ndarray:
        """The normalised traces of every output (outputs × P) at the unknowns ``x``."""
        comp = self._compile()
        size = x.shape[1]
        vals = list(x) + list(params)
        q, _ = self.expectations(vals)
        with np.errstate(all="ignore"):
            out = comp["out_float"](*vals, *q)
        return np.array([np.broadcast_to(np.asarray(v), (size,)) for v in out]).reshape(len(self.system.outputs), size)

    def newton(
        self, x0: np.ndarray, params: Sequence[np.ndarray], tol: float = 1e-12, max_iter: int = 30
    ) -> tuple[np.ndarray, np.ndarray]:
        """Damped Newton on Φ(g) − g = 0 at P independent points (finite-difference Jacobian, backtracking);
        returns the unknowns and a mask of the converged points (scaled residual below ``tol``, or below 1e-9
        with a last step below 1e-10: close to a pole the residual stalls at the rounding level)."""
        n, size = x0.shape
        x = x0.astype(complex if (np.iscomplexobj(x0) or any(np.iscomplexobj(p) for p in params)) else float)
        if n == 0:
            return x, np.ones(size, bool)

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
            # all n finite-difference columns in one vectorised evaluation (n·P points)
            h = 1e-7 * np.maximum(np.abs(xa), 1e-4)  # relative steps: unknowns near a pole are tiny or huge
            xp = np.repeat(xa[:, None, :], n, axis=1)  # (unknown, column, point)
            xp[np.arange(n), np.arange(n), :] += h
            fp = F(xp.reshape(n, n * idx.size), np.tile(idx, n)).reshape(n, n, idx.size)
            J = np.transpose((fp - fa[:, None, :]) / h[None, :, :], (2, 0, 1)).astype(x.dtype)
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
        n = len(self.system.unknowns)
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
    ) -> tuple[np.ndarray, np.ndarray]:
        """Solve at P points with complex parameters on the physical branch.

        Every complex parameter moves along p(s) = p + i s·sign(Im p) (sign +1 where Im p = 0), from s = s₀ =
        10³(1 + max|p|), where g ← Φ(g) from g = 0 converges (the perturbative branch, G ≈ Λ⁻¹, continuous
        from z → i∞), down to s = 0; each rung is a Newton solve from the previous one, with the step in s
        shrunk where Newton fails or the solution jumps.  Returns the unknowns (n × P) and a converged mask.
        ``callback(done, total)`` reports progress."""
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

        s = 1e3 * scale
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
            xn, conv = self.newton(x[:, idx], at(target, idx), max_iter=10)
            # a continuous step: no unknown changes by more than 3/4 of its size (growth up to ×7 per rung,
            # as near a pole of the resolvent, where unknowns grow like 1/s)
            old_x = x[:, idx]
            jump = (
                np.max(np.abs(xn - old_x) / (1 + np.abs(old_x) + np.abs(xn)), axis=0)
                if len(self.system.unknowns)
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
        values: Mapping[str | sp.Symbol, Any],
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
        pvals = [float(p[0]) for p in pv]
        n = len(self.system.unknowns)

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
        xm, res, outs, qerr = self._polish([mpmath.mpf(float(v)) for v in x], [mpmath.mpf(v) for v in pvals], pvals)
        return OVSolution(
            unknowns={str(u): float(v) for u, v in zip(self.system.unknowns, xm)},
            outputs={k: float(v) for k, v in zip(self.system.outputs, outs)},
            residual=res,
            iterations=it,
            method=method + "+newton",
            quadrature_error=qerr,
        )

    def _polish(self, xm: list[Any], pm: list[Any], pvals: list[Any]) -> tuple[list[Any], float, list[Any], float]:
        """Newton polishing in 30-digit mpmath arithmetic (real or complex); the numerical expectations are
        recomputed in double precision at every step."""
        comp = self._compile()
        n = len(xm)
        conv = complex if any(isinstance(v, complex) for v in pvals) else float
        mk = mpmath.mpc if conv is complex else mpmath.mpf
        with mpmath.workdps(30):
            xm = [mk(v) for v in xm]
            pm = [mk(v) for v in pm]

            def phim(y: Sequence[Any]) -> list[Any]:
                q, _ = self._quad_values([conv(v) for v in y] + pvals)
                return list(comp["phi_mp"](*y, *pm, *[mk(v) for v in q]))

            for _ in range(8):
                F = [a - b for a, b in zip(phim(xm), xm)]
                if max((abs(f) for f in F), default=0) < mpmath.mpf(10) ** -26:
                    break
                h = mpmath.mpf(10) ** -14
                J = mpmath.matrix(n, n)
                for j in range(n):
                    yj = list(xm)
                    yj[j] += h
                    Fj = [a - b for a, b in zip(phim(yj), yj)]
                    for i in range(n):
                        J[i, j] = (Fj[i] - F[i]) / h
                try:
                    dx = mpmath.lu_solve(J, mpmath.matrix(F))
                except ZeroDivisionError:
                    break
                new = [a - dx[i] for i, a in enumerate(xm)]
                Fn = [a - b for a, b in zip(phim(new), new)]
                if max((abs(f) for f in Fn), default=0) > max((abs(f) for f in F), default=0):
                    break
                xm = new
            F = [a - b for a, b in zip(phim(xm), xm)]
            res = float(max((abs(f) for f in F), default=0))
            q, qerr = self._quad_values([conv(v) for v in xm] + pvals, with_error=True)
            outs = comp["out_mp"](*xm, *pm, *[mk(v) for v in q])
        return xm, res, list(outs), qerr

    def _solve_complex(self, pv: list[np.ndarray], herglotz: Mapping[str, int]) -> OVSolution:
        x, ok = self.continue_from_infinity(pv)
        if not ok[0]:
            raise UserError(
                "the continuation from z → i∞ did not reach the requested complex parameters "
                "(no converged physical branch); move them away from the real axis."
            )
        pvals = [complex(p[0]) if np.iscomplexobj(p) else float(p[0]) for p in pv]
        xm, res, outs, qerr = self._polish([complex(v) for v in x[:, 0]], pvals, pvals)
        outputs = {k: complex(v) for k, v in zip(self.system.outputs, outs)}
        for name, s in herglotz.items():
            val = outputs[name]
            if s * val.imag < -1e-9 * abs(val):
                raise UserError(
                    f"the solution is not on the physical branch: Im tr({name}) = {val.imag:.3g} has the wrong sign."
                )
        return OVSolution(
            unknowns={str(u): complex(v) for u, v in zip(self.system.unknowns, xm)},
            outputs=outputs,
            residual=res,
            iterations=0,
            method="continuation-from-i-infinity+newton",
            quadrature_error=qerr,
        )


#: The most recently used evaluators (a short list: systems are not hashable).
_SOLVERS: list[FixedPoint] = []


def sobolev_traces(k: int, p_over_d: float, a: float, b: float, c: float, e: float) -> dict[str, float]:
    """(1/p)tr Q, (1/p)tr(QW), (1/p)tr(Q D₁WD₁), (1/p)tr(Q D₁²) from the pencil/operator-valued route.

    Keys: ``trQ``, ``trQW``, ``trQD1WD1``, ``trQD1sq`` (all normalised by p).
    """
    sol = FixedPoint.of(sobolev_system(int(k))).solve({"a": a, "b": b, "c": c, "e": e, "p": p_over_d, "d": 1.0})
    names = {"trQ": "Q", "trQW": "QW", "trQD1WD1": "QD1WD1", "trQD1sq": "QD1sq"}
    return {key: float(sol.outputs[name].real) for key, name in names.items()}


def solve_system(
    system: OVSystem, values: Mapping[str | sp.Symbol, Any], herglotz: Mapping[str, int] | None = None
) -> OVSolution:
    """Solve the fixed point of ``system`` at parameter ``values`` (:meth:`FixedPoint.solve`)."""
    return FixedPoint.of(system).solve(values, herglotz=herglotz)
