"""Grids of model points solved by generated code (NumPy or compiled C) instead of point by point.

:func:`solve_grid` derives the fixed point of ``(k, τ)`` symbolically (for λ > 0 and for both branches
of λ → 0⁺), generates (or finds in the cache) the NumPy module or the C shared library of each system,
substitutes the Hermite coefficients of σ and φ and broadcasts the remaining parameters, and solves every
point in vectorised batches, with continuation along the grid for the points that need it.
"""
from __future__ import annotations

import hashlib
import sys
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import numpy as np

from sobolev_rf.codegen import cache
from sobolev_rf.codegen.c_printer import CModule, compile_shared, find_compiler, generate_c_source
from sobolev_rf.codegen.numpy_printer import CODEGEN_VERSION, generate_numpy_source, load_numpy_module
from sobolev_rf.derive.errors import UserError
from sobolev_rf.derive.saddle import BRANCHES, derive_system
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
    if np.any(np.asarray(values[_LAM]) < 0):
        raise UserError("lam must be >= 0 (0 means the limit λ → 0⁺).")
    return values


#: Positions of λ, ψ = p/d and φ = n/d among the System's parameters.
_LAM, _PSI, _PHI = 14, 15, 16


class _Batch:
    """One branch's generated solver on rows of points: ``(rows (m, P), u0 (m, N)) → (u, outputs, ok, norm)``."""

    def __init__(self, system: System, backend: str, ridge: "_Batch | None" = None) -> None:
        self.system = system
        self.backend = backend
        self.ridge = ridge            # the λ > 0 solver that provides cold starts of a λ → 0⁺ branch
        self.module = _numpy_module(system) if backend == "numpy" else _c_module(system)
        self.names = list(system.outputs)

    def __call__(self, rows: np.ndarray, u0: np.ndarray, tol: float
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        if self.backend == "c":
            u, out, ok, norm = self.module.solve(rows, u0=u0, tol=tol)
        else:
            # a parameter constant over the rows stays a scalar, so the subexpressions it alone
            # determines (all the Hermite-coefficient algebra) are computed once, not per point;
            # ψ stays an array so that the batch keeps its length
            theta = [col[0] if j != _PSI and np.all(col == col[0]) else col for j, col in enumerate(rows.T)]
            u, ok, norm = self.module.solve(theta, u0=u0.T, tol=tol)
            values = self.module.outputs(u, theta)
            out = np.stack([np.broadcast_to(values[n], ok.shape) for n in self.names], axis=-1)
            u = u.T
        # the unknowns are non-negative (V_r, Ω_a, β_r) and 0 < α < 1: anything else is a spurious root
        ok = ok & np.all(u >= 0, axis=1)
        if "alpha" in map(str, self.system.unknowns):
            ok &= (u[:, 0] > 0) & (u[:, 0] < 1)
        return u, out, ok, norm

    def solve_cold(self, rows: np.ndarray, tol: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Solve from no previous solution. λ > 0: from 0.5. λ → 0⁺: the ridgeless equations are not
        contractive far from their root (a plain start runs into spurious roots with α < 0), so the λ > 0
        solution is followed down :data:`LAMBDA_PATH`, each step warm-started from the last, and mapped to
        the scaled variables L = λ + g_0, α = λ/L, β_r = g_r/L, Ω̃_a = LΩ_a after every decade from 10⁻⁴
        on; a point stops at the first decade whose mapped start converges."""
        if self.ridge is None:
            return self(rows, np.full((len(rows), len(self.system.unknowns)), 0.5), tol)
        names = [str(x) for x in self.ridge.system.unknowns]
        sobolev = "V_1" in names
        interpolating = self.system.name.endswith("_interpolating")
        n = len(rows)
        u = np.full((n, len(names)), 0.5)
        result = (np.full((n, len(self.system.unknowns)), np.nan), np.full((n, len(self.names)), np.nan),
                  np.zeros(n, dtype=bool), np.full(n, np.nan))
        todo = np.arange(n)
        for lam in LAMBDA_PATH:
            trial = rows[todo].copy()
            trial[:, _LAM] = lam
            u_new, _, good, _ = self.ridge(trial, u[todo], tol)
            u[todo] = np.where(good[:, None], u_new, u[todo])
            if lam > 1e-4:
                continue
            g0 = 1.0 / (1.0 + u[todo, 0])
            scale = lam + g0
            first = ([lam / scale] if interpolating else []) + ([1.0 / (1.0 + u[todo, 1]) / scale] if sobolev else [])
            omegas = u[todo, 2 if sobolev else 1:] * scale[:, None]
            start = np.column_stack(first + list(omegas.T)) if first else omegas
            attempt = self(rows[todo], np.where(np.isfinite(start), start, 0.5), tol)
            for whole, part in zip(result, attempt):
                whole[todo] = part
            todo = todo[~attempt[2]]
            if not len(todo):
                break
        return result


#: λ values along which the cold start of a λ → 0⁺ point follows the λ > 0 solution.
LAMBDA_PATH = tuple(10.0 ** -e for e in range(1, 9))


#: Points per call of a generated solver in the first pass (bounds memory; one progress step each).
CHUNK = 4096


def solve_grid(k: int, tau: int, params_arrays: Mapping[str, Any], backend: str = "auto", tol: float = 1e-13,
               continuation: bool = True, progress: Callable[[int], None] | None = None) -> GridResult:
    """Solve the fixed point of ``(k, τ)`` on every point of the broadcast parameter arrays.

    ``params_arrays`` may hold ``activation`` and ``teacher`` (texts), ``p_over_d``, ``n_over_d``,
    ``lam``, ``noise_f``, ``noise_g`` (scalars or arrays) and ``alignment`` (k scalars or arrays).
    λ = 0 is the limit λ → 0⁺, solved by the generated system of its branch (interpolating when
    p > (1 + τk)n, underparameterised when p < (1 + τk)n; at p = (1 + τk)n the errors are infinite and
    the point is reported as not converged).

    First every point is solved from its cold start (:meth:`_Batch.solve_cold`), vectorised in chunks of
    :data:`CHUNK` points, ``progress(m)`` being called after each chunk of m points. Then, with
    ``continuation``, points that did not converge are re-solved from the solution of a converged
    neighbour along the grid's first axis of length > 1 (same branch), in rounds that spread the solved
    region until no point gains (``progress(0)`` after each round).
    """
    ridge = derive_system(k, tau)
    theta = parameter_arrays(ridge, k, params_arrays)
    shape = np.broadcast_shapes(*[np.shape(t) for t in theta])
    used = resolve_backend(backend)
    grid = np.stack([np.broadcast_to(np.asarray(t, dtype=float), shape) for t in theta], axis=-1)
    axis = next((i for i, n in enumerate(shape) if n > 1), 0) if shape else 0
    # layout (points along the continuation axis, the rest): neighbours are rows i ± 1 of the same column
    lines = np.moveaxis(grid, axis, 0).reshape(shape[axis] if shape else 1, -1, len(theta))
    lam, psi, phi = lines[..., _LAM], lines[..., _PSI], lines[..., _PHI]
    threshold = (1 + tau * k) * phi
    branch = np.where(lam > 0, 0, np.where(psi > threshold, 1, np.where(psi < threshold, 2, -1)))
    ridge_solver = _Batch(ridge, used)
    solvers = {int(b): ridge_solver if b == 0 else _Batch(derive_system(k, tau, BRANCHES[b]), used, ridge_solver)
               for b in np.unique(branch) if b >= 0}
    u_names = list(dict.fromkeys(str(s) for b in sorted(solvers) for s in solvers[b].system.unknowns))
    o_names = list(ridge.outputs)
    rows = lines.reshape(-1, len(theta))
    flat_branch = branch.ravel()
    U = np.full((len(rows), len(u_names)), np.nan)
    O = np.full((len(rows), len(o_names)), np.nan)
    ok = np.zeros(len(rows), dtype=bool)
    norm = np.full(len(rows), np.nan)

    def store(b: int, idx: np.ndarray, result: tuple[np.ndarray, ...]) -> None:
        cols = [u_names.index(str(x)) for x in solvers[b].system.unknowns]
        u, out, good, res = result
        U[idx[:, None], cols] = u
        O[idx], ok[idx], norm[idx] = out, good, res

    for b, solver in solvers.items():
        members = np.flatnonzero(flat_branch == b)
        for start in range(0, len(members), CHUNK):
            idx = members[start:start + CHUNK]
            store(b, idx, solver.solve_cold(rows[idx], tol))
            if progress is not None:
                progress(len(idx))
    if continuation and lines.shape[0] > 1:
        width = lines.shape[1]
        while True:
            gained = 0
            for step in (-width, width):            # the neighbour before, then after, along the axis
                todo = np.flatnonzero(~ok & (flat_branch >= 0))
                src = todo + step
                inside = (src >= 0) & (src < len(rows))
                todo, src = todo[inside], src[inside]
                usable = ok[src] & (flat_branch[src] == flat_branch[todo])
                todo, src = todo[usable], src[usable]
                for b, solver in solvers.items():
                    mine = flat_branch[todo] == b
                    if not mine.any():
                        continue
                    idx, from_idx = todo[mine], src[mine]
                    cols = [u_names.index(str(x)) for x in solver.system.unknowns]
                    result = solver(rows[idx], U[from_idx][:, cols], tol)
                    keep = result[2]
                    store(b, idx[keep], tuple(r[keep] for r in result))
                    gained += int(keep.sum())
            if progress is not None:
                progress(0)
            if not gained:
                break

    def unflatten(a: np.ndarray) -> np.ndarray:
        """(points along the axis, the rest) back to the grid's shape."""
        if not shape:
            return a.reshape(shape)
        moved = tuple(shape[j] for j in [axis] + [j for j in range(len(shape)) if j != axis])
        return np.moveaxis(a.reshape(moved), 0, axis)

    return GridResult(used, {n: unflatten(O[:, j]) for j, n in enumerate(o_names)},
                      {n: unflatten(U[:, j]) for j, n in enumerate(u_names)}, unflatten(ok), unflatten(norm),
                      extra={"branch": unflatten(np.array(BRANCHES + ("threshold",))[flat_branch]),
                             "continuation_axis": axis})
