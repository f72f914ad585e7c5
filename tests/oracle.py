"""Test oracle: an independent, hand-written solver of the asymptotic theory (k ≤ 3 in the tests).

Symbols follow MODEL.md and THEORY.md. With ψ = p/d, W = ΘᵀΘ/d, D₀ = I, D_l = diag(ζ_l) and
ζ̃ = (1, ζ₁, …, ζ_k), the Gaussian-equivalent design of one sample is a (k+1)×p block whose rows
r ∈ R (R = {0} for τ = 0, {0, …, k} for τ = 1) have covariance blocks

    K_rs = κ̄_r κ̄_s D_r W D_s + c_rs D_r D_s,   κ̄ = (κ₁, κ₁′, …, κ₁′),
    c₀₀ = κ_*²,  c₀l = c_σ = E[σσ′] − κ₀κ₀′ − κ₁κ₁′,  c_lm = κ_*′²   (one η′ shared by all l),

cross-covariance with ω = ⟨θ₀, x⟩ equal to φ_r = κ̄_r D_r Θᵀθ₀/√d, and targets
c = γω + ν with γ = (μ₁, ϖ₁μ₁′, …, ϖ_kμ₁′) and noise covariance N (μ_*, μ_*′, c_φ, Δ_f, Δ_g).
The rank-one means κ₀1 and κ₀′ζ_l are spikes: they are fitted at no cost when their κ is non-zero
(otherwise they leave the residual t = μ₀ resp. ϖ_lμ₁).

Ridge regression on n such blocks is described by the replica-symmetric (equivalently,
leave-one-out) fixed point with matrix order parameters over R:

    Γ = (I + V)⁻¹,   Q = (λ + Σ_rs Γ_rs K_rs)⁻¹,   V_rs = (1/n) tr(K_rs Q),
    E[w] = Q Σ_r (Γγ)_r φ_r,   Cov(w) = (1/n) Q (Σ_rs (ΓSΓ)_rs K_rs) Q,
    S = (γ − M)(γ − M)ᵀ + N + q − MMᵀ + ttᵀ,   M_r = φ_rᵀE[w],   q_rs = E[wᵀK_rs w].

Normalised traces of Q are those of the diagonal matrix q(ζ) = 1/(ζ̃ᵀAζ̃) with
A = E + C(I + ΩC)⁻¹ and Ω = ψ E_ζ[q ζ̃ζ̃ᵀ] (THEORY.md §3, here with general coefficient matrices
E, C of the D_aD_b and D_aWD_b terms): (1/p)tr(Q D_aD_b) = Ω_ab/ψ, (1/p)tr(Q D_aWD_b) =
[Ω(I + CΩ)⁻¹]_ab/ψ. Second-order traces are directional derivatives of these in (E, C), obtained
by the implicit-function theorem. Expectations over ζ ~ N(0, I_k) reduce exactly to
H_s(y) = E_{t∼Gamma(s)}[1/(t + y)], s = k/2, with H_{1/2}(y) = √π erfcx(√y)/√y,
H₁(y) = eʸE₁(y) and H_{s+1} = (1 − yH_s)/s; E[1/(t+y)²] = (1 − (y + s − 1)H_s)/y.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np
from scipy import optimize, special

from sobolev_rf.derive.activations import parse_activation
from sobolev_rf.derive.errors import UserError
from sobolev_rf.derive.hermite import hermite_coefficients
from sobolev_rf.derive.params import ModelParams


class SolverError(UserError):
    """The fixed point did not converge; the message carries the residual."""


@dataclass
class TheoryResult:
    """Asymptotic errors, order parameters and solver diagnostics of one model point."""

    eps_L2: float
    eps_H1: float | None
    eps_grad: float
    train_loss: float
    train_error_L2: float
    order: dict[str, Any] = field(default_factory=dict)
    residual: float = math.nan
    iterations: int = 0
    converged: bool = False
    eps_H1_self_averaging: bool = True
    notes: tuple[str, ...] = ()
    #: (log V_r, log Ω_a) at λ > 0: a warm start for a neighbouring point (continuation)
    state: np.ndarray | None = field(default=None, repr=False)

    def to_dict(self) -> dict[str, Any]:
        return {
            "eps_L2": self.eps_L2,
            "eps_H1": self.eps_H1,
            "eps_grad": self.eps_grad,
            "train_loss": self.train_loss,
            "train_error_L2": self.train_error_L2,
            "order_parameters": self.order,
            "residual": self.residual,
            "iterations": self.iterations,
            "converged": self.converged,
            "eps_H1_note": None
            if self.eps_H1_self_averaging
            else "tau = 0: eps_H1 is not self-averaging over V; the value is its expectation over V at fixed alignment",
            "notes": list(self.notes),
        }


@lru_cache(maxsize=64)
def coefficients(text: str) -> tuple[float, ...]:
    """(κ₀, κ₁, κ_*, κ₀′, κ₁′, κ_*′, c) of an activation text, as floats."""
    f = hermite_coefficients(parse_activation(text), digits=20).as_floats()
    return (
        f["kappa0"],
        f["kappa1"],
        f["kappa_star"],
        f["kappa0_prime"],
        f["kappa1_prime"],
        f["kappa_star_prime"],
        f["cross"],
    )


_LAGUERRE: dict[float, tuple[np.ndarray, np.ndarray]] = {}


def gamma_resolvent(s: float, y: float) -> float:
    """H_s(y) = E_{t∼Gamma(s,1)}[1/(t + y)] for y > 0 (closed form; Gauss–Laguerre for large y)."""
    if y > 30.0:
        if s not in _LAGUERRE:
            x, w = special.roots_genlaguerre(60, s - 1.0)
            _LAGUERRE[s] = (x, w / special.gamma(s))
        x, w = _LAGUERRE[s]
        return float(np.sum(w / (x + y)))
    if abs(s - round(s)) < 1e-12:
        h, s0 = math.exp(y) * float(special.exp1(y)), 1.0
    else:
        h, s0 = math.sqrt(math.pi) * float(special.erfcx(math.sqrt(y))) / math.sqrt(y), 0.5
    while s0 < s - 1e-12:
        h, s0 = (1.0 - y * h) / s0, s0 + 1.0
    return h


@lru_cache(maxsize=16)
def _pair_index(k: int) -> list[tuple[tuple[int, ...], int, float]]:
    """Non-vanishing 4-index moments of ζ̃: (index, radial power j, angular factor)."""
    out = []
    for idx in itertools.product(range(k + 1), repeat=4):
        counts: dict[int, int] = {}
        for i in idx:
            if i:
                counts[i] = counts.get(i, 0) + 1
        if any(c % 2 for c in counts.values()):
            continue
        j = sum(counts.values()) // 2
        if j == 0:
            ang = 1.0
        elif j == 1:
            ang = 1.0 / k
        else:
            ang = (3.0 if len(counts) == 1 else 1.0) / (k * (k + 2))
        out.append((idx, j, ang))
    return out


def zeta_moments(k: int, a0: float, a1: float) -> tuple[np.ndarray, np.ndarray]:
    """E[q ζ̃ζ̃ᵀ] and E[q² ζ̃_aζ̃_bζ̃_cζ̃_d] for q = 1/(a0 + a1‖ζ‖²), ζ ∼ N(0, I_k)."""
    K = k + 1
    m2 = np.zeros((K, K))
    m4 = np.zeros((K, K, K, K))
    if k == 0 or a1 <= 1e-14 * a0:
        for idx, j, ang in _pair_index(k):
            # Gaussian moments E[ζ̃^idx] / a0²: ‖ζ‖^{2j} radial moment times angular factor
            m4[idx] = ang * (1.0 if j == 0 else k if j == 1 else k * (k + 2)) / a0**2
        m2[np.diag_indices(K)] = 1.0 / a0
        return m2, m4
    s = k / 2.0
    y = a0 / (2.0 * a1)
    h = gamma_resolvent(s, y)
    h2 = (1.0 - (y + s - 1.0) * h) / y
    q1 = [h / (2 * a1), 2 * (1 - y * h) / (2 * a1)]
    q2 = [h2 / (4 * a1**2), 2 * (h - y * h2) / (4 * a1**2), 4 * (1 - 2 * y * h + y * y * h2) / (4 * a1**2)]
    m2[0, 0] = q1[0]
    for l in range(1, K):
        m2[l, l] = q1[1] / k
    for idx, j, ang in _pair_index(k):
        m4[idx] = q2[j] * ang
    return m2, m4


def omega_map(k: int, psi: float, E: np.ndarray, C: np.ndarray, Od: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Ω ↦ ψ E_ζ[q ζ̃ζ̃ᵀ] (diagonal part) with q = 1/(ζ̃ᵀAζ̃), A = E + C(I + ΩC)⁻¹; also E[q²ζ̃⊗4]."""
    K = k + 1
    Om = np.diag(Od)
    A = E + C @ np.linalg.inv(np.eye(K) + Om @ C)
    m2, m4 = zeta_moments(k, A[0, 0], A[1, 1] if k else 0.0)
    return psi * np.diag(m2), m4


