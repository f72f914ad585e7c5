"""Symbolic derivation of the asymptotic fixed point and test errors of Sobolev training, any k.

The derivation follows :mod:`sobolev_rf.numeric.asymptotics` step by step, with every Hermite
coefficient, ratio, noise and alignment entry a symbol, and with the symmetry between the k gradient
directions built in (V_1 = … = V_k, Ω_1 = … = Ω_k). Index a = 0 is the function row, a = l ≥ 1 a
gradient row; R = {0} for τ = 0, {0, …, k} for τ = 1; Γ = diag(g_a) with g_a = 1/(1 + V_a) on R and 0
off R.

First order. The coefficient matrices of Q⁻¹ = Σ E_ab D_aD_b + Σ C_ab D_aWD_b are diagonal,
e_0 = g_0κ_*² + λ, e_l = g_lκ_*′², c_0 = g_0κ₁², c_l = g_lκ₁′², and with P_a = 1/(1 + Ω_a c_a),
F_a = c_a P_a, A = diag(a_0, a_1, …) = E + F, q(ζ) = 1/(a_0 + a_1‖ζ‖²):

    Ω_0 = ψ E[q],   Ω_l = ψ E[q ζ_l²],   V_r = (ψ/φ)(κ̄_r² T^C_r + c_rr T^E_r),
    T^E_a = Ω_a/ψ,  T^C_a = Ω_a P_a/ψ,

where E[q] = H/(2a_1) and E[q‖ζ‖²] = (1 − yH)/a_1 with y = a_0/(2a_1), H = H_{k/2}(y) (for τ = 0,
a_1 = 0 and q = 1/a_0). The 4-moments E[q² ζ̃_aζ̃_aζ̃_cζ̃_c] are m4_0 (a = c = 0), m4_1 (one index 0),
3·m4_2 (a = c = l) and m4_2 (a = l ≠ c = m), with m4_0 = E[q²], m4_1 = E[q²‖ζ‖²]/k,
m4_2 = E[q²‖ζ‖⁴]/(k(k+2)).

Second order. Every quantity needed (q_s, q_w, the diagonal of S) involves only diagonal traces,
and by parity a diagonal source (δE, δC) moves only the diagonal of Ω. Implicit differentiation gives
δΩ_aa = x_a solving x_a − ψ Σ_c m4_aacc F_c² x_c = r_a, r_a = −ψ Σ_c m4_aacc (δE_c + P_c² δC_c),
which the exchangeability of the directions reduces to a 2×2 system in (x_0, Σ_l x_l) and then

    x_l = (r_l + ψ(m4_1 F_0² x_0 + m4_2 F_1² Σ_m x_m)) / (1 − 2ψ m4_2 F_1²),
    δT^E_a = x_a/ψ,   δT^C_a = P_a²(x_a − Ω_a² δC_a)/ψ.

The mean source is δC = uuᵀ with u_a = g_aγ_aκ̄_a (γ = (μ₁, ϖ_lμ₁′)); the noise source of S is
δE_a = g_a²S_aa c_aa, δC_a = g_a²S_aaκ̄_a². With M_r = κ̄_rΩ_rP_ru_r, m = Ω_0P_0u_0,
S⁰_rr = (γ_r − M_r)² + N_rr − M_r² + t_r² and q_rr = E[wᵀK_rr w] (mean part with weight −ψ,
noise part with −ψ/φ), the diagonal of S solves S_rr = S⁰_rr + q_rr, again a 2×2 system by
exchangeability. Then the population error of row r is S_rr minus its label noise, and

    eps_grad = μ₀′² + μ₁′² + μ_*′² − 2μ₁κ₁m + κ₁²q_s + (κ₁′² + κ_*′²)q_w,
    train_error_L2 = g_0²S_00,   train_loss = Σ_{r∈R} g_r²S_rr + λq_w,

each an explicit quadratic form in ϖ through the S_l. The residual correlations c_σ and c_φ enter only
off-diagonal entries (K_0l, N_0l), which none of these quantities reads: they remain parameters of the
system but do not appear in it.
"""
from __future__ import annotations

