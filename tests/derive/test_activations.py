"""Parsing, validation and symbolic helpers of activations (derive/activations.py)."""

from __future__ import annotations

import numpy as np
import pytest
import sympy as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from sobolev_rf.derive.activations import (
    NAMED,
    X,
    derivative,
    describe,
    exact_kinks,
    is_even,
    is_odd,
    kinks,
    parse_activation,
)
from sobolev_rf.derive.errors import UserError
from sobolev_rf.numeric.simulation.functions import numpy_pair

x = X


@pytest.mark.parametrize("name", sorted(NAMED))
def test_named_activations_parse(name: str) -> None:
    expr = parse_activation(name)
    assert expr.free_symbols == {x}
    assert parse_activation(name.upper()) == expr


@pytest.mark.parametrize(
    "text, expected",
    [
        ("Max(0, x)", sp.Max(0, x)),
        ("x*erf(x/sqrt(2))", x * sp.erf(x / sp.sqrt(2))),
        ("log(1+exp(x))", sp.log(1 + sp.exp(x))),
        ("x**3", x**3),
        ("Heaviside(x)*x", sp.Heaviside(x) * x),
        ("Piecewise((0, x < 0), (x, True))", sp.Piecewise((0, x < 0), (x, True))),
        ("0.1*x + x**2/2", x / 10 + x**2 / 2),
        ("  tanh(x) ", sp.tanh(x)),
    ],
)
def test_expressions_parse(text: str, expected: sp.Expr) -> None:
    assert sp.simplify(parse_activation(text) - expected) == 0


def test_decimals_are_exact_rationals() -> None:
    assert parse_activation("0.044715*x**3 + x") == sp.Rational(44715, 10**6) * x**3 + x


def test_named_and_written_relu_share_the_canonical_string() -> None:
    assert describe(parse_activation("relu")) == describe(parse_activation("Max(0, x)"))


@pytest.mark.parametrize(
    "text",
    [
        "__import__('os').system('touch {marker}')",
        "().__class__.__bases__[0].__subclasses__()",
        "x.__class__",
        "x.conjugate()",
        "lambda: 1",
        "'x'",
        "[x]",
        "{x}",
        "x; 1",
        "x if x else 1",
        "eval('1')",
        'exec(\'open("{marker}", "w")\')',
        "open('{marker}', 'w')",
        "Symbol('y')",
        "sympify('x')",
        "x@x",
        "x\n+1",
        "1j*x",
        "0x10*x",
    ],
)
def test_unsafe_text_is_rejected_without_side_effect(text: str, tmp_path) -> None:
    marker = tmp_path / "pwned"
    with pytest.raises(UserError):
        parse_activation(text.replace("{marker}", str(marker)))
    assert not marker.exists()


def test_unknown_function_and_stray_symbol_are_named() -> None:
    with pytest.raises(UserError, match="'foo'.*allowed names.*Max"):
        parse_activation("foo(x)")
    with pytest.raises(UserError, match="'y'.*only variable is x"):
        parse_activation("x + y")


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("exp(x**2)", "exp\\(c·x²\\)"),
        ("exp(x**2/4)", "exp\\(c·x²\\)"),
        ("x*exp(x**2/3)", "exp\\(c·x²\\)"),
        ("exp(exp(exp(x)))", "overflows"),
        ("Heaviside(x)", "jumps"),
        ("sign(x)", "jumps"),
        ("1/x", "pole"),
        ("log(x)", "not real"),
        ("sqrt(x)", "not real"),
        ("x^2", "\\*\\*"),
        ("2 x", "explicit"),
        ("10**10**10", "exponent"),
        ("x > 1", "real-valued"),
        ("Abs(sin(x))", "polynomial"),
        ("", "empty"),
    ],
)
def test_invalid_activations_are_rejected(text: str, fragment: str) -> None:
    with pytest.raises(UserError, match=fragment):
        parse_activation(text)


def test_moderate_gaussian_growth_is_accepted() -> None:
    assert parse_activation("exp(x**2/5)") == sp.exp(x**2 / 5)


