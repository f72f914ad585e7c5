"""``sobolev-rf demo``: the project's main job on its embedded default (``make demo``).

Default model: ReLU features σ, tanh teacher φ, λ = 1e-3, noiseless labels, alignment ϖ = 1. It writes into
``--out`` (default ``./sobolev-rf-out/``):

1. ``double_descent.png`` / ``.csv``: eps_L2 and eps_H1 along p/d ∈ [0.1, 6] at n/d = 1 for L2 training
   (τ = 0), Sobolev training with k = 1 and with k = 2: d → ∞ theory lines
   (:func:`sobolev_rf.numeric.theory.solve.solve`) and finite-size simulation points
   (:func:`sobolev_rf.numeric.simulation.exact.simulate`, mean ± standard error over seeds).
2. ``phase_L2.png`` / ``phase_diagram.csv``: theory eps_L2 of L2 and Sobolev (τ = 1, k = 1) training over
   a log-spaced (p/d, n/d) grid in [0.2, 5]², and their difference.
3. A summary table on stdout: theory against simulation at a few points.

Every file is written atomically; the PNG metadata and the first line of each CSV hold the command line.
"""

from __future__ import annotations

import argparse
import math
import shlex
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ...derive.errors import UserError
from ...derive.params import ModelParams, training_rows
from ..artifacts import csv_text, fmt, plus_minus, write_outputs
from ..simulation.exact import simulate
from .args import int_range
from .progress import Progress

if TYPE_CHECKING:
    from ..plots.figures import Curve

HELP = "the main job: double-descent curves, phase diagrams and a theory-vs-simulation table"

DESCRIPTION = """\
Runs the embedded default (ReLU features, tanh teacher, λ = 1e-3, noiseless, alignment 1) and writes
double_descent.png/.csv (eps_L2 and eps_H1 along p/d at n/d = 1 for τ = 0, τ = 1 with k = 1 and k = 2:
theory lines, simulation points ± SE), phase_L2.png and phase_diagram.csv (eps_L2 of L2 and Sobolev
training over a (p/d, n/d) grid and their difference) into --out, and prints a summary table.
"""

#: The embedded default model point; τ, k and the ratios are set per figure.
BASE = ModelParams(activation="relu", teacher="tanh", k=1, tau=0, lam=1e-3, noise_f=0.0, noise_g=0.0)
#: Training configurations of the double-descent figure: (label, τ, k).
CONFIGS: tuple[tuple[str, int, int], ...] = (("L2 (τ=0)", 0, 1), ("Sobolev τ=1, k=1", 1, 1), ("Sobolev τ=1, k=2", 1, 2))
#: Quantities written to the double-descent CSV.
QUANTITIES = ("eps_L2", "eps_H1", "eps_grad", "train_loss", "train_error_L2")
DD_COLUMNS = ("kind", "config", "tau", "k", "p_over_d", "n_over_d", "d", "seeds") + tuple(
    name for key in QUANTITIES for name in (key, f"{key}_se")
)
PHASE_COLUMNS = ("p_over_d", "n_over_d", "eps_L2_tau0", "eps_L2_tau1", "eps_L2_diff", "eps_H1_tau0", "eps_H1_tau1")
DD_N_OVER_D = 1.0
DD_RANGE = (0.1, 6.0)
PHASE_RANGE = (0.2, 5.0)
#: p/d values near which the summary table compares theory and simulation.
TABLE_P_OVER_D = (0.5, 4.0)


@dataclass(frozen=True)
class Settings:
    """Resolved demo options: sizes of the grids, the simulation and where to write."""

    out: Path
    d: int
    seeds: int
    grid: int
    points: int
    sim_points: int
    quick: bool

    def command(self) -> str:
        """The command line that reproduces this run exactly (all sizes explicit)."""
        words = (
            ["sobolev-rf", "demo"]
            + (["--quick"] if self.quick else [])
            + ["--d", str(self.d), "--seeds", str(self.seeds), "--grid", str(self.grid), "--out", str(self.out)]
        )
        return shlex.join(words)


def add_parser(subparsers: Any) -> None:
    """Register ``demo`` and its options."""
    parser = subparsers.add_parser(
        "demo", help=HELP, description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--out",
        default="sobolev-rf-out",
        metavar="DIR",
        help="output folder, created if missing (default: %(default)s)",
    )
    parser.add_argument(
        "--d",
        type=int_range(10),
        default=None,
        metavar="D",
        help="input dimension of the simulations (default: 400, --quick: 60)",
    )
    parser.add_argument(
        "--seeds",
        type=int_range(1),
        default=None,
        metavar="S",
        help="simulation seeds per point (default: 3, --quick: 1)",
    )
    parser.add_argument(
        "--grid",
        type=int_range(2),
        default=None,
        metavar="G",
        help="phase-diagram grid size G×G (default: 24, --quick: 5)",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="tiny run for tests: 8 theory and 3 simulation points per curve, d = 60, 1 seed",
    )
    parser.set_defaults(func=run)


