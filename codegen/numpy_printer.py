"""System → source of a vectorised NumPy module (residual, Jacobian, outputs and a batch solver).

The generated module evaluates every function on stacked arrays: ``u`` has the unknowns on its
leading axis and ``theta`` the parameters (each entry a scalar or an array; all broadcast together),
so a whole grid is evaluated at once without a Python loop over its points. The definitions of the
:class:`~sobolev_rf.derive.system.System` are emitted in order, each after ``sympy.cse`` removed
its repeated subexpressions, and the final expressions of each function are emitted after a second
``sympy.cse``. The only special function, ``GammaResolvent(s, y)``, becomes a call of ``_H_<i>(y)``
(one per order s occurring in the system) defined in the module preamble: closed form
(``erfcx`` for half-integer s, ``exp1`` for integer s) plus the upward recursion for y ≤ 30 and a
60-node generalized Gauss–Laguerre rule for y > 30. The output is deterministic: the same System
gives byte-identical source.
"""
from __future__ import annotations

import types
from dataclasses import dataclass
from typing import Iterable, Sequence

import sympy as sp
from scipy import special
from sympy.printing.numpy import NumPyPrinter

from sobolev_rf.derive.special import GammaResolvent
from sobolev_rf.derive.system import System

#: Bumped whenever the generated source changes; part of every cache key.
CODEGEN_VERSION = "sobolev-rf-codegen-4"

#: Above this y the Gamma resolvent is evaluated by Gauss–Laguerre quadrature.
LAGUERRE_THRESHOLD = 30.0
#: Number of generalized Gauss–Laguerre nodes.
LAGUERRE_NODES = 60

Assignment = tuple[str, sp.Expr]


@dataclass(frozen=True)
class Block:
    """Straight-line code of one function: ordered assignments, then the returned expressions."""

    assignments: tuple[Assignment, ...]
    results: tuple[sp.Expr, ...]


def gamma_orders(system: System) -> tuple[sp.Rational, ...]:
    """The distinct orders s of every ``GammaResolvent(s, y)`` of the system, sorted."""
    exprs = [*system.definitions.values(), *system.residuals, *system.outputs.values()]
    orders = {sp.nsimplify(f.args[0]) for e in exprs for f in e.atoms(GammaResolvent)}
    return tuple(sorted(orders))


def laguerre_rule(s: sp.Rational) -> tuple[list[float], list[float]]:
    """Nodes and weights (divided by Γ(s)) of the generalized Gauss–Laguerre rule for t^{s−1}e^{−t}."""
    x, w = special.roots_genlaguerre(LAGUERRE_NODES, float(s) - 1.0)
    return [float(v) for v in x], [float(v) / float(special.gamma(float(s))) for v in w]


def build_block(system: System, exprs: Sequence[sp.Expr], prefix: str = "cse") -> Block:
    """Definitions needed by ``exprs`` (each after CSE) and the CSE-reduced ``exprs``."""
    counter = iter(range(10**9))
    assignments: list[Assignment] = []

    def symbols() -> Iterable[sp.Symbol]:
        while True:
            yield sp.Symbol(f"{prefix}{next(counter)}")

    gen = symbols()
    for sym, expr in system.definition_pairs(list(exprs)):
        repl, (reduced,) = sp.cse([expr], symbols=gen, order="none")
        assignments += [(str(s), e) for s, e in repl]
        assignments.append((str(sym), reduced))
    repl, reduced = sp.cse(list(exprs), symbols=gen, order="none")
    assignments += [(str(s), e) for s, e in repl]
    return Block(tuple(assignments), tuple(reduced))


def system_blocks(system: System) -> dict[str, Block]:
    """The three blocks every backend emits: residual, Jacobian (row-major) and outputs."""
    n = len(system.unknowns)
    jac = [system.jacobian[i, j] for i in range(n) for j in range(n)]
    return {
        "residual": build_block(system, list(system.residuals)),
        "jacobian": build_block(system, jac),
        "outputs": build_block(system, list(system.outputs.values())),
    }


