"""Evaluation of an operator-valued system straight from its SymPy expressions (SymPy's ``lambdify``).

Used for a derived system solved directly (:meth:`~.ovfp.FixedPoint.of`; the command line solves the stored
system on its generated kernel, with the same rules). Expectations left to numerical quadrature (large
discrete laws, uniform laws, normal coordinates without a closed form) use the rules of
:func:`~sobolev_rf.derive.laws.expectation_rule`: tensor Gauss–Hermite over normal coordinates
(n = 120, 60, 28, 14 nodes per axis in 1, 2, 3, ≥ 4 dimensions), exact sums over data,
Gauss–Legendre over uniform laws; the reported error is |Q_n − Q_{n/2}|, a conservative estimate for Q_n since
for an integrand analytic in a strip |Im ζ| < σ the error decays geometrically in σ√n.  Never Monte Carlo.
Real solutions are polished by Newton's method in 30-digit mpmath arithmetic.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import mpmath
import numpy as np
import scipy.special
import sympy as sp

from ...derive.expectations import GaussExpectation, LawExpectation
from ...derive.laws import expectation_rule, tensor_rule
from ...derive.ovfp import OVSystem
from .ovfp import difference_jacobian, scaled_expint

_FLOAT_FUNCS = {"Erfcx": scipy.special.erfcx, "ScaledExpint": scaled_expint}
_MP_FUNCS = {
    "Erfcx": lambda x: mpmath.exp(x**2) * mpmath.erfc(x),
    "ScaledExpint": lambda nu, x: mpmath.expint(nu, x) * mpmath.exp(x),
}


class SymbolicEvaluator:
    """Φ, the outputs and their numerical expectations of an :class:`OVSystem`, by ``lambdify``."""

    def __init__(self, system: OVSystem) -> None:
        self.system = system
        self.unknowns = tuple(str(u) for u in system.unknowns)
        self.parameters = tuple(str(p) for p in system.parameters)
        self.output_names = tuple(system.outputs)
        self._compiled: dict[str, Any] = {}

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
        """Nodes (one array per coordinate of ``zs``) and weights of the expectation over their laws
        (:func:`~sobolev_rf.derive.laws.expectation_rule`: tensor Gauss–Hermite over normal coordinates, half as
        many nodes when ``coarse``, times the rule of each other law: atoms, Gauss–Legendre)."""
        key = (zs, coarse)
        rules = self._compile()["rules"]
        if key in rules:
            return rules[key]
        laws = [self.system.zeta_laws.get(str(z), (None, 0)) for z in zs]
        coords, weights = tensor_rule(expectation_rule(laws, coarse), len(zs))
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

    def _evaluate(self, name: str, rows: int, x: np.ndarray, params: Sequence[np.ndarray]) -> np.ndarray:
        """The compiled function ``name`` at P points (rows × P), its expectations taken at the same points."""
        size = x.shape[1]
        vals = list(x) + list(params)
        q, _ = self.expectations(vals)
        with np.errstate(all="ignore"):
            out = self._compile()[name](*vals, *q)
        return np.array([np.broadcast_to(np.asarray(v), (size,)) for v in out]).reshape(rows, size)

    def phi(self, x: np.ndarray, params: Sequence[np.ndarray]) -> np.ndarray:
        """Φ at P points: ``x`` (unknowns × P), ``params`` one array of P values per parameter."""
        return self._evaluate("phi_float", len(self.system.unknowns), x, params)

    def outputs(self, x: np.ndarray, params: Sequence[np.ndarray]) -> np.ndarray:
        """The normalised traces of every output (outputs × P) at the unknowns ``x``."""
        return self._evaluate("out_float", len(self.system.outputs), x, params)

    def jacobian(self, x: np.ndarray, params: Sequence[np.ndarray]) -> np.ndarray:
        """∂(Φ(g) − g)/∂g (n × n × P) by forward differences."""
        return difference_jacobian(lambda y, p: self.phi(y, p) - y, x, params)

    def polish(self, xm: list[Any], pm: list[Any], pvals: list[Any]) -> tuple[list[Any], float, list[Any], float]:
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
