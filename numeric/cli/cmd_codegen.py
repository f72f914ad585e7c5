"""``sobolev-rf codegen``: write the generated NumPy module or C source of the fixed point for k directions."""

from __future__ import annotations

import argparse

from ...derive.params import MAX_K
from ...derive.values import integer
from .args import BRANCH_HELP, BRANCHES, study_out, tau_value


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "codegen",
        description="Generate the residual, Jacobian, outputs and batch solver of the fixed point for k "
        "directions and write them to DIR/<system name>.py (--target numpy) or .c (--target c).",
    )
    p.add_argument("--k", default="1", metavar="K", help=f"number of gradient directions, 0 to {MAX_K} (default: 1)")
    p.add_argument("--tau", default="1", metavar="TAU", help="0: L2 training, > 0: Sobolev (default: 1)")
    p.add_argument("--branch", choices=BRANCHES, default="ridge", help=BRANCH_HELP)
    p.add_argument("--target", choices=("numpy", "c"), default="numpy", help="language (default: numpy)")
    p.add_argument("--out", default=".", metavar="DIR", help="output folder (default: current folder)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    k = integer("--k", args.k, 0, MAX_K)
    from ...codegen.atomic import atomic_write_text
    from ...codegen.c.printer import generate_c_source
    from ...codegen.numpy.printer import generate_numpy_source
    from ...derive.saddle import derive_system

    system = derive_system(k, tau_value(args.tau), args.branch)
    source = generate_numpy_source(system) if args.target == "numpy" else generate_c_source(system)
    out = study_out(args)
    path = atomic_write_text(out / f"{system.name}.{'py' if args.target == 'numpy' else 'c'}", source)
    print(path)
    return 0
