"""The ``sobolev-rf`` command: one subcommand per job, all sharing one parameter object.

Every subcommand module defines ``add_parser(subparsers)`` which registers itself and sets
``func(args) -> int``. Only the module of the subcommand being run is imported (the others are
listed from :data:`COMMANDS` alone), so ``sobolev-rf solve`` does not pay for SymPy, SciPy or
matplotlib unless ``solve`` needs them. Bad input raises
:class:`~sobolev_rf.derive.errors.UserError` (an output that cannot be written too:
:class:`~sobolev_rf.codegen.atomic.WriteError`), which becomes one line on stderr and exit code 2
(``--debug``, before or after the subcommand, shows the traceback).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from typing import Any, NamedTuple

from ...derive.errors import UserError
from ..artifacts import command_line
from .args import join_negative_values


class Command(NamedTuple):
    """A subcommand: the module that implements it and its one-line help."""

    module: str
    help: str


#: Every subcommand, in the order ``--help`` lists them; the one-line help lives here only.
COMMANDS: dict[str, Command] = {
    "hermite": Command("cmd_hermite", "Hermite coefficients κ₀, κ₁, κ_* of σ and σ′"),
    "simulate": Command("cmd_simulate", "exact finite-size simulation: test errors and order parameters over seeds"),
    "solve": Command("cmd_solve", "asymptotic test errors (d, n, p → ∞) of one model point"),
    "pencil": Command("cmd_pencil", "linear pencil and operator-valued fixed point of a rational matrix expression"),
    "spectrum": Command(
        "cmd_spectrum", "limiting spectral density of a self-adjoint matrix expression: Stieltjes inversion, atoms"
    ),
    "derive": Command("cmd_derive", "symbolic fixed point and error formulas for k directions"),
    "demo": Command("cmd_demo", "the main job: double-descent curves, phase diagrams and a theory-vs-simulation table"),
    "codegen": Command(
        "cmd_codegen", "write the generated solver (NumPy module or C source) of the derived fixed point"
    ),
    "verify": Command(
        "cmd_verify", "check the double-precision solution of one point against an mpmath solve at N digits"
    ),
    "sweep": Command(
        "cmd_sweep", "asymptotic errors on a grid of p/d, n/d, lam and noises (generated C or NumPy solver)"
    ),
    "alignment": Command(
        "cmd_alignment",
        "law of eps_L2, eps_H1, eps_grad over the alignment ϖ ~ N(0, I_k): exact CDF, quantiles, simulation",
    ),
    "informed": Command(
        "cmd_informed",
        "data-informed gradient subspaces (outside the theory): random vs informed V vs L2 training over d",
    ),
    "noise": Command(
        "cmd_noise", "label noise vs ridge: optimal λ, the λ → 0⁺ limit and benign regimes (figures + CSV)"
    ),
    "cost": Command(
        "cmd_cost", "is Sobolev training worth its cost? Sobolev vs L2 training at an equal evaluation budget"
    ),
    "tau": Command(
        "cmd_tau", "the optimal Sobolev weight τ*: maps of τ* and of its gain over τ = 0 and τ = 1 (figures + CSV)"
    ),
    "onestep": Command(
        "cmd_onestep",
        "one first-layer step (none / L2 / Sobolev) then an L2 or Sobolev readout: errors, gain map, overlap",
    ),
    "campaign": Command(
        "cmd_campaign", "simulation campaigns: grid × d × seeds on a Dask cluster, results in SQLite, resumable"
    ),
}

DESCRIPTION = """\
Exact asymptotics of Sobolev training for random-feature models.

A random-feature network f(x) = Σ_j w_j σ(θ_jᵀx/√d) is trained by ridge regression on n function
values and, with τ = 1, on k projected gradients per sample; sobolev-rf predicts its test errors
in the limit d, n, p → ∞ and checks them against an exact finite-size simulation.
"""


DEBUG_HELP = "show tracebacks on errors"


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors and exit code 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


class _Subparsers:
    """What a command module's ``add_parser`` sees: argparse's subparsers, with the help of :data:`COMMANDS`."""

    def __init__(self, sub: Any) -> None:
        self._sub = sub

    def add_parser(self, name: str, **kwargs: Any) -> argparse.ArgumentParser:
        kwargs["help"] = COMMANDS[name].help
        parser = self._sub.add_parser(name, **kwargs)
        # also after the subcommand; SUPPRESS keeps a --debug given before it
        parser.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=DEBUG_HELP)
        return parser


def selected_command(words: Sequence[str]) -> str | None:
    """The subcommand named in ``words`` (the first word that is one), or None."""
    return next((w for w in words if w in COMMANDS), None)


def build_parser(words: Sequence[str] = ()) -> argparse.ArgumentParser:
    """The parser; only the module of the subcommand named in ``words`` is imported."""
    parser = _Parser(prog="sobolev-rf", description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--debug", action="store_true", help=DEBUG_HELP)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    chosen = selected_command(words)
    for name, command in COMMANDS.items():
        if name == chosen:
            importlib.import_module(f"{__package__}.{command.module}").add_parser(_Subparsers(sub))
        else:
            sub.add_parser(name, help=command.help)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    words = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(words)
    args = parser.parse_args(join_negative_values(parser, words))
    args.command_line = command_line(words)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    from ...codegen.cache import terminate_cleanly

    try:
        with terminate_cleanly():  # SIGTERM unwinds like Ctrl-C, so staged outputs and locks are removed
            code = int(args.func(args) or 0)
            sys.stdout.flush()  # a full or failing standard output is an error here, not at exit
            return code
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
    except OSError as exc:
        # e.g. the standard output on a full disk (`> /dev/full`): one line, and nothing left to flush at exit
        if args.debug:
            raise
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        where = f" ({exc.filename})" if exc.filename else ""
        print(f"sobolev-rf: error: {exc.strerror or exc}{where}; the output is incomplete.", file=sys.stderr)
        return 1
    except MemoryError:
        if args.debug:
            raise
        print(
            "sobolev-rf: error: out of memory; ask for fewer points (a smaller grid, fewer seeds or a smaller d).",
            file=sys.stderr,
        )
        return 1
    except KeyboardInterrupt:
        print("sobolev-rf: interrupted", file=sys.stderr)
        return 130
