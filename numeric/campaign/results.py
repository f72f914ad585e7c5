"""What leaves a campaign store: the per-task CSV, the per-point summary (CSV or NetCDF) and the report.

Summary rows are per (point, d): over the seeds that are done, the mean, the standard error (sample std with
ddof = 1 over √S; NaN below two seeds), the d → ∞ theory value and the z-score z = (mean − theory)/se of each
of the five errors, with the numbers of seeds done, failed and pending. Seeds are summed in seed order, so
the summary does not depend on the order in which tasks finished.

The standard error comes from the same S seeds, so it is uncertain itself: where simulation and theory agree,
z follows Student's t with S − 1 degrees of freedom (for errors that are normal across seeds), whose tails are
far heavier than the normal's at small S. The report therefore ranks by the two-sided p-value of that t-test,
shows S, marks comparisons from fewer than :data:`FEW_SEEDS` seeds and says what |z| means at its smallest S.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ...codegen.atomic import atomic_write_bytes, atomic_write_text
from ...derive.errors import UserError
from ..artifacts import csv_text
from .engine import Campaign
from .store import ERRORS, Store

#: Parameter columns of the CSV files: ``sweep``'s swept axes first, under ``sweep``'s names.
PARAM_COLUMNS = ("p_over_d", "n_over_d", "lam", "noise_f", "noise_g", "tau", "activation", "k", "teacher", "alignment")
#: Columns of a first-layer step (ONESTEP.md), after :data:`PARAM_COLUMNS` in a campaign with a step.
STEP_COLUMNS = ("step", "eta", "alpha0", "tau_step", "k_step", "step_dirs", "second_layer")
#: Errors the report compares (eps_H1 is NaN for k = 0 and skipped there).
REPORT_ERRORS = ERRORS
#: Comparisons from fewer seeds than this are marked in the report: their standard error is too rough to read
#: |z| against the normal scale (the 95 % point of |t| is 2.78 at 5 seeds, 12.7 at 2).
FEW_SEEDS = 5


def t_test_p(z: float, seeds: int) -> float:
    """Two-sided p-value of z = (mean − theory)/se under Student's t with ``seeds`` − 1 degrees of freedom."""
    from scipy.stats import t

    return float(2.0 * t.sf(abs(z), seeds - 1)) if seeds > 1 and math.isfinite(z) else math.nan


def _num(value: Any) -> str:
    if isinstance(value, int):
        return str(value)
    return "nan" if value is None or not math.isfinite(float(value)) else f"{float(value):.17g}"


def param_columns(params: Sequence[dict[str, Any]]) -> tuple[str, ...]:
    """The parameter columns of these points: :data:`PARAM_COLUMNS`, and :data:`STEP_COLUMNS` when a point
    has a first-layer step (a campaign without one keeps the columns it had before steps existed)."""
    return PARAM_COLUMNS + (STEP_COLUMNS if any("step" in p for p in params) else ())


def _param_cells(params: dict[str, Any], columns: Sequence[str] = PARAM_COLUMNS) -> list[str]:
    cells = []
    for name in columns:
        value: Any = params.get(name, "none" if name == "step" else None)
        if name == "alignment":
            cells.append(";".join(f"{float(a):.17g}" for a in value))
        elif name in ("activation", "teacher", "step", "step_dirs", "second_layer"):
            cells.append("" if value is None else str(value))
        else:
            cells.append(_num(value))
    return cells


def export_rows(st: Store) -> tuple[list[str], list[list[str]]]:
    """Columns and rows of the per-task table (campaign order; NaN for errors not available)."""
    points = {p["key"]: p for p in st.points()}
    names = param_columns([p["params"] for p in points.values()])
    columns = [*names, "d", "seed", *ERRORS, "status", "message"]
    rows = []
    for t in st.tasks():
        rows.append(
            [
                *_param_cells(points[t["point_key"]]["params"], names),
                str(t["d"]),
                str(t["seed"]),
                *(_num(t["errors"][e]) for e in ERRORS),
                t["status"],
                t["message"] or "",
            ]
        )
    return columns, rows


