"""Command-line arguments shared by every subcommand that takes a model point (MODEL.md)."""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable

import numpy as np

from ...derive.errors import UserError
from ...derive.params import ModelParams, parse_alignment

_DEFAULTS = ModelParams()


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``--activation --teacher --k --tau --p-over-d --n-over-d --lam --noise-f --noise-g --alignment``."""
    g = parser.add_argument_group("model (MODEL.md)")
    g.add_argument(
        "--activation",
        default=_DEFAULTS.activation,
        metavar="EXPR",
        help="student activation σ: a name (relu, tanh, erf, sigmoid, softplus, gelu, linear, abs) "
        "or a SymPy expression in x, e.g. 'Max(0, x)' (default: %(default)s)",
    )
    g.add_argument(
        "--teacher",
        default=_DEFAULTS.teacher,
        metavar="EXPR",
        help="teacher link φ, same syntax as --activation (default: %(default)s)",
    )
    g.add_argument(
        "--k",
        default=str(_DEFAULTS.k),
        metavar="K",
        help="number of gradient projections per sample (default: %(default)s)",
    )
    g.add_argument(
        "--tau",
        default=str(_DEFAULTS.tau),
        metavar="T",
        help="Sobolev weight τ >= 0 of the gradient term, any real number: 0 is plain L2 training, "
        "1 Sobolev training; gradient rows and labels enter scaled by √τ, so Δ_g enters with "
        "weight τ; for every τ > 0 the interpolation threshold is p = (1 + k)n "
        "(default: %(default)s)",
    )
    g.add_argument(
        "--p-over-d",
        default=str(_DEFAULTS.p_over_d),
        metavar="X",
        help="features per input dimension p/d (default: %(default)s)",
    )
    g.add_argument(
        "--n-over-d",
        default=str(_DEFAULTS.n_over_d),
        metavar="Y",
        help="samples per input dimension n/d (default: %(default)s)",
    )
    g.add_argument(
        "--lam", default=str(_DEFAULTS.lam), metavar="L", help="ridge λ >= 0; 0 means λ → 0⁺ (default: %(default)s)"
    )
    g.add_argument("--noise-f", default="0", metavar="DF", help="function-label noise variance Δ_f (default: 0)")
    g.add_argument("--noise-g", default="0", metavar="DG", help="gradient-label noise variance Δ_g (default: 0)")
    g.add_argument(
        "--alignment",
        default=None,
        metavar="A1,...,AK",
        help="alignment ϖ = Vᵀθ₀ (k comma-separated numbers; default: all ones)",
    )


def parse_range(name: str, text: str) -> np.ndarray:
    """``X`` (one value), ``start:stop:num`` (linear) or ``log:start:stop:num`` (geometric, start, stop > 0)."""
    parts = text.strip().split(":")
    log = parts[0].strip().lower() == "log"
    if log:
        parts = parts[1:]
    try:
        if len(parts) == 1 and not log:
            values = np.array([float(parts[0])])
        elif len(parts) == 3:
            start, stop, num = float(parts[0]), float(parts[1]), int(parts[2])
            if num < 1:
                raise ValueError
            if log and not (start > 0 and stop > 0):
                raise UserError(f"--{name.replace('_', '-')}: log ranges need start, stop > 0, got {text!r}.")
            values = np.geomspace(start, stop, num) if log else np.linspace(start, stop, num)
        else:
            raise ValueError
    except ValueError:
        raise UserError(
            f"--{name.replace('_', '-')} must be X, start:stop:num or log:start:stop:num, got {text!r}."
        ) from None
    if not np.all(np.isfinite(values)):
        raise UserError(f"--{name.replace('_', '-')} must be finite, got {text!r}.")
    return values


def describe_options(parser: argparse.ArgumentParser, **helps: str) -> None:
    """Replace the help of shared options by what they mean for one command (keys: option dests)."""
    for action in parser._actions:
        if action.dest in helps:
            action.help = helps[action.dest]


def int_range(minimum: int, maximum: int | None = None) -> Callable[[str], int]:
    """An argparse ``type`` accepting integers in [``minimum``, ``maximum``] (no upper bound if None)."""
    rule = f">= {minimum}" if maximum is None else f"from {minimum} to {maximum}"

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be an integer {rule}, got {text!r}") from None
        if value < minimum or (maximum is not None and value > maximum):
            raise argparse.ArgumentTypeError(f"must be an integer {rule}, got {text!r}")
        return value

    return parse


def nonnegative_numbers(option: str, text: str) -> list[float]:
    """``"0,0.1,0.5"`` → [0.0, 0.1, 0.5]: comma-separated finite numbers >= 0 (UserError naming ``option``)."""
    from ...derive.errors import UserError

    values = []
    for item in (t.strip() for t in str(text).split(",")):
        try:
            value = float(item)
        except ValueError:
            raise UserError(f"{option} must be comma-separated numbers >= 0, got {text!r}.") from None
        if not math.isfinite(value) or value < 0:
            raise UserError(f"{option} must be comma-separated finite numbers >= 0, got {text!r}.")
        values.append(value)
    return values


def _int_arg(name: str, text: str) -> int:
    from ...derive.params import ParameterError

    try:
        value = float(text)
    except ValueError:
        raise ParameterError(f"{name} must be an integer, got {text!r}.") from None
    if not value.is_integer():
        raise ParameterError(f"{name} must be an integer, got {text!r}.")
    return int(value)


def _real_arg(name: str, text: str) -> float:
    """A real number from the command line (validated further by :class:`ModelParams`)."""
    from ...derive.params import ParameterError

    try:
        return float(text)
    except ValueError:
        raise ParameterError(f"{name} must be a real number, got {text!r}.") from None


def params_from_args(args: argparse.Namespace) -> ModelParams:
    """Build (and so validate) the :class:`ModelParams` of a parsed command line."""
    alignment = None if args.alignment is None else parse_alignment(args.alignment)
    return ModelParams(
        activation=args.activation,
        teacher=args.teacher,
        k=_int_arg("k", args.k),
        tau=_real_arg("tau", args.tau),
        p_over_d=args.p_over_d,
        n_over_d=args.n_over_d,
        lam=args.lam,
        noise_f=args.noise_f,
        noise_g=args.noise_g,
        alignment=alignment,
    )


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
