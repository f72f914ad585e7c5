"""System → C99 source with a batch solver, compiled by the system C compiler and loaded with ctypes.

The C module mirrors the NumPy one of :mod:`.numpy_printer` point by point (same blocks, same
solver steps and thresholds) so that the two agree to rounding: per point, a damped fixed-point
iteration u ← u − damping·r(u) until max|r| < 10⁻⁶·max(1, max|u|), then Newton with step halving
(up to 12 halvings) until max|r| ≤ tol·max(1, max|u|). The Gamma resolvent uses C implementations
of e^y E₁(y) (power series for y ≤ 1, a continued fraction evaluated by the modified Lentz method
above), of √π e^y erfc(√y)/√y (from C99 ``erfc``; exact enough because y ≤ 30 there), the upward
recursion H_{s+1} = (1 − yH_s)/s and the same Gauss–Laguerre rule as NumPy for y > 30.

Exported functions (all arrays row-major, one row per point): ``sr_residual_batch``,
``sr_jacobian_batch``, ``sr_outputs_batch`` and ``sr_solve_batch``.
"""
from __future__ import annotations

import ctypes
import os
import shutil
import subprocess
from pathlib import Path
from typing import Sequence

import numpy as np
import sympy as sp
from sympy.printing.c import C99CodePrinter

from sobolev_rf.derive.special import GammaResolvent
from sobolev_rf.derive.system import System

from .numpy_printer import CODEGEN_VERSION, LAGUERRE_THRESHOLD, gamma_orders, laguerre_rule, system_blocks


class _Printer(C99CodePrinter):
    """C99 printer mapping ``GammaResolvent(s, y)`` to ``sr_H_<i>(y)``."""

    def __init__(self, orders: Sequence[sp.Rational]) -> None:
        super().__init__()
        self._orders = list(orders)

    def _print_GammaResolvent(self, expr: GammaResolvent) -> str:
        return f"sr_H_{self._orders.index(sp.nsimplify(expr.args[0]))}({self._print(expr.args[1])})"


_SPECIAL = r"""
/* e^y E1(y) for y > 0 */
static double sr_e1x(double y)
{
    if (y <= 1.0) {
        /* E1(y) = -gamma - ln y + sum_{n>=1} (-1)^(n+1) y^n / (n n!) */
        double term = 1.0, sum = 0.0;
        for (int n = 1; n < 60; ++n) {
            term *= -y / n;
            sum -= term / n;
            if (fabs(term / n) < 1e-17 * fabs(sum)) break;
        }
        return exp(y) * (-0.57721566490153286061 - log(y) + sum);
    }
    /* e^y E1(y) = 1/(y+1- 1/(y+3- 4/(y+5- 9/(y+7- ...)))), modified Lentz */
    const double tiny = 1e-300;
    double f = y + 1.0, c = f, d = 0.0;
    for (int n = 1; n < 500; ++n) {
        double a = -(double)n * n, b = y + 2.0 * n + 1.0;
        d = b + a * d;
        if (fabs(d) < tiny) d = tiny;
        c = b + a / c;
        if (fabs(c) < tiny) c = tiny;
        d = 1.0 / d;
        double delta = c * d;
        f *= delta;
        if (fabs(delta - 1.0) < 1e-16) break;
    }
    return 1.0 / f;
}

/* sqrt(pi) e^y erfc(sqrt y) / sqrt y for 0 < y <= 30 */
static double sr_half(double y)
{
    double r = sqrt(y);
    return 1.7724538509055160273 * exp(y) * erfc(r) / r;
}

/* in-place Gaussian elimination with partial pivoting: A x = b, x returned in b; 0 if singular */
static int sr_lin_solve(double *A, double *b)
{
    for (int c = 0; c < SR_N; ++c) {
        int p = c;
        for (int i = c + 1; i < SR_N; ++i)
            if (fabs(A[i * SR_N + c]) > fabs(A[p * SR_N + c])) p = i;
        if (!(fabs(A[p * SR_N + c]) > 1e-300)) return 0;
        if (p != c) {
            for (int j = 0; j < SR_N; ++j) {
                double t = A[c * SR_N + j]; A[c * SR_N + j] = A[p * SR_N + j]; A[p * SR_N + j] = t;
            }
            double t = b[c]; b[c] = b[p]; b[p] = t;
        }
        for (int i = c + 1; i < SR_N; ++i) {
            double f = A[i * SR_N + c] / A[c * SR_N + c];
            for (int j = c; j < SR_N; ++j) A[i * SR_N + j] -= f * A[c * SR_N + j];
            b[i] -= f * b[c];
        }
    }
    for (int i = SR_N - 1; i >= 0; --i) {
        double s = b[i];
        for (int j = i + 1; j < SR_N; ++j) s -= A[i * SR_N + j] * b[j];
        b[i] = s / A[i * SR_N + i];
    }
    return 1;
}
"""

