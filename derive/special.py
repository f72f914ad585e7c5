"""The Gamma resolvent H_s(y), the one special function of the asymptotic theory.

    H_s(y) = E_{t∼Gamma(s,1)}[1/(t + y)] = (1/Γ(s)) ∫₀^∞ t^{s−1} e^{−t} / (t + y) dt,   y > 0.

Expectations over ζ ~ N(0, I_k) of functions of ‖ζ‖²/2 ∼ Gamma(k/2) reduce to it with s = k/2.
Closed forms: H_{1/2}(y) = √π e^y erfc(√y)/√y, H_1(y) = e^y E₁(y), and the recursion
H_{s+1}(y) = (1 − y H_s(y))/s (from E[t/(t+y)] = 1 − yH_s and t·Gamma(s) = s·Gamma(s+1)).
Derivative: H_s′(y) = −H⁽²⁾_s(y) with H⁽²⁾_s(y) = E[1/(t+y)²] = (1 − (y + s − 1) H_s(y))/y; differentiating
the recursion gives H⁽²⁾_{s+1} = (H_s − yH⁽²⁾_s)/s, with H⁽²⁾_{1/2} = (1 + (1/2 − y)H_{1/2})/y and
H⁽²⁾_1 = 1/y − H_1 (no cancellation at small y, where the identity loses −log₁₀ y digits for s > 1).

Both are also one-dimensional Laplace integrals, H_s(y) = ∫₀^∞ e^{−yx}(1 + x)^{−s} dx and
H⁽²⁾_s(y) = ∫₀^∞ x e^{−yx}(1 + x)^{−s} dx (from 1/(t+y) = ∫₀^∞ e^{−(t+y)x} dx and E e^{−tx} = (1+x)^{−s}).

Evaluation in double precision (the rule every generated backend implements, with the constants below):

* s ≤ :data:`LARGE_ORDER`: the closed form and the upward recursion for y ≤ :data:`FRACTION_THRESHOLD`
  (the recursions multiply rounding errors by y/s₀ per step, harmless there), H⁽²⁾ by its recursion;
  above it the continued fraction (H_s(y) = e^y E_s(y), Legendre's fraction of the incomplete Gamma function)

      H_s = 1/(y + s − sR),  R = 1/(y + s + 2 − 2(s + 1)/(y + s + 4 − 3(s + 2)/(y + s + 6 − …))),

  the level m with numerator m(s + m − 1), taken to FRACTION_BASE + ⌈FRACTION_SCALE/√y⌉ levels by the forward
  recurrences of its numerators and denominators (each divided by the product of the b_m so far, so that no
  division waits on another), and H⁽²⁾_s = (1 − sR)H_s/y, the identity below without its cancellation
  ((y + s − 1)H_s = 1 − (1 − sR)H_s). The orders of one family (integer or half-integer s) that a system uses
  share one fraction where y is at least the family's top order s_top: at s_top, then the downward recursions
  H_s = (1 − sH_{s+1})/y, H⁽²⁾_s = (H_s − sH⁽²⁾_{s+1})/y, which shrink errors by s/y per step (measured for
  s_top = 1 … 20, y from max(3, s_top) to 10⁵: H within 4.5e-16, H⁽²⁾ within 1.6e-15); below s_top each order
  has its own fraction;
* s > :data:`LARGE_ORDER` (k > 40 directions): the Laplace integrals with x = v/(y + s) and a
  :data:`INTEGRAL_NODES`-node Gauss–Laguerre rule in v, H = Σ_j w_j g_j/(y+s), H⁽²⁾ = Σ_j w_j g_j c_j/(y+s),
  c_j = v_j/(y+s), g_j = exp(s(c_j − log(1 + c_j))). Its cost does not depend on s, and H⁽²⁾ comes without
  the cancellation of the identity (which loses about 2·log₁₀ s digits). Against 30-digit quadrature, for
  s ≥ 10.5 and 10⁻¹⁰ ≤ y ≤ 10⁴ the rule is within 5e-12 (s = 10.5) and 1e-15 (s ≥ 25) of H.
"""

from __future__ import annotations

import math
from typing import Any

import mpmath
import sympy as sp
from mpmath.libmp import prec_to_dps

