"""The spike of one first-layer gradient step in closed form (ONESTEP.md), for any σ and φ.

Public API: :func:`spike_theory` (from a :class:`~sobolev_rf.derive.params.ModelParams` with a step) and
:func:`spike_coefficients` (from the parts) return a frozen :class:`Spike`; its fields are
:class:`~sobolev_rf.derive.hermite.Coefficient` s (an mpmath value correct to the requested digits and a
SymPy closed form when every Gaussian moment has one), :meth:`Spike.as_floats` gives floats. The measured
counterparts are :func:`sobolev_rf.numeric.simulation.onestep.measure_spike`.

Notation (MODEL.md, ONESTEP.md; ξ ~ N(0, 1)). Student: κ₀ = E σ, κ₁ = E σ′ = E ξσ, κ₁′ = E ξσ′ (the
distributional E σ″; 1/√(2π) for ReLU), s_σ² = E σ′² − κ₁², and E σ″² with σ″ the almost-everywhere
second derivative the step uses (0 for ReLU). Teacher: μ₁* = E ξφ = E φ′, E φ, E φ², E φ′². The step's
residual r = y − f₀(x) has E r = E φ − κ₀ and E r² = E(φ − κ₀)² + Δ_f for a_j = 1/p (``const``: f₀ → κ₀),
E r = E φ and E r² = E φ² + Δ_f for a_j = ±1/p (``sign``: f₀ → 0); the gradient residual of a fresh
direction has E s² = E φ′² + Δ_g.

Derivation (leading order in 1/d; s_j = p·a_j). Split σ′(h_ij) = κ₁ + (σ′(h_ij) − κ₁) in the update of
ONESTEP.md. The κ₁ part moves every row by η̃κ₁s_j·g with one vector g = (1/n₀)Σ_i [r_i x_i + τ₁Σ_l s_il u_il]
(a rank-one spike). For fresh directions E g = μ₁*(1 + τ₁k₁)θ₀ (Stein: E r x = μ₁*θ₀, E s u = E φ′·θ₀),
and g − E g is a sum of n₀ independent vectors of squared norm d·(E r² + τ₁²k₁E s²)/n₀, so

    m = μ₁*(1 + τ₁k₁),   ν² = (E r² + τ₁²k₁E s²)/α₀,   r = η̃|κ₁|√(m² + ν²),   γ = sgn(κ₁)·m/√(m² + ν²).

The rest is row-specific. Its mean along w_j is η̃s_j E[r]κ₁′ w_j (Stein: E[r(σ′(h) − κ₁)x] = E[r]E[σ″]w_j
+ O(1/√d)): row j is rescaled by 1 + s_jδ, δ = η̃E[r]κ₁′ (the terms of the gradient part along w_j are
O(1/d): through E[∇f₀(x)xᵀ] = κ₁′W₀ᵀW₀/p ≈ κ₁′I/d they add −η̃τ₁k₁κ₁′(κ₁′ + E σ″)/d, which the simulator
shows as the paired Sobolev-minus-L2 difference −0.0025 at d = 200 and −0.0014 at d = 400 for GELU,
η̃ = 1.5, τ₁k₁ = 1, against −0.0027 and −0.0013 from this term). Its fluctuation is a bulk of per-row squared norm

    b² = (η̃²/α₀)[E r²·s_σ² + τ₁²k₁E s²·(s_σ² + E σ″²)],

from r_i(σ′ − κ₁)x_i, τ₁s_il(σ′ − κ₁)u_il and τ₁s_ilσ″⟨w_j, u_il⟩x_i, mutually uncorrelated at leading
order. A bulk row has squared norm c_W² = (1 + δ)² + b² (rows with s_j = −1: (1 − δ)² + b²).

The bulk is not all independent of W₀: the parts linear in h_ij (σ′ − κ₁ → κ₁′h_ij, σ″ → E σ″) are
diag(s)W₀A with a d×d matrix A of the step batch, A = η̃[κ₁′C̃ + τ₁(κ₁′M̃ + E[σ″]M̃ᵀ)],
C̃ = (1/n₀)Σ_i r_i(x_ix_iᵀ − I) and M̃ = (1/n₀)Σ_{i,l} s_il u_il x_iᵀ (less their means, which went
into δ and into low-rank O(1) terms).
Its share of b² is

    b_lin² = (η̃²/α₀)[κ₁′²E r² + τ₁²k₁E s²(κ₁′² + (E σ″)²)]   (E σ″ almost everywhere: 0 for ReLU),

A row is also rescaled in proportion to its teacher overlap ρ_j = ⟨θ₀, w_j⟩ = O(1/√d), beyond the spike:
the first order in ρ_j of E[r(σ′(h) − κ₁)h] is ρ_jμ₁*E[(ξ² − 1)σ′(ξ)] and that of the τ₁σ″ term
ρ_jτ₁k₁μ₁*E[ξσ″(ξ)] (σ″ almost everywhere), so w_j → (1 + s_jερ_j)w_j with

    ε = η̃μ₁*(E[(ξ² − 1)σ′] + τ₁k₁E[ξσ″])   (shared directions: τ₁ → 0).

Each row moves by O(1/√d) only, but coherently with the teacher across the rows. (The spike's own part along
w_j, η̃κ₁μ₁*(1 + τ₁k₁)ρ_j, comes on top in a regression that does not remove û.)

So the bulk rows of W₁ are Gaussian with covariance ((1 + δ)I + A)ᵀ((1 + δ)I + A)/d plus an isotropic
(b² − b_lin²)/d: not isotropic unless κ₁′ = 0 (odd σ).

Rows differ. Each row keeps, at O(1/√d), traces of its own start that the readout can use (a neuron's mean
given κ moves with them: derive/onestep.py): its initial squared norm n_j = ‖w⁰_j‖² (n_j − 1 has variance
2/d) and its spike overlap ⟨w⁰_j, û⟩ (variance 1/d). For the rows with a_j > 0 (all of them for ``const``):

- the spike entry t_j = ⟨w¹_j, û⟩ = r·κ₁(√n_j)/κ₁ + c⟨w⁰_j, û⟩ + …, κ₁(s) = E σ′(sξ), slope in n_j
  β_t = r·E[(ξ² − 1)σ′]/(2κ₁) (dκ₁/d(s²) = E σ‴/2);
- the squared bulk norm e_j = ‖Πw¹_j‖² moves with n_j at the slope β_e = c² + 2cδ′ + b²′ (δ′ = η̃E[r]E[He₃σ′]/2
  and b²′ the slopes of δ and b² in s², from d/d(s²)E f(sξ) = E[(ξ² − 1)f]/2), and with the spike overlap:
  ⟨w⁰_j, Δw_j⟩ = η̃⟨w⁰_j, E[(ξ² − 1)σ′]g_L2 + E[ξσ″]g_τ⟩ + noise (g = g_L2 + g_τ, the two parts of the spike
  vector: the row moves along itself in proportion to its overlap with g, the fluctuating counterpart of the
  overlap rescaling ε), so e_j gains 2ε_u⟨w⁰_j, û⟩ with ε_u = sgn(κ₁)η̃⟨E[(ξ² − 1)σ′]g_L2 + E[ξσ″]g_τ, ĝ⟩;
- e_j's own noise ν_e: the rest of that vector (4‖v‖² − 4⟨v, ĝ⟩²), the per-row sampling noise of
  2⟨w⁰_j, Δw_j⟩ beyond it, (4η̃²/α₀)[E r²(E[ξ²(σ′ − κ₁ − E[(ξ² − 1)σ′])²] − κ₁′²) + τ₁²k₁E s²E[(ξσ″ + σ′ −
  κ₁ − E[ξσ″])²]] (over the rows of one batch each sample's term varies about r_iκ₁′, so E r²κ₁′² goes, not
  (E r)²κ₁′²: ReLU, L2 step, η̃ = 1, α₀ = 4, 0.050 where the joint variance gave 0.113; measured on real W₁ at
  d = 800, after the regression on ‖w⁰_j‖², 0.051 and 0.053), and the Gaussian bulk's 2b⁴.

So d × the rows' covariance of (t_j, e_j) is

    Σ_tt = c_W² + 2β_t²,   Σ_te = 2cε_u + 2β_tβ_e,   Σ_ee = 4ε_u² + 2β_e² + ν_e

(a Gaussian bulk of rows N(0, c_W²I/d) would have c_W², 0, 2c_W⁴; rows of one norm c_W², 0, 0). For tanh
(η̃ = 1, α₀ = 4, τ₁k₁ = 1): 1.167, −1.432, 3.172 against 1.182 ± 0.010, −1.403 ± 0.023, 3.112 ± 0.046
measured at d = 400.

The bulk's own spread along û. Above, c² + b² stands for the bulk's variance along û as if the bulk were
generic there. It is not: û comes from the same batch. For the L2 step (and a shared-direction step, whose
bulk is the L2 step's) split σ′ − κ₁ = κ₁′h + R(h) (R without Hermite orders 0, 1). Row j's part of t_j that
varies at fixed norm is ⟨w⁰_j, Lû⟩ + η̃(1/n₀)Σ_i r_iR(h_ij)⟨x_i, û⟩ with L = I + M, M = η̃κ₁′A,
A = (1/n₀)Σ_ir_ix_ix_iᵀ; the two are uncorrelated over rows (R has no linear order) and the second has
variance (η̃²/(α₀d))(s_σ² − κ₁′²)E[r²⟨x, û⟩²] (its i ≠ i′ pairs are the norm channel 2β_t²). A sample's
⟨x_i, û⟩‖g‖ = r_i/α₀ + mω_i + νz_i (its own term in g, then g without it; z ~ N(0, 1) independent), so with
N² = ‖g‖² = m² + ν²:

    ûᵀMû = (η̃κ₁′/N²)[E r³/α₀² + 2mE[r²ω]/α₀ + m²E[rω²] + ν²E r]   (``linear_overlap``),
    ‖Mû‖² = (η̃κ₁′)²‖Ag‖²/N²   (``linear_along``),
    ‖Ag‖² = m²E[rω²]² + (2m/α₀)E[r²ω](E[rω²] + E r) + m²E[r²ω²]/α₀ + (E r)²E r²/α₀ + (E[r²ω]² + (E r²)²)/α₀²
    + (2/α₀²)(mE[r³ω] + E r·E r³) + E r⁴/α₀³,
    b_û² = (η̃²/α₀)(s_σ² − κ₁′²)[E r⁴/α₀² + 2mE[r³ω]/α₀ + m²E[r²ω²] + ν²E r²]/N²   (``nonlinear_along``)

(ω = ⟨θ₀, x⟩, r = ρ(ω) + √Δ_f ε; ‖Ag‖² sums the index patterns of the U-statistic gᵀA²g) and
Σ_tt = ‖Lû‖² + b_û² + 2β_t² = 1 + 2ûᵀMû + ‖Mû‖² + b_û² + 2β_t². The generic values are δ, δ² + b_lin²
and b² − b_lin², i.e. c_W² + 2β_t². ReLU, L2 step, η̃ = 1, α₀ = 4: ûᵀMû = −0.301 (generic δ = −0.159),
‖Mû‖² = 0.128, b_û² = 0.030, Σ_tt = 0.556 against 0.564 ± 0.018 and 0.542 ± 0.017 measured at d = 400, 800
(6 seeds; the generic value was 0.742); α₀ = 2: 0.488 against 0.480 ± 0.017, 0.473 ± 0.022; GELU, η̃ = 1.5,
α₀ = 3: 0.526 against 0.533 ± 0.019, 0.520 ± 0.019; tanh (κ₁′ = 0, only b_û² moves): 1.055 against 1.064 ±
0.025. For a fresh Sobolev step the same holds with g_τ's samples (⟨u_il, û⟩ carries τ₁s_il/α₀) and the linear
parts M̃, M̃ᵀ of the τ₁-terms; that is not derived here, and the generic values are kept (exact for odd σ up to
b_û² − b²'s τ-terms, which the tanh check above does not resolve). Σ_te and Σ_ee keep the generic bulk too: for
σ that are not odd the measured Σ_ee is lower still (ReLU, α₀ = 4: 1.467 against 1.42 ± 0.03, 1.39 ± 0.01 at
d = 400, 800; GELU 1.562 against 1.46 ± 0.04, 1.40 ± 0.01): on real W₁ (ReLU, d = 800, 2 seeds) the part of
e_j beyond its slope in ‖w⁰_j‖² has d·Var 0.040 where these terms give 0.053, and the difference is the
covariance of 2⟨Πw⁰_j, ΠΔw_j⟩ with ‖ΠΔw_j‖² (2 × −0.008 measured; the linear bulk's quadratic forms
ŵᵀAŵ and ŵᵀA²ŵ covary), not derived here.

Shared directions u_il = v_l with τ₁ = τ̃₁/d: every τ₁-term is O(1/√d) per row except its effect on the
projections ζ_jl = ⟨w_j, v_l⟩ (‖v_l‖ = √d): the τ₁σ′u part moves row j by η̃s_jτ̃₁Σ_l T_jl v_l/d with
T_jl = (1/n₀)Σ_i s_il σ′(h_ij) → κ₁μ₁*ϖ_l, so ζ_jl (l ≤ k₁) shifts by s_jψϖ_l, ψ = η̃τ̃₁κ₁μ₁*; the spike,
rescaling and bulk are those of the L2 step. That shift is itself rank one along s, so it belongs to the
measured spike: ⟨û, v_l⟩ = γϖ_l + √(1 − γ²)ν_l + (ψ/r)ϖ_l·[l ≤ k₁] with ν ~ N(0, I_k) (the direction of
g − E g), and the ζ shift (1/p)Σ_j s_j(ζ¹_jl − c_jζ⁰_jl) = r⟨û, v_l⟩ has mean (rγ + ψ[l ≤ k₁])ϖ_l and
standard deviation r√(1 − γ²) over draws (:meth:`Spike.zeta_shift_mean`, ``zeta_shift_spread``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import mpmath
import sympy as sp

from .activations import derivative, parse_activation
from .errors import UserError
from .hermite import GUARD_DIGITS, Coefficient, hermite_coefficients, hermite_sequence
from .params import ModelParams

#: The quantities of a :class:`Spike`, in field order (all :class:`Coefficient`).
SPIKE_FIELDS = (
    "r",
    "gamma",
    "row_shift",
    "row_scale",
    "row_scale_neg",
    "bulk_variance",
    "bulk_linear",
    "overlap_rescaling",
    "c_W",
    "zeta_shift",
    "zeta_shift_spread",
    "signal",
    "noise",
    "mean_residual",
    "residual_energy",
    "spike_norm_slope",
    "overlap_spike",
    "norm_slope",
    "row_shift_slope",
    "bulk_slope",
    "norm_noise",
    "linear_overlap",
    "linear_along",
    "nonlinear_along",
    "sigma_tt",
    "sigma_te",
    "sigma_ee",
)


@dataclass(frozen=True)
class Spike:
    """The first layer after one step, W₁ ≈ diag(1 + s_jδ)W₀ + r·s ûᵀ + bulk (module docstring).

    ``r`` spike strength per row (≥ 0), ``gamma`` γ = ⟨û, θ₀⟩, ``row_shift`` δ = η̃E[r]κ₁′, ``row_scale``
    1 + δ (rows with a_j > 0), ``row_scale_neg`` 1 − δ (rows with a_j < 0; NaN for ``const``),
    ``bulk_variance`` b², ``bulk_linear`` b_lin² (the part of b² of the form diag(s)W₀A), ``c_W`` √((1 + δ)² + b²),
    ``overlap_rescaling`` ε, the slope of the rows' rescaling in their teacher overlap (w_j → (1 + s_jε⟨θ₀, w_j⟩)w_j
    beyond the spike), ``zeta_shift`` ψ = η̃τ̃₁κ₁μ₁* (shared directions; 0 otherwise), ``zeta_shift_spread`` r√(1 − γ²),
    ``signal`` m and ``noise`` ν² of the spike vector g,
    ``mean_residual`` E r and ``residual_energy`` E r²; the rows' own spread (module docstring, "Rows
    differ"): ``spike_norm_slope`` β_t, ``overlap_spike`` ε_u, ``norm_slope`` β_e (with its parts
    ``row_shift_slope`` δ′ and ``bulk_slope`` b²′), ``norm_noise`` ν_e, the bulk's own spread along û
    (``linear_overlap`` ûᵀMû, ``linear_along`` ‖Mû‖², ``nonlinear_along`` b_û²) and the covariance ``sigma_tt``,
    ``sigma_te``, ``sigma_ee`` (d × per-row Var t_j, Cov(t_j, e_j), Var e_j). ``k_step`` k₁ (shared: the
    directions l ≤ k₁ that shift), ``exact`` whether every field has a closed form.
    """

    r: Coefficient
    gamma: Coefficient
    row_shift: Coefficient
    row_scale: Coefficient
    row_scale_neg: Coefficient
    bulk_variance: Coefficient
    bulk_linear: Coefficient
    overlap_rescaling: Coefficient
    c_W: Coefficient
    zeta_shift: Coefficient
    zeta_shift_spread: Coefficient
    signal: Coefficient
    noise: Coefficient
    mean_residual: Coefficient
    residual_energy: Coefficient
    spike_norm_slope: Coefficient
    overlap_spike: Coefficient
    norm_slope: Coefficient
    row_shift_slope: Coefficient
    bulk_slope: Coefficient
    norm_noise: Coefficient
    linear_overlap: Coefficient
    linear_along: Coefficient
    nonlinear_along: Coefficient
    sigma_tt: Coefficient
    sigma_te: Coefficient
    sigma_ee: Coefficient
    step: str
    step_dirs: str
    second_layer: str
    k_step: int
    digits: int

    @property
    def exact(self) -> bool:
        return all(getattr(self, name).exact is not None for name in SPIKE_FIELDS)

    def as_floats(self) -> dict[str, float]:
        """Every quantity of :data:`SPIKE_FIELDS` as a float."""
        return {name: float(getattr(self, name).value) for name in SPIKE_FIELDS}

    def zeta_shift_mean(self, alignment: Sequence[float]) -> list[float]:
        """E over draws of the ζ shift (1/p)Σ_j s_j(ζ¹_jl − c_jζ⁰_jl) = r⟨û, v_l⟩ for alignment ϖ:
        (rγ + ψ·[l ≤ k₁ for shared directions])ϖ_l."""
        f = self.as_floats()
        shared = self.step_dirs == "shared"
        return [
            (f["r"] * f["gamma"] + (f["zeta_shift"] if shared and l < self.k_step else 0.0)) * float(a)
            for l, a in enumerate(alignment)
        ]

    def overlap_mean(self, alignment: Sequence[float]) -> list[float]:
        """E over draws of ⟨û, v_l⟩: γϖ_l + (ψ/r)ϖ_l·[l ≤ k₁] (NaN when r = 0)."""
        r = float(self.r.value)
        return [s / r if r > 0 else math.nan for s in self.zeta_shift_mean(alignment)]


def _number(value: float) -> sp.Expr:
    """A user's number as an exact rational of its shortest decimal form (0.1 → 1/10)."""
    return sp.Rational(repr(float(value)))


