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
train_error_L2 = E_κ[g²(e + Δ_f)].

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
from .saddle import _Definitions
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
    return {f: tuple(sp.Symbol(f"{f}_{i}") for i in range(nodes)) for f in NODE_FIELDS}


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
    outputs = {
        "eps_L2": E(e),
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
    parameters = (LAM, PSI, PHI, DELTA_F, CW2, BULK, SIG_TT, SIG_TE, SIG_EE) + tuple(
        s for f in NODE_FIELDS for s in n[f]
    )
    meaning = {str(q): PARAMETER_MEANING[str(q)] for q in parameters[:9]}
    meaning.update(
        {f"{f}_{i}": PARAMETER_MEANING[f].replace("κ_i", f"κ_{i}") for f in NODE_FIELDS for i in range(nodes)}
    )
    return System(
        name=f"onestep_l2_readout_n{nodes}",
        unknowns=(V1, V2),
        parameters=parameters,
        residuals=tuple(residuals),
        outputs=outputs,
        definitions=dict(d.items),
        latex_names=LATEX_NAMES,
        branch="ridge",
        meta={"nodes": nodes, "readout": "l2", "node_fields": list(NODE_FIELDS), "parameter_meaning": meaning},
    )
