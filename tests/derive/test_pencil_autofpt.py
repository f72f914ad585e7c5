"""auto-fpt's example suite, written in ``sobolev-rf pencil`` syntax and run through the command line.

Each example is checked against one finite-size draw of the same expression (the largest traced dimension
is 2000; relative agreement 1e-2) and, where a closed form or an independent deterministic equivalent
exists, against it to 1e-10. The examples: Marchenko–Pastur, anisotropic MP, the two random-features traces,
ridge-regression bias and variance with Θ given by a data column that is not a function of Σ, and
subordination (two groups with a joint covariance law from a file). Plus: joint laws, functions of
diagonals, uniform laws, complex parameters and their error messages.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import scipy.optimize

from sobolev_rf.numeric.cli.main import main

D = 2000  # the traced dimension of the finite draws
PHI = 0.5  # d/n
LAM = 0.1


def run_json(argv: list[str], capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    assert main(argv + ["--solve", "--format", "json"]) == 0
    return json.loads(capsys.readouterr().out)


def trace(argv: list[str], capsys: pytest.CaptureFixture[str]) -> Any:
    value = run_json(argv, capsys)["solution"]["traces"]["r"]
    return complex(value["re"], value["im"]) if isinstance(value, dict) else value


# ----------------------------------------------------------------------------------- shared data
@pytest.fixture(scope="module")
def columns(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray, np.ndarray, np.ndarray]:
    """A data file of d = 2000 rows: covariance eigenvalues s, a teacher column t (not a function of s) and a
    second group's covariance s2 (correlated with s, not a function of it)."""
    rng = np.random.default_rng(7)
    s = rng.uniform(0.5, 2.5, D)
    t = rng.exponential(1.0, D)
    s2 = 0.5 * s + rng.uniform(0.0, 1.0, D)
    path = tmp_path_factory.mktemp("laws") / "spectrum.csv"
    lines = ["# covariance s, teacher t, second group s2", "S,T,S2"] + [
        f"{a!r},{b!r},{c!r}" for a, b, c in zip(s.tolist(), t.tolist(), s2.tolist())
    ]
    path.write_text("\n".join(lines) + "\n")
    return path, s, t, s2


@pytest.fixture(scope="module")
def gram() -> tuple[np.ndarray, np.ndarray]:
    """One draw Z ∈ ℝ^{n×d}, n = d/φ = 4000, d = 2000, split into two groups of rows: (Z₁ᵀZ₁, Z₂ᵀZ₂)."""
    rng = np.random.default_rng(11)
    Z = rng.standard_normal((int(D / PHI), D))
    half = Z.shape[0] // 2
    return Z[:half].T @ Z[:half], Z[half:].T @ Z[half:]


# ----------------------------------------------------------------------------------- Marchenko–Pastur
def test_marchenko_pastur(gram: tuple[np.ndarray, np.ndarray], capsys: pytest.CaptureFixture[str]) -> None:
    got = trace(
        [
            "pencil",
            "inv(lam*I + Zt*Z/n)",
            "--shape",
            "Z=n,d",
            "--param",
            f"lam={LAM}",
            "--param",
            "n=1",
            "--param",
            f"d={PHI}",
        ],
        capsys,
    )
    # m(−λ) of ZᵀZ/n (γ = d/n): γλm² + (λ + 1 − γ)m − 1 = 0, positive root
    A, B = PHI * LAM, LAM + 1 - PHI
    closed = (-B + math.sqrt(B * B + 4 * A)) / (2 * A)
    assert abs(got - closed) <= 1e-10 * closed
    G = (gram[0] + gram[1]) / (D / PHI)
    finite = float(np.mean(1 / (LAM + np.linalg.eigvalsh(G))))
    assert abs(finite / got - 1) < 1e-2


