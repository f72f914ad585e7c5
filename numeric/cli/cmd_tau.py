"""``sobolev-rf tau``: the optimal Sobolev weight τ* (:mod:`sobolev_rf.numeric.studies.tau`).

Parses the model point and the study options, computes, and writes ``tau_curve``, ``tau_maps`` and ``tau_noise``
(``.png`` and ``.csv``) into ``--out``, all or nothing, then prints the table.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import numpy as np

from ...derive.values import positive_number
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
Which weight τ of the gradient term minimises each test error, and what does tuning it gain over plain
L2 training (τ = 0) and over Sobolev training with τ = 1? τ* is found by a scan of log τ over
[1e-4, 1e4] and a bounded optimisation on log τ; τ* = 0 (L2 training), τ* = 0⁺ (the infimum is reached
only as τ → 0⁺: eps_H1, whose constant part every τ > 0 learns) and τ* = ∞ are detected by comparing
with the exact τ = 0 solution and the large-τ limit (τ = 1e8), and reported as such. Writes
tau_curve.png/.csv (errors against τ at the model point, simulation points ± SE), tau_maps.png/.csv
(τ* and the gains over a (p/d, n/d) grid) and tau_noise.png/.csv (τ* against Δ_g and Δ_f), and prints
a table. τ itself is swept; --tau, if given, is marked on the curves. Needs λ > 0 and k >= 1.
"""


def add_parser(subparsers: Any) -> None:
    """Register ``tau`` and its options."""
    parser = subparsers.add_parser("tau", description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_model_arguments(parser)
    parser.set_defaults(p_over_d="0.5", tau=None, func=run)
    describe_options(
        parser,
        tau="not used for the errors (τ is swept and optimised); if given, marked on the curves",
        noise_f="Δ_f of the model point, held fixed in the Δ_g study (default: 0)",
        noise_g="Δ_g of the model point, held fixed in the Δ_f study (default: 0)",
        p_over_d="features per input dimension p/d of the model point (default: 0.5)",
    )
    add_study_options(
        parser,
        "tau",
        grid=(3, 200, "map size: G values of p/d × G values of n/d, 3 to 200 (default: 24, --quick: 4)"),
        delta_max="largest noise variance of the τ*(Δ) study; Δ = 0 and log-spaced [DMAX/1000, DMAX] (default: 1)",
        sim_d=("--sim-d", 0, None, "input dimension of the simulation points, 0 = none (default: 200, --quick: 40)"),
        seeds=(1, None, "simulation seeds per point (default: 2, --quick: 1)"),
        quick="tiny run for tests: 4×4 maps, coarse τ scan, 4 noise levels, simulation at τ = 0, 1, d = 40",
    )


def settings_from_args(args: argparse.Namespace) -> Any:
    """Validate the command line (cheaply, before any heavy work) and fill in the defaults."""
    from ..studies.tau import CURVE_RANGE, SIM_TAUS, Settings, check_point
    from ..theory.coefficients import coefficients

    quick = bool(args.quick)
    out = study_out(args)
    user_tau = None if args.tau is None else float(params_from_args(args).tau)
    params = params_from_args(args, tau="1")
    check_point(params)
    coefficients(params.activation)  # parses and validates σ and φ now, not after the work
    coefficients(params.teacher)
    delta_max = positive_number("--delta-max", args.delta_max)
    sim_d = sim_size(args, 200, 40)
    deltas = np.concatenate([[0.0], np.geomspace(delta_max * 1e-3, delta_max, 3 if quick else 12)])
    lo, hi = CURVE_RANGE
    return Settings(
        out=out,
        params=params,
        user_tau=user_tau,
        grid=args.grid or (4 if quick else 24),
        curve_taus=np.geomspace(lo, hi, int(round(np.log10(hi / lo) * (3 if quick else 12))) + 1),
        per_decade=2 if quick else 4,
        xatol=1e-2 if quick else 1e-4,
        deltas=deltas,
        sim_d=sim_d,
        seeds=args.seeds or (1 if quick else 2),
        sim_taus=(0.0, 1.0) if quick else SIM_TAUS,
        quick=quick,
        command=study_command(args),
    )


def run(args: argparse.Namespace) -> int:
    """Validate, compute everything, then write the six files and print the table."""
    from ..plots.tau import curve_png, maps_png, noise_png
    from ..reports.tau import curve_csv, maps_csv, noise_csv, summary_table
    from ..studies.tau import compute

    settings = settings_from_args(args)
    start = time.perf_counter()
    study = compute(settings)
    files: dict[str, str | bytes] = {
        "tau_curve.png": curve_png(settings, study),
        "tau_curve.csv": curve_csv(settings, study),
        "tau_maps.png": maps_png(settings, study),
        "tau_maps.csv": maps_csv(settings, study),
        "tau_noise.png": noise_png(settings, study),
        "tau_noise.csv": noise_csv(settings, study),
    }
    write_outputs(settings.out, files)
    print(summary_table(settings, study))
    if settings.user_tau is not None:
        print(f"\n(--tau {settings.user_tau:g} is marked on tau_curve.png; τ itself is swept.)")
    print(f"\nwrote {', '.join(files)} to {settings.out}/ in {time.perf_counter() - start:.1f} s")
    return 0