#: Above this y (and s ≤ LARGE_ORDER) H_s is evaluated by the continued fraction.
#: Measured against 30-digit values for s = 1/2 … 20: the recursions stay within 1e-15 up to y = 3 but
#: lose up to 13 digits at y = 30 for s ≈ 17 (amplification ∏ y/s₀).
FRACTION_THRESHOLD = 3.0
#: The fraction's depth at y: FRACTION_BASE + ⌈FRACTION_SCALE/√y⌉ levels (46 at y = 3, 13 at y = 100). Measured
#: against 30-digit values for s = 1/2, 1, …, 20 and 240 values of y from 3 to 10⁵: H_s within 4.5e-16, H⁽²⁾_s
#: within 7.8e-15 (s = 18.5; 2.7e-15 for s ≤ 5: 1 − sR loses what sR/(1 − sR) says); the depth where the error
#: stops falling is about 4 + 64/√y at every s. (The 60-node generalized Gauss–Laguerre rule used before, within
#: 1e-14, cost 60 divisions per order and argument.)
FRACTION_BASE = 6
FRACTION_SCALE = 64.0
#: Orders s above this use the Laplace-integral rule (cost independent of s).
LARGE_ORDER = 20.0
#: Nodes of the Gauss–Laguerre rule of the Laplace integrals.
INTEGRAL_NODES = 40


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


def _mp_laplace(s: mpmath.mpf, y: mpmath.mpf, power: int) -> mpmath.mpf:
    """∫₀^∞ x^power e^{−yx}(1 + x)^{−s} dx (H_s for power 0, H⁽²⁾_s for power 1), split at the scale 1/(s + y)."""
    scale = 1 / (s + y)
    points = [0, scale, 4 * scale, 16 * scale, 64 * scale, mpmath.inf]
    return mpmath.quad(lambda x: x**power * mpmath.exp(-y * x - s * mpmath.log1p(x)), points)


def mp_gamma_resolvent(s: Any, y: Any) -> mpmath.mpf:
    """H_s(y) at the current mpmath precision: for 2s an integer up to 2·LARGE_ORDER, the closed form and the
    upward recursion (which loses about s·log₁₀(y) digits to cancellation; they are carried as guard
    digits); otherwise the Laplace integral by quadrature."""
    s, y = mpmath.mpf(s), mpmath.mpf(y)
    if 2 * s != int(2 * s) or s > LARGE_ORDER:
        with mpmath.workdps(mpmath.mp.dps + 10):
            h = _mp_laplace(s, y, 0)
        return +h
    guard = 15 + int(float(s) * max(1.0, math.log10(float(abs(y)) + 1.0)))
    with mpmath.workdps(mpmath.mp.dps + guard):
        if s == int(s):
            h, s0 = mpmath.exp(y) * mpmath.e1(y), mpmath.mpf(1)
        else:
            h, s0 = mpmath.sqrt(mpmath.pi / y) * mpmath.exp(y) * mpmath.erfc(mpmath.sqrt(y)), mpmath.mpf(0.5)
        while s0 < s:
            h, s0 = (1 - y * h) / s0, s0 + 1
    return +h


def mp_gamma_resolvent2(s: Any, y: Any) -> mpmath.mpf:
    """H⁽²⁾_s(y) = E[1/(t+y)²] at the current mpmath precision: the Laplace integral for s > LARGE_ORDER or
    2s not an integer, else (1 − (y + s − 1)H_s(y))/y with the cancellation (about 2·log₁₀(s + y) − log₁₀ y
    digits) carried as guard digits."""
    s, y = mpmath.mpf(s), mpmath.mpf(y)
    if 2 * s != int(2 * s) or s > LARGE_ORDER:
        with mpmath.workdps(mpmath.mp.dps + 10):
            h = _mp_laplace(s, y, 1)
        return +h
    guard = 10 + 2 * int(math.log10(float(s + y) + 1.0)) + max(0, int(-math.log10(float(y))))
    with mpmath.workdps(mpmath.mp.dps + guard):
        h = (1 - (y + s - 1) * mp_gamma_resolvent(s, y)) / y
    return +h


