"""The printed forms of the Hermite coefficients (``sobolev-rf hermite``): a table, LaTeX lines or JSON."""

from __future__ import annotations

import json

import mpmath
import sympy as sp

from ...derive.activations import describe
from ...derive.hermite import Coefficient

#: (field, JSON key, symbol, LaTeX symbol) in output order.
ROWS = (
    ("kappa0", "kappa0", "κ₀", r"\kappa_0"),
    ("kappa1", "kappa1", "κ₁", r"\kappa_1"),
    ("kappa_star", "kappa_star", "κ_*", r"\kappa_*"),
    ("kappa0_prime", "kappa0_prime", "κ₀′", r"\kappa_0'"),
    ("kappa1_prime", "kappa1_prime", "κ₁′", r"\kappa_1'"),
    ("kappa_star_prime", "kappa_star_prime", "κ_*′", r"\kappa_*'"),
    ("cross", "cross", "c_σ", r"c_\sigma"),
    ("second_moment", "second_moment", "E σ²", r"\mathbb{E}\,\sigma(\xi)^2"),
    ("second_moment_prime", "second_moment_prime", "E σ′²", r"\mathbb{E}\,\sigma'(\xi)^2"),
)


def decimal_string(value: mpmath.mpf, digits: int) -> str:
    """``value`` rounded to ``digits`` significant digits (trailing zeros kept); exact 0 is "0"."""
    if value == 0:
        return "0"
    return mpmath.nstr(value, digits, strip_zeros=False)


def entry(c: Coefficient, digits: int) -> dict[str, str | None]:
    return {"value": decimal_string(c.value, digits), "exact": None if c.exact is None else sp.sstr(c.exact)}


def json_text(expr: sp.Expr, coeffs: dict[str, Coefficient], sequence: list[Coefficient] | None, digits: int) -> str:
    """One JSON object: {name: {value: decimal string, exact: SymPy string or null}}, ``sequence`` as a list."""
    out: dict[str, object] = {"activation": describe(expr), "digits": digits}
    out.update({key: entry(coeffs[field], digits) for field, key, _, _ in ROWS})
    if sequence is not None:
        out["sequence"] = [entry(c, digits) for c in sequence]
    return json.dumps(out, indent=2, ensure_ascii=False)


def text(
    expr: sp.Expr, coeffs: dict[str, Coefficient], sequence: list[Coefficient] | None, digits: int, latex: bool
) -> str:
    """The coefficients (and ``sequence`` as a_0, a_1, ...) as LaTeX lines or as a table."""
    rows = [(field, symbol, tex, coeffs[field]) for field, _, symbol, tex in ROWS]
    if sequence is not None:
        rows += [(f"a_{j}", f"a_{j}", f"a_{{{j}}}", c) for j, c in enumerate(sequence)]
    if latex:
        lines = [f"% sigma(x) = {sp.latex(expr)}"]
        for _, _, tex, c in rows:
            rhs = sp.latex(c.exact) if c.exact is not None else r"\approx " + decimal_string(c.value, digits)
            lines.append(f"{tex} = {rhs}" if c.exact is not None else f"{tex} {rhs}")
        return "\n".join(lines)
    lines = [f"σ(x) = {describe(expr)}   ({digits} significant digits; ξ ~ N(0, 1))"]
    table = [
        (name, symbol, decimal_string(c.value, digits), "" if c.exact is None else sp.sstr(c.exact))
        for name, symbol, _, c in rows
    ]
    widths = [max(len(r[i]) for r in table) for i in range(3)]
    for name, symbol, value, exact in table:
        lines.append(f"{name:<{widths[0]}}  {symbol:<{widths[1]}}  {value:>{widths[2]}}  {exact}".rstrip())
    return "\n".join(lines)
