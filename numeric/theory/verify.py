"""High-precision verification of one model point: the same System re-solved with mpmath.

The double-precision solution of the generated NumPy solver seeds a multidimensional Newton
iteration on an mpmath rendering of the very same :class:`~sobolev_rf.derive.system.System`
(``sympy.lambdify(..., "mpmath")``, definitions evaluated in order) at N significant digits. The
parameters are taken to be exactly their double values, so the comparison measures the error of the
double-precision solve alone. Reported: agreeing digits of every output and unknown, and the
high-precision residual max|u − G(u)|. λ = 0 (the limit λ → 0⁺) is verified on the System of its branch
(:func:`~sobolev_rf.derive.saddle.derive_system`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import mpmath
import numpy as np
import sympy as sp

from ...derive.errors import UserError
from ...derive.params import ModelParams
from ...derive.saddle import BRANCHES, derive_system
from ...derive.special import mp_gamma_resolvent, mp_gamma_resolvent2
from ...derive.system import System
from .solve import COLUMNS, parameter_columns, ridgeless_note, solve_grid, training_rows

_MODULES = [{"GammaResolvent": mp_gamma_resolvent, "GammaResolvent2": mp_gamma_resolvent2}, "mpmath"]


def _mp_function(system: System, exprs: list[sp.Expr]) -> Callable[..., list[Any]]:
    """f(unknowns, parameters) → ``exprs`` in mpmath, definitions evaluated once, in order."""
    pairs = system.definition_pairs(exprs)
    return sp.lambdify([system.unknowns, system.parameters], exprs, modules=_MODULES, cse=lambda e: (pairs, e))


def agreeing_digits(approx: float, exact: mpmath.mpf, digits: int) -> float:
    """−log₁₀ of the relative difference, capped at ``digits``."""
    if exact == 0:
        return float(digits) if approx == 0 else -math.log10(abs(approx))
    rel = abs(mpmath.mpf(approx) - exact) / abs(exact)
    return float(digits) if rel == 0 else min(float(digits), float(-mpmath.log10(rel)))


class VerifyResult(dict[str, Any]):
    """The report of :func:`verify_point` (a plain dict, JSON-ready) that a notebook shows as a table."""

    def _repr_html_(self) -> str:
        from ..display import html_table, number

        rows = [
            (f"{kind[:-1]} {name}", number(entry["double"], 17), entry["mpmath"], number(entry["agreeing_digits"], 3))
            for kind in ("outputs", "unknowns")
            for name, entry in self.get(kind, {}).items()
        ]
        caption = (
            f"double precision against mpmath at {self['digits']} digits: {number(self['agreeing_digits'], 3)} "
            f"agreeing digits; residual {number(self['residual'], 3)}, {self.get('newton_iterations')} Newton steps, "
            f"branch {self.get('branch', '–')}"
        )
        notes = [self["note"]] if "note" in self else []
        return html_table(caption, ("quantity", "double", "mpmath", "agreeing digits"), rows, notes)


def _difference_jacobian(
    residual: Callable[..., list[Any]], n: int, digits: int
) -> Callable[[list[Any], list[Any]], list[list[Any]]]:
    """∂ residual/∂ u by central differences with steps 10^(−(digits + 10)/3) relative, at the working precision
    (for systems whose symbolic Jacobian is not derived): an error of about 10^(−2(digits + 10)/3), so Newton's
    method still converges to the working precision, only not quadratically."""

    def jac(u: list[Any], theta: list[Any]) -> list[list[Any]]:
        h0 = mpmath.mpf(10) ** (-(digits + 10) // 3)
        cols = []
        for j in range(n):
            h = h0 * max(1, abs(u[j]))
            up, down = list(u), list(u)
            up[j] += h
            down[j] -= h
            rp, rm = residual(up, theta), residual(down, theta)
            cols.append([(a - b) / (2 * h) for a, b in zip(rp, rm)])
        return [[cols[j][i] for j in range(n)] for i in range(n)]

    return jac


def verify_system(
    system: System,
    theta: list[float],
    u_double: list[float],
    outputs_double: dict[str, float],
    digits: int = 50,
    max_iter: int = 60,
) -> VerifyResult:
    """Newton's method on ``system`` in mpmath at ``digits`` digits from the double-precision unknowns
    ``u_double`` (parameters taken exactly as the doubles ``theta``), and the agreeing digits of every
    output and unknown against their double values."""
    residual = _mp_function(system, list(system.residuals))
    outputs = _mp_function(system, list(system.outputs.values()))
    if system.meta.get("jacobian", "analytic") == "differences":
        jacobian = _difference_jacobian(residual, len(system.unknowns), digits)
    else:
        jacobian = sp.lambdify([system.unknowns, system.parameters], system.jacobian, modules=_MODULES)
    with mpmath.workdps(digits + 10):
        th = [mpmath.mpf(t) for t in theta]
        u = mpmath.matrix([mpmath.mpf(v) for v in u_double])
        target = mpmath.mpf(10) ** (-(digits + 5))
        iterations = 0
        for iterations in range(1, max_iter + 1):  # noqa: B007 (the count is reported)
            r = mpmath.matrix(residual(list(u), th))
            if mpmath.norm(r, mpmath.inf) < target:
                break
            J = mpmath.matrix(jacobian(list(u), th))
            u = u - mpmath.lu_solve(J, r)
        r_final = mpmath.norm(mpmath.matrix(residual(list(u), th)), mpmath.inf)
        out_mp = outputs(list(u), th)
        result = VerifyResult(
            {
                "digits": digits,
                "newton_iterations": iterations,
                "residual": float(r_final),
                "outputs": {},
                "unknowns": {},
            }
        )
        for name, exact in zip(system.outputs, out_mp):
            value = outputs_double[name]
            result["outputs"][name] = {
                "double": value,
                "mpmath": mpmath.nstr(exact, digits),
                "agreeing_digits": agreeing_digits(value, exact, digits),
            }
        for i, sym in enumerate(system.unknowns):
            result["unknowns"][str(sym)] = {
                "double": u_double[i],
                "mpmath": mpmath.nstr(u[i], digits),
                "agreeing_digits": agreeing_digits(u_double[i], u[i], digits),
            }
    result["agreeing_digits"] = min(v["agreeing_digits"] for v in result["outputs"].values())
    return result


def verify_point(params: ModelParams, digits: int = 50, max_iter: int = 60) -> VerifyResult:
    """Solve ``params`` in double precision (the generated kernel users get) and with mpmath at ``digits`` digits."""
    if params.has_step:
        from .onestep import verify_point as verify_onestep

        return VerifyResult(verify_onestep(params, digits))
    if digits < 20:
        raise UserError(f"digits must be at least 20, got {digits}.")
    grid_params = params.grid_mapping()
    double = solve_grid(params.k, params.tau, grid_params)
    branch = str(double.extra["branch"])
    if branch not in BRANCHES:
        raise UserError(
            f"lam = 0 at the interpolation threshold p = {training_rows(params)}n: the errors are infinite there; move "
            "p/d or n/d, or use λ > 0."
        )
    if not bool(double.converged):
        raise UserError(
            "the double-precision generated solver did not converge at this point, so there is no "
            "solution to verify; check the point with `sobolev-rf solve`."
        )
    system = derive_system(params.k, params.tau, branch)
    columns = dict(zip(COLUMNS, parameter_columns(params.k, params.tau, grid_params)))
    theta = [float(columns[name]) for name in system.parameter_names]
    u_double = [float(double.unknowns[str(s)]) for s in system.unknowns]
    outputs_double = {name: float(np.asarray(double.outputs[name])) for name in system.outputs}
    result = verify_system(system, theta, u_double, outputs_double, digits, max_iter)
    result["branch"] = branch
    if branch != "ridge":
        result["note"] = ridgeless_note(params, branch)
    return result
