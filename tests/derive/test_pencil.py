"""Linear pencils: every pencil reproduces its expression on random finite matrices."""

from __future__ import annotations

import json

import numpy as np
import pytest
import sympy as sp
from sympy import Identity, Inverse, MatrixSymbol

from sobolev_rf.derive.errors import UserError
from sobolev_rf.derive.matrix_syntax import declare_shapes, parse_expression
from sobolev_rf.derive.pencil import check_pencil, linearize

n, p, d, k = sp.symbols("n p d k", positive=True, integer=True)
lam, a, b, c, e, z = sp.symbols("lam a b c e z", positive=True)
F = MatrixSymbol("F", n, p)
X = MatrixSymbol("X", n, d)
Th = MatrixSymbol("Theta", d, p)
E = MatrixSymbol("E", n, p)
E2 = MatrixSymbol("Ep", n, p)
D1 = MatrixSymbol("D1", p, p)
D2 = MatrixSymbol("D2", p, p)
S = MatrixSymbol("S", d, d)
A = MatrixSymbol("A", p, p)
B = MatrixSymbol("B", p, p)
W = Th.T * Th / d
FEAT = X * Th / sp.sqrt(d) + E  # σ-linearised features (κ₁ = κ_* = 1)

SIZES = {n: 7, p: 9, d: 5, k: 4}

EXPRESSIONS = {
    "atom": F,
    "transpose": F.T,
    "gram": F.T * F / n,
    "mp_resolvent": Inverse(lam * Identity(p) + F.T * F / n),
    "mp_times_W": Inverse(lam * Identity(p) + F.T * F / n) * F.T * F / n,
    "anisotropic_mp": Inverse(z * Identity(d) + S * X.T * X * S / n),
    "rf_resolvent": Inverse(lam * Identity(p) + FEAT.T * FEAT / n),
    "sobolev_k1": Inverse(a * Identity(p) + b * W + c * D1 * W * D1 + e * D1 * D1),
    "sobolev_k2": Inverse(a * Identity(p) + b * W + c * (D1 * W * D1 + D2 * W * D2) + e * (D1 * D1 + D2 * D2)),
    "sobolev_gradient_rows": Inverse(
        lam * Identity(p) + FEAT.T * FEAT / n + D1 * (X * Th / sp.sqrt(d) + E2).T * (X * Th / sp.sqrt(d) + E2) * D1 / n
    ),
    "nested_inverse": Inverse(Identity(p) + F.T * Inverse(Identity(n) + F * F.T) * F),
    "sum_of_products": A * B - 2 * B * A.T + A * A * B,
    "power": (A + B) ** 3,
    "negative_power": (Identity(p) + A * A.T) ** -2,
    "rectangular_chain": X * Th * Th.T * X.T / d,
    "difference_of_inverses": Inverse(Identity(p) + A) - Inverse(Identity(p) + B),
}


@pytest.mark.parametrize("name", sorted(EXPRESSIONS))
def test_pencil_reproduces_expression(name: str) -> None:
    expr = EXPRESSIONS[name]
    pencil = linearize(expr)
    rng = np.random.default_rng(1)
    assert check_pencil(pencil, expr, SIZES, rng) <= 1e-10
    herm = pencil.hermitize()
    assert herm.is_symmetric
    assert check_pencil(herm, expr, SIZES, rng) <= 1e-10
    assert check_pencil(pencil.self_adjoint(), expr, SIZES, rng) <= 1e-10


def test_unpruned_pencil_is_also_correct_and_larger() -> None:
    expr = EXPRESSIONS["sobolev_k1"]
    raw = linearize(expr, prune=False)
    small = linearize(expr)
    assert small.size < raw.size
    assert check_pencil(raw, expr, SIZES, np.random.default_rng(2)) <= 1e-10


