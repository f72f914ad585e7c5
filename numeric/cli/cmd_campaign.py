"""``sobolev-rf campaign``: a grid of model points × d × seeds on the exact simulator, run on Dask, kept in SQLite.

A thin layer: it reads the options into a :class:`~sobolev_rf.numeric.campaign.engine.Campaign`
(:func:`~sobolev_rf.numeric.campaign.engine.campaign_from_options`), calls
:func:`~sobolev_rf.numeric.campaign.engine.run_campaign` and writes what was asked (numeric/campaign/results.py).
Dask, NumPy and the simulator are imported only when the command runs.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from ...derive.errors import UserError
from ...derive.values import integer
from ..progress import progress_enabled
from .args import add_step_arguments, describe_options

DESCRIPTION = """\
Runs the exact simulator on every (point, d, seed) of a grid of model points, on an embedded local Dask
cluster (--workers processes) or on an existing one (--scheduler tcp://HOST:PORT), and writes each result
into the SQLite store --store as it arrives. Running the same command again resumes: tasks already in the
store are skipped (failed ones too, unless --retry-failed), tasks missing from it are run. With no grid
options, an existing store runs (or reports) its own campaign. Each point's d → ∞ theory value is stored
beside its simulations. Exit status 1 while tasks stay failed (a point too large for the simulator, or a
task whose workers kept dying); --retry-failed runs them again.

Grid: --p-over-d, --n-over-d, --lam, --noise-f, --noise-g and --tau take sweep's syntax, X, start:stop:num
or log:start:stop:num, and comma-separated lists of these; --activation and --k take comma-separated lists
(commas inside parentheses belong to the expression). The grid is their outer product. With a first-layer
step (--step l2|sobolev, ONESTEP.md), --eta, --alpha0 and --tau-step are ranges and --k-step a list, each a
further axis when given (a shared step writes each --tau-step item with its scaling, e.g. 0:2:5/d).

Outputs: --export F.csv (one row per task: the parameters under sweep's column names, d, seed, the five
errors, status), --summary F.csv or F.nc (one row per point and d: means, standard errors, theory values and
z-scores; NetCDF through xarray with the swept axes as dimensions), --report [N] (the N comparisons of
simulation and theory least compatible with each other, by a t-test over the seeds). --no-run, --export
and --report only read the store (also in a folder that cannot be written).
"""


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "campaign", description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--store", required=True, metavar="F.sqlite", help="the SQLite store (created if missing)")
    g = parser.add_argument_group("grid (default: MODEL.md's point; omit all to use the store's campaign)")
    g.add_argument("--activation", default=None, metavar="LIST", help="student activations σ (default: relu)")
    g.add_argument("--teacher", default=None, metavar="EXPR", help="teacher link φ (default: tanh)")
    g.add_argument("--k", default=None, metavar="LIST", help="numbers of gradient projections, e.g. 1,2 (default: 1)")
    g.add_argument(
        "--tau",
        default=None,
        metavar="RANGES",
        help="Sobolev weights τ >= 0 (0: L2 training, 1: Sobolev training; default: 1)",
    )
    g.add_argument("--p-over-d", default=None, metavar="RANGES", help="p/d values (default: 2)")
    g.add_argument("--n-over-d", default=None, metavar="RANGES", help="n/d values (default: 1)")
    g.add_argument("--lam", default=None, metavar="RANGES", help="ridge λ >= 0, 0 meaning λ → 0⁺ (default: 0.001)")
    g.add_argument("--noise-f", default=None, metavar="RANGES", help="function-label noise Δ_f (default: 0)")
    g.add_argument("--noise-g", default=None, metavar="RANGES", help="gradient-label noise Δ_g (default: 0)")
    g.add_argument("--alignment", default=None, metavar="A1,...,AK", help="alignment ϖ (default: all ones)")
    g.add_argument("--d", default=None, metavar="D1,D2", help="input dimensions d (default: 200)")
    g.add_argument("--seeds", default=None, metavar="S", help="seeds 0..S-1 per point and d (default: 1)")
    g.add_argument("--n-test", default=None, metavar="N", help="test points per task (default: max(2000, 2p))")
    add_step_arguments(parser)
    describe_options(
        parser,
        eta="learning rates η̃ >= 0 (ranges; an axis of the grid; default: 1)",
        alpha0="step batches α₀ > 0 (ranges; an axis; default: 4)",
        tau_step="step weights τ₁ >= 0 (ranges; an axis; --step sobolev; shared directions: each item with its "
        "1/d scaling, e.g. 0:2:5/d; default: 1)",
        k_step="step projections k₁ (comma-separated integers; an axis; --step sobolev; default: 1, shared: k)",
    )
    r = parser.add_argument_group("execution")
    r.add_argument(
        "--workers",
        default=None,
        metavar="N",
        help="worker processes of the embedded local cluster (default: the number of cores)",
    )
    r.add_argument(
        "--scheduler",
        default=None,
        metavar="tcp://HOST:PORT",
        help="attach to this running Dask scheduler instead of starting a local cluster",
    )
    r.add_argument("--retry-failed", action="store_true", help="run failed tasks again")
    r.add_argument("--no-run", action="store_true", help="run nothing; only export, summarise or report the store")
    o = parser.add_argument_group("outputs")
    o.add_argument("--export", default=None, metavar="F.csv", help="write one row per task")
    o.add_argument("--summary", default=None, metavar="F.csv|F.nc", help="write one row per point and d")
    o.add_argument(
        "--report",
        nargs="?",
        const="10",
        default=None,
        metavar="N",
        help="print the N (default 10) comparisons least compatible with theory (smallest t-test p-value)",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    command = getattr(args, "command_line", "sobolev-rf campaign")
    if args.export is not None and Path(args.export).suffix.lower() != ".csv":
        raise UserError(f"--export must end in .csv, got {args.export!r}.")
    if args.summary is not None and Path(args.summary).suffix.lower() not in (".csv", ".nc"):
        raise UserError(f"--summary must end in .csv or .nc, got {args.summary!r}.")
    top = None if args.report is None else integer("--report", args.report, 1)
    workers = None if args.workers is None else integer("--workers", args.workers, 1)
    from ..campaign import engine as cp

    scheduler = None if args.scheduler is None else cp.check_scheduler_address(args.scheduler)
    if scheduler is not None and workers is not None:
        raise UserError("--workers applies to the embedded local cluster; an attached cluster has its own workers.")
    wanted = cp.campaign_from_options(vars(args))
    failed = 0
    if args.no_run:
        if not Path(args.store).exists():
            raise UserError(f"{args.store} does not exist (--no-run reads an existing store).")
        campaign, st = cp.open_store(wanted, args.store, lock=False, readonly=True)
        st.close()
    else:
        if wanted is None and not Path(args.store).exists():
            raise UserError(f"{args.store} does not exist; give the campaign options (e.g. --d, --seeds) to create it.")
        stats = _run_with_bar(wanted, args.store, scheduler, workers, args.retry_failed)
        print(stats.line(args.store), file=sys.stderr)
        failed = stats.failed
        campaign = None
    from ..campaign.results import export_csv, report_text, summarize, write_summary

    if args.export is not None or args.summary is not None or top is not None:
        campaign, st = cp.open_store(campaign or wanted, args.store, lock=False, readonly=True)
        try:
            if args.export is not None:
                n = export_csv(st, args.export, command)
                print(f"wrote {n} tasks to {args.export}", file=sys.stderr)
            if args.summary is not None:
                n = write_summary(campaign, st, args.summary, command)
                print(f"wrote {n} point × d rows to {args.summary}", file=sys.stderr)
            if top is not None:
                sys.stdout.write(report_text(summarize(campaign, st), top))
        finally:
            st.close()
    return 1 if failed else 0


def _run_with_bar(campaign: Any, store: str, scheduler: str | None, workers: int | None, retry_failed: bool) -> Any:
    import logging

    import distributed  # noqa: F401 (it sets its loggers up on import; set them after)

    from ..campaign.engine import run_campaign
    from ..progress import TaskBar

    # the command reports a lost scheduler in its own one line; Dask's client would add tracebacks
    for name in ("distributed.client", "distributed.comm", "distributed.core"):
        logging.getLogger(name).setLevel(logging.CRITICAL)
    with TaskBar("campaign") as bar:
        progress = bar.update if progress_enabled() else None
        return run_campaign(
            campaign, store, scheduler=scheduler, workers=workers, retry_failed=retry_failed, progress=progress
        )
