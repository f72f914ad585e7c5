"""System → C99 source with a batch solver (compiled and loaded by :mod:`..jit` and :mod:`..runtime`).

The C module mirrors the NumPy one of :mod:`..numpy.printer` point by point (same blocks, same
solver steps and thresholds) so that the two agree to rounding: per point, a damped fixed-point
iteration u ← u − damping·r(u) until max|r| < FIXED_POINT_SWITCH·max(1, max|u|), then Newton with step halving
(up to 12 halvings) until max|r| ≤ tol·max(1, max|u|), then one polishing Newton step. H_s and H⁽²⁾_s
follow the rules of :mod:`sobolev_rf.derive.special` (``runtime.c.tmpl``: e^y E₁(y) by a
power series and a continued fraction, √π e^y erfc(√y)/√y from C99 ``erfc``, the upward recursion,
the continued fraction of H_s above y = 3 with the downward recursion, and the Gauss–Laguerre rule of a
large order). x³ and x⁴ are printed as products.

Special functions are computed once per argument (``special.c.tmpl``): every H_s(y) and H⁽²⁾_s(y) is read from
a memo (``sr_memo``, one per run of points or batch call, shared by the residuals, Jacobians and outputs of
its points: a value depends on its order and argument only) that holds, for each order s, a table of 256
arguments (slot by a hash of the argument's bits) and both values there: a residual reads H at one or two
arguments per node of a ζ-rule, and the columns of a difference Jacobian whose unknown does not move them read
them again. A miss fills every order of the order's family (integer or half-integer s) at that argument: from
one evaluation of its base e^y E₁(y) or √π e^y erfc(√y)/√y and the upward recursion, e.g. H_{1/2}, H_{3/2} and
H_{5/2} and their squares' moments from one ``erfc``, or above y = 3 from one continued fraction at the
family's top order and the downward recursion; a large order's Gauss–Laguerre rule gives both moments of its
order in one pass. The NumPy runtime does the same operations in the same order, so the memo changes the cost,
not the results.

Exported functions (all arrays row-major, one row per point): ``sr_residual_batch``,
``sr_jacobian_batch``, ``sr_outputs_batch``, ``sr_solve_batch`` and ``sr_solve_batch_reusing`` (the same solve,
with each run's factored Jacobian carried from point to point: a continued point takes a fresh Jacobian only
where chord steps on the previous one stall; opt-in, for systems whose Jacobian is expensive).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import sympy as sp
from sympy.printing.c import C99CodePrinter
from sympy.printing.precedence import PRECEDENCE

from ...derive.special import (
    FRACTION_BASE,
    FRACTION_SCALE,
    FRACTION_THRESHOLD,
    LARGE_ORDER,
    GammaResolvent,
    GammaResolvent2,
)
from ...derive.system import System
from ..common import (
    CODEGEN_VERSION,
    FIXED_POINT_SWITCH,
    analytic_jacobian,
    gamma_orders,
    is_large_order,
    quadrature_rule,
    system_blocks,
    template,
)


class _Printer(C99CodePrinter):
    """C99 printer mapping H_s(y) to ``sr_H(sr_m, i, y)`` and H⁽²⁾_s(y) to ``sr_H2(sr_m, i, y)`` (i: the index
    of s among the system's orders; ``sr_m``: the memo of special functions), and x³, x⁴ to products
    (a compiler turns pow(x, 2) into x*x itself, but calls pow for higher powers unless allowed to reassociate)."""

    def __init__(self, orders: Sequence[sp.Rational]) -> None:
        super().__init__()
        self._orders = list(orders)

    def _call(self, prefix: str, expr: sp.Expr) -> str:
        return f"{prefix}(sr_m, {self._orders.index(sp.nsimplify(expr.args[0]))}, {self._print(expr.args[1])})"

    def _print_GammaResolvent(self, expr: GammaResolvent) -> str:
        return self._call("sr_H", expr)

    def _print_GammaResolvent2(self, expr: GammaResolvent2) -> str:
        return self._call("sr_H2", expr)

    def _print_Pow(self, expr: sp.Pow) -> str:
        if expr.exp in (3, 4):
            base = self.parenthesize(expr.base, PRECEDENCE["Mul"])
            return f"({base}*{base}*{base})" if expr.exp == 3 else f"(({base}*{base})*({base}*{base}))"
        return str(super()._print_Pow(expr))


def _c_array(values: Sequence[float]) -> str:
    """C initializer with round-trip (17 significant digit) literals."""
    return "{" + ", ".join(f"{v:.17g}" for v in values) + "}"


def _recursion_steps(s: float) -> int:
    """Steps of the upward recursion from its base (1 for an integer s, else 1/2) to s, counted as the runtime's
    loop ``for (s0 = base; s0 < s; s0 += 1.0)`` counts them."""
    s0, steps = (1.0 if s == math.floor(s) else 0.5), 0
    while s0 < s:
        s0, steps = s0 + 1.0, steps + 1
    return steps


def _special_tables(orders: Sequence[sp.Rational]) -> list[str]:
    """The orders' rules as tables for ``special.c.tmpl``: per order its value, its family (0: integer s,
    1: half-integer s, each family by its recursions from its base or from its top order; 2: a large s, by the
    Laplace-integral rule, on its own), its recursion steps and (a large s only) its quadrature rule; per family
    the steps of its highest and lowest orders and the highest order."""
    values = [float(s) for s in orders]
    family = [2 if is_large_order(s) else 0 if v == math.floor(v) else 1 for s, v in zip(orders, values)]
    steps = [_recursion_steps(v) for v in values]
    top = [max((t for f, t in zip(family, steps) if f == g), default=-1) for g in (0, 1)]
    low = [min((t for f, t in zip(family, steps) if f == g), default=0) for g in (0, 1)]
    top_order = [max((v for f, v in zip(family, values) if f == g), default=0.0) for g in (0, 1)]
    lines = []
    rules = {i: quadrature_rule(s) for i, s in enumerate(orders) if family[i] == 2}
    for i, (nodes, weights) in rules.items():
        lines += [
            f"/* the rule of order s = {orders[i]} */",
            f"static const double sr_nodes_{i}[{len(nodes)}] = {_c_array(nodes)};",
            f"static const double sr_weights_{i}[{len(weights)}] = {_c_array(weights)};",
        ]
    count = len(orders)
    table = [
        (f"sr_nodes_{i}", f"sr_weights_{i}", len(rules[i][0])) if i in rules else ("0", "0", 0) for i in range(count)
    ]
    lines += [
        f"#define SR_ORDERS {count}",
        f"static const double sr_order[{count}] = {_c_array(values)};",
        f"static const int sr_family[{count}] = {{{', '.join(map(str, family))}}};",
        f"static const int sr_steps[{count}] = {{{', '.join(map(str, steps))}}};",
        f"static const int sr_top[2] = {{{', '.join(map(str, top))}}};",
        f"static const int sr_low[2] = {{{', '.join(map(str, low))}}};",
        f"static const double sr_top_order[2] = {_c_array(top_order)};",
        f"static const double *const sr_nodes[{count}] = {{{', '.join(t[0] for t in table)}}};",
        f"static const double *const sr_weights[{count}] = {{{', '.join(t[1] for t in table)}}};",
        f"static const int sr_sizes[{count}] = {{{', '.join(str(t[2]) for t in table)}}};",
        template(__package__, "special.c.tmpl"),
    ]
    return lines


def generate_c_source(system: System) -> str:
    """C99 source of ``system`` (see the module docstring); deterministic."""
    orders = gamma_orders(system)
    printer = _Printer(orders)
    n, p, m = len(system.unknowns), len(system.parameters), len(system.outputs)
    lines = [
        f"/* Generated by sobolev_rf.codegen.c.printer ({CODEGEN_VERSION}) from system {system.name}.",
        f"   System fingerprint {system.fingerprint()}. Do not edit. */",
        "#include <math.h>",
        "#include <stdint.h>",
        "#include <string.h>",
        "#include <stdio.h>",
        "long sr_cnt[8];",
        f"#define SR_N {n}",
        f"#define SR_P {p}",
        f"#define SR_M {m}",
        f"#define SR_FRACTION_THRESHOLD {FRACTION_THRESHOLD!r}",
        f"#define SR_FRACTION_LEVELS(y) ({FRACTION_BASE} + (int)ceil({FRACTION_SCALE!r} / sqrt(y)))",
        f"#define SR_LARGE_ORDER {LARGE_ORDER!r}",
        f"#define SR_FP_SWITCH {FIXED_POINT_SWITCH['c']!r}",
        template(__package__, "runtime.c.tmpl"),
    ]
    lines += (
        _special_tables(orders)
        if orders
        else ["typedef struct { int none; } sr_memo;", "static void sr_memo_clear(sr_memo *m) { m->none = 0; }"]
    )
    inputs = [f"    const double {u} = u[{i}];" for i, u in enumerate(system.unknowns)]
    inputs += [f"    const double {q} = th[{i}];" for i, q in enumerate(system.parameters)]
    for fname, block in system_blocks(system).items():
        used = set().union(*(e.free_symbols for _, e in block.assignments), *(e.free_symbols for e in block.results))
        names = {str(s) for s in used}
        lines += [
            f"static void sr_{fname}(const double *u, const double *th, double *out, sr_memo *sr_m)",
            "{" + (" sr_cnt[5]++;" if fname == "residual" else ""),
        ]
        lines += [line for line in inputs if line.split()[2] in names]
        lines += [f"    const double {name} = {printer.doprint(expr)};" for name, expr in block.assignments]
        lines += [f"    out[{i}] = {printer.doprint(expr)};" for i, expr in enumerate(block.results)]
        lines += ["}", ""]
    if not analytic_jacobian(system):
        lines += _difference_jacobian()
    return "\n".join(lines) + "\n" + template(__package__, "solver.c.tmpl")


def _difference_jacobian() -> list[str]:
    """``sr_jacobian`` by forward differences of ``sr_residual`` with the NumPy backend's relative steps
    h_j = 10⁻⁷·max(|u_j|, 10⁻⁴) (for systems whose Jacobian is not emitted, :func:`analytic_jacobian`)."""
    return [
        "static void sr_jacobian(const double *u, const double *th, double *out, sr_memo *sr_m)",
        "{",
        "    double r[SR_N], shifted[SR_N], column[SR_N]; sr_cnt[4]++;",
        "    sr_residual(u, th, r, sr_m);",
        "    for (int j = 0; j < SR_N; ++j) {",
        "        for (int i = 0; i < SR_N; ++i) shifted[i] = u[i];",
        "        const double h = 1e-7 * fmax(fabs(u[j]), 1e-4);",
        "        shifted[j] += h;",
        "        sr_residual(shifted, th, column, sr_m);",
        "        for (int i = 0; i < SR_N; ++i) out[i * SR_N + j] = (column[i] - r[i]) / h;",
        "    }",
        "}",
        "",
    ]
