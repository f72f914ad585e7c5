"""Grids as labelled data: any model parameter an axis, the result an ``xarray.Dataset``.

``solve_grid(params, p_over_d=array, n_over_d=array, ...)`` names its axes after :class:`ModelParams`
fields. The numeric ones (τ, p/d, n/d, λ, Δ_f, Δ_g and, for k = 1, the alignment ϖ₁) broadcast into one
call of the generated kernels (:func:`~.solve.solve_arrays`); σ (``activation``), φ (``teacher``) and k
change the system or its coefficients, so each of their combinations is one more such call. The
Dataset has one dimension per axis, in the order given, with the axis values as coordinates, and one
variable per error (eps_L2, eps_H1, eps_grad, train_loss, train_error_L2), per order parameter and
unknown of the fixed point, plus ``converged``, ``residual`` and ``branch``. Its attributes name the
fixed parameters of the point, the backend and the versions that produced it; every attribute is a
string or a number, so ``ds.to_netcdf()`` keeps all of it.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping
from importlib import metadata
from typing import TYPE_CHECKING, Any

import numpy as np

from ...codegen.version import CODEGEN_VERSION
from ...derive.errors import UserError
from ...derive.params import ModelParams

if TYPE_CHECKING:
    import xarray as xr

#: Axes that broadcast into one kernel call (ModelParams names; ``alignment`` only for k = 1).
NUMERIC_AXES = ("tau", "p_over_d", "n_over_d", "lam", "noise_f", "noise_g")
#: Axes that pick the system (k) or its Hermite coefficients (σ, φ): one kernel call per combination.
CATEGORICAL_AXES = ("activation", "teacher", "k")
AXES = CATEGORICAL_AXES + NUMERIC_AXES + ("alignment",)

#: What each variable holds (its ``description`` attribute; MODEL.md's symbols spelled in ASCII).
DESCRIPTIONS = {
    "eps_L2": "test error E(phi(omega) - f(x))^2",
    "eps_H1": "projected-gradient test error, mean over directions l",
    "eps_grad": "full-gradient test error E|theta0 phi'(omega) - grad f(x)|^2",
    "train_loss": "training loss L(w) (gradient term weighted by tau)",
    "train_error_L2": "training error on function values",
    "m": "overlap m = theta0^T Theta w / sqrt(d)",
    "q_s": "q_s = |Theta w|^2 / d",
    "q_w": "q_w = |w|^2",
    "M_0": "order parameter M of the function row",
    "S_0": "order parameter S of the function row",
    "M_l": "order parameter M of gradient direction l (at alignment varpi_1)",
    "S_l": "order parameter S of gradient direction l (at alignment varpi_1)",
    "converged": "the fixed point converged at this point",
    "residual": "max |u - G(u)| of the fixed point",
    "branch": "ridge (lam > 0), or the branch of the limit lam -> 0+: interpolating, underparameterised, threshold",
}


def versions() -> dict[str, str]:
    """The versions that produced a result (sobolev-rf, its generated code, NumPy, xarray)."""

    def of(name: str) -> str:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            return "unknown"

    return {
        "sobolev_rf_version": of("sobolev-rf"),
        "codegen_version": CODEGEN_VERSION,
        "numpy_version": np.__version__,
        "xarray_version": of("xarray"),
    }


def point_attrs(params: ModelParams, skip: tuple[str, ...] = ()) -> dict[str, Any]:
    """The fields of a model point as netCDF attributes (ϖ as "a1;a2;..."), less those in ``skip`` and those
    that are None (the unused fields of a first-layer step)."""
    out: dict[str, Any] = {}
    for name, value in params.as_dict().items():
        if name in skip or value is None:
            continue
        out[name] = ";".join(f"{a:.17g}" for a in value) if name == "alignment" else value
    return out


def _axis_values(params: ModelParams, name: str, values: Any) -> list[Any]:
    """The validated values of one axis (each checked by :class:`ModelParams` itself)."""
    if isinstance(values, str):
        values = [values]
    array = np.asarray(values, dtype=object)
    if name == "alignment" and array.ndim == 2 and array.shape[1] == 1:
        array = array[:, 0]  # k = 1: one-entry vectors are values of ϖ₁
    if array.ndim != 1 or not array.size:
        raise UserError(
            f"the axis {name} must be a non-empty one-dimensional sequence of values, got shape {array.shape}."
        )
    checked = []
    for value in array.tolist():
        point = params.with_(**{name: (value,) if name == "alignment" else value})
        checked.append(point.as_dict()[name][0] if name == "alignment" else getattr(point, name))
    return checked


def grid_dataset(
    params: ModelParams,
    axes: Mapping[str, Any],
    backend: str = "auto",
    tol: float = 1e-13,
    continuation: bool = True,
    progress: Callable[[int], None] | None = None,
) -> xr.Dataset:
    """Solve ``params`` on the grid spanned by ``axes`` (ModelParams field → 1-D values; a scalar just sets the
    field) and return an ``xarray.Dataset`` (module docstring). Continuation runs along the first numeric axis
    with more than one value (attribute ``continuation_axis``)."""
    import xarray as xr

    from .solve import solve_arrays

    if params.has_step:
        raise UserError(
            "solve_grid solves random-features points; a point with a first-layer step is solved one at a time "
            "by solve()."
        )
    unknown = [name for name in axes if name not in AXES]
    if unknown:
        raise UserError(f"unknown axis {unknown[0]!r}; axes are model parameters: {', '.join(AXES)}.")
    if "k" in axes and "alignment" in axes:
        raise UserError("k and alignment cannot both be given: the alignment has k entries.")

    def is_axis(name: str, value: Any) -> bool:
        """A sequence of values (the alignment: only for k = 1, where each value is ϖ₁)."""
        return np.ndim(value) > 0 and (name != "alignment" or params.k == 1)

    fixed = {name: v for name, v in axes.items() if not is_axis(name, v)}
    if "alignment" in fixed and np.ndim(fixed["alignment"]) == 0:
        fixed["alignment"] = (fixed["alignment"],)
    if fixed:
        params = params.with_(**fixed)
    dims = [name for name in axes if name not in fixed]
    values = {name: _axis_values(params, name, axes[name]) for name in dims}
    categorical = [name for name in dims if name in CATEGORICAL_AXES]
    numeric = [name for name in dims if name not in CATEGORICAL_AXES]
    numeric_shape = tuple(len(values[name]) for name in numeric)
    shape = tuple(len(values[name]) for name in categorical) + numeric_shape

    def along(name: str) -> np.ndarray:
        """The values of a numeric axis, shaped to broadcast over the numeric dimensions."""
        where = [1] * len(numeric)
        where[numeric.index(name)] = -1
        return np.asarray(values[name], dtype=float).reshape(where)

    data: dict[str, np.ndarray] = {}
    used = backend
    systems: set[str] = set()
    for index in itertools.product(*(range(len(values[name])) for name in categorical)):
        point = params.with_(**{name: values[name][i] for name, i in zip(categorical, index)})
        mapping: dict[str, Any] = point.as_dict()
        for name in numeric:
            mapping[name] = along(name)
        if "alignment" in numeric:
            mapping["alignment"] = [mapping["alignment"]]
        tau = mapping.pop("tau")
        grid = solve_arrays(
            point.k, tau, mapping, backend=backend, tol=tol, continuation=continuation, progress=progress
        )
        used = grid.backend
        systems.update(str(s) for s in np.unique(grid.extra["system"]) if s)
        fields: dict[str, np.ndarray] = {
            **grid.outputs,
            **grid.unknowns,
            "converged": grid.converged,
            "residual": grid.residual,
            "branch": grid.extra["branch"],
        }
        for name, array in fields.items():
            if name not in data:
                kind = array.dtype if array.dtype.kind in "bU" else np.dtype(float)
                data[name] = np.full(shape, False if kind.kind == "b" else "" if kind.kind == "U" else np.nan, kind)
                if kind.kind == "U":
                    data[name] = data[name].astype(object)
            data[name][index] = np.broadcast_to(array, numeric_shape)

    order = categorical + numeric
    coords: dict[str, Any] = {name: values[name] for name in dims}
    variables = {}
    for name, array in data.items():
        if array.dtype == object:
            array = array.astype(str)
        var = xr.Variable(
            order, array, attrs={"description": DESCRIPTIONS.get(name, f"unknown {name} of the fixed point")}
        )
        variables[name] = var.transpose(*dims)
    attrs: dict[str, Any] = {
        "title": "sobolev-rf: asymptotic errors on a grid (solve_grid)",
        "axes": ";".join(dims),
        **point_attrs(params, skip=tuple(dims)),
        "backend": used,
        "tol": tol,
        "continuation_axis": next((n for n in numeric if len(values[n]) > 1), "") if continuation else "",
        "systems": ";".join(sorted(systems)),
        **versions(),
    }
    return xr.Dataset(variables, coords=coords, attrs=attrs)
