"""Activations σ (and teacher links φ) as SymPy expressions in one real variable x.

An activation is given as a name (``relu``, ``tanh``, ``erf``, ``sigmoid``, ``softplus``, ``gelu``,
``linear``, ``abs``) or as SymPy expression text in ``x`` such as ``Max(0, x)`` or
``x*erf(x/sqrt(2))``. User text is never evaluated as Python: it is first checked token by token
against a whitelist (:func:`parse_activation`), then read by SymPy's parser with a restricted
namespace that holds only the whitelisted SymPy functions.

The model (MODEL.md) needs σ(ξ) and σ′(ξ) to be square integrable for ξ ~ N(0, 1) and σ to be
continuous, so that σ′ is an ordinary function (no Dirac delta); :func:`parse_activation` rejects
expressions that violate this. Decimal literals are read as exact rationals (``0.1`` is 1/10) so
that high-precision quadrature is not limited by binary floating point.
"""

from __future__ import annotations

import ast
import io
import keyword
import math
import re
import tokenize
import warnings
from collections.abc import Callable
from functools import lru_cache

import mpmath
import numpy as np
import sympy as sp
from sympy.parsing.sympy_parser import parse_expr, rationalize, standard_transformations

from .errors import UserError

#: The one free symbol of every activation.
X = sp.Symbol("x", real=True)

#: Named activations σ(x).
NAMED: dict[str, sp.Expr] = {
    "relu": sp.Max(0, X),
    "tanh": sp.tanh(X),
    "erf": sp.erf(X),
    "sigmoid": 1 / (1 + sp.exp(-X)),
    "softplus": sp.log(1 + sp.exp(X)),
    "gelu": X * (1 + sp.erf(X / sp.sqrt(2))) / 2,
    "linear": X,
    "abs": sp.Abs(X),
}

#: Functions that may appear in expression text, with the SymPy object each name stands for.
FUNCTIONS: dict[str, object] = {
    "Max": sp.Max,
    "Min": sp.Min,
    "Abs": sp.Abs,
    "Heaviside": sp.Heaviside,
    "sign": sp.sign,
    "Piecewise": sp.Piecewise,
    "exp": sp.exp,
    "log": sp.log,
    "sqrt": sp.sqrt,
    "sin": sp.sin,
    "cos": sp.cos,
    "sinh": sp.sinh,
    "cosh": sp.cosh,
    "tanh": sp.tanh,
    "atan": sp.atan,
    "asinh": sp.asinh,
    "erf": sp.erf,
    "erfc": sp.erfc,
    "max": sp.Max,
    "min": sp.Min,
    "abs": sp.Abs,
}

#: Constants that may appear in expression text.
CONSTANTS: dict[str, object] = {"pi": sp.pi, "E": sp.E}

#: Operators allowed between tokens (``**`` is the power; ``<``, ``>``, ``&``, ``|`` serve Piecewise).
_OPERATORS = frozenset({"+", "-", "*", "/", "**", "(", ")", ",", "<", ">", "<=", ">=", "&", "|"})
_NUMBER = re.compile(r"^(\d+\.?\d*|\.\d+)([eE][+-]?\d{1,3})?$")
_MAX_TEXT = 500
_MAX_EXPONENT = 64
_MAX_CONSTANT_DIGITS = 1000
#: Functions whose argument (or condition) switches between smooth branches.
_SWITCHES = (sp.Max, sp.Min, sp.Abs, sp.Heaviside, sp.sign, sp.Piecewise)


def _allowed_names() -> str:
    return ", ".join(sorted(FUNCTIONS) + sorted(CONSTANTS) + ["x"])


