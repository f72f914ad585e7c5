"""Complex-arithmetic C kernels of operator-valued systems: cached builds and ctypes binding.

:func:`load_complex_kernel` gives, for a system record, a :class:`ComplexCKernel`: residual, outputs,
Jacobian and a damped Newton at many complex points, one row per point, and the residual, outputs and
Jacobian of its real twin at real points. The two are libraries of their own that :mod:`.complex_c.printer`
writes, each generated and built (through the cache of :mod:`.cache`, keyed like every C kernel by the
system's fingerprint, the codegen sources and the platform) on its first use: a spectrum builds only the
complex one, a real solve only the real twin. A record whose expressions leave :data:`~.complex_c.SUPPORTED`
(e.g. Gamma resolvents, or e^x E_ν(x) of an order ν that is not a positive integer or half-integer), or whose
numerical expectations have rules of more than :data:`MAX_RULE_NODES` nodes, or a machine without a working C
compiler, has none (None: the NumPy kernel does the work); a library that does not build leaves its
evaluations to the NumPy kernel (one warning line). Nothing here imports SymPy when warm.
"""

from __future__ import annotations

import base64
import ctypes
import sysconfig
from collections.abc import Callable, Mapping
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from . import cache, jit
from .complex_c import SUPPORTED
from .version import CODEGEN_VERSION

#: Flags of a complex kernel's build: -O1 runs the kernels within 10 % of -O2 and compiles in half the time
#: (a cold call pays for the build).
COMPLEX_C_FLAGS = ("-O1", "-std=c99", "-shared", "-fPIC")

_D = ctypes.POINTER(ctypes.c_double)
_I = ctypes.POINTER(ctypes.c_int)


def _has_symbol(tree: Any) -> bool:
    """Whether an expression tree contains a symbol (a parameter)."""
    if isinstance(tree, list) and tree and isinstance(tree[0], str):
        return tree[0] == "Symbol" or any(_has_symbol(child) for child in tree[1:] if isinstance(child, list))
    return False


def _nodes(tree: Any, out: set[str]) -> None:
    """The node names of an expression tree (leaves carry their data as strings after the name); an
    e^x E_ν(x) whose order is a number but not a positive integer or half-integer is named ``ScaledExpint?``
    (an order that is an expression, e.g. k/2 of a parameter k, is taken at run time, as by the NumPy kernel)."""
    if isinstance(tree, list) and tree and isinstance(tree[0], str):
        name = tree[0]
        if name == "ScaledExpint":
            nu = tree[1] if len(tree) == 3 and isinstance(tree[1], list) and tree[1] else ["?"]
            fine = nu[0] in ("Half", "One") or (nu[0] == "Integer" and int(nu[1]) > 0)
            fine |= nu[0] == "Rational" and nu[2] == "2" and int(nu[1]) > 0
            fine |= _has_symbol(nu)  # a parameter order (k/2 for k copies), taken at run time
            name = name if fine else "ScaledExpint?"
        out.add(name)
        for child in tree[1:]:
            if isinstance(child, list):
                _nodes(child, out)


#: The most nodes of a numerical expectation's rule that the C source holds as constants (larger data laws keep the
#: NumPy kernel: a longer source compiles for seconds).
MAX_RULE_NODES = 25_000


def _rule_nodes(factors: Any) -> int:
    """Nodes of a stored rule (the product of its factors' sizes, from their weights' base64 length)."""
    size = 1
    for f in factors:
        size *= len(base64.b64decode(str(f["weights"]))) // 8
    return size


def record_supported(record: Mapping[str, Any]) -> bool:
    """Whether every expression of a system record is made of :data:`SUPPORTED` nodes, and every rule of its
    numerical expectations has at most :data:`MAX_RULE_NODES` nodes."""
    if any(_rule_nodes(factors) > MAX_RULE_NODES for factors in record.get("meta", {}).get("rules", [])):
        return False
    names: set[str] = set()
    for tree in record.get("residuals", []):
        _nodes(tree, names)
    for _, tree in record.get("outputs", []):
        _nodes(tree, names)
    for _, tree in record.get("definitions", []):
        _nodes(tree, names)
    return names <= SUPPORTED