def test_pruning_collapses_identity_chains() -> None:
    # (λI + FᵀF/n)⁻¹ needs exactly two blocks: [[I, −F/n], [Fᵀ, λI]].
    pencil = linearize(EXPRESSIONS["mp_resolvent"])
    assert pencil.size == 2
    assert pencil.dimension == n + p
    # a product of r atoms needs r + 1 blocks
    assert linearize(X * Th * Th.T).size == 4


def test_several_outputs_share_one_pencil() -> None:
    Q = EXPRESSIONS["mp_resolvent"]
    exprs = {"Q": Q, "QW": Q * F.T * F / n}
    pencil = linearize(exprs)
    assert len(pencil.outputs) == 2
    assert check_pencil(pencil, exprs, SIZES, np.random.default_rng(3)) <= 1e-10


def test_printing_formats() -> None:
    pencil = linearize(EXPRESSIONS["sobolev_k1"])
    assert "blocks" in pencil.to_text()
    assert "pmatrix" in pencil.to_latex()
    data = pencil.as_dict()
    assert data["size"] == pencil.size and len(data["outputs"]) == 1


def test_parser_builds_the_same_pencil() -> None:
    mats, dims = declare_shapes(["F=n,p"])
    expr = parse_expression("inv(lam*I + Ft*F/n)", mats, dims)
    pencil = linearize(expr)
    assert pencil.size == 2
    assert check_pencil(pencil, expr, {"n": 6, "p": 8}, np.random.default_rng(4)) <= 1e-10
    expr2 = parse_expression("(lam + t(F)*F/n)^-1 * F'*F", mats, dims)
    assert check_pencil(linearize(expr2), expr2, {"n": 6, "p": 8}, np.random.default_rng(5)) <= 1e-10


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("inv(F)", "non-square"),
        ("F + Ft", "cannot add"),
        ("F*F", "cannot multiply"),
        ("lam", "scalar"),
        ("F / F", "scalars only"),
        ("__import__('os')", "unknown function"),
        ("F @ F", "unexpected character"),
        ("inv(lam*I + Ft*F", "ends too early"),
        ("F^0.5", "integers"),
        ("exp(F)", "unknown function"),
        ("", "empty"),
    ],
)
def test_parser_rejects_bad_input(text: str, fragment: str) -> None:
    mats, dims = declare_shapes(["F=n,p"])
    with pytest.raises(UserError, match=fragment):
        parse_expression(text, mats, dims)


@pytest.mark.parametrize(
    "text",
    ["(" * 200 + "Ft*F/n" + ")" * 200, "-" * 2000 + "Ft*F/n", "inv(" * 200 + "lam + Ft*F/n" + ")" * 200, "F" * 30000],
)
def test_parser_refuses_deep_or_huge_input_in_one_line(text: str) -> None:
    mats, dims = declare_shapes(["F=n,p"])
    with pytest.raises(UserError) as info:
        parse_expression(text, mats, dims)
    assert "\n" not in str(info.value) and ("levels deep" in str(info.value) or "characters" in str(info.value))
    parse_expression("(" * 30 + "Ft*F/n" + ")" * 30, mats, dims)  # a reasonable nesting still parses


def test_law_function_refuses_deep_nesting() -> None:
    from sobolev_rf.derive.laws import parse_function

    a = sp.Symbol("a")
    with pytest.raises(UserError, match="levels deep"):
        parse_function("(" * 300 + "A" + ")" * 300, {"A": a}, "B")
    assert parse_function("sqrt((A + 1)^2)", {"A": a}, "B") == sp.sqrt((a + 1) ** 2)


def test_pencil_of_a_string() -> None:
    from sobolev_rf.numeric import pencil

    from_text = pencil("inv(lam*I + Ft*F/n)", shapes=["F=n,p"])
    mats, dims = declare_shapes(["F=n,p"])
    expr = parse_expression("inv(lam*I + Ft*F/n)", mats, dims)
    assert from_text.as_dict() == linearize(expr).as_dict()
    with pytest.raises(UserError, match="shapes="):
        pencil("inv(lam*I + Ft*F/n)")