def test_anisotropic_marchenko_pastur(gram: tuple[np.ndarray, np.ndarray], capsys: pytest.CaptureFixture[str]) -> None:
    # C = Σ^{1/2} with Σ ∈ {1, 3} (weights 0.3, 0.7); C as a function of the declared Σ
    got = trace(
        [
            "pencil",
            "inv(lam*I + C*Zt*Z*C/n)",
            "--shape",
            "Z=n,d",
            "--diag",
            "Sg=d@1:0.3,3:0.7",
            "--diag",
            "C=d@sqrt(Sg)",
            "--param",
            f"lam={LAM}",
            "--param",
            "n=1",
            "--param",
            f"d={PHI}",
        ],
        capsys,
    )
    # Silverstein: m = Σ_a w_a / (t_a (1 − γ + γλm) + λ)
    ref = scipy.optimize.brentq(
        lambda m: m - 0.3 / (1 - PHI + PHI * LAM * m + LAM) - 0.7 / (3 * (1 - PHI + PHI * LAM * m) + LAM),
        1e-6,
        1 / LAM,
        xtol=1e-15,
    )
    assert abs(got - ref) <= 1e-10 * ref
    sig = np.where(np.arange(D) < 0.3 * D, 1.0, 3.0)
    c = np.sqrt(sig)
    M = c[:, None] * (gram[0] + gram[1]) / (D / PHI) * c[None, :]
    finite = float(np.mean(1 / (LAM + np.linalg.eigvalsh(M))))
    assert abs(finite / got - 1) < 1e-2


# ----------------------------------------------------------------------------------- random features
def _rf_reference(lv: float, p_over_d: float, p_over_n: float, k1: float, ks: float) -> tuple[float, float]:
    """τ₁ = (1/p) tr R, τ₂ = (1/p) tr RW, R = (λ + AᵀA/n)⁻¹, A = κ₁XΘ/√d + κ_*E (an independent derivation:
    given Θ the rows of A are N(0, κ₁²W + κ_*²I), then the MP law of W), solved by root finding."""

    def residual(t: np.ndarray) -> np.ndarray:
        t1, t2 = t
        delta = p_over_n * (ks**2 * t1 + k1**2 * t2)
        alpha, beta = lv + ks**2 / (1 + delta), k1**2 / (1 + delta)
        return np.array([t1 - 1 / (alpha + beta / (1 + beta * p_over_d * t1)), t2 - (1 - alpha * t1) / beta])

    t = scipy.optimize.fsolve(residual, [1 / lv, 1.0], xtol=1e-15)
    t = scipy.optimize.root(residual, t, method="hybr", tol=1e-15).x
    return float(t[0]), float(t[1])


@pytest.fixture(scope="module")
def rf_draw() -> tuple[float, float]:
    rng = np.random.default_rng(3)
    dd, pp = 1000, D
    nn = int(round(pp / 1.5))
    X, T, E = rng.standard_normal((nn, dd)), rng.standard_normal((dd, pp)), rng.standard_normal((nn, pp))
    A = 0.8 * X @ T / math.sqrt(dd) + 0.6 * E
    R = np.linalg.inv(LAM * np.eye(pp) + A.T @ A / nn)
    return float(np.trace(R) / pp), float(np.sum(R * (T.T @ T / dd)) / pp)


@pytest.mark.parametrize("which", ["R", "RW"])
def test_random_features_traces(which: str, rf_draw: tuple[float, float], capsys: pytest.CaptureFixture[str]) -> None:
    A = "(k1*X*Th/sqrt(d) + ks*E)"
    expr = f"inv(lam*I + t{A}*{A}/n)" + (" * Tht*Th/d" if which == "RW" else "")
    got = trace(
        [
            "pencil",
            expr,
            "--shape",
            "X=n,d",
            "--shape",
            "Th=d,p",
            "--shape",
            "E=n,p",
            "--param",
            f"lam={LAM}",
            "--param",
            "k1=0.8",
            "--param",
            "ks=0.6",
            "--param",
            "p=2",
            "--param",
            "d=1",
            "--param",
            f"n={2 / 1.5}",
        ],
        capsys,
    )
    ref = _rf_reference(LAM, 2.0, 1.5, 0.8, 0.6)[0 if which == "R" else 1]
    assert abs(got - ref) <= 1e-10 * ref
    finite = rf_draw[0 if which == "R" else 1]
    assert abs(finite / got - 1) < 1e-2


