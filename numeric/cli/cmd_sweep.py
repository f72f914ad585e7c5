"""``sobolev-rf sweep``: the asymptotic errors on a grid of (p/d, n/d, λ, Δ_f, Δ_g, τ) by the generated solver.

A thin layer: it parses and validates the axes, then writes the grid solved box by box as CSV (stdout or a
file) or NetCDF (:mod:`sobolev_rf.numeric.reports.grid`: the chunked layout, the CSV blocks, the staged NetCDF
writer and its provenance). With --step, the one-step readout theory's grid is written as CSV.
"""

from __future__ import annotations

import argparse
import math
import shlex
import sys
import time
from typing import Any

import numpy as np

from ...codegen.atomic import atomic_write_text
from ...derive.errors import UserError
from ...derive.params import ModelParams, parse_alignment
from ...derive.values import parse_range
from ..artifacts import csv_columns
from ..progress import Progress
from ..reports.grid import AXES, GridSweep, csv_blocks, provenance, write_csv, write_netcdf
from ..theory.solve import BACKENDS
from .args import add_model_arguments, add_step_arguments, params_from_args

#: Largest number of grid points of one sweep.
MAX_POINTS = 4_000_000
#: ``--out`` names ending so are written as NetCDF, anything else as CSV.
NETCDF_SUFFIXES = (".nc", ".nc4", ".netcdf")


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "sweep",
        description="Every one of --p-over-d, --n-over-d, --lam, --noise-f, --noise-g, --tau takes one value, a linear "
        "range start:stop:num or a geometric range log:start:stop:num (e.g. --tau log:0.01:100:41); "
        "the grid is their outer product. lam = 0 is the limit λ → 0⁺, whose interpolation threshold "
        "is p = (1 + k)n for every tau > 0 and p = n for tau = 0. Every point is first solved along its line of the "
        "grid (C: from the solutions before it on the line, else from its cold start; one thread, or "
        "$OMP_NUM_THREADS, with the same results), with a progress bar; points that fail are then re-solved from a "
        "converged neighbour along "
        "the first swept axis (continuation). Prints CSV (or writes it to --out): the swept values, "
        "every output, converged.",
    )
    add_model_arguments(p)
    add_step_arguments(p)
    p.add_argument("--backend", choices=BACKENDS, default="auto", help="solver backend (default: auto)")
    p.add_argument(
        "--out",
        default=None,
        metavar="FILE",
        help="write the grid here instead of stdout: NetCDF when FILE ends in .nc (one dimension and coordinate "
        "per axis, the command line and provenance in the attributes; open with xarray.open_dataset), else CSV",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.step != "none":
        return _run_step(args)
    axes = {name: parse_range(name, getattr(args, name)) for name in AXES}
    first: dict[str, Any] = {name: float(v[0]) for name, v in axes.items()}
    alignment = None if args.alignment is None else parse_alignment(args.alignment)
    try:
        k = int(args.k)
    except ValueError:
        raise UserError(f"k must be an integer, got {args.k!r}.") from None
    for name, values in axes.items():  # validate every value, not only the first
        for v in (values.min(), values.max()):
            ModelParams(
                activation=args.activation, teacher=args.teacher, k=k, alignment=alignment, **{**first, name: float(v)}
            )
    size = math.prod(len(v) for v in axes.values())
    if size > MAX_POINTS:
        raise UserError(f"the grid has {size} points, more than {MAX_POINTS}.")
    sweep = GridSweep(axes, k, args.activation, args.teacher, alignment, args.backend)
    netcdf = bool(args.out) and str(args.out).lower().endswith(NETCDF_SUFFIXES)
    start = time.perf_counter()
    with Progress(size, "sweep") as bar:
        if netcdf:
            command = "sobolev-rf " + shlex.join(sys.argv[1:]) if sys.argv[1:] else "sobolev-rf sweep"
            write_netcdf(args.out, sweep, bar.update, provenance(sweep, command))
        elif args.out:
            write_csv(args.out, sweep, bar.update)
        else:
            for block in csv_blocks(sweep, bar.update):
                sys.stdout.write(block)
    elapsed = max(time.perf_counter() - start, 1e-9)
    bad, on_threshold = sweep.bad, sweep.on_threshold
    threshold = sweep.threshold_text()
    notes = ([f"{bad} did not converge (converged = 0 in the {'file' if netcdf else 'CSV'})"] if bad else []) + (
        [
            f"{on_threshold} point(s) with lam = 0 on the interpolation threshold ({threshold}), "
            "where the errors are infinite (converged = 0)"
        ]
        if on_threshold
        else []
    )
    if np.any(axes["lam"] == 0):
        notes.append(f"lam = 0 is the limit λ → 0⁺: interpolating above and underparameterised below {threshold}")
    print(
        f"sobolev-rf sweep: {size} points in {elapsed:.3f} s ({size / elapsed:,.0f} points/s, {sweep.used} "
        f"backend, continuation along --{sweep.first_swept().replace('_', '-')})"
        f"{'; ' + '; '.join(notes) if notes else ''}",
        file=sys.stderr,
    )
    if args.out:
        print(
            f"wrote {size} points ({sweep.used} backend) to {args.out}{' (NetCDF)' if netcdf else ''}", file=sys.stderr
        )
    return 0


#: Swept axes of a sweep with a first-layer step (the one-step readout theory).
STEP_AXES = ("p_over_d", "n_over_d", "lam", "eta", "alpha0")


def _run_step(args: argparse.Namespace) -> int:
    """A sweep with --step l2|sobolev: η̃ and α₀ (and p/d, n/d, λ) as axes of the one-step readout theory."""
    from ..theory.onestep import solve_step_grid

    fixed = [name for name in ("noise_f", "noise_g", "tau") if len(parse_range(name, getattr(args, name))) > 1]
    if fixed:
        raise UserError(
            f"with --step, sweep {', '.join('--' + a.replace('_', '-') for a in STEP_AXES)}; "
            f"{', '.join('--' + a.replace('_', '-') for a in fixed)} take one value."
        )
    axes = {name: parse_range(name, getattr(args, name) or "1") for name in STEP_AXES}
    if args.eta is None or args.alpha0 is None:
        from ...derive.params import STEP_DEFAULTS

        for name in ("eta", "alpha0"):
            if getattr(args, name) is None:
                axes[name] = np.array([float(STEP_DEFAULTS[name])])
    first = argparse.Namespace(**{**vars(args), **{name: repr(float(v[0])) for name, v in axes.items()}})
    base = params_from_args(first)
    for name, values in axes.items():  # validate every value, not only the first
        for v in (values.min(), values.max()):
            base.with_(**{name: float(v)})
    size = math.prod(len(v) for v in axes.values())
    if size > MAX_POINTS:
        raise UserError(f"the grid has {size} points, more than {MAX_POINTS}.")
    mesh = np.meshgrid(*axes.values(), indexing="ij")
    start = time.perf_counter()
    with Progress(size, "sweep") as bar:
        result = solve_step_grid(base, backend=args.backend, progress=bar.update, **dict(zip(STEP_AXES, mesh)))
    elapsed = max(time.perf_counter() - start, 1e-9)
    bad = int(np.size(result.converged) - np.count_nonzero(result.converged))
    readout = "L2 readout, tau = 0" if base.tau == 0 or base.k == 0 else f"Sobolev readout, tau = {base.tau:g}"
    print(
        f"sobolev-rf sweep: {size} points in {elapsed:.3f} s ({size / elapsed:,.0f} points/s), one-step readout "
        f"({readout}) after a {base.step} step{f'; {bad} did not converge (converged = 0 in the CSV)' if bad else ''}",
        file=sys.stderr,
    )
    names = list(result.outputs)
    text = csv_columns(
        [*STEP_AXES, *names, "converged"],
        [m.ravel() for m in mesh] + [result.outputs[n] for n in names],
        [result.converged],
    )
    if args.out:
        atomic_write_text(args.out, text)
        print(f"wrote {size} points to {args.out}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0
