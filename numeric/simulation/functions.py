"""Vectorised NumPy versions of an activation σ and its derivatives σ′, σ″ (for the simulator)."""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache

import numpy as np
import sympy as sp

from ...derive.activations import X, derivative, parse_activation

ArrayFunction = Callable[[np.ndarray], np.ndarray]

#: Stand-ins printed by name: Heaviside → np.heaviside(x, 1/2); log(1 + exp(u)) → np.logaddexp(0, u),
#: which does not overflow for large u.
_HEAVISIDE = sp.Function("heaviside_half")
_SOFTPLUS = sp.Function("softplus")
_MODULES = [
    {"heaviside_half": lambda t: np.heaviside(t, 0.5), "softplus": lambda t: np.logaddexp(0.0, t)},
    "numpy",
    "scipy",
]
_U = sp.Wild("u")


def _vectorise(expr: sp.Expr) -> ArrayFunction:
    """f(x) = expr elementwise on a float64 array of any shape (constants are broadcast)."""
    if not expr.has(X):
        value = float(expr)
        return lambda t: np.full(np.shape(t), value)
    expr = expr.replace(sp.Heaviside, lambda arg, *_: _HEAVISIDE(arg))
    expr = expr.replace(sp.log(1 + sp.exp(_U)), _SOFTPLUS(_U))
    f = sp.lambdify(X, expr, modules=_MODULES)

    def call(t: np.ndarray) -> np.ndarray:
        t = np.asarray(t, dtype=np.float64)
        out = np.asarray(f(t), dtype=np.float64)
        return out if out.shape == t.shape else np.broadcast_to(out, t.shape).copy()

    return call


@lru_cache(maxsize=64)
def numpy_pair(text: str) -> tuple[ArrayFunction, ArrayFunction]:
    """(σ, σ′) of an activation name or expression text as vectorised NumPy functions.

    σ′ uses SymPy's derivative (Max(0, x) → Heaviside(x), evaluated as np.heaviside(x, 1/2);
    Abs → np.sign; erf from scipy.special). Cached per text; invalid text raises UserError."""
    expr = parse_activation(text)
    return _vectorise(expr), _vectorise(derivative(expr))


@lru_cache(maxsize=64)
def numpy_second(text: str) -> ArrayFunction:
    """σ″ of an activation name or expression text, the almost-everywhere second derivative (Dirac terms
    dropped: 0 for ReLU, whose σ′ is a step), vectorised like :func:`numpy_pair`."""
    expr = parse_activation(text)
    return _vectorise(derivative(derivative(expr)))