def test_derivatives_are_ordinary_functions() -> None:
    assert derivative(parse_activation("relu")) == sp.Heaviside(x)
    assert derivative(parse_activation("abs")) == sp.sign(x)
    assert derivative(parse_activation("Heaviside(x)*x")) == sp.Heaviside(x)
    assert sp.simplify(derivative(parse_activation("tanh")) - (1 - sp.tanh(x) ** 2)) == 0


def test_kinks() -> None:
    assert kinks(parse_activation("relu")) == [0.0]
    assert kinks(parse_activation("tanh")) == []
    assert kinks(parse_activation("Max(0, x - 1/3)")) == pytest.approx([1 / 3])
    assert kinks(parse_activation("Abs(x**2 - 2)")) == pytest.approx([-(2**0.5), 2**0.5])
    assert kinks(parse_activation("Piecewise((0, x < -1), (x + 1, x < 2), (3, True))")) == [-1.0, 2.0]


@pytest.mark.parametrize(
    "text, odd, even",
    [
        ("tanh", True, False),
        ("erf", True, False),
        ("x**3", True, False),
        ("abs", False, True),
        ("x*erf(x)", False, True),
        ("relu", False, False),
        ("gelu", False, False),
        ("sigmoid", False, False),
        ("softplus", False, False),
        ("1/(1+exp(-x)) - 1/2", True, False),
    ],
)
def test_parity(text: str, odd: bool, even: bool) -> None:
    expr = parse_activation(text)
    assert (is_odd(expr), is_even(expr)) == (odd, even)


@pytest.mark.parametrize("name", sorted(NAMED))
def test_numpy_pair_matches_sympy(name: str) -> None:
    sigma, dsigma = numpy_pair(name)
    expr = parse_activation(name)
    t = np.linspace(-3.1, 2.9, 12).reshape(3, 4)
    for f, e in ((sigma, expr), (dsigma, derivative(expr))):
        v = f(t)
        assert v.shape == t.shape and v.dtype == np.float64
        ref = np.array([float(e.subs(x, sp.Float(ti, 30))) for ti in t.ravel()]).reshape(t.shape)
        np.testing.assert_allclose(v, ref, rtol=1e-12, atol=1e-14)


def test_numpy_pair_conventions() -> None:
    sigma, dsigma = numpy_pair("relu")
    assert dsigma(np.array([-1.0, 0.0, 1.0])).tolist() == [0.0, 0.5, 1.0]
    assert numpy_pair("abs")[1](np.array([-2.0, 0.0, 2.0])).tolist() == [-1.0, 0.0, 1.0]
    assert numpy_pair("linear")[1](np.zeros((2, 3))).tolist() == [[1.0] * 3] * 2
    assert np.isfinite(numpy_pair("softplus")[0](np.array([800.0, -800.0]))).all()


_ALPHABET = st.sampled_from(
    [
        "x",
        "(",
        ")",
        "+",
        "-",
        "*",
        "/",
        "**",
        ",",
        ".",
        "0",
        "1",
        "2",
        "_",
        "'",
        "Max",
        "exp",
        "erf",
        "log",
        "pi",
        "__",
        "[",
        "]",
        " ",
        "y",
        "lambda",
        "<",
    ]
)


@settings(max_examples=300, deadline=None)
@given(st.lists(_ALPHABET, min_size=1, max_size=12).map("".join))
def test_any_text_gives_an_expression_or_a_user_error(text: str) -> None:
    try:
        expr = parse_activation(text)
    except UserError:
        return
    assert isinstance(expr, sp.Expr) and expr.free_symbols <= {x}


def test_kinks_of_a_switch_argument_with_a_repeated_root_and_irrational_coefficients() -> None:
    # x³ − π²x² = x²(x − π²): the double root at 0 stalled the numerical root finder over ZZ[π]
    assert exact_kinks(parse_activation("Max(x**3, (x*pi)**2)")) == [0, sp.pi**2]
