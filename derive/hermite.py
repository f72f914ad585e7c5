"""Hermite coefficients of an activation σ and of its derivative σ′ (MODEL.md, ξ ~ N(0, 1)).

    κ₀ = E σ(ξ),   κ₁ = E ξσ(ξ),   κ_*² = E σ(ξ)² − κ₀² − κ₁²,
    κ₀′ = E σ′(ξ) (= κ₁ by Stein's identity),   κ₁′ = E ξσ′(ξ),   κ_*′² = E σ′(ξ)² − κ₀′² − κ₁′²,
    c_σ = E σ(ξ)σ′(ξ) − κ₀κ₀′ − κ₁κ₁′   (residual cross-covariance of the non-linear parts),
    a_j = E σ(ξ) He_j(ξ)   (probabilists' Hermite polynomials He_j).

In terms of the sequence, κ₀ = a₀, κ₁ = a₁, κ₀′ = a₁, κ₁′ = a₂ and c_σ = Σ_{j≥2} a_j a_{j+1} / j!.

Each Gaussian expectation is computed exactly when the integrand, on each interval between the switch
points of σ (:func:`~sobolev_rf.derive.activations.exact_kinks`), is a sum of terms
c·x^n·exp(−βx² + μx)·erf(a x)^m with m ≤ 2 (erf factors only without switch points and with μ = 0);
sin, cos, sinh and cosh are rewritten as exponentials. This covers ReLU, abs, erf, GELU, polynomials,
piecewise polynomials and Gaussian-windowed trigonometric functions, in closed forms built from
Gaussian moment recursions (no general symbolic integration, so nothing can hang). Everything else is
integrated numerically by tanh–sinh quadrature (mpmath) at ``digits + 10`` working digits, split at
the switch points and at 0; tanh–sinh reaches full precision because the integrand is smooth inside
each piece (its error estimate is checked).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, fields
from functools import lru_cache

import mpmath
import sympy as sp

from .activations import X, derivative, exact_kinks, is_even, is_odd, parse_activation
from .errors import UserError

#: Extra working digits of the quadrature over the requested digits.
GUARD_DIGITS = 10
MAX_DIGITS = 1000
MAX_ORDER = 200
#: Integer powers above this are not expanded symbolically (the quadrature takes over).
_MAX_EXPANDED_POWER = 256

_SQRT_2PI = sp.sqrt(2 * sp.pi)
#: The LaTeX symbol of each coefficient (MODEL.md's notation).
LATEX_SYMBOLS = {
    "kappa0": r"\kappa_0",
    "kappa1": r"\kappa_1",
    "kappa_star": r"\kappa_*",
    "kappa0_prime": r"\kappa_0'",
    "kappa1_prime": r"\kappa_1'",
    "kappa_star_prime": r"\kappa_*'",
    "cross": r"c_\sigma",
    "second_moment": r"\mathbb{E}\,\sigma(\xi)^2",
    "second_moment_prime": r"\mathbb{E}\,\sigma'(\xi)^2",
}
#: A quadrature integrand g(x, σ(x), σ′(x)) (the Gaussian weight is applied separately).
_Integrand = Callable[[mpmath.mpf, mpmath.mpf, mpmath.mpf], mpmath.mpf]


@dataclass(frozen=True)
class Coefficient:
    """One Gaussian coefficient: ``value`` (mpf, correct to the requested digits, carrying
    :data:`GUARD_DIGITS` more) and ``exact`` (a SymPy closed form, or None when none was found)."""

    value: mpmath.mpf
    exact: sp.Expr | None


@dataclass(frozen=True)
class HermiteCoefficients:
    """κ₀, κ₁, κ_*, κ₀′, κ₁′, κ_*′, c_σ, E σ(ξ)² and E σ′(ξ)² of one activation (module docstring)."""

    kappa0: Coefficient
    kappa1: Coefficient
    kappa_star: Coefficient
    kappa0_prime: Coefficient
    kappa1_prime: Coefficient
    kappa_star_prime: Coefficient
    cross: Coefficient
    second_moment: Coefficient
    second_moment_prime: Coefficient
    digits: int
    #: σ itself (shown by :meth:`to_latex`)
    activation: sp.Expr | None = field(default=None, compare=False)

    def coefficients(self) -> dict[str, Coefficient]:
        """The nine coefficients by field name, in declaration order."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name not in ("digits", "activation")}

    def to_latex(self) -> str:
        """A LaTeX ``align*`` environment: σ, then each coefficient as its exact form (where one was found)
        and its value to :attr:`digits` significant digits."""
        rows = [] if self.activation is None else [rf"\sigma(x) &= {sp.latex(self.activation)}"]
        for name, c in self.coefficients().items():
            value = "0" if c.value == 0 else mpmath.nstr(c.value, self.digits)
            if c.exact is None:
                rhs = rf"\approx {value}"
            elif c.exact.is_Rational:
                rhs = sp.latex(c.exact)
            else:
                rhs = rf"{sp.latex(c.exact)} \approx {value}"
            rows.append(f"{LATEX_SYMBOLS[name]} &= {rhs}")
        return "\\begin{align*}\n" + " \\\\\n".join(rows) + "\n\\end{align*}"

    def _repr_latex_(self) -> str:
        return self.to_latex()

    def as_floats(self) -> dict[str, float]:
        """The nine coefficients as Python floats, by field name."""
        return {name: float(c.value) for name, c in self.coefficients().items()}


