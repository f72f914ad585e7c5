"""``sobolev-rf noise``: how label noise Δ_f, Δ_g and the ridge λ set the test errors (numeric/noise.py).

At the model point of the shared arguments (default ReLU features, tanh teacher, τ = 1, k = 1, p/d = 4,
n/d = 1) it writes into ``--out`` (default ``./sobolev-rf-out/noise/``):

1. ``noise_lambda.png`` / ``.csv``: eps_L2 and eps_H1 against λ (log axes) at a few noise levels, separately
   for function noise (Δ_f = level, Δ_g = --noise-g) and gradient noise (Δ_g = level, Δ_f = --noise-f):
   d → ∞ theory lines, the λ → 0⁺ level as a dashed line, the optimal λ* (bounded Brent on log λ) as a
   star, and finite-size simulation points (mean ± standard error over seeds).
2. ``noise_benign.png`` / ``.csv``: over a (Δ, p/d) grid at the same n/d, the optimal λ* and the cost of
   interpolating, ε(0⁺)/ε(λ*) − 1, with the benign region (λ → 0⁺ at least as good as every λ > 0) and the
   interpolation threshold p = rn marked; one column per noise study. The CSV holds eps_L2 and eps_H1.
3. A table on stdout: λ*, ε(λ*) and ε(0⁺) per noise level, and where the benign regions lie.

With τ = 0 (or k = 0) the gradient labels are not in the training loss, so Δ_g has no effect: the gradient
study is skipped and the output says so. Nothing is written unless every result was computed.
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ...derive.errors import UserError
from ...derive.params import ModelParams, ParameterError
from ..artifacts import csv_text, fmt, png_bytes, write_outputs
from .args import add_model_arguments, describe_options, int_range, nonnegative_numbers, params_from_args
from .progress import Progress

HELP = "label noise vs ridge: optimal λ, the λ → 0⁺ limit and benign regimes (figures + CSV)"

DESCRIPTION = """\
How do the test errors depend on the label noise Δ_f (function labels), Δ_g (gradient labels) and the
ridge λ? At the model point given by the shared arguments (here p/d defaults to 4) it writes
noise_lambda.png/.csv (eps_L2, eps_H1 against λ at a few noise levels: theory, the λ → 0⁺ level, the
optimal λ*, simulation points ± SE) and noise_benign.png/.csv (optimal λ* and the benign region, where
interpolating the noise (λ → 0⁺) is at least as good as any λ > 0, over a (Δ, p/d) grid at the given n/d),
and prints a table of λ* and errors. Function noise varies Δ_f with Δ_g = --noise-g; gradient noise varies
Δ_g with Δ_f = --noise-f. λ itself is swept; --lam, if given, is only marked on the λ curves.
"""

#: The two studies in output order, with their display names.
KIND_TITLES = {"function": "function-label noise", "gradient": "gradient-label noise"}
KIND_SYMBOL = {"function": "Δ_f", "gradient": "Δ_g"}
KIND_TEX = {"function": r"$\Delta_f$", "gradient": r"$\Delta_g$"}
QUANTITY_TEX = {"eps_L2": r"$\varepsilon_{L^2}$", "eps_H1": r"$\varepsilon_{H^1}$"}
#: λ values of the simulation points on the λ curves (--quick: the middle one only).
SIM_LAMS = (1e-4, 0.3, 30.0)
#: The map's p/d axis, in units of the interpolation threshold (1 + k for τ > 0)·n/d.
MAP_P_RANGE = (0.1, 20.0)
#: The map's smallest positive Δ relative to --delta-max (log-spaced in between, plus a row Δ = 0).
MAP_DELTA_SPAN = 1e-3

LAMBDA_COLUMNS = (
    "kind",
    "noise",
    "delta",
    "noise_f",
    "noise_g",
    "lam",
    "eps_L2",
    "eps_L2_se",
    "eps_H1",
    "eps_H1_se",
    "benign",
    "d",
    "seeds",
)
BENIGN_COLUMNS = (
    "noise",
    "quantity",
    "delta",
    "noise_f",
    "noise_g",
    "p_over_d",
    "n_over_d",
    "eps_lam0",
    "lam_star",
    "eps_star",
    "lam_best_positive",
    "eps_best_positive",
    "benign",
    "lam_at_upper_edge",
)


@dataclass(frozen=True)
class Settings:
    """Resolved options of one run."""

    out: Path
    params: ModelParams
    user_lam: float | None
    quantity: str
    quantities: tuple[str, ...]
    levels: tuple[float, ...]
    delta_max: float
    grid: int
    lam_grid: np.ndarray  # λ grid of the maps (ascending)
    curve_lams: np.ndarray  # λ grid of the drawn curves
    bracket: tuple[float, float]
    xatol: float
    sim_d: int
    seeds: int
    sim_lams: tuple[float, ...]
    quick: bool
    command: str

    @property
    def threshold(self) -> float:
        """p/d of the interpolation threshold p = rn."""
        return self.params.training_rows * self.params.n_over_d


def add_parser(subparsers: Any) -> None:
    """Register ``noise`` and its options."""
    parser = subparsers.add_parser(
        "noise", help=HELP, description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_model_arguments(parser)
    parser.set_defaults(p_over_d="4", lam=None)
    describe_options(
        parser,
        lam="not used for the errors (λ is swept); if given, marked on the λ curves",
        noise_f="Δ_f held fixed in the gradient-noise study (default: 0)",
        noise_g="Δ_g held fixed in the function-noise study (default: 0)",
    )
    g = parser.add_argument_group("noise study")
    g.add_argument(
        "--out",
        default="sobolev-rf-out/noise",
        metavar="DIR",
        help="output folder, created if missing (default: %(default)s)",
    )
    g.add_argument(
        "--levels",
        default=None,
        metavar="D1,D2,...",
        help="noise levels Δ of the λ curves, 1 to 6 values >= 0 (default: 0,0.1,0.5; --quick: 0,0.5)",
    )
    g.add_argument(
        "--delta-max",
        default="1",
        metavar="DMAX",
        help="largest Δ of the maps; rows are Δ = 0 and log-spaced [DMAX/1000, DMAX] (default: 1)",
    )
    g.add_argument(
        "--grid",
        type=int_range(3, 200),
        default=None,
        metavar="G",
        help="map size: G values of p/d × G values of Δ, 3 to 200 (default: 20, --quick: 4)",
    )
    g.add_argument(
        "--quantity",
        choices=("eps_L2", "eps_H1"),
        default="eps_L2",
        help="error whose optimal λ and benign region the map figure shows (default: %(default)s)",
    )
    g.add_argument(
        "--sim-d",
        type=int_range(0),
        default=None,
        metavar="D",
        help="input dimension of the simulation points, 0 = none (default: 200, --quick: 40)",
    )
    g.add_argument(
        "--seeds",
        type=int_range(1),
        default=None,
        metavar="S",
        help="simulation seeds per point (default: 2, --quick: 1)",
    )
    g.add_argument(
        "--quick",
        action="store_true",
        help="tiny run for tests: 4×4 map, coarse λ grids, levels 0 and 0.5, one simulation λ at d = 40",
    )
    parser.set_defaults(func=run)


def _levels(text: str) -> tuple[float, ...]:
    out = nonnegative_numbers("--levels", text)
    if not 1 <= len(out) <= 6:
        raise UserError(f"--levels takes 1 to 6 noise levels, got {len(out)}.")
    return tuple(dict.fromkeys(out))


def settings_from_args(args: argparse.Namespace) -> Settings:
    """Validate the command line (cheaply, before any heavy work) and fill in the defaults."""
    from ..studies.noise import DEFAULT_BRACKET, check_quantity
    from ..theory.coefficients import coefficients

    quick = bool(args.quick)
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {args.out!r} exists and is not a folder; give a folder path.")
    user_lam = None
    if args.lam is not None:
        user_lam = ModelParams(lam=args.lam).lam
    args_copy = argparse.Namespace(**vars(args))
    args_copy.lam = "0"
    params = params_from_args(args_copy)
    coefficients(params.activation)  # parses and validates σ and φ now, not after minutes of work
    coefficients(params.teacher)
    quantities = ("eps_L2", "eps_H1") if params.k >= 1 else ("eps_L2",)
    check_quantity(params, args.quantity)
    try:
        delta_max = float(args.delta_max)
    except ValueError:
        raise UserError(f"--delta-max must be a number > 0, got {args.delta_max!r}.") from None
    if not math.isfinite(delta_max) or delta_max <= 0:
        raise ParameterError(f"--delta-max must be a finite number > 0, got {args.delta_max!r}.")
    levels = _levels(args.levels) if args.levels is not None else ((0.0, 0.5) if quick else (0.0, 0.1, 0.5))
    sim_d = args.sim_d if args.sim_d is not None else (40 if quick else 200)
    if 0 < sim_d < 10:
        raise UserError(f"--sim-d must be 0 (no simulation) or >= 10, got {sim_d}.")
    lo, hi = DEFAULT_BRACKET
    decades = math.log10(hi / lo)
    per_decade = 1 if quick else 4
    lam_grid = np.geomspace(lo, hi, int(round(decades * per_decade)) + 1)
    curve_lams = np.geomspace(lo, hi, int(round(decades * (2 if quick else 8))) + 1)
    return Settings(
        out=out,
        params=params,
        user_lam=user_lam,
        quantity=args.quantity,
        quantities=quantities,
        levels=levels,
        delta_max=delta_max,
        grid=args.grid or (4 if quick else 20),
        lam_grid=lam_grid,
        curve_lams=curve_lams,
        bracket=(lo, hi),
        xatol=1e-2 if quick else 1e-3,
        sim_d=sim_d,
        seeds=args.seeds or (1 if quick else 2),
        sim_lams=(SIM_LAMS[1],) if quick else SIM_LAMS,
        quick=quick,
        command=getattr(args, "command_line", None) or "sobolev-rf noise",
    )


# --------------------------------------------------------------------------------------------- computing


@dataclass(frozen=True)
class SimPoint:
    """One simulated point of a λ curve."""

    kind: str
    delta: float
    lam: float
    mean: dict[str, float]
    se: dict[str, float]


def _study_point(params: ModelParams, kind: str, delta: float) -> ModelParams:
    """``params`` with the studied noise set to ``delta`` (the other noise keeps its value)."""
    return params.with_(noise_f=delta) if kind == "function" else params.with_(noise_g=delta)


def run_simulations(settings: Settings, kinds: Sequence[str]) -> list[SimPoint]:
    """Finite-size simulation (d = --sim-d, --seeds seeds) at :data:`SIM_LAMS` on every λ curve."""
    from ..simulation.exact import simulate

    if settings.sim_d == 0:
        return []
    jobs = [(kind, delta, lam) for kind in kinds for delta in settings.levels for lam in settings.sim_lams]
    out = []
    with Progress(len(jobs), f"simulation d={settings.sim_d}") as bar:
        for kind, delta, lam in jobs:
            point = _study_point(settings.params, kind, delta).with_(lam=lam)
            result = simulate(point, settings.sim_d, seeds=settings.seeds)
            out.append(
                SimPoint(
                    kind,
                    delta,
                    lam,
                    {q: float(result.mean[q]) for q in settings.quantities},
                    {q: float(result.se[q]) for q in settings.quantities},
                )
            )
            bar.update()
    return out


def map_axes(settings: Settings) -> tuple[np.ndarray, np.ndarray]:
    """(p/d values, Δ values) of the maps: p/d log-spaced over :data:`MAP_P_RANGE` × threshold, Δ = 0 plus
    ``grid − 1`` log-spaced values up to --delta-max."""
    ps = settings.threshold * np.geomspace(*MAP_P_RANGE, settings.grid)
    deltas = np.concatenate(
        [[0.0], np.geomspace(settings.delta_max * MAP_DELTA_SPAN, settings.delta_max, settings.grid - 1)]
    )
    return ps, deltas


# --------------------------------------------------------------------------------------------- CSV, table


def lambda_csv(settings: Settings, curves: Sequence[Any], sims: Sequence[SimPoint]) -> str:
    """noise_lambda.csv: theory curves (kind=theory), λ → 0⁺ values (kind=theory_lam0, lam = 0), optima
    (kind=optimum_<error>, lam = λ*, 0 when benign) and simulation points (kind=simulation)."""
    rows: list[list[Any]] = []
    qs = settings.quantities

    def errors(values: dict[str, float], ses: dict[str, float] | None = None) -> list[str]:
        cells = []
        for q in ("eps_L2", "eps_H1"):
            cells += [fmt(values[q]) if q in values else "", fmt(ses[q]) if ses and q in ses else ""]
        return cells

    for c in curves:
        head = [c.kind, fmt(c.delta), fmt(c.noise_f), fmt(c.noise_g)]
        for i, lam in enumerate(c.lams):
            rows.append(["theory", *head, fmt(lam), *errors({q: c.values[q][i] for q in qs}), "", "", ""])
        rows.append(["theory_lam0", *head, "0", *errors(c.zero), "", "", ""])
        for q in qs:
            opt = c.optima[q]
            rows.append([f"optimum_{q}", *head, fmt(opt.lam), *errors({q: opt.value}), int(opt.benign), "", ""])
    for s in sims:
        nf, ng = (s.delta, settings.params.noise_g) if s.kind == "function" else (settings.params.noise_f, s.delta)
        rows.append(
            [
                "simulation",
                s.kind,
                fmt(s.delta),
                fmt(nf),
                fmt(ng),
                fmt(s.lam),
                *errors(s.mean, s.se),
                "",
                settings.sim_d,
                settings.seeds,
            ]
        )
    return csv_text(settings.command, LAMBDA_COLUMNS, rows)


def benign_csv(settings: Settings, maps: dict[tuple[str, str], Any]) -> str:
    """noise_benign.csv: one row per (noise study, error, Δ, p/d)."""
    rows: list[list[Any]] = []
    for (kind, q), m in maps.items():
        lam_star, eps_star = m.lam_star, m.eps_star
        for i, delta in enumerate(m.deltas):
            nf, ng = (delta, m.background) if kind == "function" else (m.background, delta)
            for j, pd in enumerate(m.p_over_d):
                rows.append(
                    [
                        kind,
                        q,
                        fmt(delta),
                        fmt(nf),
                        fmt(ng),
                        fmt(pd),
                        fmt(settings.params.n_over_d),
                        fmt(m.eps_zero[i, j]),
                        fmt(lam_star[i, j]),
                        fmt(eps_star[i, j]),
                        fmt(m.lam_positive[i, j]),
                        fmt(m.eps_positive[i, j]),
                        int(m.benign[i, j]),
                        int(m.at_upper_edge[i, j]),
                    ]
                )
    return csv_text(settings.command, BENIGN_COLUMNS, rows)


def _lam_text(opt: Any) -> str:
    if opt.benign:
        return "0⁺ benign"
    if opt.at_upper_edge:
        return f"≥{opt.lam:.3g}"
    return f"{opt.lam:.3g}"


def summary_table(settings: Settings, curves: Sequence[Any], maps: dict[tuple[str, str], Any]) -> str:
    """The stdout table: optima per noise level, then where the maps find benign regimes."""
    from ..studies.noise import largest_benign_delta

    qs = settings.quantities
    lines = [f"Optimal ridge λ* (d → ∞ theory) at {settings.params.describe(omit=('lam', 'noise'))}"]
    head = f"{'noise':<10}{'Δ':>7}"
    for q in qs:
        head += f"  {'λ*(' + q + ')':>14}{q + '(λ*)':>14}{q + '(0⁺)':>14}"
    lines += [head, "-" * len(head)]
    for c in curves:
        row = f"{c.kind:<10}{c.delta:>7.3g}"
        for q in qs:
            opt = c.optima[q]
            zero = f"{opt.value_zero:.4f}" if math.isfinite(opt.value_zero) else "∞"
            row += f"  {_lam_text(opt):>14}{opt.value:>14.4f}{zero:>14}"
        lines.append(row)
    if not any(c.kind == "gradient" for c in curves):
        lines.append(
            "gradient noise: not studied, τ = 0 or k = 0 means the gradient labels are not in the "
            "training loss (Δ_g has no effect)."
        )
    lines.append("")
    lines.append(
        f"Benign regimes ({settings.quantity}, λ → 0⁺ at least as good as every λ > 0) over "
        f"p/d ∈ [{MAP_P_RANGE[0] * settings.threshold:.3g}, {MAP_P_RANGE[1] * settings.threshold:.3g}], "
        f"n/d = {settings.params.n_over_d:g}, threshold p/d = {settings.threshold:g}:"
    )
    for (kind, q), m in maps.items():
        if q != settings.quantity:
            continue
        sym = KIND_SYMBOL[kind]
        best = largest_benign_delta(m)
        noiseless = m.benign[int(np.argmin(m.deltas))]
        if not noiseless.any():
            lines.append(f"  {KIND_TITLES[kind]}: no benign cell on the grid (even {sym} = 0 wants λ* > 0).")
            continue
        first = m.p_over_d[noiseless].min()
        j = int(np.nanargmax(np.where(np.isfinite(best), best, -1.0)))
        lines.append(
            f"  {KIND_TITLES[kind]}: {sym} = 0 is benign for p/d ≥ {first:.3g} "
            f"({int(noiseless.sum())} of {len(noiseless)} columns); the widest benign range is "
            f"{sym} ≤ {best[j]:.3g} at p/d = {m.p_over_d[j]:.3g}."
        )
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------- figures


def _plain_log_label(ax: Any) -> Any:
    """Tick labels of a log y axis as plain numbers (0.3, not 3×10⁻¹); on axes spanning more than 1.5
    decades only the mantissas 1, 2 and 5 are labelled."""

    def label(value: float, _: Any) -> str:
        if value <= 0:
            return ""
        low, high = ax.get_ylim()
        mantissa = round(value / 10.0 ** math.floor(math.log10(value) + 1e-9), 6)
        if math.log10(max(high, 1e-300) / max(low, 1e-300)) > 1.5 and mantissa not in (1.0, 2.0, 5.0):
            return ""
        return f"{value:.2g}"

    return label


def lambda_png(settings: Settings, curves: Sequence[Any], sims: Sequence[SimPoint]) -> bytes:
    """Errors against λ: one row per noise study, one column per error."""
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D
    from matplotlib.ticker import FuncFormatter

    kinds = list(dict.fromkeys(c.kind for c in curves))
    qs = settings.quantities
    fig = Figure(figsize=(6.2 * len(qs), 4.6 * len(kinds) + 0.9), layout="constrained")
    axes = np.atleast_2d(fig.subplots(len(kinds), len(qs), squeeze=False))
    lo = settings.curve_lams[0]
    for r, kind in enumerate(kinds):
        rows = [c for c in curves if c.kind == kind]
        for col, q in enumerate(qs):
            ax = axes[r, col]
            for color, c in zip(("C0", "C1", "C3", "C2", "C4", "C5"), rows):
                opt = c.optima[q]
                lam_txt = (
                    "λ* → 0⁺ (benign)"
                    if opt.benign
                    else (f"λ* ≥ {opt.lam:g} (end of search range)" if opt.at_upper_edge else f"λ* = {opt.lam:.2g}")
                )
                ax.plot(c.lams, c.values[q], color=color, lw=1.8, label=f"{KIND_SYMBOL[kind]} = {c.delta:g}: {lam_txt}")
                if math.isfinite(c.zero[q]):
                    ax.axhline(c.zero[q], color=color, ls="--", lw=1.1, alpha=0.8)
                x_star = lo if opt.benign else opt.lam
                ax.plot(
                    [x_star], [opt.value], marker="*", ms=13, color=color, mec="black", mew=0.7, zorder=5, clip_on=False
                )
                pts = [s for s in sims if s.kind == kind and s.delta == c.delta]
                if pts:
                    se = np.array([s.se[q] for s in pts])
                    ax.errorbar(
                        [s.lam for s in pts],
                        [s.mean[q] for s in pts],
                        yerr=se if np.isfinite(se).any() else None,
                        fmt="o",
                        ms=5,
                        capsize=3,
                        color=color,
                        mfc="white",
                        mew=1.3,
                        zorder=4,
                    )
            if settings.user_lam is not None and settings.user_lam > 0:
                ax.axvline(settings.user_lam, color="0.3", ls=":", lw=1.2)
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.yaxis.set_major_formatter(FuncFormatter(_plain_log_label(ax)))
            ax.yaxis.set_minor_formatter(FuncFormatter(_plain_log_label(ax)))
            ax.set_xlim(settings.curve_lams[0], settings.curve_lams[-1])
            ax.set_xlabel("ridge  λ")
            ax.set_ylabel(f"test error {QUANTITY_TEX[q]}")
            other = "Δ_g" if kind == "function" else "Δ_f"
            background = settings.params.noise_g if kind == "function" else settings.params.noise_f
            ax.set_title(f"{KIND_TITLES[kind]} ({other} = {background:g}): {q}")
            ax.grid(True, which="both", alpha=0.25)
            handles, _ = ax.get_legend_handles_labels()
            style = [
                Line2D([], [], color="0.3", ls="--", lw=1.1, label="λ → 0⁺ level (dashed)"),
                Line2D([], [], color="0.3", marker="*", ms=11, ls="none", mec="black", label="optimal λ*"),
            ]
            if sims:
                style.append(
                    Line2D(
                        [],
                        [],
                        color="0.3",
                        marker="o",
                        mfc="white",
                        ls="none",
                        label=f"simulation d = {settings.sim_d} (± SE)",
                    )
                )
            if settings.user_lam is not None and settings.user_lam > 0:
                style.append(Line2D([], [], color="0.3", ls=":", label=f"given λ = {settings.user_lam:g}"))
            ax.legend(handles=handles + style, fontsize=8, loc="best", framealpha=0.85)
    sim_text = (
        f"points: simulation d = {settings.sim_d}, {settings.seeds} seed{'s' if settings.seeds > 1 else ''} (mean ± SE)"
        if sims
        else "no simulation points"
    )
    note = (
        ""
        if "gradient" in kinds
        else (
            "\nτ = 0 (or k = 0): gradient labels are not in the training loss, "
            "Δ_g has no effect; gradient-noise study skipped"
        )
    )
    if settings.params.tau == 0 and "eps_H1" in qs:
        note += "\nτ = 0: eps_H1 does not self-average over V; theory gives its mean over V, one simulation seed "
        note += "scatters around it"
    fig.suptitle(
        f"Test errors against the ridge λ at {settings.params.describe(omit=('lam', 'noise'))}\n"
        f"lines: d → ∞ theory; dashed: λ → 0⁺ limit; stars: optimal λ* (at the left edge when "
        f"λ* → 0⁺); {sim_text}{note}"
    )
    return png_bytes(fig, settings.command)


def _delta_coordinates(deltas: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(row centres, sorted row edges) of the Δ axis in units of log₁₀ Δ: one row per positive Δ (log-spaced,
    centred on log₁₀ Δ) and, for Δ = 0, a row of height max(step, 0.35) below them."""
    positive = np.sort(deltas[deltas > 0])
    logs = np.log10(positive)
    step = float(logs[1] - logs[0]) if len(logs) > 1 else 1.0
    pos_edges = np.concatenate([[logs[0] - step / 2], 0.5 * (logs[1:] + logs[:-1]), [logs[-1] + step / 2]])
    gap = max(step, 0.35)
    zero_centre = pos_edges[0] - gap / 2
    y = np.where(deltas > 0, np.log10(np.where(deltas > 0, deltas, 1.0)), zero_centre)
    edges = np.concatenate([[pos_edges[0] - gap], pos_edges]) if (deltas == 0).any() else pos_edges
    return y, edges


