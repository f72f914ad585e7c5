"""``sobolev-rf sweep``: the asymptotic errors on a grid of (p/d, n/d, λ, Δ_f, Δ_g, τ) by the generated solver.

The grid is solved and written in boxes of at most :data:`CHUNK_POINTS` points (:func:`grid_boxes`: whole
trailing lines of the grid, in the CSV's row order), so memory does not grow with the grid. Continuation runs
inside a box. CSV rows are formatted a box at a time by one ``%`` format (the axis values as their shortest
round-trip text, the outputs with 17 significant digits). ``--out F.nc`` writes NetCDF through xarray, one
dimension and coordinate per axis, the boxes as dask blocks; the backend is SciPy's netCDF-3 writer
(``engine="scipy"``): SciPy is already a dependency, and every NetCDF reader opens netCDF-3, while netCDF4 or
h5netcdf would add an HDF5 stack for compression this grid does not need. That writer holds the file in memory
until it is closed: about 105 bytes per point, 0.4 GB at :data:`MAX_POINTS`.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import math
import os
import shlex
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from ...codegen.atomic import WriteError, atomic_write_text
from ...codegen.jit import resolve_backend
from ...derive.errors import UserError
from ...derive.params import ModelParams, parse_alignment
from ..artifacts import csv_columns
from ..progress import Progress
from ..theory.coefficients import coefficients
from ..theory.solve import BACKENDS, solve_arrays
from .args import add_model_arguments, add_step_arguments, params_from_args, parse_range

#: Swept axes, in the order of the grid's dimensions and of the CSV columns.
AXES = ("p_over_d", "n_over_d", "lam", "noise_f", "noise_g", "tau")
#: Largest number of grid points of one sweep.
MAX_POINTS = 4_000_000
#: Points solved and written at a time: memory stays bounded whatever the grid's size (about 1 kB per point
#: in flight; a NetCDF file is held by SciPy's writer until it is closed, 105 bytes per point with 12 outputs).
CHUNK_POINTS = 1 << 16
#: ``--out`` names ending so are written as NetCDF, anything else as CSV.
NETCDF_SUFFIXES = (".nc", ".nc4", ".netcdf")


def _threshold_text(taus: np.ndarray, k: int, affine: bool = False) -> str:
    """The interpolation threshold(s) of λ → 0⁺ for the swept τ values: p = (1 + k)n for every τ > 0
    (p = n for an affine σ, whose gradient rows are spikes)."""
    if affine:
        return "p = n (σ is affine: its gradient rows are spikes, which do not count)"
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
    p.add_argument(
        "--out",
        default=None,
        metavar="FILE",
        help="write the grid here instead of stdout: NetCDF when FILE ends in .nc (one dimension and coordinate "
        "per axis, the command line and provenance in the attributes; open with xarray.open_dataset), else CSV",
    )
    p.set_defaults(func=run)


def chunk_layout(shape: tuple[int, ...], budget: int) -> tuple[int, int]:
    """(j, step): the grid is cut into boxes of ``step`` indices along axis j, one index along the axes
    before it and whole along the axes after it, so that a box holds at most ``budget`` points (at least one
    index along j). The boxes in C order cover the flattened grid in order, and each box keeps the longest
    trailing lines of the grid whole."""
    rest = 1
    for j in range(len(shape) - 1, -1, -1):
        if rest * shape[j] > budget:
            return j, max(1, budget // rest)
        rest *= shape[j]
    return 0, max(shape[0], 1) if shape else 1


def grid_boxes(shape: tuple[int, ...], budget: int) -> Iterator[tuple[slice, ...]]:
    """The boxes of :func:`chunk_layout`, as index tuples of slices, in C order."""
    j, step = chunk_layout(shape, budget)
    for prefix in itertools.product(*[range(n) for n in shape[:j]]):
        for s in range(0, shape[j], step):
            yield (
                *(slice(i, i + 1) for i in prefix),
                slice(s, min(s + step, shape[j])),
                *(slice(None),) * (len(shape) - j - 1),
            )


class _Sweep:
    """The grid of a sweep solved box by box (:func:`grid_boxes`), so that memory is bounded whatever its size."""

    def __init__(self, args: argparse.Namespace, axes: dict[str, np.ndarray], k: int, alignment: Any) -> None:
        self.axes, self.k = axes, k
        self.shape = tuple(len(v) for v in axes.values())
        self.model = dict(
            activation=args.activation, teacher=args.teacher, alignment=None if alignment is None else list(alignment)
        )
        self.backend = args.backend
        self.used = resolve_backend(args.backend)
        self.names = output_names(k, axes["tau"])
        self.bad = self.on_threshold = 0
        self.affine = coefficients(str(args.activation))[4:6] == (0.0, 0.0)

    def solve(self, box: tuple[slice, ...], progress: Callable[[int], None]) -> tuple[list[np.ndarray], np.ndarray]:
        """(every output on the box, converged), arrays of the box's shape."""
        mesh = np.meshgrid(*[v[s] for v, s in zip(self.axes.values(), box)], indexing="ij")
        grid = dict(zip(AXES, mesh))
        tau = grid.pop("tau")
        result = solve_arrays(self.k, tau, {**grid, **self.model}, backend=self.backend, progress=progress)
        self.used = result.backend
        threshold = int(np.count_nonzero(result.extra["branch"] == "threshold"))
        converged = np.broadcast_to(result.converged, mesh[0].shape)
        self.on_threshold += threshold
        self.bad += int(converged.size - np.count_nonzero(converged)) - threshold
        nan = np.full(mesh[0].shape, np.nan)
        return [np.broadcast_to(result.outputs.get(n, nan), mesh[0].shape) for n in self.names], converged