# ---------------------------------------------------------------------------------------------------
# Exact Gaussian integrals
# ---------------------------------------------------------------------------------------------------


def _moment(n: int, beta: sp.Expr) -> sp.Expr:
    """∫_ℝ x^n e^{−βx²} dx = Γ((n+1)/2) β^{−(n+1)/2} for even n, 0 for odd n."""
    if n % 2:
        return sp.S.Zero
    return sp.gamma(sp.Rational(n + 1, 2)) / beta ** sp.Rational(n + 1, 2)


def _boundary(t: sp.Expr, k: int, beta: sp.Expr) -> sp.Expr:
    """t^k e^{−βt²}, which vanishes at t = ±∞."""
    if t.is_infinite:
        return sp.S.Zero
    return t**k * sp.exp(-beta * t**2)


def _interval_moment(n: int, beta: sp.Expr, a: sp.Expr, b: sp.Expr) -> sp.Expr:
    """P_n = ∫_a^b y^n e^{−βy²} dy by P_n = (n−1)/(2β) P_{n−2} + (a^{n−1}e^{−βa²} − b^{n−1}e^{−βb²})/(2β)."""
    if a == -sp.oo and b == sp.oo:
        return _moment(n, beta)
    rb = sp.sqrt(beta)
    p = [
        sp.sqrt(sp.pi) / (2 * rb) * (sp.erf(rb * b) - sp.erf(rb * a)),
        (_boundary(a, 0, beta) - _boundary(b, 0, beta)) / (2 * beta),
    ]
    for k in range(2, n + 1):
        p.append((k - 1) * p[k - 2] / (2 * beta) + (_boundary(a, k - 1, beta) - _boundary(b, k - 1, beta)) / (2 * beta))
    return p[n]


def _shifted_moment(n: int, beta: sp.Expr, mu: sp.Expr, a: sp.Expr, b: sp.Expr) -> sp.Expr:
    """∫_a^b x^n e^{−βx² + μx} dx = e^{μ²/(4β)} Σ_k C(n,k) m^{n−k} ∫_{a−m}^{b−m} y^k e^{−βy²} dy, m = μ/(2β).

    For complex μ only the full line is allowed (contour shift)."""
    if mu == 0:
        return _interval_moment(n, beta, a, b)
    m = mu / (2 * beta)
    if a == -sp.oo and b == sp.oo:
        total = sum(sp.binomial(n, k) * m ** (n - k) * _moment(k, beta) for k in range(n + 1))
    else:
        total = sum(sp.binomial(n, k) * m ** (n - k) * _interval_moment(k, beta, a - m, b - m) for k in range(n + 1))
    return sp.exp(mu**2 / (4 * beta)) * total


