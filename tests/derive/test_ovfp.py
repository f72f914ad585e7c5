"""Operator-valued fixed points derived from pencils, against closed forms, known systems and finite matrices."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import mpmath
import numpy as np
import pytest
import scipy.integrate
import scipy.optimize
import scipy.special
import sympy as sp
from sympy import Identity, Inverse, MatrixSymbol

from sobolev_rf.derive.errors import UserError
from sobolev_rf.derive.expectations import GaussExpectation, normal_expectation
from sobolev_rf.derive.laws import DiagonalLaw, GaussianMatrix
from sobolev_rf.derive.ovfp import derive_system, sobolev_system
from sobolev_rf.derive.pencil import linearize
from sobolev_rf.numeric.theory.ovfp import sobolev_traces, solve_system

n, p, d = sp.symbols("n p d", positive=True, integer=True)
lam, z, k1, ks = sp.symbols("lam z kappa1 kappastar", positive=True)


def _solve_scalar(f, x0: float) -> float:
    """Fixed point x = f(x) by damped iteration to machine precision."""
    x = x0
    for _ in range(100000):
        x_new = 0.5 * x + 0.5 * f(x)
        if abs(x_new - x) < 1e-16 * max(1.0, abs(x)):
            return x_new
        x = x_new
    raise AssertionError("no convergence")


# ----------------------------------------------------------------------------------- Marchenko–Pastur
def test_marchenko_pastur_matches_closed_form_and_finite_matrices() -> None:
    F = MatrixSymbol("F", n, p)
    system = derive_system(linearize(Inverse(lam * Identity(p) + F.T * F / n)), [GaussianMatrix("F")])
    assert len(system.unknowns) == 2
    gamma, lv = 2.0, 0.5
    got = solve_system(system, {"lam": lv, "p": gamma, "n": 1.0}).outputs["r"]
    # m(−λ) of FᵀF/n (p×p, γ = p/n): γλm² + (λ + 1 − γ)m − 1 = 0, positive root
    A, B, C = gamma * lv, lv + 1 - gamma, -1.0
    closed = (-B + math.sqrt(B * B - 4 * A * C)) / (2 * A)
    assert abs(got - closed) < 1e-13
    rng = np.random.default_rng(0)
    nn, pp = 1000, 2000
    Fm = rng.standard_normal((nn, pp))
    ev = np.linalg.eigvalsh(Fm.T @ Fm / nn)
    assert abs(np.mean(1 / (lv + ev)) / got - 1) < 0.01


def test_anisotropic_marchenko_pastur_two_atoms() -> None:
    X = MatrixSymbol("X", n, d)
    C = MatrixSymbol("C", d, d)  # C = Σ^{1/2}, atoms 1 and √3 with weights 0.3, 0.7
    expr = Inverse(lam * Identity(d) + C * X.T * X * C / n)
    law = DiagonalLaw(("C",), "discrete", atoms=((1.0,), (math.sqrt(3.0),)), weights=(0.3, 0.7))
    system = derive_system(linearize(expr), [GaussianMatrix("X")], [law])
    gamma, lv = 0.5, 0.2  # γ = d/n
    got = solve_system(system, {"lam": lv, "d": gamma, "n": 1.0}).outputs["r"]
    # Silverstein: m = Σ_a w_a / (t_a (1 − γ + γλm) + λ)
    ref = _solve_scalar(
        lambda m: 0.3 / (1 * (1 - gamma + gamma * lv * m) + lv) + 0.7 / (3 * (1 - gamma + gamma * lv * m) + lv), 1.0
    )
    assert abs(got - ref) < 1e-12
    rng = np.random.default_rng(1)
    dd, nn = 1000, 2000
    c = np.where(rng.random(dd) < 0.3, 1.0, math.sqrt(3.0))
    Xm = rng.standard_normal((nn, dd)) * c
    ev = np.linalg.eigvalsh(Xm.T @ Xm / nn)
    assert abs(np.mean(1 / (lv + ev)) / got - 1) < 0.01


# ----------------------------------------------------------------------------------- random features
def _rf_tau_system(lv: float, p_over_d: float, p_over_n: float, kap1: float, kaps: float) -> tuple[float, float]:
    """τ₁ = (1/p) tr R, τ₂ = (1/p) tr(R W) for R = (λ + AᵀA/n)⁻¹, A = κ₁XΘ/√d + κ_*E, W = ΘᵀΘ/d.

    Two coupled equations (the τ₁/τ₂ form of Adlam & Pennington's random-feature system), derived here
    independently: rows of A given Θ are N(0, Σ), Σ = κ₁²W + κ_*²I, so R ≈ (λ + Σ/(1 + δ))⁻¹ with
    δ = (p/n)(κ_*²τ₁ + κ₁²τ₂) (Silverstein), and with α = λ + κ_*²/(1+δ), β = κ₁²/(1+δ) the MP law of W gives
    τ₁ = 1/(α + β/(1 + β(p/d)τ₁)) and τ₂ = (1 − ατ₁)/β.
    """
    t = np.array([1.0 / lv, 0.0])
    for _ in range(100000):
        delta = p_over_n * (kaps**2 * t[0] + kap1**2 * t[1])
        alpha, beta = lv + kaps**2 / (1 + delta), kap1**2 / (1 + delta)
        t1 = 1 / (alpha + beta / (1 + beta * p_over_d * t[0]))
        new = np.array([t1, (1 - alpha * t1) / beta])
        if np.max(np.abs(new - t)) < 1e-16:
            break
        t = 0.5 * t + 0.5 * new
    return float(t[0]), float(t[1])


def test_random_features_resolvent_equals_tau_system_and_finite_matrices() -> None:
    X = MatrixSymbol("X", n, d)
    Th = MatrixSymbol("Theta", d, p)
    E = MatrixSymbol("E", n, p)
    A = k1 * X * Th / sp.sqrt(d) + ks * E
    R = Inverse(lam * Identity(p) + A.T * A / n)
    exprs = {"R": R, "RW": R * Th.T * Th / d}
    system = derive_system(linearize(exprs), [GaussianMatrix(s) for s in ("X", "Theta", "E")])
    lv, pd_, pn, kap1, kaps = 0.1, 2.0, 1.5, 0.8, 0.6
    sol = solve_system(system, {"lam": lv, "p": pd_, "d": 1.0, "n": pd_ / pn, "kappa1": kap1, "kappastar": kaps})
    tau1, tau2 = _rf_tau_system(lv, pd_, pn, kap1, kaps)
    assert abs(sol.outputs["R"] - tau1) < 1e-11
    assert abs(sol.outputs["RW"] - tau2) < 1e-11
    rng = np.random.default_rng(2)
    dd = 1000
    pp, nn = int(pd_ * dd), int(pd_ * dd / pn)
    Xm, Tm, Em = rng.standard_normal((nn, dd)), rng.standard_normal((dd, pp)), rng.standard_normal((nn, pp))
    Am = kap1 * Xm @ Tm / math.sqrt(dd) + kaps * Em
    Rm = np.linalg.inv(lv * np.eye(pp) + Am.T @ Am / nn)
    assert abs(np.trace(Rm) / pp / tau1 - 1) < 0.01
    assert abs(np.trace(Rm @ Tm.T @ Tm / dd) / pp / tau2 - 1) < 0.01


# ----------------------------------------------------------------------------------- Sobolev
def _sobolev_reference(k: int, pd_: float, a: float, b: float, c: float, e: float) -> dict[str, float]:
    """THEORY.md §3 (independent of the pencil route): q(ζ) = 1/(a + M₀ + (M₁ + e)‖ζ‖²), equal M_l,
    M₀ = 1/(1/b + T₀), M₁ = 1/(1/c + T₁), T₀ = (p/d)E q, T₁ = (p/d)E[q ζ₁²]; E over χ²_k by quadrature.
    Traces: (1/p)tr Q = E q, (1/p)tr(QD₁²) = E[qζ₁²], (1/p)tr(QW) = M₀ E q / b, (1/p)tr(QD₁WD₁) = M₁ E[qζ₁²]/c.
    """

    def moments(M0: float, M1: float) -> tuple[float, float]:
        # Laplace representation E[1/(A + Bχ²_k)] = ∫₀^∞ e^{−tA} (1 + 2tB)^{−k/2} dt (smooth integrand)
        A, B = a + M0, M1 + e
        with mpmath.workdps(25):
            Eq = float(
                mpmath.quad(
                    lambda t: mpmath.exp(-t * A) * (1 + 2 * t * B) ** (-mpmath.mpf(k) / 2), [0, 1, 10, mpmath.inf]
                )
            )
        return Eq, (1 - A * Eq) / B / k  # E[qζ₁²] = E[q‖ζ‖²]/k and q(A + B‖ζ‖²) = 1

    def residual(v: np.ndarray) -> np.ndarray:
        M0, M1 = v
        Eq, Eqz = moments(M0, M1)
        return np.array([M0 - 1 / (1 / b + pd_ * Eq), M1 - 1 / (1 / c + pd_ * Eqz)])

    M0, M1 = scipy.optimize.root(residual, [b / 2, c / 2], method="hybr", tol=1e-15).x
    Eq, Eqz = moments(M0, M1)
    return {"trQ": Eq, "trQW": M0 * Eq / b, "trQD1WD1": M1 * Eqz / c, "trQD1sq": Eqz}


@pytest.mark.parametrize(
    "k, point",
    [
        (1, (2.0, 0.3, 1.0, 0.7, 0.0)),
        (1, (0.5, 1.2, 0.4, 1.5, 0.3)),
        (2, (2.0, 0.3, 1.0, 0.7, 0.0)),
        (2, (1.0, 0.5, 0.8, 0.6, 0.2)),
    ],
)
def test_sobolev_traces_match_independent_derivation(k: int, point: tuple[float, ...]) -> None:
    got = sobolev_traces(k, *point)
    ref = _sobolev_reference(k, *point)
    for key in ref:
        assert abs(got[key] - ref[key]) <= 1e-11 * abs(ref[key]), key
    pd_, a, b, c, e = point
    # exact sum rule from Q Q⁻¹ = I and the symmetry in l
    total = a * got["trQ"] + b * got["trQW"] + k * (c * got["trQD1WD1"] + e * got["trQD1sq"])
    assert abs(total - 1) < 1e-12


def test_sobolev_system_is_reduced_to_closed_forms() -> None:
    system = sobolev_system(2)
    text = system.to_text()
    assert "ScaledExpint(1," in text  # ‖ζ‖² ~ χ²₂: e^x E₁(x), the two directions were merged
    assert not any(eq.has(GaussExpectation) for eq in system.equations.values())
    assert len(system.zeros) > 0


@pytest.mark.parametrize("k", [1, 2])
def test_sobolev_traces_against_finite_matrices(k: int) -> None:
    pd_, a, b, c, e = 2.0, 0.3, 1.0, 0.7, 0.1
    rng = np.random.default_rng(10 + k)
    pp = 2000
    dd = int(pp / pd_)
    Th = rng.standard_normal((dd, pp))
    # ζ_{jl} on a randomly permuted normal quantile grid: the empirical law of ζ is N(0, 1) up to O(1/p),
    # which removes the O(1/√p) sampling effect of THEORY.md §4 (about 1 % on E[qζ²] at p = 2000)
    grid = scipy.special.ndtri((np.arange(pp) + 0.5) / pp)
    zeta = np.stack([rng.permutation(grid) for _ in range(k)], axis=1)
    W = Th.T @ Th / dd
    inner = a * np.eye(pp) + b * W
    for l in range(k):
        inner += c * zeta[:, l, None] * W * zeta[None, :, l] + e * np.diag(zeta[:, l] ** 2)
    Q = np.linalg.inv(inner)
    z1 = zeta[:, 0]
    finite = {
        "trQ": np.trace(Q) / pp,
        "trQW": np.sum(Q * W.T) / pp,
        "trQD1WD1": np.sum((Q * z1[None, :]) * (W * z1[None, :]).T) / pp,
        "trQD1sq": np.sum(np.diag(Q) * z1**2) / pp,
    }
    got = sobolev_traces(k, pd_, a, b, c, e)
    for key, val in finite.items():
        assert abs(val / got[key] - 1) < 0.01, key


# ----------------------------------------------------------------------------------- pieces
def test_normal_expectation_closed_forms() -> None:
    zeta = sp.symbols("z1:4", real=True)
    A, B = sp.Rational(3, 2), sp.Rational(1, 2)
    for m in (1, 2, 3):
        h = zeta[0] ** 2 / (A + B * sum(zj**2 for zj in zeta[:m]))
        closed = normal_expectation(h, zeta[:m]).rewrite(sp.erfc).rewrite(sp.expint).evalf(30)
        with mpmath.workdps(30):
            half = mpmath.mpf(m) / 2
            dens = lambda x: x ** (half - 1) * mpmath.exp(-x / 2) / (2**half * mpmath.gamma(half))  # noqa: E731
            ref = mpmath.quad(lambda x: x / m / (mpmath.mpf(3) / 2 + x / 2) * dens(x), [0, 1, 10, mpmath.inf])
            assert abs(mpmath.mpf(str(closed)) - ref) < 1e-25
    assert normal_expectation(zeta[0] ** 3 + zeta[1] ** 2, zeta) == 1
    assert normal_expectation(1 / (1 + zeta[0] + zeta[0] ** 2), zeta) is None


def test_gauss_hermite_fallback_for_cross_terms() -> None:
    Th = MatrixSymbol("Theta", d, p)
    D1, D2 = MatrixSymbol("D1", p, p), MatrixSymbol("D2", p, p)
    # a discrete law is always summed exactly
    law = DiagonalLaw(("D1",), "discrete", atoms=((-0.5,), (0.5,)), weights=(0.5, 0.5))
    exact = derive_system(linearize(Inverse(2 * Identity(p) + D1 + Th.T * Th / d)), [GaussianMatrix("Theta")], [law])
    assert not any(eq.has(GaussExpectation) for eq in exact.equations.values())
    # ζ₁² + ζ₁ζ₂ + ζ₂² (positive definite, with a cross term) has no closed form here: Gauss–Hermite
    expr = Inverse(Identity(p) + D1 * D1 + D1 * D2 + D2 * D2 + Th.T * Th / d)
    system = derive_system(linearize(expr), [GaussianMatrix("Theta")], [DiagonalLaw(("D1", "D2"))])
    assert any(eq.has(GaussExpectation) for eq in system.equations.values())
    sol = solve_system(system, {"p": 1.0, "d": 1.0})
    assert sol.quadrature_error < 1e-6  # |Q_60 − Q_30|: a conservative estimate for Q_60
    rng = np.random.default_rng(5)
    pp = 2000
    grid = scipy.special.ndtri((np.arange(pp) + 0.5) / pp)
    z1, z2 = rng.permutation(grid), rng.permutation(grid)
    Tm = rng.standard_normal((pp, pp))
    Qm = np.linalg.inv(np.diag(1 + z1**2 + z1 * z2 + z2**2) + Tm.T @ Tm / pp)
    assert abs(np.trace(Qm) / pp / sol.outputs["r"] - 1) < 0.01


def test_unnormalised_expression_is_rejected() -> None:
    F = MatrixSymbol("F", n, p)
    with pytest.raises(UserError, match="proportional regime"):
        derive_system(linearize(Inverse(lam * Identity(p) + F.T * F)), [GaussianMatrix("F")])


def test_undeclared_matrix_is_rejected() -> None:
    F = MatrixSymbol("F", n, p)
    with pytest.raises(UserError, match="neither declared"):
        derive_system(linearize(Inverse(lam * Identity(p) + F.T * F / n)), [])


# ----------------------------------------------------------------------------------- laws, complex arguments
def test_scaled_expint_vectorised_against_mpmath() -> None:
    from sobolev_rf.numeric.theory.ovfp import scaled_expint

    xs = np.array([0.05, 1.0, 7.5, 59.0, 61.0, 300.0, 2 + 1j, -3 + 0.5j, 0.01 - 2j, 70 - 5j, -1e-3 + 1e-6j])
    for nu in (0.5, 1.0, 1.5, 2.0, 2.5):
        got = scaled_expint(nu, xs)
        ref = np.array([complex(mpmath.expint(nu, complex(x)) * mpmath.exp(complex(x))) for x in xs])
        assert np.max(np.abs(got / ref - 1)) < 1e-11, nu
    assert np.isnan(scaled_expint(1.0, np.array([-1.0, 0.0]))).all()  # real x ≤ 0: outside the solver's domain


def test_mixed_normal_and_empirical_law_in_one_class() -> None:
    """Q = (1 + S + D² + ΘᵀΘ/d)⁻¹ with S from 40 data values and D normal: one numerical expectation over
    atoms × Gauss–Hermite nodes; against q = 1/(1 + s + ζ² + M₀), M₀ = 1/(1 + (p/d) E q) (THEORY.md §3
    with b = 1), E over the atoms and ζ by adaptive quadrature."""
    from sobolev_rf.derive.expectations import LawExpectation
    from sobolev_rf.derive.laws import DiagonalFunction

    rng = np.random.default_rng(3)
    svals = rng.uniform(0.0, 2.0, 40)
    Th = MatrixSymbol("Theta", d, p)
    S, D = MatrixSymbol("S", p, p), MatrixSymbol("D", p, p)
    law = DiagonalLaw(("S",), "discrete", tuple((float(v),) for v in svals), tuple([1 / 40] * 40))
    system = derive_system(
        linearize(Inverse(Identity(p) + S + D * D + Th.T * Th / d)),
        [GaussianMatrix("Theta")],
        [law, DiagonalLaw(("D",))],
    )
    assert any(eq.has(LawExpectation) for eq in system.equations.values())
    got = solve_system(system, {"p": 2.0, "d": 1.0}).outputs["r"]

    def Eq(M0: float) -> float:
        return float(
            np.mean(
                [
                    scipy.integrate.quad(
                        lambda z: math.exp(-z * z / 2) / math.sqrt(2 * math.pi) / (1 + s + z * z + M0),
                        -np.inf,
                        np.inf,
                        epsabs=1e-14,
                        epsrel=1e-12,
                    )[0]
                    for s in svals
                ]
            )
        )

    M0 = scipy.optimize.brentq(lambda M: M - 1 / (1 + 2.0 * Eq(M)), 1e-6, 1.0, xtol=1e-15)
    assert abs(got - Eq(M0)) < 1e-10
    # a diagonal that is a function of S enters through the same atoms: S² written as B = S^2
    sq = derive_system(
        linearize(MatrixSymbol("B", p, p) * Identity(p)),
        [],
        [law, DiagonalFunction("B", sp.Symbol("zeta_S", real=True) ** 2)],
    )
    assert abs(solve_system(sq, {}).outputs["r"] - float(np.mean(svals**2))) < 1e-12


def test_law_declarations_are_validated() -> None:
    from sobolev_rf.derive.laws import DiagonalFunction, zeta_symbol

    with pytest.raises(UserError, match="a < b"):
        DiagonalLaw(("S",), "uniform", low=2.0, high=1.0)
    with pytest.raises(UserError, match="one diagonal"):
        DiagonalLaw(("S", "T"), "uniform")
    with pytest.raises(UserError, match="finite"):
        DiagonalLaw(("S",), "discrete", ((math.nan,),), (1.0,))
    A, B = MatrixSymbol("A", p, p), MatrixSymbol("B", p, p)
    with pytest.raises(UserError, match="cycle"):
        derive_system(
            linearize(A * B), [], [DiagonalFunction("A", zeta_symbol("B")), DiagonalFunction("B", zeta_symbol("A"))]
        )
    with pytest.raises(UserError, match="both Gaussian and diagonal"):
        derive_system(linearize(A * B), [GaussianMatrix("A")], [DiagonalLaw(("A", "B"))])


def test_complex_parameter_follows_the_branch_from_infinity() -> None:
    """Sobolev resolvent at a = −z: the traces are Herglotz in z (Im tr Q > 0 for Im z > 0) and agree with one
    finite draw (p = 2000, ζ on a permuted normal quantile grid)."""
    system = sobolev_system(1)
    zv = 0.8 + 0.05j
    sol = solve_system(system, {"a": -zv, "b": 1.0, "c": 0.7, "e": 0.1, "p": 2.0, "d": 1.0})
    m = sol.outputs["Q"]
    assert isinstance(m, complex) and m.imag > 0 and sol.residual < 1e-20
    rng = np.random.default_rng(9)
    pp, dd = 2000, 1000
    Th = rng.standard_normal((dd, pp))
    W = Th.T @ Th / dd
    zeta = rng.permutation(scipy.special.ndtri((np.arange(pp) + 0.5) / pp))
    M = W + 0.7 * zeta[:, None] * W * zeta[None, :] + 0.1 * np.diag(zeta**2)
    finite = np.mean(1 / (np.linalg.eigvalsh(M) - zv))
    assert abs(finite / m - 1) < 1e-2


# ----------------------------------------------------------------------------------- stored expectations
def test_numerical_expectations_are_stored_and_solved_on_the_kernel(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A system with numerical expectations (a law of 40 atoms, a uniform law, normal coordinates with a cross
    term) is stored as a System whose expectations are sums over stored rules: it survives the JSON round trip,
    its fingerprint follows the rule's nodes, and its generated kernels (NumPy; complex C with its real twin)
    give the lambdify solution (real and complex parameters) with the same quadrature-error estimate."""
    from sobolev_rf.codegen import jit
    from sobolev_rf.derive.system import System
    from sobolev_rf.numeric.theory.ovfp import FixedPoint, cached_fixed_point

    monkeypatch.setenv("SOBOLEV_RF_CACHE", str(tmp_path / "cache"))
    rng = np.random.default_rng(2)
    rows = tuple((float(v),) for v in rng.uniform(0.5, 2.5, 40))
    Th, C = MatrixSymbol("Theta", d, p), MatrixSymbol("C", p, p)
    D1, D2 = MatrixSymbol("D1", p, p), MatrixSymbol("D2", p, p)
    cases = [
        (Inverse(lam * Identity(p) + C * Th.T * Th * C / d), DiagonalLaw(("C",), "discrete", rows, (1 / 40,) * 40)),
        (Inverse(lam * Identity(p) + C * Th.T * Th * C / d), DiagonalLaw(("C",), "uniform", low=0.5, high=2.0)),
        (Inverse(lam * Identity(p) + D1 * D1 + D1 * D2 + D2 * D2 + Th.T * Th / d), DiagonalLaw(("D1", "D2"))),
    ]
    for i, (expr, law) in enumerate(cases):
        system = derive_system(linearize(expr), [GaussianMatrix("Theta")], [law])
        stored = system.to_system(meta={"jacobian": "differences"})
        assert System.from_dict(stored.to_dict()).fingerprint() == stored.fingerprint()
        assert bool(stored.meta["quadrature_checks"]) == (law.kind != "discrete")
        kernels = [
            cached_fixed_point("test-stored-expectations", {"case": i}, lambda: (system, {}), backend)[0]
            for backend in ("numpy", "auto")  # the NumPy kernel, and the complex C kernel where a compiler works
        ]
        evaluator: Any = kernels[1].evaluator
        assert (evaluator.complex_kernel is None) == (jit.compiler_problem() is not None)
        for lv in (0.3, 0.3 + 0.2j):
            values = {"lam": lv, "p": 1.0, "d": 2.0}
            want = FixedPoint.of(system).solve(values)
            for kernel in kernels:
                got = kernel.solve(values)
                assert abs(got.outputs["r"] - want.outputs["r"]) <= 1e-12 * abs(want.outputs["r"])
                assert got.quadrature_error == pytest.approx(want.quadrature_error, rel=1e-6, abs=1e-14)
    # other atoms: another rule, so another fingerprint (and another cached kernel)
    moved = DiagonalLaw(("C",), "discrete", tuple((v[0] + 1e-9,) for v in rows), (1 / 40,) * 40)
    other = derive_system(linearize(cases[0][0]), [GaussianMatrix("Theta")], [moved]).to_system()
    first = derive_system(linearize(cases[0][0]), [GaussianMatrix("Theta")], [cases[0][1]]).to_system()
    assert other.meta["rules"] != first.meta["rules"] and other.fingerprint() != first.fingerprint()
    # a record's rule data never become code: an axis that is not an integer is refused
    from dataclasses import replace

    from sobolev_rf.codegen.numpy.printer import generate_numpy_source

    rules = [[{**f, "axes": ["0), print('x'), (0"]} for f in first.meta["rules"][0]]]
    with pytest.raises(ValueError):
        generate_numpy_source(replace(first, meta={**first.meta, "rules": rules}))
