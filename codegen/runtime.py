"""Compiled kernels at run time: one interface, the same array shapes for every backend.

A :class:`Kernel` solves and evaluates one generated System on points given as rows: ``theta`` of
shape (points, parameters), ``u`` of shape (points, unknowns); outputs come back as (points, outputs).
:class:`CKernel` binds a compiled shared library with ctypes, :class:`NumpyKernel` wraps a generated
NumPy module. Nothing here imports SymPy, so a warm start pays only for NumPy.
"""

from __future__ import annotations

import ctypes
import os
import types
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

Solution = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]


class Kernel(Protocol):
    """What every compiled backend provides (rows are points)."""

    backend: str
    unknowns: tuple[str, ...]
    parameters: tuple[str, ...]
    output_names: tuple[str, ...]

    def solve(self, theta: np.ndarray, u0: np.ndarray, tol: float = 1e-13, run: int = 0) -> Solution:
        """(u (points, n), outputs (points, m), converged (points,), residual max-norm (points,)).

        ``run`` > 0 says that the points come in runs of that many consecutive neighbours (a line of a grid):
        a backend may then start a point from the solutions before it in its run (the C one does, by Newton
        from their linear extrapolation, falling back to ``u0``), which changes a converged point only at
        the level of the tolerance. 0: every point from its ``u0``."""
        ...

    def outputs(self, u: np.ndarray, theta: np.ndarray) -> np.ndarray:
        """Outputs (points, m) at given unknowns."""
        ...

    def residual(self, u: np.ndarray, theta: np.ndarray) -> np.ndarray:
        """Residuals (points, n)."""
        ...

    def jacobian(self, u: np.ndarray, theta: np.ndarray) -> np.ndarray:
        """Jacobians (points, n, n)."""
        ...


def _rows(a: Any, width: int) -> np.ndarray:
    return np.ascontiguousarray(np.asarray(a, dtype=float).reshape(-1, width))


def solver_threads() -> int:
    """Threads of a C batch solve: ``$OMP_NUM_THREADS`` when it is set to a positive integer, else one. A
    batch's results do not depend on it (its runs are fixed by the grid); one thread by default, since a busy
    machine (several processes at once, e.g. a campaign's workers) loses more to threads waiting than it gains."""
    text = os.environ.get("OMP_NUM_THREADS", "").split(",")[0].strip()
    return int(text) if text.isdigit() and int(text) > 0 else 1


_D = ctypes.POINTER(ctypes.c_double)
_I = ctypes.POINTER(ctypes.c_int)


class CKernel:
    """ctypes binding of a compiled system: batch residual, Jacobian, outputs and solver."""

    backend = "c"

    def __init__(
        self, path: Path, unknowns: Sequence[str], parameters: Sequence[str], output_names: Sequence[str]
    ) -> None:
        self.path = path
        self.unknowns, self.parameters = tuple(unknowns), tuple(parameters)
        self.output_names = tuple(output_names)
        self.n, self.p = len(self.unknowns), len(self.parameters)
        self._lib = ctypes.CDLL(str(path))
        for name in ("sr_residual_batch", "sr_jacobian_batch", "sr_outputs_batch"):
            getattr(self._lib, name).argtypes = [ctypes.c_long, _D, _D, _D]
            getattr(self._lib, name).restype = None
        solve_args = [
            ctypes.c_long,
            _D,
            _D,
            _D,
            _I,
            _D,
            ctypes.c_double,
            ctypes.c_int,
            ctypes.c_int,
            ctypes.c_double,
            ctypes.c_long,
            ctypes.c_int,
        ]
        for name in ("sr_solve_batch", "sr_solve_batch_reusing"):
            getattr(self._lib, name).argtypes = solve_args
            getattr(self._lib, name).restype = None

    def _call(self, name: str, u: np.ndarray, theta: np.ndarray, width: int) -> np.ndarray:
        u, theta = _rows(u, self.n), _rows(theta, self.p)
        if len(u) != len(theta):
            raise ValueError("u and theta need the same number of points")
        out = np.empty((len(u), width))
        getattr(self._lib, name)(len(u), u.ctypes.data_as(_D), theta.ctypes.data_as(_D), out.ctypes.data_as(_D))
        return out

    def residual(self, u: np.ndarray, theta: np.ndarray) -> np.ndarray:
        return self._call("sr_residual_batch", u, theta, self.n)

    def jacobian(self, u: np.ndarray, theta: np.ndarray) -> np.ndarray:
        return self._call("sr_jacobian_batch", u, theta, self.n * self.n).reshape(-1, self.n, self.n)

    def outputs(self, u: np.ndarray, theta: np.ndarray) -> np.ndarray:
        return self._call("sr_outputs_batch", u, theta, len(self.output_names))

    def solve(
        self,
        theta: np.ndarray,
        u0: np.ndarray,
        tol: float = 1e-13,
        run: int = 0,
        fixed_point_iterations: int = 2000,
        newton_iterations: int = 60,
        damping: float = 0.3,
        reuse_jacobian: bool = False,
    ) -> Solution:
        """As :meth:`Kernel.solve`; ``reuse_jacobian``: each run carries its factored Jacobian from point to
        point and takes a fresh one only where chord steps on it stall (``sr_solve_batch_reusing``; a
        converged point changes at the level of the tolerance)."""
        theta = _rows(theta, self.p)
        npts = len(theta)
        u = _rows(np.broadcast_to(u0, (npts, self.n)), self.n).copy()
        out = np.empty((npts, len(self.output_names)))
        status = np.empty(npts, dtype=np.intc)
        norm = np.empty(npts)
        solve_batch = self._lib.sr_solve_batch_reusing if reuse_jacobian else self._lib.sr_solve_batch
        solve_batch(
            npts,
            theta.ctypes.data_as(_D),
            u.ctypes.data_as(_D),
            out.ctypes.data_as(_D),
            status.ctypes.data_as(_I),
            norm.ctypes.data_as(_D),
            tol,
            fixed_point_iterations,
            newton_iterations,
            damping,
            run,
            solver_threads(),
        )
        return u, out, status.astype(bool), norm