def _check_tokens(text: str) -> None:
    """Accept only whitelisted names, plain decimal numbers and arithmetic/comparison operators."""
    try:
        tokens = list(tokenize.generate_tokens(io.StringIO(text).readline))
    except (tokenize.TokenError, SyntaxError, IndentationError) as exc:
        raise UserError(
            f"activation {text!r} is not a valid expression ({exc}); write a SymPy expression in x such as 'Max(0, x)'."
        ) from None
    for tok in tokens:
        kind, s = tok.type, tok.string
        if kind in (tokenize.ENDMARKER, tokenize.NEWLINE) and not s.strip():
            continue
        if kind == tokenize.NAME:
            if "__" in s:
                raise UserError(f"activation {text!r} contains the forbidden name {s!r}; use only: {_allowed_names()}.")
            if s == "True":
                continue
            if keyword.iskeyword(s):
                raise UserError(
                    f"activation {text!r} contains the Python keyword {s!r}; "
                    f"write a plain SymPy expression using only: {_allowed_names()}."
                )
            if s not in FUNCTIONS and s not in CONSTANTS and s != "x":
                raise UserError(
                    f"activation {text!r} uses the unknown name {s!r}; the only variable is x "
                    f"and the allowed names are: {_allowed_names()}."
                )
        elif kind == tokenize.NUMBER:
            if not _NUMBER.match(s):
                raise UserError(
                    f"activation {text!r} contains the number {s!r}; write plain decimal "
                    f"numbers such as 2, 0.5 or 1e-3."
                )
        elif kind == tokenize.OP:
            if s not in _OPERATORS:
                hint = " (use ** for powers)" if s == "^" else ""
                raise UserError(
                    f"activation {text!r} contains the operator {s!r}{hint}; allowed operators "
                    f"are {' '.join(sorted(_OPERATORS))}."
                )
        else:
            raise UserError(
                f"activation {text!r} contains {s!r}, which is not allowed; write a SymPy "
                f"expression in x from names, numbers and operators only."
            )


def _exponent_value(node: ast.AST) -> float | None:
    """The value of a power exponent built from numbers with + - * / and parentheses, else None.

    This is arithmetic on a syntax tree of plain numbers, never an evaluation of the text."""
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) and not isinstance(node.value, bool):
        return float(node.value)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.UAdd, ast.USub)):
        v = _exponent_value(node.operand)
        return None if v is None else (-v if isinstance(node.op, ast.USub) else v)
    if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Sub, ast.Mult, ast.Div)):
        a, b = _exponent_value(node.left), _exponent_value(node.right)
        if a is None or b is None or (isinstance(node.op, ast.Div) and b == 0):
            return None
        if abs(a) > 1e6 or abs(b) > 1e6:
            return None
        ops = {ast.Add: a + b, ast.Sub: a - b, ast.Mult: a * b}
        return ops[type(node.op)] if type(node.op) in ops else a / b
    return None


def _constant_digits(node: ast.AST) -> float | None:
    """An upper bound on the number of decimal digits of a subtree made of numbers only (None if it
    contains a name or call): SymPy computes such constants exactly, so ``9**64**...`` must be caught."""
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)):
        return math.log10(max(abs(node.value), 1.0)) + 1
    if isinstance(node, ast.UnaryOp):
        return _constant_digits(node.operand)
    if isinstance(node, ast.BinOp):
        a, b = _constant_digits(node.left), _constant_digits(node.right)
        if a is None or b is None:
            return None
        if isinstance(node.op, ast.Pow):
            e = _exponent_value(node.right)
            return None if e is None else a * max(abs(e), 1.0)
        return a + b
    return None


