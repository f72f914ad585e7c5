"""The readout after one gradient step (ONESTEP.md): the conditionally Gaussian-equivalent fixed point.

After the step the first layer is W₁ = B + r·1ûᵀ: a bulk B (rows of norm c_W, ΩΠ-spectrum of a
c_W²-scaled Marchenko–Pastur law) and a rank-one spike of strength r along a unit û with ⟨û, θ₀⟩ = γ.
With the spike coordinate κ = ⟨û, x⟩ ~ N(0, 1) and x_⊥ = Πx (Π = I − ûûᵀ), a neuron reads
σ(rκ + b_jᵀx) and the teacher φ(γκ + ρt), t = ⟨ϑ, x⟩ ⊥ κ, ρ = √(1 − γ²). Given κ the features are
Gaussian-equivalent with κ-dependent coefficients (z ~ N(0, 1)):

    μ₀(κ) = E σ(rκ + c_W z),  μ₁(κ) = E[σ(rκ + c_W z) z]/c_W,  μ₂(κ)² = E σ² − μ₀² − c_W²μ₁²,
    h(κ) = E φ(γκ + ρz),      h₁(κ) = E zφ(γκ + ρz),           hh(κ) = E φ(γκ + ρz)²,

so that f(x) given κ has mean c(κ) = μ₀m + μ₁κθ (m = 1ᵀa: the mean direction is a spike, fitted at no
ridge cost; θ = aᵀBû: the bulk's own component along û) and fluctuation variance q = μ₁²q₁ + μ₂²q₂
(q₁ = aᵀΩa, q₂ = ‖a‖², Ω = BΠBᵀ). The replica-symmetric fixed point of ridge regression over this
κ-mixture of Gaussian models (Cui et al. 2024, Result 3.3, re-derived here in MODEL.md's normalisation,
α = n/p, λ_c = αλ):

    g(κ) = 1/(1 + μ₁²V₁ + μ₂²V₂),   V̂₁ = αE_κ[μ₁²g],  V̂₂ = αE_κ[μ₂²g],   S = λ_c + V̂₁D + V̂₂,
    V₁ = ⟨D/S⟩,  V₂ = ⟨1/S⟩   (⟨·⟩ over the p eigenvalues D of Ω).

Bû is independent of BΠ (Gaussian bulk), hence flat in Ω's eigenbasis: ⟨F g(D)⟩ = ψc_W²⟨g(D)⟩; Bϑ is a
column of BΠ: ⟨H g(D)⟩ = ψ⟨D g(D)⟩ (ψ = p/d). Every ⟨·⟩ is a Marchenko–Pastur integral in closed form:
with a = λ_c + V̂₂, b = c_W²V̂₁, ⟨1/S⟩ = 2/((1−ψ)b + a + √(((1−ψ)b + a)² + 4ψab)), ⟨1/S²⟩ = −∂_a⟨1/S⟩,
and ⟨D^j/S^i⟩ by the identity D = (S − a)/V̂₁. The overlaps (m, θ) solve the 2×2 linear system

    E[gμ₀²]m + E[gμ₀μ₁κ]θ = E[gμ₀h],      θ = θ̂ψc_W²V₂,   θ̂ = αE[gκμ₁(h − c)],

(when μ₀ ≡ 0 the mean channel is absent and m = 0), ψ̂ = αE[gμ₁h₁], χ = ψ̂ψV₁ (the overlap aᵀBϑ), and
with e(κ) = hh + c² − 2ch − 2μ₁χh₁ + q the population error given κ and e + Δ_f its training value,

    q̂₁ = αE[μ₁²g²(e + Δ_f)],  q̂₂ = αE[μ₂²g²(e + Δ_f)],
    q₁ = ⟨D(q̂₁D + q̂₂)/S²⟩ + θ̂²ψc_W²⟨D/S²⟩ + ψ̂²ψ⟨D²/S²⟩,  q₂ the same with one D less,

a linear 2×2 system in (q₁, q₂), solved in closed form. Outputs: eps_L2 = E_κ e(κ) and
train_error_L2 = E_κ[g²(e + Δ_f)], and from the same overlaps (m, θ, θ_e, χ, q₁, q₂) eps_grad and the
expectation of eps_H1 over V (derive/onestep_grad.py; they add the parameters r, γ, ϖ̄² and, per node, the
conditional coefficients of σ′ and φ′).

The rows' spread (derive/spike.py, "Rows differ"). The rows are not all alike: row j has its own spike
entry t_j and squared bulk norm e_j, spread at O(1/√d) with d × covariance Σ (Σ_tt, Σ_te, Σ_ee). Given κ
its mean is μ₀(κ; t_j, e_j) = μ₀(κ) + κμ₁(κ)(t_j − r) + μ_e(κ)(e_j − ē) + O(1/d), μ_e = ∂μ₀/∂(c_W²) =
E[zσ′(rκ + c_W z)]/(2c_W): two rank-one channels, the vectors t − r1 and e − ē1 with the functions κμ₁(κ)
and μ_e(κ). Both are generic to Ω (measured: their resolvent forms are within 3 % of ψΣ⟨g(D)⟩), so the
θ channel above becomes a pair, θ = (aᵀ(t − r1), aᵀ(e − ē1)), c(κ) = μ₀m + κμ₁θ_t + μ_eθ_e,

    θ = ψV₂Σθ̂,   θ̂ = αE[g f (h − c)],  f = (κμ₁, μ_e),

solved with m as one 3×3 linear system, and θ̂²ψc_W² becomes ψθ̂ᵀΣθ̂ in q₁, q₂. Σ = (c_W², 0, 0) is the model
above (rows of one norm; Σ_tt = c_W² is its θ channel). After a tanh Sobolev step (p/d = 2, n/d = 3,
λ = 10⁻³, η̃ = 1, α₀ = 4, τ₁k₁ = 1) it lowers eps_L2 from 0.0387 to 0.0372.

E_κ is a Gauss–Hermite rule of ``nodes`` points: the System takes, per node i, the weight w_i, the node
κ_i and the eight conditional coefficients as parameters (the numeric layer computes them for any σ, φ
and spike), so the equations are straight-line code and codegen needs nothing new. The only unknowns
are V₁ and V₂; everything else is explicit.
"""