def _erf1(n: int, beta: sp.Expr, a: sp.Expr) -> sp.Expr:
    """J_n = ∫_ℝ x^n e^{−βx²} erf(ax) dx (0 for even n), by parts:
    J_n = (n−1)/(2β) J_{n−2} + a/(β√π) ∫ x^{n−1} e^{−(β+a²)x²} dx."""
    if n % 2 == 0:
        return sp.S.Zero
    lower = _erf1(n - 2, beta, a) * (n - 1) / (2 * beta) if n >= 3 else sp.S.Zero
    return lower + a / (beta * sp.sqrt(sp.pi)) * _moment(n - 1, beta + a**2)


def _erf2(n: int, beta: sp.Expr, a: sp.Expr, b: sp.Expr) -> sp.Expr:
    """K_n = ∫_ℝ x^n e^{−βx²} erf(ax) erf(bx) dx (0 for odd n):
    K_0 = 2/√(πβ) · asin(ab/√((β+a²)(β+b²))),
    K_n = (n−1)/(2β) K_{n−2} + a/(β√π) J_{n−1}(β+a², b) + b/(β√π) J_{n−1}(β+b², a)."""
    if n % 2:
        return sp.S.Zero
    if n == 0:
        return 2 / sp.sqrt(sp.pi * beta) * sp.asin(a * b / sp.sqrt((beta + a**2) * (beta + b**2)))
    return (
        (n - 1) * _erf2(n - 2, beta, a, b) / (2 * beta)
        + a / (beta * sp.sqrt(sp.pi)) * _erf1(n - 1, beta + a**2, b)
        + b / (beta * sp.sqrt(sp.pi)) * _erf1(n - 1, beta + b**2, a)
    )


def _as_exponentials(expr: sp.Expr) -> sp.Expr:
    """Rewrite erfc, sin, cos, sinh and cosh through erf and exp."""
    i = sp.I
    rules: list[tuple[type, Callable[[sp.Expr], sp.Expr]]] = [
        (sp.erfc, lambda u: 1 - sp.erf(u)),
        (sp.sin, lambda u: (sp.exp(i * u) - sp.exp(-i * u)) / (2 * i)),
        (sp.cos, lambda u: (sp.exp(i * u) + sp.exp(-i * u)) / 2),
        (sp.sinh, lambda u: (sp.exp(u) - sp.exp(-u)) / 2),
        (sp.cosh, lambda u: (sp.exp(u) + sp.exp(-u)) / 2),
    ]
    for func, rule in rules:
        expr = expr.replace(func, rule)
    return expr


def _term_integral(term: sp.Expr, a: sp.Expr, b: sp.Expr) -> sp.Expr | None:
    """∫_a^b term · e^{−x²/2} dx for one product term c·x^n·exp(q(x))·erf(…)…, or None if unsupported."""
    coeff, n, exponent, erfs = sp.S.One, 0, -(X**2) / 2, []
    for factor in sp.Mul.make_args(term):
        if not factor.has(X):
            coeff *= factor
        elif factor == X:
            n += 1
        elif factor.is_Pow and factor.base == X and factor.exp.is_Integer and factor.exp > 0:
            n += int(factor.exp)
        elif isinstance(factor, sp.exp):
            exponent += factor.args[0]
        elif isinstance(factor, sp.erf):
            erfs.append(factor.args[0])
        elif factor.is_Pow and isinstance(factor.base, sp.erf) and factor.exp in (1, 2):
            erfs.extend([factor.base.args[0]] * int(factor.exp))
        else:
            return None
    exponent = sp.expand(exponent)
    if not exponent.is_polynomial(X) or sp.degree(exponent, X) > 2:
        return None
    c2, c1, c0 = (exponent.coeff(X, k) for k in (2, 1, 0))
    beta, mu = -c2, c1
    if not beta.is_positive:
        return None
    slopes = [sp.simplify(u / X) for u in erfs]
    if any(s.has(X) for s in slopes) or len(slopes) > 2:
        return None
    coeff *= sp.exp(c0)
    if not slopes:
        if not mu.is_real and (a.is_finite or b.is_finite):
            return None
        return coeff * _shifted_moment(n, beta, mu, a, b)
    if mu != 0 or a.is_finite or b.is_finite:
        return None
    if len(slopes) == 1:
        return coeff * _erf1(n, beta, slopes[0])
    return coeff * _erf2(n, beta, slopes[0], slopes[1])


