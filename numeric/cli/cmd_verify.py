"""``sobolev-rf verify``: re-solve one model point with mpmath and report the agreeing digits."""

from __future__ import annotations

import argparse
import json

from ...derive.errors import UserError
from ..theory.verify import verify_point
from .args import add_model_arguments, params_from_args


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "verify",
        description="Solve the model point with the generated double-precision solver, then run Newton's "
        "method on the same equations with mpmath at --digits digits, and print the agreeing "
        "digits of every output and the high-precision residual.",
    )
    add_model_arguments(p)
    p.add_argument("--digits", type=int, default=50, metavar="N", help="mpmath precision (default: 50)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if not 20 <= args.digits <= 1000:
        raise UserError(f"--digits must be between 20 and 1000, got {args.digits}.")
    params = params_from_args(args)
    report = verify_point(params, digits=args.digits)
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print(
        f"mpmath at {report['digits']} digits: residual {report['residual']:.1e}, "
        f"{report['newton_iterations']} Newton iterations; agreeing digits (min) {report['agreeing_digits']:.1f}"
    )
    for name, row in report["outputs"].items():
        print(f"  {name:15s} {row['double']:<24.17g} {row['agreeing_digits']:5.1f} digits")
    if "note" in report:
        print(f"  note: {report['note']}")
    return 0