# ----------------------------------------------------------------------------------- ridge regression
def _kappa(s: np.ndarray) -> float:
    """Effective regularisation: λ = κ(1 − (d/n) E[s/(s + κ)])."""
    return scipy.optimize.brentq(lambda k: k * (1 - PHI * np.mean(s / (s + k))) - LAM, 1e-12, 1e3, xtol=1e-16)


RIDGE = "inv(R*Zt*Z*R/n + lam)"


@pytest.fixture(scope="module")
def ridge_draw(
    columns: tuple[Path, np.ndarray, np.ndarray, np.ndarray], gram: tuple[np.ndarray, np.ndarray]
) -> dict[str, float]:
    _, s, t, _ = columns
    r = np.sqrt(s)
    Shat = r[:, None] * (gram[0] + gram[1]) / (D / PHI) * r[None, :]
    Q = np.linalg.inv(Shat + LAM * np.eye(D))
    QS = Q * s[None, :]  # Q Σ
    return {
        "bias": float(np.sum((Q * t[None, :]) * QS.T) / D),  # tr(Q Θ Q Σ)/d
        "variance": float(np.sum((Q @ Shat) * QS.T) / D),
    }  # tr(Q Σ̂ Q Σ)/d


@pytest.mark.parametrize("part", ["bias", "variance"])
def test_ridge_regression_bias_and_variance(
    part: str,
    columns: tuple[Path, np.ndarray, np.ndarray, np.ndarray],
    ridge_draw: dict[str, float],
    capsys: pytest.CaptureFixture[str],
) -> None:
    path, s, t, _ = columns
    middle = "T" if part == "bias" else "R*Zt*Z*R/n"
    got = trace(
        [
            "pencil",
            f"{RIDGE} * {middle} * {RIDGE} * S",
            "--shape",
            "Z=n,d",
            "--diag",
            f"S,T,S2=d@{path}",
            "--diag",
            "R=d@sqrt(S)",
            "--param",
            f"lam={LAM}",
            "--param",
            "n=1",
            "--param",
            f"d={PHI}",
        ],
        capsys,
    )
    k = _kappa(s)
    df2 = PHI * np.mean(s**2 / (s + k) ** 2)
    if part == "bias":  # λ²θᵀQΣQθ-type deterministic equivalent: (κ/λ)² E[t s/(s+κ)²]/(1 − df₂)
        ref = (k / LAM) ** 2 * np.mean(t * s / (s + k) ** 2) / (1 - df2)
    else:  # E[s²/(s+κ)²]/(1 − df₂)
        ref = np.mean(s**2 / (s + k) ** 2) / (1 - df2)
    assert abs(got - ref) <= 1e-10 * ref
    assert abs(ridge_draw[part] / got - 1) < 1e-2
    # Θ is a data column, not a function of Σ: a bias with t replaced by E[t | s] would differ
    if part == "bias":
        assert abs(np.corrcoef(s, t)[0, 1]) < 0.1
        smooth = (k / LAM) ** 2 * np.mean(np.mean(t) * s / (s + k) ** 2) / (1 - df2)
        assert abs(smooth / got - 1) > 1e-3


