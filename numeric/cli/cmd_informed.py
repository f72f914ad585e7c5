"""``sobolev-rf informed``: data-informed gradient subspaces, a study OUTSIDE the d → ∞ theory.

MODEL.md draws the projection directions v_l ~ N(0, I_d) independently of the teacher, so the alignment
ϖ = Vᵀθ₀ stays O(1) and the theory is stated at fixed ϖ. Active-subspace and derivative-informed methods
instead take V from data: the dominant eigenvectors of the gradient covariance estimated from m pilot samples
(:func:`sobolev_rf.numeric.simulation.exact.draw_directions` with ``subspace="informed"``). Then v₁ ≈ √d·θ₀ and
ϖ₁ ≈ √d grows with d — a different regime, for which only the simulator speaks.

At one model point and for each d in ``--d`` this command simulates, over the same seeds,

- ``random``:   Sobolev training (τ = 1) with random V (the model), ϖ ~ N(0, I_k) drawn per seed;
- ``informed``: Sobolev training (τ = 1) with informed V from m = round(pilot_ratio·d) pilot gradients with the
  point's gradient noise Δ_g (ϖ realised, reported as ϖ₁/√d);
- ``L2``:       plain L2 training (τ = 0) for reference (its eps_H1 uses the random V of ``random``),

and draws the d → ∞ theory of the random model averaged over ϖ ~ N(0, I_k) (the mean of the exact quadratic
law, :func:`sobolev_rf.numeric.studies.alignment.alignment_laws`) as lines; the CSV also has the theory at the realised
ϖ of the seeds. It writes ``informed.png`` and ``informed.csv`` (command line in the PNG metadata and on the
CSV's first line) into ``--out`` and prints a table.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ...derive.errors import UserError
from ...derive.params import ModelParams
from ..artifacts import csv_text, fmt, png_bytes, write_outputs
from .args import add_model_arguments, params_from_args
from .progress import Progress

HELP = "data-informed gradient subspaces (outside the theory): random vs informed V vs L2 training over d"

DESCRIPTION = """\
Simulates Sobolev training (τ = 1) with random projection directions V (the model; ϖ ~ N(0, I_k) per
seed), with data-informed V (v_l = √d·u_l, u_l the top eigenvectors of the gradient covariance estimated
from m = pilot_ratio·d noisy teacher gradients, noise variance --noise-g) and plain L2 training (τ = 0),
for each d in --d. Informed V is OUTSIDE the d → ∞ theory: ϖ₁ = v₁ᵀθ₀ ≈ √d grows with d. Writes
informed.png and informed.csv (with the d → ∞ theory of the random model, averaged over ϖ) into --out
and prints a table. --alignment is refused (ϖ is drawn or realised) and τ is set by the study.
"""

#: The compared arms: (name, τ, subspace).
ARMS: tuple[tuple[str, int, str], ...] = (("random", 1, "random"), ("informed", 1, "informed"), ("L2", 0, "random"))
LABELS = {"random": "Sobolev, random V (the model)", "informed": "Sobolev, informed V", "L2": "L2 training (τ = 0)"}
ERRORS = ("eps_L2", "eps_H1", "eps_grad")
COLUMNS = (
    ("arm", "tau", "subspace", "outside_theory", "d", "p", "n", "pilot", "seeds")
    + tuple(name for key in ERRORS for name in (key, f"{key}_se"))
    + ("varpi1_over_sqrt_d", "varpi1_over_sqrt_d_se", "varpi_sq_mean")
    + tuple(f"theory_{key}_mean" for key in ERRORS)
    + tuple(f"theory_{key}_realised" for key in ERRORS)
)
OUTSIDE = "informed: outside the theory (ϖ₁ ~ √d)"
#: Stream tag of the per-seed alignment draws of the random arms.
_ALIGNMENT_STREAM = 0x1F0


def _integer_list(name: str, text: str, minimum: int) -> tuple[int, ...]:
    """Parse ``"100,200,400"`` into distinct integers >= ``minimum``, sorted."""
    values = []
    for item in text.split(","):
        try:
            x = float(item.strip())
        except ValueError:
            raise UserError(f"{name} must be comma-separated integers >= {minimum}, got {text!r}.") from None
        if not math.isfinite(x) or not x.is_integer() or x < minimum:
            raise UserError(f"{name} must be comma-separated integers >= {minimum}, got {text!r}.")
        values.append(int(x))
    if len(set(values)) != len(values):
        raise UserError(f"{name} must not repeat a value, got {text!r}.")
    return tuple(sorted(values))


def _integer(name: str, text: str, minimum: int, maximum: int) -> int:
    try:
        x = float(text)
    except ValueError:
        raise UserError(f"{name} must be an integer in [{minimum}, {maximum}], got {text!r}.") from None
    if not math.isfinite(x) or not x.is_integer() or not minimum <= x <= maximum:
        raise UserError(f"{name} must be an integer in [{minimum}, {maximum}], got {text!r}.")
    return int(x)


def _ratio(name: str, text: str) -> float:
    try:
        x = float(text)
    except ValueError:
        raise UserError(f"{name} must be a number in (0, 100], got {text!r}.") from None
    if not math.isfinite(x) or x <= 0 or x > 100:
        raise UserError(f"{name} must be a number in (0, 100], got {text!r}.")
    return x


def add_parser(subparsers: Any) -> None:
    """Register ``informed`` with the model arguments and the study options."""
    parser = subparsers.add_parser(
        "informed", help=HELP, description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_model_arguments(parser)
    g = parser.add_argument_group("study")
    g.add_argument(
        "--d",
        default=None,
        metavar="D1,D2,...",
        help="input dimensions, each >= 10 (default: 100,200,400; --quick: 40,60)",
    )
    g.add_argument("--seeds", default=None, metavar="S", help="seeds per d and arm (default: 8, --quick: 2)")
    g.add_argument(
        "--pilot-ratio",
        default="1",
        metavar="R",
        help="pilot gradients per input dimension m/d of the informed subspace (default: %(default)s)",
    )
    g.add_argument(
        "--n-test", default=None, metavar="N", help="test points per seed (default: max(2000, 2p), --quick: 400)"
    )
    g.add_argument(
        "--out",
        default="sobolev-rf-out/informed",
        metavar="DIR",
        help="output folder, created if missing (default: %(default)s)",
    )
    g.add_argument("--quick", action="store_true", help="tiny run for tests: d = 40,60, 2 seeds, 400 test points")
    # p/d = 4: the shared default p/d = 2 is the interpolation threshold p = 2n of τ = 1, k = 1
    parser.set_defaults(func=run, p_over_d="4")


@dataclass(frozen=True)
class Settings:
    params: ModelParams
    ds: tuple[int, ...]
    seeds: int
    pilot_ratio: float
    n_test: int | None


def settings_from_args(args: argparse.Namespace) -> Settings:
    """Validate everything before any work (bad input writes nothing)."""
    if args.alignment is not None:
        raise UserError(
            "--alignment does not apply to the informed study: the random arms draw ϖ ~ N(0, I_k) per "
            "seed and the informed arm realises ϖ = Vᵀθ₀ from data."
        )
    params = params_from_args(args)
    if params.tau != 1:
        raise UserError(
            f"--tau is set by the informed study (τ = 1 for random and informed V, τ = 0 for the L2 "
            f"reference), got --tau {args.tau}."
        )
    if params.k < 1:
        raise UserError("the informed study needs k >= 1 gradient directions, got --k 0.")
    quick = bool(args.quick)
    ds = _integer_list("--d", args.d, 10) if args.d is not None else ((40, 60) if quick else (100, 200, 400))
    if params.k >= min(ds):
        raise UserError(f"k = {params.k} gradient directions need d > k, got d = {min(ds)}.")
    seeds = _integer("--seeds", args.seeds, 2, 10_000) if args.seeds is not None else (2 if quick else 8)
    n_test = _integer("--n-test", args.n_test, 1, 10**7) if args.n_test is not None else (400 if quick else None)
    return Settings(
        params=params.with_(alignment=None),
        ds=ds,
        seeds=seeds,
        pilot_ratio=_ratio("--pilot-ratio", args.pilot_ratio),
        n_test=n_test,
    )


def _alignment(d: int, seed: int, k: int) -> tuple[float, ...]:
    """The seed's ϖ ~ N(0, I_k) of the random arms (shared by ``random`` and ``L2``)."""
    rng = np.random.default_rng([_ALIGNMENT_STREAM, d, seed])
    return tuple(float(a) for a in rng.standard_normal(k))