def _input(c: Coefficient, dps: int) -> tuple[sp.Expr, bool]:
    """A Gaussian moment as a SymPy number: its closed form, or a Float of ``dps`` digits."""
    if c.exact is not None:
        return c.exact, True
    with mpmath.workdps(dps):
        return sp.Float(c.value, dps), False


def _output(expr: sp.Expr, exact: bool, dps: int) -> Coefficient:
    value = sp.N(expr, dps)
    with mpmath.workdps(dps):
        number = mpmath.mpf(sp.Float(value, dps)._mpf_) if value.is_real and value.is_finite else mpmath.nan
    closed = sp.simplify(expr) if exact and sp.count_ops(expr) < 200 else (expr if exact else None)
    return Coefficient(number, closed)


def spike_coefficients(
    activation: str,
    teacher: str,
    *,
    step: str,
    eta: float,
    alpha0: float,
    tau_step: float = 0.0,
    k_step: int = 0,
    step_dirs: str = "fresh",
    second_layer: str = "const",
    noise_f: float = 0.0,
    noise_g: float = 0.0,
    digits: int = 30,
) -> Spike:
    """The spike of a step (module docstring) from its parts; ``tau_step`` is τ₁ (fresh) or τ̃₁ (shared),
    ``activation``/``teacher`` are texts as in MODEL.md. Prefer :func:`spike_theory`, which validates."""
    params = ModelParams(
        activation=activation,
        teacher=teacher,
        k=max(1, int(k_step)) if step_dirs == "shared" else 1,
        noise_f=noise_f,
        noise_g=noise_g,
        step=step,
        eta=eta,
        alpha0=alpha0,
        tau_step=tau_step if step == "sobolev" else None,
        k_step=k_step if step == "sobolev" else None,
        step_dirs=step_dirs if step == "sobolev" else None,
        second_layer=second_layer,
    )
    return spike_theory(params, digits)