from __future__ import annotations

from functools import cache

import sympy as sp

from .errors import UserError
from .onestep_grad import GAMMA, GRAD_NODE_FIELDS, GRAD_PARAMETER_MEANING, R_SPIKE, VARPI2, gradient_errors
from .saddle import _Definitions
from .special import scaled_resolvent
from .system import System

LAM, PSI, PHI, DELTA_F, CW2 = sp.symbols("lam psi n_d Delta_f cW2")
#: d × the per-row covariance of the spike entries t_j = ⟨w¹_j, û⟩ and the squared bulk row norms
#: e_j = ‖Πw¹_j‖² (Σ_tt = c_W², Σ_te = Σ_ee = 0 for a bulk with rows of one norm).
SIG_TT, SIG_TE, SIG_EE = sp.symbols("Sigma_tt Sigma_te Sigma_ee")
#: 1 (the model): the bulk's component Bû along the spike is kept (θ channel, ⟨F g⟩ = ψc_W²⟨g⟩); 0 drops it
#: (F ≡ 0, so θ = 0), which is the fixed point of the published notebook of Cui et al. 2024.
BULK = sp.Symbol("bulk_overlap")
#: Per-node parameter names (suffix ``_<i>``): weight, node, μ₀, μ₁, μ₂², h, h₁, hh, μ_e.
NODE_FIELDS = ("w", "k", "s0", "s1", "s2", "t0", "t1", "t2", "s3")
#: Per-node parameter names of the τ = 0 readout: :data:`NODE_FIELDS`, then those of its gradient errors
#: (:data:`~sobolev_rf.derive.onestep_grad.GRAD_NODE_FIELDS`).
READOUT_NODE_FIELDS = NODE_FIELDS + GRAD_NODE_FIELDS
#: Default number of Gauss–Hermite nodes in κ.
NODES = 48
#: What each scalar parameter is (ModelParams names, or the spike quantity).
PARAMETER_MEANING = {
    "lam": "lam",
    "psi": "p_over_d",
    "n_d": "n_over_d",
    "Delta_f": "noise_f",
    "cW2": "bulk row variance c_W² after the step",
    "Sigma_tt": "d·Var(t_j): the spike entries' spread across rows (c_W² for a Gaussian bulk)",
    "Sigma_te": "d·Cov(t_j, e_j): spike entries against squared bulk row norms",
    "Sigma_ee": "d·Var(e_j): the squared bulk row norms' spread across rows",
    "bulk_overlap": "1: keep the bulk's component along û (the model); 0: drop it (the published notebook)",
    "w": "Gauss–Hermite weight of node i",
    "k": "Gauss–Hermite node κ_i",
    "s0": "μ₀(κ_i) = E σ(rκ_i + c_W z)",
    "s1": "μ₁(κ_i) = E[σ(rκ_i + c_W z) z]/c_W",
    "s2": "μ₂(κ_i)² = E σ² − μ₀² − c_W²μ₁²",
    "t0": "h(κ_i) = E φ(γκ_i + ρz)",
    "t1": "h₁(κ_i) = E zφ(γκ_i + ρz)",
    "t2": "hh(κ_i) = E φ(γκ_i + ρz)²",
    "s3": "μ_e(κ_i) = ∂μ₀/∂(c_W²) = E[z σ′(rκ_i + c_W z)]/(2c_W)",
}
LATEX_NAMES = {"lam": r"\lambda", "n_d": r"(n/d)", "cW2": r"c_W^2", "V_1": "V_1", "V_2": "V_2"}


def node_symbols(nodes: int) -> dict[str, tuple[sp.Symbol, ...]]:
    """The per-node parameter symbols, by field."""
    return {f: tuple(sp.Symbol(f"{f}_{i}") for i in range(nodes)) for f in READOUT_NODE_FIELDS}


def derive_onestep_system(nodes: int = NODES) -> System:
    """The τ = 0 readout after one step, with a ``nodes``-point rule in κ (module docstring)."""
    if isinstance(nodes, bool) or not isinstance(nodes, int) or not 4 <= nodes <= 400:
        raise UserError(f"nodes must be an integer between 4 and 400, got {nodes!r}.")
    return _derive(nodes)