@dataclass(frozen=True)
class ArmResult:
    """One arm at one d: per-seed errors and realised alignments (seeds × k)."""

    arm: str
    tau: int
    subspace: str
    d: int
    p: int
    n: int
    pilot: int | None
    errors: dict[str, np.ndarray]
    alignment: np.ndarray

    def mean(self, key: str) -> float:
        return float(np.mean(self.errors[key]))

    def se(self, key: str) -> float:
        values = self.errors[key]
        return float(np.std(values, ddof=1) / math.sqrt(len(values)))

    @property
    def ratio(self) -> np.ndarray:
        """ϖ₁/√d per seed."""
        return self.alignment[:, 0] / math.sqrt(self.d)


def _check_sizes(settings: Settings) -> None:
    """Refuse runs beyond the simulator's memory/work limits before any work (via a dry validation)."""
    from ..simulation.exact import MEMORY_LIMIT_BYTES, memory_estimate, sizes

    params = settings.params
    d = max(settings.ds)
    p, n = sizes(params, d)
    pilot = max(1, round(settings.pilot_ratio * d))
    need = memory_estimate(d, p, n, params.k, 1, params.lam, min(1000, settings.n_test or 2000), pilot)
    if need > MEMORY_LIMIT_BYTES:
        raise UserError(
            f"d = {d}, p = {p}, n = {n} needs about {need / 2**30:.1f} GiB (limit "
            f"{MEMORY_LIMIT_BYTES / 2**30:.0f} GiB); reduce --d or the ratios p/d, n/d."
        )
    total = sum(
        3
        * settings.seeds
        * ((settings.n_test or max(2000, 2 * sizes(params, x)[0])) + sizes(params, x)[1] * (1 + params.k))
        * sizes(params, x)[0]
        * x
        for x in settings.ds
    )
    if total > 5e13:
        raise UserError(
            f"the study needs about {total:.1e} floating-point operations (limit 5e13, hours on a "
            "laptop); reduce --d, --seeds or --n-test."
        )


