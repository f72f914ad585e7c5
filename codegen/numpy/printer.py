"""System → source of a vectorised NumPy module (residual, Jacobian, outputs and a batch solver).

The generated module evaluates every function on stacked arrays: ``u`` has the unknowns on its
leading axis and ``theta`` the parameters (each entry a scalar or an array; all broadcast together),
so a whole grid is evaluated at once without a Python loop over its points. The blocks are those of
:mod:`.common`; the special functions H_s(y) and H⁽²⁾_s(y) become calls of ``_H_<i>(y)`` and
``_H2_<i>(y)`` (one pair per order s), defined on the runtime template ``runtime.py.tmpl``
with the rules of :mod:`sobolev_rf.derive.special`; the solver is ``solver.py.tmpl``.
A numerical expectation (:class:`~sobolev_rf.derive.expectations.Quadrature`) becomes a call of the
runtime's ``_expect`` on its rule ``_RULE_<r>`` (the tensor product of the factors the System keeps in
``meta["rules"]``, built at import) and a generated integrand ``_integrand_<i>``, evaluated on all nodes and
points at once (in chunks). Residuals, Jacobians and outputs follow the arithmetic of their arguments:
complex parameters (a spectral parameter z of an operator-valued fixed point) give complex values, with
erfcx(x) and e^x E_ν(x) on their principal branches. The output is deterministic: the same System gives
byte-identical source.
"""

from __future__ import annotations

from collections.abc import Sequence

import sympy as sp
from sympy.printing.numpy import NumPyPrinter

from ...derive.expectations import Quadrature
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
    build_block,
    gamma_orders,
    is_large_order,
    quadrature_rule,
    quadratures,
    system_blocks,
    template,
)


class _Printer(NumPyPrinter):
    """NumPy printer that maps H_s(y) to ``_H_<i>(y)``, H⁽²⁾_s(y) to ``_H2_<i>(y)``, erfcx to SciPy's and
    e^x E_ν(x) to the runtime's ``_scaled_expint`` (both real or complex)."""

    def __init__(self, orders: Sequence[sp.Rational], quads: Sequence[Quadrature] = ()) -> None:
        super().__init__({"fully_qualified_modules": True, "inline": True})
        self._orders = list(orders)
        self._quads = list(quads)

    def _print_Quadrature(self, expr: Quadrature) -> str:
        args = "".join(f", {self._print(a)}" for a in _integrand_arguments(expr))
        return f"_expect(_RULE_{int(expr.args[0])}, _integrand_{self._quads.index(expr)}{args})"

    def _call(self, prefix: str, expr: sp.Expr) -> str:
        return f"{prefix}_{self._orders.index(sp.nsimplify(expr.args[0]))}({self._print(expr.args[1])})"

    def _print_GammaResolvent(self, expr: GammaResolvent) -> str:
        return self._call("_H", expr)

    def _print_GammaResolvent2(self, expr: GammaResolvent2) -> str:
        return self._call("_H2", expr)

    def _print_Erfcx(self, expr: sp.Expr) -> str:
        return f"_special.erfcx({self._print(expr.args[0])})"

    def _print_ScaledExpint(self, expr: sp.Expr) -> str:
        nu = expr.args[0]
        order = repr(float(nu)) if nu.is_number else self._print(nu)  # a parameter for a sum of copies
        return f"_scaled_expint({order}, {self._print(expr.args[1])})"


def _integrand_arguments(q: Quadrature) -> list[sp.Symbol]:
    """The unknowns and parameters an expectation's integrand takes after its coordinates (sorted by name)."""
    return sorted(q.args[1].free_symbols - set(q.args[2:]), key=str)


def _quadrature_lines(system: System, quads: Sequence[Quadrature], printer: _Printer) -> list[str]:
    """The rules of the system's expectations (``_RULE_<r>``) and one integrand function per expectation; a
    rule's data enter the source only as integers and quoted base64 text (a record's data never become code)."""
    lines = []
    for r, factors in enumerate(system.meta.get("rules", [])):
        axes = [[int(a) for a in f["axes"]] for f in factors]
        width = 1 + max((a for ax in axes for a in ax), default=-1)
        parts = ", ".join(
            f"(({', '.join(map(str, ax))},), _unpacked({str(f['nodes'])!r}), _unpacked({str(f['weights'])!r}))"
            for ax, f in zip(axes, factors)
        )
        lines += ["", f"_RULE_{r} = _tensor_rule([{parts}], {width})"]
    for i, q in enumerate(quads):
        names = [str(z) for z in q.args[2:]] + [str(a) for a in _integrand_arguments(q)]
        block = build_block(system, [q.args[1]], prefix="h")
        lines += ["", "", f"def _integrand_{i}({', '.join(names)}):", f'    """The integrand of expectation {i}."""']
        lines += [f"    {name} = {printer.doprint(expr)}" for name, expr in block.assignments]
        lines.append(f"    return {printer.doprint(block.results[0])}")
    return lines


