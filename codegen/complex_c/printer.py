"""System → C99 source in complex arithmetic: the operator-valued fixed point at complex parameters.

The spectral parameter z of a resolvent pencil makes every unknown and output complex. This module writes,
for a :class:`~sobolev_rf.derive.system.System` whose expressions use only +, ×, powers, exp, log, √,
erfcx and e^x E_ν(x) of integer or half-integer order ν (a number, or an expression in the parameters)
(:data:`~sobolev_rf.codegen.complex_c.SUPPORTED`), a C99 source with
``double complex`` arithmetic on the blocks of :mod:`..common` (the same CSE as the NumPy module), on
principal branches (``csqrt``, ``cpow``, ``clog``; a half-integer power is an integer power of ``csqrt``, the
same branch), erfcx(z) = w(iz) through the Faddeeva function of ``faddeeva.c.tmpl`` (Weideman's rational
approximation, coefficients computed here), e^x E_ν(x) by the rules of the NumPy kernel (``expint.c.tmpl``:
E₁ by its power series or continued fraction; a memo, ``memo.c.tmpl``, lets each column of the Jacobian by
differences evaluate only the special functions of its unknown) and the batch functions and per-point damped Newton of
``kernel.c.tmpl``: ``src_residual_batch``, ``src_outputs_batch``, ``src_jacobian_batch`` (forward
differences), ``src_newton_batch``, ``src_erfcx_batch`` and ``src_scaled_expint_batch``. With ``real``, its
real twin instead, a library of its own (a spectrum never evaluates it, a real solve never the complex one: each
build compiles half the expressions): the same expressions in ``double`` arithmetic (``real.c.tmpl``; NaN
outside the real domain, as in NumPy) for real parameters, ``srr_residual_batch``, ``srr_outputs_batch``,
``srr_jacobian_batch`` (``real_kernel.c.tmpl``). A numerical expectation
(:class:`~sobolev_rf.derive.expectations.Quadrature`) is a loop over the nodes of its rule, held as constant
arrays (the tensor product of the factors in the System's ``meta["rules"]``), around its integrand's block.
Deterministic: the same System gives byte-identical source.
"""

from __future__ import annotations

import base64
import math
import re

import numpy as np
import sympy as sp

from ...derive.expectations import Erfcx, Quadrature, ScaledExpint
from ...derive.laws import tensor_rule
from ...derive.system import System
from ..common import CODEGEN_VERSION, build_block, quadrature_block, quadratures, template

#: Terms of Weideman's approximation of w(z) (relative error about 1e-15 in the upper half plane) and the
#: modulus beyond which the asymptotic series is used.
W_TERMS = 40
W_FAR = 1e3


class UnsupportedExpression(ValueError):
    """An expression the complex C printer cannot write (the NumPy kernel is used instead)."""


def weideman_coefficients(terms: int = W_TERMS) -> tuple[float, list[float]]:
    """L and a_1 … a_N of w(z) ≈ 1/(√π(L − iz)) + 2/(L − iz)² Σ a_n Z^{n−1}, Z = (L + iz)/(L − iz):
    a_n = (1/2M) Σ_{|k|<M} f(t_k) cos(nθ_k), f(t) = e^{−t²}(L² + t²), t_k = L tan(θ_k/2), θ_k = kπ/M, M = 2N."""
    m = 2 * terms
    L = math.sqrt(terms / math.sqrt(2))
    theta = np.arange(-m + 1, m) * math.pi / m
    t = L * np.tan(theta / 2)
    f = np.exp(-(t**2)) * (L**2 + t**2)
    n = np.arange(1, terms + 1)
    a = (np.cos(n[:, None] * theta[None, :]) @ f) / (2 * m)
    return L, [float(v) for v in a]


def c_name(name: str) -> str:
    """The C identifier of a symbol (prefixed: no clash with C keywords or ``complex.h``'s ``I``)."""
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
        raise UnsupportedExpression(f"the symbol name {name!r}")
    return "s_" + name


def _literal(value: float) -> str:
    text = repr(float(value))
    return text if any(c in text for c in ".en") else text + ".0"