def simulate_arms(settings: Settings) -> list[ArmResult]:
    """Every arm at every d, over seeds 0..S−1."""
    from ..simulation.exact import simulate

    params = settings.params
    out = []
    with Progress(len(settings.ds) * len(ARMS) * settings.seeds, "informed study") as bar:
        for d in settings.ds:
            pilot = max(1, round(settings.pilot_ratio * d))
            for arm, tau, subspace in ARMS:
                per: dict[str, list[float]] = {key: [] for key in ERRORS}
                aligns = []
                for seed in range(settings.seeds):
                    if subspace == "informed":
                        res = simulate(
                            params.with_(tau=tau),
                            d,
                            seeds=[seed],
                            n_test=settings.n_test,
                            subspace="informed",
                            pilot=pilot,
                        )
                    else:
                        point = params.with_(tau=tau, alignment=_alignment(d, seed, params.k))
                        res = simulate(point, d, seeds=[seed], n_test=settings.n_test)
                    for key in ERRORS:
                        per[key].append(float(res.mean[key]))
                    aligns.append(np.asarray(res.mean["alignment"], dtype=float))
                    bar.update()
                out.append(
                    ArmResult(
                        arm,
                        tau,
                        subspace,
                        d,
                        res.p,
                        res.n,
                        pilot if subspace == "informed" else None,
                        {key: np.array(v) for key, v in per.items()},
                        np.array(aligns),
                    )
                )
    return out


