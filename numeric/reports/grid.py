"""The output of ``sobolev-rf sweep``: a grid of (p/d, n/d, λ, Δ_f, Δ_g, τ) solved and written box by box.

The grid is solved and written in boxes of at most :data:`CHUNK_POINTS` points (:func:`grid_boxes`: whole
trailing lines of the grid, in the CSV's row order), so memory does not grow with the grid. Continuation runs
inside a box. CSV rows are formatted a box at a time by one ``%`` format (the axis values as their shortest
round-trip text, the outputs with 17 significant digits). NetCDF is written through xarray, one dimension and
coordinate per axis, the boxes as dask blocks; the backend is SciPy's netCDF-3 writer (``engine="scipy"``):
SciPy is already a dependency, and every NetCDF reader opens netCDF-3, while netCDF4 or h5netcdf would add an
HDF5 stack for compression this grid does not need. That writer holds the file in memory until it is closed:
about 105 bytes per point, 0.4 GB at 4 million points. Files are staged next to their place and moved into it
when complete (:class:`StagedFile`), so a failed sweep leaves nothing half-written.
"""

from __future__ import annotations

import contextlib
import itertools
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from ...codegen.atomic import WriteError, staged_temp
from ...codegen.jit import resolve_backend
from ..theory.coefficients import coefficients
from ..theory.solve import solve_arrays

#: Swept axes, in the order of the grid's dimensions and of the CSV columns.
AXES = ("p_over_d", "n_over_d", "lam", "noise_f", "noise_g", "tau")
#: Points solved and written at a time: memory stays bounded whatever the grid's size (about 1 kB per point
#: in flight; a NetCDF file is held by SciPy's writer until it is closed, 105 bytes per point with 12 outputs).
CHUNK_POINTS = 1 << 16


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


def output_names(k: int, taus: np.ndarray) -> list[str]:
    """The output columns of a sweep: those of the τ = 0 system, then those only the τ > 0 system has."""
    from ...codegen.jit import record_names
    from ..theory.solve import system_record

    kinds = sorted({bool(t > 0 and k >= 1) for t in taus})
    return list(dict.fromkeys(n for s in kinds for n in record_names(system_record(k, s, "ridge"), "outputs")))


class GridSweep:
    """The grid of a sweep (one array of values per name of :data:`AXES`) solved box by box
    (:func:`grid_boxes`), so that memory is bounded whatever its size. Counts the points that did not converge
    (``bad``) and those with λ = 0 on the interpolation threshold (``on_threshold``)."""

    def __init__(
        self, axes: dict[str, np.ndarray], k: int, activation: str, teacher: str, alignment: Any, backend: str
    ) -> None:
        self.axes, self.k = axes, k
        self.shape = tuple(len(v) for v in axes.values())
        self.model = dict(
            activation=activation, teacher=teacher, alignment=None if alignment is None else list(alignment)
        )
        self.backend = backend
        self.used = resolve_backend(backend)
        self.names = output_names(k, axes["tau"])
        self.bad = self.on_threshold = 0
        self.affine = coefficients(str(activation))[4:6] == (0.0, 0.0)

    def solve(self, box: tuple[slice, ...], progress: Callable[[int], None]) -> tuple[list[np.ndarray], np.ndarray]:
        """(every output on the box, converged), arrays of the box's shape."""
        mesh = np.meshgrid(*[v[s] for v, s in zip(self.axes.values(), box)], indexing="ij", sparse=True)
        shape = np.broadcast_shapes(*[m.shape for m in mesh])
        grid = dict(zip(AXES, mesh))
        tau = grid.pop("tau")
        result = solve_arrays(self.k, tau, {**grid, **self.model}, backend=self.backend, progress=progress)
        self.used = result.backend
        threshold = int(np.count_nonzero(result.extra["branch"] == "threshold"))
        converged = np.broadcast_to(result.converged, shape)
        self.on_threshold += threshold
        self.bad += int(converged.size - np.count_nonzero(converged)) - threshold
        nan = np.broadcast_to(np.nan, shape)
        return [np.broadcast_to(result.outputs.get(n, nan), shape) for n in self.names], converged

    def threshold_text(self) -> str:
        """The interpolation threshold(s) of λ → 0⁺ for the swept τ values: p = (1 + k)n for every τ > 0
        (p = n for an affine σ, whose gradient rows are spikes)."""
        if self.affine:
            return "p = n (σ is affine: its gradient rows are spikes, which do not count)"
        taus, k = self.axes["tau"], self.k
        parts = []
        if np.any(taus == 0) or k == 0:
            parts.append("p = n for tau = 0" if k else "p = n")
        if np.any(taus > 0) and k:
            parts.append(f"p = (1 + k)n = {1 + k}n for every tau > 0")
        return " and ".join(parts)

    def first_swept(self) -> str:
        """The axis the continuation runs along: the first with more than one value."""
        return AXES[next((i for i, v in enumerate(self.axes.values()) if len(v) > 1), 0)]


def _csv_rows(sweep: GridSweep, box: tuple[slice, ...], outputs: list[np.ndarray], converged: np.ndarray) -> str:
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


def csv_blocks(sweep: GridSweep, progress: Callable[[int], None]) -> Iterator[str]:
    """The grid's CSV text, one block per box (each solved when its block is asked for), the header line
    (the axes, every output, converged) before the first."""
    for i, box in enumerate(grid_boxes(sweep.shape, CHUNK_POINTS)):
        outputs, converged = sweep.solve(box, progress)
        head = ",".join([*AXES, *sweep.names, "converged"]) + "\n" if i == 0 else ""
        yield head + _csv_rows(sweep, box, outputs, converged)


def write_csv(path: str, sweep: GridSweep, progress: Callable[[int], None]) -> None:
    """The grid as a CSV file (:func:`csv_blocks`), staged and moved into place when complete."""
    staged = StagedFile(path)
    try:
        for block in csv_blocks(sweep, progress):
            staged.write(block)
    except BaseException:
        staged.discard()
        raise
    staged.commit()


class StagedFile:
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
            self.fd, self.tmp = staged_temp(self.path)
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


def provenance(sweep: GridSweep, command: str) -> dict[str, str | int | float]:
    """Attributes of a NetCDF sweep: the command line, the model and the versions that produced it."""
    from importlib.metadata import version

    from ...codegen.version import CODEGEN_VERSION

    alignment = sweep.model["alignment"]
    return {
        "title": "sobolev-rf sweep: asymptotic errors of Sobolev training on a grid",
        "command": command,
        "activation": str(sweep.model["activation"]),
        "teacher": str(sweep.model["teacher"]),
        "kappa": ", ".join(f"{v!r}" for v in coefficients(str(sweep.model["activation"]))),
        "mu": ", ".join(f"{v!r}" for v in coefficients(str(sweep.model["teacher"]))),
        "k": sweep.k,
        "alignment": "all ones" if alignment is None else ", ".join(map(repr, alignment)),
        "backend": sweep.used,
        "converged": "1 where the fixed point converged, 0 elsewhere (errors NaN there)",
        "lam_zero": "lam = 0 is the limit λ → 0⁺",
        "sobolev_rf_version": version("sobolev-rf"),
        "codegen_version": CODEGEN_VERSION,
    }


def write_netcdf(
    path: str, sweep: GridSweep, progress: Callable[[int], None], attrs: dict[str, str | int | float]
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
    staged = StagedFile(path)
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
