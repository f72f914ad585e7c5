"""The theory of model points: one point, a path or a grid, all through the generated kernels.

Every number comes from the derived :class:`~sobolev_rf.derive.system.System` of (k, τ = 0 or τ > 0,
branch), compiled by :mod:`sobolev_rf.codegen.jit` (C when a compiler exists, NumPy otherwise; both
cached on disk, so a warm call imports neither SymPy nor SciPy). A point picks its system by its own
values: τ = 0 or τ > 0 (with k ≥ 1), and λ > 0 ("ridge") or, at λ = 0, the branch of the limit λ → 0⁺
on its side of the interpolation threshold p = r·n, r = 1 + k training rows per sample for τ > 0 and
r = 1 for τ = 0 ("interpolating" above, "underparameterised" below; on it the errors are infinite).

:func:`solve_arrays` solves every point of broadcast parameter arrays: a vectorised cold pass in
chunks, then continuation from converged neighbours along the first swept axis. :func:`solve_grid` is
the same with named axes, ``solve_grid(params, p_over_d=array, ...)``, returning an ``xarray.Dataset``
(:mod:`.dataset`), or, called as ``solve_grid(k, tau, arrays)``, exactly :func:`solve_arrays`. :func:`solve` is the
same code on one point (optionally warm-started from a neighbour's :class:`TheoryResult`), and
:func:`solve_path` chains such warm starts along a sweep.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, overload

import numpy as np

from ...codegen import jit
from ...derive.errors import UserError
from ...derive.params import ModelParams
from .coefficients import coefficients

if TYPE_CHECKING:
    import xarray as xr

BACKENDS = jit.BACKENDS
BRANCHES = ("ridge", "interpolating", "underparameterised")
#: Every parameter a derived system may take, in the column order of a grid; each system takes a subset.
COLUMNS = (
    "kappa0",
    "kappa1",
    "kappa_s",
    "kappa0p",
    "kappa1p",
    "kappa_sp",
    "c_sigma",
    "mu0",
    "mu1",
    "mu_s",
    "mu0p",
    "mu1p",
    "mu_sp",
    "c_phi",
    "lam",
    "psi",
    "n_d",
    "Delta_f",
    "Delta_g",
    "tau",
    "varpi2",
    "varpi_l",
)
#: The model parameters (ModelParams names) behind the system parameters that are not coefficients.
_FROM_MODEL = {"lam": "lam", "psi": "p_over_d", "n_d": "n_over_d", "Delta_f": "noise_f", "Delta_g": "noise_g"}
_DEFAULTS = {"lam": 1e-3, "p_over_d": 4.0, "n_over_d": 1.0, "noise_f": 0.0, "noise_g": 0.0}
#: λ values along which the cold start of a λ → 0⁺ point follows the λ > 0 solution (down to 1e-12: for a small τ
#: the λ > 0 solution reaches its limit only for λ ≪ τ, e.g. τ = 1e-3 at p/d = 1.5, n/d = 1).
LAMBDA_PATH = tuple(10.0**-e for e in range(1, 13))
#: Points per call of a kernel in the cold pass (bounds memory; one progress step each).
CHUNK = 4096
#: The reported errors.
ERRORS = ("eps_L2", "eps_H1", "eps_grad", "train_loss", "train_error_L2")


#: What a point of the one-step model (ONESTEP.md: ``step`` l2 or sobolev) gets from the theory for now.
NO_STEP_THEORY = (
    "the one-step model (a first-layer step before the readout) is not yet supported by the theory; "
    "simulate it with `sobolev-rf simulate --step ...` or simulate()."
)


class SolverError(UserError):
    """The fixed point did not converge, or the point has infinite error; the message says which."""


@dataclass
class GridResult:
    """Outputs and unknowns on the grid (arrays of the broadcast shape) and per-point diagnostics."""

    backend: str
    outputs: dict[str, np.ndarray]
    unknowns: dict[str, np.ndarray]
    converged: np.ndarray
    residual: np.ndarray
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class TheoryResult:
    """Asymptotic errors, order parameters and solver diagnostics of one model point."""

    eps_L2: float
    eps_H1: float | None
    eps_grad: float
    train_loss: float
    train_error_L2: float
    order: dict[str, Any] = field(default_factory=dict)
    residual: float = math.nan
    iterations: int | None = None
    converged: bool = False
    eps_H1_self_averaging: bool = True
    notes: tuple[str, ...] = ()
    #: "ridge" (λ > 0) or the branch of the limit λ → 0⁺ ("interpolating", "underparameterised")
    branch: str = "ridge"
    #: (system name, unknowns): a warm start for a neighbouring point (continuation)
    state: tuple[str, np.ndarray] | None = field(default=None, repr=False)

    def to_dict(self) -> dict[str, Any]:
        return {
            "eps_L2": self.eps_L2,
            "eps_H1": self.eps_H1,
            "eps_grad": self.eps_grad,
            "train_loss": self.train_loss,
            "train_error_L2": self.train_error_L2,
            "order_parameters": self.order,
            "residual": self.residual,
            "iterations": self.iterations,
            "converged": self.converged,
            "eps_H1_note": None
            if self.eps_H1_self_averaging
            else "tau = 0: eps_H1 is not self-averaging over V; the value is its expectation over V at fixed alignment",
            "notes": list(self.notes),
            "branch": self.branch,
        }

    def _repr_html_(self) -> str:
        """The errors, order parameters, residual and branch as a table (a notebook's display)."""
        from ..display import html_table, number

        errors = [(name, number(getattr(self, name))) for name in ERRORS]
        order = [(name, number(value)) for name, value in self.order.items()]
        diagnostics = [
            ("residual", number(self.residual, 3)),
            ("converged", str(self.converged)),
            ("branch", self.branch),
        ]
        notes = list(self.notes)
        if not self.eps_H1_self_averaging:
            notes.append("τ = 0: eps_H1 is its expectation over V at fixed alignment (not self-averaging).")
        return html_table("d → ∞ theory (sobolev-rf solve)", ("quantity", "value"), errors + order + diagnostics, notes)


def degeneracy_notes(kappa: Sequence[float], k: int, tau: float) -> tuple[str, ...]:
    """Plain-language notes on activations whose Hermite coefficients make parts of the model trivial."""
    k0, k1, ks, k0p, k1p, ksp, _ = kappa
    tiny = 1e-12 * (max(abs(v) for v in kappa[:6]) or 1.0)
    notes = []
    if ks <= tiny:
        notes.append(
            "κ_* = 0: σ is linear, the features carry no nonlinear part and the model is a linear "
            "regression on ΘᵀΘ-correlated inputs."
        )
    if abs(k1) <= tiny:
        notes.append(
            "κ₁ = κ₀′ = 0: σ has no linear part (e.g. an even σ), so neither function values nor "
            "projected gradients carry the linear signal of the teacher."
        )
    if k >= 1 and tau > 0 and abs(k1p) <= tiny:
        notes.append(
            "κ₁′ = 0 (e.g. an odd σ): the gradient rows carry no linear signal θ₀ᵀx; gradient data "
            "only constrain w through their mean κ₀′ζ_l and the residual part κ_*′."
        )
    return tuple(notes)


# --------------------------------------------------------------------------------------------------
# kernels of one system
# --------------------------------------------------------------------------------------------------


def system_record(k: int, sobolev: bool, branch: str) -> dict[str, Any]:
    """The cached derived system of k directions, τ > 0 (``sobolev``) or τ = 0, and a branch."""

    def derive() -> Any:
        from ...derive.saddle import derive_system

        return derive_system(k, 1 if sobolev else 0, branch)

    return jit.system_record("saddle", {"k": k, "sobolev": sobolev, "branch": branch}, derive)


class _Solver:
    """The kernel of one system on rows of grid points (all :data:`COLUMNS`)."""

    def __init__(self, k: int, sobolev: bool, branch: str, backend: str, ridge: _Solver | None = None) -> None:
        self.record = system_record(k, sobolev, branch)
        self.kernel = jit.load_kernel(self.record, backend)
        self.branch, self.ridge = branch, ridge
        self.name: str = self.record["name"]
        self.unknowns = self.kernel.unknowns
        self.columns = [COLUMNS.index(p) for p in self.kernel.parameters]
        self.every_column = self.columns == list(range(len(COLUMNS)))  # rows go to the kernel as they are

    def __call__(self, rows: np.ndarray, u0: np.ndarray, tol: float, run: int = 0) -> tuple[np.ndarray, ...]:
        """Solve every row from ``u0``; ``run`` > 0: continued along runs of that many consecutive rows
        (:meth:`Kernel.solve <sobolev_rf.codegen.runtime.Kernel.solve>`), a point whose continued start found
        a spurious root being solved again from its own start."""
        theta = rows if self.every_column else rows[:, self.columns]
        u, out, ok, norm = self.kernel.solve(theta, u0, tol, run=run)
        valid = self._valid(u)
        redo = np.flatnonzero(ok & ~valid) if run else ()
        if len(redo):
            start = np.broadcast_to(u0, (len(rows), len(self.unknowns)))[redo]
            u[redo], out[redo], ok[redo], norm[redo] = self.kernel.solve(theta[redo], start, tol)
            valid[redo] = self._valid(u[redo])
        return u, out, ok & valid, norm

    def _valid(self, u: np.ndarray) -> np.ndarray:
        """The unknowns are non-negative (V_r, Ω_a, β_r) and 0 < α < 1: anything else is a spurious root."""
        valid = np.all(u >= 0, axis=1)
        if "alpha" in self.unknowns:
            a = u[:, self.unknowns.index("alpha")]
            valid &= (a > 0) & (a < 1)
        return valid

    def outputs(self, u: np.ndarray, rows: np.ndarray) -> np.ndarray:
        return self.kernel.outputs(u, rows[:, self.columns])

    def solve_cold(self, rows: np.ndarray, tol: float, run: int = 0) -> tuple[np.ndarray, ...]:
        """Solve from no previous solution. λ > 0: from 0.5, continued along runs of ``run`` consecutive rows
        (neighbours along a line of the grid; 0: every row on its own). λ → 0⁺: the ridgeless equations are not
        contractive far from their root (a plain start runs into spurious roots with α < 0), so the λ > 0
        solution is followed down :data:`LAMBDA_PATH`, each step warm-started from the last, and mapped to
        the scaled variables L = λ + g_0, α = λ/L, β_1 = g_1/L, Ω̃_a = LΩ_a after every decade from 10⁻⁴
        on; a point stops at the first decade whose mapped start converges."""
        if self.ridge is None:
            return self(rows, np.full((len(rows), len(self.unknowns)), 0.5), tol, run)
        ridge = self.ridge
        lam_col = COLUMNS.index("lam")
        n = len(rows)
        u = np.full((n, len(ridge.unknowns)), 0.5)
        result = (
            np.full((n, len(self.unknowns)), np.nan),
            np.full((n, len(self.kernel.output_names)), np.nan),
            np.zeros(n, dtype=bool),
            np.full(n, np.nan),
        )
        todo = np.arange(n)
        for lam in LAMBDA_PATH:
            trial = rows[todo].copy()
            trial[:, lam_col] = lam
            u_new, _, good, _ = ridge(trial, u[todo], tol)
            u[todo] = np.where(good[:, None], u_new, u[todo])
            if lam > 1e-4:
                continue
            ru = {name: u[todo, i] for i, name in enumerate(ridge.unknowns)}
            scale = lam + 1.0 / (1.0 + ru["V_0"])
            mapped = {"alpha": lam / scale, "Omega_0": ru["Omega_0"] * scale}
            if "V_1" in ru:
                mapped["beta_1"] = 1.0 / (1.0 + ru["V_1"]) / scale
            if "Omega_1" in ru:
                mapped["Omega_1"] = ru["Omega_1"] * scale
            start = np.column_stack([mapped[name] for name in self.unknowns])
            attempt = self(rows[todo], np.where(np.isfinite(start), start, 0.5), tol)
            for whole, part in zip(result, attempt):
                whole[todo] = part
            todo = todo[~attempt[2]]
            if not len(todo):
                break
        return result


# --------------------------------------------------------------------------------------------------
# grids
# --------------------------------------------------------------------------------------------------


def parameter_columns(k: int, tau: Any, params: Mapping[str, Any]) -> list[Any]:
    """Values (scalars or broadcastable arrays) of every :data:`COLUMNS` entry from a parameter mapping.

    ``params`` may hold ``activation`` and ``teacher`` (texts), ``p_over_d``, ``n_over_d``, ``lam``,
    ``noise_f``, ``noise_g`` (scalars or arrays) and ``alignment`` (k scalars or arrays; default all ones).
    """
    if params.get("step", "none") != "none":
        raise UserError(NO_STEP_THEORY)
    alignment = params.get("alignment")
    align = [1.0] * k if alignment is None else list(alignment)
    if len(align) != k:
        raise UserError(f"alignment needs k = {k} entries, got {len(align)}.")
    values: dict[str, Any] = dict(zip(COLUMNS[:7], coefficients(str(params.get("activation", "relu")))))
    values.update(zip(COLUMNS[7:14], coefficients(str(params.get("teacher", "tanh")))))
    for name, model in _FROM_MODEL.items():
        values[name] = np.asarray(params.get(model, _DEFAULTS[model]), dtype=float)
    values["tau"] = np.asarray(tau, dtype=float)
    arrays = [np.asarray(a, dtype=float) for a in align]
    values["varpi2"] = sum(a * a for a in arrays) / k if k else np.asarray(0.0)
    values["varpi_l"] = arrays[0] if k else np.asarray(0.0)
    for name in ("lam", "tau"):
        if np.any(values[name] < 0) or not np.all(np.isfinite(values[name])):
            raise UserError(f"{name} must be finite and >= 0 (lam = 0 means the limit λ → 0⁺), got {values[name]}.")
    return [values[name] for name in COLUMNS]


def _system_keys(k: int, rows: np.ndarray) -> np.ndarray:
    """Per point: 2·sobolev + branch index (0 ridge, 1 interpolating, 2 underparameterised), −1 on a threshold."""
    lam, psi, n_d, tau = (rows[:, COLUMNS.index(c)] for c in ("lam", "psi", "n_d", "tau"))
    sobolev = (tau > 0) & (k >= 1)
    threshold = np.where(sobolev & ~_affine(rows), 1 + k, 1) * n_d
    branch = np.where(lam > 0, 0, np.where(psi > threshold, 1, np.where(psi < threshold, 2, -1)))
    return np.where(branch >= 0, 3 * sobolev + branch, -1)


def _affine(rows: np.ndarray) -> np.ndarray:
    """Per point: σ affine (κ₁′ = κ_*′ = 0), whose gradient rows are spikes that do not move the threshold."""
    return (rows[:, COLUMNS.index("kappa1p")] == 0) & (rows[:, COLUMNS.index("kappa_sp")] == 0)


def training_rows(params: ModelParams) -> int:
    """Training rows per sample that count towards the λ → 0⁺ threshold p = r·n: 1 + k for Sobolev training
    (τ > 0, k ≥ 1), 1 for τ = 0 and for an affine σ (its gradient rows are spikes)."""
    k0, k1, ks, k0p, k1p, ksp, _ = coefficients(params.activation)
    return 1 if k1p == 0 and ksp == 0 else params.training_rows


def _solvers(k: int, keys: np.ndarray, backend: str) -> dict[int, _Solver]:
    """The solver of every system key present (a λ → 0⁺ branch shares the ridge solver of its τ)."""
    ridges: dict[bool, _Solver] = {}

    def ridge(sobolev: bool) -> _Solver:
        if sobolev not in ridges:
            ridges[sobolev] = _Solver(k, sobolev, "ridge", backend)
        return ridges[sobolev]

    needed = [int(i) - 1 for i in np.flatnonzero(np.bincount(np.ravel(keys) + 1, minlength=7)) if i > 0]
    return {
        key: ridge(key >= 3) if key % 3 == 0 else _Solver(k, key >= 3, BRANCHES[key % 3], backend, ridge(key >= 3))
        for key in needed
    }


@overload
def solve_grid(params: ModelParams, /, **axes: Any) -> xr.Dataset: ...


@overload
def solve_grid(
    k: int,
    tau: Any,
    params_arrays: Mapping[str, Any],
    backend: str = "auto",
    tol: float = 1e-13,
    continuation: bool = True,
    progress: Callable[[int], None] | None = None,
) -> GridResult: ...


def solve_grid(*args: Any, **kwargs: Any) -> Any:
    """The theory on a grid, in one of two forms.

    ``solve_grid(params, p_over_d=array, n_over_d=array, ...)``: ``params`` (a :class:`ModelParams`) with
    any of its fields as an axis, named by keyword (``activation``, ``teacher``, ``k``, ``tau``, ``p_over_d``,
    ``n_over_d``, ``lam``, ``noise_f``, ``noise_g``, and ``alignment`` for k = 1), each a one-dimensional
    sequence (a scalar just sets the field). Returns an ``xarray.Dataset`` with one dimension per axis in
    the order given (coordinates: the axis values), one variable per error, order parameter and unknown,
    ``converged``, ``residual`` and ``branch``, and the fixed parameters and versions as attributes
    (:func:`~.dataset.grid_dataset`). The keywords ``backend``, ``tol``, ``continuation`` and ``progress``
    are passed on as in :func:`solve_arrays`.

    ``solve_grid(k, tau, params_arrays, ...)``: exactly :func:`solve_arrays` (broadcast arrays in, a
    :class:`GridResult` of arrays out).
    """
    if args and isinstance(args[0], ModelParams):
        if len(args) > 1:
            raise UserError(
                "solve_grid(params, **axes) takes the axes by name, e.g. solve_grid(params, p_over_d=[1, 2])."
            )
        from .dataset import grid_dataset

        options = {name: kwargs.pop(name) for name in ("backend", "tol", "continuation", "progress") if name in kwargs}
        return grid_dataset(args[0], kwargs, **options)
    return solve_arrays(*args, **kwargs)


def solve_arrays(
    k: int,
    tau: Any,
    params_arrays: Mapping[str, Any],
    backend: str = "auto",
    tol: float = 1e-13,
    continuation: bool = True,
    progress: Callable[[int], None] | None = None,
) -> GridResult:
    """Solve the fixed point of k directions and Sobolev weight τ (scalar or array, ≥ 0) on every point
    of the broadcast parameter arrays (see :func:`parameter_columns`).

    λ = 0 is the limit λ → 0⁺, solved by the system of its branch (interpolating when p > r·n,
    underparameterised when p < r·n, r = 1 + k for τ > 0 and 1 for τ = 0); at p = r·n the errors are
    infinite and the point is reported as not converged.

    First every point is solved from its cold start (:meth:`_Solver.solve_cold`), in chunks of
    :data:`CHUNK` points (whole lines of the grid where they fit), ``progress(m)`` being called after each chunk
    of m points; the C backend continues λ > 0 points along each line (the grid's last axis of length > 1) from
    the solutions before them, with each point's cold start as the fallback, which changes a point only at
    the level of the tolerance ``tol`` (and makes it independent of the number of threads, not of the grid). Then, with
    ``continuation``, points that did not converge are re-solved from the solution of a converged
    neighbour along the grid's first axis of length > 1 (same system), in rounds that spread the solved
    region until no point gains (``progress(0)`` after each round).
    """
    columns = parameter_columns(k, tau, params_arrays)
    shape = np.broadcast_shapes(*[np.shape(c) for c in columns])
    used = jit.resolve_backend(backend)
    axis = next((i for i, n in enumerate(shape) if n > 1), 0) if shape else 0
    # layout (points along the continuation axis, the rest): neighbours are rows i ± width of the same column
    moved = tuple(shape[j] for j in [axis] + [j for j in range(len(shape)) if j != axis]) if shape else ()
    length = shape[axis] if shape else 1
    width = math.prod(shape) // length if shape else 1
    lines = np.empty((length, width, len(COLUMNS)))
    constant = [np.size(c) == 1 for c in columns]
    lines[...] = [float(np.ravel(c)[0]) if one else 0.0 for c, one in zip(columns, constant)]  # rows at once
    for j, column in enumerate(columns):
        if constant[j]:
            continue
        target = lines[..., j].reshape(moved)
        np.copyto(
            target, np.moveaxis(np.broadcast_to(np.asarray(column, dtype=float), shape), axis, 0) if shape else column
        )
    rows = lines.reshape(-1, len(COLUMNS))
    keys = _system_keys(k, rows)
    solvers = _solvers(k, keys, used)
    u_names = list(dict.fromkeys(u for s in solvers.values() for u in s.unknowns))
    o_names = list(dict.fromkeys(o for s in solvers.values() for o in s.kernel.output_names))
    U = np.full((len(rows), len(u_names)), np.nan)
    O = np.full((len(rows), len(o_names)), np.nan)
    ok = np.zeros(len(rows), dtype=bool)
    norm = np.full(len(rows), np.nan)

    def store(key: int, idx: np.ndarray | slice, result: tuple[np.ndarray, ...]) -> None:
        """A solver's result into the rows ``idx`` (indices, or a slice: no copies for a grid of one system)."""
        solver = solvers[key]
        u, out, good, res = result
        for table, names, mine, values in (
            (U, u_names, solver.unknowns, u),
            (O, o_names, solver.kernel.output_names, out),
        ):
            cols = [names.index(x) for x in mine]
            if cols == list(range(table.shape[1])):
                table[idx] = values
            else:
                table[(idx, cols) if isinstance(idx, slice) else (idx[:, None], cols)] = values
        ok[idx], norm[idx] = good, res

    # consecutive rows are neighbours along the grid's last axis of length > 1 (the continuation axis for a line):
    # the cold pass continues along such lines, in chunks of whole lines where they fit
    line = next((n for n in reversed(moved[1:]) if n > 1), length)
    chunk = CHUNK if line >= CHUNK else CHUNK // line * line
    for key, solver in solvers.items():
        members = np.flatnonzero(keys == key)
        whole = len(members) == len(rows)  # one system on the whole grid: chunks are slices
        for start in range(0, len(members), chunk):
            idx = slice(start, min(start + chunk, len(rows))) if whole else members[start : start + chunk]
            store(key, idx, solver.solve_cold(rows[idx], tol, line))
            if progress is not None:
                progress(len(rows[idx]))
    if continuation and length > 1:
        _continue(rows, keys, solvers, U, u_names, ok, width, tol, store, progress)

    def unflatten(a: np.ndarray) -> np.ndarray:
        """(points along the axis, the rest) back to the grid's shape."""
        return np.moveaxis(a.reshape(moved), 0, axis) if shape else a.reshape(shape)

    names = np.array(BRANCHES + ("threshold",))
    systems = np.array([solvers[x].name if x in solvers else "" for x in range(6)] + [""])
    return GridResult(
        used,
        {n: unflatten(O[:, j]) for j, n in enumerate(o_names)},
        {n: unflatten(U[:, j]) for j, n in enumerate(u_names)},
        unflatten(ok),
        unflatten(norm),
        extra={
            "branch": unflatten(names[np.where(keys >= 0, keys % 3, 3)]),
            "system": unflatten(systems[keys]),
            "continuation_axis": axis,
        },
    )


def _continue(
    rows: np.ndarray,
    keys: np.ndarray,
    solvers: Mapping[int, _Solver],
    U: np.ndarray,
    u_names: list[str],
    ok: np.ndarray,
    width: int,
    tol: float,
    store: Callable[[int, np.ndarray, tuple[np.ndarray, ...]], None],
    progress: Callable[[int], None] | None,
) -> None:
    """Re-solve failed points from a converged neighbour (rows i ± ``width``) of the same system, in
    rounds, until a round gains nothing."""
    while True:
        gained = 0
        for step in (-width, width):  # the neighbour before, then after, along the axis
            todo = np.flatnonzero(~ok & (keys >= 0))
            src = todo + step
            inside = (src >= 0) & (src < len(rows))
            todo, src = todo[inside], src[inside]
            usable = ok[src] & (keys[src] == keys[todo])
            todo, src = todo[usable], src[usable]
            for key, solver in solvers.items():
                mine = keys[todo] == key
                if not mine.any():
                    continue
                idx, from_idx = todo[mine], src[mine]
                cols = [u_names.index(x) for x in solver.unknowns]
                result = solver(rows[idx], U[from_idx][:, cols], tol)
                keep = result[2]
                store(key, idx[keep], tuple(r[keep] for r in result))
                gained += int(keep.sum())
        if progress is not None:
            progress(0)
        if not gained:
            return


# --------------------------------------------------------------------------------------------------
# one point, a path
# --------------------------------------------------------------------------------------------------


def solve(
    params: ModelParams, tol: float = 1e-13, start: TheoryResult | None = None, backend: str = "auto"
) -> TheoryResult:
    """The asymptotic errors and order parameters of one model point (generated kernel of its system).

    λ = 0 means the limit λ → 0⁺ (minimum-norm interpolant when overparameterised). ``start``: the
    result at a neighbouring point of the same system, used as the initial iterate (continuation).
    A point with a first-layer step is solved by the one-step readout theory (:mod:`.onestep`).
    """
    if params.has_step:
        from .onestep import solve_point

        return solve_point(params, tol, backend)
    k = params.k
    rows = np.stack([np.broadcast_to(c, ()) for c in parameter_columns(k, params.tau, params.grid_mapping())])[None]
    key = int(_system_keys(k, rows)[0])
    rows_per_sample = training_rows(params)
    if key < 0:
        raise SolverError(
            f"lam = 0 at the interpolation threshold p = {rows_per_sample}n "
            f"(p/d = {params.p_over_d:g}, n/d = {params.n_over_d:g}): the errors are infinite there; "
            "move p/d or n/d, or use λ > 0."
        )
    solver = _solvers(k, np.array([key]), jit.resolve_backend(backend))[key]
    result = None
    if start is not None and start.state is not None and start.state[0] == solver.name:
        result = solver(rows, start.state[1][None], tol)
        if not result[2][0]:
            result = None
    if result is None:
        result = solver.solve_cold(rows, tol)
    u, out, good, res = result
    if not good[0]:
        raise SolverError(
            f"the fixed point did not converge at this point (residual {res[0]:.2e}); the point may "
            f"be too close to the interpolation threshold p = {rows_per_sample}n for this λ: "
            "try a larger λ or a nearby p/d."
        )
    return _result(params, solver, rows, u[0], dict(zip(solver.kernel.output_names, out[0])), float(res[0]))


#: A point with λ ≤ NEAR_LAMBDA and p within NEAR_THRESHOLD (relative) of the threshold p = r·n gets a note.
NEAR_THRESHOLD, NEAR_LAMBDA = 0.1, 1e-2


def threshold_note(params: ModelParams) -> tuple[str, ...]:
    """A note when a point with a small λ sits at or near the interpolation threshold, where the errors peak."""
    r = training_rows(params)
    at = r * params.n_over_d
    if params.lam > NEAR_LAMBDA or abs(params.p_over_d / at - 1) > NEAR_THRESHOLD:
        return ()
    return (
        f"p/d = {params.p_over_d:g} is {'at' if params.p_over_d == at else 'near'} the interpolation threshold "
        f"p = {r}n (p/d = {at:g}), where the errors peak for a small λ: move p/d or n/d, or raise λ, for a "
        "typical point.",
    )


def ridgeless_note(params: ModelParams, branch: str) -> str:
    """What λ = 0 means at this point: the branch of λ → 0⁺ and the interpolation threshold."""
    where = (
        f"p = (1 + k)n = {params.training_rows}n for every τ > 0"
        if training_rows(params) > 1
        else "p = n (σ is affine: its gradient rows are spikes, which do not count)"
        if params.training_rows > 1
        else "p = n for τ = 0"
        if params.k
        else "p = n"
    )
    return f"lam = 0 is the limit λ → 0⁺, here on its {branch} branch; the interpolation threshold is {where}."


def _result(
    params: ModelParams, solver: _Solver, rows: np.ndarray, u: np.ndarray, out: Mapping[str, float], residual: float
) -> TheoryResult:
    """A :class:`TheoryResult` from a kernel's solution; per-direction order parameters (M_l, S_l) are the
    kernel's outputs at each ϖ_l."""
    k = params.k
    sobolev = params.tau > 0 and k >= 1
    values = [out.get(name) for name in ERRORS]
    if not all(v is None or math.isfinite(v) for v in values):
        raise SolverError(
            "the solution produced a non-finite error; the point is at or too close to the "
            "interpolation threshold for this λ."
        )
    unknowns = dict(zip(solver.unknowns, map(float, u)))
    per_direction: dict[str, list[float]] = {}
    if k:
        directions = np.repeat(rows, k, axis=0)
        directions[:, COLUMNS.index("varpi_l")] = params.alignment
        table = solver.outputs(np.repeat(u[None], k, axis=0), directions)
        names = solver.kernel.output_names
        per_direction = {n: table[:, names.index(n)].tolist() for n in ("M_l", "S_l") if n in names}
    R = 1 + k if sobolev else 1
    V: list[float | None] = [None] * R
    if solver.branch == "ridge":
        V = [unknowns["V_0"], *[unknowns.get("V_1")] * (R - 1)]
    order = {
        "m": float(out["m"]),
        "q_s": float(out["q_s"]),
        "q_w": float(out["q_w"]),
        "V": V,
        "Omega": [unknowns["Omega_0"]] + [unknowns.get("Omega_1", math.nan)] * k,
        "M": [float(out["M_0"])] + per_direction.get("M_l", [0.0] * k),
        "S": [float(out["S_0"])] + per_direction.get("S_l", []),
    }
    eps_H1 = float(out["eps_H1"]) if k else None
    return TheoryResult(
        eps_L2=float(out["eps_L2"]),
        eps_H1=eps_H1,
        eps_grad=float(out["eps_grad"]),
        train_loss=float(out["train_loss"]),
        train_error_L2=float(out["train_error_L2"]),
        order=order,
        residual=residual,
        converged=True,
        eps_H1_self_averaging=sobolev or k == 0,
        branch=solver.branch,
        notes=degeneracy_notes(coefficients(params.activation), k, params.tau)
        + ((ridgeless_note(params, solver.branch),) if solver.branch != "ridge" else ())
        + threshold_note(params),
        state=(solver.name, np.asarray(u, dtype=float)),
    )


def solve_path(points: Sequence[ModelParams], tol: float = 1e-13) -> list[TheoryResult | UserError]:
    """Solve a sweep in order, each point warm-started from the previous solution (continuation);
    a point that fails is retried from the cold start, and its error is returned in its place."""
    out: list[TheoryResult | UserError] = []
    previous: TheoryResult | None = None
    for params in points:
        try:
            result = solve(params, tol, start=previous)
        except UserError as exc:
            out.append(exc)
            previous = None
            continue
        out.append(result)
        previous = result
    return out
