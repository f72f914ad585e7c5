"""The gradient errors after one step (ONESTEP.md, MODEL.md): eps_grad and the V-averaged eps_H1 of a readout.

The student's gradient is ∇f(x) = Σ_j a_j σ′(h_j) w_j with the stepped rows w_j = t_jû + b_j (spike entry
t_j = ⟨w_j, û⟩ of mean r, bulk b_j ⊥ û of squared norm e_j ≈ c_W²), h_j = t_jκ + b_jᵀx, κ = ⟨û, x⟩. The
teacher's is θ₀φ′(ω), θ₀ = γû + ρϑ (ϑ ⊥ û, ρ = √(1 − γ²)), ω = γκ + ρt, t = ⟨ϑ, x⟩. Given κ, σ′(h_j) is
Gaussian-equivalent with the conditional coefficients of σ′ (z ~ N(0, 1)):

    μ₀′(κ) = E σ′(rκ + c_W z),  μ₁′(κ) = E[σ′(rκ + c_W z) z]/c_W,  μ₂′(κ)² = E σ′² − μ₀′² − c_W²μ₁′²,

a row's mean μ₀′(κ; t_j, e_j) = μ₀′ + κμ₁′(t_j − r) + μ_e′(e_j − ē) (∂μ₀′/∂t = κE σ″ = κμ₁′ by Stein), and
those of φ′: h′(κ) = E φ′(γκ + ρz), h₁′(κ) = E zφ′(γκ + ρz), hh′(κ) = E φ′(γκ + ρz)². The readout's
overlaps are those of the fixed point: m = 1ᵀa, θ_t = aᵀ(t − r1), θ_e = aᵀ(e − ē1), χ = aᵀBϑ,
q₁ = aᵀΩa (Ω = BBᵀ), q₂ = ‖a‖².

Split the gradient error along û and the rest, eps_grad = E(γφ′ − ⟨û, ∇f⟩)² + E‖ρϑφ′ − Π∇f‖²:

- along û, ⟨û, ∇f⟩ = Σ_j a_j t_j σ′(h_j) has, given κ, the mean c_u(κ) = μ₀′(rm + θ_t) + rκμ₁′θ_t + rμ_e′θ_e,
  the fluctuation rμ₁′ aᵀBx (variance r²μ₁′²q₁, covariance h₁′χ with φ′) and rμ₂′ times an independent
  residual (variance r²μ₂′²q₂):

      e_u(κ) = γ²hh′ − 2γh′c_u − 2γrμ₁′h₁′χ + c_u² + r²(μ₁′²q₁ + μ₂′²q₂);

- the rest, Π∇f = Σ_j a_j σ′(h_j) b_j: its cross term with ρϑφ′ is ρ Σ_j a_j (Bϑ)_j E[φ′σ′_j] → ρχE_κ[h′μ₀′];
  its square is Σ_jk a_ja_k E[σ′_jσ′_k]⟨b_j, b_k⟩ → μ₀′²q₁ plus the diagonal's excess c_W²q₂(c_W²μ₁′² + μ₂′²)
  (E[σ′_j² | κ] = μ₀′² + c_W²μ₁′² + μ₂′²; the products ⟨b_j, b_k⟩² and the rows' spread inside these sums
  are O(1/d)):

      e_⊥(κ) = ρ²hh′ − 2ρχh′μ₀′ + μ₀′²q₁ + c_W²q₂(c_W²μ₁′² + μ₂′²);

  so eps_grad = E_κ[e_u + e_⊥]. Without a step (r = 0, c_W = 1) this is the random-features
  eps_grad = E φ′² − 2μ₁κ₁m_RF + κ₁²q_s + (κ₁′² + κ_*′²)q_w with m_RF = γθ_t + ρχ and q_s = θ_t² + q₁.

eps_H1 for a readout that does not see V (τ = 0) and a step that does not either: with v_l = ϖ_lθ₀ + v_l^⊥,
v_l^⊥ ~ N(0, I − θ₀θ₀ᵀ) independent of a and W₁, its expectation over V at fixed alignment is
ϖ̄²eps_∥ + (eps_grad − eps_∥), ϖ̄² = ‖ϖ‖²/k, with eps_∥ = E(φ′ − ⟨θ₀, ∇f⟩)² the error along θ₀. Given κ,
⟨θ₀, ∇f⟩ = γ⟨û, ∇f⟩ + ρ Σ_j a_j (Bϑ)_j σ′(h_j) has the mean γc_u + ρμ₀′χ, and the second sum's fluctuation is
O(1/d), so

    e_∥(κ) = hh′ − 2h′(γc_u + ρμ₀′χ) − 2γrμ₁′h₁′χ + (γc_u + ρμ₀′χ)² + γ²r²(μ₁′²q₁ + μ₂′²q₂).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import sympy as sp

#: Per-node fields the gradient errors read (suffix ``_<i>``): μ₀′, μ₁′, μ₂′², μ_e′ of σ′ and h′, h₁′, hh′ of φ′.
GRAD_NODE_FIELDS = ("p0", "p1", "p2", "p3", "u0", "u1", "u2")
#: The spike strength r and the overlap γ = ⟨û, θ₀⟩ (parameters of the systems that report eps_grad).
R_SPIKE, GAMMA = sp.symbols("r_spike gamma_spike")
#: ϖ̄² = ‖ϖ‖²/k, the readout's mean square alignment (the τ = 0 readout's eps_H1).
VARPI2 = sp.Symbol("varpi2")
GRAD_PARAMETER_MEANING = {
    "r_spike": "spike strength r (the mean spike entry ⟨w_j, û⟩)",
    "gamma_spike": "overlap γ = ⟨û, θ₀⟩ of the spike with the teacher",
    "varpi2": "mean square alignment ‖ϖ‖²/k",
    "p0": "μ₀′(κ_i) = E σ′(rκ_i + c_W z)",
    "p1": "μ₁′(κ_i) = E[σ′(rκ_i + c_W z) z]/c_W",
    "p2": "μ₂′(κ_i)² = E σ′² − μ₀′² − c_W²μ₁′²",
    "p3": "μ_e′(κ_i) = ∂μ₀′/∂(c_W²) = (E[z²σ′(rκ_i + c_W z)] − μ₀′)/(2c_W²)",
    "u0": "h′(κ_i) = E φ′(γκ_i + ρz)",
    "u1": "h₁′(κ_i) = E zφ′(γκ_i + ρz)",
    "u2": "hh′(κ_i) = E φ′(γκ_i + ρz)²",
}


def gradient_errors(
    define: Callable[[str, sp.Expr], sp.Expr],
    E: Callable[[list[sp.Expr]], sp.Expr],
    fields: Mapping[str, Sequence[sp.Expr]],
    overlaps: Mapping[str, sp.Expr],
    cW2: sp.Expr,
) -> tuple[sp.Expr, sp.Expr]:
    """(eps_grad, eps_∥) of the module docstring as expressions in the readout's overlaps
    (``overlaps``: m, theta (θ_t), theta_e, chi, q_1, q_2), the per-node ``fields`` (κ-nodes ``k`` and
    :data:`GRAD_NODE_FIELDS`) and c_W²; ``E`` is the κ-rule, ``define`` names intermediate quantities."""
    m, th, the, chi, q1, q2 = (overlaps[n] for n in ("m", "theta", "theta_e", "chi", "q_1", "q_2"))
    r, gamma = R_SPIKE, GAMMA
    rho = define("rho_spike", sp.sqrt(1 - gamma**2))
    kap = fields["k"]
    p0, p1, p2, p3, u0, u1, u2 = (fields[f] for f in GRAD_NODE_FIELDS)
    nodes = range(len(kap))
    cu = [define(f"cu_{i}", p0[i] * (r * m + th) + r * kap[i] * p1[i] * th + r * p3[i] * the) for i in nodes]
    fluct = [r**2 * (p1[i] ** 2 * q1 + p2[i] * q2) for i in nodes]
    cross = [2 * r * p1[i] * u1[i] * chi for i in nodes]
    along = [gamma**2 * u2[i] - 2 * gamma * u0[i] * cu[i] - gamma * cross[i] + cu[i] ** 2 + fluct[i] for i in nodes]
    rest = [
        rho**2 * u2[i] - 2 * rho * chi * u0[i] * p0[i] + p0[i] ** 2 * q1 + cW2 * q2 * (cW2 * p1[i] ** 2 + p2[i])
        for i in nodes
    ]
    mean = [define(f"cpar_{i}", gamma * cu[i] + rho * p0[i] * chi) for i in nodes]
    par = [u2[i] - 2 * u0[i] * mean[i] - gamma * cross[i] + mean[i] ** 2 + gamma**2 * fluct[i] for i in nodes]
    eps_grad = define("eps_grad_u", E(along)) + define("eps_grad_rest", E(rest))
    return eps_grad, define("eps_grad_par", E(par))
