"""``sobolev-rf sweep``: the grid solved and written box by box (bounded memory), CSV and NetCDF output."""

from __future__ import annotations

import csv
import io
import math

import numpy as np
import pytest

from sobolev_rf.numeric.cli import main
from sobolev_rf.numeric.reports import grid

GRID = ["--p-over-d", "0.5:4:6", "--n-over-d", "log:0.5:2:5", "--tau", "0:1:2", "--lam", "0.01"]


def _rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


@pytest.mark.parametrize(
    ("shape", "budget", "expected"),
    [
        ((6, 5, 2), 100, (0, 6)),
        ((6, 5, 2), 25, (0, 2)),
        ((6, 5, 2), 7, (1, 3)),
        ((6, 5, 2), 1, (2, 1)),
        ((3,), 2, (0, 2)),
    ],
)
def test_boxes_cover_the_grid_in_order_within_the_budget(shape: tuple, budget: int, expected: tuple) -> None:
    assert grid.chunk_layout(shape, budget) == expected
    flat = np.arange(math.prod(shape)).reshape(shape)
    boxes = list(grid.grid_boxes(shape, budget))
    assert all(flat[box].size <= budget for box in boxes)
    assert np.array_equal(np.concatenate([flat[box].ravel() for box in boxes]), flat.ravel())


def test_a_large_grid_is_solved_and_written_in_chunks(monkeypatch, capsys, tmp_path) -> None:
    """With a chunk of 7 points, no solve sees more than 7 points and the CSV equals the one-chunk CSV."""
    assert main(["sweep", *GRID]) == 0
    whole = _rows(capsys.readouterr().out)
    sizes: list[int] = []
    solve_arrays = grid.solve_arrays

    def spy(k, tau, params, **kwargs):
        sizes.append(int(np.broadcast(tau, *(params[a] for a in grid.AXES[:-1])).size))  # the box's points
        return solve_arrays(k, tau, params, **kwargs)

    monkeypatch.setattr(grid, "solve_arrays", spy)
    monkeypatch.setattr(grid, "CHUNK_POINTS", 7)
    out = tmp_path / "grid.csv"
    assert main(["sweep", *GRID, "--out", str(out)]) == 0
    assert len(sizes) > 1 and max(sizes) <= 7 and sum(sizes) == 60
    chunked = _rows(out.read_text())
    assert [list(r)[:6] for r in chunked[:1]] == [list(grid.AXES)] and len(chunked) == len(whole) == 60
    for a, b in zip(whole, chunked):
        assert a.keys() == b.keys() and a["converged"] == b["converged"] == "1"
        for key in a:
            assert float(a[key]) == pytest.approx(float(b[key]), rel=1e-10, nan_ok=True), key
    assert not list(tmp_path.glob(".*tmp"))  # the temporary file was moved into place


def test_netcdf_output_has_the_axes_as_coordinates_and_the_command(monkeypatch, capsys, tmp_path) -> None:
    import xarray as xr

    assert main(["sweep", *GRID]) == 0
    rows = _rows(capsys.readouterr().out)
    monkeypatch.setattr(grid, "CHUNK_POINTS", 7)  # several boxes along two axes
    path = tmp_path / "grid.nc"
    assert main(["sweep", *GRID, "--out", str(path)]) == 0
    assert "NetCDF" in capsys.readouterr().err
    with xr.open_dataset(path) as ds:
        assert tuple(ds["eps_L2"].dims) == grid.AXES
        assert np.allclose(ds["p_over_d"], np.linspace(0.5, 4, 6)) and np.allclose(
            ds["n_over_d"], np.geomspace(0.5, 2, 5)
        )
        assert ds.attrs["command"].startswith("sobolev-rf ") and ds.attrs["activation"] == "relu"
        assert "codegen_version" in ds.attrs and int(ds.attrs["k"]) == 1
        assert int(ds["converged"].sum()) == 60
        flat = {name: ds[name].values.ravel() for name in ("eps_L2", "eps_H1", "S_l")}
    for i, row in enumerate(rows):  # the same points in the same C order as the CSV
        for name, values in flat.items():
            assert values[i] == pytest.approx(float(row[name]), rel=1e-10, nan_ok=True)


def test_unwritable_out_is_one_line_and_leaves_nothing(capsys, tmp_path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    for name in ("grid.csv", "grid.nc"):
        assert main(["sweep", "--p-over-d", "1:2:2", "--out", str(blocker / name)]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "cannot write" in err[0], err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]
