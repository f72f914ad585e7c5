"""``sobolev-rf cost``: is Sobolev training worth its cost? Sobolev vs L2 training at an equal budget.

A gradient projection costs c function evaluations. Sobolev training (τ = 1) on n samples with k projections
each (budget n(1 + ck)) is compared with L2 training (τ = 0) on n(1 + ck) samples, at the same p and every
other parameter (:mod:`sobolev_rf.numeric.studies.cost` states the maths). Writes into ``--out``
(default ``sobolev-rf-out/cost``):

1. ``cost_map.png`` / ``.csv``: for every c of ``--c``, log₁₀(ε_Sobolev / ε_L2-training) over (p/d, n/d)
   (n/d: the Sobolev sample ratio) for eps_L2, eps_H1 and eps_grad; contour 0 = break-even; lines
   p = n(1 + ck) (L2 interpolation threshold at equal budget) and p = (k + 1)n (Sobolev threshold).
2. ``cost_breakeven.png`` / ``.csv``: the break-even cost c* (largest c at which Sobolev still wins) with its
   status (crossing, window, never = 0, capped at ``--c-max``) over the same grid.
3. ``cost_curve.png`` / ``.csv``: the cut at the model's n/d: both errors against p/d at equal budget (theory
   lines, finite-size simulation points ± SE) and c* along the cut.
4. A summary table on stdout.

All theory on grids comes from the generated solver (λ > 0); c* at the printed points from brentq on the point
solver. Every file is computed first and then written atomically; the PNG metadata and the first CSV line
hold the command line.
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
from ...derive.params import ModelParams
from ..artifacts import csv_text, fmt, plus_minus, write_outputs
from ..studies.cost import C_MAX, H1_NOTE, QUANTITIES, CostGrid, break_even_cost, cost_grid, l2_samples
from .args import add_model_arguments, describe_options, int_range, nonnegative_numbers, params_from_args
from .progress import Progress

HELP = "is Sobolev training worth its cost? Sobolev vs L2 training at an equal evaluation budget"

DESCRIPTION = """\
A gradient projection costs c function evaluations (c = 1: forward finite difference; c ≈ 2–4: reverse-mode
differentiation). Compares Sobolev training (τ = 1: n samples, k projections each, budget n(1 + ck)) with
L2 training (τ = 0: n(1 + ck) samples, same budget) at the same p and other parameters, and writes
cost_map.png/.csv (log ratio of the errors over (p/d, n/d) for each c), cost_breakeven.png/.csv (the
break-even cost c*: the largest c at which Sobolev still wins) and cost_curve.png/.csv (errors against p/d
at the model's n/d at equal budget: theory lines, simulation points ± SE) into --out, and prints a summary.
τ is fixed by the comparison (--tau is rejected). Needs λ > 0 (the grid solver)."""

#: Map range of p/d and n/d (extended to include the model point).
MAP_RANGE = (0.2, 5.0)
#: Most costs one run compares (one row of the cost map each).
MAX_COSTS = 4
#: Largest k (the generated system grows with k).
MAX_K = 6
#: Relative distance kept between a simulated p/d and an interpolation threshold.
THRESHOLD_GAP = 0.12
LABELS = {"eps_L2": r"$\varepsilon_{L^2}$", "eps_H1": r"$\varepsilon_{H^1}$", "eps_grad": r"$\varepsilon_{\nabla}$"}
NAMES = {
    "eps_L2": "test error ε_L2",
    "eps_H1": "gradient error ε_H1 (k directions)",
    "eps_grad": "full-gradient error ε_grad",
}
MAP_COLUMNS = ("c", "p_over_d", "n_over_d", "n_l2_over_d") + tuple(
    f"{q}_{part}" for q in QUANTITIES for part in ("sobolev", "l2", "log10_ratio", "winner")
)
BREAKEVEN_COLUMNS = ("p_over_d", "n_over_d", "k", "c_max") + tuple(
    f"{q}_{part}" for q in QUANTITIES for part in ("c_star", "status")
)
CURVE_COLUMNS = ("kind", "training", "c", "p_over_d", "n_over_d", "budget_over_d", "d", "seeds") + tuple(
    name for q in QUANTITIES for name in (q, f"{q}_se")
)


@dataclass(frozen=True)
class Settings:
    """Resolved options of one run."""

    base: ModelParams
    costs: tuple[float, ...]
    c_max: float
    out: Path
    grid: int
    points: int
    d: int
    seeds: int
    sim_points: int
    quick: bool
    command: str


def add_parser(subparsers: Any) -> None:
    """Register ``cost`` and its options."""
    parser = subparsers.add_parser(
        "cost", help=HELP, description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_model_arguments(parser)
    # τ is fixed by the comparison (τ = 1 against τ = 0): --tau stays parseable only to be rejected clearly
    parser.set_defaults(tau=None)
    describe_options(
        parser,
        tau="not used: the comparison fixes τ = 1 (Sobolev) against τ = 0 (L2); passing it is an error",
        p_over_d="features per input dimension p/d of the model point starred on the maps and of the first row of "
        "the break-even table",
        n_over_d="the Sobolev sample ratio n/d of the model point and of the 1-D cut along p/d",
    )
    g = parser.add_argument_group("comparison")
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
        "--grid",
        type=int_range(4, 200),
        default=None,
        metavar="G",
        help="map grid G×G over (p/d, n/d) in [0.2, 5]², widened to hold the model point (default: 40, --quick: 8)",
    )
    g.add_argument(
        "--d",
        type=int_range(20, 1000),
        default=None,
        metavar="D",
        help="input dimension of the simulation checks (default: 200, --quick: 100)",
    )
    g.add_argument(
        "--seeds",
        type=int_range(1, 20),
        default=None,
        metavar="S",
        help="simulation seeds per point (default: 3, --quick: 2)",
    )
    g.add_argument(
        "--sim-points",
        type=int_range(0, 20),
        default=None,
        metavar="M",
        help="simulated p/d values along the cut, 0: none (default: 5, --quick: 2)",
    )
    g.add_argument(
        "--out",
        default="sobolev-rf-out/cost",
        metavar="DIR",
        help="output folder, created if missing (default: %(default)s)",
    )
    g.add_argument(
        "--quick",
        action="store_true",
        help="small run (for tests): 8×8 map, 2 simulated points at d = 100 with 2 seeds",
    )
    parser.set_defaults(func=run)


def parse_costs(text: str) -> tuple[float, ...]:
    """``"1"`` or ``"1,3"`` → (1.0, 3.0): finite, >= 0, distinct, at most :data:`MAX_COSTS`."""
    values = nonnegative_numbers("--c", text)
    if len(values) > MAX_COSTS:
        raise UserError(f"--c takes at most {MAX_COSTS} values, got {len(values)}; run the command again for more.")
    if len(set(values)) != len(values):
        raise UserError(f"--c values must be distinct, got {text!r}.")
    return tuple(values)


def settings_from_args(args: argparse.Namespace) -> Settings:
    """Validate every option (nothing heavy runs before this) and fill in the defaults."""
    if args.tau is not None:
        raise UserError("--tau is fixed by the cost comparison (Sobolev τ = 1 against L2 τ = 0); drop --tau.")
    ns = argparse.Namespace(**vars(args))
    ns.tau = "1"
    base = params_from_args(ns)
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
    try:
        c_max = float(args.c_max)
    except ValueError:
        raise UserError(f"--c-max must be a number > 0, got {args.c_max!r}.") from None
    if not math.isfinite(c_max) or not 0 < c_max <= 1e4:
        raise UserError(f"--c-max must be a number in (0, 10000], got {args.c_max!r}.")
    if max(costs) > c_max:
        raise UserError(f"--c values must be <= --c-max = {c_max:g}, got {max(costs):g}.")
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {str(out)!r} exists and is not a folder; pass a folder name.")
    quick = bool(args.quick)
    command = getattr(args, "command_line", None) or "sobolev-rf cost"
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
        command=command,
    )


def _axis_range(value: float) -> tuple[float, float]:
    """:data:`MAP_RANGE` widened to hold ``value`` with a margin."""
    return min(MAP_RANGE[0], value / 1.5), max(MAP_RANGE[1], value * 1.5)


def _notes(settings: Settings) -> list[str]:
    k = settings.base.k
    return [
        f"Sobolev: tau=1, n samples, k={k} projections each, budget n(1+ck); L2: tau=0, n(1+ck) samples; "
        "log10_ratio = log10(eps_sobolev/eps_l2) < 0: Sobolev wins",
        f"c_star: largest c in [0, {settings.c_max:g}] at which Sobolev wins; status crossing | window "
        f"(Sobolev also loses at some smaller c) | never (c_star = 0) | capped (wins up to c_max)",
        H1_NOTE,
    ]


def _csv(settings: Settings, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """CSV headed by ``# command:`` and ``# note:`` lines."""
    text = csv_text(settings.command, columns, rows)
    first, rest = text.split("\n", 1)
    return "\n".join([first] + [f"# note: {n}" for n in _notes(settings)]) + "\n" + rest


# ---------------------------------------------------------------------------------------------------------------
# Computation


def _sim_targets(settings: Settings, lo: float, hi: float) -> list[float]:
    """Simulated p/d values along the cut, kept THRESHOLD_GAP (relative) away from every threshold."""
    if settings.sim_points == 0:
        return []
    base = settings.base
    n = base.n_over_d
    thresholds = [(base.k + 1) * n] + [n * (1 + c * base.k) for c in settings.costs]
    xs = np.geomspace(lo * 1.25, hi / 1.1, settings.sim_points) if settings.sim_points > 1 else np.array([lo * 3])
    out = []
    for x in xs:
        for _ in range(4):
            near = [t for t in thresholds if abs(math.log(x / t)) < THRESHOLD_GAP]
            if not near:
                break
            t = near[0]
            x = t * math.exp(-1.5 * THRESHOLD_GAP) if x < t else t * math.exp(1.5 * THRESHOLD_GAP)
        out.append(float(x))
    return out


@dataclass
class SimRow:
    """One simulated point: training ("sobolev" or "l2"), cost (None for Sobolev), ratios, means and SEs."""

    training: str
    c: float | None
    p_over_d: float
    n_over_d: float
    mean: dict[str, float]
    se: dict[str, float]


def simulate_cut(settings: Settings, targets: Sequence[float]) -> list[SimRow]:
    """Both trainings at each target p/d (Sobolev once, L2 once per c) at dimension d."""
    from ..simulation.exact import simulate

    base = settings.base
    jobs: list[tuple[str, float | None, ModelParams]] = []
    for x in targets:
        jobs.append(("sobolev", None, base.with_(tau=1, p_over_d=x)))
        for c in settings.costs:
            jobs.append(("l2", c, base.with_(tau=0, p_over_d=x, n_over_d=float(l2_samples(base.n_over_d, base.k, c)))))
    rows = []
    with Progress(len(jobs), f"simulation d={settings.d}") as bar:
        for training, job_cost, params in jobs:
            res = simulate(params, settings.d, seeds=settings.seeds)
            rows.append(
                SimRow(
                    training,
                    job_cost,
                    res.p / settings.d,
                    res.n / settings.d,
                    {q: float(res.mean[q]) for q in QUANTITIES},
                    {q: float(res.se[q]) for q in QUANTITIES},
                )
            )
            bar.update()
    return rows


# ---------------------------------------------------------------------------------------------------------------
# Figures


def _log_axes(ax: Any, x: bool = True, y: bool = True) -> None:
    from matplotlib.ticker import FixedLocator, FormatStrFormatter, NullFormatter

    ticks = [0.1, 0.2, 0.5, 1, 2, 5, 10, 20]
    for flag, axis, scale in ((x, ax.xaxis, ax.set_xscale), (y, ax.yaxis, ax.set_yscale)):
        if flag:
            scale("log")
            axis.set_major_locator(FixedLocator(ticks))
            axis.set_major_formatter(FormatStrFormatter("%g"))
            axis.set_minor_formatter(NullFormatter())


def _threshold_lines(ax: Any, k: int, c: float | None, ylim: tuple[float, float], light: bool = False) -> list:
    """Lines p = (k+1)n and (for a cost c) p = n(1 + ck) on a (p/d, n/d) map."""
    ns = np.array(ylim)
    handles = [ax.plot((k + 1) * ns, ns, color="0.1", ls=":", lw=1.8, label=f"p = {k + 1}n (Sobolev threshold)")[0]]
    if c is not None:
        handles.append(
            ax.plot(
                (1 + c * k) * ns,
                ns,
                color="0.1",
                ls="--",
                lw=1.2,
                label="p = n(1 + ck): L2 threshold at equal budget (each row's c)",
            )[0]
        )
    return handles


def cost_map_png(settings: Settings, grid: CostGrid, ps: np.ndarray, ns: np.ndarray) -> bytes:
    """One row per c, one column per quantity: log₁₀(ε_S/ε_L2 at equal budget), diverging colours (blue: Sobolev
    better), contour 0 = break-even, both thresholds, the model point."""
    from matplotlib.colors import TwoSlopeNorm
    from matplotlib.figure import Figure

    from ..artifacts import png_bytes
    from ..plots.figures import log_cell_edges

    base = settings.base
    rows = len(settings.costs)
    fig = Figure(figsize=(17, 4.6 * rows + 1.0), layout="constrained")
    axes = np.atleast_2d(fig.subplots(rows, 3, squeeze=False))
    xe, ye = log_cell_edges(ps), log_cell_edges(ns)
    legend: list = []
    for r, c in enumerate(settings.costs):
        for j, q in enumerate(QUANTITIES):
            ax = axes[r, j]
            values = grid.log_ratio[c][q]
            finite = np.abs(values[np.isfinite(values)])
            span = float(min(max(finite.max() if finite.size else 1.0, 0.05), 1.0))
            mesh = ax.pcolormesh(
                xe, ye, np.ma.masked_invalid(values), cmap="RdBu_r", norm=TwoSlopeNorm(0.0, -span, span), shading="flat"
            )
            fig.colorbar(
                mesh,
                ax=ax,
                extend="both",
                label=r"$\log_{10}$(" + LABELS[q] + r"$_{\rm Sobolev}$ / " + LABELS[q] + r"$_{\rm L2}$)",
            )
            from matplotlib.lines import Line2D

            handles = [Line2D([], [], color="k", lw=1.6, label="break-even: ratio 1 (contour 0)")]
            if np.nanmin(values) < 0 < np.nanmax(values):
                ax.contour(ps, ns, values, levels=[0.0], colors="k", linewidths=1.6)
            handles += _threshold_lines(ax, base.k, c, (ye[0], ye[-1]))
            handles.append(
                ax.plot(
                    [base.p_over_d],
                    [base.n_over_d],
                    marker="*",
                    ms=13,
                    color="gold",
                    mec="k",
                    ls="none",
                    label=f"model point ({base.p_over_d:g}, {base.n_over_d:g})",
                )[0]
            )
            ax.set_xlim(xe[0], xe[-1])
            ax.set_ylim(ye[0], ye[-1])
            _log_axes(ax)
            ax.set_xlabel("features per input dimension  p/d")
            ax.set_ylabel("Sobolev samples per input dimension  n/d")
            share = grid.win_share(c, q)
            ax.set_title(f"{NAMES[q]}, c = {c:g}: Sobolev wins on {100 * share:.0f} % (blue)", fontsize=10)
            if r == 0 and j == 0:
                legend = handles
    fig.legend(
        handles=[h for h in legend if "break-even" not in h.get_label()]
        + [h for h in legend if "break-even" in h.get_label()]
        if legend
        else [],
        loc="outside lower center",
        ncol=4,
        fontsize=9,
    )
    fig.suptitle(
        f"Sobolev (τ = 1, n samples, k = {base.k} projections) vs L2 training (τ = 0, n(1 + ck) samples) "
        f"at equal budget n(1 + ck), d → ∞ theory\n{base.describe(omit=('tau', 'ratios'))};  blue: Sobolev better.  "
        f"Note: {H1_NOTE}.",
        fontsize=11,
    )
    return png_bytes(fig, settings.command)


def breakeven_png(settings: Settings, grid: CostGrid, ps: np.ndarray, ns: np.ndarray) -> bytes:
    """One panel per quantity: c* on a log colour scale, 'never' (c* = 0) grey, 'capped' dark, 'window' dotted,
    contours c* = each requested c, the Sobolev threshold and the model point."""
    from matplotlib.colors import ListedColormap, LogNorm
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    from ..artifacts import png_bytes
    from ..plots.figures import log_cell_edges

    base = settings.base
    fig = Figure(figsize=(18, 5.6), layout="constrained")
    axes = fig.subplots(1, 3)
    xe, ye = log_cell_edges(ps), log_cell_edges(ns)
    legend: dict[str, Any] = {}
    for ax, q in zip(axes, QUANTITIES):
        cs, st = grid.c_star[q], grid.status[q]
        inner = np.isin(st, ("crossing", "window")) & np.isfinite(cs) & (cs > 0)
        vals = np.where(inner, cs, np.nan)
        vmin = float(np.nanmin(vals)) if inner.any() else 1e-2
        vmin = 10 ** math.floor(math.log10(max(min(vmin, settings.c_max / 10), 1e-4)))
        mesh = ax.pcolormesh(
            xe,
            ye,
            np.ma.masked_invalid(vals),
            cmap="viridis",
            norm=LogNorm(vmin=vmin, vmax=settings.c_max),
            shading="flat",
        )
        fig.colorbar(mesh, ax=ax, label="break-even cost c* (evaluations per projection)")
        for mask, color in ((st == "never", "0.72"), (st == "capped", "#5b0a3c")):
            if mask.any():
                ax.pcolormesh(
                    xe, ye, np.ma.masked_where(~mask, np.ones_like(cs)), cmap=ListedColormap([color]), shading="flat"
                )
        handles: list[Any] = [
            Patch(color="0.72", label="c* = 0: L2 wins at every c (even c = 0)"),
            Patch(color="#5b0a3c", label=f"c* ≥ {settings.c_max:g}: Sobolev wins up to c_max (capped)"),
        ]
        window = st == "window"
        if window.any():
            ax.contourf(ps, ns, window.astype(float), levels=[0.5, 1.5], colors="none", hatches=[".."])
            handles.append(
                Patch(
                    facecolor="none",
                    edgecolor="0.2",
                    hatch="..",
                    label="window (dots): Sobolev also loses at some c < c*",
                )
            )
        for c, style in zip(settings.costs, ("-", "--", "-.", ":")):
            ok = np.isfinite(cs)
            if c > 0 and ok.any() and np.nanmin(cs) < c < np.nanmax(cs):
                ax.contour(ps, ns, np.where(ok, cs, 0.0), levels=[c], colors="white", linewidths=1.5, linestyles=style)
                from matplotlib.lines import Line2D

                handles.append(Line2D([], [], color="white", ls=style, lw=1.5, label=f"contour c* = {c:g} (white)"))
        handles += _threshold_lines(ax, base.k, None, (ye[0], ye[-1]))
        handles.append(
            ax.plot(
                [base.p_over_d],
                [base.n_over_d],
                marker="*",
                ms=13,
                color="gold",
                mec="k",
                ls="none",
                label="model point",
            )[0]
        )
        ax.set_xlim(xe[0], xe[-1])
        ax.set_ylim(ye[0], ye[-1])
        _log_axes(ax)
        ax.set_facecolor("0.45")
        ax.set_xlabel("features per input dimension  p/d")
        ax.set_ylabel("Sobolev samples per input dimension  n/d")
        ax.set_title(f"break-even cost for {NAMES[q]}", fontsize=10)
        legend = {h.get_label(): h for h in [*legend.values(), *handles]}
    fig.legend(handles=list(legend.values()), loc="outside lower center", ncol=4, fontsize=9, facecolor="0.93")
    fig.suptitle(
        f"Break-even cost c*: the largest cost of one gradient projection at which Sobolev training "
        f"(budget n(1 + c·{base.k})) still beats L2 training with the same budget\n"
        f"{base.describe(omit=('tau', 'ratios'))}; "
        f"d → ∞ theory.  Note: {H1_NOTE}.",
        fontsize=11,
    )
    return png_bytes(fig, settings.command)


def _minor_label(value: float, _: Any) -> str:
    """Label the minor log ticks 2, 3 and 5 (× 10ⁿ) as plain numbers, the others not at all."""
    if value <= 0:
        return ""
    mantissa = value / 10 ** math.floor(math.log10(value) + 1e-9)
    return f"{value:g}" if any(abs(mantissa - m) < 1e-6 for m in (2, 3, 5)) else ""


def curve_png(settings: Settings, cut: CostGrid, xs: np.ndarray, sims: Sequence[SimRow]) -> bytes:
    """2×2: eps_L2, eps_H1, eps_grad against p/d for Sobolev and for L2 at equal budget (each c), theory lines
    and simulation points ± SE; c* along the cut."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import FuncFormatter

    from ..artifacts import png_bytes

    base = settings.base
    n = base.n_over_d
    fig = Figure(figsize=(13, 9.5), layout="constrained")
    axes = fig.subplots(2, 2).ravel()
    l2_colors = ["C0", "C2", "C1", "C4"]
    have_se = settings.seeds > 1
    for ax, q in zip(axes[:3], QUANTITIES):
        ax.plot(xs, cut.sobolev[q], color="C3", lw=2, label=f"Sobolev τ=1, n/d = {n:g}, k = {base.k} (theory)")
        s_rows = [s for s in sims if s.training == "sobolev"]
        if s_rows:
            ax.errorbar(
                [s.p_over_d for s in s_rows],
                [s.mean[q] for s in s_rows],
                yerr=[s.se[q] for s in s_rows] if have_se else None,
                fmt="o",
                ms=5,
                capsize=3,
                color="C3",
                mfc="white",
                mew=1.4,
                label=f"Sobolev (simulation d = {settings.d})",
            )
        for color, c in zip(l2_colors, settings.costs):
            nn = float(l2_samples(n, base.k, c))
            ax.plot(xs, cut.l2[c][q], color=color, lw=1.6, ls="--", label=f"L2 τ=0, n/d = {nn:g} (c = {c:g}, theory)")
            rows = [s for s in sims if s.training == "l2" and s.c == c]
            if rows:
                ax.errorbar(
                    [s.p_over_d for s in rows],
                    [s.mean[q] for s in rows],
                    yerr=[s.se[q] for s in rows] if have_se else None,
                    fmt="s",
                    ms=5,
                    capsize=3,
                    color=color,
                    mfc="white",
                    mew=1.4,
                    label=f"L2 c = {c:g} (simulation)",
                )
            ax.axvline(nn, color=color, ls=":", lw=1)
        ax.axvline((base.k + 1) * n, color="C3", ls=":", lw=1)
        ax.set_yscale("log")
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.yaxis.set_minor_formatter(FuncFormatter(_minor_label))
        _log_axes(ax, y=False)
        ax.set_xlabel("features per input dimension  p/d")
        ax.set_ylabel(LABELS[q])
        ax.set_title(NAMES[q] + (" (L2: expectation over V)" if q == "eps_H1" else ""), fontsize=10)
        ax.grid(True, which="both", alpha=0.25)
    axes[0].legend(fontsize=7.5, loc="best")
    ax = axes[3]
    for color, q in zip(("C4", "C1", "C9"), QUANTITIES):
        cs = np.where(np.isin(cut.status[q], ("crossing", "window", "capped")), cut.c_star[q], np.nan)
        ax.plot(xs, cs, color=color, lw=1.8, label=f"c* for {NAMES[q]}")
        never = cut.status[q] == "never"
        if never.any():
            ax.plot(
                xs[never],
                np.full(never.sum(), 0.0),
                "|",
                color=color,
                ms=10,
                mew=2,
                label=f"c* = 0 ({q}): L2 wins at every c",
                clip_on=False,
            )
    for c in settings.costs:
        if c > 0:
            ax.axhline(c, color="0.35", ls="-.", lw=1)
            ax.annotate(f"c = {c:g}", (xs[0], c), xytext=(2, 2), textcoords="offset points", fontsize=8)
    ax.axhline(settings.c_max, color="k", ls=":", lw=1)
    ax.annotate(
        f"c_max = {settings.c_max:g} (capped)",
        (xs[0], settings.c_max),
        xytext=(2, -10),
        textcoords="offset points",
        fontsize=8,
    )
    ax.set_yscale("symlog", linthresh=0.01)
    ax.set_ylim(0, settings.c_max * 2)
    _log_axes(ax, y=False)
    ax.set_xlabel("features per input dimension  p/d")
    ax.set_ylabel("break-even cost c*")
    ax.set_title(
        "largest c at which Sobolev still wins (above a c line: wins at that c, unless in a window)", fontsize=9
    )
    ax.grid(True, which="both", alpha=0.25)
    ax.legend(fontsize=7.5, loc="best")
    seeds = f"{settings.seeds} seed{'s' if settings.seeds > 1 else ''}" + (" (± SE)" if have_se else "")
    fig.suptitle(
        f"Equal budget n(1 + ck) at Sobolev n/d = {n:g}: lines d → ∞ theory, points d = {settings.d}, "
        f"{seeds}; dotted verticals: interpolation thresholds\n"
        f"{base.describe(omit=('tau', 'ratios'))}.  Note: {H1_NOTE}.",
        fontsize=10,
    )
    return png_bytes(fig, settings.command)


# ---------------------------------------------------------------------------------------------------------------
# Tables and CSV


def _winner(ratio: float) -> str:
    return "" if not math.isfinite(ratio) else ("sobolev" if ratio < 0 else "l2")


def map_csv(settings: Settings, grid: CostGrid) -> str:
    rows = []
    for c in settings.costs:
        for index in np.ndindex(*grid.p_over_d.shape):
            p, n = float(grid.p_over_d[index]), float(grid.n_over_d[index])
            row: list[Any] = [fmt(c), fmt(p), fmt(n), fmt(float(l2_samples(n, settings.base.k, c)))]
            for q in QUANTITIES:
                r = float(grid.log_ratio[c][q][index])
                row += [fmt(float(grid.sobolev[q][index])), fmt(float(grid.l2[c][q][index])), fmt(r), _winner(r)]
            rows.append(row)
    return _csv(settings, MAP_COLUMNS, rows)


def breakeven_csv(settings: Settings, grid: CostGrid) -> str:
    rows = []
    for index in np.ndindex(*grid.p_over_d.shape):
        row: list[Any] = [
            fmt(float(grid.p_over_d[index])),
            fmt(float(grid.n_over_d[index])),
            settings.base.k,
            fmt(settings.c_max),
        ]
        for q in QUANTITIES:
            row += [fmt(float(grid.c_star[q][index])), str(grid.status[q][index])]
        rows.append(row)
    return _csv(settings, BREAKEVEN_COLUMNS, rows)


def curve_csv(settings: Settings, cut: CostGrid, xs: np.ndarray, sims: Sequence[SimRow]) -> str:
    base = settings.base
    n = base.n_over_d
    rows: list[list[Any]] = []
    for i, x in enumerate(xs):
        rows.append(
            ["theory", "sobolev", "", fmt(x), fmt(n), "", "", ""]
            + [v for q in QUANTITIES for v in (fmt(float(cut.sobolev[q][i])), "")]
        )
        for c in settings.costs:
            nn = float(l2_samples(n, base.k, c))
            rows.append(
                ["theory", "l2", fmt(c), fmt(x), fmt(nn), fmt(nn), "", ""]
                + [v for q in QUANTITIES for v in (fmt(float(cut.l2[c][q][i])), "")]
            )
    for s in sims:
        rows.append(
            [
                "simulation",
                s.training,
                "" if s.c is None else fmt(s.c),
                fmt(s.p_over_d),
                fmt(s.n_over_d),
                fmt(s.n_over_d) if s.training == "l2" else "",
                settings.d,
                settings.seeds,
            ]
            + [fmt(v) for q in QUANTITIES for v in (s.mean[q], s.se[q])]
        )
    return _csv(settings, CURVE_COLUMNS, rows)


def summary(
    settings: Settings, grid: CostGrid, breakevens: Sequence[tuple[float, dict[str, Any]]], sims: Sequence[SimRow]
) -> str:
    """The table printed on stdout."""
    from ..theory.solve import solve

    base = settings.base
    lines = [
        f"Sobolev (τ = 1, n samples, k = {base.k}) vs L2 (τ = 0, n(1 + ck) samples) at equal budget; "
        f"{base.describe(omit=('tau', 'ratios'))}",
        "",
        f"Share of the map p/d ∈ [{grid.p_over_d.min():.3g}, {grid.p_over_d.max():.3g}], n/d ∈ "
        f"[{grid.n_over_d.min():.3g}, {grid.n_over_d.max():.3g}] where Sobolev wins (d → ∞ theory):",
    ]
    lines.append(f"{'c':>8}" + "".join(f"{q:>12}" for q in QUANTITIES))
    for c in settings.costs:
        lines.append(f"{c:>8g}" + "".join(f"{100 * grid.win_share(c, q):>11.0f}%" for q in QUANTITIES))
    lines += [
        "",
        f"Break-even cost c* (brentq on the point solver; capped at c_max = {settings.c_max:g}; "
        "'window': Sobolev also loses at some smaller c):",
        f"{'p/d':>8}{'n/d':>7}" + "".join(f"{q:>18}" for q in QUANTITIES),
    ]
    for p, values in breakevens:
        lines.append(f"{p:>8.3g}{base.n_over_d:>7.3g}" + "".join(f"{values[q]:>18}" for q in QUANTITIES))
    if sims:
        se_note = f"{settings.seeds} seeds, mean ± SE" if settings.seeds > 1 else "1 seed"
        lines += [
            "",
            f"Theory (d → ∞) vs simulation (d = {settings.d}, {se_note}) at equal budget, "
            f"Sobolev n/d = {base.n_over_d:g}:",
            f"{'p/d':>7}  {'training':<16}{'eps_L2 theory':>14}{'simulation':>20}"
            f"{'eps_H1 theory':>15}{'simulation':>20}",
        ]
        for s in sims:
            params = base.with_(tau=1 if s.training == "sobolev" else 0, p_over_d=s.p_over_d, n_over_d=s.n_over_d)
            try:
                th = solve(params)
                t_l2, t_h1 = f"{th.eps_L2:.4f}", f"{th.eps_H1:.4f}"
            except UserError:
                t_l2 = t_h1 = "n/a"
            name = "Sobolev" if s.training == "sobolev" else f"L2 c={s.c:g} n/d={s.n_over_d:.3g}"
            lines.append(
                f"{s.p_over_d:>7.3g}  {name:<16}{t_l2:>14}{plus_minus(s.mean['eps_L2'], s.se['eps_L2']):>20}"
                f"{t_h1:>15}{plus_minus(s.mean['eps_H1'], s.se['eps_H1']):>20}"
            )
        lines.append(
            f"(L2 eps_H1: {H1_NOTE}. Its law over V is right-skewed: with few seeds the simulated mean "
            "usually falls below the expectation and the SE understates the spread.)"
        )
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------------------------


def run(args: argparse.Namespace) -> int:
    """Validate, compute everything, then write the six files and print the summary."""
    settings = settings_from_args(args)
    start = time.perf_counter()
    base = settings.base
    plo, phi = _axis_range(base.p_over_d)
    nlo, nhi = _axis_range(base.n_over_d)
    ps = np.geomspace(plo, phi, settings.grid)
    ns = np.geomspace(nlo, nhi, settings.grid)
    P, N = np.meshgrid(ps, ns)
    n = base.n_over_d
    thresholds = [(base.k + 1) * n] + [n * (1 + c * base.k) for c in settings.costs]
    xs = np.union1d(np.geomspace(plo, phi, settings.points), [t for t in thresholds if plo < t < phi])
    with Progress(8 + 2 * len(settings.costs), "theory: cost maps") as bar:
        grid = cost_grid(base, P, N, settings.costs, settings.c_max, step=lambda label: bar.update())
        cut = cost_grid(base, xs, n, settings.costs, settings.c_max, step=lambda label: bar.update())
    if not grid.resolved.any():
        raise UserError("the solver resolved no point of the map; raise --lam.")
    targets = _sim_targets(settings, plo, phi)
    table_points = [base.p_over_d] + [t for t in targets if not math.isclose(t, base.p_over_d)]
    breakevens = []
    with Progress(len(table_points) * len(QUANTITIES), "break-even c* (point solver)") as bar:
        for p in table_points:
            values = {}
            for q in QUANTITIES:
                try:
                    values[q] = break_even_cost(base.with_(p_over_d=p), q, settings.c_max).text()
                except UserError:
                    values[q] = "n/a"
                bar.update()
            breakevens.append((p, values))
    sims = simulate_cut(settings, targets) if targets else []
    files: dict[str, str | bytes] = {
        "cost_map.png": cost_map_png(settings, grid, ps, ns),
        "cost_map.csv": map_csv(settings, grid),
        "cost_breakeven.png": breakeven_png(settings, grid, ps, ns),
        "cost_breakeven.csv": breakeven_csv(settings, grid),
        "cost_curve.png": curve_png(settings, cut, xs, sims),
        "cost_curve.csv": curve_csv(settings, cut, xs, sims),
    }
    write_outputs(settings.out, files)
    print(summary(settings, grid, breakevens, sims))
    print(f"\nwrote {', '.join(files)} to {settings.out}/ in {time.perf_counter() - start:.1f} s")
    return 0