def _branch(expr: sp.Expr, at: sp.Expr) -> sp.Expr:
    """The smooth branch of expr that is active at the point ``at`` (not a switch point)."""

    def pick(e: sp.Expr) -> sp.Expr:
        if not e.args:
            return e
        e = e.func(*[pick(a) for a in e.args]) if not isinstance(e, sp.Piecewise) else e
        if isinstance(e, sp.Max):
            return max(e.args, key=lambda u: u.subs(X, at))
        if isinstance(e, sp.Min):
            return min(e.args, key=lambda u: u.subs(X, at))
        if isinstance(e, sp.Abs):
            return e.args[0] if e.args[0].subs(X, at) > 0 else -e.args[0]
        if isinstance(e, sp.sign):
            return sp.S.One if e.args[0].subs(X, at) > 0 else -sp.S.One
        if isinstance(e, sp.Heaviside):
            return sp.S.One if e.args[0].subs(X, at) > 0 else sp.S.Zero
        if isinstance(e, sp.Piecewise):
            for value, cond in e.args:
                if cond.subs(X, at) == sp.true:
                    return pick(value)
        return e

    return pick(expr)


def _interior_point(a: sp.Expr, b: sp.Expr) -> sp.Expr:
    """A rational point strictly inside (a, b)."""
    if a == -sp.oo and b == sp.oo:
        return sp.S.Zero
    if a == -sp.oo:
        return sp.floor(b) - 1
    if b == sp.oo:
        return sp.ceiling(a) + 1
    return sp.nsimplify((sp.N(a, 30) + sp.N(b, 30)) / 2, rational=True)


def _intervals(points: list[sp.Expr]) -> list[tuple[sp.Expr, sp.Expr]]:
    edges = [-sp.oo, *points, sp.oo]
    return list(zip(edges[:-1], edges[1:]))


def exact_expectation(f: sp.Expr, points: list[sp.Expr]) -> sp.Expr | None:
    """E f(ξ) in closed form, or None when some piece is outside the supported class (module docstring).

    ``points`` are the switch points of f (sorted, exact); between them f must be smooth."""
    total = sp.S.Zero
    for a, b in _intervals(points):
        piece = _branch(f, _interior_point(a, b))
        if piece.has(sp.Max, sp.Min, sp.Abs, sp.sign, sp.Heaviside, sp.Piecewise, sp.DiracDelta):
            return None
        if any(p.exp.is_Integer and abs(p.exp) > _MAX_EXPANDED_POWER for p in piece.atoms(sp.Pow)):
            return None
        for term in sp.Add.make_args(sp.expand(_as_exponentials(piece))):
            value = _term_integral(term, a, b)
            if value is None:
                return None
            total += value
    return _tidy(total / _SQRT_2PI)


def _tidy(expr: sp.Expr) -> sp.Expr:
    """A compact real form of a closed-form constant."""
    expr = sp.nsimplify(expr) if expr.is_Float else expr
    if expr.has(sp.I):
        expr = sp.expand_complex(expr)
    return sp.simplify(expr) if sp.count_ops(expr) < 400 else expr


# ---------------------------------------------------------------------------------------------------
# Quadrature
# ---------------------------------------------------------------------------------------------------