from functools import lru_cache

import sympy as sp

from .errors import UserError
from .special import GammaResolvent
from .system import System

#: Symbols of the Hermite coefficients of σ (κ) and of the teacher φ (μ), in the order of
#: ``sobolev_rf.numeric.asymptotics.coefficients``: (·₀, ·₁, ·_*, ·₀′, ·₁′, ·_*′, cross).
KAPPA = sp.symbols("kappa0 kappa1 kappa_s kappa0p kappa1p kappa_sp c_sigma")
MU = sp.symbols("mu0 mu1 mu_s mu0p mu1p mu_sp c_phi")
LAM, PSI, PHI, DELTA_F, DELTA_G = sp.symbols("lam psi phi Delta_f Delta_g")
#: ``derive_system`` branches: λ > 0, and the two branches of λ → 0⁺ on either side of p = (1 + τk)n.
BRANCHES = ("ridge", "interpolating", "underparameterised")


#: LaTeX forms of the parameter symbols whose SymPy names do not print as the usual notation.
LATEX_NAMES = {
    "kappa0": r"\kappa_0", "kappa1": r"\kappa_1", "kappa_s": r"\kappa_*", "kappa0p": r"\kappa_0'",
    "kappa1p": r"\kappa_1'", "kappa_sp": r"\kappa_*'", "c_sigma": r"c_\sigma",
    "mu0": r"\mu_0", "mu1": r"\mu_1", "mu_s": r"\mu_*", "mu0p": r"\mu_0'", "mu1p": r"\mu_1'",
    "mu_sp": r"\mu_*'", "c_phi": r"c_\phi", "lam": r"\lambda", "H": r"\mathcal{H}", "H_2": r"\mathcal{H}_2",
    "m4_0": r"m^{(4)}_0", "m4_1": r"m^{(4)}_1", "m4_2": r"m^{(4)}_2",
}


def alignment_symbols(k: int) -> tuple[sp.Symbol, ...]:
    """ϖ_1, …, ϖ_k."""
    return tuple(sp.Symbol(f"varpi_{l}") for l in range(1, k + 1))


class _Definitions:
    """Ordered intermediate quantities: each becomes a symbol unless it is a number or a symbol."""

    def __init__(self) -> None:
        self.items: dict[str, sp.Expr] = {}

    def __call__(self, name: str, expr: sp.Expr) -> sp.Expr:
        expr = sp.sympify(expr)
        if expr.is_Atom:
            return expr
        if name in self.items:
            raise ValueError(f"definition {name} given twice")
        self.items[name] = expr
        return sp.Symbol(name)