def theory_laws(params: ModelParams) -> dict[int, dict[str, Any]]:
    """The quadratic law in ϖ of each error for τ = 1 and τ = 0 (empty where the solver fails)."""
    from ..studies.alignment import alignment_laws
    from ..theory.solve import solve

    laws: dict[int, dict[str, Any]] = {}
    for tau in (1, 0):
        try:
            with np.errstate(all="ignore"):
                laws[tau] = alignment_laws(params.with_(tau=tau), lambda p: solve(p).to_dict(), keys=ERRORS)
        except UserError:
            laws[tau] = {}
        bad = [key for key in ERRORS if key not in laws[tau] or not math.isfinite(laws[tau][key].mean)]
        if bad:
            print(
                f"sobolev-rf informed: warning: the d → ∞ theory (τ = {tau}) did not resolve {', '.join(bad)} "
                "at this point (left blank)",
                file=sys.stderr,
            )
    return laws


def _theory(laws: dict[int, dict[str, Any]], result: ArmResult) -> tuple[dict[str, float], dict[str, float]]:
    """(E over ϖ ~ N(0, I_k), mean over the seeds' realised ϖ) of each error; NaN for the informed arm."""
    if result.subspace == "informed":
        return {key: math.nan for key in ERRORS}, {key: math.nan for key in ERRORS}
    law = laws.get(result.tau, {})
    mean = {key: law[key].mean if key in law else math.nan for key in ERRORS}
    realised = {key: float(np.mean(law[key](result.alignment))) if key in law else math.nan for key in ERRORS}
    return mean, realised


def csv_rows(results: Sequence[ArmResult], laws: dict[int, dict[str, Any]], seeds: int) -> list[list[Any]]:
    rows = []
    for r in results:
        mean, realised = _theory(laws, r)
        rows.append(
            [
                r.arm,
                r.tau,
                r.subspace,
                int(r.subspace == "informed"),
                r.d,
                r.p,
                r.n,
                "" if r.pilot is None else r.pilot,
                seeds,
            ]
            + [fmt(v) for key in ERRORS for v in (r.mean(key), r.se(key))]
            + [
                fmt(float(np.mean(r.ratio))),
                fmt(float(np.std(r.ratio, ddof=1) / math.sqrt(len(r.ratio)))),
                fmt(float(np.mean(r.alignment**2))),
            ]
            + [fmt(mean[key]) for key in ERRORS]
            + [fmt(realised[key]) for key in ERRORS]
        )
    return rows