# ----------------------------------------------------------------------------------- subordination
def test_subordination(
    columns: tuple[Path, np.ndarray, np.ndarray, np.ndarray],
    gram: tuple[np.ndarray, np.ndarray],
    capsys: pytest.CaptureFixture[str],
) -> None:
    path, s, _, s2 = columns
    got = trace(
        [
            "pencil",
            "inv(I + R1*Z1t*Z1*R1/n1 + R2*Z2t*Z2*R2/n2)",
            "--shape",
            "Z1=n1,d",
            "--shape",
            "Z2=n2,d",
            "--diag",
            f"S1,T,S2=d@{path}",
            "--diag",
            "R1=d@sqrt(S1)",
            "--diag",
            "R2=d@sqrt(S2)",
            "--param",
            "n1=1",
            "--param",
            "n2=1",
            "--param",
            "d=1",
        ],
        capsys,
    )

    # sum of two Wisharts sharing Σ's eigenbasis: Q ≈ (I + Σ₁/(1+δ₁) + Σ₂/(1+δ₂))⁻¹, δ_a = (d/n_a) E[s_a q]
    def residual(delta: np.ndarray) -> np.ndarray:
        q = 1 / (1 + s / (1 + delta[0]) + s2 / (1 + delta[1]))
        return delta - np.array([np.mean(s * q), np.mean(s2 * q)])

    delta = scipy.optimize.root(residual, [0.3, 0.3], method="hybr", tol=1e-15).x
    ref = float(np.mean(1 / (1 + s / (1 + delta[0]) + s2 / (1 + delta[1]))))
    assert abs(got - ref) <= 1e-10 * ref
    n1 = D  # each group of the draw has n_a = d/φ/2 = d rows, as declared (n1 = n2 = d)
    r1, r2 = np.sqrt(s), np.sqrt(s2)
    M = r1[:, None] * gram[0] * r1[None, :] / n1 + r2[:, None] * gram[1] * r2[None, :] / n1
    finite = float(np.mean(1 / (1 + np.linalg.eigvalsh(M))))
    assert abs(finite / got - 1) < 1e-2


# ----------------------------------------------------------------------------------- joint laws
def test_same_matrix_and_functions_of_a_diagonal(capsys: pytest.CaptureFixture[str]) -> None:
    base = ["--diag", "A=d@1,2"]
    assert trace(["pencil", "A*B", *base, "--diag", "B=d@A"], capsys) == pytest.approx(2.5, abs=1e-14)
    assert trace(["pencil", "A*B", *base, "--diag", "B=d@1,2"], capsys) == pytest.approx(2.25, abs=1e-14)
    for law, value in [
        ("A**2", 2.5),
        ("A^2", 2.5),
        ("sqrt(A)", (1 + math.sqrt(2)) / 2),
        ("1/(1+A)", (1 / 2 + 1 / 3) / 2),
        ("exp(-A) + 2*A", (math.exp(-1) + math.exp(-2)) / 2 + 3),
    ]:
        assert trace(["pencil", "B", *base, "--diag", f"B=d@{law}"], capsys) == pytest.approx(value, rel=1e-13), law


