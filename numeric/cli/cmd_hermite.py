"""``sobolev-rf hermite``: the Hermite coefficients κ₀, κ₁, κ_*, κ₀′, κ₁′, κ_*′ (and c_σ) of an activation."""

from __future__ import annotations

import argparse
import json

import mpmath
import sympy as sp

from ...derive.activations import describe, parse_activation
from ...derive.hermite import MAX_DIGITS, MAX_ORDER, Coefficient, hermite_coefficients, hermite_sequence
from .args import integer

DESCRIPTION = """\
Gaussian (Hermite) coefficients of an activation σ and of its derivative σ′, for ξ ~ N(0, 1):

  κ₀ = E σ(ξ)     κ₁ = E ξσ(ξ)     κ_*² = E σ(ξ)² − κ₀² − κ₁²
  κ₀′ = E σ′(ξ)   κ₁′ = E ξσ′(ξ)   κ_*′² = E σ′(ξ)² − κ₀′² − κ₁′²
  c_σ = E σ(ξ)σ′(ξ) − κ₀κ₀′ − κ₁κ₁′,   a_j = E σ(ξ) He_j(ξ)  (with --order)

Exact closed forms are given where they exist (ReLU, abs, erf, GELU, polynomials, ...);
every value is correct to --digits significant digits (high-precision quadrature otherwise).
By Stein's identity κ₀′ = κ₁.

examples:
  sobolev-rf hermite --activation relu
  sobolev-rf hermite --activation 'x*erf(x/sqrt(2))' --digits 50 --json
  sobolev-rf hermite --activation tanh --order 8 --latex
"""

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


def _entry(c: Coefficient, digits: int) -> dict[str, str | None]:
    return {"value": decimal_string(c.value, digits), "exact": None if c.exact is None else sp.sstr(c.exact)}


def run(args: argparse.Namespace) -> int:
    """Compute and print the coefficients in the requested format."""
    digits = integer("--digits", args.digits, 1, MAX_DIGITS)
    order = None if args.order is None else integer("--order", args.order, 0, MAX_ORDER)
    expr = parse_activation(args.activation)
    coeffs = hermite_coefficients(expr, digits).coefficients()
    sequence = None if order is None else hermite_sequence(expr, order, digits)

    if args.json:
        out: dict[str, object] = {"activation": describe(expr), "digits": digits}
        out.update({key: _entry(coeffs[field], digits) for field, key, _, _ in ROWS})
        if sequence is not None:
            out["sequence"] = [_entry(c, digits) for c in sequence]
        print(json.dumps(out, indent=2, ensure_ascii=False))
        return 0

    rows = [(field, symbol, latex, coeffs[field]) for field, _, symbol, latex in ROWS]
    if sequence is not None:
        rows += [(f"a_{j}", f"a_{j}", f"a_{{{j}}}", c) for j, c in enumerate(sequence)]
    if args.latex:
        print(f"% sigma(x) = {sp.latex(expr)}")
        for _, _, latex, c in rows:
            rhs = sp.latex(c.exact) if c.exact is not None else r"\approx " + decimal_string(c.value, digits)
            print(f"{latex} = {rhs}" if c.exact is not None else f"{latex} {rhs}")
        return 0

    print(f"σ(x) = {describe(expr)}   ({digits} significant digits; ξ ~ N(0, 1))")
    table = [
        (name, symbol, decimal_string(c.value, digits), "" if c.exact is None else sp.sstr(c.exact))
        for name, symbol, _, c in rows
    ]
    widths = [max(len(r[i]) for r in table) for i in range(3)]
    for name, symbol, value, exact in table:
        print(f"{name:<{widths[0]}}  {symbol:<{widths[1]}}  {value:>{widths[2]}}  {exact}".rstrip())
    return 0


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register ``hermite``."""
    p = subparsers.add_parser(
        "hermite",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--activation",
        default="relu",
        metavar="EXPR",
        help="a name (relu, tanh, erf, sigmoid, softplus, gelu, linear, abs) or a SymPy "
        "expression in x, e.g. 'Max(0, x)' (default: %(default)s)",
    )
    p.add_argument(
        "--digits", default="30", metavar="N", help=f"significant digits, 1 to {MAX_DIGITS} (default: %(default)s)"
    )
    p.add_argument(
        "--order",
        default=None,
        metavar="M",
        help=f"also print the Hermite sequence a_j = E σ(ξ)He_j(ξ) for j = 0..M (M <= {MAX_ORDER})",
    )
    fmt = p.add_mutually_exclusive_group()
    fmt.add_argument(
        "--json",
        action="store_true",
        help="print a JSON object {name: {value: decimal string, exact: SymPy string or null}}",
    )
    fmt.add_argument("--latex", action="store_true", help="print the exact forms as LaTeX")
    p.set_defaults(func=run)