class GammaResolvent(sp.Function):
    """H_s(y) = E_{t∼Gamma(s,1)}[1/(t + y)]; ∂H/∂y = −H⁽²⁾_s(y)."""

    nargs = 2

    def fdiff(self, argindex: int = 2) -> sp.Expr:
        if argindex != 2:
            raise sp.core.function.ArgumentIndexError(self, argindex)
        return -GammaResolvent2(*self.args)

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


class GammaResolvent2(sp.Function):
    """H⁽²⁾_s(y) = E_{t∼Gamma(s,1)}[1/(t + y)²] = −∂H_s/∂y; ∂H⁽²⁾/∂y = ((y + s − 2)H⁽²⁾ − H)/y."""

    nargs = 2

    def fdiff(self, argindex: int = 2) -> sp.Expr:
        if argindex != 2:
            raise sp.core.function.ArgumentIndexError(self, argindex)
        s, y = self.args
        return ((y + s - 2) * self - GammaResolvent(s, y)) / y

    def _eval_rewrite_as_erfc(self, s: sp.Expr, y: sp.Expr, **kwargs: object) -> sp.Expr:
        return (1 - (y + s - 1) * closed_form(s, y)) / y

    _eval_rewrite_as_expint = _eval_rewrite_as_erfc

    def _eval_evalf(self, prec: int) -> sp.Float | None:
        s, y = self.args
        if not (s.is_number and y.is_number):
            return None
        y_val = y.evalf(prec_to_dps(prec) + 10)
        if not (y_val.is_real and y_val > 0):
            return None
        with mpmath.workprec(prec + 10):
            value = mp_gamma_resolvent2(
                mpmath.mpf(sp.Float(sp.nsimplify(s), prec_to_dps(prec + 40))), mpmath.mpf(str(y_val))
            )
        return sp.Float(value, prec_to_dps(prec))

    def _latex(self, printer: sp.printing.latex.LatexPrinter) -> str:
        s, y = self.args
        return r"H^{(2)}_{%s}\left(%s\right)" % (printer._print(s), printer._print(y))


def expand_closed_form(expr: sp.Expr) -> sp.Expr:
    """Replace every H_s(y) and H⁽²⁾_s(y) with concrete s ∈ {1/2, 1, 3/2, …} by its erfc/exp/expint closed form."""
    expr = expr.replace(
        lambda e: isinstance(e, GammaResolvent2) and e.args[0].is_number,
        lambda e: (1 - (e.args[1] + e.args[0] - 1) * closed_form(*e.args)) / e.args[1],
    )
    return expr.replace(lambda e: isinstance(e, GammaResolvent) and e.args[0].is_number, lambda e: closed_form(*e.args))


def scaled_resolvent(s: sp.Expr, z: sp.Expr, power: int) -> sp.Expr:
    """G⁽ᵐ⁾_s(z) = E_{t∼Gamma(s,1)}[1/(1 + zt)^m] for m = ``power`` ∈ {1, 2}, z ≥ 0: y^m H⁽ᵐ⁾_s(y) at y = 1/z.

    Bounded by 1 and equal to 1 at z = 0, the limit y → ∞ in which H_s and H⁽²⁾_s vanish: written with
    z the ζ-moments of a resolvent q(ζ) = 1/(a₀ + a₁‖ζ‖²) stay finite at a₁ = 0. Below the switch
    z₀(s) the Taylor series 1 − m s z + C(m+1, 2)(s)₂ z² is used (its first omitted term, C(m+2, 3)(s)₃z³,
    is below 1e-17 there; (s)_j the rising factorial), elsewhere H⁽ᵐ⁾_s(1/z)/z^m, which at y = 1/z > 3
    is the continued fraction without cancellation.
    """
    if power not in (1, 2):
        raise ValueError(f"power must be 1 or 2, got {power}.")
    s = _check_order(s)
    rising = [sp.Integer(1), s, s * (s + 1), s * (s + 1) * (s + 2)]
    series = sum(sp.Integer(-1) ** j * sp.binomial(power + j - 1, j) * rising[j] * z**j for j in range(3))
    switch = sp.Float((1e-17 / float(sp.binomial(power + 2, 3) * rising[3])) ** (1 / 3), 17)
    exact = (GammaResolvent if power == 1 else GammaResolvent2)(s, 1 / z) / z**power
    return sp.Piecewise((series, z < switch), (exact, True))
