"""Hermite coefficients (derive/hermite.py): closed forms, identities and an independent quadrature."""

from __future__ import annotations

import time
from collections.abc import Callable

import mpmath
import pytest
import sympy as sp

from sobolev_rf.derive.activations import NAMED, X, derivative, exact_kinks, parse_activation
from sobolev_rf.derive.errors import UserError
from sobolev_rf.derive.hermite import Coefficient, hermite_coefficients, hermite_sequence

pi = sp.pi
DIGITS = 30


def coeffs(text: str, digits: int = DIGITS):
    return hermite_coefficients(parse_activation(text), digits)


def agree(value: mpmath.mpf, expected, digits: int = DIGITS, scale: float = 1.0) -> bool:
    """|value − expected| below 10^{−digits}·max(|expected|, scale)."""
    with mpmath.workdps(digits + 15):
        target = mpmath.mpf(sp.N(expected, digits + 15)) if isinstance(expected, sp.Basic) else expected
        return abs(value - target) <= mpmath.mpf(10) ** (-digits) * max(abs(target), scale)


def assert_exact(c: Coefficient, expected: sp.Expr) -> None:
    assert c.exact is not None and sp.simplify(c.exact - expected) == 0, (c.exact, expected)
    assert agree(c.value, expected)


def test_relu_closed_forms() -> None:
    h = coeffs("relu")
    assert_exact(h.kappa0, 1 / sp.sqrt(2 * pi))
    assert_exact(h.kappa1, sp.Rational(1, 2))
    assert_exact(h.kappa_star, sp.sqrt(sp.Rational(1, 4) - 1 / (2 * pi)))
    assert_exact(h.kappa0_prime, sp.Rational(1, 2))
    assert_exact(h.kappa1_prime, 1 / sp.sqrt(2 * pi))
    assert_exact(h.kappa_star_prime, sp.sqrt(sp.Rational(1, 4) - 1 / (2 * pi)))
    assert_exact(h.cross, sp.S.Zero)


def test_linear_and_cubic() -> None:
    lin = coeffs("linear")
    assert_exact(lin.kappa1, sp.S.One)
    assert_exact(lin.kappa_star, sp.S.Zero)
    assert_exact(lin.kappa_star_prime, sp.S.Zero)
    cubic = coeffs("x**3")
    assert_exact(cubic.kappa1, sp.Integer(3))
    assert_exact(cubic.kappa_star, sp.sqrt(6))  # E x⁶ − 9 = 6
    assert_exact(cubic.kappa_star_prime, 3 * sp.sqrt(2))  # E 9x⁴ − 9 = 18
    seq = hermite_sequence(parse_activation("x**3"), 4, DIGITS)
    assert [c.exact for c in seq] == [0, 3, 0, 6, 0]


def test_abs_closed_forms() -> None:
    h = coeffs("abs")
    assert_exact(h.kappa0, sp.sqrt(2 / pi))
    assert_exact(h.kappa1, sp.S.Zero)
    assert_exact(h.kappa_star, sp.sqrt(1 - 2 / pi))
    assert_exact(h.kappa0_prime, sp.S.Zero)
    assert_exact(h.kappa1_prime, sp.sqrt(2 / pi))
    assert_exact(h.kappa_star_prime, sp.sqrt(1 - 2 / pi))


def test_erf_closed_forms() -> None:
    # E ξ erf(ξ) = E erf′(ξ) = 2/√(3π); E erf(ξ)² = (2/π) asin(2/3); E erf′(ξ)² = (4/π) E e^{−2ξ²} = 4/(π√5).
    h = coeffs("erf")
    assert_exact(h.kappa1, 2 / sp.sqrt(3 * pi))
    assert_exact(h.kappa_star, sp.sqrt(2 / pi * sp.asin(sp.Rational(2, 3)) - 4 / (3 * pi)))
    assert_exact(h.kappa1_prime, sp.S.Zero)
    assert_exact(h.second_moment_prime, 4 / (pi * sp.sqrt(5)))
    assert_exact(h.kappa_star_prime, sp.sqrt(4 / (pi * sp.sqrt(5)) - 4 / (3 * pi)))


def test_gelu_closed_forms() -> None:
    # σ = xΦ(x): κ₀ = E ξΦ(ξ) = E φ(ξ) = 1/(2√π), κ₁ = E Φ(ξ) + E ξφ(ξ)... = 1/2, κ₁′ = 3/(4√π).
    h = coeffs("gelu")
    assert_exact(h.kappa0, 1 / (2 * sp.sqrt(pi)))
    assert_exact(h.kappa1, sp.Rational(1, 2))
    assert_exact(h.kappa1_prime, 3 / (4 * sp.sqrt(pi)))
    assert_exact(h.second_moment, sp.Rational(1, 3) + 1 / (2 * sp.sqrt(3) * pi))


