"""``sobolev-rf sweep``: the asymptotic errors on a grid of (p/d, n/d, λ, Δ_f, Δ_g, τ) by the generated solver."""

from __future__ import annotations

import argparse
import math
import sys
import time
from typing import Any

import numpy as np

from ...codegen.atomic import atomic_write_text
from ...derive.errors import UserError
from ...derive.params import ModelParams, parse_alignment
from ..artifacts import csv_columns
from ..progress import Progress
from ..theory.solve import BACKENDS, solve_grid
from .args import add_model_arguments, add_step_arguments, params_from_args, parse_range

#: Swept axes, in the order of the grid's dimensions and of the CSV columns.
AXES = ("p_over_d", "n_over_d", "lam", "noise_f", "noise_g", "tau")
#: Largest number of grid points of one sweep.
MAX_POINTS = 4_000_000


def _threshold_text(taus: np.ndarray, k: int) -> str:
    """The interpolation threshold(s) of λ → 0⁺ for the swept τ values: p = (1 + k)n for every τ > 0."""
    parts = []
    if np.any(taus == 0) or k == 0:
        parts.append("p = n for tau = 0" if k else "p = n")
    if np.any(taus > 0) and k:
        parts.append(f"p = (1 + k)n = {1 + k}n for every tau > 0")
    return " and ".join(parts)


def _first_swept(axes: dict[str, np.ndarray]) -> int:
    """Index of the axis the continuation runs along: the first with more than one value."""
    return next((i for i, v in enumerate(axes.values()) if len(v) > 1), 0)


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "sweep",
        help="asymptotic errors on a grid of p/d, n/d, lam, noises and tau (generated C or NumPy solver)",
        description="Every one of --p-over-d, --n-over-d, --lam, --noise-f, --noise-g, --tau takes one value, a linear "
        "range start:stop:num or a geometric range log:start:stop:num (e.g. --tau log:0.01:100:41); "
        "the grid is their outer product. lam = 0 is the limit λ → 0⁺, whose interpolation threshold "
        "is p = (1 + k)n for every tau > 0 and p = n for tau = 0. Every point is first solved from its cold start "
        "(vectorised, "
        "with a progress bar); points that fail are then re-solved from a converged neighbour along "
        "the first swept axis (continuation). Prints CSV (or writes it to --out): the swept values, "
        "every output, converged.",
    )
    add_model_arguments(p)
    add_step_arguments(p)
    p.add_argument("--backend", choices=BACKENDS, default="auto", help="solver backend (default: auto)")
    p.add_argument("--out", default=None, metavar="FILE", help="write the CSV here instead of stdout")
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
    mesh = np.meshgrid(*axes.values(), indexing="ij")
    grid = dict(zip(AXES, mesh))
    tau = grid.pop("tau")
    params = dict(
        grid, activation=args.activation, teacher=args.teacher, alignment=None if alignment is None else list(alignment)
    )
    start = time.perf_counter()
    with Progress(size, "sweep") as bar:
        result = solve_grid(k, tau, params, backend=args.backend, progress=bar.update)
    elapsed = max(time.perf_counter() - start, 1e-9)
    on_threshold = int(np.count_nonzero(result.extra["branch"] == "threshold"))
    bad = int(np.size(result.converged) - np.count_nonzero(result.converged)) - on_threshold
    notes = ([f"{bad} did not converge (converged = 0 in the CSV)"] if bad else []) + (
        [
            f"{on_threshold} point(s) with lam = 0 on the interpolation threshold ({_threshold_text(axes['tau'], k)}), "
            "where the errors are infinite (converged = 0)"
        ]
        if on_threshold
        else []
    )
    if np.any(mesh[AXES.index("lam")] == 0):
        notes.append(
            f"lam = 0 is the limit λ → 0⁺: interpolating above and underparameterised below "
            f"{_threshold_text(axes['tau'], k)}"
        )
    print(
        f"sobolev-rf sweep: {size} points in {elapsed:.3f} s ({size / elapsed:,.0f} points/s, {result.backend} "
        f"backend, continuation along --{AXES[_first_swept(axes)].replace('_', '-')})"
        f"{'; ' + '; '.join(notes) if notes else ''}",
        file=sys.stderr,
    )
    names = list(result.outputs)
    shape = mesh[0].shape
    text = csv_columns(
        [*AXES, *names, "converged"],
        [m.ravel() for m in mesh] + [np.broadcast_to(result.outputs[n], shape).ravel() for n in names],
        [np.broadcast_to(result.converged, shape).ravel()],
    )
    if args.out:
        atomic_write_text(args.out, text)
        print(f"wrote {size} points ({result.backend} backend) to {args.out}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0


#: Swept axes of a sweep with a first-layer step (the one-step readout theory: τ = 0).
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
    with Progress(1, "sweep") as bar:
        result = solve_step_grid(base, backend=args.backend, **dict(zip(STEP_AXES, mesh)))
        bar.update()
    elapsed = max(time.perf_counter() - start, 1e-9)
    bad = int(np.size(result.converged) - np.count_nonzero(result.converged))
    print(
        f"sobolev-rf sweep: {size} points in {elapsed:.3f} s ({size / elapsed:,.0f} points/s), one-step readout "
        f"(tau = 0) after a {base.step} step{f'; {bad} did not converge (converged = 0 in the CSV)' if bad else ''}",
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