@lru_cache(maxsize=None)
def derive_system(k: int, tau: int, branch: str = "ridge") -> System:
    """The fixed point and the outputs of Sobolev (τ = 1) or L2 (τ = 0) training with k directions.

    ``branch``: ``"ridge"`` (λ > 0, the unknowns V_r and Ω_a), or one of the two branches of the limit
    λ → 0⁺ in the scaled variables L = λ + g_0, α = λ/L, β_r = g_r/L, Ω̃_a = LΩ_a (so that Q = Q̃/L),
    in which the fixed point g_r = 1/(1 + V_r) reads L = (1 − β_r ṽ_r)/β_r for every r ∈ R, with
    ṽ_r = (κ̄_r²Ω̃_rP_r + c_rrΩ̃_r)/φ the scaled V_r, β_0 = 1 − α and αL = λ = 0:

    * ``"interpolating"`` (more parameters than training rows, p > (1 + τk)n): L = 0, 0 < α < 1, so
      α = 1 − 1/ṽ_0 and β_l = 1/ṽ_l; training residuals vanish (train_loss = 0);
    * ``"underparameterised"`` (p < (1 + τk)n): α = 0, β_0 = 1, L = 1 − ṽ_0 > 0 and
      β_l = 1/(1 − ṽ_0 + ṽ_l); training residuals are L times the scaled ones.

    Everything else (second order, outputs) is invariant under the scaling and reads the same with
    (g, λ, Ω) → (β, α, Ω̃); the branches meet at p = (1 + τk)n, where the errors diverge.
    """
    if isinstance(k, bool) or not isinstance(k, int) or k < 0:
        raise UserError(f"k must be a non-negative integer, got {k!r}.")
    if tau not in (0, 1):
        raise UserError(f"tau must be 0 or 1, got {tau!r}.")
    if branch not in BRANCHES:
        raise UserError(f"branch must be one of {', '.join(BRANCHES)}, got {branch!r}.")
    k0, k1, ks, k0p, k1p, ksp, _ = KAPPA
    m0, m1, ms, m0p, m1p, msp, _ = MU
    vp = alignment_symbols(k)
    sobolev = tau == 1 and k >= 1
    d = _Definitions()
    idx = range(k + 1)
    R = list(idx) if sobolev else [0]

    # --- unknowns and first order -------------------------------------------------------------
    O0 = sp.Symbol("Omega_0")
    O1 = sp.Symbol("Omega_1") if k else None
    if branch == "ridge":
        V0, V1 = sp.Symbol("V_0"), sp.Symbol("V_1") if sobolev else None
        first = [V0] + ([V1] if sobolev else [])
        g0, g1, ridge = 1 / (1 + V0), 1 / (1 + V1) if sobolev else None, LAM
    else:
        alpha = sp.Symbol("alpha") if branch == "interpolating" else sp.Integer(0)
        B1 = sp.Symbol("beta_1") if sobolev else None
        first = ([alpha] if branch == "interpolating" else []) + ([B1] if sobolev else [])
        g0, g1, ridge = 1 - alpha, B1, alpha
    g = [d("g_0", g0)] + [d("g_1", g1) if sobolev else sp.Integer(0)] * k
    kb = [k1] + [k1p] * k                      # κ̄_a
    cm = [ks**2] + [ksp**2] * k                # c_aa
    c = [d("c_0", g[0] * kb[0] ** 2)] + ([d("c_1", g[1] * kb[1] ** 2)] * k if k else [])
    e = [d("e_0", g[0] * cm[0] + ridge)] + ([d("e_1", g[1] * cm[1])] * k if k else [])
    Om = [O0] + [O1] * k
    P = [d("P_0", 1 / (1 + O0 * c[0]))] + ([d("P_1", 1 / (1 + O1 * c[1]))] * k if k else [])
    F = [d("F_0", c[0] * P[0])] + ([d("F_1", c[1] * P[1])] * k if k else [])
    a0 = d("a_0", e[0] + F[0])
    if sobolev:
        a1 = d("a_1", e[1] + F[1])
        s = sp.Rational(k, 2)
        y = d("y", a0 / (2 * a1))
        H = d("H", GammaResolvent(s, y))
        H2 = d("H_2", (1 - (y + s - 1) * H) / y)          # E[1/(t+y)²]
        q1 = [H / (2 * a1), (1 - y * H) / a1]                # E[q], E[q‖ζ‖²]
        q2 = [H2 / (4 * a1**2), (H - y * H2) / (2 * a1**2), (1 - 2 * y * H + y**2 * H2) / a1**2]
    else:
        q1 = [1 / a0, sp.Integer(k) / a0]
        q2 = [1 / a0**2, sp.Integer(k) / a0**2, sp.Integer(k * (k + 2)) / a0**2]
    unknowns = first + [O0] + ([O1] if k else [])
    v = [(kb[a] ** 2 * Om[a] * P[a] + cm[a] * Om[a]) / PHI for a in (0, 1) if a in R]   # V_r (scaled: ṽ_r)
    if branch == "ridge":
        residuals = [x - vr for x, vr in zip(first, v)]
        scale = sp.Integer(1)
    elif branch == "interpolating":
        residuals = [alpha - (1 - 1 / v[0])] + ([B1 - 1 / v[1]] if sobolev else [])
        scale = sp.Integer(0)
    else:
        residuals = [B1 - 1 / (1 - v[0] + v[1])] if sobolev else []
        scale = d("L", 1 - v[0])
    residuals.append(O0 - PSI * q1[0])
    if k:
        residuals.append(O1 - PSI * q1[1] / k)

    # --- 4-moments and the diagonal implicit-differentiation solve ------------------------------
    A4 = d("m4_0", q2[0])
    B4 = d("m4_1", q2[1] / k) if k else sp.Integer(0)
    O4 = d("m4_2", q2[2] / (k * (k + 2))) if k else sp.Integer(0)
    if k:
        L11 = 1 - PSI * A4 * F[0] ** 2
        L12 = -PSI * B4 * F[1] ** 2
        L21 = -PSI * k * B4 * F[0] ** 2
        L22 = 1 - PSI * (k + 2) * O4 * F[1] ** 2
        det = d("L_det", L11 * L22 - L12 * L21)
        rho = [[d("rho_00", L22 / det), d("rho_0s", -L12 / det)],
               [d("rho_s0", -L21 / det), d("rho_ss", L11 / det)]]
        rho_l = d("rho_l", 1 / (1 - 2 * PSI * O4 * F[1] ** 2))
    else:
        rho = [[d("rho_00", 1 / (1 - PSI * A4 * F[0] ** 2))]]

    def directional(dE: list[sp.Expr], dC: list[sp.Expr], name: str | None) -> tuple[list, list]:
        """Diagonal (δT^E_a, δT^C_a) along a diagonal source; ``name`` prefixes definitions (None: inline)."""
        def keep(label: str, expr: sp.Expr) -> sp.Expr:
            return expr if name is None else d(f"{name}_{label}", expr)

        w = [keep(f"w_{a}", dE[a] + P[a] ** 2 * dC[a]) for a in idx]
        wsum = keep("wsum", sum(w[1:]))
        r = [-PSI * (A4 * w[0] + B4 * wsum)] + [-PSI * (B4 * w[0] + 2 * O4 * w[l] + O4 * wsum) for l in range(1, k + 1)]
        if k:
            rsum = -PSI * (k * B4 * w[0] + (k + 2) * O4 * wsum)
            x0 = keep("x0", rho[0][0] * r[0] + rho[0][1] * rsum)
            xs = keep("xs", rho[1][0] * r[0] + rho[1][1] * rsum)
            x = [x0] + [(r[l] + PSI * (B4 * F[0] ** 2 * x0 + O4 * F[1] ** 2 * xs)) * rho_l for l in range(1, k + 1)]
        else:
            x = [keep("x0", rho[0][0] * r[0])]
        dTE = [x[a] / PSI for a in idx]
        dTC = [P[a] ** 2 * (x[a] - Om[a] ** 2 * dC[a]) / PSI for a in idx]
        return dTE, dTC

    # --- mean part --------------------------------------------------------------------------
    gam = [m1] + [v * m1p for v in vp]
    u = [g[a] * gam[a] * kb[a] for a in idx]
    dTEm, dTCm = directional([sp.Integer(0)] * (k + 1), [ua**2 for ua in u], "mean")
    M = [d("M_0", kb[0] * Om[0] * P[0] * u[0])] + [d(f"M_{l}", kb[l] * Om[l] * P[l] * u[l]) for l in range(1, k + 1)]
    m = d("m", Om[0] * P[0] * u[0])
    noise = [DELTA_F] + [DELTA_G] * k
    N = [ms**2 + DELTA_F] + [v**2 * msp**2 + DELTA_G for v in vp]
    t = [sp.Piecewise((m0, sp.Eq(k0, 0)), (0, True))] + [sp.Piecewise((v * m1, sp.Eq(k0p, 0)), (0, True)) for v in vp]
    b = [d(f"b_{r}", (gam[r] - M[r]) ** 2 + N[r] - M[r] ** 2 + t[r] ** 2
           - PSI * (cm[r] * dTEm[r] + kb[r] ** 2 * dTCm[r])) for r in R]

    # --- the linear system for diag(S): probe its coefficients with symbolic S ------------------
    sig = [sp.Dummy(f"S{a}") for a in idx]

    def noise_source(S: list[sp.Expr]) -> tuple[list, list]:
        return ([g[a] ** 2 * S[a] * cm[a] for a in idx], [g[a] ** 2 * S[a] * kb[a] ** 2 for a in idx])

    def noise_map(dTE: list, dTC: list, r: int) -> sp.Expr:
        return -(PSI / PHI) * (cm[r] * dTE[r] + kb[r] ** 2 * dTC[r])

    pdTE, pdTC = directional(*noise_source([sig[a] if a in R else sp.Integer(0) for a in idx]), None)
    out0 = noise_map(pdTE, pdTC, 0)
    if sobolev:
        out1 = noise_map(pdTE, pdTC, 1)
        al00 = d("alpha_00", sp.diff(out0, sig[0]))
        al01 = d("alpha_0l", sp.diff(out0, sig[1]))
        al10 = d("alpha_l0", sp.diff(out1, sig[0]))
        beta = d("beta", sp.diff(out1, sig[2])) if k >= 2 else sp.Integer(0)
        delta = d("delta", sp.diff(out1, sig[1]) - beta)
        bsum = sum(b[1:])
        det2 = d("S_det", (1 - al00) * (1 - delta - k * beta) - k * al01 * al10)
        S0 = d("S_0", ((1 - delta - k * beta) * b[0] + al01 * bsum) / det2)
        Ssum = d("S_sum", ((1 - al00) * bsum + k * al10 * b[0]) / det2)
        S = [S0] + [d(f"S_{l}", (b[l] + al10 * S0 + beta * Ssum) / (1 - delta)) for l in range(1, k + 1)]
    else:
        al00 = d("alpha_00", sp.diff(out0, sig[0]))
        S = [d("S_0", b[0] / (1 - al00))] + [sp.Integer(0)] * k

    # --- outputs ----------------------------------------------------------------------------
    dTEn, dTCn = directional(*noise_source(S), "noise")
    q_s = d("q_s", -PSI * dTCm[0] - (PSI / PHI) * dTCn[0])
    q_w = d("q_w", -PSI * dTEm[0] - (PSI / PHI) * dTEn[0])
    outputs: dict[str, sp.Expr] = {"eps_L2": S[0] - noise[0]}
    if k:
        if sobolev:
            outputs["eps_H1"] = sum(S[l] - noise[l] for l in range(1, k + 1)) / k
        else:
            outputs["eps_H1"] = sum(v**2 * (m1 - k1 * m) ** 2 + k1**2 * (q_s - m**2) + v**2 * (m1p**2 + msp**2)
                                    + (k1p**2 + ksp**2) * q_w for v in vp) / k
    outputs["eps_grad"] = (m0p**2 + m1p**2 + msp**2) - 2 * m1 * k1 * m + k1**2 * q_s + (k1p**2 + ksp**2) * q_w
    outputs["train_loss"] = scale**2 * sum(g[r] ** 2 * S[r] for r in R) + (LAM * q_w if branch == "ridge" else 0)
    outputs["train_error_L2"] = scale**2 * g[0] ** 2 * S[0]
    outputs.update({"m": m, "q_s": q_s, "q_w": q_w})
    parameters = (*KAPPA, *MU, LAM, PSI, PHI, DELTA_F, DELTA_G, *vp)
    suffix = "" if branch == "ridge" else f"_{branch}"
    return System(name=f"sobolev_rf_k{k}_tau{tau}{suffix}", unknowns=tuple(unknowns), parameters=parameters,
                  residuals=tuple(residuals), outputs=outputs, definitions=dict(d.items),
                  latex_names=LATEX_NAMES)
