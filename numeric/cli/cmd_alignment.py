"""``sobolev-rf alignment``: the law of each error over ϖ ~ N(0, I_k) (:mod:`sobolev_rf.numeric.studies.alignment`).

Parses the model point and the study options, computes the exact laws and the simulated draws, and writes
``alignment_law.png``, ``alignment_law.csv`` and ``alignment_samples.csv`` into ``--out``, all or nothing, then
prints the table.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from ...derive.errors import UserError
from ..artifacts import write_outputs
from .args import (
    add_model_arguments,
    add_study_options,
    describe_options,
    int_range,
    params_from_args,
    study_command,
    study_out,
)

DESCRIPTION = """\
The alignment ϖ = Vᵀθ₀ ~ N(0, I_k) does not average out as d → ∞: each asymptotic error is an exact
quadratic form e(ϖ) = c + bᵀϖ + ϖᵀAϖ, i.e. a generalised non-central χ² law. This command computes that law
for eps_L2, eps_H1 and eps_grad (exact CDF, mass per bin, mean, sd, 5/50/95 % quantiles) and checks it
against --samples finite-size simulations, each at a fresh draw ϖ ~ N(0, I_k) (one seed, d = --sim-d).
It writes alignment_law.png, alignment_law.csv and alignment_samples.csv into --out and prints a table
with the simulation mean ± SE, Kolmogorov–Smirnov distances and the per-draw agreement sim vs e(ϖ).
--alignment is not accepted: ϖ is random here. k must be 1 to 8 (the quadratic form needs
1 + 2k + k(k−1)/2 solves).
"""


def add_parser(subparsers: Any) -> None:
    """Register ``alignment`` and its options."""
    parser = subparsers.add_parser(
        "alignment", description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_model_arguments(parser)
    describe_options(parser, alignment="not accepted by this command: ϖ ~ N(0, I_k) is drawn (use 'solve --alignment')")
    g = add_study_options(
        parser,
        "alignment",
        sim_d=("--sim-d", 10, 100_000, "input dimension of the simulations (default: 300, --quick: 60)"),
        quick="tiny run for tests: d = 60, 12 draws",
    )
    g.add_argument(
        "--samples",
        type=int_range(2, 100_000),
        default=None,
        metavar="N",
        help="number of simulated draws ϖ ~ N(0, I_k), one seed each (default: 80, --quick: 12)",
    )
    g.add_argument(
        "--n-test",
        type=int_range(1, 10_000_000),
        default=None,
        metavar="T",
        help="test points per simulation (default: max(2000, 2p))",
    )
    g.add_argument(
        "--seed",
        type=int_range(0, 2**32 - 1),
        default=0,
        metavar="S",
        help="seed of the ϖ draws and of the simulations (default: %(default)s)",
    )
    g.add_argument("--no-sim", action="store_true", help="exact law only: no simulations, no alignment_samples.csv")
    # p/d = 4: the shared default p/d = 2 is the interpolation threshold p = 2n of τ = 1, k = 1
    parser.set_defaults(func=run, p_over_d="4")


def run(args: argparse.Namespace) -> int:
    """Validate, compute the exact laws, simulate, build every file, then write them all and print the table."""
    from ..plots.alignment import law_png
    from ..reports.alignment import law_csv, samples_csv, summary_table
    from ..studies.alignment import MAX_K, compute

    start = time.perf_counter()
    if args.alignment is not None:
        raise UserError(
            "--alignment is not used by 'alignment': ϖ is drawn from N(0, I_k); drop --alignment "
            "(use 'solve --alignment' for one fixed ϖ)."
        )
    params = params_from_args(args)
    if not 1 <= params.k <= MAX_K:
        raise UserError(
            f"'alignment' needs k from 1 to {MAX_K} (k = 0 has no alignment; for k > {MAX_K} the law "
            f"needs too many solves), got k = {params.k}."
        )
    out = study_out(args)
    quick = bool(args.quick)
    d = args.sim_d or (60 if quick else 300)
    samples = args.samples or (12 if quick else 80)
    if d <= params.k + 1:
        raise UserError(f"--sim-d must exceed k + 1 = {params.k + 1}, got {d}.")
    command = study_command(args)
    study = compute(params, d, samples, args.seed, args.n_test, not args.no_sim, quick)
    draws, summaries, comparisons = study.draws, study.summaries, study.comparisons
    files: dict[str, str | bytes] = {
        "alignment_law.png": law_png(params, summaries, draws, comparisons, command),
        "alignment_law.csv": law_csv(command, summaries, draws, comparisons),
    }
    if draws is not None:
        files["alignment_samples.csv"] = samples_csv(command, params, study.laws, draws)
    write_outputs(out, files)
    print(summary_table(params, summaries, draws, comparisons))
    print(f"\nwrote {', '.join(files)} to {out}/ in {time.perf_counter() - start:.1f} s")
    sys.stdout.flush()
    return 0