@cache
def _derive(nodes: int) -> System:
    d = _Definitions()
    n = node_symbols(nodes)
    w, k, s0, s1, s2, t0, t1, t2, s3 = (n[f] for f in NODE_FIELDS)
    V1, V2 = sp.symbols("V_1 V_2")
    alpha = d("alpha", PHI / PSI)
    lam_c = d("lam_c", alpha * LAM)

    def E(terms: list[sp.Expr]) -> sp.Expr:
        return sp.Add(*[w[i] * terms[i] for i in range(nodes)])

    g = [d(f"g_{i}", 1 / (1 + s1[i] ** 2 * V1 + s2[i] * V2)) for i in range(nodes)]
    Vh1 = d("Vhat_1", alpha * E([s1[i] ** 2 * g[i] for i in range(nodes)]))
    Vh2 = d("Vhat_2", alpha * E([s2[i] * g[i] for i in range(nodes)]))
    # Marchenko–Pastur averages: a = λ_c + V̂₂, b = c_W² V̂₁, ⟨1/S⟩ and its a-derivative
    A, B = sp.Dummy("a"), sp.Dummy("b")
    u = (1 - PSI) * B + A
    inv_s = 2 / (u + sp.sqrt(u**2 + 4 * PSI * A * B))
    a = d("a_mp", lam_c + Vh2)
    b = d("b_mp", CW2 * Vh1)
    iS = d("iS", inv_s.xreplace({A: a, B: b}))
    iS2 = d("iS2", (-sp.diff(inv_s, A)).xreplace({A: a, B: b}))
    DS = d("DS", (1 - a * iS) / Vh1)
    DS2 = d("DS2", (iS - a * iS2) / Vh1)
    D2S2 = d("D2S2", (DS - a * DS2) / Vh1)
    residuals = [V1 - DS, V2 - iS]
    # (m, θ_t, θ_e): the mean equation C m + A_t θ_t + A_e θ_e = A_h and θ = T Σ θ̂, θ̂ = α(B_h − m A − B θ),
    # T = ψ V₂ (a 3×3 linear system; without a mean channel its first row is m = 0)
    f = [[k[i] * s1[i] for i in range(nodes)], list(s3)]  # the channels' functions κμ₁(κ) and μ_e(κ)
    Ah = d("A_h", E([g[i] * s0[i] * t0[i] for i in range(nodes)]))
    C = d("C_0", E([g[i] * s0[i] ** 2 for i in range(nodes)]))
    Ac = [d(f"A_{c}", E([g[i] * s0[i] * f[a][i] for i in range(nodes)])) for a, c in enumerate("te")]
    Bh = [d(f"B_h{c}", E([g[i] * f[a][i] * t0[i] for i in range(nodes)])) for a, c in enumerate("te")]
    Bcc = {
        (a, b): d(f"B_{ca}{cb}", E([g[i] * f[a][i] * f[b][i] for i in range(nodes)]))
        for a, ca in enumerate("te")
        for b, cb in enumerate("te")
        if a <= b
    }
    Bm = sp.Matrix(2, 2, lambda a, b: Bcc[(min(a, b), max(a, b))])
    Sig = BULK * sp.Matrix([[SIG_TT, SIG_TE], [SIG_TE, SIG_EE]])
    T = d("T_F", PSI * V2)
    mean = sp.Gt(C, 0)  # μ₀ ≢ 0: the mean direction is a channel (no division by C = 0 in either branch)

    def when_mean(x: sp.Expr, otherwise: sp.Expr) -> sp.Expr:
        return sp.Piecewise((x, mean), (otherwise, True))

    TS = T * alpha * Sig
    lower = sp.eye(2) + TS * Bm
    side = TS * sp.Matrix(Ac)
    M = sp.Matrix(
        [
            [when_mean(C, 1), when_mean(Ac[0], 0), when_mean(Ac[1], 0)],
            [side[0], lower[0, 0], lower[0, 1]],
            [side[1], lower[1, 0], lower[1, 1]],
        ]
    )
    top = TS * sp.Matrix(Bh)
    rhs_m = sp.Matrix([when_mean(Ah, 0), top[0], top[1]])
    Mn = sp.Matrix(3, 3, lambda a, b: d(f"M_{a}{b}", M[a, b]))
    det3 = d("M_det", Mn.det(method="berkowitz"))
    sol = []
    for j, name in enumerate(("m", "theta", "theta_e")):
        cramer = Mn.copy()
        cramer[:, j] = rhs_m
        sol.append(d(name, cramer.det(method="berkowitz") / det3))
    m, theta, theta_e = sol
    thh = [
        d(f"theta_hat_{c}", alpha * (Bh[a] - m * Ac[a] - Bm[a, 0] * theta - Bm[a, 1] * theta_e))
        for a, c in enumerate("te")
    ]
    quad = d("theta_hat_Sigma", (sp.Matrix([thh]) * Sig * sp.Matrix(thh))[0, 0])
    psih = d("psi_hat", alpha * E([g[i] * s1[i] * t1[i] for i in range(nodes)]))
    chi = d("chi", psih * PSI * DS)
    c = [m * s0[i] + theta * s1[i] * k[i] + theta_e * s3[i] for i in range(nodes)]
    e0 = [d(f"e0_{i}", t2[i] + c[i] ** 2 - 2 * c[i] * t0[i] - 2 * s1[i] * chi * t1[i]) for i in range(nodes)]
    P11 = d("P_11", E([g[i] ** 2 * s1[i] ** 4 for i in range(nodes)]))
    P12 = d("P_12", E([g[i] ** 2 * s1[i] ** 2 * s2[i] for i in range(nodes)]))
    P22 = d("P_22", E([g[i] ** 2 * s2[i] ** 2 for i in range(nodes)]))
    r1 = d("r_1", E([g[i] ** 2 * s1[i] ** 2 * (e0[i] + DELTA_F) for i in range(nodes)]))
    r2 = d("r_2", E([g[i] ** 2 * s2[i] * (e0[i] + DELTA_F) for i in range(nodes)]))
    sig1 = quad * PSI * DS2 + psih**2 * PSI * D2S2
    sig2 = quad * PSI * iS2 + psih**2 * PSI * DS2
    # q = α K (r + P q) + sig, K = [[⟨D²/S²⟩, ⟨D/S²⟩], [⟨D/S²⟩, ⟨1/S²⟩]]
    K = sp.Matrix([[D2S2, DS2], [DS2, iS2]])
    P = sp.Matrix([[P11, P12], [P12, P22]])
    M = sp.eye(2) - alpha * K * P
    rhs = alpha * K * sp.Matrix([r1, r2]) + sp.Matrix([sig1, sig2])
    detq = d("q_det", M[0, 0] * M[1, 1] - M[0, 1] * M[1, 0])
    q1 = d("q_1", (M[1, 1] * rhs[0] - M[0, 1] * rhs[1]) / detq)
    q2 = d("q_2", (M[0, 0] * rhs[1] - M[1, 0] * rhs[0]) / detq)
    e = [e0[i] + s1[i] ** 2 * q1 + s2[i] * q2 for i in range(nodes)]
    overlaps = {"m": m, "theta": theta, "theta_e": theta_e, "chi": chi, "q_1": q1, "q_2": q2}
    eps_grad, eps_par = gradient_errors(d, E, n, overlaps, CW2)
    outputs = {
        "eps_L2": E(e),
        "eps_grad": eps_grad,
        "eps_H1": VARPI2 * eps_par + eps_grad - eps_par,
        "train_error_L2": E([g[i] ** 2 * (e[i] + DELTA_F) for i in range(nodes)]),
        "m": m,
        "theta": theta,
        "theta_e": theta_e,
        "chi": chi,
        "q_1": q1,
        "q_2": q2,
        "Vhat_1": Vh1,
        "Vhat_2": Vh2,
    }
    scalars = (LAM, PSI, PHI, DELTA_F, CW2, BULK, SIG_TT, SIG_TE, SIG_EE, R_SPIKE, GAMMA, VARPI2)
    parameters = scalars + tuple(s for f in READOUT_NODE_FIELDS for s in n[f])
    words = PARAMETER_MEANING | GRAD_PARAMETER_MEANING
    meaning = {str(q): words[str(q)] for q in scalars}
    meaning.update({f"{f}_{i}": words[f].replace("κ_i", f"κ_{i}") for f in READOUT_NODE_FIELDS for i in range(nodes)})
    return System(
        name=f"onestep_l2_readout_n{nodes}",
        unknowns=(V1, V2),
        parameters=parameters,
        residuals=tuple(residuals),
        outputs=outputs,
        definitions=dict(d.items),
        latex_names=LATEX_NAMES,
        branch="ridge",
        meta={
            "nodes": nodes,
            "readout": "l2",
            "node_fields": list(READOUT_NODE_FIELDS),
            "parameter_meaning": meaning,
        },
    )


