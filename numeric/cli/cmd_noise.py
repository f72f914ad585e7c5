"""``sobolev-rf noise``: label noise Δ_f, Δ_g against the ridge λ (:mod:`sobolev_rf.numeric.studies.noise`).

Parses the model point and the study options, computes, and writes ``noise_lambda`` and ``noise_benign``
(``.png`` and ``.csv``) into ``--out``, all or nothing, then prints the table.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import numpy as np

from ...derive.errors import UserError
from ...derive.params import ModelParams
from ...derive.values import nonnegative_numbers, positive_number
from ..artifacts import write_outputs
from .args import (
    add_model_arguments,
    add_study_options,
    describe_options,
    params_from_args,
    sim_size,
    study_command,
    study_out,
)

DESCRIPTION = """\
How do the test errors depend on the label noise Δ_f (function labels), Δ_g (gradient labels) and the
ridge λ? At the model point given by the shared arguments (here p/d defaults to 4) it writes
noise_lambda.png/.csv (eps_L2, eps_H1 against λ at a few noise levels: theory, the λ → 0⁺ level, the
optimal λ*, simulation points ± SE) and noise_benign.png/.csv (optimal λ* and the benign region, where
interpolating the noise (λ → 0⁺) is at least as good as any λ > 0, over a (Δ, p/d) grid at the given n/d),
and prints a table of λ* and errors. Function noise varies Δ_f with Δ_g = --noise-g; gradient noise varies
Δ_g with Δ_f = --noise-f. λ itself is swept; --lam, if given, is only marked on the λ curves.
"""


def add_parser(subparsers: Any) -> None:
    """Register ``noise`` and its options."""
    parser = subparsers.add_parser(
        "noise", description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_model_arguments(parser)
    parser.set_defaults(p_over_d="4", lam=None, func=run)
    describe_options(
        parser,
        lam="not used for the errors (λ is swept); if given, marked on the λ curves",
        noise_f="Δ_f held fixed in the gradient-noise study (default: 0)",
        noise_g="Δ_g held fixed in the function-noise study (default: 0)",
    )
    g = add_study_options(
        parser,
        "noise",
        grid=(3, 200, "map size: G values of p/d × G values of Δ, 3 to 200 (default: 20, --quick: 4)"),
        delta_max="largest Δ of the maps; rows are Δ = 0 and log-spaced [DMAX/1000, DMAX] (default: 1)",
        sim_d=("--sim-d", 0, None, "input dimension of the simulation points, 0 = none (default: 200, --quick: 40)"),
        seeds=(1, None, "simulation seeds per point (default: 2, --quick: 1)"),
        quick="tiny run for tests: 4×4 map, coarse λ grids, levels 0 and 0.5, one simulation λ at d = 40",
    )
    g.add_argument(
        "--levels",
        default=None,
        metavar="D1,D2,...",
        help="noise levels Δ of the λ curves, 1 to 6 values >= 0 (default: 0,0.1,0.5; --quick: 0,0.5)",
    )
    g.add_argument(
        "--quantity",
        choices=("eps_L2", "eps_H1"),
        default="eps_L2",
        help="error whose optimal λ and benign region the map figure shows (default: %(default)s)",
    )


def _levels(text: str) -> tuple[float, ...]:
    out = nonnegative_numbers("--levels", text)
    if not 1 <= len(out) <= 6:
        raise UserError(f"--levels takes 1 to 6 noise levels, got {len(out)}.")
    return tuple(dict.fromkeys(out))


def settings_from_args(args: argparse.Namespace) -> Any:
    """Validate the command line (cheaply, before any heavy work) and fill in the defaults."""
    from ..studies.noise import DEFAULT_BRACKET, SIM_LAMS, Settings, check_quantity
    from ..theory.coefficients import coefficients

    quick = bool(args.quick)
    out = study_out(args)
    user_lam = None if args.lam is None else ModelParams(lam=args.lam).lam
    params = params_from_args(args, lam="0")
    coefficients(params.activation)  # parses and validates σ and φ now, not after minutes of work
    coefficients(params.teacher)
    check_quantity(params, args.quantity)
    delta_max = positive_number("--delta-max", args.delta_max)
    levels = _levels(args.levels) if args.levels is not None else ((0.0, 0.5) if quick else (0.0, 0.1, 0.5))
    sim_d = sim_size(args, 200, 40)
    lo, hi = DEFAULT_BRACKET
    decades = np.log10(hi / lo)
    return Settings(
        out=out,
        params=params,
        user_lam=user_lam,
        quantity=args.quantity,
        quantities=("eps_L2", "eps_H1") if params.k >= 1 else ("eps_L2",),
        levels=levels,
        delta_max=delta_max,
        grid=args.grid or (4 if quick else 20),
        lam_grid=np.geomspace(lo, hi, int(round(decades * (1 if quick else 4))) + 1),
        curve_lams=np.geomspace(lo, hi, int(round(decades * (2 if quick else 8))) + 1),
        bracket=(lo, hi),
        xatol=1e-2 if quick else 1e-3,
        sim_d=sim_d,
        seeds=args.seeds or (1 if quick else 2),
        sim_lams=(SIM_LAMS[1],) if quick else SIM_LAMS,
        quick=quick,
        command=study_command(args),
    )


def run(args: argparse.Namespace) -> int:
    """Validate, compute everything, then write the four files and print the table."""
    from ..plots.noise import benign_png, lambda_png
    from ..reports.noise import benign_csv, lambda_csv, summary_table
    from ..studies.noise import compute

    settings = settings_from_args(args)
    start = time.perf_counter()
    study = compute(settings)
    files: dict[str, str | bytes] = {
        "noise_lambda.png": lambda_png(settings, study.curves, study.sims),
        "noise_lambda.csv": lambda_csv(settings, study.curves, study.sims),
        "noise_benign.png": benign_png(settings, study.maps),
        "noise_benign.csv": benign_csv(settings, study.maps),
    }
    write_outputs(settings.out, files)
    print(summary_table(settings, study.curves, study.maps))
    if settings.user_lam is not None:
        print(f"\n(--lam {settings.user_lam:g} is marked on noise_lambda.png; λ itself is swept.)")
    print(f"\nwrote {', '.join(files)} to {settings.out}/ in {time.perf_counter() - start:.1f} s")
    return 0
