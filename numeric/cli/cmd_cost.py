"""``sobolev-rf cost``: Sobolev against L2 training at an equal budget (:mod:`sobolev_rf.numeric.studies.cost`).

Parses the model point and the comparison options, computes, and writes ``cost_map``, ``cost_breakeven`` and
``cost_curve`` (``.png`` and ``.csv``) into ``--out``, all or nothing, then prints the summary.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from ...derive.errors import UserError
from ...derive.values import nonnegative_numbers, positive_number
from ..artifacts import write_outputs
from ..studies.cost import C_MAX, MAX_COSTS
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
A gradient projection costs c function evaluations (c = 1: forward finite difference; c ≈ 2–4: reverse-mode
differentiation). Compares Sobolev training (τ = 1: n samples, k projections each, budget n(1 + ck)) with
L2 training (τ = 0: n(1 + ck) samples, same budget) at the same p and other parameters, and writes
cost_map.png/.csv (log ratio of the errors over (p/d, n/d) for each c), cost_breakeven.png/.csv (the
break-even cost c*: the largest c at which Sobolev still wins) and cost_curve.png/.csv (errors against p/d
at the model's n/d at equal budget: theory lines, simulation points ± SE) into --out, and prints a summary.
τ is fixed by the comparison (--tau is rejected). Needs λ > 0 (the grid solver)."""


def add_parser(subparsers: Any) -> None:
    """Register ``cost`` and its options."""
    parser = subparsers.add_parser(
        "cost", description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_model_arguments(parser)
    # τ is fixed by the comparison (τ = 1 against τ = 0): --tau stays parseable only to be rejected clearly
    parser.set_defaults(tau=None, func=run)
    describe_options(
        parser,
        tau="not used: the comparison fixes τ = 1 (Sobolev) against τ = 0 (L2); passing it is an error",
        p_over_d="features per input dimension p/d of the model point starred on the maps and of the first row of "
        "the break-even table",
        n_over_d="the Sobolev sample ratio n/d of the model point and of the 1-D cut along p/d",
    )
    g = add_study_options(
        parser,
        "cost",
        grid=(
            4,
            200,
            "map grid G×G over (p/d, n/d) in [0.2, 5]², widened to hold the model point (default: 40, --quick: 8)",
        ),
        sim_d=("--d", 20, 1000, "input dimension of the simulation checks (default: 200, --quick: 100)"),
        seeds=(1, 20, "simulation seeds per point (default: 3, --quick: 2)"),
        quick="small run (for tests): 8×8 map, 2 simulated points at d = 100 with 2 seeds",
    )
    g.add_argument(
        "--c",
        default="1",
        metavar="C1,C2,...",
        help=f"cost of one gradient projection in function evaluations, >= 0; up to {MAX_COSTS} "
        "comma-separated values (default: %(default)s)",
    )
    g.add_argument(
        "--c-max",
        default=str(C_MAX),
        metavar="CMAX",
        help="largest cost searched for the break-even c*; beyond it c* is reported as CMAX with "
        "status 'capped' (default: %(default)s)",
    )
    g.add_argument(
        "--sim-points",
        type=int_range(0, 20),
        default=None,
        metavar="M",
        help="simulated p/d values along the cut, 0: none (default: 5, --quick: 2)",
    )


def parse_costs(text: str) -> tuple[float, ...]:
    """``"1"`` or ``"1,3"`` → (1.0, 3.0): finite, >= 0, distinct, at most :data:`MAX_COSTS`."""
    values = nonnegative_numbers("--c", text)
    if len(values) > MAX_COSTS:
        raise UserError(f"--c takes at most {MAX_COSTS} values, got {len(values)}; run the command again for more.")
    if len(set(values)) != len(values):
        raise UserError(f"--c values must be distinct, got {text!r}.")
    return tuple(values)


def settings_from_args(args: argparse.Namespace) -> Any:
    """Validate every option (nothing heavy runs before this) and fill in the defaults."""
    from ..studies.cost import MAX_K, Settings

    if args.tau is not None:
        raise UserError("--tau is fixed by the cost comparison (Sobolev τ = 1 against L2 τ = 0); drop --tau.")
    base = params_from_args(args, tau="1")
    if base.k < 1:
        raise UserError(f"the cost comparison needs k >= 1 gradient projections, got --k {base.k}.")
    if base.k > MAX_K:
        raise UserError(f"the cost command supports k <= {MAX_K}, got --k {base.k}.")
    if base.lam <= 0:
        raise UserError(
            "the cost maps need --lam > 0: at λ → 0⁺ the equal-budget L2 error is infinite at "
            "p = n(1 + ck), which every scan over c crosses; pass e.g. --lam 1e-4."
        )
    costs = parse_costs(args.c)
    c_max = positive_number("--c-max", args.c_max, 1e4)
    if max(costs) > c_max:
        raise UserError(f"--c values must be <= --c-max = {c_max:g}, got {max(costs):g}.")
    out = study_out(args)
    quick = bool(args.quick)
    return Settings(
        base=base,
        costs=costs,
        c_max=c_max,
        out=out,
        grid=args.grid or (8 if quick else 40),
        points=24 if quick else 120,
        d=args.d or (100 if quick else 200),
        seeds=args.seeds or (2 if quick else 3),
        sim_points=args.sim_points if args.sim_points is not None else (2 if quick else 5),
        quick=quick,
        command=study_command(args),
    )


def run(args: argparse.Namespace) -> int:
    """Validate, compute everything, then write the six files and print the summary."""
    from ..plots.cost import breakeven_png, cost_map_png, curve_png
    from ..reports.cost import breakeven_csv, curve_csv, map_csv, summary
    from ..studies.cost import compute

    settings = settings_from_args(args)
    start = time.perf_counter()
    study = compute(settings)
    grid, cut = study.grid, study.cut
    files: dict[str, str | bytes] = {
        "cost_map.png": cost_map_png(settings, grid, study.ps, study.ns),
        "cost_map.csv": map_csv(settings, grid),
        "cost_breakeven.png": breakeven_png(settings, grid, study.ps, study.ns),
        "cost_breakeven.csv": breakeven_csv(settings, grid),
        "cost_curve.png": curve_png(settings, cut, study.xs, study.sims),
        "cost_curve.csv": curve_csv(settings, cut, study.xs, study.sims),
    }
    write_outputs(settings.out, files)
    print(summary(settings, grid, study.breakevens, study.sims))
    print(f"\nwrote {', '.join(files)} to {settings.out}/ in {time.perf_counter() - start:.1f} s")
    return 0