# --------------------------------------------------------------------------------------------------
# the Sobolev readout (τ > 0, k gradient rows)
# --------------------------------------------------------------------------------------------------

TAU, DELTA_G, SHIFT = sp.symbols("tau Delta_g zeta_shift")
#: Per-κ-node fields of the Sobolev readout (suffix ``_<i>``): those of the L2 readout, then the
#: conditional coefficients of σ′ (μ₀′, μ₁′, μ₂′²), the residual cross-covariance of σ and σ′, those of
#: φ′ (h′, h₁′, hh′) and E[φφ′ | κ].
SOBOLEV_NODE_FIELDS = NODE_FIELDS + ("p0", "p1", "p2", "sx", "u0", "u1", "u2", "tx", "p3")
#: Per-ζ-node fields (suffix ``_<i>``): the Gauss–Hermite weight and node of z in ζ₁ = c + c_W z.
ZETA_FIELDS = ("zw", "zz")
#: Default number of Gauss–Hermite nodes in z.
ZETA_NODES = 48
SOBOLEV_PARAMETER_MEANING = PARAMETER_MEANING | {
    "tau": "tau",
    "Delta_g": "noise_g",
    "zeta_shift": "common shift c = r‖β‖ of the readout's ζ along the rotated first direction",
    "varpi_1": "alignment ϖ′₁ of the rotated first direction (the one with the shift)",
    "varpi_2": "alignment ϖ′₂ of the rotated second direction",
    "p0": "μ₀′(κ_i) = E σ′(rκ_i + c_W z)",
    "p1": "μ₁′(κ_i) = E[σ′(rκ_i + c_W z) z]/c_W",
    "p2": "μ₂′(κ_i)² = E σ′² − μ₀′² − c_W²μ₁′²",
    "sx": "c_σ(κ_i) = E σσ′ − μ₀μ₀′ − c_W²μ₁μ₁′",
    "u0": "h′(κ_i) = E φ′(γκ_i + ρz)",
    "u1": "h₁′(κ_i) = E zφ′(γκ_i + ρz)",
    "u2": "hh′(κ_i) = E φ′(γκ_i + ρz)²",
    "tx": "E φφ′(γκ_i + ρz)",
    "p3": "μ_e′(κ_i) = ∂μ₀′/∂(c_W²) = (E[z²σ′(rκ_i + c_W z)] − μ₀′)/(2c_W²)",
    "Sigma_tt": "d × variance of the rows' spike entries t_j",
    "Sigma_te": "d × covariance of t_j and the squared bulk row norms e_j",
    "Sigma_ee": "d × variance of e_j",
    "zw": "Gauss–Hermite weight of ζ-node i",
    "zz": "Gauss–Hermite node z_i of ζ₁ = c + c_W z_i",
}


def derive_onestep_sobolev_system(k: int, nodes: int = NODES, znodes: int = ZETA_NODES) -> System:
    """The Sobolev readout (τ > 0) with k ∈ {1, 2} gradient rows after one step (module docstring of
    :func:`_derive_sobolev`), with a ``nodes``-point rule in κ and a ``znodes``-point rule in ζ₁."""
    if isinstance(k, bool) or not isinstance(k, int) or k not in (1, 2):
        raise UserError(
            f"the Sobolev readout after a step is derived for k = 1 or 2 gradient directions, got k = {k!r}."
        )
    for name, value in (("nodes", nodes), ("znodes", znodes)):
        if isinstance(value, bool) or not isinstance(value, int) or not 4 <= value <= 400:
            raise UserError(f"{name} must be an integer between 4 and 400, got {value!r}.")
    return _derive_sobolev(k, nodes, znodes)


class _Block:
    """A symmetric (k+1)×(k+1) matrix over the rows (0, 1, 2) whose only non-zero entries are the
    (0, 1) block and, for k = 2, the (2, 2) entry (every other entry vanishes by the sign symmetry
    ζ₂ → −ζ₂ of the unshifted direction)."""

    def __init__(self, blk: sp.Matrix, rest: sp.Expr | None) -> None:
        self.blk, self.rest = blk, rest

    @classmethod
    def of(cls, e00: sp.Expr, e01: sp.Expr, e11: sp.Expr, e22: sp.Expr | None) -> _Block:
        return cls(sp.Matrix([[e00, e01], [e01, e11]]), e22)

    @classmethod
    def from_entries(cls, e: dict[str, sp.Expr]) -> _Block:
        """From the entries by index pair ("00", "01", "11" and, for k = 2, "22")."""
        return cls.of(e["00"], e["01"], e["11"], e.get("22"))

    @property
    def r22(self) -> sp.Expr:
        """The (2, 2) entry (k = 2 only)."""
        assert self.rest is not None
        return self.rest

    def entries(self) -> dict[str, sp.Expr]:
        out = {"00": self.blk[0, 0], "01": self.blk[0, 1], "11": self.blk[1, 1]}
        if self.rest is not None:
            out["22"] = self.rest
        return out

    def __matmul__(self, other: _Block) -> _Block:
        rest = None if self.rest is None else self.rest * other.r22
        return _Block(self.blk * other.blk, rest)

    def __add__(self, other: _Block) -> _Block:
        rest = None if self.rest is None else self.rest + other.r22
        return _Block(self.blk + other.blk, rest)

    def __sub__(self, other: _Block) -> _Block:
        rest = None if self.rest is None else self.rest - other.r22
        return _Block(self.blk - other.blk, rest)

    def scale(self, c: sp.Expr) -> _Block:
        return _Block(self.blk * c, None if self.rest is None else self.rest * c)

    def t(self) -> _Block:
        return _Block(self.blk.T, self.rest)

    def inv(self) -> _Block:
        m = self.blk
        det = m[0, 0] * m[1, 1] - m[0, 1] * m[1, 0]
        inv = sp.Matrix([[m[1, 1], -m[0, 1]], [-m[1, 0], m[0, 0]]]) / det
        return _Block(inv, None if self.rest is None else 1 / self.rest)

    def plus_identity(self) -> _Block:
        return _Block(self.blk + sp.eye(2), None if self.rest is None else self.rest + 1)

    def named(self, d: _Definitions, name: str, symmetric: bool = False) -> _Block:
        """Each entry as a definition ``name_rs``."""
        m = self.blk
        e01 = d(f"{name}_01", m[0, 1])
        e10 = e01 if symmetric else d(f"{name}_10", m[1, 0])
        blk = sp.Matrix([[d(f"{name}_00", m[0, 0]), e01], [e10, d(f"{name}_11", m[1, 1])]])
        return _Block(blk, None if self.rest is None else d(f"{name}_22", self.rest))


