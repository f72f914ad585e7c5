"""Results as labelled data: solve_grid with named axes → xarray.Dataset, simulations with a seed dimension,
and their round trip through netCDF."""

from __future__ import annotations

import math

import matplotlib
import numpy as np
import pytest
import xarray as xr

from sobolev_rf.derive.errors import UserError
from sobolev_rf.derive.params import ModelParams, ParameterError
from sobolev_rf.numeric import simulate, solve, solve_grid
from sobolev_rf.numeric.theory.solve import GridResult

matplotlib.use("Agg")


def test_named_axes_give_a_dataset_equal_to_point_solves(tmp_path) -> None:
    base = ModelParams(k=2, lam=1e-2, noise_g=0.1)
    p_over_d, n_over_d = np.geomspace(0.3, 6.0, 7), [0.5, 1.0, 2.0]
    ds = solve_grid(base, p_over_d=p_over_d, n_over_d=n_over_d)
    assert isinstance(ds, xr.Dataset)
    assert ds.eps_L2.dims == ("p_over_d", "n_over_d") and ds.eps_L2.shape == (7, 3)
    np.testing.assert_array_equal(ds.p_over_d, p_over_d)
    np.testing.assert_array_equal(ds.n_over_d, n_over_d)
    assert bool(ds.converged.all()) and set(np.unique(ds.branch)) == {"ridge"}
    for i, j in [(0, 0), (3, 1), (6, 2)]:
        point = solve(base.with_(p_over_d=p_over_d[i], n_over_d=n_over_d[j]))
        cell = ds.isel(p_over_d=i, n_over_d=j)
        for name in ("eps_L2", "eps_H1", "eps_grad", "train_loss", "m", "q_s", "q_w"):
            expected = getattr(point, name, None)
            expected = point.order[name] if expected is None else expected
            assert math.isclose(float(cell[name]), expected, rel_tol=1e-9), name
    # the fixed parameters and the versions are attributes; the axes are not
    assert ds.attrs["k"] == 2 and ds.attrs["noise_g"] == 0.1 and ds.attrs["alignment"] == "1;1"
    assert "p_over_d" not in ds.attrs and ds.attrs["axes"] == "p_over_d;n_over_d"
    assert ds.attrs["sobolev_rf_version"] and ds.attrs["codegen_version"].startswith("sobolev-rf-codegen")
    # the same numbers as the array form
    arrays = solve_grid(2, 1, dict(p_over_d=p_over_d[:, None], n_over_d=np.array(n_over_d), lam=1e-2, noise_g=0.1))
    assert isinstance(arrays, GridResult)
    np.testing.assert_array_equal(arrays.outputs["eps_L2"], ds.eps_L2.values)
    # netCDF keeps everything, with the default engine
    path = tmp_path / "grid.nc"
    ds.to_netcdf(path)
    back = xr.load_dataset(path)
    xr.testing.assert_allclose(back.drop_vars("branch"), ds.drop_vars("branch"))
    assert (back.branch.values == ds.branch.values).all() and back.converged.dtype == bool
    assert {k: str(v) for k, v in back.attrs.items()} == {k: str(v) for k, v in ds.attrs.items()}
    assert back.eps_L2.attrs["description"] == ds.eps_L2.attrs["description"]
    ds.eps_L2.plot()
    ds.eps_L2.sel(n_over_d=1.0).plot()
    matplotlib.pyplot.close("all")


def test_categorical_axes_and_the_ridgeless_branches() -> None:
    base = ModelParams(n_over_d=1.0)
    ds = solve_grid(base, lam=[0.0, 1e-2], activation=["relu", "tanh"], p_over_d=[1.0, 2.5], k=[1, 2])
    assert ds.eps_L2.dims == ("lam", "activation", "p_over_d", "k") and ds.attrs["continuation_axis"] == "lam"
    assert list(ds.activation.values) == ["relu", "tanh"] and list(ds.k.values) == [1, 2]
    # λ → 0⁺: p = 2.5n is above the threshold (1 + k)n for k = 1 and below it for k = 2
    assert ds.branch.sel(lam=0.0, p_over_d=2.5, k=1).values.tolist() == ["interpolating"] * 2
    assert ds.branch.sel(lam=0.0, p_over_d=2.5, k=2).values.tolist() == ["underparameterised"] * 2
    assert (ds.branch.sel(lam=1e-2) == "ridge").all()
    cell = ds.sel(lam=0.0, activation="tanh", p_over_d=2.5, k=2)
    point = solve(ModelParams(activation="tanh", k=2, lam=0.0, p_over_d=2.5, n_over_d=1.0))
    assert math.isclose(float(cell.eps_L2), point.eps_L2, rel_tol=1e-9) and point.branch == "underparameterised"
    assert solve_grid(base, k=[1, 2], p_over_d=[1.0, 3.0]).attrs["continuation_axis"] == "p_over_d"
    # a scalar sets the field, an alignment axis for k = 1 is ϖ₁
    one = solve_grid(base, tau=0.5, alignment=[0.0, 2.0])
    assert one.eps_L2.dims == ("alignment",) and one.attrs["tau"] == 0.5
    direct = solve(ModelParams(tau=0.5, alignment=(2.0,)))
    assert math.isclose(float(one.eps_H1.sel(alignment=2.0)), direct.eps_H1, rel_tol=1e-9)


def test_bad_axes_are_refused_in_one_line() -> None:
    base = ModelParams()
    with pytest.raises(UserError, match="unknown axis 'p'"):
        solve_grid(base, p=[1, 2])
    with pytest.raises(UserError, match="one-dimensional"):
        solve_grid(base, p_over_d=np.ones((2, 2)))
    with pytest.raises(ParameterError, match="p_over_d must be > 0"):
        solve_grid(base, p_over_d=[1.0, -1.0])
    with pytest.raises(UserError, match="by name"):
        solve_grid(base, [1.0, 2.0])
    with pytest.raises(UserError, match="k and alignment"):
        solve_grid(base, k=[1, 2], alignment=[0.5, 1.0])
    with pytest.raises(UserError, match="first-layer step"):
        solve_grid(ModelParams(step="l2", tau=0), p_over_d=[1.0, 2.0])
    # a ModelParams is one point, and says where arrays go
    with pytest.raises(ParameterError, match=r"solve_grid\(params, p_over_d=values\)"):
        ModelParams(p_over_d=np.array([1, 2, 3]))


def test_simulation_dataset_has_a_seed_dimension(tmp_path) -> None:
    result = simulate(ModelParams(k=2, p_over_d=1.5), d=40, seeds=[3, 5, 8])
    ds = result.to_dataset()
    assert ds.eps_L2.dims == ("seed",) and list(ds.seed.values) == [3, 5, 8]
    assert ds.m_l.dims == ("seed", "direction") and ds.m_l.shape == (3, 2)
    assert math.isclose(float(ds.eps_L2.mean("seed")), result.mean["eps_L2"], rel_tol=1e-12)
    np.testing.assert_allclose(ds.q_w_l.mean("seed"), result.mean["q_w_l"], rtol=1e-12)
    assert ds.attrs["d"] == 40 and ds.attrs["p"] == result.p and ds.attrs["subspace"] == "random"
    ds.to_netcdf(tmp_path / "sim.nc")
    back = xr.load_dataset(tmp_path / "sim.nc")
    xr.testing.assert_allclose(back, ds)
    assert back.attrs["p_over_d"] == 1.5 and back.attrs["alignment"] == "1;1"
    html = result._repr_html_()
    assert "d = 40" in html and "eps_L2" in html and html.count("<tr>") == 1 + len(result.mean)