def _check_sizes(text: str) -> None:
    """Reject exponents that are not numbers in [−64, 64] and numeric constants of more than 1000
    digits (``10**10**10`` would never finish). ``ast.parse`` only builds the syntax tree."""
    try:
        tree = ast.parse(text, mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        raise UserError(
            f"activation {text!r} is not a valid expression; write a SymPy expression in x "
            f"with explicit '*' such as '2*x' or 'Max(0, x)'."
        ) from None
    for node in ast.walk(tree):
        if not isinstance(node, ast.BinOp):
            continue
        if isinstance(node.op, ast.Pow):
            e = _exponent_value(node.right)
            if e is None or abs(e) > _MAX_EXPONENT:
                raise UserError(
                    f"activation {text!r} has the exponent {ast.unparse(node.right)!r}; exponents "
                    f"must be numbers between -{_MAX_EXPONENT} and {_MAX_EXPONENT} "
                    f"(use exp(...) for other powers)."
                )
        size = _constant_digits(node)
        if size is not None and size > _MAX_CONSTANT_DIGITS:
            raise UserError(
                f"activation {text!r} contains the constant {ast.unparse(node)!r} with more than "
                f"{_MAX_CONSTANT_DIGITS} digits; use smaller numbers."
            )


def _switch_arguments(expr: sp.Expr) -> list[sp.Expr]:
    """Expressions g(x) whose sign change switches a branch of σ (g = 0 at a switch point)."""
    out: list[sp.Expr] = []
    for node in sp.preorder_traversal(expr):
        if isinstance(node, (sp.Max, sp.Min)):
            args = node.args
            out.extend(a - b for i, a in enumerate(args) for b in args[i + 1 :])
        elif isinstance(node, (sp.Abs, sp.Heaviside, sp.sign, sp.DiracDelta)):
            out.append(node.args[0])
        elif isinstance(node, sp.Piecewise):
            for _, cond in node.args:
                out.extend(rel.lhs - rel.rhs for rel in cond.atoms(sp.core.relational.Relational))
    return out


def _real_roots(poly: sp.Poly) -> list[sp.Expr]:
    """Distinct real roots of a polynomial, factor by factor: exact for linear factors and rational
    coefficients, otherwise numerical to 60 digits on the square-free factor (repeated roots, as in
    x³ − π²x² = x²(x − π²), would stall the numerical root finder)."""
    roots: list[sp.Expr] = []
    for factor, _ in poly.factor_list()[1]:
        if factor.degree() == 1:
            a, b = factor.all_coeffs()
            roots.append(-b / a)
            continue
        try:
            roots.extend(sp.real_roots(factor))
        except (NotImplementedError, sp.PolynomialError, sp.DomainError):
            try:
                roots.extend(r for r in factor.nroots(n=60) if r.is_real)
            except mpmath.libmp.NoConvergence:
                raise UserError(
                    f"the real roots of the switch condition {factor.as_expr()} = 0 could not be located; "
                    f"write the activation with simpler switch arguments."
                ) from None
    return roots


def exact_kinks(expr: sp.Expr) -> list[sp.Expr]:
    """Exact real switch points of σ and σ′, sorted: zeros of the arguments of Max, Min, Abs,
    Heaviside, sign and of Piecewise conditions. Each such argument must be a polynomial in x."""
    points: set[sp.Expr] = set()
    for g in _switch_arguments(expr) + _switch_arguments(sp.diff(expr, X)):
        g = sp.expand(g)
        if not g.has(X):
            continue
        if not g.is_polynomial(X):
            raise UserError(
                f"the switch condition {g} = 0 in the activation is not polynomial in x; "
                f"write Max/Min/Abs/Heaviside/sign/Piecewise with polynomial arguments."
            )
        points.update(_real_roots(sp.Poly(g, X)))
    return sorted(points, key=lambda r: sp.N(r, 30))


def kinks(expr: sp.Expr) -> list[float]:
    """Real points where σ or σ′ is not smooth (for splitting quadratures), sorted, as floats."""
    return [float(r) for r in exact_kinks(expr)]


def derivative(expr: sp.Expr) -> sp.Expr:
    """σ′(x) as an ordinary function: Max(0, x) → Heaviside(x), Abs(x) → sign(x).

    SymPy differentiates products with Heaviside into Dirac deltas (``d/dx [x·H(x)] = x·δ(x) + H(x)``);
    for a continuous σ (checked by :func:`parse_activation`) these terms carry no mass and are dropped.
    """
    d = sp.diff(expr, X)
    if d.has(sp.DiracDelta):
        d = d.replace(lambda e: isinstance(e, sp.DiracDelta), lambda e: sp.S.Zero)
    return d


def describe(expr: sp.Expr) -> str:
    """Canonical text of an expression (structurally equal expressions give the same text), for
    hashing and display."""
    return sp.sstr(expr, order="lex")


def _symmetric(expr: sp.Expr, parity: int) -> bool:
    """True when σ(−x) − parity·σ(x) is identically 0 (numeric screen, then a symbolic proof)."""
    rest = expr.subs(X, -X) - parity * expr
    if rest == 0:
        return True
    f = sp.lambdify(X, rest, "mpmath")
    with mpmath.workdps(30):
        for t in ("0.3183", "1.4142", "2.7183", "-0.5772"):
            if abs(f(mpmath.mpf(t))) > mpmath.mpf("1e-20"):
                return False
    return sp.simplify(rest) == 0


def is_odd(expr: sp.Expr) -> bool:
    """σ(−x) = −σ(x) for all real x (proved symbolically)."""
    return _symmetric(expr, -1)


def is_even(expr: sp.Expr) -> bool:
    """σ(−x) = σ(x) for all real x (proved symbolically)."""
    return _symmetric(expr, 1)


def _numpy(expr: sp.Expr) -> Callable[[np.ndarray], np.ndarray]:
    return sp.lambdify(X, expr, modules=["numpy", "scipy"])


def _values(f: Callable[[np.ndarray], np.ndarray], t: np.ndarray) -> np.ndarray:
    """f(t) in float64 with overflow as inf and non-real values as nan (no warnings)."""
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            v = np.asarray(f(t), dtype=complex)
        except OverflowError:
            return np.full(t.shape, np.inf)
    v = np.broadcast_to(v, t.shape)
    return np.where(np.abs(v.imag) > 1e-12 * (1 + np.abs(v.real)), np.nan, v.real)


def _check_function(expr: sp.Expr, label: str, text: str, points: list[sp.Expr]) -> None:
    """Real and finite on the line, no poles, and E f(ξ)² < ∞ (growth slower than exp(x²/4))."""
    f = _numpy(expr)
    grid = np.concatenate(
        [np.linspace(-12.0, 12.0, 241) + 0.0123456789, [float(p) + s for p in points for s in (-1e-3, 1e-3)]]
    )
    v = _values(f, grid)
    if np.isinf(v).any():
        raise UserError(
            f"activation {text!r}: {label} overflows at x = {grid[np.isinf(v)][0]:.4g}, so its "
            f"Gaussian second moment is infinite or out of range; use a function that grows "
            f"more slowly."
        )
    bad = np.isnan(v)
    if bad.any():
        raise UserError(
            f"activation {text!r}: {label} is not real and finite at x = {grid[bad][0]:.4g}; "
            f"use a function defined on the whole real line."
        )
    # E f(ξ)² = ∫ f² e^{-t²/2} dt/√(2π) is finite iff g(t) = 2 log|f(t)| - t²/2 → -∞; sample g at |t| = 10..40.
    growth: list[float] = []
    overflow = None
    for t in (10.0, 20.0, 30.0, 40.0):
        w = np.abs(_values(f, np.array([t, t + 0.37, t + 0.71, -t, -t - 0.37, -t - 0.71])))
        if not np.all(np.isfinite(w)):
            overflow = t
            break
        growth.append(2 * np.log(max(w.max(), 1e-300)) - t * t / 2)
    if any(later >= earlier for earlier, later in zip(growth, growth[1:])):
        raise UserError(
            f"activation {text!r}: {label} grows like exp(c·x²) with c >= 1/4, so its Gaussian "
            f"second moment E {label}(ξ)² is infinite; use a function that grows more slowly."
        )
    if overflow is not None:
        raise UserError(
            f"activation {text!r}: {label} overflows double precision at |x| = {overflow:g}, so its "
            f"Gaussian moments cannot be computed reliably; use a function that grows more slowly."
        )
    try:
        sing = sp.singularities(expr, X, sp.S.Reals)
    except (NotImplementedError, TypeError, ValueError):
        return
    if isinstance(sing, sp.FiniteSet):
        for s in sing:
            s0 = float(s)
            near = np.abs(_values(f, np.array([s0 - 1e-8, s0 + 1e-8, s0 - 1e-2, s0 + 1e-2])))
            if not np.all(np.isfinite(near)) or near[:2].max() > 1e3 * max(1.0, near[2:].max()):
                raise UserError(
                    f"activation {text!r}: {label} has a pole at x = {s0:.6g}, so E {label}(ξ)² "
                    f"is infinite; use a function without singularities on the real line."
                )


def _check_continuity(expr: sp.Expr, text: str, points: list[sp.Expr]) -> None:
    """σ must not jump at its switch points (else σ′ would contain a Dirac delta)."""
    f = sp.lambdify(X, expr, "mpmath")
    with mpmath.workdps(40):
        h = mpmath.mpf("1e-25")
        for p in points:
            r = sp.N(p, 45)
            left, right = f(mpmath.mpf(r) - h), f(mpmath.mpf(r) + h)
            if abs(right - left) > mpmath.mpf("1e-15") * (1 + abs(left)):
                raise UserError(
                    f"activation {text!r} jumps at x = {float(r):.6g}, so its derivative is not "
                    f"a function; use a continuous activation (e.g. 'Max(0, x)' instead of "
                    f"'Heaviside(x)')."
                )


def _parse_text(text: str) -> sp.Expr:
    _check_tokens(text)
    _check_sizes(text)
    namespace: dict[str, object] = {
        "__builtins__": {},
        "Integer": sp.Integer,
        "Float": sp.Float,
        "Rational": sp.Rational,
    }
    namespace.update(FUNCTIONS)
    namespace.update(CONSTANTS)
    try:
        expr = parse_expr(
            text, local_dict={"x": X}, global_dict=namespace, transformations=standard_transformations + (rationalize,)
        )
    except Exception as exc:  # the text passed the whitelist; any SymPy complaint is a user error
        raise UserError(
            f"activation {text!r} could not be read ({type(exc).__name__}: {exc}); "
            f"write a SymPy expression in x such as 'Max(0, x)'."
        ) from None
    if not isinstance(expr, sp.Expr):
        raise UserError(
            f"activation {text!r} is not a real-valued expression (got {type(expr).__name__}); "
            f"write an expression in x such as 'Max(0, x)'."
        )
    if expr.has(sp.zoo, sp.oo, sp.nan):
        raise UserError(
            f"activation {text!r} contains an infinite or undefined constant (such as 1/0); "
            f"write a function that is finite on the whole real line."
        )
    extra = expr.free_symbols - {X}
    if extra:
        raise UserError(
            f"activation {text!r} has the unknown symbol {sorted(map(str, extra))[0]!r}; the only "
            f"variable is x and the allowed names are: {_allowed_names()}."
        )
    return expr


@lru_cache(maxsize=256)
def parse_activation(text: str) -> sp.Expr:
    """The activation σ(x) of a name or of SymPy expression text in x, validated.

    Raises :class:`UserError` for unsafe or unknown text, for values that are not real and finite,
    for jumps (σ′ must be a function) and when E σ(ξ)² or E σ′(ξ)² is infinite.
    """
    if not isinstance(text, str) or not text.strip():
        raise UserError("the activation is empty; give a name (relu, tanh, ...) or an expression in x.")
    text = text.strip()
    if len(text) > _MAX_TEXT or "\n" in text or "\r" in text:
        raise UserError(f"the activation must be one line of at most {_MAX_TEXT} characters; shorten the expression.")
    if text.lower() in NAMED:
        return NAMED[text.lower()]
    expr = _parse_text(text)
    points = exact_kinks(expr)
    _check_function(expr, "σ", text, points)
    _check_continuity(expr, text, points)
    _check_function(derivative(expr), "σ′", text, points)
    return expr