def settings_from_args(args: argparse.Namespace) -> Settings:
    """Fill in the defaults (full or ``--quick``) of the options not given."""
    quick = bool(args.quick)
    return Settings(
        out=Path(args.out),
        d=args.d or (60 if quick else 400),
        seeds=args.seeds or (1 if quick else 3),
        grid=args.grid or (5 if quick else 24),
        points=8 if quick else 120,
        sim_points=3 if quick else 8,
        quick=quick,
    )


def _theory_point(params: ModelParams) -> dict[str, float]:
    """The d → ∞ prediction at one point; NaN where the solver cannot resolve it."""
    from ..theory.solve import solve_path

    (result,) = solve_path([params])
    if isinstance(result, UserError):
        return {key: math.nan for key in QUANTITIES}
    return {key: float(getattr(result, key)) for key in QUANTITIES}


def _theory_many(points: Sequence[ModelParams], label: str) -> list[dict[str, float]]:
    """The d → ∞ prediction at every point (continuation along the sequence, progress bar); all quantities
    NaN where the solver cannot resolve a point, with a warning on stderr."""
    from ..theory.solve import solve_path

    out = []
    with Progress(len(points), label) as bar:
        for start in range(0, len(points), 8):
            for result in solve_path(list(points[start : start + 8])):
                out.append(
                    {key: math.nan for key in QUANTITIES}
                    if isinstance(result, UserError)
                    else {key: float(getattr(result, key)) for key in QUANTITIES}
                )
            bar.update(min(8, len(points) - start))
    failed = sum(not math.isfinite(row["eps_L2"]) for row in out)
    if failed == len(out):
        raise UserError(f"the asymptotic solver resolved none of the {len(out)} points of '{label}'.")
    if failed:
        print(
            f"sobolev-rf demo: warning: {failed} of {len(out)} theory points of '{label}' did not converge "
            f"(left blank)",
            file=sys.stderr,
        )
    return out


@dataclass(frozen=True)
class SimPoint:
    """One simulated point of a double-descent curve."""

    config: int
    params: ModelParams
    p_over_d: float
    mean: dict[str, float]
    se: dict[str, float]


def double_descent(settings: Settings) -> tuple[list[Curve], list[SimPoint], str]:
    """Theory and simulation along p/d for :data:`CONFIGS`; returns (curves, simulated points, CSV text).

    The theory grid is log-spaced plus the interpolation thresholds p = rn (r = 1 + k training rows per sample
    for τ > 0, 1 for τ = 0), so the peaks are resolved.
    """
    from ..plots.figures import Curve

    thresholds = [training_rows(k, tau) * DD_N_OVER_D for _, tau, k in CONFIGS]
    xs = np.union1d(np.geomspace(*DD_RANGE, settings.points), [t for t in thresholds if DD_RANGE[0] < t < DD_RANGE[1]])
    base = BASE.with_(n_over_d=DD_N_OVER_D)
    theory_points = [base.with_(tau=tau, k=k, p_over_d=float(x)) for _, tau, k in CONFIGS for x in xs]
    theory = _theory_many(theory_points, "theory: double descent")
    sim_targets = np.geomspace(*DD_RANGE, settings.sim_points)
    sims: list[SimPoint] = []
    with Progress(len(CONFIGS) * len(sim_targets), f"simulation d={settings.d}") as bar:
        for index, (_, tau, k) in enumerate(CONFIGS):
            for x in sim_targets:
                params = base.with_(tau=tau, k=k, p_over_d=float(x))
                result = simulate(params, settings.d, seeds=settings.seeds)
                sims.append(
                    SimPoint(
                        index,
                        params,
                        result.p / settings.d,
                        {key: float(result.mean[key]) for key in QUANTITIES},
                        {key: float(result.se[key]) for key in QUANTITIES},
                    )
                )
                bar.update()
    curves = []
    rows: list[list[Any]] = []
    for index, (label, tau, k) in enumerate(CONFIGS):
        lines = theory[index * len(xs) : (index + 1) * len(xs)]
        points = [s for s in sims if s.config == index]
        curves.append(
            Curve(
                label=label,
                threshold=training_rows(k, tau) * DD_N_OVER_D,
                theory_x=xs,
                theory={key: np.array([row[key] for row in lines]) for key in ("eps_L2", "eps_H1")},
                sim_x=np.array([s.p_over_d for s in points]),
                sim_mean={key: np.array([s.mean[key] for s in points]) for key in ("eps_L2", "eps_H1")},
                sim_se={key: np.array([s.se[key] for s in points]) for key in ("eps_L2", "eps_H1")},
            )
        )
        for x, row in zip(xs, lines):
            rows.append(
                ["theory", label, tau, k, fmt(x), fmt(DD_N_OVER_D), "", ""]
                + [item for key in QUANTITIES for item in (fmt(row[key]), "")]
            )
        for s in points:
            rows.append(
                ["simulation", label, tau, k, fmt(s.p_over_d), fmt(DD_N_OVER_D), settings.d, settings.seeds]
                + [fmt(v) for key in QUANTITIES for v in (s.mean[key], s.se[key])]
            )
    return curves, sims, csv_text(settings.command(), DD_COLUMNS, rows)


