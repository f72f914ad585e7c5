"""Expectations over the laws of diagonal entries, and the special functions they produce.

E_ζ of a rational function of the ζ's (standard normal coordinates, discrete and continuous laws, see
:mod:`.laws`), as used by the operator-valued fixed points of :mod:`.ovfp`:

* polynomials: Gaussian moments; P(ζ)/(A + B Σ_{l∈S} ζ_l²) with one common B: with β = A/B, m = |S| and
  ‖ζ_S‖² ~ χ²_m independent of the direction θ = ζ_S/‖ζ_S‖,

      E[1/(β + χ²_m)] = ½ e^{β/2} E_{m/2}(β/2) = ½ U(1, 2 − m/2, β/2)  (m = 1: √(π/(2β)) erfcx(√(β/2))),

  E[ζ^{2α}/(A + B‖ζ_S‖²)] = E[θ^{2α}] E[R^{2j}/(A + BR²)] with E[θ^{2α}] = Π(2α_l−1)!!/Π_{t<j}(m+2t),
  and R^{2j}/(β + R²) reduced by polynomial division to χ² moments plus (−β)^j/(β + R²);
* a radial coordinate ρ ~ χ²_k (the squared norm of k iid normal coordinates, k a symbol or an integer:
  the exchangeable copies of a sum ``sum(D, k, ...)``): P(ρ)/(A + Bρ) by the same χ² moments and
  E[1/(β + χ²_k)] = ½ U(1, 2 − k/2, β/2), one closed form for every k;
* small discrete laws: exact sums;
* anything else: an unevaluated :class:`GaussExpectation` or :class:`LawExpectation`, integrated numerically
  by the numeric layer (tensor Gauss–Hermite, exact sums over data, Gauss–Legendre; never Monte Carlo).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

import sympy as sp

from .errors import UserError
from .laws import DiagonalLaw

#: Rational functions with more operations or symbols than these are cancelled in the ζ's only (a full
#: multivariate gcd of large cofactors can take minutes).
CANCEL_OPS = 400
CANCEL_SYMBOLS = 12


# ======================================================================================= special functions
class Erfcx(sp.Function):
    """The scaled complementary error function erfcx(x) = exp(x²) erfc(x)."""

    nargs = 1

    def _eval_rewrite_as_erfc(self, x: sp.Expr, **kwargs: Any) -> sp.Expr:
        return sp.exp(x**2) * sp.erfc(x)

    def fdiff(self, argindex: int = 1) -> sp.Expr:
        """erfcx′(x) = 2x erfcx(x) − 2/√π."""
        x = self.args[0]
        return 2 * x * Erfcx(x) - 2 / sp.sqrt(sp.pi)

    def _latex(self, printer: Any) -> str:
        return r"\operatorname{erfcx}\left(%s\right)" % printer._print(self.args[0])


class ScaledExpint(sp.Function):
    """e^x E_ν(x) = e^x ∫₁^∞ e^{−xt} t^{−ν} dt = U(1, 2 − ν, x) (Tricomi's confluent hypergeometric U)."""

    nargs = 2

    def _eval_rewrite_as_expint(self, nu: sp.Expr, x: sp.Expr, **kwargs: Any) -> sp.Expr:
        return sp.exp(x) * sp.expint(nu, x)

    def fdiff(self, argindex: int = 2) -> sp.Expr:
        """∂ₓ S_ν(x) = S_ν(x) − (1 − (ν − 1) S_ν(x))/x for S_ν = e^x E_ν (from E_ν′ = −E_{ν−1} and
        (ν − 1) E_ν = e^{−x} − x E_{ν−1}); the order ν is a constant."""
        if argindex != 2:
            raise sp.ArgumentIndexError(self, argindex)
        nu, x = self.args
        return self - (1 - (nu - 1) * self) / x

    def _latex(self, printer: Any) -> str:
        nu, x = (printer._print(a) for a in self.args)
        return r"e^{%s} E_{%s}\left(%s\right)" % (x, nu, x)


class GaussExpectation(sp.Function):
    """Unevaluated E_ζ[h(ζ)] over iid standard normal ζ = args[1:] (integrated by Gauss–Hermite)."""

    def _latex(self, printer: Any) -> str:
        zs = ",".join(printer._print(z) for z in self.args[1:])
        return r"\mathbb{E}_{%s}\left[%s\right]" % (zs, printer._print(self.args[0]))

    def _sympystr(self, printer: Any) -> str:
        zs = ", ".join(printer._print(z) for z in self.args[1:])
        return f"E[{printer._print(self.args[0])} | {zs} ~ N(0,1)]"


class LawExpectation(sp.Function):
    """Unevaluated E_ζ[h(ζ)] over the laws of ζ = args[1:], taken numerically: exact sums over the atoms of
    large discrete laws (data files), Gauss–Legendre for uniform laws, Gauss–Hermite for normal coordinates
    that appear in the same integrand (tensor product over independent laws)."""

    def _latex(self, printer: Any) -> str:
        zs = ",".join(printer._print(z) for z in self.args[1:])
        return r"\mathbb{E}_{%s}\left[%s\right]" % (zs, printer._print(self.args[0]))

    def _sympystr(self, printer: Any) -> str:
        zs = ", ".join(printer._print(z) for z in self.args[1:])
        return f"E[{printer._print(self.args[0])} | {zs} ~ law]"


class Quadrature(sp.Function):
    """Σ_a w_a h(ζ_a): a numerical expectation on a stored rule, args = (rule, h, ζ coordinates…); ``rule``
    indexes the rules a :class:`~sobolev_rf.derive.system.System` keeps in ``meta["rules"]`` (factors of
    :func:`~sobolev_rf.derive.laws.expectation_rule`, as plain data), whose nodes have one column per
    coordinate, in order."""

    def _sympystr(self, printer: Any) -> str:
        zs = ", ".join(printer._print(z) for z in self.args[2:])
        return f"Q{printer._print(self.args[0])}[{printer._print(self.args[1])} | {zs}]"


# ======================================================================================= expectations
def _double_factorial_odd(n: int) -> int:
    """(n − 1)!! for even n ≥ 0, i.e. E[ξⁿ] for ξ ~ N(0, 1)."""
    out = 1
    for t in range(n - 1, 0, -2):
        out *= t
    return out


def _chi2_moment(m: int | sp.Expr, i: int) -> sp.Expr:
    """E[(χ²_m)^i] = Π_{t<i} (m + 2t)."""
    out = sp.S.One
    for t in range(i):
        out *= m + 2 * t
    return out


def _inverse_chi2_shift(m: int | sp.Expr, beta: sp.Expr) -> sp.Expr:
    """E[1/(β + χ²_m)] in closed form (see the module docstring); m an integer or a symbol."""
    if m == 1:
        return sp.sqrt(sp.pi / (2 * beta)) * Erfcx(sp.sqrt(beta / 2))
    return ScaledExpint(sp.sympify(m) / 2, beta / 2) / 2


def radial_expectation(h: sp.Expr, rho: sp.Symbol, k: sp.Expr) -> sp.Expr | None:
    """Closed-form E[h(ρ)] for ρ ~ χ²_k (k a symbol or a positive integer), or ``None`` when h is not of the
    form P(ρ)/(A + Bρ) or P(ρ)/A (module docstring)."""
    if rho not in h.free_symbols:
        return h
    if not h.is_rational_function(rho):
        return None
    together = sp.together(h)
    num, den = sp.fraction(together)
    if sp.Poly(den, rho).degree() > 1:  # common factors in ρ (the entries come cancelled: rarely needed)
        small = len(together.free_symbols) <= CANCEL_SYMBOLS + 1 and sp.count_ops(together) <= CANCEL_OPS
        num, den = sp.fraction(sp.cancel(together) if small else sp.cancel(together, rho))
    P = sp.Poly(num, rho)
    Q = sp.Poly(den, rho)
    if Q.degree() == 0:
        q0 = Q.as_expr()
        return sp.Add(*[c * _chi2_moment(k, mon[0]) for mon, c in P.terms()]) / q0
    if Q.degree() != 1:
        return None
    B, A = Q.all_coeffs()
    beta = A / B
    base = _inverse_chi2_shift(k, beta)
    total = sp.S.Zero
    for (j,), c in P.terms():
        radial = sp.Add(*[(-beta) ** i * _chi2_moment(k, j - 1 - i) for i in range(j)]) + (-beta) ** j * base
        total += c * radial
    return total / B


def normal_expectation(h: sp.Expr, zetas: Sequence[sp.Symbol]) -> sp.Expr | None:
    """Closed-form E[h(ζ)] for iid N(0,1) coordinates ``zetas``, or ``None`` when no closed form applies.

    Handled: polynomials (Gaussian moments), and P(ζ)/(A + B Σ_{l∈S} ζ_l²) with one common B.
    """
    zs = [z for z in zetas if z in h.free_symbols]
    if not zs:
        return h
    if not h.is_rational_function(*zs):
        return None
    together = sp.together(h)
    small = len(together.free_symbols) <= CANCEL_SYMBOLS + len(zs) and sp.count_ops(together) <= CANCEL_OPS
    num, den = sp.fraction(sp.cancel(together) if small else sp.cancel(together, *zs))
    P = sp.Poly(num, *zs)
    Q = sp.Poly(den, *zs)

    def moment(monom: Sequence[int]) -> sp.Expr:
        if any(e % 2 for e in monom):
            return sp.S.Zero
        return sp.Integer(math.prod(_double_factorial_odd(e) for e in monom))

    if Q.total_degree() == 0:
        q0 = Q.as_expr()
        return sp.Add(*[c * moment(mon) for mon, c in P.terms()]) / q0
    if Q.total_degree() != 2:
        return None
    nz = len(zs)
    A = sp.S.Zero
    Bs: dict[int, sp.Expr] = {}
    for mon, c in Q.terms():
        if sum(mon) == 0:
            A = c
        elif sum(mon) == 2 and max(mon) == 2:
            Bs[mon.index(2)] = c
        else:
            return None  # linear or cross terms
    S = sorted(Bs)
    B = Bs[S[0]]
    if any(sp.cancel(Bs[l] - B) != 0 for l in S[1:]):
        return None
    m = len(S)
    beta = A / B
    base = _inverse_chi2_shift(m, beta)
    total = sp.S.Zero
    for mon, c in P.terms():
        if any(e % 2 for e in mon):
            continue
        rest = math.prod(_double_factorial_odd(mon[l]) for l in range(nz) if l not in S)
        aS = [mon[l] for l in S]
        j = sum(aS) // 2
        theta = sp.Rational(math.prod(_double_factorial_odd(e) for e in aS), 1) / _chi2_moment(m, j)
        radial = sp.Add(*[(-beta) ** i * _chi2_moment(m, j - 1 - i) for i in range(j)]) + (-beta) ** j * base
        total += c * rest * theta * radial / B
    return total


def expectation(
    h: sp.Expr,
    normal: Sequence[sp.Symbol],
    discrete: Sequence[tuple[tuple[sp.Symbol, ...], DiagonalLaw]],
    numeric: Iterable[sp.Symbol] = (),
    radial: Sequence[tuple[sp.Symbol, sp.Expr]] = (),
) -> sp.Expr:
    """E_ζ[h]: exact sums over small discrete laws, closed forms over normal coordinates when they exist,
    else an unevaluated :class:`GaussExpectation` (numerical Gauss–Hermite); a term that depends on a
    coordinate in ``numeric`` (large discrete and continuous laws) becomes an unevaluated
    :class:`LawExpectation` (exact numerical sums / quadrature).  ``radial`` lists coordinates ρ ~ χ²_k as
    (ρ, k): their expectation must have a closed form (:func:`radial_expectation`), alone in its term."""
    numeric = set(numeric)
    terms = [(sp.S.One, h)]
    for syms, law in discrete:
        terms = [
            (w0 * sp.nsimplify(w), t.xreplace(dict(zip(syms, map(sp.nsimplify, atom)))))
            for w0, t in terms
            for atom, w in zip(law.atoms, law.weights)
        ]
    out = sp.S.Zero
    for w, t in terms:
        for rho, k in radial:
            if rho not in t.free_symbols:
                continue
            others = (set(normal) | numeric) & t.free_symbols
            closed = radial_expectation(t, rho, k) if not others else None
            if closed is None:
                raise UserError(
                    "the sum of copies leads to an expectation over their squared norm (a chi-square law) "
                    "without a closed form; write the copies out (D1, D2, ...) instead of sum(D, k, ...)."
                )
            t = closed
        zs = [z for z in normal if z in t.free_symbols]
        zn = sorted((z for z in numeric if z in t.free_symbols), key=str)
        if zn:
            out += w * LawExpectation(t, *zn, *zs)
            continue
        if not zs:
            out += w * t
            continue
        closed = normal_expectation(t, zs)
        out += w * (closed if closed is not None else GaussExpectation(sp.cancel(t), *zs))
    return out
