"""``sobolev-rf demo``: the project's main job on its embedded default (:mod:`sobolev_rf.numeric.studies.demo`,
``make demo``): writes ``double_descent.png/.csv``, ``phase_L2.png`` and ``phase_diagram.csv`` into ``--out``,
all or nothing, then prints the theory-vs-simulation table.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from ..artifacts import write_outputs
from .args import add_study_options, study_out

DESCRIPTION = """\
Runs the embedded default (ReLU features, tanh teacher, λ = 1e-3, noiseless, alignment 1) and writes
double_descent.png/.csv (eps_L2 and eps_H1 along p/d at n/d = 1 for τ = 0, τ = 1 with k = 1 and k = 2:
theory lines, simulation points ± SE), phase_L2.png and phase_diagram.csv (eps_L2 of L2 and Sobolev
training over a (p/d, n/d) grid and their difference) into --out, and prints a summary table.
"""


def add_parser(subparsers: Any) -> None:
    """Register ``demo`` and its options."""
    parser = subparsers.add_parser(
        "demo", description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_study_options(
        parser,
        "demo",
        out="sobolev-rf-out",
        grid=(2, None, "phase-diagram grid size G×G (default: 80, --quick: 5)"),
        sim_d=("--d", 10, None, "input dimension of the simulations (default: 400, --quick: 60)"),
        seeds=(1, None, "simulation seeds per point (default: 3, --quick: 1)"),
        quick="tiny run for tests: 8 theory and 3 simulation points per curve, d = 60, 1 seed",
    )
    parser.set_defaults(func=run)


def settings_from_args(args: argparse.Namespace) -> Any:
    """Fill in the defaults (full or ``--quick``) of the options not given."""
    from ..studies.demo import Settings

    quick = bool(args.quick)
    return Settings(
        out=study_out(args),
        d=args.d or (60 if quick else 400),
        seeds=args.seeds or (1 if quick else 3),
        grid=args.grid or (5 if quick else 80),
        points=8 if quick else 120,
        sim_points=3 if quick else 8,
        quick=quick,
    )


def run(args: argparse.Namespace) -> int:
    """Compute both figures, write the four files atomically, print the summary table."""
    from ..plots.demo import curves, double_descent_png, phase_png
    from ..reports.demo import double_descent_csv, phase_csv, summary_table
    from ..studies.demo import BASE, DD_N_OVER_D, double_descent, phase_diagram

    settings = settings_from_args(args)
    command = settings.command()
    start = time.perf_counter()
    dd = double_descent(settings)
    phase = phase_diagram(settings)
    model = f"ReLU features, tanh teacher, λ = {BASE.lam:g}, noiseless, ϖ = 1"
    files: dict[str, str | bytes] = {
        "double_descent.png": double_descent_png(
            curves(dd),
            DD_N_OVER_D,
            settings.d,
            settings.seeds,
            f"Double descent of L2 vs Sobolev training ({model})",
            command,
        ),
        "phase_L2.png": phase_png(
            phase.p_over_d,
            phase.n_over_d,
            phase.l2["eps_L2"],
            phase.sobolev["eps_L2"],
            f"Test error ε_L2 over (p/d, n/d), d → ∞ theory ({model})",
            command,
        ),
        "double_descent.csv": double_descent_csv(settings, dd),
        "phase_diagram.csv": phase_csv(settings, phase),
    }
    write_outputs(settings.out, files)  # all or nothing
    print(summary_table(dd, settings.d, settings.seeds))
    print(
        f"\nwrote double_descent.png, double_descent.csv, phase_L2.png, phase_diagram.csv to {settings.out}/ "
        f"in {time.perf_counter() - start:.1f} s"
    )
    return 0