_SOLVER = r"""
/* max |r_i|, NaN if any entry is not finite */
static double sr_norm(const double *r)
{
    double m = 0.0;
    for (int i = 0; i < SR_N; ++i) {
        if (!isfinite(r[i])) return NAN;
        if (fabs(r[i]) > m) m = fabs(r[i]);
    }
    return m;
}

static double sr_scale(const double *u)
{
    double m = 1.0;
    for (int i = 0; i < SR_N; ++i) if (fabs(u[i]) > m) m = fabs(u[i]);
    return m;
}

/* damped fixed point, then Newton with step halving; returns 1 if converged */
static int sr_solve_point(const double *th, double *u, double tol, int fp_iter, int newton_iter,
                          double damping, double *resnorm)
{
    double r[SR_N], J[SR_N * SR_N], step[SR_N], trial[SR_N], rt[SR_N];
    for (int it = 0; it < fp_iter; ++it) {
        sr_residual(u, th, r);
        double n = sr_norm(r);
        if (!(n >= 1e-6 * sr_scale(u))) break;
        for (int i = 0; i < SR_N; ++i) u[i] -= damping * r[i];
    }
    sr_residual(u, th, r);
    double norm = sr_norm(r);
    for (int it = 0; it < newton_iter; ++it) {
        if (!isfinite(norm) || norm <= tol * sr_scale(u)) break;
        sr_jacobian(u, th, J);
        int ok = 1;
        for (int i = 0; i < SR_N * SR_N; ++i) if (!isfinite(J[i])) ok = 0;
        for (int i = 0; i < SR_N; ++i) step[i] = r[i];
        if (ok && !sr_lin_solve(J, step))
            for (int i = 0; i < SR_N; ++i) step[i] = r[i];
        double t = 1.0;
        int accepted = 0;
        for (int h = 0; h < 12 && !accepted; ++h) {
            for (int i = 0; i < SR_N; ++i) trial[i] = u[i] - t * step[i];
            sr_residual(trial, th, rt);
            double nt = sr_norm(rt);
            if (nt < norm) {
                for (int i = 0; i < SR_N; ++i) { u[i] = trial[i]; r[i] = rt[i]; }
                norm = nt;
                accepted = 1;
            }
            t *= 0.5;
        }
        if (!accepted) break;
    }
    /* polish: one more Newton step if it does not increase the residual (the stopping test leaves up
       to tol*scale; a last quadratic step takes u to rounding level) */
    if (isfinite(norm)) {
        sr_jacobian(u, th, J);
        for (int i = 0; i < SR_N; ++i) step[i] = r[i];
        if (sr_lin_solve(J, step)) {
            for (int i = 0; i < SR_N; ++i) trial[i] = u[i] - step[i];
            sr_residual(trial, th, rt);
            double nt = sr_norm(rt);
            if (nt <= norm) {
                for (int i = 0; i < SR_N; ++i) u[i] = trial[i];
                norm = nt;
            }
        }
    }
    *resnorm = norm;
    return isfinite(norm) && norm <= 1e3 * tol * sr_scale(u);
}

void sr_residual_batch(long npts, const double *u, const double *th, double *out)
{
    for (long i = 0; i < npts; ++i) sr_residual(u + i * SR_N, th + i * SR_P, out + i * SR_N);
}

void sr_jacobian_batch(long npts, const double *u, const double *th, double *out)
{
    for (long i = 0; i < npts; ++i) sr_jacobian(u + i * SR_N, th + i * SR_P, out + i * SR_N * SR_N);
}

void sr_outputs_batch(long npts, const double *u, const double *th, double *out)
{
    for (long i = 0; i < npts; ++i) sr_outputs(u + i * SR_N, th + i * SR_P, out + i * SR_M);
}

/* u: initial guess in, solution out; status: 1 converged, 0 not */
void sr_solve_batch(long npts, const double *th, double *u, double *out, int *status, double *resnorm,
                    double tol, int fp_iter, int newton_iter, double damping)
{
    /* points are independent: one thread per chunk when compiled with OpenMP, for batches large enough
       to pay for waking the threads (small batches, e.g. one continuation slice, run serially: on a busy
       machine an oversubscribed team costs more than it gains) */
    #pragma omp parallel for schedule(dynamic, 64) if (npts >= 2048)
    for (long i = 0; i < npts; ++i) {
        status[i] = sr_solve_point(th + i * SR_P, u + i * SR_N, tol, fp_iter, newton_iter, damping, resnorm + i);
        sr_outputs(u + i * SR_N, th + i * SR_P, out + i * SR_M);
    }
}
"""