def _outline(mask: np.ndarray, xe: np.ndarray, ye: np.ndarray) -> list[list[tuple[float, float]]]:
    """Cell-edge segments separating True from False cells of ``mask`` (shape (len(ye)−1, len(xe)−1))."""
    segments = []
    rows, cols = mask.shape
    for i in range(rows):
        for j in range(cols - 1):
            if mask[i, j] != mask[i, j + 1]:
                segments.append([(xe[j + 1], ye[i]), (xe[j + 1], ye[i + 1])])
    for i in range(rows - 1):
        for j in range(cols):
            if mask[i, j] != mask[i + 1, j]:
                segments.append([(xe[j], ye[i + 1]), (xe[j + 1], ye[i + 1])])
    return segments


BENIGN_FACE = "white"
BENIGN_HATCH = "///"


def benign_png(settings: Settings, maps: dict[tuple[str, str], Any]) -> bytes:
    """Maps over (p/d, Δ) for ``settings.quantity``: optimal λ* (top) and interpolation cost (bottom), one
    column per noise study; benign cells hatched and outlined in black."""
    from matplotlib.collections import LineCollection, PolyCollection
    from matplotlib.colors import LogNorm, Normalize
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch
    from matplotlib.ticker import FixedLocator, FuncFormatter

    from ..plots.figures import log_cell_edges

    chosen = [(kind, m) for (kind, q), m in maps.items() if q == settings.quantity]
    ncols = len(chosen)
    fig = Figure(figsize=(6.6 * ncols + (3.0 if ncols == 1 else 0), 10.4), layout="constrained")
    axes = fig.subplots(2, ncols, squeeze=False)
    lo, hi = settings.bracket
    ratios = [m.eps_zero / m.eps_star - 1.0 for _, m in chosen]
    finite = np.concatenate([r[np.isfinite(r) & (r > 1e-5)] for r in ratios]) if ratios else np.array([])
    rmax = float(finite.max()) if finite.size else 1.0
    rmin = max(float(finite.min()) if finite.size else 1e-3, rmax * 1e-6, 1e-5)
    ratio_norm = LogNorm(vmin=rmin, vmax=max(rmax, rmin * 10))
    lams = np.concatenate([m.lam_positive[~m.benign & (m.lam_positive > 0)] for _, m in chosen])
    lam_floor = math.floor(math.log10(lams.min())) if lams.size else math.log10(lo)
    lam_norm = Normalize(vmin=max(lam_floor, math.log10(lo)), vmax=math.log10(hi))
    sym_q = QUANTITY_TEX[settings.quantity]
    for col, ((kind, m), ratio) in enumerate(zip(chosen, ratios)):
        xe = log_cell_edges(m.p_over_d)
        y, ye = _delta_coordinates(m.deltas)
        order = np.argsort(y)
        benign = m.benign[order]
        loglam = np.log10(np.where(m.lam_positive > 0, m.lam_positive, np.nan))[order]
        ratio_sorted = np.where(np.isinf(ratio), rmax, ratio)[order]
        panels = (
            (
                np.ma.masked_where(benign | ~np.isfinite(loglam), loglam),
                "viridis",
                lam_norm,
                r"optimal ridge $\log_{10}\lambda^*$",
                f"optimal ridge λ* for {settings.quantity}",
            ),
            (
                np.ma.masked_where(benign | ~np.isfinite(ratio_sorted), np.maximum(ratio_sorted, rmin)),
                "plasma",
                ratio_norm,
                sym_q + r"$(\lambda\to0^+)\,/\,$" + sym_q + r"$(\lambda^*) - 1$",
                f"cost of interpolating (λ → 0⁺ vs λ*), {settings.quantity}",
            ),
        )
        for row, (values, cmap, norm, clabel, title) in enumerate(panels):
            ax = axes[row, col]
            mesh = ax.pcolormesh(xe, ye, values, cmap=cmap, norm=norm, shading="flat")
            fig.colorbar(mesh, ax=ax, label=clabel, extend="max" if row == 1 else "neither")
            cells = [
                [(xe[j], ye[i]), (xe[j + 1], ye[i]), (xe[j + 1], ye[i + 1]), (xe[j], ye[i + 1])]
                for i, j in zip(*np.nonzero(benign))
            ]
            ax.add_collection(
                PolyCollection(cells, facecolors=BENIGN_FACE, edgecolors="0.55", linewidths=0, hatch=BENIGN_HATCH)
            )
            if benign.any():
                ax.add_collection(LineCollection(_outline(benign, xe, ye), colors="black", linewidths=1.8))
            ax.axvline(settings.threshold, color="white" if row == 0 else "0.85", ls="--", lw=1.6)
            factor = settings.params.training_rows
            ax.annotate(
                "p = n" if factor == 1 else f"p = {factor}n",
                (settings.threshold, 0.0),
                xycoords=("data", "axes fraction"),
                xytext=(4, 22),
                textcoords="offset points",
                fontsize=9,
                color="black",
                bbox=dict(boxstyle="round,pad=0.2", fc="white", alpha=0.8),
            )
            ax.axvline(settings.params.p_over_d, color="0.6", ls=":", lw=1.4)
            ax.set_xscale("log")
            ax.set_xlim(xe[0], xe[-1])
            ax.set_ylim(ye[0], ye[-1])
            ys = np.sort(y)
            if (m.deltas == 0).any():
                ax.axhline(ye[1], color="0.3", lw=0.8)
            ticks = [float(ys[0])] + [float(t) for t in range(math.ceil(ys[1] - 1e-9), math.floor(ys[-1] + 1e-9) + 1)]
            ax.yaxis.set_major_locator(FixedLocator(ticks))
            ax.yaxis.set_major_formatter(
                FuncFormatter(lambda v, _, z=ticks[0]: "0" if abs(v - z) < 1e-9 else f"{10.0**v:g}")
            )
            ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
            ax.set_xlabel("features per input dimension  p/d")
            ax.set_ylabel(f"noise variance {KIND_TEX[kind]}")
            other = "Δ_g" if kind == "function" else "Δ_f"
            ax.set_title(f"{KIND_TITLES[kind]} ({other} = {m.background:g})\n{title}", fontsize=10)
    handles = [
        Patch(
            facecolor=BENIGN_FACE,
            edgecolor="0.45",
            hatch=BENIGN_HATCH,
            label=f"benign: λ → 0⁺ at least as good as every λ ∈ [{lo:g}, {hi:g}] (black outline)",
        ),
        Line2D([], [], color="0.5", ls="--", lw=1.6, label="interpolation threshold p = rn"),
        Line2D([], [], color="0.6", ls=":", lw=1.4, label=f"p/d = {settings.params.p_over_d:g} of noise_lambda.png"),
    ]
    fig.legend(handles=handles, loc="outside lower center", ncols=3 if ncols > 1 else 1, fontsize=9)
    note = (
        ""
        if any(k == "gradient" for k, _ in chosen)
        else ("\nτ = 0 (or k = 0): gradient labels are not in the training loss, so Δ_g has no effect (no map)")
    )
    fig.suptitle(
        "Where is interpolating the noise benign?  d → ∞ theory at "
        f"{settings.params.describe(omit=('lam', 'noise', 'p_over_d'))}\n"
        f"λ* minimises {settings.quantity} over λ > 0; the bottom row of each map is Δ = 0{note}"
    )
    return png_bytes(fig, settings.command)


