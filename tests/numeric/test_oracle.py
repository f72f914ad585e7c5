"""The hand-written reference solver (tests/oracle.py): its special functions and structure.

The oracle is an independent implementation of the theory with full (k+1)×(k+1) matrix order
parameters and a general alignment vector; the product solves the derived System through generated
code (tests/codegen/test_codegen.py and tests/derive/test_saddle.py compare the two).
"""

from __future__ import annotations

import mpmath as mp
import numpy as np
import pytest
from scipy import integrate, stats

import oracle
from oracle import gamma_resolvent, solve, zeta_moments
from sobolev_rf.derive.params import ModelParams


@pytest.mark.parametrize("s", [0.5, 1.0, 1.5, 2.0, 2.5])
@pytest.mark.parametrize("y", [1e-3, 0.3, 2.0, 29.0, 31.0, 400.0])
def test_gamma_resolvent_matches_mpmath(s: float, y: float) -> None:
    mp.mp.dps = 30
    exact = mp.quad(lambda t: t ** (s - 1) * mp.exp(-t) / (t + y), [0, 1, mp.inf]) / mp.gamma(s)
    assert gamma_resolvent(s, y) == pytest.approx(float(exact), rel=1e-10)


@pytest.mark.parametrize("k", [1, 2, 3])
def test_zeta_moments_match_radial_quadrature(k: int) -> None:
    a0, a1 = 0.37, 0.81
    m2, m4 = zeta_moments(k, a0, a1)
    chi = stats.chi2(k)

    def e(f):
        return integrate.quad(lambda r: f(r) * chi.pdf(r), 0, np.inf, limit=400, epsabs=1e-13)[0]

    assert m2[0, 0] == pytest.approx(e(lambda r: 1 / (a0 + a1 * r)), rel=1e-9)
    assert m2[1, 1] == pytest.approx(e(lambda r: r / (a0 + a1 * r)) / k, rel=1e-9)
    assert m4[1, 1, 1, 1] == pytest.approx(e(lambda r: r * r / (a0 + a1 * r) ** 2) * 3 / (k * (k + 2)), rel=1e-9)
    assert m4[0, 0, 1, 1] == pytest.approx(e(lambda r: r / (a0 + a1 * r) ** 2) / k, rel=1e-9)
    assert m4[0, 0, 0, 1] == 0.0


@pytest.mark.parametrize("k", [1, 2, 3])
def test_first_order_traces_agree_with_the_pencil_route(k: int) -> None:
    """Two independent derivations of the same traces: leave-one-out (this module) and the pencil +
    operator-valued fixed point of sobolev_rf.derive.ovfp."""
    from oracle import resolvent_traces
    from sobolev_rf.numeric.theory.ovfp import sobolev_traces

    psi, a, b, c, e = 1.7, 0.3, 1.0, 0.7, 0.2
    E = np.diag([a] + [e] * k)
    C = np.diag([b] + [c] * k)
    TE, TC = resolvent_traces(k, psi, E, C)
    pencil = sobolev_traces(k, psi, a, b, c, e)
    assert TE[0, 0] == pytest.approx(pencil["trQ"], rel=1e-10)
    assert TC[0, 0] == pytest.approx(pencil["trQW"], rel=1e-10)
    assert TC[1, 1] == pytest.approx(pencil["trQD1WD1"], rel=1e-10)
    assert TE[1, 1] == pytest.approx(pencil["trQD1sq"], rel=1e-10)


def test_residual_correlations_do_not_change_the_errors() -> None:
    """c_σ = E[σσ′] − κ₀κ₀′ − κ₁κ₁′ (and c_φ) only enter the off-diagonal training-residual covariance S_0l,
    which by the ζ → −ζ parity never feeds back into the reported errors."""
    act = "x + x**2/2 + x**3/6"
    params = ModelParams(
        activation=act,
        teacher=act,
        k=2,
        tau=1,
        p_over_d=1.3,
        n_over_d=0.8,
        lam=0.05,
        noise_f=0.2,
        alignment=(0.5, -1.0),
    )
    with_c = solve(params).to_dict()
    coeffs = oracle.coefficients(act)
    assert abs(coeffs[6]) > 0.1
    original = oracle.coefficients
    try:
        oracle.coefficients = lambda text: coeffs[:6] + (0.0,)  # type: ignore[assignment]
        without_c = solve(params).to_dict()
    finally:
        oracle.coefficients = original  # type: ignore[assignment]
    for key in ("eps_L2", "eps_H1", "eps_grad", "train_loss", "train_error_L2"):
        assert with_c[key] == pytest.approx(without_c[key], rel=1e-12)
    assert with_c["order_parameters"]["S"][0][1] != pytest.approx(without_c["order_parameters"]["S"][0][1])


def test_errors_depend_on_the_alignment_only_through_its_norm() -> None:
    """V's law is rotation invariant in ℝ^k, so the errors are functions of ‖ϖ‖ alone; the derived System
    builds this in (it takes ‖ϖ‖²/k), the oracle, with general matrices, must find it."""
    base = dict(activation="relu", teacher="x + x**2/2", k=2, tau=1, p_over_d=1.7, n_over_d=0.9, lam=0.02, noise_g=0.1)
    a = solve(ModelParams(alignment=(1.0, 0.0), **base)).to_dict()
    b = solve(ModelParams(alignment=(0.6, -0.8), **base)).to_dict()
    for key in ("eps_L2", "eps_H1", "eps_grad", "train_loss", "train_error_L2"):
        assert a[key] == pytest.approx(b[key], rel=1e-10)
