"""``sobolev-rf informed``: data-informed gradient subspaces, a study OUTSIDE the d → ∞ theory
(:mod:`sobolev_rf.numeric.studies.informed`): random V, informed V and L2 training over d. It writes
``informed.png`` and ``informed.csv`` (command line in the PNG metadata and on the CSV's first line) into
``--out`` and prints a table.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from ...derive.errors import UserError
from ...derive.values import integer, integers, positive_number
from ..artifacts import csv_text, write_outputs
from .args import add_model_arguments, add_study_options, params_from_args, study_command, study_out

DESCRIPTION = """\
Simulates Sobolev training (τ = 1) with random projection directions V (the model; ϖ ~ N(0, I_k) per
seed), with data-informed V (v_l = √d·u_l, u_l the top eigenvectors of the gradient covariance estimated
from m = pilot_ratio·d noisy teacher gradients, noise variance --noise-g) and plain L2 training (τ = 0),
for each d in --d. Informed V is OUTSIDE the d → ∞ theory: ϖ₁ = v₁ᵀθ₀ ≈ √d grows with d. Writes
informed.png and informed.csv (with the d → ∞ theory of the random model, averaged over ϖ) into --out
and prints a table. --alignment is refused (ϖ is drawn or realised) and τ is set by the study.
"""


def add_parser(subparsers: Any) -> None:
    """Register ``informed`` with the model arguments and the study options."""
    parser = subparsers.add_parser(
        "informed", description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_model_arguments(parser)
    g = add_study_options(parser, "informed", quick="tiny run for tests: d = 40,60, 2 seeds, 400 test points")
    g.add_argument(
        "--d",
        default=None,
        metavar="D1,D2,...",
        help="input dimensions, each >= 10 (default: 100,200,400; --quick: 40,60)",
    )
    g.add_argument("--seeds", default=None, metavar="S", help="seeds per d and arm (default: 8, --quick: 2)")
    g.add_argument(
        "--pilot-ratio",
        default="1",
        metavar="R",
        help="pilot gradients per input dimension m/d of the informed subspace (default: %(default)s)",
    )
    g.add_argument(
        "--n-test", default=None, metavar="N", help="test points per seed (default: max(2000, 2p), --quick: 400)"
    )
    # p/d = 4: the shared default p/d = 2 is the interpolation threshold p = 2n of τ = 1, k = 1
    parser.set_defaults(func=run, p_over_d="4")


def settings_from_args(args: argparse.Namespace) -> Any:
    """Validate everything before any work (bad input writes nothing)."""
    from ..studies.informed import Settings, check_sizes

    if args.alignment is not None:
        raise UserError(
            "--alignment does not apply to the informed study: the random arms draw ϖ ~ N(0, I_k) per "
            "seed and the informed arm realises ϖ = Vᵀθ₀ from data."
        )
    params = params_from_args(args)
    if params.tau != 1:
        raise UserError(
            f"--tau is set by the informed study (τ = 1 for random and informed V, τ = 0 for the L2 "
            f"reference), got --tau {args.tau}."
        )
    if params.k < 1:
        raise UserError("the informed study needs k >= 1 gradient directions, got --k 0.")
    quick = bool(args.quick)
    ds = integers("--d", args.d, 10) if args.d is not None else ((40, 60) if quick else (100, 200, 400))
    if params.k >= min(ds):
        raise UserError(f"k = {params.k} gradient directions need d > k, got d = {min(ds)}.")
    seeds = integer("--seeds", args.seeds, 2, 10_000) if args.seeds is not None else (2 if quick else 8)
    n_test = integer("--n-test", args.n_test, 1, 10**7) if args.n_test is not None else (400 if quick else None)
    settings = Settings(
        params=params.with_(alignment=None),
        ds=ds,
        seeds=seeds,
        pilot_ratio=positive_number("--pilot-ratio", args.pilot_ratio, 100),
        n_test=n_test,
    )
    check_sizes(settings)
    return settings


def run(args: argparse.Namespace) -> int:
    """Validate, simulate, solve, render; then write both files (all or nothing) and print the table."""
    from ..plots.informed import figure
    from ..reports.informed import COLUMNS, csv_rows, table
    from ..studies.informed import simulate_arms, theory_laws

    settings = settings_from_args(args)
    out = study_out(args)
    command = study_command(args)
    start = time.perf_counter()
    results = simulate_arms(settings)
    laws = theory_laws(settings.params)
    files: dict[str, str | bytes] = {
        "informed.csv": csv_text(command, COLUMNS, csv_rows(results, laws, settings.seeds)),
        "informed.png": figure(results, laws, settings, command),
    }
    write_outputs(out, files)
    print(table(results, laws, settings))
    print(f"\nwrote informed.png, informed.csv to {out}/ in {time.perf_counter() - start:.1f} s")
    return 0