class NumpyKernel:
    """A generated NumPy module behind the :class:`Kernel` interface (its own functions take the
    unknowns and parameters on the leading axis)."""

    backend = "numpy"

    def __init__(self, source: str, name: str) -> None:
        module = types.ModuleType(name)
        exec(compile(source, f"<sobolev-rf generated {name}>", "exec"), module.__dict__)
        self.module = module
        self.unknowns, self.parameters = tuple(module.UNKNOWNS), tuple(module.PARAMETERS)
        self.output_names = tuple(module.OUTPUTS)

    def _theta(self, theta: np.ndarray) -> list[Any]:
        """Columns; a column constant over the points stays a scalar, so the subexpressions it alone
        determines (all the Hermite-coefficient algebra) are computed once (one column stays an array
        so that the batch keeps its length)."""
        cols = _rows(theta, len(self.parameters)).T
        out: list[Any] = [c[0] if np.all(c == c[0]) else c for c in cols]
        if all(np.ndim(c) == 0 for c in out):
            out[0] = cols[0]
        return out

    def residual(self, u: np.ndarray, theta: np.ndarray) -> np.ndarray:
        r = self.module.residual(_rows(u, len(self.unknowns)).T, self._theta(theta))
        return np.broadcast_to(r, (len(self.unknowns), len(_rows(theta, len(self.parameters))))).T.copy()

    def jacobian(self, u: np.ndarray, theta: np.ndarray) -> np.ndarray:
        n = len(self.unknowns)
        J = self.module.jacobian(_rows(u, n).T, self._theta(theta))
        return np.moveaxis(np.broadcast_to(J, (n, n, len(_rows(theta, len(self.parameters))))), -1, 0).copy()

    def outputs(self, u: np.ndarray, theta: np.ndarray) -> np.ndarray:
        npts = len(_rows(theta, len(self.parameters)))
        values = self.module.outputs(_rows(u, len(self.unknowns)).T, self._theta(theta))
        return np.stack([np.broadcast_to(values[n], (npts,)) for n in self.output_names], axis=-1)

    def solve(self, theta: np.ndarray, u0: np.ndarray, tol: float = 1e-13, run: int = 0) -> Solution:
        """Every point from its ``u0`` (vectorised over the points; ``run`` is not used)."""
        th = self._theta(theta)
        npts = len(_rows(theta, len(self.parameters)))
        u0 = _rows(np.broadcast_to(u0, (npts, len(self.unknowns))), len(self.unknowns))
        u, ok, norm = self.module.solve(th, u0=u0.T, tol=tol)
        values = self.module.outputs(u, th)
        out = np.stack([np.broadcast_to(values[n], ok.shape) for n in self.output_names], axis=-1)
        return u.T, out, ok, norm