def spike_theory(params: ModelParams, digits: int = 30) -> Spike:
    """The spike of the first-layer step of ``params`` (``step`` l2 or sobolev) to ``digits`` digits.

    Gaussian moments come from the Hermite engine (:func:`~sobolev_rf.derive.hermite.hermite_coefficients`
    of σ, of σ′ for E σ″², and of φ): closed forms where they exist, else quadrature to ``digits`` digits."""
    if not params.has_step:
        raise UserError("the spike needs a first-layer step: step = 'l2' or 'sobolev', got step = 'none'.")
    dps = digits + GUARD_DIGITS
    sigma = parse_activation(params.activation)
    phi = parse_activation(params.teacher)
    hs = hermite_coefficients(sigma, digits)
    hd = hermite_coefficients(derivative(sigma), digits)
    he2 = hermite_sequence(derivative(sigma), 2, digits)[2]  # E[(ξ² − 1)σ′(ξ)], Dirac masses of σ″ included
    hp = hermite_coefficients(phi, digits)
    d1 = derivative(sigma)
    d2 = derivative(d1)  # σ″ almost everywhere, as the step uses it
    sq1 = hermite_sequence(d1**2, 2, digits)  # E σ′², ·, E[(ξ² − 1)σ′²]
    sq2 = hermite_sequence(d2**2, 2, digits)  # E σ″², ·, E[(ξ² − 1)σ″²]
    parts = {
        "k0": hs.kappa0,
        "k1": hs.kappa0_prime,
        "k1p": hs.kappa1_prime,
        "ds2": hs.second_moment_prime,
        "dd": hd.kappa0_prime,
        "xdd": hd.kappa1_prime,
        "he2": he2,
        "dds2": hd.second_moment_prime,
        "Ephi": hp.kappa0,
        "mu1": hp.kappa1,
        "phi2": hp.second_moment,
        "dphi2": hp.second_moment_prime,
        "he3": hermite_sequence(d1, 3, digits)[3],  # E[He₃σ′] = 2 d(E σ″(sξ))/d(s²) at s = 1
        "he2sq1": sq1[2],
        "he2sq2": sq2[2],
        "xd1d2": hermite_sequence(d1 * d2, 1, digits)[1],  # E[ξσ′σ″]
    }
    for power in range(2, 5):  # E[φᵏHe_j(ω)], j ≤ 2: the residual's moments along û (module docstring)
        for j, c in enumerate(hermite_sequence(phi**power, 2, digits)):
            parts[f"phi{power}_{j}"] = c
    parts["phi1_2"] = hermite_sequence(phi, 2, digits)[2]
    sym: dict[str, Any] = {}
    exact = True
    for name, c in parts.items():
        sym[name], known = _input(c, dps)
        exact = exact and known
    eta, alpha0 = _number(float(params.eta or 0)), _number(float(params.alpha0 or 1))
    nf, ng = _number(params.noise_f), _number(params.noise_g)
    sobolev = params.step == "sobolev"
    shared = sobolev and params.step_dirs == "shared"
    k1 = int(params.k_step or 0) if sobolev else 0
    tau = _number(float(params.tau_step or 0)) if sobolev else sp.S.Zero
    tau1 = sp.S.Zero if shared else tau  # shared: τ₁ = τ̃₁/d → 0 in the spike and the bulk
    const = params.second_layer == "const"
    k0, k1_, k1p = sym["k0"], sym["k1"], sym["k1p"]
    mean_r = sym["Ephi"] - k0 if const else sym["Ephi"]
    energy_r = (sym["phi2"] - 2 * k0 * sym["Ephi"] + k0**2 if const else sym["phi2"]) + nf
    energy_s = sym["dphi2"] + ng
    signal = sym["mu1"] * (1 + tau1 * k1)
    noise = (energy_r + tau1**2 * k1 * energy_s) / alpha0
    norm = sp.sqrt(signal**2 + noise)
    sgn = -1 if float(parts["k1"].value) < 0 else 1
    r = eta * sgn * k1_ * norm
    gamma = sgn * signal / norm if float(sp.N(norm, 20)) > 0 else sp.nan
    delta = eta * mean_r * k1p
    s2 = sym["ds2"] - k1_**2
    bulk = eta**2 / alpha0 * (energy_r * s2 + tau1**2 * k1 * energy_s * (s2 + sym["dds2"]))
    linear = eta**2 / alpha0 * (k1p**2 * energy_r + tau1**2 * k1 * energy_s * (k1p**2 + sym["dd"] ** 2))
    psi = eta * tau * k1_ * sym["mu1"] if shared else sp.S.Zero
    overlap = eta * sym["mu1"] * (sym["he2"] + tau1 * k1 * sym["xdd"])
    # Rows differ (module docstring): the spike entry and the squared bulk norm of a row against its initial
    # squared norm s² (slopes β_t, β_e) and its spike overlap ⟨w_j, û⟩ (slope 2ε_u of e), and e's own noise
    he2, xdd, mu1 = sym["he2"], sym["xdd"], sym["mu1"]
    c = 1 + delta
    beta_t = r * he2 / (2 * k1_)
    gL, gT, gLT = (
        mu1**2 + energy_r / alpha0,
        (tau1 * k1 * mu1) ** 2 + tau1**2 * k1 * energy_s / alpha0,
        tau1 * k1 * mu1**2,
    )
    vg = eta * (he2 * (gL + gLT) + xdd * (gLT + gT))  # ⟨v, g⟩, v = η̃(he2·g_L2 + E[ξσ″]·g_τ)
    vv = eta**2 * (he2**2 * gL + 2 * he2 * xdd * gLT + xdd**2 * gT)
    eps_u = sgn * vg / norm if float(sp.N(norm, 20)) > 0 else sp.S.Zero
    shift_slope = eta * mean_r * sym["he3"] / 2
    v1s = sym["he2sq1"] / 2 - k1_ * he2  # d(E σ′(sξ)² − κ₁(s)²)/d(s²)
    v2s = sym["dds2"] + sym["he2sq2"] / 2  # d(s²E σ″(sξ)²)/d(s²)
    bulk_s = eta**2 / alpha0 * (energy_r * v1s + tau1**2 * k1 * energy_s * (v1s + v2s))
    beta_e = c**2 + 2 * c * shift_slope + bulk_s
    r1 = sym["he2sq1"] + sym["ds2"] - (k1_ + he2) ** 2  # E[ξ²(σ′ − κ₁ − he2)²]
    r2 = sym["he2sq2"] + sym["dds2"] + 2 * sym["xd1d2"] + sym["ds2"] - (k1_ + xdd) ** 2
    cross = 4 * eta**2 / alpha0 * (energy_r * (r1 - k1p**2) + tau1**2 * k1 * energy_s * r2)
    orth = 4 * (vv - vg**2 / norm**2) if float(sp.N(norm, 20)) > 0 else 4 * vv
    noise_e = cross + orth + 2 * bulk**2
    # The bulk's own spread along û (module docstring), from the residual's moments E[rᵏω^j]
    shift = k0 if const else sp.S.Zero
    raw = {(0, 0): sp.S.One, (0, 1): sp.S.Zero, (0, 2): sp.S.Zero}
    raw |= {(1, 0): sym["Ephi"], (1, 1): sym["mu1"], (1, 2): sym["phi1_2"]}
    raw |= {(k, j): sym[f"phi{k}_{j}"] for k in range(2, 5) for j in range(3)}

    def rho(k: int, j: int) -> Any:  # E[ρᵏHe_j(ω)], ρ = φ − κ₀ (const) or φ (sign)
        return sum(sp.binomial(k, i) * (-shift) ** (k - i) * raw[(i, j)] for i in range(k + 1))

    er1, er2, er3 = rho(1, 0), rho(2, 0) + nf, rho(3, 0) + 3 * nf * rho(1, 0)
    er4 = rho(4, 0) + 6 * nf * rho(2, 0) + 3 * nf**2
    er2w, er3w = rho(2, 1), rho(3, 1) + 3 * nf * rho(1, 1)
    erw2, er2w2 = rho(1, 2) + rho(1, 0), rho(2, 2) + rho(2, 0) + nf
    if tau1 == 0 and float(sp.N(norm, 20)) > 0:  # the L2 step (a shared-direction step has the L2 step's bulk)
        inv, n2 = 1 / alpha0, norm**2
        along_p = er3 * inv**2 + 2 * signal * er2w * inv + signal**2 * erw2 + noise * er1
        along_q = (
            signal**2 * erw2**2
            + 2 * signal * inv * er2w * (erw2 + er1)
            + signal**2 * er2w2 * inv
            + er1**2 * er2 * inv
            + (er2w**2 + er2**2) * inv**2
            + 2 * inv**2 * (signal * er3w + er1 * er3)
            + er4 * inv**3
        )
        along_c = er4 * inv**2 + 2 * signal * er3w * inv + signal**2 * er2w2 + noise * er2
        lin_over = eta * k1p * along_p / n2
        lin_along = (eta * k1p) ** 2 * along_q / n2
        nl_along = eta**2 * inv * (s2 - k1p**2) * along_c / n2
    else:  # a fresh Sobolev step: the bulk taken generic along û (derived for odd σ only)
        lin_over, lin_along, nl_along = delta, delta**2 + linear, bulk - linear
    values = {
        "r": r,
        "gamma": gamma,
        "row_shift": delta,
        "row_scale": 1 + delta,
        "row_scale_neg": sp.nan if const else 1 - delta,
        "bulk_variance": bulk,
        "bulk_linear": linear,
        "overlap_rescaling": overlap,
        "c_W": sp.sqrt((1 + delta) ** 2 + bulk),
        "zeta_shift": psi,
        "zeta_shift_spread": r * sp.sqrt(1 - gamma**2) if gamma is not sp.nan else sp.nan,
        "signal": signal,
        "noise": noise,
        "mean_residual": mean_r,
        "residual_energy": energy_r,
        "spike_norm_slope": beta_t,
        "overlap_spike": eps_u,
        "norm_slope": beta_e,
        "row_shift_slope": shift_slope,
        "bulk_slope": bulk_s,
        "norm_noise": noise_e,
        "linear_overlap": lin_over,
        "linear_along": lin_along,
        "nonlinear_along": nl_along,
        "sigma_tt": 1 + 2 * lin_over + lin_along + nl_along + 2 * beta_t**2,
        "sigma_te": 2 * c * eps_u + 2 * beta_t * beta_e,
        "sigma_ee": 4 * eps_u**2 + 2 * beta_e**2 + noise_e,
    }
    out = {name: _output(expr, exact and expr is not sp.nan, dps) for name, expr in values.items()}
    return Spike(
        **out,
        step=params.step,
        step_dirs=str(params.step_dirs or "fresh"),
        second_layer=str(params.second_layer),
        k_step=k1,
        digits=digits,
    )
