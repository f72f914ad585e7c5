"""``sobolev-rf pencil``: the linear pencil of a rational matrix expression and its fixed-point equations."""

from __future__ import annotations

import argparse
import json
import re
from typing import Any

import sympy as sp
from sympy import MatrixSymbol

from ...derive.errors import UserError
from ...derive.laws import GaussianMatrix
from ...derive.ovfp import derive_system
from ...derive.pencil import SYNTAX_HELP, declare_shapes, linearize, parse_expression
from .args import add_declaration_arguments

HELP = "linear pencil and operator-valued fixed point of a rational matrix expression"

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
        "pencil", help=HELP, description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter
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


def _parse_params(items: list[str]) -> dict[str, float | complex]:
    from ...derive.laws import parse_value

    out: dict[str, float | complex] = {}
    for item in items:
        m = re.fullmatch(r"\s*([A-Za-z_][A-Za-z_0-9]*)\s*=\s*(\S+)\s*", item)
        if not m:
            raise UserError(f"bad parameter {item!r}; write NAME=VALUE, e.g. lam=0.5 or z=1+0.01j.")
        out[m.group(1)] = parse_value(m.group(1), m.group(2))
    return out


def json_number(value: float | complex) -> float | dict[str, float]:
    """A JSON number, or ``{"re": ..., "im": ...}`` for a complex value."""
    if isinstance(value, complex):
        return {"re": value.real, "im": value.imag}
    return float(value)


def _text_number(value: float | complex) -> str:
    if isinstance(value, complex):
        sign = "-" if value.imag < 0 else "+"
        return f"{value.real:.15g} {sign} {abs(value.imag):.15g}i"
    return f"{value:.15g}"


def declarations(
    args: argparse.Namespace,
) -> tuple[dict[str, MatrixSymbol], dict[str, sp.Symbol], list[Any], dict[str, bool], dict[str, float | complex]]:
    """Matrices, dimensions, diagonal laws, Gaussian names (→ symmetric?) and parameter values of a command
    line with --shape, --symmetric, --diag and --param (shared by ``pencil`` and ``spectrum``)."""
    from ...derive.laws import declare_diagonals

    mats, dims = declare_shapes(args.shape)
    diag_mats, laws = declare_diagonals(args.diag, dims, taken=mats)
    for name in args.symmetric:
        if name not in mats:
            raise UserError(f"--symmetric {name}: declare {name} with --shape first.")
        if mats[name].rows != mats[name].cols:
            raise UserError(f"--symmetric {name}: {name} must be square.")
    gaussians = {n: n in args.symmetric for n in mats}
    mats.update(diag_mats)
    values = _parse_params(args.param)
    for name in dims:
        if name in values:
            v = values[name]
            if isinstance(v, complex) or v <= 0:
                raise UserError(f"dimension {name} must be a real number > 0, got {args_value(v)}.")
    return mats, dims, laws, gaussians, values


def args_value(v: float | complex) -> str:
    return f"{v:g}" if not isinstance(v, complex) else str(v)


def run(args: argparse.Namespace) -> int:
    """Build, derive, optionally solve, and print."""
    from ...derive.laws import herglotz_sign

    mats, dims, laws, gaussians, values = declarations(args)
    complex_names = [k for k, v in values.items() if isinstance(v, complex)]
    scalars = {**dims, **{k: sp.Symbol(k) for k in complex_names if k not in dims}}
    expr = parse_expression(args.expr, mats, scalars)
    pencil = linearize(expr)
    system = derive_system(
        pencil, [GaussianMatrix(n, 1, sym) for n, sym in gaussians.items() if n in pencil.symbols], laws
    )
    herglotz: dict[str, int] = {}
    if args.solve and len(complex_names) == 1:
        import numpy as np

        name = complex_names[0]
        real = {k: float(v) for k, v in values.items() if not isinstance(v, complex)}
        sign = herglotz_sign(expr, name, mats, gaussians, laws, real, np.random.default_rng(0))
        if sign:
            herglotz["r"] = sign * (1 if values[name].imag > 0 else -1)
    solution = None
    if args.solve:
        from ..theory.ovfp import solve_system

        solution = solve_system(system, values, herglotz)
    if args.format == "json":
        data: dict[str, Any] = {"expression": sp.sstr(expr), "pencil": pencil.as_dict(), "system": system.as_dict()}
        if args.self_adjoint:
            data["self_adjoint_pencil"] = pencil.self_adjoint().as_dict()
        if solution is not None:
            data["solution"] = {
                "unknowns": {k: json_number(v) for k, v in solution.unknowns.items()},
                "traces": {k: json_number(v) for k, v in solution.outputs.items()},
                "residual": solution.residual,
                "method": solution.method,
                "quadrature_error": solution.quadrature_error,
            }
            if herglotz:
                data["solution"]["imaginary_sign_checked"] = herglotz
        print(json.dumps(data, indent=2))
        return 0
    latex = args.format == "latex"
    print(pencil.to_latex() if latex else f"expression: {sp.sstr(expr)}\n{pencil.to_text()}")
    if args.self_adjoint:
        sa = pencil.self_adjoint()
        print(sa.to_latex() if latex else "self-adjoint form:\n" + sa.to_text())
    print(system.to_latex() if latex else system.to_text())
    if solution is not None:
        if latex:
            for name, val in solution.outputs.items():
                print(f"\\tfrac{{1}}{{m}}\\operatorname{{tr}}\\mathrm{{{name}}} = {_text_number(val)}")
        else:
            print(f"solution ({solution.method}, residual {solution.residual:.1e}):")
            for name, val in solution.unknowns.items():
                print(f"  {name} = {_text_number(val)}")
            for name, val in solution.outputs.items():
                print(f"  tr({name})/m = {_text_number(val)}")
    return 0
