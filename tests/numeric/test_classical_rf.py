"""Independent check of plain L2 training (τ = 0) against the classical random-features ridge formula.

Reference: S. Mei and A. Montanari, "The generalization error of random features regression: precise
asymptotics and double descent curve", Comm. Pure Appl. Math. 75 (2022), arXiv:1908.05355,
Definition 1 (ν₁, ν₂, χ and the polynomials E₀, E₁, E₂; ℬ = E₁/E₀, 𝒱 = E₂/E₀) and Theorem 2
(R = F₁² ℬ + (τ² + F_*²) 𝒱 + F_*²).

Scaling map from their model to MODEL.md:
- ψ₁ = N/d = p_over_d, ψ₂ = n/d = n_over_d; x, θ uniform on spheres of radius √d ↔ Gaussian here
  (same proportional limit); features σ(⟨θ_j, x⟩/√d) and f = Σ_j a_j σ(·) are identical.
- Their ridge penalty is (N λ_MM / d) ‖a‖², ours λ ‖w‖², so λ_MM = λ / ψ₁ and λ̄ = λ_MM / μ_*².
- Activation: their (μ₀, μ₁, μ_*) are our (κ₀, κ₁, κ_*); ζ = κ₁ / κ_*. μ₀ does not enter (our κ₀ spike).
- Teacher y = φ(⟨θ₀, x⟩) + √Δ_f ε with ‖θ₀‖ = 1: linear part F₁² = μ₁(φ)², non-linear part
  F_*² = μ_*(φ)² (chosen teachers have zero mean), noise τ² = Δ_f.
- Their R = E(f_d(x) − f̂(x))² is our eps_L2 (noiseless test error).

The formula below is coded from the published statement, independently of the project's solver.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import optimize

from sobolev_rf.derive.params import ModelParams
from sobolev_rf.numeric.theory.coefficients import coefficients
from sobolev_rf.numeric.theory.solve import solve


def mei_montanari_risk(
    mu1: float, mu_star: float, F1_sq: float, Fstar_sq: float, tau_sq: float, psi1: float, psi2: float, lam_mm: float
) -> float:
    zeta = mu1 / mu_star
    z2 = zeta * zeta
    s = math.sqrt(psi1 * psi2 * lam_mm / mu_star**2)  # ξ = i s
    # At ξ = i s the solutions are purely imaginary: ν₁ = i a, ν₂ = i b with a, b > 0, and
    # ν₁ = ψ₁ (−ξ − ν₂ − ζ²ν₂/(1 − ζ²ν₁ν₂))⁻¹, ν₂ = ψ₂ (−ξ − ν₁ − ζ²ν₁/(1 − ζ²ν₁ν₂))⁻¹ become
    # a = ψ₁ / (s + b + ζ² b/(1 + ζ² a b)), b = ψ₂ / (s + a + ζ² a/(1 + ζ² a b)).

    def residual(v: np.ndarray) -> list[float]:
        a, b = np.exp(v)
        return [
            1.0 - psi1 / (a * (s + b + z2 * b / (1 + z2 * a * b))),
            1.0 - psi2 / (b * (s + a + z2 * a / (1 + z2 * a * b))),
        ]

    sol = optimize.root(residual, np.log([psi1 / (s + 1.0), psi2 / (s + 1.0)]), tol=1e-15, method="hybr")
    assert max(abs(r) for r in residual(sol.x)) < 1e-13
    a, b = np.exp(sol.x)
    chi = -a * b  # χ = ν₁ν₂
    p1, p2 = psi1, psi2
    E0 = (
        -(chi**5) * zeta**6
        + 3 * chi**4 * zeta**4
        + (p1 * p2 - p2 - p1 + 1) * chi**3 * zeta**6
        - 2 * chi**3 * zeta**4
        - 3 * chi**3 * zeta**2
        + (p1 + p2 - 3 * p1 * p2 + 1) * chi**2 * zeta**4
        + 2 * chi**2 * zeta**2
        + chi**2
        + 3 * p1 * p2 * chi * zeta**2
        - p1 * p2
    )
    E1 = p2 * chi**3 * zeta**4 - p2 * chi**2 * zeta**2 + p1 * p2 * chi * zeta**2 - p1 * p2
    E2 = (
        chi**5 * zeta**6
        - 3 * chi**4 * zeta**4
        + (p1 - 1) * chi**3 * zeta**6
        + 2 * chi**3 * zeta**4
        + 3 * chi**3 * zeta**2
        + (-p1 - 1) * chi**2 * zeta**4
        - 2 * chi**2 * zeta**2
        - chi**2
    )
    bias, var = E1 / E0, E2 / E0
    return float(F1_sq * bias + (tau_sq + Fstar_sq) * var + Fstar_sq)


POINTS = [  # (p/d, n/d, λ, Δ_f): under- and over-parameterised, λ from 1e-3 to 1, with and without noise
    (0.5, 2.0, 1e-3, 0.0),
    (3.0, 1.5, 0.1, 0.25),
    (1.2, 0.8, 1.0, 0.5),
    (4.0, 2.5, 1e-2, 0.0),
    (0.7, 3.0, 0.3, 0.1),
]


@pytest.mark.parametrize("activation, teacher", [("tanh", "tanh"), ("erf", "tanh"), ("Max(0, x)", "tanh")])
@pytest.mark.parametrize("psi1, psi2, lam, noise", POINTS)
def test_l2_training_matches_mei_montanari(
    activation: str, teacher: str, psi1: float, psi2: float, lam: float, noise: float
) -> None:
    k = coefficients(activation)
    m = coefficients(teacher)
    assert abs(m[0]) < 1e-14  # zero-mean teacher: F₀ = 0 as in the classical statement
    classical = mei_montanari_risk(k[1], k[2], m[1] ** 2, m[2] ** 2, noise, psi1, psi2, lam / psi1)
    theory = solve(
        ModelParams(
            activation=activation, teacher=teacher, k=0, tau=0, p_over_d=psi1, n_over_d=psi2, lam=lam, noise_f=noise
        )
    ).eps_L2
    assert theory == pytest.approx(classical, rel=1e-8)