class _Writer:
    """SymPy expression → C99 complex expression, or with ``real`` a ``double`` one (raises
    :class:`UnsupportedExpression`)."""

    def __init__(self, real: bool = False) -> None:
        self.real = real
        self.f = "srr_" if real else "sr_"  # the prefix of the runtime's functions

    def _math(self, name: str) -> str:
        return name if self.real else "c" + name

    def __call__(self, expr: sp.Expr) -> str:
        if isinstance(expr, sp.Symbol):
            return c_name(str(expr))
        if expr is sp.pi:
            return _literal(math.pi)
        if expr is sp.E:
            return _literal(math.e)
        if isinstance(expr, sp.Number):
            if not expr.is_real or not expr.is_finite:
                raise UnsupportedExpression(f"the number {expr}")
            return _literal(float(expr))
        if isinstance(expr, sp.Add):
            return "(" + " + ".join(self(a) for a in expr.args) + ")"
        if isinstance(expr, sp.Mul):
            return "(" + "*".join(self(a) for a in expr.args) + ")"
        if isinstance(expr, sp.Pow):
            return self._pow(expr.base, expr.exp)
        if isinstance(expr, sp.exp):
            return f"{self._math('exp')}({self(expr.args[0])})"
        if isinstance(expr, sp.log) and len(expr.args) == 1:
            return f"{self._math('log')}({self(expr.args[0])})"
        if isinstance(expr, Erfcx):
            return f"{self.f}m_erfcx(m, {self(expr.args[0])})"
        if isinstance(expr, ScaledExpint):
            nu = expr.args[0]
            if nu.is_number:
                if not (nu.is_Rational and nu > 0 and (2 * nu).is_Integer):
                    raise UnsupportedExpression(f"e^x E_nu(x) of order {nu}")
                order = _literal(float(nu))
            else:  # a parameter order (k/2 for a sum of k copies), read as a real number at run time
                order = self(nu) if self.real else f"creal({self(nu)})"
            return f"{self.f}m_scaled_expint(m, {order}, {self(expr.args[1])})"
        raise UnsupportedExpression(f"{type(expr).__name__}")

    def _pow(self, base: sp.Expr, e: sp.Expr) -> str:
        b = self(base)
        if e.is_Integer:
            k = int(e)
            if k == -1:
                return f"(1.0/{b})"
            if abs(k) <= 64:
                return f"{self.f}ipow({b}, {k})"
        if e.is_Rational and int(e.q) == 2 and abs(int(e.p)) <= 129:
            k = int(e.p)
            root = f"{self._math('sqrt')}({b})"
            return root if k == 1 else f"{self.f}ipow({root}, {k})"
        return f"{self._math('pow')}({b}, {self(e)})"


def _rule_lines(system: System) -> list[str]:
    """Each stored rule r of the system's expectations (``meta["rules"]``) as C arrays: ``SR_RULE<r>_NODES``
    (row-major, one row per node) and ``SR_RULE<r>_WEIGHTS`` of the tensor product of its factors."""
    lines = []
    for r, factors in enumerate(system.meta.get("rules", [])):
        axes = [[int(a) for a in f["axes"]] for f in factors]
        width = 1 + max((a for ax in axes for a in ax), default=-1)
        weights = [np.frombuffer(base64.b64decode(str(f["weights"])), dtype="<f8") for f in factors]
        parts = [
            (ax, np.frombuffer(base64.b64decode(str(f["nodes"])), dtype="<f8").reshape(len(w), len(ax)), w)
            for ax, f, w in zip(axes, factors, weights)
        ]
        coords, w = tensor_rule(parts, width)
        nodes = np.stack(coords, axis=1).ravel() if width else np.zeros(1)
        lines += [
            f"#define SR_RULE{r}_SIZE {len(w)}L",
            f"#define SR_RULE{r}_WIDTH {width}",
            f"static const double SR_RULE{r}_NODES[] = {{{', '.join(_literal(x) for x in nodes)}}};",
            f"static const double SR_RULE{r}_WEIGHTS[] = {{{', '.join(_literal(x) for x in w)}}};",
            "",
        ]
    return lines