class _Printer(NumPyPrinter):
    """NumPy printer that maps ``GammaResolvent(s, y)`` to ``_H_<i>(y)``."""

    def __init__(self, orders: Sequence[sp.Rational]) -> None:
        super().__init__({"fully_qualified_modules": True, "inline": True})
        self._orders = list(orders)

    def _print_GammaResolvent(self, expr: GammaResolvent) -> str:
        return f"_H_{self._orders.index(sp.nsimplify(expr.args[0]))}({self._print(expr.args[1])})"


_PREAMBLE = '''\
import numpy
from scipy import special as _special

_LAGUERRE_THRESHOLD = {threshold!r}


def _resolvent(s, y, nodes, weights):
    """H_s(y) = E_(t~Gamma(s,1))[1/(t + y)], elementwise: closed form + recursion, Gauss-Laguerre for y > {threshold!r}."""
    y = numpy.asarray(y, dtype=float)
    large = y > _LAGUERRE_THRESHOLD
    small = numpy.where(large, 1.0, y)
    if float(s).is_integer():
        h, s0 = _special.exp1(small) * numpy.exp(small), 1.0
    else:
        root = numpy.sqrt(small)
        h, s0 = numpy.sqrt(numpy.pi) * _special.erfcx(root) / root, 0.5
    while s0 < s:
        h, s0 = (1.0 - small * h) / s0, s0 + 1.0
    if not numpy.any(large):
        return h
    big = numpy.where(large, y, _LAGUERRE_THRESHOLD + 1.0)
    quad = numpy.sum(weights / (nodes + big[..., None]), axis=-1)
    return numpy.where(large, quad, h)


def _stack(values):
    """Stack scalars/arrays along a new leading axis after broadcasting them together."""
    return numpy.stack(numpy.broadcast_arrays(*[numpy.asarray(v, dtype=float) for v in values]))
'''

_SOLVER = '''

def solve(theta, u0=None, tol=1e-13, fixed_point_iterations=2000, newton_iterations=60, damping=0.3):
    """Solve residual(u, theta) = 0 on a batch: damped fixed-point iteration, then damped Newton.

    Returns (u, converged, residual_norm); u has the unknowns on its leading axis.
    """
    shape = numpy.broadcast_shapes(*[numpy.shape(t) for t in theta])
    n = len(UNKNOWNS)
    u = numpy.full((n,) + shape, 0.5) if u0 is None else numpy.array(numpy.broadcast_to(u0, (n,) + shape), dtype=float)
    with numpy.errstate(all="ignore"):
        active = numpy.ones(shape, dtype=bool)
        for _ in range(fixed_point_iterations):
            r = residual(u, theta)
            active &= numpy.max(numpy.abs(r), axis=0) >= 1e-6 * numpy.maximum(1.0, numpy.max(numpy.abs(u), axis=0))
            active &= numpy.all(numpy.isfinite(r), axis=0)
            if not numpy.any(active):
                break
            u = numpy.where(active, u - damping * r, u)
        r = residual(u, theta)
        norm = _norm(r)
        for _ in range(newton_iterations):
            done = norm <= tol * numpy.maximum(1.0, numpy.max(numpy.abs(u), axis=0))
            if numpy.all(done | ~numpy.isfinite(norm)):
                break
            step = _newton_step(jacobian(u, theta), r)
            t = numpy.ones(shape)
            accepted = done.copy()
            for _ in range(12):
                trial = numpy.where(accepted, u, u - t * step)
                r_trial = residual(trial, theta)
                n_trial = _norm(r_trial)
                better = ~accepted & (n_trial < norm)
                u = numpy.where(better, trial, u)
                r = numpy.where(better, r_trial, r)
                norm = numpy.where(better, n_trial, norm)
                accepted |= better
                if numpy.all(accepted):
                    break
                t = numpy.where(accepted, t, 0.5 * t)
            if not numpy.any(accepted & ~done):
                break
        # polish: one more Newton step wherever it does not increase the residual (the stopping test
        # leaves up to tol·scale; a last quadratic step takes u to rounding level)
        trial = u - _newton_step(jacobian(u, theta), r)
        n_trial = _norm(residual(trial, theta))
        better = n_trial <= norm
        u = numpy.where(better, trial, u)
        norm = numpy.where(better, n_trial, norm)
    converged = numpy.isfinite(norm) & (norm <= 1e3 * tol * numpy.maximum(1.0, numpy.max(numpy.abs(u), axis=0)))
    return u, converged, norm


def _norm(r):
    """Max-norm over the leading axis (NaN where any entry is not finite)."""
    bad = ~numpy.all(numpy.isfinite(r), axis=0)
    return numpy.where(bad, numpy.nan, numpy.max(numpy.abs(numpy.where(numpy.isfinite(r), r, 0.0)), axis=0))


def _newton_step(jac, r):
    """J^(-1) r per point; a singular or non-finite J gives the fixed-point step r instead."""
    n = r.shape[0]
    J = numpy.moveaxis(numpy.moveaxis(jac, 0, -1), 0, -1)
    rhs = numpy.moveaxis(r, 0, -1)
    eye = numpy.broadcast_to(numpy.eye(n), J.shape)
    ok = numpy.all(numpy.isfinite(J), axis=(-1, -2))
    J = numpy.where(ok[..., None, None], J, eye)
    ok &= numpy.abs(numpy.linalg.det(J)) > 1e-300
    J = numpy.where(ok[..., None, None], J, eye)
    step = numpy.linalg.solve(J, numpy.where(numpy.isfinite(rhs), rhs, 0.0)[..., None])[..., 0]
    return numpy.moveaxis(step, -1, 0)
'''