def _c_array(values: Sequence[float]) -> str:
    """C initializer with round-trip (17 significant digit) literals."""
    return "{" + ", ".join(f"{v:.17g}" for v in values) + "}"


def generate_c_source(system: System) -> str:
    """C99 source of ``system`` (see the module docstring); deterministic."""
    orders = gamma_orders(system)
    printer = _Printer(orders)
    n, p, m = len(system.unknowns), len(system.parameters), len(system.outputs)
    lines = [f"/* Generated by sobolev_rf.codegen.c_printer ({CODEGEN_VERSION}) from system {system.name}.",
             f"   System fingerprint {system.fingerprint()}. Do not edit. */",
             "#include <math.h>",
             f"#define SR_N {n}", f"#define SR_P {p}", f"#define SR_M {m}",
             _SPECIAL]
    for i, s in enumerate(orders):
        nodes, weights = laguerre_rule(s)
        integer = s.is_integer
        lines += [f"static const double sr_nodes_{i}[{len(nodes)}] = {_c_array(nodes)};",
                  f"static const double sr_weights_{i}[{len(weights)}] = {_c_array(weights)};",
                  "",
                  f"/* H_s(y) for s = {s} */",
                  f"static double sr_H_{i}(double y)",
                  "{",
                  f"    if (y > {LAGUERRE_THRESHOLD!r}) {{",
                  "        double sum = 0.0;",
                  f"        for (int j = 0; j < {len(nodes)}; ++j) sum += sr_weights_{i}[j] / (sr_nodes_{i}[j] + y);",
                  "        return sum;",
                  "    }",
                  f"    double h = {'sr_e1x(y)' if integer else 'sr_half(y)'};",
                  f"    for (double s0 = {'1.0' if integer else '0.5'}; s0 < {float(s)!r}; s0 += 1.0) h = (1.0 - y * h) / s0;",
                  "    return h;",
                  "}",
                  ""]
    inputs = [f"    const double {u} = u[{i}];" for i, u in enumerate(system.unknowns)]
    inputs += [f"    const double {q} = th[{i}];" for i, q in enumerate(system.parameters)]
    for fname, block in system_blocks(system).items():
        used = set().union(*(e.free_symbols for _, e in block.assignments), *(e.free_symbols for e in block.results))
        names = {str(s) for s in used}
        lines += [f"static void sr_{fname}(const double *u, const double *th, double *out)", "{"]
        lines += [line for line in inputs if line.split()[2] in names]
        lines += [f"    const double {name} = {printer.doprint(expr)};" for name, expr in block.assignments]
        lines += [f"    out[{i}] = {printer.doprint(expr)};" for i, expr in enumerate(block.results)]
        lines += ["}", ""]
    return "\n".join(lines) + _SOLVER


def find_compiler() -> str | None:
    """Path of the system C compiler (``$CC``, ``cc``, ``gcc`` or ``clang``), or None."""
    for name in (os.environ.get("CC"), "cc", "gcc", "clang"):
        if name:
            path = shutil.which(name)
            if path:
                return path
    return None