def export_csv(st: Store, path: str | Path, command: str = "sobolev-rf campaign") -> int:
    """Write one row per task to ``path`` (atomically, first line ``# command: ...``); returns the row count."""
    columns, rows = export_rows(st)
    atomic_write_text(path, csv_text(command, columns, rows))
    return len(rows)


def summarize(campaign: Campaign, st: Store) -> list[dict[str, Any]]:
    """One dict per (point, d) in campaign order: ``params``, ``d``, ``done``, ``failed``, ``pending``,
    ``theory_status``, ``theory_message``, ``first_message`` and per error ``<e>_mean``, ``<e>_se``,
    ``<e>_theory``, ``<e>_z``."""
    import numpy as np

    points = st.points()
    groups: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for t in st.tasks():
        groups.setdefault((t["point_key"], t["d"]), []).append(t)
    out = []
    for p in points:
        for d in campaign.ds:
            tasks = sorted(groups.get((p["key"], d), []), key=lambda t: t["seed"])
            done = [t for t in tasks if t["status"] == "done"]
            failed = [t for t in tasks if t["status"] == "failed"]
            row: dict[str, Any] = {
                "params": p["params"],
                "d": d,
                "done": len(done),
                "failed": len(failed),
                "pending": campaign.seeds - len(done) - len(failed),  # rows missing from the store included
                "theory_status": p["theory_status"],
                "theory_message": p["theory_message"],
                "first_message": failed[0]["message"] if failed else None,
            }
            for e in ERRORS:
                values = np.array([t["errors"][e] for t in done], dtype=np.float64)
                mean = float(values.mean()) if values.size else math.nan
                se = float(values.std(ddof=1) / math.sqrt(values.size)) if values.size > 1 else math.nan
                theory = p["theory"][e]
                z = (mean - theory) / se if math.isfinite(se) and se > 0 and math.isfinite(theory) else math.nan
                row.update({f"{e}_mean": mean, f"{e}_se": se, f"{e}_theory": theory, f"{e}_z": z})
            out.append(row)
    return out


SUMMARY_STATS = ("mean", "se", "theory", "z")


def summary_csv_text(rows: Sequence[dict[str, Any]], command: str = "sobolev-rf campaign") -> str:
    names = param_columns([r["params"] for r in rows])
    columns = [
        *names,
        "d",
        "seeds_done",
        "seeds_failed",
        "seeds_pending",
        *(f"{e}_{s}" for e in ERRORS for s in SUMMARY_STATS),
        "theory_status",
        "note",
    ]
    body = []
    for r in rows:
        note = r["first_message"] or ""
        if r["theory_status"] == "failed":
            note = (note + " | " if note else "") + f"theory: {r['theory_message']}"
        body.append(
            [
                *_param_cells(r["params"], names),
                str(r["d"]),
                str(r["done"]),
                str(r["failed"]),
                str(r["pending"]),
                *(_num(r[f"{e}_{s}"]) for e in ERRORS for s in SUMMARY_STATS),
                r["theory_status"],
                note,
            ]
        )
    return csv_text(command, columns, body)


