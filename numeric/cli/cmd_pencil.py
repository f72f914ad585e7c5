"""``sobolev-rf pencil``: the linear pencil of a rational matrix expression and its fixed-point equations."""

from __future__ import annotations

import argparse
from typing import Any

from ...derive.syntax import SYNTAX_HELP
from .args import add_declaration_arguments

DESCRIPTION = f"""\
Linearises a rational expression in Gaussian and diagonal random matrices into a pencil
L = L0 + sum_i L_i (x) X_i with expr = u^T L^-1 v, derives the matrix Dyson fixed point of its
normalised block traces (random-matrix limit, all dimensions proportional) and, with --solve, solves it.

{SYNTAX_HELP}

Matrices: --shape F=n,p declares a Gaussian matrix with iid N(0,1) entries (--symmetric F makes a square
one a Wigner matrix).  Diagonal matrices (--diag, repeatable; Gaussian matrices must be normalised, e.g.
Ft*F/n):
  D=p                 diag(zeta), zeta_j iid N(0,1); several such D of one size share the index j
  S=d@1:0.3,3:0.7     a discrete law (value:weight, or equal weights with S=d@1,3)
  S=d@uniform(0.5,2)  uniform on [0.5, 2] (Gauss-Legendre quadrature)
  S,T=d@spec.csv      a joint empirical law: one row per index j, one column per matrix, equal weights
  B=d@A, B=d@A^2, B=d@sqrt(A), B=d@1/(1+A)
                      a function of other diagonals of the same size: the same index j (B=d@A is A itself)

Parameters: --param NAME=VALUE, real, or complex such as z=1+0.01j.  Complex parameters are solved on the
physical branch (continued from z -> i*infinity); for an expression inv(M + c*z*I) with M symmetric the sign
of Im tr is checked.  Complex traces are printed as a + bi, and in JSON as {{"re": a, "im": b}}.

Examples:
  sobolev-rf pencil 'inv(lam*I + Ft*F/n)' --shape F=n,p --solve --param lam=0.5 --param n=1 --param p=2
  sobolev-rf pencil 'inv(Ft*F/n - z*I)' --shape F=n,p --solve --param z=1+0.01j --param n=1 --param p=2
  sobolev-rf pencil 'inv(R*Zt*Z*R/n + lam) * T * inv(R*Zt*Z*R/n + lam) * S' --shape Z=n,d
      --diag S,T=d@spectrum.csv --diag R=d@sqrt(S) --solve --param lam=0.1 --param n=1 --param d=0.5
"""


def add_parser(subparsers: Any) -> None:
    """Register ``pencil``."""
    parser = subparsers.add_parser(
        "pencil", description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("expr", metavar="EXPR", help="the rational matrix expression (syntax above)")
    add_declaration_arguments(parser)
    parser.add_argument(
        "--format", choices=("text", "latex", "json"), default="text", help="output format (default: %(default)s)"
    )
    parser.add_argument("--self-adjoint", action="store_true", help="also print the self-adjoint (hermitised) pencil")
    parser.add_argument("--solve", action="store_true", help="solve the fixed point numerically")
    parser.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a scalar parameter (real, or complex such as z=1+0.01j) or dimension "
        "(dimensions may be ratios, e.g. p=2 d=1)",
    )
    parser.set_defaults(func=run)


def _derived(args: argparse.Namespace, values: dict[str, float | complex]) -> tuple[Any, dict[str, Any]]:
    """Parse, linearise and derive (SymPy); the system and, as plain data, everything printed about it."""
    import numpy as np
    import sympy as sp

    from ...derive.declarations import declarations
    from ...derive.laws import GaussianMatrix, herglotz_sign
    from ...derive.matrix_syntax import parse_expression
    from ...derive.ovfp import derive_system
    from ...derive.pencil import linearize

    mats, dims, laws, gaussians, _ = declarations(args.shape, args.symmetric, args.diag, args.param)
    complex_names = [k for k, v in values.items() if isinstance(v, complex)]
    scalars = {**dims, **{k: sp.Symbol(k) for k in complex_names if k not in dims}}
    expr = parse_expression(args.expr, mats, scalars)
    pencil = linearize(expr)
    system = derive_system(
        pencil, [GaussianMatrix(n, 1, sym) for n, sym in gaussians.items() if n in pencil.symbols], laws
    )
    sign = 0
    if len(complex_names) == 1:
        real = {k: float(v) for k, v in values.items() if not isinstance(v, complex)}
        sign = herglotz_sign(expr, complex_names[0], mats, gaussians, laws, real, np.random.default_rng(0))
    sa = pencil.self_adjoint()
    meta = {
        "dimensions": sorted(dims),
        "herglotz": int(sign or 0),
        "json": {"expression": sp.sstr(expr), "pencil": pencil.as_dict(), "system": system.as_dict()},
        "self_adjoint_json": sa.as_dict() if args.self_adjoint else None,
        "text": [
            f"expression: {sp.sstr(expr)}\n{pencil.to_text()}",
            "self-adjoint form:\n" + sa.to_text(),
            system.to_text(),
        ],
        "latex": [pencil.to_latex(), sa.to_latex(), system.to_latex()],
    }
    return system, meta


def run(args: argparse.Namespace) -> int:
    """Derive (or load the cached system), optionally solve, and print."""
    from ...derive.declarations import check_dimensions, declaration_key, parse_params
    from ..theory.ovfp import cached_fixed_point

    values = parse_params(args.param)
    complex_names = sorted(k for k, v in values.items() if isinstance(v, complex))
    key = {
        **declaration_key(args.expr, args.shape, args.symmetric, args.diag, args.param),
        "complex": complex_names,
        "self_adjoint": bool(args.self_adjoint),
    }
    fixed_point, meta = cached_fixed_point("pencil-1", key, lambda: _derived(args, values))
    check_dimensions(meta["dimensions"], values)
    herglotz: dict[str, int] = {}
    if meta["herglotz"] and len(complex_names) == 1:
        herglotz["r"] = meta["herglotz"] * (1 if values[complex_names[0]].imag > 0 else -1)
    solution = fixed_point.solve(values, herglotz=herglotz) if args.solve else None
    from ..reports.pencil import json_text, text

    if args.format == "json":
        print(json_text(meta, solution, herglotz, args.self_adjoint))
    else:
        print(text(meta, solution, args.format == "latex", args.self_adjoint))
    return 0
