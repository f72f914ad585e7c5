"""Property tests of the parameter object (derive/params.py) and the activation parser (derive/activations.py).

Valid parameters construct and round-trip through ``as_dict``; every invalid one raises
:class:`ParameterError` with a one-line message naming the parameter. Random text given as an
activation either parses to an expression in x alone or raises :class:`UserError`, never anything else.
"""

from __future__ import annotations

import math
from typing import Any

import sympy as sp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sobolev_rf.derive.activations import NAMED, X, parse_activation
from sobolev_rf.derive.errors import UserError
from sobolev_rf.derive.params import MAX_K, ModelParams, ParameterError

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

finite = st.floats(allow_nan=False, allow_infinity=False, min_value=-1e300, max_value=1e300)
positive = st.floats(min_value=1e-300, max_value=1e300, allow_nan=False, allow_infinity=False)
nonnegative = st.floats(min_value=0.0, max_value=1e300, allow_nan=False, allow_infinity=False)
names = st.sampled_from(sorted(NAMED)) | st.text(min_size=1, max_size=20).filter(lambda s: s.strip() != "")


@st.composite
def valid_params(draw: st.DrawFn) -> dict[str, Any]:
    k = draw(st.integers(min_value=0, max_value=6))
    alignment = draw(st.none() | st.lists(finite, min_size=k, max_size=k))
    return {
        "activation": draw(names),
        "teacher": draw(names),
        "k": draw(st.sampled_from([k, float(k)])),
        "tau": draw(st.sampled_from([0, 1, 0.0, 1.0, 0.3, 2.5, 100.0])),
        "p_over_d": draw(positive),
        "n_over_d": draw(positive),
        "lam": draw(nonnegative),
        "noise_f": draw(nonnegative),
        "noise_g": draw(nonnegative),
        "alignment": alignment,
    }


@SETTINGS
@given(valid_params())
def test_valid_values_construct_and_round_trip(values: dict[str, Any]) -> None:
    p = ModelParams(**values)
    d = p.as_dict()
    assert set(d) == set(values)
    assert isinstance(p.k, int) and p.k == values["k"] and p.tau == values["tau"] and p.tau >= 0
    assert isinstance(p.tau, int) == float(values["tau"]).is_integer()
    assert len(p.alignment or ()) == p.k
    if values["alignment"] is None:
        assert p.alignment == (1.0,) * p.k
    assert ModelParams(**d) == p
    assert ModelParams(**d).as_dict() == d
    for key in ("p_over_d", "n_over_d", "lam", "noise_f", "noise_g"):
        assert d[key] == values[key] and math.isfinite(d[key])
    assert d["activation"] == values["activation"].strip()


bad_real = st.sampled_from([math.nan, math.inf, -math.inf, "abc", "", None, [1.0], "1,5"])
bad_positive = bad_real | st.floats(max_value=0.0, allow_nan=False) | st.just(-0.0)
bad_nonnegative = bad_real | st.floats(max_value=-1e-300, allow_nan=False)
bad_k = (
    st.integers(max_value=-1)
    | st.integers(min_value=MAX_K + 1)
    | st.floats(allow_nan=True).filter(lambda v: not (math.isfinite(v) and v.is_integer() and 0 <= v <= MAX_K))
    | st.sampled_from([True, False, "1", None, [1], 1 + 0j])
)
bad_tau = (
    st.integers(max_value=-1)
    | st.floats(max_value=-1e-300, allow_nan=False)
    | st.sampled_from([True, False, math.nan, math.inf, -math.inf, "abc", "", None, [1]])
)
bad_text = st.sampled_from(["", "   ", "\t\n", None, 3, 1.5, ["x"]])

#: (field, strategy of invalid values, text the message must contain)
INVALID = [
    ("activation", bad_text, "activation"),
    ("teacher", bad_text, "teacher"),
    ("k", bad_k, "k"),
    ("tau", bad_tau, "tau"),
    ("p_over_d", bad_positive, "p_over_d"),
    ("n_over_d", bad_positive, "n_over_d"),
    ("lam", bad_nonnegative, "lam"),
    ("noise_f", bad_nonnegative, "noise_f"),
    ("noise_g", bad_nonnegative, "noise_g"),
]


@st.composite
def invalid_params(draw: st.DrawFn) -> tuple[dict[str, Any], str]:
    values = draw(valid_params())
    field, bad, name = draw(st.sampled_from(INVALID))
    values[field] = draw(bad)
    if field == "k":
        values["alignment"] = None
    return values, name


@st.composite
def invalid_alignments(draw: st.DrawFn) -> dict[str, Any]:
    values = draw(valid_params())
    k = int(values["k"])
    wrong_length = st.lists(finite, max_size=8).filter(lambda a: len(a) != k)
    bad_entry = st.lists(finite | bad_real, min_size=max(k, 1), max_size=max(k, 1)).filter(
        lambda a: any(not isinstance(v, float) or not math.isfinite(v) for v in a)
    )
    if draw(st.booleans()):
        values["alignment"] = draw(wrong_length)
    else:
        values["k"] = max(k, 1)
        values["alignment"] = draw(bad_entry)
    return values