def _unpack(names: Sequence[str], source: str) -> str:
    """``a, b, c = source`` (or ``(a,) = source``)."""
    return f"    {', '.join(names)}{',' if len(names) == 1 else ''} = {source}"


def runtime_source() -> str:
    """The runtime every generated module starts with: the rules of derive.special with their constants."""
    constants = {"threshold": FRACTION_THRESHOLD, "fraction_base": FRACTION_BASE, "fraction_scale": FRACTION_SCALE}
    return template(__package__, "runtime.py.tmpl").format(large_order=LARGE_ORDER, **constants)


def generate_numpy_source(system: System) -> str:
    """Source text of the NumPy module of ``system`` (see the module docstring)."""
    orders = gamma_orders(system)
    quads = quadratures(system)
    printer = _Printer(orders, quads)
    u_names, p_names = list(system.unknown_names), list(system.parameter_names)
    n = len(u_names)
    lines = [
        f'"""Generated by sobolev_rf.codegen.numpy.printer ({CODEGEN_VERSION}) from system {system.name}.',
        "",
        f"System fingerprint {system.fingerprint()}. Do not edit.",
        '"""',
        runtime_source(),
        f"NAME = {system.name!r}",
        f"FINGERPRINT = {system.fingerprint()!r}",
        f"UNKNOWNS = {tuple(u_names)!r}",
        f"PARAMETERS = {tuple(p_names)!r}",
        f"OUTPUTS = {tuple(system.outputs)!r}",
        "",
    ]
    tops = {
        integer: max((float(s) for s in orders if not is_large_order(s) and s.is_integer == integer), default=0.0)
        for integer in (True, False)
    }
    for i, s in enumerate(orders):
        rule = [f"numpy.array({v!r})" for v in quadrature_rule(s)] if is_large_order(s) else ["None", "None"]
        top = tops[bool(s.is_integer)]
        lines += [
            "",
            f"_NODES_{i} = {rule[0]}",
            f"_WEIGHTS_{i} = {rule[1]}",
            "",
            "",
            f"def _H_{i}(y):",
            f'    """H_s(y) for s = {s}."""',
            f"    return _resolvents({float(s)!r}, y, _NODES_{i}, _WEIGHTS_{i}, {top!r})[0]",
            "",
            "",
            f"def _H2_{i}(y):",
            f'    """H2_s(y) = E[1/(t+y)^2] for s = {s}."""',
            f"    return _resolvents({float(s)!r}, y, _NODES_{i}, _WEIGHTS_{i}, {top!r})[1]",
            "",
        ]
    lines += _quadrature_lines(system, quads, printer)
    docs = {
        "residual": "Residuals u - G(u), stacked on the leading axis.",
        "jacobian": "d residual_i / d u_j, shape (n, n, *batch).",
        "outputs": "Outputs as a dict name -> array.",
    }
    for fname, block in system_blocks(system).items():
        lines += [
            "",
            "",
            f"def {fname}(u, theta):",
            f'    """{docs[fname]}"""',
        ]
        lines += [_unpack(names, source) for names, source in ((u_names, "u"), (p_names, "theta")) if names]
        lines += [f"    {name} = {printer.doprint(expr)}" for name, expr in block.assignments]
        values = [printer.doprint(e) for e in block.results]
        if fname == "residual":
            lines.append(f"    return _stack([{', '.join(values)}])")
        elif fname == "jacobian":
            lines.append(f"    flat = _stack([{', '.join(values)}])")
            lines.append(f"    return flat.reshape(({n}, {n}) + flat.shape[1:])")
        else:
            lines.append(f"    values = _stack([{', '.join(values)}])")
            lines.append("    return dict(zip(OUTPUTS, values))")
    if not analytic_jacobian(system):
        lines += [
            "",
            "",
            "def jacobian(u, theta):",
            f'    """{docs["jacobian"]} By forward differences of the residual (relative steps)."""',
            "    return _difference_jacobian(residual, u, theta)",
        ]
    return (
        "\n".join(lines)
        + "\n\n"
        + template(__package__, "solver.py.tmpl").replace("FIXED_POINT_SWITCH", repr(FIXED_POINT_SWITCH["numpy"]))
    )