def _rows(a: Any, width: int, dtype: type = complex) -> np.ndarray:
    """Points as rows: a 2-D array as it is (even with no columns), anything else one row per ``width`` values."""
    a = np.asarray(a, dtype=dtype)
    if a.ndim == 2 and a.shape[1] == width:
        return np.ascontiguousarray(a)
    return np.ascontiguousarray(a.reshape(-1, width))


def _bind(path: Path, real: bool) -> ctypes.CDLL:
    """The library at ``path`` with the argument types of its entry points (the real twin's with ``real``)."""
    lib = ctypes.CDLL(str(path))
    prefix = "srr_" if real else "src_"
    for name in ("residual_batch", "outputs_batch", "jacobian_batch"):
        getattr(lib, prefix + name).argtypes = [ctypes.c_long, _D, _D, _D]
        getattr(lib, prefix + name).restype = None
    if not real:
        lib.src_newton_batch.argtypes = [ctypes.c_long, _D, _D, ctypes.c_double, ctypes.c_int, _I]
        lib.src_newton_batch.restype = None
    lib.src_erfcx_batch.argtypes = [ctypes.c_long, _D, _D]
    lib.src_erfcx_batch.restype = None
    lib.src_scaled_expint_batch.argtypes = [ctypes.c_long, ctypes.c_double, _D, _D]
    lib.src_scaled_expint_batch.restype = None
    return lib


class ComplexCKernel:
    """ctypes binding of a system's complex-arithmetic kernel and of its real twin, each library built (``build``:
    real? → its path, or None where it does not build) on its first use; arrays have one row per point
    (complex128)."""

    def __init__(self, build: Callable[[bool], Path | None], n: int, p: int, m: int) -> None:
        self._build = build
        self.n, self.p, self.m = n, p, m
        self._libs: dict[bool, ctypes.CDLL | None] = {}

    def available(self, real: bool = False) -> bool:
        """Whether the complex library (with ``real``: the real twin's) is built and bound, building it on the
        first call (False where it does not build)."""
        if real not in self._libs:
            path = self._build(real)
            self._libs[real] = None if path is None else jit.loaded(path, partial(_bind, real=real))
        return self._libs[real] is not None

    @property
    def _lib(self) -> ctypes.CDLL:
        return self._library(False)

    def _library(self, real: bool) -> ctypes.CDLL:
        if not self.available(real):
            raise RuntimeError("this system's C kernel does not build here")
        lib = self._libs[real]
        assert lib is not None
        return lib

    def _call(self, name: str, u: np.ndarray, theta: np.ndarray, width: int) -> np.ndarray:
        u, theta = _rows(u, self.n), _rows(theta, self.p)
        if len(u) != len(theta):
            raise ValueError("u and theta need the same number of points")
        out = np.empty((len(u), width), complex)
        getattr(self._lib, name)(len(u), u.ctypes.data_as(_D), theta.ctypes.data_as(_D), out.ctypes.data_as(_D))
        return out

    def _call_real(self, name: str, u: np.ndarray, theta: np.ndarray, width: int) -> np.ndarray:
        u, theta = _rows(u, self.n, float), _rows(theta, self.p, float)
        if len(u) != len(theta):
            raise ValueError("u and theta need the same number of points")
        out = np.empty((len(u), width))
        getattr(self._library(True), name)(
            len(u), u.ctypes.data_as(_D), theta.ctypes.data_as(_D), out.ctypes.data_as(_D)
        )
        return out

    def real_residual(self, u: np.ndarray, theta: np.ndarray) -> np.ndarray:
        """u − G(u) (points, n) in real arithmetic (the real twin: NaN outside the real domain)."""
        return self._call_real("srr_residual_batch", u, theta, self.n)

    def real_outputs(self, u: np.ndarray, theta: np.ndarray) -> np.ndarray:
        """Outputs (points, m) in real arithmetic."""
        return self._call_real("srr_outputs_batch", u, theta, self.m)

    def real_jacobian(self, u: np.ndarray, theta: np.ndarray) -> np.ndarray:
        """∂(u − G(u))_i/∂u_j (points, n, n) in real arithmetic, forward differences with relative steps."""
        return self._call_real("srr_jacobian_batch", u, theta, self.n * self.n).reshape(-1, self.n, self.n)

    def residual(self, u: np.ndarray, theta: np.ndarray) -> np.ndarray:
        """u − G(u) (points, n)."""
        return self._call("src_residual_batch", u, theta, self.n)

    def outputs(self, u: np.ndarray, theta: np.ndarray) -> np.ndarray:
        """Outputs (points, m)."""
        return self._call("src_outputs_batch", u, theta, self.m)

    def jacobian(self, u: np.ndarray, theta: np.ndarray) -> np.ndarray:
        """∂(u − G(u))_i/∂u_j (points, n, n), forward differences with relative steps."""
        return self._call("src_jacobian_batch", u, theta, self.n * self.n).reshape(-1, self.n, self.n)

    def newton(self, u0: np.ndarray, theta: np.ndarray, tol: float, max_iter: int) -> tuple[np.ndarray, np.ndarray]:
        """Damped Newton on G(u) − u = 0 from ``u0`` at every point on its own (the steps of
        :meth:`sobolev_rf.numeric.theory.ovfp.FixedPoint.newton`); (u, converged)."""
        u, theta = _rows(u0, self.n).copy(), _rows(theta, self.p)
        if len(u) != len(theta):
            raise ValueError("u and theta need the same number of points")
        ok = np.zeros(len(u), np.intc)
        self._lib.src_newton_batch(
            len(u), u.ctypes.data_as(_D), theta.ctypes.data_as(_D), float(tol), int(max_iter), ok.ctypes.data_as(_I)
        )
        return u, ok.astype(bool)

    def erfcx(self, z: np.ndarray) -> np.ndarray:
        """erfcx(z) = e^{z²} erfc(z) of the kernel's Faddeeva function (for the tests)."""
        z = np.ascontiguousarray(np.asarray(z, dtype=complex).ravel())
        out = np.empty_like(z)
        self._lib.src_erfcx_batch(len(z), z.ctypes.data_as(_D), out.ctypes.data_as(_D))
        return out

    def scaled_expint(self, nu: float, z: np.ndarray) -> np.ndarray:
        """e^z E_ν(z) of the kernel (for the tests)."""
        z = np.ascontiguousarray(np.asarray(z, dtype=complex).ravel())
        out = np.empty_like(z)
        self._lib.src_scaled_expint_batch(len(z), float(nu), z.ctypes.data_as(_D), out.ctypes.data_as(_D))
        return out


