"""``sobolev-rf onestep``: feature learning with one first-layer step, L2 against Sobolev (studies/onestep.py).

Writes ``onestep.png`` and three CSV files (each headed by the command line) into ``--out`` (default
``./sobolev-rf-out/onestep/``) and prints a short table; nothing is written unless every result was computed.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

from ...derive.errors import UserError
from ..artifacts import csv_text, fmt, write_outputs
from ..progress import Progress
from .args import add_model_arguments, int_range, params_from_args, parse_range

HELP = "one first-layer step (none / L2 / Sobolev) then an L2 or Sobolev readout: errors, gain map, overlap"

DESCRIPTION = """\
Feature learning with one full-batch gradient step on the first layer (ONESTEP.md). At the model point of
the shared arguments (its k and tau are the Sobolev readout's; defaults tanh student and teacher, p/d = 2,
n/d = 3) it writes onestep.png with (a) eps_L2 against the step size eta for no step, an L2 step and a Sobolev
step (fresh directions, --tau-step, --k-step, batch --alpha0), each with an L2 readout (tau = 0: theory lines
of the derived one-step system) and a Sobolev readout (simulation only after a step), simulation points
± SE at --d; (b) the gain eps_L2(L2 step) - eps_L2(Sobolev step) of the L2 readout over (alpha0, eta);
(c) the spike's overlap gamma with the teacher against alpha0 for several tau_step*k_step; and the data of
each panel as CSV.
"""


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("onestep", help=HELP, description=DESCRIPTION)
    add_model_arguments(p)
    p.set_defaults(activation="tanh", teacher="tanh", p_over_d="2", n_over_d="3", lam="0.001")
    g = p.add_argument_group("the study")
    g.add_argument("--alpha0", default="4", help="step batch n₀ = α₀d of panels (a) (default: %(default)s)")
    g.add_argument("--tau-step", default="1", help="τ₁ of the Sobolev step, fresh directions (default: %(default)s)")
    g.add_argument("--k-step", type=int_range(1, 64), default=1, help="k₁ of the Sobolev step (default: %(default)s)")
    g.add_argument(
        "--eta", default="0:3:31", help="η̃ axis of (a) and (b): value or start:stop:num (default: %(default)s)"
    )
    g.add_argument("--sim-eta", default="0.5,1,2", help="η̃ of the simulation points (default: %(default)s)")
    g.add_argument("--d", type=int_range(20, 4000), default=200, help="simulation dimension (default: %(default)s)")
    g.add_argument("--seeds", type=int_range(1, 1000), default=2, help="simulation seeds (default: %(default)s)")
    g.add_argument("--map-alpha0", default="log:0.25:16:33", help="α₀ axis of (b) (default: %(default)s)")
    g.add_argument("--tau-k", default="0,0.5,1,2,4", help="τ₁k₁ values of (c) (default: %(default)s)")
    g.add_argument("--out", default="sobolev-rf-out/onestep", help="output folder (default: %(default)s)")
    p.set_defaults(func=run)


def _numbers(option: str, text: str) -> tuple[float, ...]:
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        raise UserError(f"{option} must be comma-separated numbers, got {text!r}.") from None
    if not all(np.isfinite(values)) or min(values) < 0:
        raise UserError(f"{option} must be finite numbers >= 0, got {text!r}.")
    return values


def run(args: argparse.Namespace) -> int:
    from ..plots.onestep import onestep_png
    from ..studies.onestep import READOUTS, STEPS, OnestepSettings, error_curves, gain_map, overlap_curves

    command = "sobolev-rf " + " ".join(sys.argv[1:])
    etas = tuple(float(v) for v in parse_range("eta", args.eta))
    settings = OnestepSettings(
        base=params_from_args(args),
        alpha0=float(parse_range("alpha0", args.alpha0)[0]),
        tau_step=float(parse_range("tau_step", args.tau_step)[0]),
        k_step=args.k_step,
        etas=etas,
        sim_etas=_numbers("--sim-eta", args.sim_eta),
        d=args.d,
        seeds=args.seeds,
        map_alpha0=tuple(float(v) for v in parse_range("map_alpha0", args.map_alpha0)),
        map_etas=etas,
        tau_k=_numbers("--tau-k", args.tau_k),
    )
    with Progress(len(READOUTS) + len(settings.simulations()) + 1, "onestep") as bar:
        curves = error_curves(settings, bar.update)
        gain = gain_map(settings)
        bar.update()
    overlaps = overlap_curves(settings)
    rows = [
        [step, readout, "theory", fmt(e), fmt(y), "nan"]
        for (step, readout), ys in curves.theory.items()
        for e, y in zip(curves.etas, ys)
        if np.isfinite(y)
    ]
    rows += [
        [step, readout, "simulation", fmt(e), fmt(m), fmt(s)]
        for (step, readout), (xs, ms, ss) in curves.sim.items()
        for e, m, s in zip(xs, ms, ss)
    ]
    a0 = np.repeat(gain.alpha0, len(gain.etas))
    et = np.tile(gain.etas, len(gain.alpha0))
    map_rows = [
        [fmt(a), fmt(e), fmt(x), fmt(y), fmt(x - y)]
        for a, e, x, y in zip(a0, et, gain.l2_step.ravel(), gain.sobolev_step.ravel())
    ]
    alpha_axis = np.asarray(settings.overlap_alpha0)
    overlap_rows = [[fmt(tk), fmt(a), fmt(g)] for tk, gs in overlaps.items() for a, g in zip(alpha_axis, gs)]
    base = settings.base
    title = (
        f"one step, then ridge: σ = {base.activation}, φ = {base.teacher}, p/d = {base.p_over_d:g}, "
        f"n/d = {base.n_over_d:g}, λ = {base.lam:g}, α₀ = {settings.alpha0:g}, Sobolev step τ₁ = "
        f"{settings.tau_step:g}, k₁ = {settings.k_step}; Sobolev readout τ = {base.tau:g}, k = {base.k}; "
        f"simulation d = {settings.d}, {settings.seeds} seeds"
    )
    files: dict[str, str | bytes] = {
        "onestep.png": onestep_png(curves, gain, overlaps, alpha_axis, title, command),
        "onestep_errors.csv": csv_text(command, ["step", "readout", "source", "eta", "eps_L2", "eps_L2_se"], rows),
        "onestep_gain.csv": csv_text(
            command, ["alpha0", "eta", "eps_L2_l2_step", "eps_L2_sobolev_step", "gain"], map_rows
        ),
        "onestep_overlap.csv": csv_text(command, ["tau_step_k_step", "alpha0", "gamma"], overlap_rows),
    }
    for path in write_outputs(args.out, files):
        print(f"wrote {path}", file=sys.stderr)
    print(f"{'step':8s} {'readout':8s} " + " ".join(f"{'eta=' + format(e, 'g'):>16s}" for e in settings.sim_etas))
    for step in STEPS:
        for readout in READOUTS:
            xs, ms, ss = curves.sim[step, readout]
            cells = [f"{m:.4f} ± {s:.4f}" if np.isfinite(s) else f"{m:.4f}" for m, s in zip(ms, ss)]
            print(f"{step:8s} {readout:8s} " + " ".join(f"{c:>16s}" for c in cells))
    g = gain.gain
    print(f"gain of the Sobolev step (L2 readout): max {np.nanmax(g):.4f}, min {np.nanmin(g):.4f} over the map")
    return 0
