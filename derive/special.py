"""The Gamma resolvent H_s(y), the one special function of the asymptotic theory.

    H_s(y) = E_{t∼Gamma(s,1)}[1/(t + y)] = (1/Γ(s)) ∫₀^∞ t^{s−1} e^{−t} / (t + y) dt,   y > 0.

Expectations over ζ ~ N(0, I_k) of functions of ‖ζ‖²/2 ∼ Gamma(k/2) reduce to it with s = k/2.
Closed forms: H_{1/2}(y) = √π e^y erfc(√y)/√y, H_1(y) = e^y E₁(y), and the recursion
H_{s+1}(y) = (1 − y H_s(y))/s (from E[t/(t+y)] = 1 − yH_s and t·Gamma(s) = s·Gamma(s+1)).
Derivative: H_s′(y) = −E[1/(t+y)²] = ((y + s − 1) H_s(y) − 1)/y.
"""
from __future__ import annotations

import math

import mpmath
import sympy as sp
from mpmath.libmp import prec_to_dps


def _check_order(s: sp.Expr) -> sp.Rational:
    """s as a positive multiple of 1/2, or a ValueError."""
    s = sp.nsimplify(s)
    if not (s.is_Rational and s > 0 and (2 * s).is_integer):
        raise ValueError(f"closed forms of H_s(y) exist for s = 1/2, 1, 3/2, ... only, got s = {s}.")
    return s


def closed_form(s: sp.Expr, y: sp.Expr) -> sp.Expr:
    """H_s(y) in erfc / exp / expint form for s ∈ {1/2, 1, 3/2, …} by the upward recursion."""
    s = _check_order(s)
    if s.is_integer:
        h, s0 = sp.exp(y) * sp.expint(1, y), sp.Integer(1)
    else:
        h, s0 = sp.sqrt(sp.pi) * sp.exp(y) * sp.erfc(sp.sqrt(y)) / sp.sqrt(y), sp.Rational(1, 2)
    while s0 < s:
        h, s0 = (1 - y * h) / s0, s0 + 1
    return h


def mp_gamma_resolvent(s: object, y: object) -> mpmath.mpf:
    """H_s(y) at the current mpmath precision: closed form + upward recursion when 2s is an integer
    (the recursion loses about s·log₁₀(y) digits to cancellation; they are carried as guard digits),
    quadrature otherwise."""
    s, y = mpmath.mpf(s), mpmath.mpf(y)
    guard = 15 + int(float(s) * max(1.0, math.log10(float(abs(y)) + 1.0)))
    with mpmath.workdps(mpmath.mp.dps + guard):
        if 2 * s != int(2 * s):
            h = mpmath.quad(lambda t: t ** (s - 1) * mpmath.exp(-t) / (t + y), [0, 1, mpmath.inf]) / mpmath.gamma(s)
        else:
            if s == int(s):
                h, s0 = mpmath.exp(y) * mpmath.e1(y), mpmath.mpf(1)
            else:
                h, s0 = mpmath.sqrt(mpmath.pi / y) * mpmath.exp(y) * mpmath.erfc(mpmath.sqrt(y)), mpmath.mpf(0.5)
            while s0 < s:
                h, s0 = (1 - y * h) / s0, s0 + 1
    return +h


class GammaResolvent(sp.Function):
    """H_s(y) = E_{t∼Gamma(s,1)}[1/(t + y)]; ∂H/∂y = ((y + s − 1)H − 1)/y."""

    nargs = 2

    def fdiff(self, argindex: int = 2) -> sp.Expr:
        if argindex != 2:
            raise sp.core.function.ArgumentIndexError(self, argindex)
        s, y = self.args
        return ((y + s - 1) * self - 1) / y

    def _eval_rewrite_as_erfc(self, s: sp.Expr, y: sp.Expr, **kwargs: object) -> sp.Expr:
        return closed_form(s, y)

    def _eval_rewrite_as_expint(self, s: sp.Expr, y: sp.Expr, **kwargs: object) -> sp.Expr:
        return closed_form(s, y)

    def _eval_evalf(self, prec: int) -> sp.Float | None:
        s, y = self.args
        if not (s.is_number and y.is_number):
            return None
        s_val, y_val = sp.nsimplify(s), y.evalf(prec_to_dps(prec) + 10)
        if not (y_val.is_real and y_val > 0):
            return None
        with mpmath.workprec(prec + 10):
            value = mp_gamma_resolvent(mpmath.mpf(sp.Float(s_val, prec_to_dps(prec + 40))), mpmath.mpf(str(y_val)))
        return sp.Float(value, prec_to_dps(prec))

    def _latex(self, printer: sp.printing.latex.LatexPrinter) -> str:
        s, y = self.args
        return r"H_{%s}\left(%s\right)" % (printer._print(s), printer._print(y))


def expand_closed_form(expr: sp.Expr) -> sp.Expr:
    """Replace every H_s(y) with concrete s ∈ {1/2, 1, 3/2, …} by its erfc/exp/expint closed form."""
    return expr.replace(lambda e: isinstance(e, GammaResolvent) and e.args[0].is_number,
                        lambda e: closed_form(*e.args))