def summary_dataset(campaign: Campaign, rows: Sequence[dict[str, Any]], command: str = "sobolev-rf campaign") -> Any:
    """The summary as an ``xarray.Dataset``: dimensions = the swept grid axes (those with more than one value,
    in grid order) and ``d``; axes with one value become scalar coordinates. A campaign that is not a grid
    gets one dimension ``point`` with the parameters as coordinates along it."""
    import numpy as np
    import xarray as xr

    from ..theory.dataset import versions

    nd = len(campaign.ds)
    stats = {
        f"{e}_{s}": np.array([r[f"{e}_{s}"] for r in rows], dtype=np.float64)
        for e in ERRORS
        for s in ("mean", "se", "z")
    }
    counts = {
        name: np.array([r[key] for r in rows], dtype=np.int64)
        for name, key in (("seeds_done", "done"), ("seeds_failed", "failed"), ("seeds_pending", "pending"))
    }
    theory = {f"{e}_theory": np.array([r[f"{e}_theory"] for r in rows[::nd]], dtype=np.float64) for e in ERRORS}
    attrs = {
        "command": command,
        "seeds": campaign.seeds,
        "n_test": -1 if campaign.n_test is None else campaign.n_test,
        "teacher": campaign.points[0].teacher if campaign.axes is not None else "per point",
        "failed_tasks": int(counts["seeds_failed"].sum()),
        **versions(),
    }
    if campaign.axes is not None:
        shape = tuple(len(v) for _, v in campaign.axes)
        swept = [(name, values) for name, values in campaign.axes if len(values) > 1]
        dims = [name for name, _ in swept]
        coords: dict[str, Any] = {name: list(values) for name, values in swept}
        for name, values in campaign.axes:
            if len(values) == 1:
                coords[name] = values[0]
        first = campaign.points[0]
        if first.has_step:  # the same for every point of a grid
            attrs.update({name: str(getattr(first, name)) for name in ("step", "step_dirs", "second_layer")})
        alignment = first.alignment
        if all(p.alignment == alignment for p in campaign.points):
            attrs["alignment"] = ";".join(f"{a:.17g}" for a in alignment or ())
        squeeze = tuple(i for i, (_, v) in enumerate(campaign.axes) if len(v) == 1)

        def grid_of(values: np.ndarray, with_d: bool) -> np.ndarray:
            arr = values.reshape(shape + ((nd,) if with_d else ()))
            return arr.squeeze(axis=squeeze) if squeeze else arr
    else:
        dims = ["point"]
        coords = {"point": np.arange(len(campaign.points))}
        for name in param_columns([p.as_dict() for p in campaign.points]):
            column: list[Any] = [p.as_dict().get(name) for p in campaign.points]
            if name in STEP_COLUMNS:
                column = ["" if v is None else str(v) for v in column]
            if name == "alignment":
                column = [";".join(f"{a:.17g}" for a in v) for v in column]
            coords[name] = ("point", column)

        def grid_of(values: np.ndarray, with_d: bool) -> np.ndarray:
            return values.reshape((len(campaign.points),) + ((nd,) if with_d else ()))

    coords["d"] = list(campaign.ds)
    data = {name: (dims + ["d"], grid_of(v, True)) for name, v in {**stats, **counts}.items()}
    data.update({name: (dims, grid_of(v, False)) for name, v in theory.items()})
    return xr.Dataset(data, coords=coords, attrs=attrs)


def write_summary(campaign: Campaign, st: Store, path: str | Path, command: str = "sobolev-rf campaign") -> int:
    """Write the summary to ``path`` (``.csv`` or ``.nc``), atomically; returns its row count."""
    rows = summarize(campaign, st)
    suffix = Path(path).suffix.lower()
    if suffix == ".csv":
        atomic_write_text(path, summary_csv_text(rows, command))
    elif suffix == ".nc":
        ds = summary_dataset(campaign, rows, command)
        atomic_write_bytes(path, bytes(ds.to_netcdf(engine="scipy")))
    else:
        raise UserError(f"--summary must end in .csv or .nc, got {str(path)!r}.")
    return len(rows)


def report_rows(rows: Sequence[dict[str, Any]], top: int = 10) -> list[dict[str, Any]]:
    """The ``top`` (point, d, error) comparisons least compatible with theory: smallest t-test p-value
    (:func:`t_test_p`) first, then largest |z|."""
    entries = []
    for r in rows:
        for e in REPORT_ERRORS:
            z = r[f"{e}_z"]
            if math.isfinite(z):
                entries.append(
                    {
                        "params": r["params"],
                        "d": r["d"],
                        "error": e,
                        "theory": r[f"{e}_theory"],
                        "mean": r[f"{e}_mean"],
                        "se": r[f"{e}_se"],
                        "z": z,
                        "seeds": r["done"],
                        "p": t_test_p(z, r["done"]),
                    }
                )
    entries.sort(key=lambda x: (x["p"], -abs(x["z"])))
    return entries[:top]