def _unpack(names: Sequence[str], source: str) -> str:
    """``a, b, c = source`` (or ``(a,) = source``)."""
    return f"    {', '.join(names)}{',' if len(names) == 1 else ''} = {source}"


def generate_numpy_source(system: System) -> str:
    """Source text of the NumPy module of ``system`` (see the module docstring)."""
    orders = gamma_orders(system)
    printer = _Printer(orders)
    u_names = [str(s) for s in system.unknowns]
    p_names = [str(s) for s in system.parameters]
    n = len(u_names)
    lines = [f'"""Generated by sobolev_rf.codegen.numpy_printer ({CODEGEN_VERSION}) from system {system.name}.',
             "",
             f"System fingerprint {system.fingerprint()}. Do not edit.",
             '"""',
             _PREAMBLE.format(threshold=LAGUERRE_THRESHOLD),
             f"NAME = {system.name!r}",
             f"FINGERPRINT = {system.fingerprint()!r}",
             f"UNKNOWNS = {tuple(u_names)!r}",
             f"PARAMETERS = {tuple(p_names)!r}",
             f"OUTPUTS = {tuple(system.outputs)!r}",
             ""]
    for i, s in enumerate(orders):
        nodes, weights = laguerre_rule(s)
        lines += ["",
                  f"_NODES_{i} = numpy.array({nodes!r})",
                  f"_WEIGHTS_{i} = numpy.array({weights!r})",
                  "",
                  "",
                  f"def _H_{i}(y):",
                  f'    """H_s(y) for s = {s}."""',
                  f"    return _resolvent({float(s)!r}, y, _NODES_{i}, _WEIGHTS_{i})",
                  ""]
    docs = {"residual": "Residuals u - G(u), stacked on the leading axis.",
            "jacobian": "d residual_i / d u_j, shape (n, n, *batch).",
            "outputs": "Outputs as a dict name -> array."}
    for fname, block in system_blocks(system).items():
        lines += ["", "", f"def {fname}(u, theta):", f'    """{docs[fname]}"""',
                  _unpack(u_names, "u"), _unpack(p_names, "theta")]
        lines += [f"    {name} = {printer.doprint(expr)}" for name, expr in block.assignments]
        values = [printer.doprint(e) for e in block.results]
        if fname == "residual":
            lines.append(f"    return _stack([{', '.join(values)}])")
        elif fname == "jacobian":
            lines.append(f"    flat = _stack([{', '.join(values)}])")
            lines.append(f"    return flat.reshape(({n}, {n}) + flat.shape[1:])")
        else:
            lines.append(f"    values = _stack([{', '.join(values)}])")
            lines.append("    return dict(zip(OUTPUTS, values))")
    return "\n".join(lines) + _SOLVER


def load_numpy_module(source: str, name: str) -> object:
    """Execute generated source as a fresh module object named ``name``."""
    module = types.ModuleType(name)
    exec(compile(source, f"<sobolev-rf generated {name}>", "exec"), module.__dict__)
    return module