def phase_diagram(settings: Settings) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, str]:
    """Theory eps_L2 (and eps_H1) of τ = 0 and τ = 1 (k = 1) over the (p/d, n/d) grid.

    Returns (p/d values, n/d values, eps_L2 for τ = 0, eps_L2 for τ = 1, CSV text); the arrays are indexed
    [n/d, p/d].
    """
    ps = np.geomspace(*PHASE_RANGE, settings.grid)
    ns = np.geomspace(*PHASE_RANGE, settings.grid)
    cells = [(float(p), float(n)) for n in ns for p in ps]
    points = [BASE.with_(tau=tau, k=1, p_over_d=p, n_over_d=n) for p, n in cells for tau in (0, 1)]
    values = _theory_many(points, "theory: phase diagram")
    l2, sob = values[0::2], values[1::2]
    shape = (len(ns), len(ps))
    eps_l2 = np.array([row["eps_L2"] for row in l2]).reshape(shape)
    eps_sob = np.array([row["eps_L2"] for row in sob]).reshape(shape)
    rows = [
        [
            fmt(p),
            fmt(n),
            fmt(a["eps_L2"]),
            fmt(b["eps_L2"]),
            fmt(b["eps_L2"] - a["eps_L2"]),
            fmt(a["eps_H1"]),
            fmt(b["eps_H1"]),
        ]
        for (p, n), a, b in zip(cells, l2, sob)
    ]
    return ps, ns, eps_l2, eps_sob, csv_text(settings.command(), PHASE_COLUMNS, rows)


def summary_table(sims: Sequence[SimPoint], d: int, seeds: int) -> str:
    """Theory against simulation for every configuration at the simulated p/d nearest :data:`TABLE_P_OVER_D`."""
    head = (
        f"{'configuration':<18}{'p/d':>7}{'n/d':>6}  {'eps_L2 theory':>14}  {'eps_L2 simulation':>20}"
        f"  {'eps_H1 theory':>14}  {'eps_H1 simulation':>20}"
    )
    lines = [
        f"Theory (d → ∞) vs simulation (d = {d}, {seeds} seed{'s' if seeds > 1 else ''}, mean ± SE)",
        head,
        "-" * len(head),
    ]
    for index, (label, _, _) in enumerate(CONFIGS):
        points = [s for s in sims if s.config == index]
        chosen = {min(points, key=lambda s: abs(math.log(s.p_over_d / t))).p_over_d for t in TABLE_P_OVER_D}
        for s in points:
            if s.p_over_d not in chosen:
                continue
            th = _theory_point(s.params.with_(p_over_d=s.p_over_d))
            lines.append(
                f"{label:<18}{s.p_over_d:>7.3g}{s.params.n_over_d:>6.3g}  {th['eps_L2']:>14.4f}  "
                f"{plus_minus(s.mean['eps_L2'], s.se['eps_L2']):>20}  {th['eps_H1']:>14.4f}  "
                f"{plus_minus(s.mean['eps_H1'], s.se['eps_H1']):>20}"
            )
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    """Compute both figures, write the four files atomically, print the summary table."""
    from ..plots.figures import double_descent_png, phase_png

    settings = settings_from_args(args)
    command = settings.command()
    start = time.perf_counter()
    curves, sims, dd_csv = double_descent(settings)
    ps, ns, eps_l2, eps_sob, phase_csv = phase_diagram(settings)
    model = f"ReLU features, tanh teacher, λ = {BASE.lam:g}, noiseless, ϖ = 1"
    files: dict[str, str | bytes] = {
        "double_descent.png": double_descent_png(
            curves,
            DD_N_OVER_D,
            settings.d,
            settings.seeds,
            BASE.lam,
            f"Double descent of L2 vs Sobolev training ({model})",
            command,
        ),
        "phase_L2.png": phase_png(
            ps, ns, eps_l2, eps_sob, f"Test error ε_L2 over (p/d, n/d), d → ∞ theory ({model})", command
        ),
    }
    files |= {"double_descent.csv": dd_csv, "phase_diagram.csv": phase_csv}
    write_outputs(settings.out, files)  # all or nothing
    print(summary_table(sims, settings.d, settings.seeds))
    print(
        f"\nwrote double_descent.png, double_descent.csv, phase_L2.png, phase_diagram.csv to {settings.out}/ "
        f"in {time.perf_counter() - start:.1f} s"
    )
    return 0
