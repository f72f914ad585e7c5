"""Command-line arguments shared by every subcommand that takes a model point (MODEL.md)."""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable, Sequence
from pathlib import Path

from ...derive.errors import UserError
from ...derive.params import ModelParams
from ...derive.values import integer

_DEFAULTS = ModelParams()

#: Branches of ``derive_system`` (repeated here so that ``--help`` does not import SymPy).
BRANCHES = ("ridge", "interpolating", "underparameterised")
#: Help text of ``--branch`` (``derive`` and ``codegen``).
BRANCH_HELP = (
    "ridge: lam > 0 (default); interpolating / underparameterised: the limit lam -> 0+ for "
    "p > r n / p < r n (r = 1 + k for tau > 0, 1 for tau = 0)"
)


#: The model options (MODEL.md): (option, default, metavar, help).
MODEL_OPTIONS = (
    (
        "--activation",
        _DEFAULTS.activation,
        "EXPR",
        "student activation σ: a name (relu, tanh, erf, sigmoid, softplus, gelu, linear, abs) "
        "or a SymPy expression in x, e.g. 'Max(0, x)' (default: %(default)s)",
    ),
    ("--teacher", _DEFAULTS.teacher, "EXPR", "teacher link φ, same syntax as --activation (default: %(default)s)"),
    ("--k", str(_DEFAULTS.k), "K", "number of gradient projections per sample (default: %(default)s)"),
    (
        "--tau",
        str(_DEFAULTS.tau),
        "T",
        "Sobolev weight τ >= 0 of the gradient term, any real number: 0 is plain L2 training, "
        "1 Sobolev training; gradient rows and labels enter scaled by √τ, so Δ_g enters with "
        "weight τ; for every τ > 0 the interpolation threshold is p = (1 + k)n (default: %(default)s)",
    ),
    ("--p-over-d", str(_DEFAULTS.p_over_d), "X", "features per input dimension p/d (default: %(default)s)"),
    ("--n-over-d", str(_DEFAULTS.n_over_d), "Y", "samples per input dimension n/d (default: %(default)s)"),
    ("--lam", str(_DEFAULTS.lam), "L", "ridge λ >= 0; 0 means λ → 0⁺ (default: %(default)s)"),
    ("--noise-f", "0", "DF", "function-label noise variance Δ_f (default: 0)"),
    ("--noise-g", "0", "DG", "gradient-label noise variance Δ_g (default: 0)"),
    ("--alignment", None, "A1,...,AK", "alignment ϖ = Vᵀθ₀ (k comma-separated numbers; default: all ones)"),
)


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``--activation --teacher --k --tau --p-over-d --n-over-d --lam --noise-f --noise-g --alignment``."""
    g = parser.add_argument_group("model (MODEL.md)")
    for option, default, metavar, text in MODEL_OPTIONS:
        g.add_argument(option, default=default, metavar=metavar, help=text)


def describe_options(parser: argparse.ArgumentParser, **helps: str) -> None:
    """Replace the help of shared options by what they mean for one command (keys: option dests)."""
    for action in parser._actions:
        if action.dest in helps:
            action.help = helps[action.dest]


def int_range(minimum: int, maximum: int | None = None) -> Callable[[str], int]:
    """An argparse ``type`` accepting integers in [``minimum``, ``maximum``] (no upper bound if None)."""

    def parse(text: str) -> int:
        try:
            return integer("", text, minimum, maximum)
        except UserError as exc:
            raise argparse.ArgumentTypeError(str(exc).strip().rstrip(".")) from None

    return parse


def tau_value(text: str) -> float:
    """``--tau`` of ``derive`` and ``codegen``: a number >= 0 (every tau > 0 gives the same system, tau a symbol)."""
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value >= 0 or value == float("inf"):
        raise UserError(f"--tau must be a number >= 0, got {text!r}.")
    return value


# --- the first-layer step of the one-step model (ONESTEP.md) -------------------------------------------


def add_step_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``--step --eta --alpha0 --tau-step --k-step --step-dirs --second-layer`` (ONESTEP.md).

    Every option but ``--step`` defaults to None (not given), so that :meth:`ModelParams.from_options` can
    refuse a step option given with ``--step none`` instead of ignoring it, and fill in the defaults."""
    from ...derive.params import SECOND_LAYERS, STEP_DEFAULTS, STEP_DIRS, STEPS

    g = parser.add_argument_group("first-layer step (ONESTEP.md)")
    g.add_argument(
        "--step",
        default="none",
        choices=STEPS,
        help="one full-batch gradient step on the first layer W before the readout: none (random features), "
        "an L2 step or a Sobolev step (default: %(default)s)",
    )
    # (option, metavar or choices, help)
    for option, values, text in (
        ("--eta", "ETA", "normalised learning rate η̃ >= 0; 0 leaves W unchanged (default: {eta:g})"),
        ("--alpha0", "A0", "step batch n₀ = α₀·d fresh samples, α₀ > 0 (default: {alpha0:g})"),
        (
            "--tau-step",
            "T1",
            "weight τ₁ >= 0 of the step's gradient term (--step sobolev); with --step-dirs shared it must "
            "carry its 1/d scaling, written T/d (τ₁ = T/d) (default: {tau_step:g}, shared: 1/d)",
        ),
        (
            "--k-step",
            "K1",
            "gradient projections k₁ >= 0 per step sample (--step sobolev; shared: k₁ <= k) "
            "(default: {k_step}, shared: k)",
        ),
        (
            "--step-dirs",
            STEP_DIRS,
            "directions of the step's gradient projections: fresh N(0, I_d) per sample, or the readout's V "
            "(--step sobolev; default: {step_dirs})",
        ),
        (
            "--second-layer",
            SECOND_LAYERS,
            "second layer during the step: const a_j = 1/p, sign a_j = ±1/p (default: {second_layer})",
        ),
    ):
        kind = {"metavar": values} if isinstance(values, str) else {"choices": values}
        g.add_argument(option, default=None, help=text.format(**STEP_DEFAULTS), **kind)


