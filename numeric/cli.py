"""The ``sobolev-rf`` command: one subcommand per job, all sharing one parameter object.

Every subcommand module defines ``add_parser(subparsers)`` which registers itself and sets
``func(args) -> int``. Bad input raises :class:`~sobolev_rf.derive.errors.UserError`, which
becomes one line on stderr and exit code 2 (``--debug`` shows the traceback).
"""
from __future__ import annotations

import argparse
import importlib
import shlex
import sys
from typing import Sequence

from sobolev_rf.derive.errors import UserError

#: Subcommand modules, in the order ``--help`` lists them.
COMMAND_MODULES = (
    "sobolev_rf.numeric.cmd_hermite",
    "sobolev_rf.numeric.cmd_simulate",
    "sobolev_rf.numeric.cmd_solve",
    "sobolev_rf.numeric.cmd_pencil",
    "sobolev_rf.numeric.cmd_derive",
    "sobolev_rf.numeric.cmd_demo",
    "sobolev_rf.numeric.cmd_codegen",
    "sobolev_rf.numeric.cmd_verify",
    "sobolev_rf.numeric.cmd_sweep",
    "sobolev_rf.numeric.cmd_alignment",
    "sobolev_rf.numeric.cmd_informed",
    "sobolev_rf.numeric.cmd_noise",
    "sobolev_rf.numeric.cmd_cost",
)

DESCRIPTION = """\
Exact asymptotics of Sobolev training for random-feature models.

A random-feature network f(x) = Σ_j w_j σ(θ_jᵀx/√d) is trained by ridge regression on n function
values and, with τ = 1, on k projected gradients per sample; sobolev-rf predicts its test errors
in the limit d, n, p → ∞ and checks them against an exact finite-size simulation.
"""


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors and exit code 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="sobolev-rf", description=DESCRIPTION,
                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name in COMMAND_MODULES:
        importlib.import_module(name).add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    words = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(words)
    args.command_line = shlex.join(["sobolev-rf", *words])  # written into every figure and CSV
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except UserError as exc:
        if args.debug:
            raise
        print(f"sobolev-rf: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        # the reader (e.g. `| head`) went away: stop quietly, as command-line tools do
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except KeyboardInterrupt:
        print("sobolev-rf: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