def _assert_one_line_naming(exc: ParameterError, name: str) -> None:
    message = str(exc)
    assert message and "\n" not in message and "\r" not in message, message
    assert name in message, message


@SETTINGS
@given(invalid_params())
def test_invalid_values_raise_a_one_line_parameter_error(case: tuple[dict[str, Any], str]) -> None:
    values, name = case
    try:
        ModelParams(**values)
    except ParameterError as exc:
        _assert_one_line_naming(exc, name)
    else:
        raise AssertionError(f"accepted invalid {name}: {values}")


@SETTINGS
@given(invalid_alignments())
def test_invalid_alignment_raises_a_one_line_parameter_error(values: dict[str, Any]) -> None:
    try:
        ModelParams(**values)
    except ParameterError as exc:
        _assert_one_line_naming(exc, "alignment")
    else:
        raise AssertionError(f"accepted invalid alignment: {values}")


@SETTINGS
@given(st.sampled_from(INVALID[2:]), st.data())
def test_with_validates_too(entry: tuple[str, st.SearchStrategy[Any], str], data: st.DataObject) -> None:
    field, bad, name = entry
    try:
        ModelParams().with_(**{field: data.draw(bad)})
    except ParameterError as exc:
        _assert_one_line_naming(exc, name)
    else:
        raise AssertionError(f"with_ accepted invalid {name}")


#: Characters of expression text, of Python syntax that must be refused, and a few others.
ALPHABET = "x0123456789.+-*/() ,<>=&|eE" + "abcdfghilmnoprstuwzMHPAS_" + "'\"[]{};:!@#$%^~`\\\t" + "é∞"
FUNCTIONS = (
    "exp",
    "tanh",
    "erf",
    "sin",
    "cos",
    "atan",
    "asinh",
    "Abs",
    "sqrt",
    "log",
    "sinh",
    "cosh",
    "erfc",
    "sign",
    "Heaviside",
)
leaves = st.sampled_from(["x", "x", "1", "2", "0.5", "pi", "E", "3e-1", "0"])


def _compose(children: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    unary = st.builds(lambda f, a: f"{f}({a})", st.sampled_from(FUNCTIONS), children)
    binary = st.builds(lambda a, op, b: f"({a}){op}({b})", children, st.sampled_from(["+", "-", "*", "/"]), children)
    power = st.builds(lambda a, n: f"({a})**{n}", children, st.integers(min_value=-3, max_value=5))
    pair = st.builds(lambda f, a, b: f"{f}({a}, {b})", st.sampled_from(["Max", "Min"]), children, children)
    return unary | binary | power | pair


expressions = st.recursive(leaves, _compose, max_leaves=5)
junk = st.text(alphabet=ALPHABET, max_size=40)
#: Token soup: mostly whitelisted tokens in random order, so that much of it reaches SymPy's parser.
TOKENS = (
    "x",
    "x",
    "1",
    "0.5",
    "2",
    "1e3",
    "pi",
    "E",
    "True",
    "+",
    "-",
    "*",
    "/",
    "**",
    "(",
    ")",
    "(",
    ")",
    ",",
    "<",
    ">",
    "<=",
    "&",
    "|",
    " ",
    "Max",
    "Min",
    "Abs",
    "exp",
    "log",
    "sqrt",
    "Piecewise",
    "Heaviside",
    "sign",
    "tanh",
    "erf",
    "y",
    "__",
    ".",
    "=",
    "==",
    "if",
    "[",
    "'",
)
soup = st.lists(st.sampled_from(TOKENS), max_size=14).map("".join)


def _parses_or_user_error(text: str) -> None:
    try:
        expr = parse_activation(text)
    except UserError as exc:
        assert str(exc)
        return
    assert isinstance(expr, sp.Expr)
    assert expr.free_symbols <= {X}, (text, expr)


@settings(max_examples=300, deadline=None)
@given(junk)
def test_junk_text_parses_or_raises_user_error(text: str) -> None:
    _parses_or_user_error(text)


@settings(max_examples=200, deadline=None)
@given(soup)
def test_token_soup_parses_or_raises_user_error(text: str) -> None:
    _parses_or_user_error(text)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(expressions)
def test_composed_expressions_parse_or_raise_user_error(text: str) -> None:
    _parses_or_user_error(text)


@settings(max_examples=80, deadline=None)
@given(
    expressions,
    st.sampled_from(
        [
            "__import__('os')",
            "x.__class__",
            "lambda: 1",
            "exec('1')",
            "y",
            "os",
            "x; x",
            "x^2",
            "import",
            "[x]",
            "x if x else 1",
        ]
    ),
)
def test_expressions_with_forbidden_parts_are_refused(text: str, bad: str) -> None:
    try:
        parse_activation(f"{text} + {bad}")
    except UserError:
        return
    raise AssertionError(f"accepted {text} + {bad}")
