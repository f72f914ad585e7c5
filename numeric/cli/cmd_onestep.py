"""``sobolev-rf onestep``: feature learning with one first-layer step, L2 against Sobolev
(:mod:`sobolev_rf.numeric.studies.onestep`).

Writes ``onestep.png`` and three CSV files (each headed by the command line) into ``--out`` (default
``./sobolev-rf-out/onestep/``) and prints a short table; nothing is written unless every result was computed.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

from ...derive.values import nonnegative_numbers, parse_range
from ..artifacts import write_outputs
from ..progress import Progress
from .args import add_model_arguments, add_study_options, int_range, params_from_args, study_command, study_out

DESCRIPTION = """\
Feature learning with one full-batch gradient step on the first layer (ONESTEP.md). At the model point of
the shared arguments (its k and tau are the Sobolev readout's; defaults tanh student and teacher, p/d = 2,
n/d = 3) it writes onestep.png with (a) eps_L2 against the step size eta for no step, an L2 step and a Sobolev
step (fresh directions, --tau-step, --k-step, batch --alpha0), each with an L2 readout (tau = 0) and a
Sobolev readout (tau, k; its theory averaged over the readout's zeta shift, for k = 1, 2): theory lines of the
derived one-step systems and simulation points ± SE at --d; (b) the gain eps_L2(L2 step) - eps_L2(Sobolev
step) of the L2 readout over (alpha0, eta); (c) the spike's overlap gamma with the teacher against alpha0 for
several tau_step*k_step; and the data of each panel as CSV.
"""


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("onestep", description=DESCRIPTION)
    add_model_arguments(p)
    p.set_defaults(activation="tanh", teacher="tanh", p_over_d="2", n_over_d="3", lam="0.001", func=run)
    g = add_study_options(
        p,
        "onestep",
        sim_d=("--d", 20, 4000, "simulation dimension (default: 200)"),
        seeds=(1, 1000, "simulation seeds (default: 2)"),
    )
    g.add_argument("--alpha0", default="4", help="step batch n₀ = α₀d of panels (a) (default: %(default)s)")
    g.add_argument("--tau-step", default="1", help="τ₁ of the Sobolev step, fresh directions (default: %(default)s)")
    g.add_argument("--k-step", type=int_range(1, 64), default=1, help="k₁ of the Sobolev step (default: %(default)s)")
    g.add_argument(
        "--eta", default="0:3:31", help="η̃ axis of (a) and (b): value or start:stop:num (default: %(default)s)"
    )
    g.add_argument("--sim-eta", default="0.5,1,2", help="η̃ of the simulation points (default: %(default)s)")
    g.add_argument("--map-alpha0", default="log:0.25:16:33", help="α₀ axis of (b) (default: %(default)s)")
    g.add_argument("--tau-k", default="0,0.5,1,2,4", help="τ₁k₁ values of (c) (default: %(default)s)")


def run(args: argparse.Namespace) -> int:
    from ..plots.onestep import onestep_png
    from ..reports.onestep import errors_csv, gain_csv, overlap_csv, table
    from ..studies.onestep import READOUTS, OnestepSettings, error_curves, gain_map, overlap_curves

    command = study_command(args)
    etas = tuple(float(v) for v in parse_range("eta", args.eta))
    settings = OnestepSettings(
        base=params_from_args(args),
        alpha0=float(parse_range("alpha0", args.alpha0)[0]),
        tau_step=float(parse_range("tau_step", args.tau_step)[0]),
        k_step=args.k_step,
        etas=etas,
        sim_etas=tuple(nonnegative_numbers("--sim-eta", args.sim_eta)),
        d=args.d or 200,
        seeds=args.seeds or 2,
        map_alpha0=tuple(float(v) for v in parse_range("map_alpha0", args.map_alpha0)),
        map_etas=etas,
        tau_k=tuple(nonnegative_numbers("--tau-k", args.tau_k)),
    )
    out = study_out(args)
    with Progress(len(READOUTS) + 1, "onestep: theory") as bar:
        curves = error_curves(settings, bar.update)
        gain = gain_map(settings)
        bar.update()
    overlaps = overlap_curves(settings)
    base = settings.base
    title = (
        f"one step, then ridge: σ = {base.activation}, φ = {base.teacher}, p/d = {base.p_over_d:g}, "
        f"n/d = {base.n_over_d:g}, λ = {base.lam:g}, α₀ = {settings.alpha0:g}, Sobolev step τ₁ = "
        f"{settings.tau_step:g}, k₁ = {settings.k_step}; Sobolev readout τ = {base.tau:g}, k = {base.k}; "
        f"simulation d = {settings.d}, {settings.seeds} seeds"
    )
    files: dict[str, str | bytes] = {
        "onestep.png": onestep_png(curves, gain, overlaps, np.asarray(settings.overlap_alpha0), title, command),
        "onestep_errors.csv": errors_csv(command, curves),
        "onestep_gain.csv": gain_csv(command, gain),
        "onestep_overlap.csv": overlap_csv(command, settings, overlaps),
    }
    for path in write_outputs(out, files):
        print(f"wrote {path}", file=sys.stderr)
    print(table(settings, curves, gain))
    return 0
