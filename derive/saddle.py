"""Symbolic derivation of the asymptotic fixed point and test errors of Sobolev training, any k.

The model (MODEL.md). With ψ = p/d, W = ΘᵀΘ/d, D₀ = I, D_l = diag(ζ_l) and ζ̃ = (1, ζ₁, …, ζ_k), the
Gaussian-equivalent design of one sample is a (k+1)×p block whose rows r ∈ R (R = {0} for τ = 0,
{0, …, k} for τ > 0) have covariance blocks K_rs = κ̄_r κ̄_s D_r W D_s + c_rs D_r D_s, with κ̄ = (κ₁, √τκ₁′, …),
c₀₀ = κ_*², c_ll = τκ_*′² (one η′ shared by all l; c₀l = √τ c_σ), cross-covariance with ω = ⟨θ₀, x⟩
equal to κ̄_r D_r Θᵀθ₀/√d, and targets γω + ν, γ = (μ₁, √τϖ₁μ₁′, …, √τϖ_kμ₁′): the gradient rows and their
labels carry the weight √τ of the loss, so Δ_g enters as τΔ_g. The rank-one means κ₀1 and κ₀′ζ_l are
spikes, fitted at no cost when their κ is non-zero (otherwise they leave the residual t = μ₀ resp.
ϖ_lμ₁). Ridge regression on n such blocks is described by the replica-symmetric (leave-one-out) fixed
point with matrix order parameters over R: Γ = (I + V)⁻¹, Q = (λ + Σ Γ_rs K_rs)⁻¹, V_rs = (1/n) tr(K_rs Q),
E[w] = Q Σ_r (Γγ)_r φ_r, S = (γ − M)(γ − M)ᵀ + N + q − MMᵀ + ttᵀ with M_r = φ_rᵀE[w] and q_rs = E[wᵀK_rs w].
Normalised traces of Q are those of the diagonal matrix q(ζ) = 1/(ζ̃ᵀAζ̃) (THEORY.md §3), whose
ζ-expectations reduce to H_s(y) = E_{t∼Gamma(s)}[1/(t+y)], s = k/2; second-order traces are implicit
derivatives of first-order ones.

The derivation builds in the symmetry between the k directions (V_1 = … = V_k, Ω_1 = … = Ω_k) and the
rotation invariance of V's law: every error depends on ϖ only through its mean square
ϖ̄² = ‖ϖ‖²/k. A quantity of one direction l is an expression in ϖ_l that is affine in ϖ_l², so its sum
over l is k times its value at ϖ_l = √ϖ̄²; no expression grows with k, which enters as a number
(through s = k/2 and the combinatorial factors). Index a = 0 is the function row, a = l ≥ 1 a
gradient row; Γ = diag(g_a) with g_a = 1/(1 + V_a) on R and 0 off R.

First order. The coefficient matrices of Q⁻¹ = Σ E_ab D_aD_b + Σ C_ab D_aWD_b are diagonal,
e_0 = g_0κ_*² + λ, e_l = g_lκ_*′², c_0 = g_0κ₁², c_l = g_lκ₁′², and with P_a = 1/(1 + Ω_a c_a),
F_a = c_a P_a, A = diag(a_0, a_1, …) = E + F, q(ζ) = 1/(a_0 + a_1‖ζ‖²):

    Ω_0 = ψ E[q],   Ω_l = ψ E[q ζ_l²],   V_r = (ψ/φ)(κ̄_r² T^C_r + c_rr T^E_r),
    T^E_a = Ω_a/ψ,  T^C_a = Ω_a P_a/ψ,

where, with z = 2a_1/a_0, s = k/2 and G⁽ᵐ⁾_s(z) = E_{t∼Gamma(s)}[(1 + zt)^{−m}] = y^m H⁽ᵐ⁾_s(y) at y = 1/z
(:func:`~sobolev_rf.derive.special.scaled_resolvent`), E[q] = G_s/a_0 and E[q‖ζ‖²] = k G_{s+1}/a_0 (from
t·Gamma(s) = s·Gamma(s+1)). The 4-moments E[q² ζ̃_aζ̃_aζ̃_cζ̃_c] are m4_0 (a = c = 0), m4_1 (one index 0),
3·m4_2 (a = c = l) and m4_2 (a = l ≠ c = m), with m4_0 = E[q²] = G⁽²⁾_s/a_0², m4_1 = E[q²‖ζ‖²]/k =
G⁽²⁾_{s+1}/a_0², m4_2 = E[q²‖ζ‖⁴]/(k(k+2)) = G⁽²⁾_{s+2}/a_0². Written in z, no moment loses digits as
a_1 → 0, and a_1 = 0 is allowed: for τ = 0 (no gradient rows), and for an affine σ (σ′ constant,
κ₁′ = κ_*′ = 0), whose gradient rows are the spikes √τκ₀′ζ_l alone, with no fluctuating part (V_l = 0,
g_l = 1); then q = 1/a_0 (G = 1) and the spikes fix ζ_lᵀw = ϖ_lμ₁/κ₀′ at no cost: the function-row
quantities are those of τ = 0 training and S_ll = τ(ϖ_l²(μ₁′² + μ_*′²) + Δ_g).

Second order. Every quantity needed (q_s, q_w, the diagonal of S) involves only diagonal traces,
and by parity a diagonal source (δE, δC) moves only the diagonal of Ω. Implicit differentiation gives
δΩ_aa = x_a solving x_a − ψ Σ_c m4_aacc F_c² x_c = r_a, r_a = −ψ Σ_c m4_aacc (δE_c + P_c² δC_c),
which the exchangeability of the directions reduces to a 2×2 system in (x_0, Σ_l x_l) and then

    x_l = (r_l + ψ(m4_1 F_0² x_0 + m4_2 F_1² Σ_m x_m)) / (1 − 2ψ m4_2 F_1²),
    δT^E_a = x_a/ψ,   δT^C_a = P_a²(x_a − Ω_a² δC_a)/ψ.

The mean source is δC = uuᵀ with u_a = g_aγ_aκ̄_a; the noise source of S is
δE_a = g_a²S_aa c_aa, δC_a = g_a²S_aaκ̄_a². With M_r = κ̄_rΩ_rP_ru_r, m = Ω_0P_0u_0,
S⁰_rr = (γ_r − M_r)² + N_rr − M_r² + t_r² and q_rr = E[wᵀK_rr w] (mean part with weight −ψ,
noise part with −ψ/φ), the diagonal of S solves S_rr = S⁰_rr + q_rr, again a 2×2 system by
exchangeability. Then the population error of row r is S_rr minus its label noise (divided by τ for
a gradient row), and

    eps_grad = μ₀′² + μ₁′² + μ_*′² − 2μ₁κ₁m + κ₁²q_s + (κ₁′² + κ_*′²)q_w,
    train_error_L2 = g_0²S_00,   train_loss = Σ_{r∈R} g_r²S_rr + λq_w,

each an explicit quadratic form in ϖ through the S_l. The residual correlations c_σ and c_φ enter only
off-diagonal entries (K_0l, N_0l), which none of these quantities reads: they remain parameters of the
system but do not appear in it.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import sympy as sp

from .errors import UserError
from .special import scaled_resolvent
from .system import System

#: Symbols of the Hermite coefficients of σ (κ) and of the teacher φ (μ):
#: (·₀, ·₁, ·_*, ·₀′, ·₁′, ·_*′, cross).
KAPPA = sp.symbols("kappa0 kappa1 kappa_s kappa0p kappa1p kappa_sp c_sigma")
MU = sp.symbols("mu0 mu1 mu_s mu0p mu1p mu_sp c_phi")
LAM, PSI, PHI, DELTA_F, DELTA_G = sp.symbols("lam psi n_d Delta_f Delta_g")
#: The Sobolev weight τ > 0 (a parameter of the τ > 0 systems; τ = 0 is a system of its own).
TAU = sp.Symbol("tau")
#: ϖ̄² = ‖ϖ‖²/k, the mean square alignment, and ϖ_l, the alignment of the direction whose per-direction
#: order parameters (M_l, S_l) are reported.
VARPI2, VARPI_L = sp.symbols("varpi2 varpi_l")
#: σ affine (σ′ constant): κ₁′ = κ_*′ = 0, the gradient rows are spikes without a fluctuating part.
AFFINE = sp.And(sp.Eq(KAPPA[4], 0), sp.Eq(KAPPA[5], 0))
#: ``derive_system`` branches: λ > 0, and the two branches of λ → 0⁺ on either side of p = (1 + k)n (τ > 0)
#: resp. p = n (τ = 0).
BRANCHES = ("ridge", "interpolating", "underparameterised")
#: What each parameter symbol is, in the words of ``ModelParams`` (the numeric layer fills them by name).
PARAMETER_MEANING = {
    "kappa0": "activation κ₀",
    "kappa1": "activation κ₁",
    "kappa_s": "activation κ_*",
    "kappa0p": "activation κ₀′",
    "kappa1p": "activation κ₁′",
    "kappa_sp": "activation κ_*′",
    "c_sigma": "activation c_σ",
    "mu0": "teacher μ₀",
    "mu1": "teacher μ₁",
    "mu_s": "teacher μ_*",
    "mu0p": "teacher μ₀′",
    "mu1p": "teacher μ₁′",
    "mu_sp": "teacher μ_*′",
    "c_phi": "teacher c_φ",
    "lam": "lam",
    "psi": "p_over_d",
    "n_d": "n_over_d",
    "Delta_f": "noise_f",
    "Delta_g": "noise_g",
    "tau": "tau",
    "varpi2": "mean of alignment²",
    "varpi_l": "alignment of the reported direction",
}

#: LaTeX forms of the parameter symbols whose SymPy names do not print as the usual notation.
LATEX_NAMES = {
    "kappa0": r"\kappa_0",
    "kappa1": r"\kappa_1",
    "kappa_s": r"\kappa_*",
    "kappa0p": r"\kappa_0'",
    "kappa1p": r"\kappa_1'",
    "kappa_sp": r"\kappa_*'",
    "c_sigma": r"c_\sigma",
    "mu0": r"\mu_0",
    "mu1": r"\mu_1",
    "mu_s": r"\mu_*",
    "mu0p": r"\mu_0'",
    "mu1p": r"\mu_1'",
    "mu_sp": r"\mu_*'",
    "c_phi": r"c_\phi",
    "lam": r"\lambda",
    "n_d": r"(n/d)",
    "tau": r"\tau",
    "varpi2": r"\overline{\varpi^2}",
    "varpi_l": r"\varpi_l",
    "G_0": r"G_{0}",
    "G_1": r"G_{1}",
    "G2_0": r"G^{(2)}_{0}",
    "G2_1": r"G^{(2)}_{1}",
    "G2_2": r"G^{(2)}_{2}",
    "m4_0": r"m^{(4)}_0",
    "m4_1": r"m^{(4)}_1",
    "m4_2": r"m^{(4)}_2",
}


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


def _check(k: int, tau: float, branch: str) -> None:
    if isinstance(k, bool) or not isinstance(k, int) or k < 0:
        raise UserError(f"k must be a non-negative integer, got {k!r}.")
    if isinstance(tau, bool) or not isinstance(tau, (int, float)) or not tau >= 0:
        raise UserError(f"tau must be a number >= 0, got {tau!r}.")
    if branch not in BRANCHES:
        raise UserError(f"branch must be one of {', '.join(BRANCHES)}, got {branch!r}.")


def derive_system(k: int, tau: float, branch: str = "ridge") -> System:
    """The fixed point and the outputs of training with k directions and Sobolev weight τ ≥ 0.

    Every τ > 0 gives the same System, in which τ is a parameter; τ = 0 (plain L2 training, no gradient
    rows) is a System of its own.

    ``branch``: ``"ridge"`` (λ > 0, the unknowns V_r and Ω_a), or one of the two branches of the limit
    λ → 0⁺ in the scaled variables L = λ + g_0, α = λ/L, β_r = g_r/L, Ω̃_a = LΩ_a (so that Q = Q̃/L),
    in which the fixed point g_r = 1/(1 + V_r) reads L = (1 − β_r ṽ_r)/β_r for every r ∈ R, with
    ṽ_r = (κ̄_r²Ω̃_rP_r + c_rrΩ̃_r)/φ the scaled V_r, β_0 = 1 − α and αL = λ = 0:

    * ``"interpolating"`` (more parameters than training rows, p > |R|n): L = 0, 0 < α < 1, so
      α = 1 − 1/ṽ_0 and β_l = 1/ṽ_l; training residuals vanish (train_loss = 0). For an affine σ (κ₁′ = κ_*′ = 0)
      the gradient rows are spikes with ṽ_l = 0 and do not count (|R| = 1 in the thresholds): their β_l
      is infinite but multiplies only κ₁′, κ_*′ and is replaced by 1, and train_loss keeps Σ_l S_ll (the
      spikes fit only the mean of the gradient labels);
    * ``"underparameterised"`` (p < |R|n): α = 0, β_0 = 1, L = 1 − ṽ_0 > 0 and
      β_l = 1/(1 − ṽ_0 + ṽ_l); training residuals are L times the scaled ones.

    Everything else (second order, outputs) is invariant under the scaling and reads the same with
    (g, λ, Ω) → (β, α, Ω̃); the branches meet at p = |R|n, where the errors diverge.
    """
    _check(k, tau, branch)
    return _derive(k, bool(tau > 0 and k >= 1), branch)


Pair = tuple[sp.Expr, sp.Expr]


@cache
def _derive(k: int, sobolev: bool, branch: str) -> System:
    d = _Derivation(k, sobolev, branch)
    unknowns, residuals, scale = d.first_order()
    d.moments()
    mean = d.mean_part()
    S0, Ssum, Sl = d.training_residuals(mean)
    outputs = d.outputs(mean, S0, Ssum, Sl, scale)
    parameters = (
        (*KAPPA, *MU, LAM, PSI, PHI, DELTA_F, DELTA_G) + ((TAU,) if sobolev else ()) + ((VARPI2, VARPI_L) if k else ())
    )
    suffix = "" if branch == "ridge" else f"_{branch}"
    return System(
        name=f"sobolev_rf_k{k}_{'tau' if sobolev else 'l2'}{suffix}",
        unknowns=tuple(unknowns),
        parameters=parameters,
        residuals=tuple(residuals),
        outputs=outputs,
        definitions=dict(d.defs.items),
        latex_names=LATEX_NAMES,
        branch=branch,
        meta={
            "k": k,
            "sobolev": sobolev,
            "rows_per_sample": 1 + k if sobolev else 1,
            "parameter_meaning": {str(q): PARAMETER_MEANING[str(q)] for q in parameters},
        },
    )


@dataclass
class _Mean:
    """The mean part: its second-order traces, M_a, m and the direction-free b_0."""

    dTE: Pair
    dTC: Pair
    M: Pair
    m: sp.Expr
    gam: Pair
    N: Pair
    t: Pair


class _Derivation:
    """The stages of the derivation (module docstring): symbols and first order, ζ-moments, the mean part,
    the training-residual covariance diag(S), the outputs. Index 0 is the function row; index 1 stands for
    every gradient direction l (an expression in ϖ_l, summed over l by :meth:`total`)."""

    def __init__(self, k: int, sobolev: bool, branch: str) -> None:
        self.k, self.sobolev, self.branch = k, sobolev, branch
        self.defs = _Definitions()
        self.rt = sp.sqrt(TAU) if sobolev else sp.Integer(1)  # weight of a gradient row and its label
        self.tw = TAU if sobolev else sp.Integer(1)

    def total(self, expr: sp.Expr) -> sp.Expr:
        """Σ_l expr(ϖ_l) for an expr affine in ϖ_l²: k·expr(√ϖ̄²)."""
        return self.k * sp.sympify(expr).xreplace({VARPI_L: sp.sqrt(VARPI2)})

    # --- symbols and first order ---------------------------------------------------------------
    def first_order(self) -> tuple[list[sp.Symbol], list[sp.Expr], sp.Expr]:
        """Unknowns, residuals and the training-residual scale of the branch; defines g, c, e, P, F, the
        ζ-moments q1, q2 of the resolvent."""
        k, sobolev, branch, d = self.k, self.sobolev, self.branch, self.defs
        k0, k1, ks, k0p, k1p, ksp, _ = KAPPA
        O0, O1 = sp.Symbol("Omega_0"), sp.Symbol("Omega_1")
        if branch == "ridge":
            V0, V1 = sp.Symbol("V_0"), sp.Symbol("V_1")
            first = [V0] + ([V1] if sobolev else [])
            g0, g1, ridge = 1 / (1 + V0), (1 / (1 + V1) if sobolev else sp.Integer(0)), LAM
        else:
            alpha = sp.Symbol("alpha") if branch == "interpolating" else sp.Integer(0)
            B1 = sp.Symbol("beta_1")
            first = ([alpha] if branch == "interpolating" else []) + ([B1] if sobolev else [])
            g0, g1, ridge = 1 - alpha, (B1 if sobolev else sp.Integer(0)), alpha
        self.g = (d("g_0", g0), d("g_1", g1))
        self.kb = (k1, self.rt * k1p)  # κ̄_a
        self.cm = (ks**2, self.tw * ksp**2)  # c_aa
        g, kb, cm = self.g, self.kb, self.cm
        c = (d("c_0", g[0] * kb[0] ** 2), d("c_1", g[1] * kb[1] ** 2))
        e = (d("e_0", g[0] * cm[0] + ridge), d("e_1", g[1] * cm[1]))
        self.Om = (O0, O1)
        self.P = (d("P_0", 1 / (1 + O0 * c[0])), d("P_1", 1 / (1 + O1 * c[1])))
        self.F = (d("F_0", c[0] * self.P[0]), d("F_1", c[1] * self.P[1]))
        a0 = d("a_0", e[0] + self.F[0])
        if sobolev:
            a1 = d("a_1", e[1] + self.F[1])
            s = sp.Rational(k, 2)
            # z = 1/y = 0 when σ′ is constant (κ₁′ = κ_*′ = 0): the gradient rows are then the spikes κ₀′ζ_l
            # alone, q does not depend on ζ and every moment below takes its τ = 0 form (its limit z → 0)
            z = d("z", 2 * a1 / a0)
            G1 = [d(f"G_{j}", scaled_resolvent(s + j, z, 1)) for j in (0, 1)]
            G2 = [d(f"G2_{j}", scaled_resolvent(s + j, z, 2)) for j in (0, 1, 2)]
            q1 = [G1[0] / a0, k * G1[1] / a0]  # E[q], E[q‖ζ‖²]
            self.q2 = [G2[0] / a0**2, k * G2[1] / a0**2, k * (k + 2) * G2[2] / a0**2]
        else:
            q1 = [1 / a0, sp.Integer(k) / a0]
            self.q2 = [1 / a0**2, sp.Integer(k) / a0**2, sp.Integer(k * (k + 2)) / a0**2]
        unknowns = first + [O0] + ([O1] if k else [])
        rows = (0, 1) if sobolev else (0,)
        v = [(kb[a] ** 2 * self.Om[a] * self.P[a] + cm[a] * self.Om[a]) / PHI for a in rows]  # V_r (ṽ_r)
        scale: sp.Expr
        if branch == "ridge":
            residuals = [x - vr for x, vr in zip(first, v)]
            scale = sp.Integer(1)
        elif branch == "interpolating":
            # an affine σ (AFFINE) has no fluctuating gradient rows: g_l = 1 and β_l = g_l/L is infinite, but it
            # multiplies only κ₁′ and κ_*′; the rows do not count towards the threshold, which is p = n
            grad = [sp.Piecewise((B1 - 1, AFFINE), (B1 - 1 / v[1], True))] if sobolev else []
            residuals = [alpha - (1 - 1 / v[0])] + grad
            scale = sp.Integer(0)
        else:
            residuals = [B1 - 1 / (1 - v[0] + v[1])] if sobolev else []
            scale = d("L", 1 - v[0])
        residuals.append(O0 - PSI * q1[0])
        if k:
            residuals.append(O1 - PSI * q1[1] / k)
        self.ridge = ridge
        return unknowns, residuals, scale

    # --- 4-moments and the implicit-differentiation solve -----------------------------------------
    def moments(self) -> None:
        """m4_0, m4_1, m4_2 and the inverse ρ of the exchangeable 2×2 system of δΩ."""
        k, d, F, q2 = self.k, self.defs, self.F, self.q2
        self.A4 = d("m4_0", q2[0])
        self.B4 = d("m4_1", q2[1] / k) if k else sp.Integer(0)
        self.O4 = d("m4_2", q2[2] / (k * (k + 2))) if k else sp.Integer(0)
        if k:
            L11 = 1 - PSI * self.A4 * F[0] ** 2
            L12 = -PSI * self.B4 * F[1] ** 2
            L21 = -PSI * k * self.B4 * F[0] ** 2
            L22 = 1 - PSI * (k + 2) * self.O4 * F[1] ** 2
            det = d("L_det", L11 * L22 - L12 * L21)
            self.rho = [
                [d("rho_00", L22 / det), d("rho_0s", -L12 / det)],
                [d("rho_s0", -L21 / det), d("rho_ss", L11 / det)],
            ]
            self.rho_l = d("rho_l", 1 / (1 - 2 * PSI * self.O4 * F[1] ** 2))
        else:
            self.rho = [[d("rho_00", 1 / (1 - PSI * self.A4 * F[0] ** 2))]]

    def directional(self, dE: Pair, dC: Pair, wsum: sp.Expr, name: str | None) -> tuple[Pair, Pair]:
        """(δT^E_a, δT^C_a) for a = 0 and a generic direction l along a diagonal source (δE_a, δC_a);
        ``wsum`` = Σ_l (δE_l + P_1²δC_l). ``name`` prefixes the definitions of the direction-free parts
        (None: inline); the parts of direction l stay inline (they depend on ϖ_l)."""
        k, P, F, Om, A4, B4, O4, rho = self.k, self.P, self.F, self.Om, self.A4, self.B4, self.O4, self.rho

        def keep(label: str, expr: sp.Expr) -> sp.Expr:
            return expr if name is None else self.defs(f"{name}_{label}", expr)

        w0 = keep("w_0", dE[0] + P[0] ** 2 * dC[0])
        wl = dE[1] + P[1] ** 2 * dC[1]
        r0 = -PSI * (A4 * w0 + B4 * wsum)
        if k:
            rl = -PSI * (B4 * w0 + 2 * O4 * wl + O4 * wsum)
            rsum = -PSI * (k * B4 * w0 + (k + 2) * O4 * wsum)
            x0 = keep("x0", rho[0][0] * r0 + rho[0][1] * rsum)
            xs = keep("xs", rho[1][0] * r0 + rho[1][1] * rsum)
            xl = (rl + PSI * (B4 * F[0] ** 2 * x0 + O4 * F[1] ** 2 * xs)) * self.rho_l
        else:
            x0, xl = keep("x0", rho[0][0] * r0), sp.Integer(0)
        dTE = (x0 / PSI, xl / PSI)
        dTC = (P[0] ** 2 * (x0 - Om[0] ** 2 * dC[0]) / PSI, P[1] ** 2 * (xl - Om[1] ** 2 * dC[1]) / PSI)
        return dTE, dTC

    # --- mean part ------------------------------------------------------------------------------
    def mean_part(self) -> _Mean:
        """The source uuᵀ of E[w], u_a = g_aγ_aκ̄_a, and what it gives: M_a, m, the targets' noise and spikes."""
        k, d, g, kb, P, Om, rt, tw = self.k, self.defs, self.g, self.kb, self.P, self.Om, self.rt, self.tw
        k0, k1, ks, k0p, k1p, ksp, _ = KAPPA
        m0, m1, ms, m0p, m1p, msp, _ = MU
        w = VARPI_L
        gam = (m1, rt * w * m1p)
        u = (g[0] * gam[0] * kb[0], g[1] * gam[1] * kb[1])
        wsum = d("mean_wsum", self.total(P[1] ** 2 * u[1] ** 2)) if k else sp.Integer(0)
        dTE, dTC = self.directional((sp.Integer(0), sp.Integer(0)), (u[0] ** 2, u[1] ** 2), wsum, "mean")
        M = (d("M_0", kb[0] * Om[0] * P[0] * u[0]), kb[1] * Om[1] * P[1] * u[1])
        m = d("m", Om[0] * P[0] * u[0])
        N = (ms**2 + DELTA_F, tw * (w**2 * msp**2 + DELTA_G))
        t = (sp.Piecewise((m0, sp.Eq(k0, 0)), (0, True)), rt * sp.Piecewise((w * m1, sp.Eq(k0p, 0)), (0, True)))
        return _Mean(dTE, dTC, M, m, gam, N, t)

    def b_row(self, mean: _Mean, a: int) -> sp.Expr:
        """S⁰_aa plus the mean part of q_aa: the source term of row a in the system for diag(S)."""
        return (
            (mean.gam[a] - mean.M[a]) ** 2
            + mean.N[a]
            - mean.M[a] ** 2
            + mean.t[a] ** 2
            - PSI * (self.cm[a] * mean.dTE[a] + self.kb[a] ** 2 * mean.dTC[a])
        )

    # --- training-residual covariance diag(S) ------------------------------------------------------
    def noise_source(self, S0: sp.Expr, Sl: sp.Expr, Ssum: sp.Expr) -> tuple[Pair, Pair, sp.Expr]:
        g, cm, kb, P = self.g, self.cm, self.kb, self.P
        dE = (g[0] ** 2 * S0 * cm[0], g[1] ** 2 * Sl * cm[1])
        dC = (g[0] ** 2 * S0 * kb[0] ** 2, g[1] ** 2 * Sl * kb[1] ** 2)
        return dE, dC, g[1] ** 2 * (cm[1] + P[1] ** 2 * kb[1] ** 2) * Ssum

    def noise_map(self, dTE: Pair, dTC: Pair, a: int) -> sp.Expr:
        return -(PSI / PHI) * (self.cm[a] * dTE[a] + self.kb[a] ** 2 * dTC[a])

    def training_residuals(self, mean: _Mean) -> tuple[sp.Expr, sp.Expr, sp.Expr]:
        """S_00, Σ_l S_ll and S_ll: the linear system S = b + (noise map)(S), its coefficients probed with
        symbolic S, reduced to 2×2 by exchangeability."""
        k, d = self.k, self.defs
        b0 = d("b_0", self.b_row(mean, 0))
        s0, sl, ssum = sp.Dummy("S0"), sp.Dummy("Sl"), sp.Dummy("Ssum")
        probe = self.noise_source(s0, sl, ssum) if self.sobolev else self.noise_source(s0, sp.Integer(0), sp.Integer(0))
        pdTE, pdTC = self.directional(*probe, None)
        out0 = self.noise_map(pdTE, pdTC, 0)
        al00 = d("alpha_00", sp.diff(out0, s0))
        if not self.sobolev:
            return d("S_0", b0 / (1 - al00)), sp.Integer(0), sp.Integer(0)
        out1 = self.noise_map(pdTE, pdTC, 1)
        b1 = self.b_row(mean, 1)
        bsum = d("b_sum", self.total(b1))
        al0s = d("alpha_0s", sp.diff(out0, ssum))
        al10 = d("alpha_l0", sp.diff(out1, s0))
        beta = d("beta", sp.diff(out1, ssum))
        delta = d("delta", sp.diff(out1, sl))
        det2 = d("S_det", (1 - al00) * (1 - delta - k * beta) - k * al0s * al10)
        S0 = d("S_0", ((1 - delta - k * beta) * b0 + al0s * bsum) / det2)
        Ssum = d("S_sum", ((1 - al00) * bsum + k * al10 * b0) / det2)
        return S0, Ssum, (b1 + al10 * S0 + beta * Ssum) / (1 - delta)

    # --- outputs ----------------------------------------------------------------------------
    def outputs(self, mean: _Mean, S0: sp.Expr, Ssum: sp.Expr, Sl: sp.Expr, scale: sp.Expr) -> dict[str, sp.Expr]:
        """The errors (MODEL.md), the training losses, m, q_s, q_w and the order parameters of one direction."""
        k, d, g = self.k, self.defs, self.g
        k0, k1, ks, k0p, k1p, ksp, _ = KAPPA
        m0, m1, ms, m0p, m1p, msp, _ = MU
        w, m = VARPI_L, mean.m
        dTEn, dTCn = self.directional(*self.noise_source(S0, sp.Integer(0), Ssum), "noise")
        q_s = d("q_s", -PSI * mean.dTC[0] - (PSI / PHI) * dTCn[0])
        q_w = d("q_w", -PSI * mean.dTE[0] - (PSI / PHI) * dTEn[0])
        outputs: dict[str, sp.Expr] = {"eps_L2": S0 - DELTA_F}
        if k:
            if self.sobolev:
                outputs["eps_H1"] = (Ssum / k - TAU * DELTA_G) / TAU
            else:
                outputs["eps_H1"] = (
                    self.total(
                        w**2 * (m1 - k1 * m) ** 2
                        + k1**2 * (q_s - m**2)
                        + w**2 * (m1p**2 + msp**2)
                        + (k1p**2 + ksp**2) * q_w
                    )
                    / k
                )
        outputs["eps_grad"] = (m0p**2 + m1p**2 + msp**2) - 2 * m1 * k1 * m + k1**2 * q_s + (k1p**2 + ksp**2) * q_w
        outputs["train_loss"] = scale**2 * (g[0] ** 2 * S0 + g[1] ** 2 * Ssum) + (
            LAM * q_w if self.branch == "ridge" else 0
        )
        if self.sobolev and self.branch == "interpolating":
            # affine σ: the spikes fit only the mean of the gradient labels; the rest stays in the loss (g_l = 1)
            outputs["train_loss"] += sp.Piecewise((Ssum, AFFINE), (0, True))
        outputs["train_error_L2"] = scale**2 * g[0] ** 2 * S0
        outputs.update({"m": m, "q_s": q_s, "q_w": q_w, "M_0": mean.M[0], "S_0": S0})
        if k:
            outputs["M_l"] = mean.M[1]
        if self.sobolev:
            outputs["S_l"] = Sl
        return outputs
