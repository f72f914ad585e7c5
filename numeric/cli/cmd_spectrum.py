"""``sobolev-rf spectrum``: the limiting spectral density of a self-adjoint rational matrix expression."""

from __future__ import annotations

import argparse
import json
import math
import re
from typing import Any

from ...derive.errors import UserError

DESCRIPTION = """\
Limiting eigenvalue density of a symmetric N x N rational expression M in Gaussian and diagonal random
matrices (all dimensions proportional).  The Stieltjes transform m(z) = (1/N) tr (M - z)^-1 is the normalised
trace of a linear pencil; its operator-valued fixed point is solved at z = x + i*eta on the physical branch
(anchors continued from z -> i*infinity, then continuation along x, with the sign of Im m checked), and
rho(x) = Im m(x + i*eta)/pi.  Atoms (point masses) are located by fitting the pole of m and reported with their
mass; the printed density is the continuous part (the atoms' Lorentzians removed).

Expression syntax and declarations (--shape, --symmetric, --diag, --param) as in `sobolev-rf pencil --help`;
parameters are real here, and every dimension needs its ratio (e.g. --param n=1 --param p=2).

Output: a short table, or --json {"x": [...], "density": [...], "atoms": [{"x": .., "mass": ..}], ...};
--out DIR writes spectrum.png (with the eigenvalue histogram of one finite draw of size --n on top),
spectrum.csv (x, density, Re m, Im m), spectrum_atoms.csv and, with --n, spectrum_eigenvalues.csv.

Examples:
  sobolev-rf spectrum 'Ft*F/n' --shape F=n,p --param n=1 --param p=2 --x 0:6:400 --eta 1e-6
  sobolev-rf spectrum 'C*Xt*X*C/n' --shape X=n,d --diag C=d@1:0.5,2:0.5 --param n=1 --param d=0.5
      --x 0:12:400 --eta 1e-4 --out out/wishart
"""


def _grid(text: str) -> tuple[float, float, int]:
    m = re.fullmatch(r"\s*([^:]+):([^:]+):([^:]+)\s*", text)
    if not m:
        raise UserError(f"bad --x {text!r}; write a:b:num, e.g. 0:4:400.")
    try:
        a, b = float(m.group(1)), float(m.group(2))
    except ValueError:
        raise UserError(f"bad --x {text!r}; a and b must be numbers.") from None
    if not re.fullmatch(r"\s*\d+\s*", m.group(3)):
        raise UserError(f"bad --x {text!r}; num must be an integer.")
    num = int(m.group(3))
    if not (math.isfinite(a) and math.isfinite(b) and a < b):
        raise UserError(f"bad --x {text!r}; need finite a < b.")
    if not 2 <= num <= 100000:
        raise UserError(f"bad --x {text!r}; num must be between 2 and 100000.")
    return a, b, num


def _positive(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text!r}") from None
    if not (math.isfinite(v) and v > 0):
        raise argparse.ArgumentTypeError(f"expected a finite number > 0, got {text!r}")
    return v


def _size(text: str) -> int:
    if not re.fullmatch(r"\s*\d+\s*", text):
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}")
    v = int(text)
    if v > 20000:
        raise argparse.ArgumentTypeError(f"at most 20000, got {text!r}")
    return v


def add_parser(subparsers: Any) -> None:
    """Register ``spectrum``."""
    from .args import add_declaration_arguments

    parser = subparsers.add_parser(
        "spectrum", description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("expr", metavar="EXPR", help="a self-adjoint (symmetric) rational matrix expression")
    add_declaration_arguments(parser)
    parser.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a real scalar parameter or a dimension ratio (repeatable)",
    )
    parser.add_argument(
        "--x", default="0:4:400", metavar="A:B:NUM", help="the grid of x, NUM points from A to B (default: %(default)s)"
    )
    parser.add_argument(
        "--eta",
        type=_positive,
        default=1e-4,
        metavar="E",
        help="the distance from the real axis, z = x + i*eta (default: %(default)s)",
    )
    parser.add_argument(
        "--n",
        type=_size,
        default=1000,
        metavar="N",
        help="size of the finite draw whose eigenvalue histogram goes on the figure (0: none; default: %(default)s)",
    )
    parser.add_argument("--seed", type=_size, default=0, help="seed of the finite draw (default: %(default)s)")
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.add_argument("--out", metavar="DIR", help="write spectrum.png and CSV files into DIR")
    parser.set_defaults(func=run)