@cache
def _derive_sobolev(k: int, nodes: int, znodes: int) -> System:
    """The Sobolev readout after one step: a κ-mixture of Gaussian blocks with the diagonal ζ-structure.

    Rows r = 0 (function) and l = 1..k (gradient, weight √τ). The gradient rows are rotated so that the
    common shift c = r·(⟨û, v_l⟩)_l of the readout's ζ lies along the first: ζ̃_j = (1, c + ζ⁰_j1, ζ⁰_j2),
    ζ⁰ ~ N(0, c_W² I_k), and ϖ′ the rotated alignment (eps_H1, a sum over l, does not change). Given κ,
    row r of neuron j is ζ̃_jr(m_r + ā_r(b_jᵀx_⊥ + κu_j) + noise), m = (μ₀, √τμ₀′, …), ā = (μ₁, √τμ₁′, …),
    noise covariances c₀₀ = μ₂², c₀l = √τc_σ, c_ll′ = τμ₂′² (one η′), u = Bû. With D_r = diag(ζ̃_r),
    Ω = BΠBᵀ and the κ-conditional blocks K_rs = ā_rā_sD_rΩD_s + c_rsD_rD_s (α = n/p, λ_c = αλ):

        Γ(κ) = (I + V(κ))⁻¹,  V_rs = ā_rā_s X_rs + c_rs Y_rs,  X_rs = tr(D_rΩD_sQ)/p,  Y_rs = tr(D_rD_sQ)/p,
        Q = (λ_c + Σ Ĉ_rs D_rΩD_s + Σ Ê_rs D_rD_s)⁻¹,  Ĉ_rs = αE_κ[Γ_rsā_rā_s],  Ê_rs = αE_κ[Γ_rs c_rs].

    Q is equivalent to diag q(ζ̃_j), q = 1/(λ_c + ζ̃ᵀAζ̃), A = Ê + c_W²F, F = Ĉ(I + TĈ)⁻¹, with
    T = c_W²ψE_ζ[ζ̃ζ̃ᵀq] (THEORY.md §3 for a general coefficient matrix), so Y = T/(c_W²ψ) and
    X = T(I + ĈT)⁻¹/ψ. The unknowns are T. The shift breaks ζ₁ → −ζ₁, so the (0, 1) entries live;
    the entries with index 2 alone vanish. E_ζ is a Gauss–Hermite rule in z (ζ₁ = c + c_W z) around
    the closed form of the unshifted, symmetric integrand (q with c = 0, A₀₁ = 0 and A₁₁ replaced by A₂₂
    (k = 2) whose moments are G⁽ᵐ⁾_{k/2+j}): the rule integrates only the difference, which vanishes
    without a step; the ζ₂ integral is closed form (G⁽ᵐ⁾_{1/2+j}).

    Means given κ: row r predicts m_rS_r + ā_rκΘ_r (S_r = ζ̃_rᵀw, Θ_r = (D_ru)ᵀw), the label has mean
    h_r = (h, √τϖ′_lh′) and linear part L_r t, L = (h₁, √τϖ′_lh₁′); μ_r = h_r − m_rS_r − ā_rκΘ_r.
    The spikes S_r are fitted at no cost, E_κ[m_r(Γμ)_r] = 0 (S_r = 0 where m_r ≡ 0). The rows' spread (the
    L2 readout above): row j's spike entry t_j and squared bulk norm e_j (d × covariance Σ) move its mean by
    κā_r(t_j − r) + m^e_r(e_j − ē), m^e = ∂m/∂(c_W²) = (μ_e, √τμ_e′, …), so μ_r also loses κā_rΘ^t_r + m^e_rΘ^e_r
    with the channels Θ^x_r = (D_r(x − x̄))ᵀw, generic to Ω: Θ^x = ψYΣ_xyθ̂^y with θ̂^t_r = αE_κ[ā_rκ(Γμ)_r],
    θ̂^e_r = αE_κ[m^e_r(Γμ)_r] (Σ = (c_W², 0, 0): the bulk's own component u = Bû, Θ^t = Tθ̂^t). The teacher
    overlaps χ_r = ϑᵀBᵀD_rw = ψ(Xψ̂)_r with ψ̂_r = αE_κ[ā_r(ΓL)_r].

    Second order: the quadratic forms O_rs = wᵀD_rΩD_sw and I_rs = Σ_j w_j²ζ̃_jrζ̃_js are directional
    derivatives of the first-order traces, O = −dX, I = −dY = −dT/(c_W²ψ), along the source
    δĈ = αE_κ[(ΓẼΓ)_rsā_rā_s] + ψψ̂ψ̂ᵀ, δÊ = αE_κ[(ΓẼΓ)_rsc_rs] + ψΣ_xyθ̂^x_rθ̂^y_s (noise, teacher column
    Bϑ of Ω, the rows' spread), with dF = RδĈRᵀ − F dT F, R = (I + ĈT)⁻¹,
    dT = −c_W²ψE_ζ[ζ̃ζ̃ᵀ(ζ̃ᵀdAζ̃)q²], dA = δÊ + c_W²dF, dX = (dT R − TR(δĈT + ĈdT)R)/ψ. Ẽ(κ) is the
    population error covariance of the rows plus label noise,

        Ẽ_rs = μ_rμ_s + L_rL_s − L_rā_sχ_s − L_sā_rχ_r + ā_rā_sO_rs + c_rsI_rs + N_rs(κ),

    N the conditional label-residual covariance (with Δ_f, τΔ_g). The unknowns O, I and dT enter
    linearly. Outputs: eps_L2 = E_κ Ẽ₀₀ − Δ_f, eps_H1 = Σ_l(E_κ Ẽ_ll − τΔ_g)/(τk),
    train_error_L2 = E_κ(ΓẼΓ)₀₀, train_loss = Σ_r E_κ(ΓẼΓ)_rr + λI₀₀, and eps_grad from the function row's
    overlaps (S₀, Θ₀, Θ^e₀, χ₀, O₀₀, I₀₀) as for the τ = 0 readout (derive/onestep_grad.py; parameters r, γ).
    """
    d = _Definitions()
    n = {f: tuple(sp.Symbol(f"{f}_{i}") for i in range(nodes)) for f in SOBOLEV_NODE_FIELDS}
    zn = {f: tuple(sp.Symbol(f"{f}_{i}") for i in range(znodes)) for f in ZETA_FIELDS}
    w, kap = n["w"], n["k"]
    two = k == 2
    varpi = sp.symbols("varpi_1 varpi_2")[:k]
    rt = sp.sqrt(TAU)
    alpha = d("alpha", PHI / PSI)
    lam_c = d("lam_c", alpha * LAM)
    cW = d("c_W", sp.sqrt(CW2))
    keys = ("00", "01", "11", "22")[: 4 if two else 3]

    def pattern(name: str) -> tuple[_Block, list[sp.Symbol]]:
        syms = [sp.Symbol(f"{name}_{p}") for p in keys]
        return _Block.from_entries(dict(zip(keys, syms))), syms

    T, t_syms = pattern("T")
    QO, qo_syms = pattern("O")
    QI, qi_syms = pattern("I")
    dT, dt_syms = pattern("dT")
    S = sp.symbols(" ".join(f"S_{r}" for r in range(k + 1)))
    Th = sp.symbols(" ".join(f"Theta_{r}" for r in range(k + 1)))
    The = sp.symbols(" ".join(f"Thetae_{r}" for r in range(k + 1)))

    def E(terms: list[sp.Expr]) -> sp.Expr:
        return sp.Add(*[w[i] * terms[i] for i in range(nodes)])

    # per-node coefficients of the rows (index 2 equals index 1 but for the alignment)
    def abar(i: int) -> list[sp.Expr]:
        return [n["s1"][i], rt * n["p1"][i], rt * n["p1"][i]][: k + 1]

    def coef(i: int) -> list[sp.Expr]:
        return [n["s0"][i], rt * n["p0"][i], rt * n["p0"][i]][: k + 1]

    def coef_e(i: int) -> list[sp.Expr]:
        """∂(mean of row r)/∂(c_W²): the functions of the e-channel."""
        return [n["s3"][i], rt * n["p3"][i], rt * n["p3"][i]][: k + 1]

    def noise(i: int) -> _Block:
        return _Block.of(n["s2"][i], rt * n["sx"][i], TAU * n["p2"][i], TAU * n["p2"][i] if two else None)

    def outer(i: int) -> _Block:
        a = abar(i)
        return _Block.of(a[0] ** 2, a[0] * a[1], a[1] ** 2, a[1] ** 2 if two else None)

    # first order: the unknowns T and X (X enters Γ, which enters Ĉ, which enters X)
    Xu, xu_syms = pattern("Xu")
    Y = T.scale(1 / (CW2 * PSI))
    G = []
    for i in range(nodes):
        ao, cn = outer(i), noise(i)
        V = _Block.from_entries(
            {p: ao.entries()[p] * x + cn.entries()[p] * Y.entries()[p] for p, x in zip(keys, xu_syms)}
        )
        G.append(V.plus_identity().inv().named(d, f"Gam{i}", symmetric=True))
    Ch = _Block.from_entries(
        {p: d(f"Chat_{p}", alpha * E([G[i].entries()[p] * outer(i).entries()[p] for i in range(nodes)])) for p in keys}
    )
    Eh = _Block.from_entries(
        {p: d(f"Ehat_{p}", alpha * E([G[i].entries()[p] * noise(i).entries()[p] for i in range(nodes)])) for p in keys}
    )
    R = (Ch @ T).plus_identity().inv().named(d, "R")
    F = (Ch @ R.t()).named(d, "F", symmetric=True)
    Xm = (T @ R).scale(1 / PSI).named(d, "X", symmetric=True)
    A = (Eh + F.scale(CW2)).named(d, "A", symmetric=True)
    a00, a01, a11 = A.blk[0, 0], A.blk[0, 1], A.blk[1, 1]
    a22 = A.rest
    aref = a22 if two else a11
    s = sp.Rational(k, 2)
    a_s = d("a_s", lam_c + a00)
    z_s = d("z_s", 2 * CW2 * aref / a_s)
    Gs = {
        (m, j): d(f"Gs{m}_{j}", scaled_resolvent(s + j, z_s, m)) for m in (1, 2) for j in (0, 1, 2) if m == 2 or j < 2
    }

    def closed(j: int, mm: int, power: int) -> sp.Expr:
        """E[ζ₁^j ζ₂^(2mm) q_sym^power], the symmetric integrand in closed form."""
        if j % 2:
            return sp.Integer(0)
        order = (j + 2 * mm) // 2
        mult = 3 if (j == 4 or mm == 2) else 1
        return mult * CW2**order * Gs[(power, order)] / a_s**power

    zins: dict[str, sp.Expr] = {}

    def inner(power: int, mm: int, a: sp.Expr, ar: sp.Expr, tag: str) -> sp.Expr:
        """E over ζ₂ of ζ₂^(2mm) q^power, q = 1/(a + ar ζ₂²)."""
        if not two:
            return 1 / a**power
        if tag not in zins:
            zins[tag] = d(f"zin_{tag}", 2 * CW2 * ar / a)
        zin = zins[tag]
        mult = 3 if mm == 2 else 1
        return mult * CW2**mm * scaled_resolvent(sp.Rational(1, 2) + mm, zin, power) / a**power

    wanted = [(j, 0, 1) for j in range(3)] + [(j, 0, 2) for j in range(5)]
    if two:
        wanted += [(0, 1, 1)] + [(j, 1, 2) for j in range(3)] + [(0, 2, 2)]
    full: dict[tuple[int, int, int], list[sp.Expr]] = {key: [] for key in wanted}
    sym: dict[tuple[int, int, int], list[sp.Expr]] = {key: [] for key in wanted}
    for i in range(znodes):
        z1 = zn["zz"][i]
        d1 = d(f"d1_{i}", SHIFT + cW * z1)
        af = d(f"af_{i}", lam_c + a00 + 2 * a01 * d1 + a11 * d1**2)
        asym = d(f"as_{i}", a_s + aref * CW2 * z1**2)
        cache_full: dict[tuple[int, int], sp.Expr] = {}
        cache_sym: dict[tuple[int, int], sp.Expr] = {}
        for j, mm, power in wanted:
            if (power, mm) not in cache_full:
                cache_full[(power, mm)] = d(f"inf{power}{mm}_{i}", inner(power, mm, af, a22, f"f{i}"))
                cache_sym[(power, mm)] = d(f"ins{power}{mm}_{i}", inner(power, mm, asym, aref, f"s{i}"))
            full[(j, mm, power)].append(zn["zw"][i] * d1**j * cache_full[(power, mm)])
            if j % 2 == 0:
                sym[(j, mm, power)].append(zn["zw"][i] * (cW * z1) ** j * cache_sym[(power, mm)])
    mom = {
        key: d(f"mom{key[0]}{key[1]}{key[2]}", sp.Add(*full[key]) - sp.Add(*sym[key]) + closed(*key)) for key in wanted
    }
    M2 = {"00": mom[(0, 0, 1)], "01": mom[(1, 0, 1)], "11": mom[(2, 0, 1)], "22": mom.get((0, 1, 1))}
    residuals = [t_syms[j] - CW2 * PSI * M2[p] for j, p in enumerate(("00", "01", "11", "22")[: len(t_syms)])]
    residuals += [xu_syms[j] - Xm.entries()[p] for j, p in enumerate(("00", "01", "11", "22")[: len(xu_syms)])]

    # means
    def gvec(i: int, v: list[sp.Expr]) -> list[sp.Expr]:
        g = G[i]
        out = [g.blk[0, 0] * v[0] + g.blk[0, 1] * v[1], g.blk[1, 0] * v[0] + g.blk[1, 1] * v[1]]
        return out + ([g.r22 * v[2]] if two else [])

    hs = [[n["t0"][i]] + [rt * varpi[l] * n["u0"][i] for l in range(k)] for i in range(nodes)]
    Ls = [[n["t1"][i]] + [rt * varpi[l] * n["u1"][i] for l in range(k)] for i in range(nodes)]
    mu = [
        [
            d(f"mu{r}_{i}", hs[i][r] - coef(i)[r] * S[r] - abar(i)[r] * kap[i] * Th[r] - coef_e(i)[r] * The[r])
            for r in range(k + 1)
        ]
        for i in range(nodes)
    ]
    Gmu = [[d(f"Gmu{r}_{i}", x) for r, x in enumerate(gvec(i, mu[i]))] for i in range(nodes)]
    GL = [gvec(i, Ls[i]) for i in range(nodes)]
    thh = [d(f"thetahat_{r}", alpha * E([abar(i)[r] * kap[i] * Gmu[i][r] for i in range(nodes)])) for r in range(k + 1)]
    psh = [d(f"psihat_{r}", alpha * E([abar(i)[r] * GL[i][r] for i in range(nodes)])) for r in range(k + 1)]
    the = [d(f"thetahat_e_{r}", alpha * E([coef_e(i)[r] * Gmu[i][r] for i in range(nodes)])) for r in range(k + 1)]
    # the channels t − r1 and e − ē1 (of d × covariance Σ) weighted by D_r: Θ^x_s = Σ_r Y_sr ψ Σ_xy θ̂^y_r
    src_t = [SIG_TT * thh[r] + SIG_TE * the[r] for r in range(k + 1)]
    src_e = [SIG_TE * thh[r] + SIG_EE * the[r] for r in range(k + 1)]
    for theta, src in ((Th, src_t), (The, src_e)):
        Ysrc = [Y.blk[0, 0] * src[0] + Y.blk[0, 1] * src[1], Y.blk[1, 0] * src[0] + Y.blk[1, 1] * src[1]]
        Ysrc += [Y.r22 * src[2]] if two else []
        residuals += [theta[r] - PSI * Ysrc[r] for r in range(k + 1)]
    for r in range(k + 1):
        C = d(f"Cspike_{r}", E([coef(i)[r] ** 2 * (G[i].blk[r, r] if r < 2 else G[i].r22) for i in range(nodes)]))
        grad = E([coef(i)[r] * Gmu[i][r] for i in range(nodes)])
        residuals.append(
            sp.Piecewise((-grad / (C + sp.Piecewise((0, sp.Gt(C, 0)), (1, True))), sp.Gt(C, 0)), (S[r], True))
        )
    Xe = Xm.entries()
    chi = [
        d("chi_0", PSI * (Xe["00"] * psh[0] + Xe["01"] * psh[1])),
        d("chi_1", PSI * (Xe["01"] * psh[0] + Xe["11"] * psh[1])),
    ]
    if two:
        chi.append(d("chi_2", PSI * Xe["22"] * psh[2]))

    # second order
    def Etilde(i: int) -> _Block:
        a, L, m = abar(i), Ls[i], mu[i]
        t0, t1, t2, u0, u1, u2, tx = (n[f][i] for f in ("t0", "t1", "t2", "u0", "u1", "u2", "tx"))
        N = {
            "00": t2 - t0**2 - t1**2 + DELTA_F,
            "01": rt * varpi[0] * (tx - t0 * u0 - t1 * u1),
            "11": TAU * (varpi[0] ** 2 * (u2 - u0**2 - u1**2) + DELTA_G),
        }
        if two:
            N["22"] = TAU * (varpi[1] ** 2 * (u2 - u0**2 - u1**2) + DELTA_G)
        ao, cn, qo, qi = outer(i).entries(), noise(i).entries(), QO.entries(), QI.entries()
        out = {}
        for p in N:
            r, c = int(p[0]), int(p[1])
            out[p] = (
                m[r] * m[c]
                + L[r] * L[c]
                - L[r] * a[c] * chi[c]
                - L[c] * a[r] * chi[r]
                + ao[p] * qo[p]
                + cn[p] * qi[p]
                + N[p]
            )
        return _Block.from_entries({p: d(f"Et{p}_{i}", out[p]) for p in out})

    Et = [Etilde(i) for i in range(nodes)]
    Wt = [(G[i] @ Et[i] @ G[i]).named(d, f"W{i}", symmetric=True) for i in range(nodes)]

    def source(coeffs: list[_Block], name: str) -> dict[str, sp.Expr]:
        return {p: alpha * E([Wt[i].entries()[p] * coeffs[i].entries()[p] for i in range(nodes)]) for p in keys}

    Cn, En = source([outer(i) for i in range(nodes)], "C2"), source([noise(i) for i in range(nodes)], "E2")
    pair = {"00": (0, 0), "01": (0, 1), "11": (1, 1), "22": (2, 2)}
    dC = _Block.from_entries({p: d(f"dC_{p}", Cn[p] + PSI * psh[pair[p][0]] * psh[pair[p][1]]) for p in keys})
    dE = _Block.from_entries(
        {
            p: d(f"dE_{p}", En[p] + PSI * (thh[pair[p][0]] * src_t[pair[p][1]] + the[pair[p][0]] * src_e[pair[p][1]]))
            for p in keys
        }
    )
    dF = (R @ dC @ R.t() - F @ dT @ F).named(d, "dF", symmetric=True)
    dA = (dE + dF.scale(CW2)).named(d, "dA", symmetric=True)
    da = dA.entries()
    # E[ζ̃_rζ̃_s (ζ̃ᵀ dA ζ̃) q²] for the pattern entries (r, s): ζ₁ powers j, ζ₂² powers mm

    def jvp(j: int, mm: int) -> sp.Expr:
        terms = da["00"] * mom[(j, mm, 2)] + 2 * da["01"] * mom[(j + 1, mm, 2)] + da["11"] * mom[(j + 2, mm, 2)]
        if two:
            terms += da["22"] * mom[(j, mm + 1, 2)]
        return -CW2 * PSI * terms

    jv = {"00": jvp(0, 0), "01": jvp(1, 0), "11": jvp(2, 0)}
    if two:
        jv["22"] = jvp(0, 1)
    residuals += [dt_syms[j] - jv[p] for j, p in enumerate(keys)]
    dX = ((dT @ R) - (T @ R @ (dC @ T + Ch @ dT) @ R)).scale(1 / PSI)
    residuals += [qo_syms[j] + dX.entries()[p] for j, p in enumerate(keys)]
    residuals += [qi_syms[j] + dT.entries()[p] / (CW2 * PSI) for j, p in enumerate(keys)]

    eps_rows = [
        d(f"eps_row{r}", E([(Et[i].blk[r, r] if r < 2 else Et[i].r22) for i in range(nodes)])) for r in range(k + 1)
    ]
    train_rows = [E([(Wt[i].blk[r, r] if r < 2 else Wt[i].r22) for i in range(nodes)]) for r in range(k + 1)]
    overlaps = {"m": S[0], "theta": Th[0], "theta_e": The[0], "chi": chi[0], "q_1": QO.blk[0, 0], "q_2": QI.blk[0, 0]}
    eps_grad, _ = gradient_errors(d, E, n, overlaps, CW2)
    outputs = {
        "eps_L2": eps_rows[0] - DELTA_F,
        "eps_H1": sp.Add(*[eps_rows[r] - TAU * DELTA_G for r in range(1, k + 1)]) / (TAU * k),
        "eps_grad": eps_grad,
        "train_error_L2": train_rows[0],
        "train_loss": sp.Add(*train_rows) + LAM * QI.blk[0, 0],
        "m": S[0],
        "theta": Th[0],
        "theta_e": The[0],
        "chi": chi[0],
        "q_1": QO.blk[0, 0],
        "q_2": QI.blk[0, 0],
    }
    unknowns = (
        tuple(t_syms)
        + tuple(xu_syms)
        + tuple(Th)
        + tuple(The)
        + tuple(S)
        + tuple(dt_syms)
        + tuple(qo_syms)
        + tuple(qi_syms)
    )
    scalars = (LAM, PSI, PHI, DELTA_F, DELTA_G, TAU, CW2, SHIFT, SIG_TT, SIG_TE, SIG_EE, R_SPIKE, GAMMA) + tuple(varpi)
    parameters = (
        scalars + tuple(s_ for f in SOBOLEV_NODE_FIELDS for s_ in n[f]) + tuple(s_ for f in ZETA_FIELDS for s_ in zn[f])
    )
    meaning = {str(q): (GRAD_PARAMETER_MEANING | SOBOLEV_PARAMETER_MEANING)[str(q)] for q in scalars}
    for f in SOBOLEV_NODE_FIELDS:
        meaning.update({f"{f}_{i}": SOBOLEV_PARAMETER_MEANING[f].replace("κ_i", f"κ_{i}") for i in range(nodes)})
    for f in ZETA_FIELDS:
        meaning.update({f"{f}_{i}": SOBOLEV_PARAMETER_MEANING[f].replace("node i", f"node {i}") for i in range(znodes)})
    return System(
        name=f"onestep_sobolev_readout_k{k}_n{nodes}_z{znodes}",
        unknowns=unknowns,
        parameters=parameters,
        residuals=tuple(residuals),
        outputs=outputs,
        definitions=dict(d.items),
        latex_names=LATEX_NAMES | {"tau": r"\tau", "zeta_shift": "c"},
        branch="ridge",
        meta={
            "k": k,
            "nodes": nodes,
            "znodes": znodes,
            "readout": "sobolev",
            "node_fields": list(SOBOLEV_NODE_FIELDS),
            "zeta_fields": list(ZETA_FIELDS),
            "parameter_meaning": meaning,
            "jacobian": "differences",
        },
    )