def test_gaussian_windowed_trigonometric_forms() -> None:
    h = coeffs("sin(x)")
    assert_exact(h.kappa1, sp.exp(-sp.Rational(1, 2)))
    assert_exact(h.second_moment, (1 - sp.exp(-2)) / 2)
    e = coeffs("exp(x/2)")  # a_j = e^{1/8} 2^{−j}, so c_σ = Σ_{j≥2} a_j a_{j+1}/j! = e^{1/4}(e^{1/4} − 5/4)/2
    q = sp.exp(sp.Rational(1, 4))
    assert_exact(e.cross, q * (q - sp.Rational(5, 4)) / 2)


@pytest.mark.parametrize(
    "text",
    [
        "relu",
        "tanh",
        "erf",
        "sigmoid",
        "softplus",
        "gelu",
        "abs",
        "x**3",
        "sin(x)",
        "Max(0, x - 1/3)",
        "Max(0.1*x, x)",
        "Abs(x**2 - 2)",
        "x*exp(-x**2)",
        "atan(x) + x**2/3",
    ],
)
def test_stein_identity(text: str) -> None:
    h = coeffs(text)
    assert agree(h.kappa0_prime.value, h.kappa1.value, scale=float(h.second_moment.value) ** 0.5)


def _reference_moments(text: str, dps: int = 45, half_width: int = 16) -> dict[str, mpmath.mpf]:
    """E of σ, ξσ, σ², σ′, ξσ′, σ′², σσ′ by composite Gauss–Legendre on [−16, 16] (unit panels and the
    switch points, neglected tails < e^{−100}): independent of the tanh–sinh quadrature and the closed forms."""
    expr = parse_activation(text)
    s = sp.lambdify(X, expr, "mpmath")
    d = sp.lambdify(X, derivative(expr), "mpmath")
    cache: dict[mpmath.mpf, tuple] = {}
    integrands = {
        "s": lambda t, a, b: a,
        "xs": lambda t, a, b: t * a,
        "ss": lambda t, a, b: a * a,
        "d": lambda t, a, b: b,
        "xd": lambda t, a, b: t * b,
        "dd": lambda t, a, b: b * b,
        "sd": lambda t, a, b: a * b,
    }
    out = {}
    with mpmath.workdps(dps):

        def at(t: mpmath.mpf) -> tuple:
            if t not in cache:
                cache[t] = (s(t), d(t), mpmath.exp(-t * t / 2) / mpmath.sqrt(2 * mpmath.pi))
            return cache[t]

        cuts = {mpmath.mpf(sp.N(k, dps + 5)) for k in exact_kinks(expr)}
        panels = sorted(cuts | {mpmath.mpf(k) for k in range(-half_width, half_width + 1)})
        for key, g in integrands.items():
            out[key] = mpmath.quad(lambda t: g(t, *at(t)[:2]) * at(t)[2], panels, method="gauss-legendre")
    return out


@pytest.mark.parametrize(
    "text",
    [
        "tanh",
        "sigmoid",
        "softplus",
        "gelu",
        "erf",  # tanh–sinh quadrature or closed form
        "relu",
        "abs",
        "Max(0, x - 1/3)",
        "Abs(x**2 - 2)",
        "Max(0.1*x, x)",
        "x*erf(x)",
        "erfc(x/2)",
        "sin(x)",
        "cos(2*x) + x",
        "exp(x/2)",
        "Max(0, x)*exp(x)",
        "Piecewise((0, x < -1), (x + 1, x < 2), (3, True))",
    ],
)
def test_two_independent_quadratures_agree_to_30_digits(text: str) -> None:
    ref = _reference_moments(text)
    h = coeffs(text)
    with mpmath.workdps(45):
        star2 = ref["ss"] - ref["s"] ** 2 - ref["xs"] ** 2
        star2p = ref["dd"] - ref["d"] ** 2 - ref["xd"] ** 2
        cross = ref["sd"] - ref["s"] * ref["d"] - ref["xs"] * ref["xd"]
        expected = {
            "kappa0": ref["s"],
            "kappa1": ref["xs"],
            "kappa_star": mpmath.sqrt(star2),
            "kappa0_prime": ref["d"],
            "kappa1_prime": ref["xd"],
            "kappa_star_prime": mpmath.sqrt(star2p),
            "cross": cross,
            "second_moment": ref["ss"],
            "second_moment_prime": ref["dd"],
        }
    for name, c in h.coefficients().items():
        assert agree(c.value, expected[name]), (name, c.value, expected[name])


@pytest.mark.parametrize("text", ["tanh", "erf", "x**3", "sin(x)", "x*exp(-x**2)"])
def test_odd_activations(text: str) -> None:
    h = coeffs(text)
    assert h.kappa0.value == 0 and h.kappa1_prime.value == 0 and h.cross.value == 0