def _parsed(args: argparse.Namespace, real: dict[str, float]) -> tuple[Any, dict[str, Any], dict[str, bool], list[Any]]:
    """The expression (SymPy) with its matrices, Gaussian names and laws, checked square and self-adjoint."""
    import numpy as np
    import sympy as sp

    from ...derive.declarations import declarations
    from ...derive.laws import is_self_adjoint
    from ...derive.matrix_syntax import parse_expression

    mats, dims, laws, gaussians, _ = declarations(args.shape, args.symmetric, args.diag, args.param)
    expr = parse_expression(args.expr, mats, dims)
    if expr.rows != expr.cols:
        raise UserError(f"the expression is {sp.sstr(expr.rows)} x {sp.sstr(expr.cols)}; it must be square.")
    if not is_self_adjoint(expr, mats, gaussians, laws, real, np.random.default_rng(0)):
        raise UserError("the expression is not self-adjoint (symmetric); e.g. write Ft*F/n, not F*F' * D.")
    return expr, mats, gaussians, laws


def run(args: argparse.Namespace) -> int:
    """Derive (or load the cached system), solve along the grid, find atoms, print or write."""
    import numpy as np

    from ...derive.declarations import check_dimensions, declaration_key, parse_params
    from ..progress import Progress
    from ..studies.spectrum import StieltjesSolver, check_finite_draw, finite_eigenvalues, spectral_density
    from ..theory.ovfp import cached_fixed_point

    a, b, num = _grid(args.x)
    values = parse_params(args.param)
    for k, v in values.items():
        if isinstance(v, complex):
            raise UserError(f"parameter {k} must be real here (the spectral parameter z is added by spectrum).")
    real = {k: float(v) for k, v in values.items() if not isinstance(v, complex)}
    parsed: list[Any] = []

    def parse() -> tuple[Any, dict[str, Any], dict[str, bool], list[Any]]:
        if not parsed:
            parsed.extend(_parsed(args, real))
        return parsed[0], parsed[1], parsed[2], parsed[3]

    if args.out and args.n > 0:
        expr, mats, _, _ = parse()
        check_finite_draw(expr, mats, real, args.n)  # before any work

    def derive() -> tuple[Any, dict[str, Any]]:
        import sympy as sp

        from ...derive.pencil import CopySum
        from ..studies.spectrum import latex_lines, resolvent_system

        expr, mats, gaussians, laws = parse()
        system, zname = resolvent_system(expr, gaussians, laws, taken=list(real))
        dims = sorted({str(d) for m in mats.values() for d in sp.sympify(m.shape).free_symbols})
        copies = sorted({str(c) for s in expr.atoms(CopySum) for c in sp.sympify(s.count).free_symbols})
        meta = {"z": zname, "expression": sp.sstr(expr), "latex": latex_lines(expr), "dimensions": dims}
        return system, {**meta, "copies": copies}

    key = declaration_key(args.expr, args.shape, args.symmetric, args.diag, args.param)
    fixed_point, meta = cached_fixed_point("spectrum-resolvent-1", key, derive)
    check_dimensions(meta["dimensions"], real)
    for name in meta.get("copies", []):  # the number k of a sum(D, k, ...)
        if name in real and not (real[name] >= 1 and real[name] == int(real[name])):
            raise UserError(f"the number of copies {name} must be a positive integer, got {real[name]:g}.")
    solver = StieltjesSolver(fixed_point, meta["z"], real)
    x = np.linspace(a, b, num)
    eigs = None
    if args.out and args.n > 0:
        expr, mats, gaussians, laws = parse()
        eigs = finite_eigenvalues(expr, mats, gaussians, laws, real, args.n, np.random.default_rng(args.seed))
    with Progress(num, "spectrum") as bar:

        def report(done: int, total: int) -> None:
            bar.update(done - bar.count)

        spec = spectral_density(solver, x, args.eta, callback=report)
    if spec.stats.get("unresolved"):
        import sys

        print(
            f"sobolev-rf: warning: {spec.stats['unresolved']} of {num} points did not converge on the "
            "physical branch (left empty).",
            file=sys.stderr,
        )
    if args.out:
        from ..artifacts import write_outputs
        from ..plots.spectrum import spectrum_png
        from ..reports.spectrum import csv_files

        command = getattr(args, "command_line", "sobolev-rf spectrum")
        pars = ", ".join(f"{k} = {v:g}" for k, v in real.items())
        title = "\n".join(f"${line}$" for line in meta["latex"]) + (f"\n({pars})" if pars else "")
        files: dict[str, str | bytes] = {
            "spectrum.png": spectrum_png(spec, eigs, title, command),
            **csv_files(command, spec, eigs),
        }
        try:
            paths = write_outputs(args.out, files)
        except OSError as exc:
            raise UserError(f"cannot write into {args.out!r}: {exc.strerror or exc.__class__.__name__}.") from None
        if not args.json:
            print("wrote " + ", ".join(str(p) for p in paths))
    if args.json:
        print(json.dumps(spec.as_dict()))
        return 0
    from ..reports.spectrum import summary

    print(summary(spec, meta["expression"], a, b, args.eta))
    return 0
