"""``sobolev-rf pencil``: the linear pencil of a rational matrix expression and its fixed-point equations."""
from __future__ import annotations

import argparse
import json
import math
import re
from typing import Any

import sympy as sp
from sympy import MatrixSymbol

from sobolev_rf.derive.errors import UserError
from sobolev_rf.derive.ovfp import DiagonalLaw, GaussianMatrix, derive_system
from sobolev_rf.derive.pencil import SYNTAX_HELP, declare_shapes, linearize, parse_expression

HELP = "linear pencil and operator-valued fixed point of a rational matrix expression"

DESCRIPTION = f"""\
Linearises a rational expression in Gaussian and diagonal random matrices into a pencil
L = L0 + sum_i L_i (x) X_i with expr = u^T L^-1 v, derives the matrix Dyson fixed point of its
normalised block traces (random-matrix limit, all dimensions proportional) and, with --solve, solves it.

{SYNTAX_HELP}

Matrices: --shape F=n,p declares a Gaussian matrix with iid N(0,1) entries (--symmetric F makes a square
one a Wigner matrix); --diag D=p declares diag(zeta) with zeta iid N(0,1) (several such D of one size share
the index j, zeta_j ~ N(0, I_k)); --diag S=d@1:0.3,3:0.7 a diagonal with a discrete law (value:weight,
or equal weights with S=d@1,3).  Gaussian matrices must be normalised, e.g. Ft*F/n.

Example: sobolev-rf pencil 'inv(lam*I + Ft*F/n)' --shape F=n,p --solve --param lam=0.5 --param n=1 --param p=2
"""


def add_parser(subparsers: Any) -> None:
    """Register ``pencil``."""
    parser = subparsers.add_parser("pencil", help=HELP, description=DESCRIPTION,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("expr", metavar="EXPR", help="the rational matrix expression (syntax above)")
    parser.add_argument("--shape", action="append", default=[], metavar="NAME=ROWS,COLS",
                        help="declare a Gaussian matrix (repeatable)")
    parser.add_argument("--symmetric", action="append", default=[], metavar="NAME",
                        help="make a declared square Gaussian matrix symmetric (Wigner)")
    parser.add_argument("--diag", action="append", default=[], metavar="NAME=DIM[@LAW]",
                        help="declare a diagonal random matrix (repeatable)")
    parser.add_argument("--format", choices=("text", "latex", "json"), default="text",
                        help="output format (default: %(default)s)")
    parser.add_argument("--self-adjoint", action="store_true",
                        help="also print the self-adjoint (hermitised) pencil")
    parser.add_argument("--solve", action="store_true", help="solve the fixed point numerically")
    parser.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                        help="a scalar parameter or dimension (dimensions may be ratios, e.g. p=2 d=1)")
    parser.set_defaults(func=run)


def _parse_diag(spec: str, dims: dict[str, sp.Symbol]) -> tuple[MatrixSymbol, DiagonalLaw | None]:
    """``NAME=DIM`` (normal law, returned as ``None``) or ``NAME=DIM@v1:w1,v2:w2`` / ``@v1,v2`` (discrete)."""
    m = re.fullmatch(r"\s*([A-Za-z_][A-Za-z_0-9]*)\s*=\s*([A-Za-z_][A-Za-z_0-9]*|\d+)\s*(?:@(.*))?", spec)
    if not m:
        raise UserError(f"bad diagonal declaration {spec!r}; write NAME=DIM or NAME=DIM@v1:w1,v2:w2.")
    name, dim, law = m.group(1), m.group(2), m.group(3)
    if name in ("I", "inv", "t", "sqrt"):
        raise UserError(f"{name!r} is reserved and cannot name a matrix.")
    if dim.isdigit():
        size: sp.Expr = sp.Integer(int(dim))
    else:
        size = dims.setdefault(dim, sp.Symbol(dim, positive=True, integer=True))
    sym = MatrixSymbol(name, size, size)
    if law is None:
        return sym, None
    values: list[float] = []
    given: list[float | None] = []
    for item in law.split(","):
        parts = item.split(":")
        try:
            numbers = [float(part) for part in parts]
        except ValueError:
            raise UserError(f"bad law {law!r} for {name}; write v1:w1,v2:w2 or v1,v2.") from None
        if len(parts) > 2 or not all(math.isfinite(x) for x in numbers):
            raise UserError(f"bad law {law!r} for {name}; write v1:w1,v2:w2 or v1,v2 with finite numbers.")
        values.append(numbers[0])
        given.append(numbers[1] if len(numbers) == 2 else None)
    if all(w is None for w in given):
        weights = [1.0 / len(values)] * len(values)
    elif any(w is None for w in given):
        raise UserError(f"give a weight for every value of the law of {name}, or none.")
    else:
        weights = [w for w in given if w is not None]
    return sym, DiagonalLaw((name,), "discrete", tuple((v,) for v in values), tuple(weights))