def report_text(rows: Sequence[dict[str, Any]], top: int = 10) -> str:
    """A Markdown table of the comparisons least compatible with theory, a one-line digest and a caution on
    reading z from few seeds."""
    from scipy.stats import t

    entries = report_rows(rows, top)
    compared = [(abs(r[f"{e}_z"]), r["done"]) for r in rows for e in REPORT_ERRORS if math.isfinite(r[f"{e}_z"])]
    head = [
        "σ",
        "φ",
        "k",
        "τ",
        "p/d",
        "n/d",
        "λ",
        "Δ_f",
        "Δ_g",
        "ϖ",
        "d",
        "seeds",
        "error",
        "theory",
        "simulation ± se",
        "rel. gap",
        "z",
        "p (t-test)",
    ]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for x in entries:
        p = x["params"]
        gap = (x["mean"] - x["theory"]) / x["theory"] if x["theory"] else math.nan
        seeds = f"{x['seeds']}†" if x["seeds"] < FEW_SEEDS else str(x["seeds"])
        lines.append(
            "| "
            + " | ".join(
                str(c)
                for c in (
                    p["activation"],
                    p["teacher"],
                    p["k"],
                    p["tau"],
                    f"{p['p_over_d']:.4g}",
                    f"{p['n_over_d']:.4g}",
                    f"{p['lam']:.3g}",
                    f"{p['noise_f']:.3g}",
                    f"{p['noise_g']:.3g}",
                    ",".join(f"{a:g}" for a in p["alignment"]),
                    x["d"],
                    seeds,
                    x["error"],
                    f"{x['theory']:.5g}",
                    f"{x['mean']:.5g} ± {x['se']:.2g}",
                    f"{100 * gap:+.2f}%",
                    f"{x['z']:+.2f}",
                    f"{x['p']:.2g}",
                )
            )
            + " |"
        )
    failed = sum(r["failed"] for r in rows)
    pending = sum(r["pending"] for r in rows)
    theory_failed = len({json.dumps(r["params"], sort_keys=True) for r in rows if r["theory_status"] == "failed"})
    small = sum(s < FEW_SEEDS for _, s in compared)
    digest = f"{len(compared)} comparisons (point × d × error with ≥ 2 seeds and a theory value); " + (
        f"max |z| = {max(z for z, _ in compared):.2f}, |z| > 3 in {sum(z > 3 for z, _ in compared)}, "
        f"t-test p < 0.001 in {sum(t_test_p(z, s) < 1e-3 for z, s in compared)}"
        if compared
        else "none yet"
    )
    notes = [f"{small} from fewer than {FEW_SEEDS} seeds (†)"] if small else []
    notes += [f"{failed} task(s) failed"] if failed else []
    notes += [f"{pending} task(s) pending"] if pending else []
    notes += [f"theory failed at {theory_failed} point(s)"] if theory_failed else []
    text = "\n".join(lines) + "\n\n" + digest + ("; " + "; ".join(notes) if notes else "") + "\n"
    if compared:
        fewest = min(s for _, s in compared)
        text += (
            f"Caution: se comes from the seeds' own spread and is uncertain itself; where simulation and theory "
            f"agree, z follows Student's t with S − 1 degrees of freedom, so with S = {fewest} seeds |z| > "
            f"{t.ppf(0.975, fewest - 1):.3g} happens one time in 20 by chance (normal: 1.96); p is that t-test. "
            "The theory is d → ∞: a finite-d gap makes |z| grow with the seeds, whatever its size (see rel. gap).\n"
        )
    return text