def output_names(k: int, taus: np.ndarray) -> list[str]:
    """The output columns of a sweep: those of the τ = 0 system, then those only the τ > 0 system has."""
    from ...codegen.jit import record_names
    from ..theory.solve import system_record

    kinds = sorted({bool(t > 0 and k >= 1) for t in taus})
    return list(dict.fromkeys(n for s in kinds for n in record_names(system_record(k, s, "ridge"), "outputs")))


def _csv_rows(sweep: _Sweep, box: tuple[slice, ...], outputs: list[np.ndarray], converged: np.ndarray) -> str:
    """CSV rows of one box, formatted as one block: the axis values as their shortest round-trip text
    (each distinct value formatted once), the outputs with 17 significant digits (round-trip), converged 0/1."""
    n = converged.size
    table = np.empty((n, len(AXES) + len(outputs) + 1), dtype=object)
    index = np.meshgrid(*[np.arange(len(v))[s] for v, s in zip(sweep.axes.values(), box)], indexing="ij")
    for a, (values, idx) in enumerate(zip(sweep.axes.values(), index)):
        table[:, a] = np.array([repr(float(v)) for v in values], dtype=object)[idx.ravel()]
    table[:, len(AXES) : -1] = np.column_stack([o.ravel() for o in outputs]) if outputs else np.empty((n, 0))
    table[:, -1] = converged.ravel().astype(int)
    row = ",".join(["%s"] * len(AXES) + ["%.17g"] * len(outputs) + ["%d"]) + "\n"
    return (row * n) % tuple(table.ravel().tolist())


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
    sweep = _Sweep(args, axes, k, alignment)
    netcdf = bool(args.out) and str(args.out).lower().endswith(NETCDF_SUFFIXES)
    start = time.perf_counter()
    with Progress(size, "sweep") as bar:
        if netcdf:
            _write_netcdf(args.out, sweep, bar.update, _provenance(args, sweep))
        elif args.out:
            staged = _Staged(args.out)
            try:
                for i, box in enumerate(grid_boxes(sweep.shape, CHUNK_POINTS)):
                    staged.write(_csv_block(sweep, box, bar.update, header=i == 0))
            except BaseException:
                staged.discard()
                raise
            staged.commit()
        else:
            for box in grid_boxes(sweep.shape, CHUNK_POINTS):
                sys.stdout.write(_csv_block(sweep, box, bar.update, header=box == _first_box(sweep.shape)))
    elapsed = max(time.perf_counter() - start, 1e-9)
    bad, on_threshold = sweep.bad, sweep.on_threshold
    threshold = _threshold_text(axes["tau"], k, sweep.affine)
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
        f"backend, continuation along --{AXES[_first_swept(axes)].replace('_', '-')})"
        f"{'; ' + '; '.join(notes) if notes else ''}",
        file=sys.stderr,
    )
    if args.out:
        print(
            f"wrote {size} points ({sweep.used} backend) to {args.out}{' (NetCDF)' if netcdf else ''}", file=sys.stderr
        )
    return 0


def _first_box(shape: tuple[int, ...]) -> tuple[slice, ...]:
    return next(iter(grid_boxes(shape, CHUNK_POINTS)))


def _csv_block(sweep: _Sweep, box: tuple[slice, ...], progress: Callable[[int], None], header: bool) -> str:
    """Solve one box and return its CSV rows (with the header line first when ``header``)."""
    outputs, converged = sweep.solve(box, progress)
    head = ",".join([*AXES, *sweep.names, "converged"]) + "\n" if header else ""
    return head + _csv_rows(sweep, box, outputs, converged)