def _sum_lines(system: System, name: str, q: Quadrature, kind: str, writer: _Writer) -> list[str]:
    """``name`` = Σ_a w_a h(ζ_a) over the nodes of the expectation's rule: a loop whose body is the integrand's
    block (its own CSE), the coordinates read from the rule's row."""
    r = int(q.args[0])
    block = build_block(system, [q.args[1]], prefix="h")
    lines = [
        f"    {kind} {name} = 0.0;",
        f"    for (long a = 0; a < SR_RULE{r}_SIZE; ++a) {{",
        f"        const double *row = SR_RULE{r}_NODES + a * SR_RULE{r}_WIDTH;",
    ]
    lines += [f"        const {kind} {c_name(str(z))} = row[{i}];" for i, z in enumerate(q.args[2:])]
    lines += [f"        const {kind} {c_name(h)} = {writer(e)};" for h, e in block.assignments]
    lines += [f"        {name} += SR_RULE{r}_WEIGHTS[a] * {writer(block.results[0])};", "    }"]
    return lines


_HEADER = """\
#include <complex.h>
#include <math.h>
#include <string.h>

/* z^k for an integer k (binary powering; 1/z^|k| for k < 0) */
static inline double complex sr_ipow(double complex z, int k)
{
    int m = k < 0 ? -k : k;
    double complex r = 1.0;
    while (m) {
        if (m & 1) r *= z;
        z *= z;
        m >>= 1;
    }
    return k < 0 ? 1.0 / r : r;
}
"""


def generate_complex_c_source(system: System, real: bool = False) -> str:
    """C99 source of ``system`` in complex arithmetic, or with ``real`` of its real twin (module docstring);
    raises :class:`UnsupportedExpression` for an expression outside
    :data:`~sobolev_rf.codegen.complex_c.SUPPORTED`."""
    kind, prefix, writer = ("double", "srr_", _Writer(real=True)) if real else ("double complex", "sr_", _Writer())
    n, p, m = len(system.unknowns), len(system.parameters), len(system.outputs)
    L, coeffs = weideman_coefficients()
    lines = [
        f"/* Generated by sobolev_rf.codegen.complex_c.printer ({CODEGEN_VERSION}) from system {system.name}.",
        f"   System fingerprint {system.fingerprint()}. Do not edit. */",
        _HEADER,
        f"#define SR_N {n}",
        f"#define SR_P {p}",
        f"#define SR_M {m}",
        f"#define SR_SQRT_PI {_literal(math.sqrt(math.pi))}",
        f"#define SR_W_L {_literal(L)}",
        f"#define SR_W_TERMS {len(coeffs)}",
        f"#define SR_W_FAR {_literal(W_FAR)}",
        "static const double SR_W_COEFFS[SR_W_TERMS] = {" + ", ".join(_literal(c) for c in reversed(coeffs)) + "};",
        "",
        template(__package__, "faddeeva.c.tmpl"),
        template(__package__, "expint.c.tmpl"),
        template(__package__, "memo.c.tmpl"),
        *([template(__package__, "real.c.tmpl")] if real else []),
    ]
    quads = quadratures(system)
    lines += _rule_lines(system)
    for fname, exprs in (("residual", list(system.residuals)), ("outputs", list(system.outputs.values()))):
        block = quadrature_block(system, exprs, quads)
        used = set().union(*(e.free_symbols for _, e in block.assignments), *(e.free_symbols for e in block.results))
        names = {c_name(str(s)) for s in used}
        inputs = [f"u[{i}]" for i in range(len(system.unknowns))] + [f"th[{i}]" for i in range(p)]
        symbols = [c_name(str(s)) for s in (*system.unknowns, *system.parameters)]
        lines += [f"static void {prefix}{fname}(const {kind} *u, const {kind} *th, {kind} *out, sr_memo *m)", "{"]
        lines += [f"    const {kind} {name} = {value};" for name, value in zip(symbols, inputs) if name in names]
        for name, expr in block.assignments:
            if isinstance(expr, Quadrature):
                lines += _sum_lines(system, c_name(name), expr, kind, writer)
            else:
                lines.append(f"    const {kind} {c_name(name)} = {writer(expr)};")
        lines += [f"    out[{i}] = {writer(expr)};" for i, expr in enumerate(block.results)]
        lines += ["}", ""]
    return "\n".join(lines) + "\n" + template(__package__, "real_kernel.c.tmpl" if real else "kernel.c.tmpl")