def _parse_params(items: list[str]) -> dict[str, float]:
    out: dict[str, float] = {}
    for item in items:
        m = re.fullmatch(r"\s*([A-Za-z_][A-Za-z_0-9]*)\s*=\s*(\S+)\s*", item)
        if not m:
            raise UserError(f"bad parameter {item!r}; write NAME=VALUE, e.g. lam=0.5.")
        try:
            value = float(m.group(2))
        except ValueError:
            raise UserError(f"parameter {m.group(1)} must be a number, got {m.group(2)!r}.") from None
        if not math.isfinite(value):
            raise UserError(f"parameter {m.group(1)} must be finite, got {m.group(2)!r}.")
        out[m.group(1)] = value
    return out


def run(args: argparse.Namespace) -> int:
    """Build, derive, optionally solve, and print."""
    mats, dims = declare_shapes(args.shape)
    laws: list[DiagonalLaw] = []
    normal_by_size: dict[str, list[str]] = {}
    for spec in args.diag:
        sym, law = _parse_diag(spec, dims)
        if sym.name in mats:
            raise UserError(f"matrix {sym.name!r} is declared twice.")
        mats[sym.name] = sym
        if law is None:
            normal_by_size.setdefault(sp.srepr(sym.rows), []).append(sym.name)
        else:
            laws.append(law)
    laws += [DiagonalLaw(tuple(names), "normal") for names in normal_by_size.values()]
    diag_names = {n for law in laws for n in law.names}
    for name in args.symmetric:
        if name not in mats or name in diag_names:
            raise UserError(f"--symmetric {name}: declare {name} with --shape first.")
    gaussians = [GaussianMatrix(n, 1, n in args.symmetric) for n in mats if n not in diag_names]
    expr = parse_expression(args.expr, mats, dims)
    pencil = linearize(expr)
    system = derive_system(pencil, gaussians, laws)
    values = _parse_params(args.param)
    for name in dims:
        if name in values and values[name] <= 0:
            raise UserError(f"dimension {name} must be > 0, got {values[name]:g}.")
    solution = system.solve(values) if args.solve else None
    if args.format == "json":
        data: dict[str, Any] = {"expression": sp.sstr(expr), "pencil": pencil.as_dict(), "system": system.as_dict()}
        if args.self_adjoint:
            data["self_adjoint_pencil"] = pencil.self_adjoint().as_dict()
        if solution is not None:
            data["solution"] = {"unknowns": solution.unknowns, "traces": solution.outputs,
                                "residual": solution.residual, "method": solution.method,
                                "quadrature_error": solution.quadrature_error}
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
                print(f"\\tfrac{{1}}{{m}}\\operatorname{{tr}}\\mathrm{{{name}}} = {val:.15g}")
        else:
            print(f"solution ({solution.method}, residual {solution.residual:.1e}):")
            for name, val in solution.unknowns.items():
                print(f"  {name} = {val:.15g}")
            for name, val in solution.outputs.items():
                print(f"  tr({name})/m = {val:.15g}")
    return 0