# --------------------------------------------------------------------------------------------- run


def run(args: argparse.Namespace) -> int:
    """Validate, compute everything (simulations first: they fail fast on bad sizes), then write the four
    files and print the table."""
    from ..studies.noise import gradient_noise_enters, lambda_curves, noise_maps

    settings = settings_from_args(args)
    start = time.perf_counter()
    params = settings.params
    kinds = ["function"] + (["gradient"] if gradient_noise_enters(params) else [])
    sims = run_simulations(settings, kinds)
    with Progress(len(kinds) * len(settings.levels) * len(settings.quantities), "theory: optimal λ") as bar:
        curves = lambda_curves(
            params,
            settings.levels,
            settings.curve_lams,
            settings.quantities,
            kinds,
            settings.xatol,
            progress=bar.update,
        )
    ps, deltas = map_axes(settings)
    with Progress(len(ps), "theory: noise maps") as bar:
        maps = noise_maps(params, ps, deltas, settings.lam_grid, settings.quantities, kinds, progress=bar.update)
    if not all(np.isfinite(m.eps_positive).any() for m in maps.values()):
        raise UserError("the asymptotic solver resolved no cell of a noise map; try other p/d, n/d or activations.")
    files: dict[str, str | bytes] = {
        "noise_lambda.png": lambda_png(settings, curves, sims),
        "noise_lambda.csv": lambda_csv(settings, curves, sims),
        "noise_benign.png": benign_png(settings, maps),
        "noise_benign.csv": benign_csv(settings, maps),
    }
    write_outputs(settings.out, files)
    print(summary_table(settings, curves, maps))
    if settings.user_lam is not None:
        print(f"\n(--lam {settings.user_lam:g} is marked on noise_lambda.png; λ itself is swept.)")
    print(f"\nwrote {', '.join(files)} to {settings.out}/ in {time.perf_counter() - start:.1f} s")
    return 0
