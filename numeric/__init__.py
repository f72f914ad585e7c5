"""Numeric layer, and the public Python API of sobolev-rf in one import::

    from sobolev_rf.numeric import ModelParams, solve, solve_grid, simulate, derive, verify, pencil, hermite

* ``solve(params)`` / ``solve_path(points)``: the d → ∞ theory (generated kernels);
* ``solve_grid(params, p_over_d=array, ...)``: the theory on a grid with named axes, as an ``xarray.Dataset``
  (``solve_grid(k, tau, arrays)``: the same on broadcast arrays, as arrays);
* ``simulate(params, d, seeds)``: the exact finite-size simulation (the ground truth);
* ``derive(k, tau, branch)``: the SymPy-derived fixed-point ``System``;
* ``verify(params, digits)``: the double-precision solution against an mpmath solve at ``digits`` digits;
* ``pencil(expr, shapes)``: the linear pencil of a rational matrix expression (SymPy, or a string with its
  matrices declared, ``derive.pencil.pencil``);
* ``spike_theory(params)`` / ``simulate_spike(params, d, seeds)``: the spike of the one-step model's first-layer
  step (ONESTEP.md) in closed form (``derive.spike``) and measured by the simulator alone
  (``numeric.simulation.onestep``); ``simulate`` simulates both phases of a ``ModelParams`` with a ``step``.
* ``hermite(activation, digits)``: the Hermite coefficients κ₀, κ₁, κ_*, κ₀′, κ₁′, κ_*′, c_σ (exact forms and values).

In a notebook a ``System`` and Hermite coefficients show as LaTeX, a solve, verify or simulation result as a
table.

Names are imported on first use, so ``import sobolev_rf.numeric`` stays cheap (the command line needs that).
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

#: Public name → (module, attribute).
_EXPORTS = {
    "ModelParams": ("..derive.params", "ModelParams"),
    "solve": (".theory.solve", "solve"),
    "solve_path": (".theory.solve", "solve_path"),
    "solve_grid": (".theory.solve", "solve_grid"),
    "simulate": (".simulation.exact", "simulate"),
    "derive": ("..derive.saddle", "derive_system"),
    "verify": (".theory.verify", "verify_point"),
    "pencil": ("..derive.pencil", "pencil"),
    "spike_theory": ("..derive.spike", "spike_theory"),
    "simulate_spike": (".simulation.onestep", "simulate_spike"),
    "hermite": ("..derive.hermite", "hermite"),
}
__all__ = list(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module, attribute = _EXPORTS[name]
    value = getattr(import_module(module, __name__), attribute)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