class _Integrator:
    """Tanh–sinh quadrature of g(x, σ(x), σ′(x)) e^{−x²/2}/√(2π) over ℝ (or twice over [0, ∞)),
    split at the switch points and 0; σ, σ′ (and He_j) are evaluated once per node and shared by
    all integrands, since every quadrature visits the same nodes."""

    def __init__(self, expr: sp.Expr, points: list[sp.Expr], dps: int) -> None:
        self.dps = dps
        self.sigma = sp.lambdify(X, expr, "mpmath")
        self.dsigma = sp.lambdify(X, derivative(expr), "mpmath")
        with mpmath.workdps(dps):
            self.cuts = [mpmath.mpf(sp.N(p, dps + 5)) for p in points]
        self.values: dict[mpmath.mpf, tuple[mpmath.mpf, mpmath.mpf, mpmath.mpf]] = {}
        self.hermites: dict[mpmath.mpf, list[mpmath.mpf]] = {}

    def _at(self, t: mpmath.mpf) -> tuple[mpmath.mpf, mpmath.mpf, mpmath.mpf]:
        hit = self.values.get(t)
        if hit is None:
            hit = (
                mpmath.mpf(self.sigma(t)),
                mpmath.mpf(self.dsigma(t)),
                mpmath.exp(-t * t / 2) / mpmath.sqrt(2 * mpmath.pi),
            )
            self.values[t] = hit
        return hit

    def hermite(self, t: mpmath.mpf, order: int) -> list[mpmath.mpf]:
        """He_0(t), …, He_order(t) by He_{j+1} = t He_j − j He_{j−1}."""
        hit = self.hermites.get(t)
        if hit is None or len(hit) <= order:
            hit = [mpmath.mpf(1), t]
            for j in range(1, order):
                hit.append(t * hit[j] - j * hit[j - 1])
            self.hermites[t] = hit
        return hit

    def expectation(self, g: _Integrand, half_line: bool, label: str, scale: mpmath.mpf) -> mpmath.mpf:
        """E g(ξ, σ(ξ), σ′(ξ)); with ``half_line`` the integrand is even and only [0, ∞) is integrated.

        ``scale`` bounds E|g| (Cauchy–Schwarz); the quadrature's error estimate must stay below
        10^{−(digits+5)}·scale."""
        with mpmath.workdps(self.dps):
            lo = mpmath.mpf(0) if half_line else -mpmath.inf
            inner = sorted({mpmath.mpf(0), *self.cuts})
            edges = [lo, *[e for e in inner if e > lo], mpmath.inf]

            def integrand(t: mpmath.mpf) -> mpmath.mpf:
                s, d, w = self._at(t)
                return g(t, s, d) * w

            value, error = mpmath.quad(integrand, edges, error=True)
            if error > mpmath.mpf(10) ** (GUARD_DIGITS // 2 - self.dps) * scale:
                raise UserError(
                    f"the quadrature of {label} reached only ~{int(-mpmath.log10(error / scale))} "
                    f"digits; lower --digits or simplify the activation."
                )
            return 2 * value if half_line else value


# ---------------------------------------------------------------------------------------------------
# Coefficients
# ---------------------------------------------------------------------------------------------------


def _check_digits(digits: int) -> int:
    if isinstance(digits, bool) or not isinstance(digits, int) or not 1 <= digits <= MAX_DIGITS:
        raise UserError(f"digits must be an integer from 1 to {MAX_DIGITS}, got {digits!r}.")
    return digits


def _parity(expr: sp.Expr) -> int:
    """+1 for even σ, −1 for odd σ, 0 otherwise."""
    if is_odd(expr):
        return -1
    return 1 if is_even(expr) else 0


def _value(exact: sp.Expr, dps: int) -> mpmath.mpf:
    """The mpf value of a real closed form at ``dps`` digits. SymPy's evaluation raises its working precision
    through cancellations (e.g. terms of size e^{5π⁴/2} that cancel to O(1)); asking it to chop small parts
    would cut such a sum to 0, so only an imaginary part at rounding level relative to the real one is dropped."""
    re, im = sp.N(exact, dps).as_real_imag()
    if abs(im) > sp.Float(10, dps) ** (5 - dps) * max(abs(re), 1):
        raise ArithmeticError(f"closed form {exact} is not real")
    with mpmath.workdps(dps):
        return mpmath.mpf(sp.Float(re, dps)._mpf_)


def _snap(value: mpmath.mpf, scale: mpmath.mpf, digits: int) -> mpmath.mpf:
    """0 for a quadrature result below the resolution 10^{−(digits+3)}·scale, else the value."""
    return mpmath.mpf(0) if abs(value) <= mpmath.mpf(10) ** (-digits - 3) * scale else value


#: name: (f as SymPy from σ and σ′, the same f as a quadrature integrand g(x, σ, σ′), parity of f as a
#: function of the parity p of σ: +1 even, −1 odd, 0 unknown; σ′ has parity −p and x is odd).
_MOMENTS: dict[str, tuple[Callable[[sp.Expr, sp.Expr], sp.Expr], _Integrand, Callable[[int], int]]] = {
    "ss": (lambda s, d: s**2, lambda t, s, d: s * s, lambda p: p * p),
    "dd": (lambda s, d: d**2, lambda t, s, d: d * d, lambda p: p * p),
    "s": (lambda s, d: s, lambda t, s, d: s, lambda p: p),
    "xs": (lambda s, d: X * s, lambda t, s, d: t * s, lambda p: -p),
    "d": (lambda s, d: d, lambda t, s, d: d, lambda p: -p),
    "xd": (lambda s, d: X * d, lambda t, s, d: t * d, lambda p: p),
    "sd": (lambda s, d: s * d, lambda t, s, d: s * d, lambda p: -p * p),
}
_MOMENT_LABELS = {"s": "E σ", "xs": "E ξσ", "ss": "E σ²", "d": "E σ′", "xd": "E ξσ′", "dd": "E σ′²", "sd": "E σσ′"}


@lru_cache(maxsize=128)
def _moments(expr: sp.Expr, digits: int) -> dict[str, Coefficient]:
    """The seven Gaussian moments E σ, E ξσ, E σ², E σ′, E ξσ′, E σ′², E σσ′ (keys of _MOMENTS)."""
    dps = digits + GUARD_DIGITS
    points = exact_kinks(expr)
    d_expr = derivative(expr)
    parity = _parity(expr)
    integrator = _Integrator(expr, points, dps)
    out: dict[str, Coefficient] = {}
    for name, (sym, num, parity_of) in _MOMENTS.items():
        p = parity_of(parity)
        if p == -1:
            out[name] = Coefficient(mpmath.mpf(0), sp.S.Zero)
            continue
        exact = exact_expectation(sym(expr, d_expr), points)
        if exact is not None:
            out[name] = Coefficient(_value(exact, dps), exact)
            continue
        with mpmath.workdps(dps):
            # E|f| ≤ √(E σ² E σ′² …) by Cauchy–Schwarz; E σ² and E σ′² come first and bound themselves.
            ss = out["ss"].value if "ss" in out else mpmath.mpf(1)
            dd = out["dd"].value if "dd" in out else mpmath.mpf(1)
            scale = {
                "ss": 1,
                "dd": 1,
                "s": mpmath.sqrt(ss),
                "xs": mpmath.sqrt(ss),
                "d": mpmath.sqrt(dd),
                "xd": mpmath.sqrt(dd),
                "sd": mpmath.sqrt(ss * dd),
            }[name]
        value = integrator.expectation(num, p == 1, _MOMENT_LABELS[name], scale)
        out[name] = Coefficient(value, None)
    return out


def _combine(
    parts: list[tuple[int, Coefficient, Coefficient | None]], dps: int, scale: mpmath.mpf, digits: int
) -> Coefficient:
    """Σ sign·A·B (B = None means 1), exact when every part is; quadrature results below the
    resolution 10^{−(digits+3)}·scale are returned as 0."""
    with mpmath.workdps(dps):
        if all(a.exact is not None and (b is None or b.exact is not None) for _, a, b in parts):
            exact = _tidy(sum(sg * a.exact * (1 if b is None else b.exact) for sg, a, b in parts))  # type: ignore[operator, misc]
            return Coefficient(_value(exact, dps), exact)
        value = mpmath.fsum(sg * a.value * (1 if b is None else b.value) for sg, a, b in parts)
        return Coefficient(_snap(value, scale, digits), None)


def _square_root(c: Coefficient, dps: int, digits: int, scale: mpmath.mpf, label: str) -> Coefficient:
    """κ = √(κ²); κ² < 0 beyond rounding means the integrals lost accuracy."""
    with mpmath.workdps(dps):
        if c.value < -(mpmath.mpf(10) ** (-digits - 3)) * scale:
            raise UserError(
                f"{label}² came out negative ({mpmath.nstr(c.value, 5)}), so the integrals lost "
                f"accuracy; lower --digits or simplify the activation."
            )
        exact = None if c.exact is None else _tidy(sp.sqrt(c.exact))
        return Coefficient(mpmath.sqrt(max(c.value, mpmath.mpf(0))), exact)


@lru_cache(maxsize=128)
def hermite_coefficients(expr: sp.Expr, digits: int = 30) -> HermiteCoefficients:
    """κ₀, κ₁, κ_*, κ₀′, κ₁′, κ_*′, c_σ, E σ² and E σ′² of σ = ``expr`` to ``digits`` significant digits.

    Cached per (expression, digits); SymPy expressions compare structurally, so the key is the
    canonical expression (:func:`~sobolev_rf.derive.activations.describe`)."""
    digits = _check_digits(digits)
    dps = digits + GUARD_DIGITS
    m = _moments(expr, digits)
    with mpmath.workdps(dps):
        ss, dd = abs(m["ss"].value), abs(m["dd"].value)
        star2 = _combine([(1, m["ss"], None), (-1, m["s"], m["s"]), (-1, m["xs"], m["xs"])], dps, ss, digits)
        star2_prime = _combine([(1, m["dd"], None), (-1, m["d"], m["d"]), (-1, m["xd"], m["xd"])], dps, dd, digits)
        cross = _combine(
            [(1, m["sd"], None), (-1, m["s"], m["d"]), (-1, m["xs"], m["xd"])], dps, mpmath.sqrt(ss * dd), digits
        )
        first = {
            k: _combine([(1, m[k], None)], dps, mpmath.sqrt(ss if k in ("s", "xs") else dd), digits)
            for k in ("s", "xs", "d", "xd")
        }
        return HermiteCoefficients(
            kappa0=first["s"],
            kappa1=first["xs"],
            kappa_star=_square_root(star2, dps, digits, ss, "κ_*"),
            kappa0_prime=first["d"],
            kappa1_prime=first["xd"],
            kappa_star_prime=_square_root(star2_prime, dps, digits, dd, "κ_*′"),
            cross=cross,
            second_moment=m["ss"],
            second_moment_prime=m["dd"],
            digits=digits,
            activation=expr,
        )


def hermite(activation: str | sp.Expr, digits: int = 30) -> HermiteCoefficients:
    """The coefficients of :func:`hermite_coefficients` for an activation given as text (a name such as
    ``"relu"`` or a SymPy expression in x, checked by :func:`~.activations.parse_activation`) or as an
    expression. In a notebook the result shows as LaTeX: exact forms and values."""
    expr = parse_activation(activation) if isinstance(activation, str) else activation
    return hermite_coefficients(expr, digits)


@lru_cache(maxsize=64)
def hermite_sequence(expr: sp.Expr, order: int, digits: int = 30) -> list[Coefficient]:
    """a_j = E σ(ξ) He_j(ξ) for j = 0..order (He_j: probabilists' Hermite polynomials), so that
    σ = Σ_j a_j He_j / j! in L²(N(0, 1)). Exact where possible, else quadrature with order/2 extra
    working digits for the cancellation in high orders; |a_j| ≤ √(E σ² · j!) sets the resolution."""
    digits = _check_digits(digits)
    if isinstance(order, bool) or not isinstance(order, int) or not 0 <= order <= MAX_ORDER:
        raise UserError(f"the Hermite order must be an integer from 0 to {MAX_ORDER}, got {order!r}.")
    dps = digits + GUARD_DIGITS + order // 2
    points = exact_kinks(expr)
    parity = _parity(expr)
    second = hermite_coefficients(expr, digits).second_moment.value
    integrator = _Integrator(expr, points, dps)
    out: list[Coefficient] = []
    for j in range(order + 1):
        p = 0 if parity == 0 else parity * (-1) ** j
        if p == -1:
            out.append(Coefficient(mpmath.mpf(0), sp.S.Zero))
            continue
        exact = exact_expectation(expr * sp.hermite_prob(j, X), points)
        if exact is not None:
            out.append(Coefficient(_value(exact, dps), exact))
            continue
        with mpmath.workdps(dps):
            scale = mpmath.sqrt(second * mpmath.factorial(j))

        def g(t: mpmath.mpf, s: mpmath.mpf, d: mpmath.mpf, j: int = j) -> mpmath.mpf:
            return s * integrator.hermite(t, order)[j]

        value = integrator.expectation(g, p == 1, f"E σ He_{j}", scale)
        out.append(Coefficient(_snap(value, scale, digits), None))
    return out
