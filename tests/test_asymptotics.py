"""The asymptotic theory: exact special functions, structure, and agreement with the exact simulator."""
from __future__ import annotations

import math

import mpmath as mp
import numpy as np
import pytest
from scipy import integrate, stats

from sobolev_rf.derive.errors import UserError
from sobolev_rf.derive.params import ModelParams
from sobolev_rf.numeric.asymptotics import gamma_resolvent, solve, zeta_moments
from sobolev_rf.numeric.simulate import simulate


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


def test_errors_are_quadratic_in_the_alignment() -> None:
    vals = [solve(ModelParams(k=1, alignment=(a,), lam=1e-2)).eps_H1 for a in (0.0, 1.0, 2.0, 3.0)]
    third = vals[3] - 3 * vals[2] + 3 * vals[1] - vals[0]
    assert abs(third) < 1e-9 * max(vals)
    assert vals[2] - 2 * vals[1] + vals[0] > 0


@pytest.mark.parametrize("tau,k,ratio", [(0, 1, 1.0), (1, 1, 2.0), (1, 2, 3.0)])
def test_interpolation_peak(tau: int, k: int, ratio: float) -> None:
    ps = np.linspace(0.3, 4.0, 38)
    errs = [solve(ModelParams(activation="tanh", teacher="tanh", k=k, tau=tau, p_over_d=p, n_over_d=1.0,
                              lam=1e-5)).eps_L2 for p in ps]
    assert ps[int(np.argmax(errs))] == pytest.approx(ratio, abs=0.1)


def test_sobolev_helps_underparameterised_and_hurts_overparameterised() -> None:
    base = dict(activation="tanh", teacher="tanh", k=1, lam=1e-5)
    under = [solve(ModelParams(tau=t, p_over_d=0.5, n_over_d=2.0, **base)).eps_L2 for t in (0, 1)]
    over = [solve(ModelParams(tau=t, p_over_d=8.0, n_over_d=1.0, **base)).eps_L2 for t in (0, 1)]
    assert under[1] < under[0]
    assert over[1] > over[0]


@pytest.mark.parametrize("cfg", [dict(tau=0, p_over_d=0.5), dict(tau=0, p_over_d=3.0), dict(tau=1, k=1, p_over_d=1.0),
                                 dict(tau=1, k=2, p_over_d=5.0, alignment=(0.5, -1.0), noise_g=0.2)])
def test_ridgeless_limit_is_the_limit_of_small_ridge(cfg: dict) -> None:
    params = ModelParams(**{"n_over_d": 1.0, **cfg, "lam": 0.0})
    exact = solve(params).to_dict()
    for key in ("eps_L2", "eps_grad", "train_loss"):
        small = [solve(params.with_(lam=lam)).to_dict()[key] for lam in (1e-5, 1e-6)]
        # the approach is linear in λ: the error of λ = 1e-6 is a tenth of that of λ = 1e-5
        assert abs(small[1] - exact[key]) <= 0.2 * abs(small[0] - exact[key]) + 1e-12


def test_ridgeless_at_the_interpolation_threshold_is_a_clear_error() -> None:
    with pytest.raises(UserError, match="infinite"):
        solve(ModelParams(tau=1, k=1, p_over_d=2.0, n_over_d=1.0, lam=0.0))


# Theory vs the exact simulator (real activation, real gradients): the simulation's standard error
# over seeds plus a finite-size allowance of 6 % (O(1/√d) effects at d = 300).
CASES = [
    dict(activation="relu", teacher="tanh", k=1, tau=1, p_over_d=2.0, n_over_d=1.0, lam=1e-2),
    dict(activation="relu", teacher="tanh", k=1, tau=0, p_over_d=2.0, n_over_d=1.0, lam=1e-2),
    dict(activation="tanh", teacher="tanh", k=2, tau=1, p_over_d=1.0, n_over_d=1.0, lam=1e-1,
         noise_f=0.1, noise_g=0.1, alignment=(0.5, -1.5)),
    dict(activation="erf", teacher="x + x**2/2", k=1, tau=1, p_over_d=0.6, n_over_d=1.2, lam=1e-3,
         alignment=(1.3,)),
    dict(activation="relu", teacher="tanh", k=1, tau=1, p_over_d=4.0, n_over_d=1.0, lam=0.0),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c['activation']}-k{c['k']}-tau{c['tau']}")
def test_theory_matches_simulation(case: dict) -> None:
    params = ModelParams(**case)
    theory = solve(params).to_dict()
    sim = simulate(params, d=300, seeds=4, progress=False)
    keys = ["eps_L2", "eps_grad", "train_loss", "train_error_L2"] + (["eps_H1"] if params.tau == 1 else [])
    for key in keys:
        th, mean, se = theory[key], sim.mean[key], sim.se[key]
        assert math.isfinite(th)
        assert abs(th - mean) <= 3 * se + 0.06 * abs(th), (key, th, mean, se)


@pytest.mark.parametrize("k", [1, 2, 3])
def test_first_order_traces_agree_with_the_pencil_route(k: int) -> None:
    """Two independent derivations of the same traces: leave-one-out (this module) and the pencil +
    operator-valued fixed point of sobolev_rf.derive.ovfp."""
    from sobolev_rf.derive.ovfp import sobolev_traces
    from sobolev_rf.numeric.asymptotics import resolvent_traces

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
    from sobolev_rf.numeric import asymptotics

    act = "x + x**2/2 + x**3/6"
    params = ModelParams(activation=act, teacher=act, k=2, tau=1, p_over_d=1.3, n_over_d=0.8, lam=0.05,
                         noise_f=0.2, alignment=(0.5, -1.0))
    with_c = solve(params).to_dict()
    coeffs = asymptotics.coefficients(act)
    assert abs(coeffs[6]) > 0.1
    original = asymptotics.coefficients
    try:
        asymptotics.coefficients = lambda text: coeffs[:6] + (0.0,)  # type: ignore[assignment]
        without_c = solve(params).to_dict()
    finally:
        asymptotics.coefficients = original  # type: ignore[assignment]
    for key in ("eps_L2", "eps_H1", "eps_grad", "train_loss", "train_error_L2"):
        assert with_c[key] == pytest.approx(without_c[key], rel=1e-12)
    assert with_c["order_parameters"]["S"][0][1] != pytest.approx(without_c["order_parameters"]["S"][0][1])


def test_degenerate_activations_are_explained() -> None:
    odd = solve(ModelParams(activation="tanh", k=1, tau=1, lam=1e-2)).notes
    assert any("κ₁′ = 0" in n for n in odd)
    linear = solve(ModelParams(activation="linear", k=1, tau=0, lam=1e-2)).notes
    assert any("κ_* = 0" in n for n in linear)
    assert solve(ModelParams(activation="relu", k=1, tau=1, lam=1e-2)).notes == ()


def test_continuation_gives_the_same_numbers_with_fewer_evaluations() -> None:
    from sobolev_rf.numeric.asymptotics import solve_path

    points = [ModelParams(k=1, tau=1, p_over_d=p, n_over_d=1.0, lam=1e-3) for p in np.linspace(0.3, 5.0, 16)]
    cold = [solve(p) for p in points]
    warm = solve_path(points)
    for a, b in zip(cold, warm):
        assert b.eps_L2 == pytest.approx(a.eps_L2, rel=1e-10)
    assert sum(b.iterations for b in warm) < sum(a.iterations for a in cold)