class _Staged:
    """A file written in pieces to a temporary file next to ``path`` (folders created as needed), moved into
    place by :meth:`commit`; :meth:`discard` removes the temporary file and the folders it created. Every
    failure is a :class:`WriteError`."""

    def __init__(self, path: str) -> None:
        self.path = Path(path)
        self.created: list[Path] = []
        try:
            for folder in [f for f in (self.path.parent, *self.path.parent.parents) if not f.is_dir()][::-1]:
                folder.mkdir()
                self.created.append(folder)
            self.fd, self.tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".tmp", dir=self.path.parent)
        except OSError as exc:
            self.fd, self.tmp = -1, ""
            self.discard()
            raise WriteError(self.path, exc) from None

    def write(self, text: str) -> None:
        try:
            view = memoryview(text.encode("utf-8"))
            while view:
                view = view[os.write(self.fd, view) :]
        except OSError as exc:
            self.discard()
            raise WriteError(self.path, exc) from None

    def commit(self) -> None:
        try:
            os.fchmod(self.fd, 0o666 & ~_umask())
            os.fsync(self.fd)
            os.close(self.fd)
            self.fd = -1
            os.replace(self.tmp, self.path)
        except OSError as exc:
            self.discard()
            raise WriteError(self.path, exc) from None

    def discard(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
        if self.tmp and os.path.exists(self.tmp):
            os.unlink(self.tmp)
        for folder in reversed(self.created):
            with contextlib.suppress(OSError):
                folder.rmdir()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _provenance(args: argparse.Namespace, sweep: _Sweep) -> dict[str, str | int | float]:
    """Attributes of a NetCDF sweep: the command line, the model and the versions that produced it."""
    from importlib.metadata import version

    from ...codegen.version import CODEGEN_VERSION

    alignment = sweep.model["alignment"]
    return {
        "title": "sobolev-rf sweep: asymptotic errors of Sobolev training on a grid",
        "command": "sobolev-rf " + shlex.join(sys.argv[1:]) if sys.argv[1:] else "sobolev-rf sweep",
        "activation": str(args.activation),
        "teacher": str(args.teacher),
        "kappa": ", ".join(f"{v!r}" for v in coefficients(str(args.activation))),
        "mu": ", ".join(f"{v!r}" for v in coefficients(str(args.teacher))),
        "k": sweep.k,
        "alignment": "all ones" if alignment is None else ", ".join(map(repr, alignment)),
        "backend": sweep.used,
        "converged": "1 where the fixed point converged, 0 elsewhere (errors NaN there)",
        "lam_zero": "lam = 0 is the limit λ → 0⁺",
        "sobolev_rf_version": version("sobolev-rf"),
        "codegen_version": CODEGEN_VERSION,
    }


def _write_netcdf(
    path: str, sweep: _Sweep, progress: Callable[[int], None], attrs: dict[str, str | int | float]
) -> None:
    """The grid as a NetCDF file (xarray, SciPy's netCDF-3 writer): one dimension and coordinate per axis,
    one variable per output and ``converged``; the boxes are computed one at a time as dask blocks."""
    import dask
    import dask.array as da
    import xarray as xr

    j, step = chunk_layout(sweep.shape, CHUNK_POINTS)
    grid = tuple(n if a < j else -(-n // step) if a == j else 1 for a, n in enumerate(sweep.shape))
    count = len(sweep.names) + 1

    def stacked(box: tuple[slice, ...]) -> np.ndarray:
        outputs, converged = sweep.solve(box, progress)
        return np.stack([*outputs, converged.astype(float)])

    blocks = np.empty(grid, dtype=object)
    for position, box in zip(np.ndindex(grid), grid_boxes(sweep.shape, CHUNK_POINTS)):
        shape = tuple(len(range(*s.indices(n))) for s, n in zip(box, sweep.shape))
        blocks[position] = da.from_delayed(dask.delayed(stacked)(box), shape=(count, *shape), dtype=float)
    data = da.block(blocks.tolist())  # the nesting joins the grid axes, the trailing ones: (output, *grid)
    dataset = xr.Dataset(
        {name: (AXES, data[i]) for i, name in enumerate(sweep.names)},
        coords={name: values for name, values in sweep.axes.items()},
        attrs=attrs,
    )
    dataset["converged"] = (AXES, data[-1].astype(np.int8))
    staged = _Staged(path)
    try:
        with dask.config.set(scheduler="synchronous"):
            dataset.to_netcdf(staged.tmp, engine="scipy", format="NETCDF3_64BIT")
    except OSError as exc:
        staged.discard()
        raise WriteError(Path(path), exc) from None
    except BaseException:
        staged.discard()
        raise
    staged.commit()


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
