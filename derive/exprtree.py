"""SymPy expressions as plain JSON trees, read back without executing any code.

A tree is ``[node, *children]`` with ``node`` one of a fixed set of SymPy classes; leaves carry their
data as strings: ``["Symbol", name]``, ``["Integer", "3"]``, ``["Rational", "1", "2"]``,
``["Float", "0.5", precision]``. :func:`decode` maps node names through :data:`NODES` only, so a
corrupted or hostile file can fail to load but can never run anything (unlike pickle or ``sympify``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import sympy as sp

from .expectations import Erfcx, Quadrature, ScaledExpint
from .special import GammaResolvent, GammaResolvent2

#: Version of the tree format (part of every stored system).
FORMAT = "sobolev-rf-exprtree-1"

_FUNCTIONS: dict[str, Callable[..., sp.Expr]] = {
    "Add": sp.Add,
    "Mul": sp.Mul,
    "Pow": sp.Pow,
    "exp": sp.exp,
    "log": sp.log,
    "sqrt": sp.sqrt,
    "erf": sp.erf,
    "erfc": sp.erfc,
    "expint": sp.expint,
    "Abs": sp.Abs,
    "Max": sp.Max,
    "Min": sp.Min,
    "Equality": sp.Eq,
    "Unequality": sp.Ne,
    "StrictLessThan": sp.Lt,
    "LessThan": sp.Le,
    "StrictGreaterThan": sp.Gt,
    "GreaterThan": sp.Ge,
    "And": sp.And,
    "Or": sp.Or,
    "Not": sp.Not,
    "GammaResolvent": GammaResolvent,
    "GammaResolvent2": GammaResolvent2,
    "Erfcx": Erfcx,
    "ScaledExpint": ScaledExpint,
    "Quadrature": Quadrature,
}
_CONSTANTS: dict[str, sp.Expr] = {
    "Zero": sp.S.Zero,
    "One": sp.S.One,
    "NegativeOne": sp.S.NegativeOne,
    "Half": sp.S.Half,
    "Pi": sp.pi,
    "Exp1": sp.E,
    "BooleanTrue": sp.true,
    "BooleanFalse": sp.false,
    "Infinity": sp.oo,
    "NegativeInfinity": -sp.oo,
    "EulerGamma": sp.EulerGamma,
}
#: Every node name a tree may use.
NODES = frozenset(_FUNCTIONS) | frozenset(_CONSTANTS) | {"Symbol", "Integer", "Rational", "Float", "Piecewise"}


def encode(expr: Any) -> list[Any]:
    """The tree of a SymPy expression (ValueError for a node outside :data:`NODES`)."""
    expr = sp.sympify(expr)
    name = type(expr).__name__
    if name in _CONSTANTS:
        return [name]
    if isinstance(expr, sp.Symbol) and not isinstance(expr, sp.Dummy):
        return ["Symbol", expr.name]
    if isinstance(expr, sp.Integer):
        return ["Integer", str(int(expr))]
    if isinstance(expr, sp.Rational):
        return ["Rational", str(expr.p), str(expr.q)]
    if isinstance(expr, sp.Float):
        return ["Float", sp.srepr(expr).split("'")[1], expr._prec]
    if isinstance(expr, sp.Piecewise):
        return ["Piecewise", *[[encode(e), encode(c)] for e, c in expr.args]]
    if name in _FUNCTIONS:
        return [name, *[encode(a) for a in expr.args]]
    raise ValueError(f"cannot store a {name} node")


def decode(tree: Any) -> sp.Expr:
    """The SymPy expression of a tree (ValueError for anything not written by :func:`encode`)."""
    if not isinstance(tree, list) or not tree or not isinstance(tree[0], str) or tree[0] not in NODES:
        raise ValueError(f"not an expression tree: {str(tree)[:60]}")
    name, args = tree[0], tree[1:]
    if name in _CONSTANTS:
        return _CONSTANTS[name]
    if name == "Symbol":
        return sp.Symbol(_text(args[0]))
    if name == "Integer":
        return sp.Integer(int(_text(args[0])))
    if name == "Rational":
        return sp.Rational(int(_text(args[0])), int(_text(args[1])))
    if name == "Float":
        return sp.Float(_text(args[0]), precision=int(args[1]))
    if name == "Piecewise":
        return sp.Piecewise(*[(decode(e), decode(c)) for e, c in args])
    return _FUNCTIONS[name](*[decode(a) for a in args], evaluate=False)


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError(f"expected a string in an expression tree, got {type(value).__name__}")
    return value
