"""The pencil command's output: the linear pencil, its self-adjoint form and the fixed-point equations as text,
LaTeX or JSON, with the solution where it was solved (:class:`sobolev_rf.numeric.theory.ovfp.FixedPoint`).

``meta`` is the plain data kept with a derived system (``text``, ``latex`` and ``json`` forms of what is
printed), so a cached system prints without SymPy.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any


def json_number(value: float | complex) -> float | dict[str, float]:
    """A JSON number, or ``{"re": ..., "im": ...}`` for a complex value."""
    if isinstance(value, complex):
        return {"re": value.real, "im": value.imag}
    return float(value)


def text_number(value: float | complex) -> str:
    """A number to 15 digits, a complex one as ``a + bi``."""
    if isinstance(value, complex):
        sign = "-" if value.imag < 0 else "+"
        return f"{value.real:.15g} {sign} {abs(value.imag):.15g}i"
    return f"{value:.15g}"


def json_text(meta: Mapping[str, Any], solution: Any, herglotz: Mapping[str, int], self_adjoint: bool) -> str:
    """The expression, pencil and system (and the self-adjoint pencil) as JSON, with the solution: unknowns,
    traces, residual, method, quadrature error and the imaginary signs checked."""
    data: dict[str, Any] = dict(meta["json"])
    if self_adjoint:
        data["self_adjoint_pencil"] = meta["self_adjoint_json"]
    if solution is not None:
        data["solution"] = {
            "unknowns": {k: json_number(v) for k, v in solution.unknowns.items()},
            "traces": {k: json_number(v) for k, v in solution.outputs.items()},
            "residual": solution.residual,
            "method": solution.method,
            "quadrature_error": solution.quadrature_error,
        }
        if herglotz:
            data["solution"]["imaginary_sign_checked"] = dict(herglotz)
    return json.dumps(data, indent=2)


def text(meta: Mapping[str, Any], solution: Any, latex: bool, self_adjoint: bool) -> str:
    """The pencil (and its self-adjoint form) and the system as text or LaTeX, then the solution."""
    shown = meta["latex"] if latex else meta["text"]
    lines = [shown[0], *([shown[1]] if self_adjoint else []), shown[2]]
    if solution is not None and latex:
        lines += [
            f"\\tfrac{{1}}{{m}}\\operatorname{{tr}}\\mathrm{{{name}}} = {text_number(val)}"
            for name, val in solution.outputs.items()
        ]
    elif solution is not None:
        lines.append(f"solution ({solution.method}, residual {solution.residual:.1e}):")
        lines += [f"  {name} = {text_number(val)}" for name, val in solution.unknowns.items()]
        lines += [f"  tr({name})/m = {text_number(val)}" for name, val in solution.outputs.items()]
    return "\n".join(lines)