def params_from_args(args: argparse.Namespace, **fixed: str) -> ModelParams:
    """Build (and so validate) the :class:`ModelParams` of a parsed command line (with the step fields where the
    command declares :func:`add_step_arguments`); ``fixed`` overrides options that a study sets itself
    (e.g. ``tau="1"``)."""
    return ModelParams.from_options({**vars(args), **fixed})


# --------------------------------------------------------------------------------------------- study options


def add_study_options(
    parser: argparse.ArgumentParser,
    name: str,
    *,
    grid: tuple[int, int | None, str] | None = None,
    delta_max: str | None = None,
    sim_d: tuple[str, int, int | None, str] | None = None,
    seeds: tuple[int, int | None, str] | None = None,
    quick: str | None = None,
    out: str | None = None,
) -> argparse._ArgumentGroup:
    """Declare the options every study shares: ``--out`` (default ``sobolev-rf-out/<name>``), ``--grid`` (G from
    ``grid[0]`` to ``grid[1]``), ``--delta-max``, the simulation size (``sim_d``: option name, minimum,
    maximum, help) and ``--seeds`` (minimum, maximum, help) where given, and ``--quick`` (its help). Returns the group,
    for the study's own options."""
    g = parser.add_argument_group(f"{name} study")
    g.add_argument(
        "--out",
        default=out or f"sobolev-rf-out/{name}",
        metavar="DIR",
        help="output folder, created if missing (default: %(default)s)",
    )
    if grid is not None:
        g.add_argument("--grid", type=int_range(grid[0], grid[1]), default=None, metavar="G", help=grid[2])
    if delta_max is not None:
        g.add_argument("--delta-max", default="1", metavar="DMAX", help=delta_max)
    if sim_d is not None:
        option, low, high, text = sim_d
        g.add_argument(option, type=int_range(low, high), default=None, metavar="D", help=text)
    if seeds is not None:
        g.add_argument("--seeds", type=int_range(seeds[0], seeds[1]), default=None, metavar="S", help=seeds[2])
    if quick is not None:
        g.add_argument("--quick", action="store_true", help=quick)
    return g


def study_out(args: argparse.Namespace) -> Path:
    """``--out`` as a folder path; refused (before any work) when it names an existing file."""
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {args.out!r} exists and is not a folder; give a folder path.")
    return out


def study_command(args: argparse.Namespace) -> str:
    """The command line recorded in the study's files."""
    return getattr(args, "command_line", None) or f"sobolev-rf {args.command}"


def sim_size(args: argparse.Namespace, full: int, quick: int, option: str = "sim_d") -> int:
    """The simulation size ``--sim-d`` (0: no simulation, else >= 10), its default ``full`` or ``quick``."""
    value = getattr(args, option)
    d = value if value is not None else (quick if args.quick else full)
    if 0 < d < 10:
        raise UserError(f"--{option.replace('_', '-')} must be 0 (no simulation) or >= 10, got {d}.")
    return int(d)


def add_declaration_arguments(parser: argparse.ArgumentParser) -> None:
    """``--shape``, ``--symmetric`` and ``--diag``: the random matrices of an expression (pencil and spectrum)."""
    parser.add_argument(
        "--shape", action="append", default=[], metavar="NAME=ROWS,COLS", help="declare a Gaussian matrix (repeatable)"
    )
    parser.add_argument(
        "--symmetric",
        action="append",
        default=[],
        metavar="NAME",
        help="make a declared square Gaussian matrix symmetric (Wigner)",
    )
    parser.add_argument(
        "--diag",
        action="append",
        default=[],
        metavar="NAME[,NAME]=DIM[@LAW]",
        help="declare a diagonal random matrix, or several with a joint law (repeatable)",
    )


_NEGATIVE = re.compile(r"^-\.?\d")


def join_negative_values(parser: argparse.ArgumentParser, words: Sequence[str]) -> list[str]:
    """``--alignment -0.3,1`` → ``--alignment=-0.3,1`` for every option that takes a value.

    argparse reads a word that starts with ``-`` as an option unless it is a plain negative number, so
    a list such as ``-0.3,1`` after an option would be refused; writing it as ``--opt=value`` keeps it.
    """
    takes_value: set[str] = set()
    parsers = [parser]
    while parsers:
        p = parsers.pop()
        for action in p._actions:
            if isinstance(action, argparse._SubParsersAction):
                parsers.extend(action.choices.values())
            elif action.option_strings and action.nargs != 0:
                takes_value.update(action.option_strings)
    out: list[str] = []
    it = iter(words)
    for word in it:
        if word in takes_value:
            value = next(it, None)
            if value is not None and _NEGATIVE.match(value):
                out.append(f"{word}={value}")
                continue
            out.append(word)
            if value is not None:
                out.append(value)
        else:
            out.append(word)
    return out