def test_a_changed_data_file_is_derived_again(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The stored system of a data law holds its rows: the same command on a rewritten file gives the new
    law's value E[1/(1 + s)] (to 1e-13), not the cached one."""
    path = tmp_path / "law.csv"
    rng = np.random.default_rng(4)
    for low in (0.5, 3.0):
        s = rng.uniform(low, low + 2.0, 30)
        path.write_text("\n".join(repr(v) for v in s.tolist()) + "\n")
        got = trace(["pencil", "inv(I + S)", "--diag", f"S=d@{path}"], capsys)
        assert got == pytest.approx(float(np.mean(1 / (1 + s))), rel=1e-13)


def test_uniform_law(capsys: pytest.CaptureFixture[str]) -> None:
    got = trace(
        [
            "pencil",
            "inv(lam*I + C*Zt*Z*C/n)",
            "--shape",
            "Z=n,d",
            "--diag",
            "Sg=d@uniform(0.5,2)",
            "--diag",
            "C=d@sqrt(Sg)",
            "--param",
            f"lam={LAM}",
            "--param",
            "n=1",
            "--param",
            f"d={PHI}",
        ],
        capsys,
    )

    def silverstein(m: float) -> float:  # m = E_t[1/(t(1 − γ + γλm) + λ)], t ~ U(0.5, 2), integrated exactly
        A = 1 - PHI + PHI * LAM * m
        return m - math.log((2.0 * A + LAM) / (0.5 * A + LAM)) / A / 1.5

    ref = scipy.optimize.brentq(silverstein, 1e-6, 1 / LAM, xtol=1e-15)
    assert abs(got - ref) <= 1e-10 * ref


def test_joint_law_file_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("1,2\n3\n")
    cases = [
        (["--diag", f"S,T=d@{bad}"], "columns"),
        (["--diag", f"S,T=d@{tmp_path / 'missing.csv'}"], "no such file"),
        (["--diag", "S,T=d@1,2"], "data file"),
        (["--diag", "S=d@T", "--diag", "T=d@S"], "cycle"),
        (["--diag", "S=d@sqrt(Q)"], "not a declared diagonal"),
        (["--diag", "S=d@uniform(2,1)"], "a < b"),
        (["--diag", "S=d@import(1)"], "unknown function"),
    ]
    for decl, fragment in cases:
        assert main(["pencil", "S*I", *decl, "--solve"]) == 2
        err = capsys.readouterr().err
        assert fragment in err and err.count("\n") == 1, (decl, err)


# ----------------------------------------------------------------------------------- complex parameters
def test_complex_spectral_parameter(capsys: pytest.CaptureFixture[str]) -> None:
    data = run_json(
        ["pencil", "inv(Ft*F/n - z*I)", "--shape", "F=n,p", "--param", "z=1+0.01j", "--param", "n=1", "--param", "p=2"],
        capsys,
    )
    value = data["solution"]["traces"]["r"]
    assert set(value) == {"re", "im"}
    m = complex(value["re"], value["im"])
    z, g = 1 + 0.01j, 2.0
    closed = (1 - g - z + np.sqrt(z - (1 + math.sqrt(g)) ** 2) * np.sqrt(z - (1 - math.sqrt(g)) ** 2)) / (2 * g * z)
    assert abs(m - closed) <= 1e-12 * abs(closed)
    assert m.imag > 0 and data["solution"]["imaginary_sign_checked"] == {"r": 1}
    # the lower half-plane is the mirror image (Im m < 0), again continued from z → −i∞
    low = run_json(
        ["pencil", "inv(Ft*F/n - z*I)", "--shape", "F=n,p", "--param", "z=1-0.01j", "--param", "n=1", "--param", "p=2"],
        capsys,
    )["solution"]["traces"]["r"]
    assert abs(complex(low["re"], low["im"]) - closed.conjugate()) <= 1e-12 * abs(closed)


@pytest.mark.parametrize(
    "value, fragment",
    [
        ("1+nanj", "number"),
        ("1+infj", "number"),
        ("1e400+1j", "finite"),
        ("1+j+j", "number"),
        ("j2", "number"),
        ("1+0.1i", "number"),
    ],
)
def test_bad_complex_values(value: str, fragment: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        main(
            [
                "pencil",
                "inv(Ft*F/n - z*I)",
                "--shape",
                "F=n,p",
                "--solve",
                f"--param=z={value}",
                "--param",
                "n=1",
                "--param",
                "p=2",
            ]
        )
        == 2
    )
    err = capsys.readouterr().err
    assert fragment in err and err.count("\n") == 1


def test_complex_dimension_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        main(
            [
                "pencil",
                "inv(Ft*F/n - z*I)",
                "--shape",
                "F=n,p",
                "--solve",
                "--param=z=1+1j",
                "--param",
                "n=1+1j",
                "--param",
                "p=2",
            ]
        )
        == 2
    )
    assert "real number" in capsys.readouterr().err