def load_complex_kernel(record: Mapping[str, Any]) -> ComplexCKernel | None:
    """The complex C kernel of a system record, its libraries generated and built on first use; None when the
    record is not supported or no C compiler works here (a library that does not build is reported by
    :meth:`ComplexCKernel.available`, with one warning line)."""
    if not record_supported(record) or jit.compiler_problem() is not None:
        return None
    n, p, m = (len(jit.record_names(record, part)) for part in ("unknowns", "parameters", "outputs"))
    fingerprint = f"{record['fingerprint']}|{jit.package_source_hash('sobolev_rf.codegen')}"
    platform = f"{jit.compiler_identity()}|{' '.join(COMPLEX_C_FLAGS)}|{sysconfig.get_config_var('SOABI')}"

    def build(real: bool) -> Path | None:
        part = "complex-c-real" if real else "complex-c"

        def generate() -> str:
            from .complex_c.printer import generate_complex_c_source

            return generate_complex_c_source(jit.system_from_record(record), real)

        try:
            return cache.get_artifact(
                cache.cache_dir(),
                cache.artifact_key(fingerprint, CODEGEN_VERSION, f"{part}|{platform}"),
                "c",
                "so",
                generate,
                partial(jit.compile_shared, flags=COMPLEX_C_FLAGS),
                what=f"the {'real twin' if real else 'complex C kernel'} of {record['name']}",
            )
        except cache.CodegenError as exc:
            jit._warn_once(f"{str(exc).splitlines()[0]}; using the NumPy kernel")
            return None

    return ComplexCKernel(build, n, p, m)
