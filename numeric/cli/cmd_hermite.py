"""``sobolev-rf hermite``: the Hermite coefficients κ₀, κ₁, κ_*, κ₀′, κ₁′, κ_*′ (and c_σ) of an activation."""

from __future__ import annotations

import argparse

from ...derive.activations import parse_activation
from ...derive.hermite import MAX_DIGITS, MAX_ORDER, hermite_coefficients, hermite_sequence
from ...derive.values import integer

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


def run(args: argparse.Namespace) -> int:
    """Compute and print the coefficients in the requested format."""
    from ..reports.hermite import json_text, text

    digits = integer("--digits", args.digits, 1, MAX_DIGITS)
    order = None if args.order is None else integer("--order", args.order, 0, MAX_ORDER)
    expr = parse_activation(args.activation)
    coeffs = hermite_coefficients(expr, digits).coefficients()
    sequence = None if order is None else hermite_sequence(expr, order, digits)
    print(json_text(expr, coeffs, sequence, digits) if args.json else text(expr, coeffs, sequence, digits, args.latex))
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
