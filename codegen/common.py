"""What every backend shares: the version, straight-line blocks, the special-function orders and rules.

A backend turns each :class:`Block` (ordered assignments after ``sympy.cse``, then the returned
expressions) into a function of its language; the blocks themselves, the orders s of the Gamma
resolvents H_s and H⁽²⁾_s and their quadrature rules are the same for all of them, so the backends
agree to rounding.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import sympy as sp

from ..derive.expectations import Quadrature
from ..derive.special import INTEGRAL_NODES, LARGE_ORDER, GammaResolvent, GammaResolvent2
from ..derive.system import System
from .version import CODEGEN_VERSION

__all__ = [
    "CODEGEN_VERSION",
    "Block",
    "build_block",
    "gamma_orders",
    "quadrature_rule",
    "quadrature_block",
    "quadratures",
    "system_blocks",
    "template",
]


Assignment = tuple[str, sp.Expr]

#: The solvers iterate the damped fixed point u ← u − damping·r(u) until max|r| < FIXED_POINT_SWITCH·max(1, max|u|),
#: then switch to Newton. Per backend: in C each point stops on its own, and 1e-3 rather than 1e-6 made the grid
#: solve 3–5× faster (128² grid, λ = 1e-3, 1e-7 and 0) with the same points converged; the NumPy solver takes
#: its Newton steps for the whole batch, so the stragglers of an early switch cost every point (1e-3 made it
#: 3–18× slower there).
FIXED_POINT_SWITCH = {"c": 1e-3, "numpy": 1e-6}


@dataclass(frozen=True)
class Block:
    """Straight-line code of one function: ordered assignments, then the returned expressions."""

    assignments: tuple[Assignment, ...]
    results: tuple[sp.Expr, ...]


def gamma_orders(system: System) -> tuple[sp.Rational, ...]:
    """The distinct orders s of every H_s(y) and H⁽²⁾_s(y) of the system, sorted."""
    exprs = [*system.definitions.values(), *system.residuals, *system.outputs.values()]
    orders = {sp.nsimplify(f.args[0]) for e in exprs for f in e.atoms(GammaResolvent, GammaResolvent2)}
    return tuple(sorted(orders))


def is_large_order(s: sp.Rational) -> bool:
    """Whether H_s is evaluated by the Laplace-integral rule (see :mod:`sobolev_rf.derive.special`)."""
    return float(s) > LARGE_ORDER


def quadrature_rule(s: sp.Rational) -> tuple[list[float], list[float]]:
    """Nodes and weights of the rule of a large order s (:func:`is_large_order`): Gauss–Laguerre in v for the
    Laplace integrals (a smaller s has no rule: recursions and a continued fraction, derive.special)."""
    from scipy import special  # imported here: 0.15 s that a system without Gamma resolvents does not need

    if not is_large_order(s):
        raise ValueError(f"H_s has a quadrature rule for s > {LARGE_ORDER} only, got s = {s}.")
    x, w = special.roots_laguerre(INTEGRAL_NODES)
    return [float(v) for v in x], [float(v) for v in w]


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


def analytic_jacobian(system: System) -> bool:
    """Whether the Jacobian is emitted in closed form (the default) or taken by forward differences of the
    residual at run time (``meta["jacobian"] == "differences"``: for large systems whose symbolic
    Jacobian costs seconds to derive and simplify)."""
    return system.meta.get("jacobian", "analytic") != "differences"


def quadratures(system: System) -> tuple[Quadrature, ...]:
    """The distinct numerical expectations (:class:`~sobolev_rf.derive.expectations.Quadrature`) of the
    residuals and outputs, in a fixed order; a block refers to the i-th as the symbol ``quad<i>``."""
    found: set[sp.Expr] = set()
    for e in [*system.residuals, *system.outputs.values()]:
        found |= e.atoms(Quadrature)
    return tuple(sorted(found, key=sp.default_sort_key))


def quadrature_block(system: System, exprs: Sequence[sp.Expr], quads: Sequence[Quadrature]) -> Block:
    """:func:`build_block` of ``exprs`` with every expectation a symbol ``quad<i>``, assigned (to the
    :class:`Quadrature` itself, which a backend prints as a sum over the rule's nodes) before the rest."""
    names = {q: sp.Symbol(f"quad{i}") for i, q in enumerate(quads)}
    used = [q for q in quads if any(e.has(q) for e in exprs)]
    block = build_block(system, [e.xreplace(names) for e in exprs])
    return Block(tuple((str(names[q]), q) for q in used) + block.assignments, block.results)


def system_blocks(system: System) -> dict[str, Block]:
    """The blocks every backend emits: residual, Jacobian (row-major; absent when taken by differences,
    :func:`analytic_jacobian`) and outputs; numerical expectations are assigned first (:func:`quadratures`)."""
    n = len(system.unknowns)
    quads = quadratures(system)
    blocks = {"residual": quadrature_block(system, list(system.residuals), quads)}
    if analytic_jacobian(system):
        if quads:
            raise ValueError("a system with numerical expectations takes its Jacobian by differences")
        blocks["jacobian"] = build_block(system, [system.jacobian[i, j] for i in range(n) for j in range(n)])
    blocks["outputs"] = quadrature_block(system, list(system.outputs.values()), quads)
    return blocks


def template(package: str, name: str) -> str:
    """The text of a runtime template file shipped with a backend package."""
    from importlib.resources import files

    return (files(package) / name).read_text()