def test_bad_shape_declaration() -> None:
    with pytest.raises(UserError, match="NAME=ROWS,COLS"):
        declare_shapes(["F n p"])


# ----------------------------------------------------------------------------------- command line
def test_cli_pencil_text_json_and_latex(capsys: pytest.CaptureFixture[str]) -> None:
    import json

    from sobolev_rf.numeric.cli.main import main

    argv = [
        "pencil",
        "inv(lam*I + Ft*F/n)",
        "--shape",
        "F=n,p",
        "--solve",
        "--param",
        "lam=0.5",
        "--param",
        "n=1",
        "--param",
        "p=2",
    ]
    assert main(argv) == 0
    assert "2 blocks" in capsys.readouterr().out
    assert main(argv + ["--format", "json", "--self-adjoint"]) == 0
    data = json.loads(capsys.readouterr().out)
    # Marchenko–Pastur at λ = 0.5, p/n = 2: γλm² + (λ + 1 − γ)m − 1 = 0
    assert abs(data["solution"]["traces"]["r"] - (0.5 + 17**0.5 / 2) / 2) < 1e-13
    assert data["self_adjoint_pencil"]["size"] == 4
    sob = [
        "pencil",
        "inv(a + b*Thetat*Theta/d + c*D*Thetat*Theta*D/d + e*D*D)",
        "--shape",
        "Theta=d,p",
        "--diag",
        "D=p",
        "--format",
        "latex",
    ]
    assert main(sob) == 0
    assert "erfcx" in capsys.readouterr().out
    amp = [
        "pencil",
        "inv(z + S*Xt*X*S/n)",
        "--shape",
        "X=n,d",
        "--diag",
        "S=d@1:0.3,2:0.7",
        "--solve",
        "--param",
        "z=0.2",
        "--param",
        "d=0.5",
        "--param",
        "n=1",
    ]
    assert main(amp) == 0
    assert "tr(r)/m" in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv, fragment",
    [
        (["pencil", "inv(F)", "--shape", "F=n,p"], "non-square"),
        (["pencil", "inv(lam*I + Ft*F)", "--shape", "F=n,p"], "proportional regime"),
        (["pencil", "inv(lam*I + Ft*F/n)", "--shape", "F=n,p", "--solve"], "missing parameter"),
        (["pencil", "inv(lam*I + Ft*F/n)", "--shape", "F=n,p", "--solve", "--param", "lam"], "NAME=VALUE"),
        (["pencil", "inv(z + S)", "--diag", "S=d@1:0.5,2"], "weight for every value"),
        (["pencil", "inv(z + H)", "--shape", "H=n,n", "--symmetric", "G"], "--symmetric G"),
    ],
)
def test_cli_pencil_errors_are_one_line(argv: list[str], fragment: str, capsys: pytest.CaptureFixture[str]) -> None:
    from sobolev_rf.numeric.cli.main import main

    assert main(argv) == 2
    err = capsys.readouterr().err
    assert fragment in err and err.count("\n") == 1


def test_cli_parameter_names_that_are_python_words(capsys: pytest.CaptureFixture[str]) -> None:
    """A parameter may be called lambda or numpy: the stored system and its kernel use neutral names."""
    from sobolev_rf.numeric.cli.main import main

    argv = ["pencil", "inv(lambda*I + numpy*Ft*F/n)", "--shape", "F=n,p", "--solve", "--format", "json"]
    assert main(argv + ["--param", "lambda=0.5", "--param", "numpy=1", "--param", "n=1", "--param", "p=2"]) == 0
    got = json.loads(capsys.readouterr().out)["solution"]["traces"]["r"]
    # m(−λ) of FᵀF/n, γ = p/n = 2: γλm² + (λ + 1 − γ)m − 1 = 0, positive root
    a, b = 2 * 0.5, 0.5 + 1 - 2
    assert abs(got - (-b + np.sqrt(b * b + 4 * a)) / (2 * a)) < 1e-13