def first_order_traces(psi: float, C: np.ndarray, Od: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """T^E_ab = (1/p)tr(Q D_aD_b) = Ω_ab/ψ and T^C_ab = (1/p)tr(Q D_aWD_b) = [Ω(I + CΩ)⁻¹]_ab/ψ."""
    Om = np.diag(Od)
    return Om / psi, Om @ np.linalg.inv(np.eye(len(Od)) + C @ Om) / psi


def resolvent_traces(k: int, psi: float, E: np.ndarray, C: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """First-order traces of Q = (Σ E_ab D_aD_b + Σ C_ab D_aWD_b)⁻¹ for diagonal, direction-symmetric E, C."""

    def res(x: np.ndarray) -> np.ndarray:
        return x - np.log(omega_map(k, psi, E, C, np.exp(x))[0])

    x = np.log(np.full(k + 1, 0.5 * psi))
    for _ in range(200):
        x = x - 0.5 * res(x)
    x = optimize.root(res, x, method="hybr", tol=1e-15).x
    return first_order_traces(psi, C, np.exp(x))


def degeneracy_notes(kappa: tuple[float, ...], k: int, tau: int) -> tuple[str, ...]:
    """Plain-language notes on activations whose Hermite coefficients make parts of the model trivial."""
    k0, k1, ks, k0p, k1p, ksp, _ = kappa
    scale = max(abs(v) for v in kappa[:6]) or 1.0
    tiny = 1e-12 * scale
    notes = []
    if ks <= tiny:
        notes.append(
            "κ_* = 0: σ is linear, the features carry no nonlinear part and the model is a linear "
            "regression on ΘᵀΘ-correlated inputs."
        )
    if abs(k1) <= tiny:
        notes.append(
            "κ₁ = κ₀′ = 0: σ has no linear part (e.g. an even σ), so neither function values nor "
            "projected gradients carry the linear signal of the teacher."
        )
    if k >= 1 and tau == 1 and abs(k1p) <= tiny:
        notes.append(
            "κ₁′ = 0 (e.g. an odd σ): the gradient rows carry no linear signal θ₀ᵀx; gradient data "
            "only constrain w through their mean κ₀′ζ_l and the residual part κ_*′."
        )
    return tuple(notes)


class _Point:
    """The fixed-point system of one model point, with the structure of the module docstring."""

    def __init__(self, p: ModelParams) -> None:
        self.p = p
        k = p.k
        self.k, self.K = k, k + 1
        self.psi, self.phin, self.lam = p.p_over_d, p.n_over_d, p.lam
        k0, k1, ks, k0p, k1p, ksp, cs = coefficients(p.activation)
        m0, m1, ms, m0p, m1p, msp, cph = coefficients(p.teacher)
        self.kap = (k0, k1, ks, k0p, k1p, ksp, cs)
        self.mu = (m0, m1, ms, m0p, m1p, msp, cph)
        K = self.K
        self.kb = np.array([k1] + [k1p] * k)
        cm = np.full((K, K), ksp**2)
        cm[0, :] = cs
        cm[:, 0] = cs
        cm[0, 0] = ks**2
        self.cm = cm
        self.R = [0] if (p.tau == 0 or k == 0) else list(range(K))
        vp = np.asarray(p.alignment, float)
        self.vp = vp
        self.gam = np.concatenate([[m1], vp * m1p])
        N = np.zeros((K, K))
        N[0, 0] = ms**2 + p.noise_f
        N[0, 1:] = N[1:, 0] = vp * cph
        N[1:, 1:] = np.outer(vp, vp) * msp**2 + p.noise_g * np.eye(k)
        self.N = N
        t = np.zeros(K)
        if k0 == 0.0:
            t[0] = m0
        if k0p == 0.0:
            t[1:] = vp * m1
        self.t = t

    # --- first order -------------------------------------------------------------------------
    def source_matrices(self, G: np.ndarray, ridge: float) -> tuple[np.ndarray, np.ndarray]:
        """E and C of Q⁻¹ = Σ E_ab D_aD_b + Σ C_ab D_aWD_b = ridge·I + Σ_rs G_rs K_rs."""
        E = G * self.cm
        E[0, 0] += ridge
        return E, G * np.outer(self.kb, self.kb)

    def coefficient_matrices(self, Vd: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Γ (diagonal, zero outside R), E and C at λ."""
        G = np.zeros((self.K, self.K))
        for r in self.R:
            G[r, r] = 1.0 / (1.0 + Vd[r])
        return (G, *self.source_matrices(G, self.lam))

    def omega_map(self, E: np.ndarray, C: np.ndarray, Od: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return omega_map(self.k, self.psi, E, C, Od)

    def traces(self, C: np.ndarray, Od: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return first_order_traces(self.psi, C, Od)

    def v_map(self, TE: np.ndarray, TC: np.ndarray) -> np.ndarray:
        V = (self.psi / self.phin) * (np.outer(self.kb, self.kb) * TC + self.cm * TE)
        out = np.zeros(self.K)
        out[self.R] = np.diag(V)[self.R]
        return out

    def residual(self, x: np.ndarray) -> np.ndarray:
        """x = (log V_r over R, log Ω_a); returns x − log G(x) (logs keep iterates positive)."""
        nR = len(self.R)
        Vd = np.zeros(self.K)
        Vd[self.R] = np.exp(x[:nR])
        Od = np.exp(x[nR:])
        G, E, C = self.coefficient_matrices(Vd)
        Od_new, _ = self.omega_map(E, C, Od)
        TE, TC = self.traces(C, Od)
        Vd_new = self.v_map(TE, TC)
        return np.concatenate([x[:nR] - np.log(Vd_new[self.R]), x[nR:] - np.log(Od_new)])

    # --- second order ------------------------------------------------------------------------
    def directional(self, E, C, Od, m4, dE, dC):
        """Derivatives (δT^E, δT^C) of the first-order traces along (δE, δC)."""
        K, psi = self.K, self.psi
        Om = np.diag(Od)
        P = np.linalg.inv(np.eye(K) + Om @ C)
        Pp = np.linalg.inv(np.eye(K) + C @ Om)
        F = C @ P
        rhs = -psi * np.einsum("abcd,cd->ab", m4, dE + Pp @ dC @ P)
        L = np.eye(K * K) - psi * np.einsum("abcd,ce,fd->abef", m4, F, F).reshape(K * K, K * K)
        dOm = np.linalg.solve(L, rhs.reshape(-1)).reshape(K, K)
        dTE = dOm / psi
        dTC = (dOm @ Pp - Om @ Pp @ (dC @ Om + C @ dOm) @ Pp) / psi
        return dTE, dTC


def _quadratic_form_matrices(K: int, e: dict, c: dict) -> tuple[np.ndarray, np.ndarray]:
    eX = np.zeros((K, K))
    cX = np.zeros((K, K))
    for (a, b), v in e.items():
        eX[a, b] += v / 2
        eX[b, a] += v / 2
    for (a, b), v in c.items():
        cX[a, b] += v / 2
        cX[b, a] += v / 2
    return eX, cX


def _fixed_point(
    pt: _Point, tol: float, max_iter: int, start: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, int, float]:
    """V (over R) and Ω at λ > 0: damped iteration in log variables (from ``start`` when given, e.g. the
    solution at a neighbouring point), then a Newton-type polish."""
    K, R, nR = pt.K, pt.R, len(pt.R)
    x = np.concatenate([np.zeros(nR), np.log(np.full(K, 0.5 * pt.psi))]) if start is None else start.copy()
    it = 0
    for it in range(1, max_iter + 1):
        r = pt.residual(x)
        if not np.all(np.isfinite(r)):
            raise SolverError(
                f"the fixed point produced non-finite values at iteration {it}; "
                "check the parameters (λ too small near the interpolation threshold?)."
            )
        if np.max(np.abs(r)) < 1e-6:
            break
        x = x - 0.3 * r
    sol = optimize.root(pt.residual, x, method="hybr", tol=1e-14)
    x = sol.x
    res = float(np.max(np.abs(pt.residual(x))))
    iterations = it + int(sol.nfev)
    if not np.isfinite(res) or res > tol:
        raise SolverError(
            f"the fixed point did not converge (residual {res:.2e} after {iterations} "
            f"evaluations); last iterate V, Ω = {np.exp(x).round(6).tolist()}."
        )
    Vd = np.zeros(K)
    Vd[R] = np.exp(x[:nR])
    return Vd, np.exp(x[nR:]), iterations, res


def _ridgeless(
    params: ModelParams, pt: _Point, tol: float, max_iter: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, float, np.ndarray, int, float]:
    """The limit λ → 0⁺ in scaled variables.

    With L = λ + Γ₀, α = λ/L and β = Γ/L, Q = Q̃/L with Q̃ = (α + Σ β_rs K_rs)⁻¹ and the fixed point
    Γ_r = 1/(1 + V_r) becomes L = (1 − β_r ṽ_r)/β_r for every r ∈ R (ṽ_r = (1/n)tr(K_rr Q̃),
    β₀ = 1 − α) together with αL = λ. At λ = 0 either α = 0 and L > 0 (fewer parameters than
    training rows) or L = 0 and 0 < α < 1 (interpolation: training residuals vanish); both branches
    meet at the interpolation threshold p = (1 + τk)n, where the errors diverge.
    Returns the scaled Γ (= β), its E and C, Ω̃, L, ṽ, evaluations, residual.
    """
    K, R = pt.K, pt.R
    rest = R[1:]
    warm = _Point(params.with_(lam=1e-9))
    Vd, Od, iters, _ = _fixed_point(warm, 1e-9, max_iter)
    G = np.where(np.isin(np.arange(K), R), 1.0 / (1.0 + Vd), 0.0)
    L0 = 1e-9 + G[0]
    alpha0 = 1e-9 / L0
    beta0 = G / L0
    interpolating = alpha0 > 1e-3

    def unpack(z: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
        alpha = 1.0 / (1.0 + math.exp(-z[0])) if interpolating else 0.0
        off = 1 if interpolating else 0
        beta = np.zeros(K)
        beta[0] = 1.0 - alpha
        beta[rest] = np.exp(z[off : off + len(rest)])
        return alpha, beta, np.exp(z[off + len(rest) :])

    def state(z: np.ndarray):
        alpha, beta, Od_ = unpack(z)
        Gs = np.diag(beta)
        E, C = pt.source_matrices(Gs, alpha)
        TE, TC = first_order_traces(pt.psi, C, Od_)
        return alpha, beta, Od_, Gs, E, C, pt.v_map(TE, TC)

    def residual(z: np.ndarray) -> np.ndarray:
        alpha, beta, Od_, Gs, E, C, v = state(z)
        Om_new, _ = omega_map(pt.k, pt.psi, E, C, Od_)
        fp = z[-K:] - np.log(Om_new)
        if interpolating:
            eqs = [1.0 - beta[r] * v[r] for r in R]
        else:
            eqs = [(1.0 - beta[r] * v[r]) / beta[r] - (1.0 - v[0]) for r in rest]
        return np.concatenate([np.asarray(eqs, float), fp])

    z0 = (
        ([math.log(alpha0 / (1.0 - alpha0))] if interpolating else [])
        + list(np.log(np.maximum(beta0[rest], 1e-300)))
        + list(np.log(Od * L0))
    )
    sol = optimize.root(residual, np.asarray(z0, float), method="hybr", tol=1e-14)
    res = float(np.max(np.abs(residual(sol.x)))) if len(sol.x) else 0.0
    alpha, beta, Od_, Gs, E, C, v = state(sol.x)
    L = 0.0 if interpolating else 1.0 - v[0]
    iterations = iters + int(sol.nfev)
    if not np.isfinite(res) or res > tol:
        raise SolverError(
            f"the ridgeless fixed point did not converge (residual {res:.2e} after {iterations} "
            "evaluations); try a small λ > 0."
        )
    at_threshold = (interpolating and alpha < 1e-7) or (not interpolating and L < 1e-7)
    if at_threshold:
        raise SolverError(
            f"lam = 0 at the interpolation threshold p = (1 + τk)n = {1 + params.tau * params.k:g}n: "
            "the errors are infinite there; move p/d or n/d, or use λ > 0."
        )
    return Gs, E, C, Od_, L, v, iterations, res


def solve(
    params: ModelParams, tol: float = 1e-11, max_iter: int = 400, start: TheoryResult | None = None
) -> TheoryResult:
    """Solve the fixed point of one model point and evaluate the five reported quantities.

    λ = 0 means the limit λ → 0⁺ (minimum-norm interpolant when overparameterised), solved exactly in
    the scaled variables of :func:`_ridgeless`. ``start``: the result at a neighbouring point of the same k
    and τ, used as the initial iterate (continuation along a sweep).
    """
    pt = _Point(params)
    K, R, psi, phin = pt.K, pt.R, pt.psi, pt.phin
    if params.lam > 0.0:
        warm = start.state if start is not None and start.state is not None and len(start.state) == len(R) + K else None
        Vd, Od, iterations, res = _fixed_point(pt, tol, max_iter, warm)
        state = np.concatenate([np.log(Vd[R]), np.log(Od)])
        G, E, C = pt.coefficient_matrices(Vd)
        scale = 1.0  # Q = Q̃ / scale; training residuals scale with it
        v_order: list[float | None] = [float(Vd[r]) for r in R]
    else:
        G, E, C, Od, scale, v, iterations, res = _ridgeless(params, pt, tol, max_iter)
        state = None
        v_order = [float(v[r] / scale) if scale > 0 else None for r in R]
    _, m4 = pt.omega_map(E, C, Od)
    TE, TC = pt.traces(C, Od)

    g = G @ pt.gam
    u = g * pt.kb
    M = pt.kb * (psi * TC @ u)  # M_r = φ_rᵀ E[w]
    m = float(psi * (TC @ u)[0])  # m = θ₀ᵀΘw/√d

    def drive(dE: np.ndarray, dC: np.ndarray, factor: float) -> tuple[np.ndarray, np.ndarray]:
        """factor·(δT^E, δT^C) along (δE, δC); E[wᵀXw] parts are −(contractions with X's matrices)."""
        dTE, dTC = pt.directional(E, C, Od, m4, dE, dC)
        return factor * dTE, factor * dTC

    def mean_drive() -> tuple[np.ndarray, np.ndarray]:
        return drive(np.zeros((K, K)), np.outer(u, u), psi)

    def noise_drive(S: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        GSG = G @ S @ G
        return drive(GSG * pt.cm, GSG * np.outer(pt.kb, pt.kb), psi / phin)

    def contract(eX: np.ndarray, cX: np.ndarray, d: tuple[np.ndarray, np.ndarray]) -> float:
        return -float(np.sum(eX * d[0]) + np.sum(cX * d[1]))

    pairs = [(r, s) for r in R for s in R]
    Xrs = [_quadratic_form_matrices(K, {(r, s): pt.cm[r, s]}, {(r, s): pt.kb[r] * pt.kb[s]}) for r, s in pairs]
    S0 = np.outer(pt.gam - M, pt.gam - M) + pt.N - np.outer(M, M) + np.outer(pt.t, pt.t)
    mean_d = mean_drive()
    qmean = np.array([contract(eX, cX, mean_d) for eX, cX in Xrs])
    unit_d = []
    for a, b in pairs:
        Sb = np.zeros((K, K))
        Sb[a, b] = 1.0
        unit_d.append(noise_drive(Sb))
    Lm = np.array([[contract(eX, cX, d) for d in unit_d] for eX, cX in Xrs])
    svec = np.linalg.solve(np.eye(len(pairs)) - Lm, np.array([S0[r, s] for r, s in pairs]) + qmean)
    S = np.zeros((K, K))
    for i, (r, s) in enumerate(pairs):
        S[r, s] = svec[i]
    q = {pr: svec[i] - S0[pr] for i, pr in enumerate(pairs)}
    noise_d = noise_drive(S)

    def total(eX: np.ndarray, cX: np.ndarray) -> float:
        return contract(eX, cX, mean_d) + contract(eX, cX, noise_d)

    q_s = total(*_quadratic_form_matrices(K, {}, {(0, 0): 1.0}))
    q_w = total(*_quadratic_form_matrices(K, {(0, 0): 1.0}, {}))
    k0, k1, ks, k0p, k1p, ksp, cs = pt.kap
    m0, m1, ms, m0p, m1p, msp, cph = pt.mu
    n_clean = pt.N.copy()
    n_clean[0, 0] -= params.noise_f
    if pt.k:
        n_clean[1:, 1:] -= params.noise_g * np.eye(pt.k)

    def population(r: int) -> float:
        return float((pt.gam[r] - M[r]) ** 2 + q[(r, r)] - M[r] ** 2 + n_clean[r, r] + pt.t[r] ** 2)

    eps_L2 = population(0)
    eps_grad = (m0p**2 + m1p**2 + msp**2) - 2 * m1 * k1 * m + k1**2 * q_s + (k1p**2 + ksp**2) * q_w
    eps_H1: float | None = None
    if pt.k:
        if len(R) > 1:
            eps_H1 = float(np.mean([population(l) for l in range(1, K)]))
        else:
            eps_H1 = float(
                np.mean(
                    [
                        v**2 * (m1 - k1 * m) ** 2
                        + k1**2 * (q_s - m**2)
                        + v**2 * (m1p**2 + msp**2)
                        + (k1p**2 + ksp**2) * q_w
                        for v in pt.vp
                    ]
                )
            )
    GSG = scale**2 * (G @ S @ G)
    train_error = float(GSG[0, 0])
    train_loss = float(sum(GSG[r, r] for r in R) + params.lam * q_w)
    order = {
        "m": m,
        "q_s": q_s,
        "q_w": q_w,
        "V": v_order,
        "Omega": Od.tolist(),
        "M": M.tolist(),
        "S": S[np.ix_(R, R)].tolist(),
    }
    values = [eps_L2, eps_grad, train_loss, train_error] + ([eps_H1] if eps_H1 is not None else [])
    if not all(math.isfinite(v) for v in values):
        raise SolverError(
            "the solution produced a non-finite error; the point is at or too close to the "
            "interpolation threshold for this λ."
        )
    return TheoryResult(
        eps_L2=float(eps_L2),
        eps_H1=eps_H1,
        eps_grad=float(eps_grad),
        train_loss=train_loss,
        train_error_L2=train_error,
        order=order,
        residual=res,
        iterations=iterations,
        converged=True,
        eps_H1_self_averaging=len(R) > 1 or pt.k == 0,
        notes=degeneracy_notes(pt.kap, pt.k, params.tau),
        state=state,
    )


def solve_path(points: list[ModelParams], tol: float = 1e-11) -> list[TheoryResult | UserError]:
    """Solve a sweep in order, each point warm-started from the previous solution (continuation);
    a point that fails is retried from the cold start, and its error is returned in its place."""
    out: list[TheoryResult | UserError] = []
    previous: TheoryResult | None = None
    for params in points:
        try:
            result = solve(params, tol, start=previous)
        except UserError:
            try:
                result = solve(params, tol)
            except UserError as exc:
                out.append(exc)
                previous = None
                continue
        out.append(result)
        previous = result
    return out
