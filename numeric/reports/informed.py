"""The informed study's CSV rows and printed table (:mod:`sobolev_rf.numeric.studies.informed`)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..artifacts import fmt
from ..quantities import ERRORS
from ..studies.informed import OUTSIDE, ArmResult, Settings, theory_at

COLUMNS = (
    ("arm", "tau", "subspace", "outside_theory", "d", "p", "n", "pilot", "seeds")
    + tuple(name for key in ERRORS for name in (key, f"{key}_se"))
    + ("varpi1_over_sqrt_d", "varpi1_over_sqrt_d_se", "varpi_sq_mean")
    + tuple(f"theory_{key}_mean" for key in ERRORS)
    + tuple(f"theory_{key}_realised" for key in ERRORS)
)


def csv_rows(results: Sequence[ArmResult], laws: dict[int, dict[str, Any]], seeds: int) -> list[list[Any]]:
    rows = []
    for r in results:
        mean, realised = theory_at(laws, r)
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
        mean, _ = theory_at(laws, r)
        th = "outside" if r.subspace == "informed" else f"{mean['eps_L2']:.4g}"
        lines.append(
            f"{r.d:>5}  {r.arm:<9}"
            + "".join(f"{_pm(r.mean(k), r.se(k)):>20}" for k in ERRORS)
            + f"{np.mean(r.ratio):>9.3f}{th:>15}"
        )
    return "\n".join(lines)