def figure(results: Sequence[ArmResult], laws: dict[int, dict[str, Any]], settings: Settings, command: str) -> bytes:
    """Three panels (eps_L2, eps_H1, eps_grad) against d: simulation means ± SE of the three arms, the random
    model's d → ∞ theory (mean over ϖ ~ N(0, I_k)) as lines; the informed arm is marked outside the theory."""
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D
    from matplotlib.ticker import FixedLocator, FormatStrFormatter, NullFormatter

    fig = Figure(figsize=(15, 5.4), layout="constrained")
    axes = fig.subplots(1, 3)
    style = {"random": ("C0", "o", 1), "informed": ("C3", "s", 1), "L2": ("C2", "^", 0)}
    ds = np.array(settings.ds, dtype=float)
    span = np.array([ds[0] / 1.15, ds[-1] * 1.15])
    panels = (
        ("eps_L2", r"test error $\varepsilon_{L^2}$"),
        ("eps_H1", r"projected-gradient error $\varepsilon_{H^1}$" + "\n(informed: along v₁ ≈ √d θ₀, grows ∝ d)"),
        ("eps_grad", r"full-gradient error $\varepsilon_{\nabla}$"),
    )
    offsets = {"random": 0.97, "informed": 1.0, "L2": 1.03}
    for ax, (key, ylabel) in zip(axes, panels):
        for arm, _, _ in ARMS:
            color, marker, tau = style[arm]
            rs = [r for r in results if r.arm == arm]
            x = np.array([r.d for r in rs]) * offsets[arm]
            ax.errorbar(
                x,
                [r.mean(key) for r in rs],
                yerr=[r.se(key) for r in rs],
                fmt=marker,
                ms=6,
                capsize=3,
                color=color,
                mfc="white" if arm != "informed" else color,
                mew=1.4,
                lw=1.2,
            )
            if arm != "informed" and key in laws.get(tau, {}):
                ax.plot(span, [laws[tau][key].mean] * 2, color=color, lw=1.6, ls="-" if tau else "--")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlim(*span)
        ax.xaxis.set_major_locator(FixedLocator(list(ds)))
        ax.xaxis.set_major_formatter(FormatStrFormatter("%g"))
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel("input dimension d")
        ax.set_ylabel(ylabel)
        ax.grid(True, which="both", alpha=0.25)
    handles = [
        Line2D(
            [], [], color="C0", marker="o", mfc="white", lw=1.6, label=f"{LABELS['random']}: sim. ± SE, theory line"
        ),
        Line2D(
            [],
            [],
            color="C2",
            marker="^",
            mfc="white",
            lw=1.6,
            ls="--",
            label=f"{LABELS['L2']}: sim. ± SE, theory line",
        ),
        Line2D(
            [],
            [],
            color="C3",
            marker="s",
            ls="none",
            label=f"{LABELS['informed']} (pilot m = {settings.pilot_ratio:g}·d): sim. ± SE",
        ),
        Line2D([], [], color="none", label=OUTSIDE + ", no theory line"),
    ]
    fig.legend(handles=handles, loc="outside lower center", ncol=2, fontsize=9, frameon=False)
    informed = [r for r in results if r.arm == "informed"]
    realised = ", ".join(f"d = {r.d}: {np.mean(r.ratio):.3f}" for r in informed)
    fig.suptitle(
        f"Data-informed vs random gradient subspaces ({settings.params.describe(omit=('tau', 'alignment'))})\n"
        f"lines: d → ∞ theory of the random model, mean over ϖ ~ N(0, I_k); points: {settings.seeds} seeds "
        f"(± SE); informed realised ϖ₁/√d — {realised}"
    )
    return png_bytes(fig, command)


def _pm(mean: float, se: float) -> str:
    return f"{mean:.4g} ± {se:.2g}"


def table(results: Sequence[ArmResult], laws: dict[int, dict[str, Any]], settings: Settings) -> str:
    head = f"{'d':>5}  {'arm':<9}{'eps_L2':>20}{'eps_H1':>20}{'eps_grad':>20}{'ϖ₁/√d':>9}{'theory eps_L2':>15}"
    lines = [
        f"Informed vs random gradient subspaces ({settings.params.describe(omit=('tau', 'alignment'))}), "
        f"{settings.seeds} seeds, "
        f"mean ± SE",
        f"theory: d → ∞, random V, mean over ϖ ~ N(0, I_k); {OUTSIDE}",
        head,
        "-" * len(head),
    ]
    for r in results:
        mean, _ = _theory(laws, r)
        th = "outside" if r.subspace == "informed" else f"{mean['eps_L2']:.4g}"
        lines.append(
            f"{r.d:>5}  {r.arm:<9}"
            + "".join(f"{_pm(r.mean(k), r.se(k)):>20}" for k in ERRORS)
            + f"{np.mean(r.ratio):>9.3f}{th:>15}"
        )
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    """Validate, simulate, solve, render; then write both files (all or nothing) and print the table."""
    settings = settings_from_args(args)
    _check_sizes(settings)
    command = getattr(args, "command_line", None) or "sobolev-rf informed"
    start = time.perf_counter()
    results = simulate_arms(settings)
    laws = theory_laws(settings.params)
    files: dict[str, str | bytes] = {
        "informed.csv": csv_text(command, COLUMNS, csv_rows(results, laws, settings.seeds)),
        "informed.png": figure(results, laws, settings, command),
    }
    write_outputs(args.out, files)
    print(table(results, laws, settings))
    print(f"\nwrote informed.png, informed.csv to {args.out}/ in {time.perf_counter() - start:.1f} s")
    return 0