@pytest.mark.parametrize("text", ["relu", "gelu", "softplus", "tanh", "abs", "sigmoid"])
def test_cross_covariance_vanishes_for_linear_plus_even_or_constant_plus_odd(text: str) -> None:
    assert coeffs(text).cross.value == 0


def test_cross_covariance_of_a_mixed_polynomial() -> None:
    # σ = x² + x³: a₂ = 2, a₃ = 6, so c_σ = a₂a₃/2! = 6.
    assert_exact(coeffs("x**2 + x**3").cross, sp.Integer(6))


def test_cross_covariance_is_the_hermite_series() -> None:
    # c_σ = Σ_{j≥2} a_j a_{j+1} / j!; for σ = ReLU(x − 1/3) the series converges slowly, so use a
    # Gaussian-damped activation whose coefficients decay fast (truncation error ~1e-13 at order 40).
    expr = parse_activation("Max(0, x)*exp(-x**2/4) + x**2/5")
    h = hermite_coefficients(expr, 15)
    seq = hermite_sequence(expr, 40, 15)
    with mpmath.workdps(30):
        series = mpmath.fsum(seq[j].value * seq[j + 1].value / mpmath.factorial(j) for j in range(2, 40))
    assert agree(series, h.cross.value, digits=10)


def test_relu_hermite_sequence() -> None:
    # a_j = E ReLU(ξ)He_j(ξ) = (−1)^{j/2+1} (j−3)!! / √(2π) for even j ≥ 2, 0 for odd j ≥ 3.
    seq = hermite_sequence(parse_activation("relu"), 8, DIGITS)
    r = 1 / sp.sqrt(2 * pi)
    expected = [r, sp.Rational(1, 2), r, 0, -r, 0, 3 * r, 0, -15 * r]
    for c, e in zip(seq, expected):
        assert_exact(c, e)


def test_quadrature_sequence_matches_coefficients() -> None:
    expr = parse_activation("softplus")
    h = hermite_coefficients(expr, DIGITS)
    seq = hermite_sequence(expr, 6, DIGITS)
    assert agree(seq[0].value, h.kappa0.value) and agree(seq[1].value, h.kappa1.value)
    assert agree(seq[2].value, h.kappa1_prime.value)
    assert seq[4].value != 0 and seq[3].value == 0  # softplus − x/2 is even


@pytest.mark.parametrize("name", sorted(NAMED))
def test_named_activations_are_fast(name: str) -> None:
    expr = parse_activation(name)
    start = time.perf_counter()
    hermite_coefficients.__wrapped__(expr, 31)  # bypass the cache of this function
    assert time.perf_counter() - start < 5.0


def test_as_floats_and_digits_validation() -> None:
    floats = coeffs("relu").as_floats()
    assert set(floats) == {
        "kappa0",
        "kappa1",
        "kappa_star",
        "kappa0_prime",
        "kappa1_prime",
        "kappa_star_prime",
        "cross",
        "second_moment",
        "second_moment_prime",
    }
    assert floats["kappa1"] == 0.5 and isinstance(floats["kappa0"], float)
    for bad in (0, 1001, 2.5, True):
        with pytest.raises(UserError):
            hermite_coefficients(parse_activation("relu"), bad)
    with pytest.raises(UserError):
        hermite_sequence(parse_activation("relu"), -1, 10)


def test_high_precision() -> None:
    h = coeffs("tanh", 80)
    low = coeffs("tanh", 30)
    assert agree(h.kappa_star.value, low.kappa_star.value)
    assert agree(coeffs("relu", 200).kappa_star.value, sp.sqrt(sp.Rational(1, 4) - 1 / (2 * pi)), digits=200)


def test_a_closed_form_with_huge_cancelling_terms_keeps_its_value() -> None:
    # σ = max(x³, π²x²) switches at 0 and π²: the exact E σ² − κ₀² − κ₁² carries factors e^{±5π⁴/4} that
    # cancel to O(1), which an evaluation that chops small parts reported as κ_* = 0 ("σ is linear")
    sigma = parse_activation("Max(x**3, (x*pi)**2)")
    h = hermite_coefficients(sigma, 25)
    f = sp.lambdify(X, sigma, "mpmath")

    def gauss(g: Callable[[mpmath.mpf], mpmath.mpf]) -> mpmath.mpf:
        cuts = [-mpmath.inf, 0, mpmath.pi**2, mpmath.inf]
        return mpmath.quad(lambda t: g(t) * mpmath.exp(-t * t / 2), cuts) / mpmath.sqrt(2 * mpmath.pi)

    with mpmath.workdps(40):
        star2 = gauss(lambda t: f(t) ** 2) - gauss(f) ** 2 - gauss(lambda t: t * f(t)) ** 2
        assert abs(h.kappa_star.value - mpmath.sqrt(star2)) < mpmath.mpf(10) ** -20 * mpmath.sqrt(star2)
