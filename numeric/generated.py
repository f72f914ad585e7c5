"""Grids of model points solved by generated code (NumPy or compiled C) instead of point by point.

:func:`solve_grid` derives the fixed point of ``(k, τ)`` symbolically, generates (or finds in the
cache) the NumPy module or the C shared library of that system, substitutes the Hermite
coefficients of σ and φ and broadcasts the remaining parameters, and solves every point at once.
"""
from __future__ import annotations

import hashlib
import sys
import warnings
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np

from sobolev_rf.codegen import cache
from sobolev_rf.codegen.c_printer import CModule, compile_shared, find_compiler, generate_c_source
from sobolev_rf.codegen.numpy_printer import CODEGEN_VERSION, generate_numpy_source, load_numpy_module
from sobolev_rf.derive.errors import UserError
from sobolev_rf.derive.saddle import derive_system
from sobolev_rf.derive.system import System
from sobolev_rf.numeric.asymptotics import coefficients

BACKENDS = ("auto", "numpy", "c")
#: Grid parameters (besides σ, φ and ϖ) in the order of the System's parameters after the coefficients.
GRID_PARAMETERS = ("lam", "p_over_d", "n_over_d", "noise_f", "noise_g")


@dataclass
class GridResult:
    """Outputs and unknowns on the grid (arrays of the broadcast shape) and per-point diagnostics."""

    backend: str
    outputs: dict[str, np.ndarray]
    unknowns: dict[str, np.ndarray]
    converged: np.ndarray
    residual: np.ndarray
    extra: dict[str, Any] = field(default_factory=dict)


#: Modules loaded in this process, by the sha256 of their (validated) artifact.
_LOADED: dict[str, Any] = {}


def _numpy_module(system: System) -> Any:
    key = cache.artifact_key(system.fingerprint(), CODEGEN_VERSION, "numpy")
    path = cache.get_artifact(cache.cache_dir(), key, "py", "py", lambda: generate_numpy_source(system))
    source = path.read_bytes()
    digest = hashlib.sha256(source).hexdigest()
    if digest not in _LOADED:
        _LOADED[digest] = load_numpy_module(source.decode(), f"sobolev_rf_generated_{key[:16]}")
    return _LOADED[digest]


def _c_module(system: System) -> CModule:
    key = cache.artifact_key(system.fingerprint(), CODEGEN_VERSION, "c")
    path = cache.get_artifact(cache.cache_dir(), key, "c", "so", lambda: generate_c_source(system), compile_shared)
    digest = cache.file_hash(path)
    if digest not in _LOADED:
        _LOADED[digest] = CModule(path, len(system.unknowns), len(system.parameters), list(system.outputs))
    return _LOADED[digest]


def resolve_backend(backend: str) -> str:
    """``auto`` → ``c`` when a C compiler exists, else ``numpy`` (``c`` without one warns and uses NumPy)."""
    if backend not in BACKENDS:
        raise UserError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}.")
    if backend == "numpy":
        return "numpy"
    if find_compiler() is None:
        if backend == "c":
            print("sobolev-rf: warning: no C compiler found, using the NumPy backend", file=sys.stderr)
        return "numpy"
    return "c"


def parameter_arrays(system: System, k: int, params: Mapping[str, Any]) -> list[Any]:
    """Values (scalars or broadcastable arrays) for ``system.parameters`` from a parameter mapping."""
    alignment = params.get("alignment")
    align = [1.0] * k if alignment is None else list(alignment)
    if len(align) != k:
        raise UserError(f"alignment needs k = {k} entries, got {len(align)}.")
    defaults = {"lam": 1e-3, "p_over_d": 2.0, "n_over_d": 1.0, "noise_f": 0.0, "noise_g": 0.0}
    values = [*coefficients(str(params.get("activation", "relu"))), *coefficients(str(params.get("teacher", "tanh")))]
    values += [np.asarray(params.get(name, defaults[name]), dtype=float) for name in GRID_PARAMETERS]
    values += [np.asarray(a, dtype=float) for a in align]
    if len(values) != len(system.parameters):
        raise UserError(f"system {system.name} expects {len(system.parameters)} parameters, got {len(values)}.")
    if np.any(np.asarray(values[14]) <= 0):
        raise UserError("lam must be > 0 for the generated solver.")
    return values


def solve_grid(k: int, tau: int, params_arrays: Mapping[str, Any], backend: str = "auto",
               tol: float = 1e-13) -> GridResult:
    """Solve the fixed point of ``(k, τ)`` on every point of the broadcast parameter arrays.

    ``params_arrays`` may hold ``activation`` and ``teacher`` (texts), ``p_over_d``, ``n_over_d``,
    ``lam``, ``noise_f``, ``noise_g`` (scalars or arrays) and ``alignment`` (k scalars or arrays).
    """
    system = derive_system(k, tau)
    theta = parameter_arrays(system, k, params_arrays)
    shape = np.broadcast_shapes(*[np.shape(t) for t in theta])
    used = resolve_backend(backend)
    u_names, o_names = [str(s) for s in system.unknowns], list(system.outputs)
    if used == "numpy":
        module = _numpy_module(system)
        u, converged, norm = module.solve(theta, tol=tol)
        outputs = module.outputs(u, theta)
        return GridResult("numpy", {n: np.asarray(outputs[n]) for n in o_names},
                          dict(zip(u_names, u)), np.asarray(converged), np.asarray(norm))
    module = _c_module(system)
    rows = np.stack([np.broadcast_to(t, shape) for t in theta], axis=-1).reshape(-1, len(theta))
    u, out, converged, norm = module.solve(rows, tol=tol)
    return GridResult("c", {n: out[:, i].reshape(shape) for i, n in enumerate(o_names)},
                      {n: u[:, i].reshape(shape) for i, n in enumerate(u_names)},
                      converged.reshape(shape), norm.reshape(shape))


def load_backend(system: System, backend: str) -> Any:
    """The generated NumPy module or the compiled :class:`CModule` of ``system`` (cached)."""
    return _numpy_module(system) if resolve_backend(backend) == "numpy" else _c_module(system)


def warn_if_unconverged(result: GridResult, labels: Sequence[str] = ()) -> None:
    """A warning naming how many grid points did not converge."""
    bad = int(np.size(result.converged) - np.count_nonzero(result.converged))
    if bad:
        warnings.warn(f"{bad} of {np.size(result.converged)} points did not converge {' '.join(labels)}".strip())