def compile_shared(source: Path, target: Path) -> None:
    """``cc -O2 -shared -fPIC [-fopenmp] -o target source -lm``; raises RuntimeError with the compiler output.

    OpenMP (the batch solver's points in parallel) is used when the compiler accepts ``-fopenmp``.
    """
    compiler = find_compiler()
    if compiler is None:
        raise RuntimeError("no C compiler found")
    cmd = [compiler, "-O2", "-std=c99", "-shared", "-fPIC", "-fopenmp", "-o", str(target), str(source), "-lm"]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        cmd.remove("-fopenmp")
        proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{proc.stderr.strip()}")


_D = ctypes.POINTER(ctypes.c_double)
_I = ctypes.POINTER(ctypes.c_int)


class CModule:
    """ctypes binding of a compiled system: batch residual, Jacobian, outputs and solver."""

    def __init__(self, path: Path, n_unknowns: int, n_parameters: int, output_names: Sequence[str]) -> None:
        self.path = path
        self.n, self.p = n_unknowns, n_parameters
        self.output_names = tuple(output_names)
        self._lib = ctypes.CDLL(str(path))
        for name in ("sr_residual_batch", "sr_jacobian_batch", "sr_outputs_batch"):
            getattr(self._lib, name).argtypes = [ctypes.c_long, _D, _D, _D]
            getattr(self._lib, name).restype = None
        self._lib.sr_solve_batch.argtypes = [ctypes.c_long, _D, _D, _D, _I, _D,
                                             ctypes.c_double, ctypes.c_int, ctypes.c_int, ctypes.c_double]
        self._lib.sr_solve_batch.restype = None

    def _rows(self, a: np.ndarray, width: int) -> np.ndarray:
        return np.ascontiguousarray(np.asarray(a, dtype=float).reshape(-1, width))

    def _call(self, name: str, u: np.ndarray, theta: np.ndarray, width: int) -> np.ndarray:
        u, theta = self._rows(u, self.n), self._rows(theta, self.p)
        if len(u) != len(theta):
            raise ValueError("u and theta need the same number of points")
        out = np.empty((len(u), width))
        getattr(self._lib, name)(len(u), u.ctypes.data_as(_D), theta.ctypes.data_as(_D), out.ctypes.data_as(_D))
        return out

    def residual(self, u: np.ndarray, theta: np.ndarray) -> np.ndarray:
        """Residuals of points given as rows: u (npts, n), theta (npts, p) → (npts, n)."""
        return self._call("sr_residual_batch", u, theta, self.n)

    def jacobian(self, u: np.ndarray, theta: np.ndarray) -> np.ndarray:
        """Jacobians (npts, n, n)."""
        return self._call("sr_jacobian_batch", u, theta, self.n * self.n).reshape(-1, self.n, self.n)

    def outputs(self, u: np.ndarray, theta: np.ndarray) -> np.ndarray:
        """Outputs (npts, m) in the order of ``output_names``."""
        return self._call("sr_outputs_batch", u, theta, len(self.output_names))

    def solve(self, theta: np.ndarray, u0: np.ndarray | None = None, tol: float = 1e-13,
              fixed_point_iterations: int = 2000, newton_iterations: int = 60,
              damping: float = 0.3) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Solve every row of theta (npts, p): returns u (npts, n), outputs, converged, residual norm."""
        theta = self._rows(theta, self.p)
        npts = len(theta)
        u = np.full((npts, self.n), 0.5) if u0 is None else self._rows(np.broadcast_to(u0, (npts, self.n)), self.n).copy()
        out = np.empty((npts, len(self.output_names)))
        status = np.empty(npts, dtype=np.intc)
        norm = np.empty(npts)
        self._lib.sr_solve_batch(npts, theta.ctypes.data_as(_D), u.ctypes.data_as(_D), out.ctypes.data_as(_D),
                                 status.ctypes.data_as(_I), norm.ctypes.data_as(_D),
                                 tol, fixed_point_iterations, newton_iterations, damping)
        return u, out, status.astype(bool), norm
