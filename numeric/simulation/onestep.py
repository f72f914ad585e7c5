"""Phase 1 of the one-step model (ONESTEP.md): one full-batch gradient step on the first layer, and the
measured spike of the stepped weights.

Public API (used by :func:`sobolev_rf.numeric.simulation.exact.simulate` for a ``ModelParams`` with
``step`` l2 or sobolev):

- :class:`StepFunctions`: σ, σ′, σ″ (a.e.), φ, φ′ as vectorised NumPy functions (:meth:`StepFunctions.of`);
- :func:`step_first_layer`: Θ₁ from Θ₀ by the step, on its own batch of n₀ = round(α₀·d) samples;
- :func:`measure_spike`: r, γ, the row rescaling, the bulk variance, c_W, ⟨û, v_l⟩ and the ζ shift of a
  stepped Θ₁ (:data:`SPIKE_KEYS`, :data:`SPIKE_VECTOR_KEYS`);
- :func:`seed_step`: the hook the simulator calls between drawing Θ and drawing the readout's data;
- :func:`simulate_spike` (and :func:`spike_seed`): phase 1 alone over seeds, the same draws as ``simulate``.

Symbols. W₀ = Θ₀ᵀ/√d ∈ ℝ^{p×d} (rows w_j = θ_j/√d), second layer a_j = s_j/p with s_j = 1 (``const``) or
fair independent signs (``sign``). On the step batch x_i ~ N(0, I_d), i ≤ n₀, h_ij = w_jᵀx_i, ω_i = θ₀ᵀx_i,
y_i = φ(ω_i) + √Δ_f ε_i, f₀(x) = Σ_j a_jσ(h_j), r_i = y_i − f₀(x_i), gradient labels
ỹ_il = u_ilᵀθ₀ φ′(ω_i) + √Δ_g ε_il and residuals s_il = ỹ_il − u_ilᵀ∇f₀(x_i). The update is
W₁ = W₀ − (η̃p/2)∇_W L₁, i.e.

    Δw_j = η̃ s_j (1/n₀) Σ_i [ r_i σ′(h_ij) x_i + τ₁ Σ_l s_il (σ″(h_ij)⟨w_j, u_il⟩ x_i + σ′(h_ij) u_il) ],

with u_il ~ N(0, I_d) fresh for every (i, l) (``fresh``) or u_il = v_l, the readout's directions, and
τ₁ = τ̃₁/d (``shared``). σ″ is the almost-everywhere second derivative (0 for ReLU).

The measured spike (:func:`measure_spike`): û is the top right-singular vector of W₁ − W₀ (the rank-one
spike dominates it: its norm grows like √p), oriented so that r ≥ 0. The rows are rescaled, w_j → c_j w_j,
with c_j = c₊ for s_j = +1 and c₋ for s_j = −1, each fitted by least squares on the part orthogonal to û;
R = W₁ − diag(c)W₀, t = Rû,

    r = (1/p) Σ_j s_j t_j,  γ = ⟨û, θ₀⟩,  bulk variance b² = (d/(d − 1))·‖R(I − ûûᵀ)‖²_F/p,
    c_W² = (d/(d − 1))·(1/p₊) Σ_{j: s_j = +1} ‖(I − ûûᵀ)w¹_j‖²

(d/(d − 1) restores the one dimension of the isotropic bulk that the projection removes), the part of
the bulk B = R(I − ûûᵀ) that is of the form diag(s)W₀A (A a d×d matrix),

    bulk_linear = (d/(d − 1))·(‖Π B‖²_F − (d/p)‖B‖²_F)/((1 − d/p)·p),  Π the projection on diag(s)W₀'s columns

(a noise independent of W₀ leaves d/p of its energy in Π's range; NaN unless p > d), the slope of the rows'
rescaling in their teacher overlap ρ_j = ⟨θ₀, w⁰_j⟩ beyond the spike,

    overlap_rescaling = Σ_j s_jρ_j⟨B_j, w⁰_j⟩ / Σ_j ρ_j²‖w⁰_j‖²,
    sigma_tt, sigma_te, sigma_ee = d × the covariance over the rows with a_j > 0 of the spike entries
    t_j = ⟨w¹_j, û⟩ and the squared bulk norms e_j = ‖(I − ûûᵀ)w¹_j‖²,
    ⟨û, v_l⟩ and the ζ shift (1/p) Σ_j s_j (ζ¹_jl − c_j ζ⁰_jl), ζ = WV.

The closed forms of the same quantities are :func:`sobolev_rf.derive.spike.spike_theory`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.linalg
from numpy.typing import NDArray

from ...derive.errors import UserError
from ...derive.params import ModelParams

Array = NDArray[np.float64]
VectorFn = Callable[[Array], Any]

#: Scalars measured on the stepped weights (per seed; mean and SE over seeds). ``row_scale_neg`` is the
#: rescaling of the rows with a_j < 0 (NaN for the ``const`` second layer, which has none).
SPIKE_KEYS = (
    "spike_r",
    "spike_gamma",
    "row_scale",
    "row_scale_neg",
    "bulk_variance",
    "bulk_linear",
    "overlap_rescaling",
    "c_W",
    "sigma_tt",
    "sigma_te",
    "sigma_ee",
)
#: Per-direction measurements (length k): ⟨û, v_l⟩ and the ζ shift (1/p)Σ_j s_j(ζ¹_jl − c_jζ⁰_jl).
SPIKE_VECTOR_KEYS = ("spike_overlap_l", "zeta_shift_l")
#: Power iterations for û at most (the spike's gap makes a handful enough).
POWER_ITERATIONS = 200
#: A stepped row longer than this is refused: the step left the model's O(1) regime (η̃ far too large),
#: and the readout would overflow.
MAX_ROW_NORM = 1e6


@dataclass(frozen=True)
class StepFunctions:
    """σ, σ′, σ″ (almost everywhere) of the student and φ, φ′ of the teacher, vectorised."""

    sigma: VectorFn
    dsigma: VectorFn
    d2sigma: VectorFn
    phi: VectorFn
    dphi: VectorFn

    @classmethod
    def of(cls, params: ModelParams) -> StepFunctions:
        """The functions of ``params.activation`` and ``params.teacher`` (:mod:`.functions`)."""
        from .functions import numpy_pair, numpy_second

        sigma, dsigma = numpy_pair(params.activation)
        phi, dphi = numpy_pair(params.teacher)
        return cls(sigma, dsigma, numpy_second(params.activation), phi, dphi)


@dataclass(frozen=True)
class StepSpec:
    """The step at input dimension d: kind (``l2``/``sobolev``), η̃, n₀, τ₁ (already τ̃₁/d for shared
    directions), k₁, directions, second layer and the label noises Δ_f, Δ_g."""

    kind: str
    eta: float
    n0: int
    tau1: float
    k1: int
    dirs: str
    second_layer: str
    noise_f: float
    noise_g: float

    @classmethod
    def of(cls, params: ModelParams, d: int) -> StepSpec:
        if not params.has_step:
            raise UserError("this model point has no first-layer step (step = 'none').")
        sobolev = params.step == "sobolev"
        return cls(
            kind=params.step,
            eta=float(params.eta or 0.0),
            n0=step_batch(params, d),
            tau1=params.step_weight(d),
            k1=int(params.k_step or 0) if sobolev else 0,
            dirs=str(params.step_dirs or "fresh"),
            second_layer=str(params.second_layer or "const"),
            noise_f=params.noise_f,
            noise_g=params.noise_g,
        )

    @property
    def gradient_term(self) -> bool:
        """Whether the step has a Sobolev gradient term (τ₁ > 0 and k₁ ≥ 1)."""
        return self.kind == "sobolev" and self.tau1 > 0 and self.k1 > 0


def step_batch(params: ModelParams, d: int) -> int:
    """n₀ = round(α₀·d), at least 1 (0 without a step)."""
    return max(1, round(float(params.alpha0 or 0.0) * d)) if params.has_step else 0


def step_memory(params: ModelParams, d: int, p: int) -> int:
    """Doubles of working memory of the step and its measurement (an upper estimate)."""
    if not params.has_step:
        return 0
    n0 = step_batch(params, d)
    return 2 * n0 * d + 5 * n0 * p + 5 * p * d


def step_work(params: ModelParams, d: int, p: int) -> float:
    """Floating-point operations of the step (matrix products of n₀×p×d), an estimate."""
    if not params.has_step:
        return 0.0
    k1 = int(params.k_step or 0) if params.step == "sobolev" else 0
    return float((3 + 3 * k1) * step_batch(params, d) * p * d + POWER_ITERATIONS // 10 * p * d)


def step_first_layer(
    fns: StepFunctions,
    spec: StepSpec,
    theta: Array,
    v: Array,
    theta0: Array,
    alignment: Array,
    rng: np.random.Generator,
) -> tuple[Array, Array]:
    """(Θ₁, s): the stepped first layer Θ₁ = √d·W₁ᵀ (d×p) and the second-layer signs s_j = p·a_j.

    ``theta`` Θ₀ (d×p), ``v`` the readout's V (d×k, used by shared directions), ``theta0`` θ₀,
    ``alignment`` ϖ = Vᵀθ₀. ``rng`` draws, in this order, the signs (``sign`` only), the n₀ step inputs,
    the label noise and, per direction l, the fresh directions (``fresh`` only) and the gradient-label
    noise; the noises are drawn also when Δ = 0. η̃ = 0 returns Θ₀ itself (no arithmetic on it).
    """
    d, p = theta.shape
    n0 = spec.n0
    signs = rng.choice(np.array([-1.0, 1.0]), size=p) if spec.second_layer == "sign" else np.ones(p)
    x = rng.standard_normal((n0, d))
    eps_f = rng.standard_normal(n0)
    if spec.eta == 0:
        return theta, signs
    inv_sqrt_d = 1.0 / math.sqrt(d)
    w0 = theta.T * inv_sqrt_d
    h = x @ theta
    h *= inv_sqrt_d
    omega = x @ theta0
    feat = _shape(fns.sigma(h), h.shape)
    dfeat = _shape(fns.dsigma(h), h.shape)
    a = signs / p
    resid = fns.phi(omega) + math.sqrt(spec.noise_f) * eps_f - feat @ a
    del feat
    grad = (dfeat * resid[:, None]).T @ x
    if spec.kind == "sobolev" and spec.k1 > 0:
        d2feat = _shape(fns.d2sigma(h), h.shape)
        dphi = np.asarray(fns.dphi(omega), dtype=np.float64)
        grad_f0 = (dfeat * a) @ w0 if spec.dirs == "fresh" else None
        for l in range(spec.k1):
            u = rng.standard_normal((n0, d)) if grad_f0 is not None else None
            label_noise = math.sqrt(spec.noise_g) * rng.standard_normal(n0)
            if u is not None and grad_f0 is not None:  # fresh directions u_il
                s = (u @ theta0) * dphi + label_noise - np.einsum("id,id->i", u, grad_f0)
                z = u @ w0.T
                z *= d2feat
                z *= s[:, None]
                grad += spec.tau1 * (z.T @ x)
                del z
                grad += spec.tau1 * ((dfeat * s[:, None]).T @ u)
                del u
            else:  # shared directions u_il = v_l: ⟨w_j, v_l⟩ = ζ_jl
                zeta = w0 @ v[:, l]
                s = alignment[l] * dphi + label_noise - (dfeat * a) @ zeta
                grad += spec.tau1 * ((d2feat * zeta[None, :] * s[:, None]).T @ x)
                grad += spec.tau1 * np.outer(dfeat.T @ s, v[:, l])
    with np.errstate(over="ignore", invalid="ignore"):  # a far too large η̃ is refused just below
        grad *= (spec.eta / n0) * signs[:, None]
        theta1 = theta + math.sqrt(d) * grad.T
        longest = float(np.sqrt(np.max(np.sum(theta1 * theta1, axis=0)) / d))
    if not longest <= MAX_ROW_NORM:
        raise UserError(
            f"the first-layer step with η̃ = {spec.eta:g} moved a row of W to norm {longest:.3g} (rows start at norm "
            f"≈ 1, limit {MAX_ROW_NORM:g}): far outside the model's O(1) step; use a smaller --eta."
        )
    return theta1, signs


def _shape(value: Any, shape: tuple[int, ...]) -> Array:
    arr = np.asarray(value, dtype=np.float64)
    return arr if arr.shape == shape else np.broadcast_to(arr, shape).copy()


def _top_right_singular(delta: Array, start: Array) -> Array:
    """The top right-singular vector of ``delta`` (p×d) by power iteration on ΔᵀΔ from ``start``."""
    u = start / (np.linalg.norm(start) or 1.0)
    for _ in range(POWER_ITERATIONS):
        nxt = delta.T @ (delta @ u)
        norm = float(np.linalg.norm(nxt))
        if norm == 0:
            return u
        nxt /= norm
        if float(np.linalg.norm(nxt - u)) < 1e-13:
            return nxt
        u = nxt
    return u


def measure_spike(theta_0: Array, theta_1: Array, signs: Array, theta0: Array, v: Array) -> dict[str, Any]:
    """The spike, row rescaling and bulk of Θ₁ against Θ₀ (module docstring; keys :data:`SPIKE_KEYS` and
    :data:`SPIKE_VECTOR_KEYS`). Without any change (η̃ = 0): r = 0, rescaling 1, bulk 0, γ and ⟨û, v_l⟩ NaN."""
    d, p = theta_0.shape
    k = v.shape[1]
    plus = signs > 0
    minus = ~plus
    if theta_1 is theta_0 or np.array_equal(theta_0, theta_1):
        nan_k = np.full(k, np.nan)
        return {
            "spike_r": 0.0,
            "spike_gamma": math.nan,
            "row_scale": 1.0,
            "row_scale_neg": 1.0 if minus.any() else math.nan,
            "bulk_variance": 0.0,
            "bulk_linear": 0.0,
            "overlap_rescaling": 0.0,
            "c_W": math.sqrt(float(np.sum(theta_0[:, plus] ** 2)) / (d * max(1, int(plus.sum())))),
            "sigma_tt": math.nan,
            "sigma_te": math.nan,
            "sigma_ee": math.nan,
            "spike_overlap_l": nan_k,
            "zeta_shift_l": np.zeros(k),
        }
    inv_sqrt_d = 1.0 / math.sqrt(d)
    w0 = theta_0.T * inv_sqrt_d
    w1 = theta_1.T * inv_sqrt_d
    delta = w1 - w0
    u = _top_right_singular(delta, delta.T @ signs)
    if float(signs @ (delta @ u)) < 0:
        u = -u
    p0, p1 = w0 @ u, w1 @ u
    cross = np.einsum("jd,jd->j", w1, w0) - p1 * p0
    norm0 = np.einsum("jd,jd->j", w0, w0) - p0 * p0
    norm1 = np.einsum("jd,jd->j", w1, w1) - p1 * p1

    def fit(rows: np.ndarray) -> float:
        return float(cross[rows].sum() / norm0[rows].sum()) if rows.any() else math.nan

    c_plus, c_minus = fit(plus), fit(minus)
    c = np.where(plus, c_plus, c_minus)
    resid = w1 - c[:, None] * w0
    t = resid @ u
    # the bulk is isotropic in d dimensions, one of which (û) is projected out: d/(d − 1) restores it
    iso = d / (d - 1)
    bulk = iso * (float(np.sum(resid * resid)) - float(t @ t)) / p
    linear = math.nan
    if p > d:
        bulk_rows = resid - np.outer(t, u)
        basis = signs[:, None] * w0
        # ‖ΠB‖² = ‖L⁻¹(diag(s)W₀)ᵀB‖² with LLᵀ = W₀ᵀW₀ (the Gram matrix of diag(s)W₀)
        factor = scipy.linalg.cholesky(w0.T @ w0, lower=True, check_finite=False)
        inside_rows = scipy.linalg.solve_triangular(factor, basis.T @ bulk_rows, lower=True, check_finite=False)
        total = float(np.sum(bulk_rows * bulk_rows))
        inside = float(np.sum(inside_rows * inside_rows))
        linear = iso * (inside - d / p * total) / ((1 - d / p) * p)
    rho = w0 @ theta0
    along = np.einsum("jd,jd->j", resid - np.outer(t, u), w0)
    overlap = float(np.sum(signs * rho * along) / np.sum(rho * rho * np.einsum("jd,jd->j", w0, w0)))
    # the rows' spread (rows with a_j > 0): spike entries t_j = ⟨w¹_j, û⟩ and squared bulk norms e_j
    spread_t, spread_e = p1[plus] - p1[plus].mean(), norm1[plus] - norm1[plus].mean()
    zeta_0, zeta_1 = w0 @ v, w1 @ v
    zeta_shift = signs @ (zeta_1 - c[:, None] * zeta_0) / p
    return {
        "spike_r": float(signs @ t) / p,
        "spike_gamma": float(u @ theta0),
        "row_scale": c_plus,
        "row_scale_neg": c_minus,
        "bulk_variance": bulk,
        "bulk_linear": linear,
        "overlap_rescaling": overlap,
        "c_W": math.sqrt(iso * float(norm1[plus].mean())),
        "sigma_tt": d * float(np.mean(spread_t * spread_t)),
        "sigma_te": d * float(np.mean(spread_t * spread_e)),
        "sigma_ee": d * float(np.mean(spread_e * spread_e)),
        "spike_overlap_l": v.T @ u,
        "zeta_shift_l": zeta_shift,
    }


def seed_step(
    fns: StepFunctions, params: ModelParams, d: int, rng: np.random.Generator, out: dict[str, Any]
) -> Callable[[Array, Array, Array, Array], Array]:
    """The simulator's hook for one seed: (Θ₀, V, θ₀, ϖ) ↦ Θ₁; the measurement goes into ``out``."""
    spec = StepSpec.of(params, d)

    def hook(theta: Array, v: Array, theta0: Array, alignment: Array) -> Array:
        theta1, signs = step_first_layer(fns, spec, theta, v, theta0, alignment, rng)
        out.update(measure_spike(theta, theta1, signs, theta0, v))
        return theta1

    return hook


def spike_seed(params: ModelParams, d: int, seed: int, fns: StepFunctions | None = None) -> dict[str, Any]:
    """The measured spike of one seed without the readout: the same draws (V, θ₀, Θ₀, then the step
    from its own stream) as :func:`sobolev_rf.numeric.simulation.exact.simulate` at this seed, so the
    values equal the spike keys of its result."""
    from .exact import draw_directions, sizes

    train_seq, _test_seq, step_seq = np.random.SeedSequence(seed).spawn(3)
    rng = np.random.default_rng(train_seq)
    p, _n = sizes(params, d)
    v, theta0 = draw_directions(rng, d, params.alignment or ())
    theta = rng.standard_normal((d, p))
    out: dict[str, Any] = {}
    hook = seed_step(fns or StepFunctions.of(params), params, d, np.random.default_rng(step_seq), out)
    hook(theta, v, theta0, np.asarray(params.alignment or (), dtype=np.float64))
    return out


def simulate_spike(params: ModelParams, d: int, seeds: int | Sequence[int] = 1) -> dict[str, dict[str, Any]]:
    """Phase 1 alone over seeds: {"mean": …, "se": …, "per_seed": …} of :data:`SPIKE_KEYS` and
    :data:`SPIKE_VECTOR_KEYS` (se = sample std/√S, NaN for one seed). Seeds as in ``simulate``."""
    if not params.has_step:
        raise UserError("simulate_spike needs a first-layer step (step = 'l2' or 'sobolev').")
    if isinstance(d, bool) or not isinstance(d, int) or d < 2 or params.k >= d:
        raise UserError(f"d must be an integer >= 2 and > k, got {d!r}.")
    seed_list = list(range(seeds)) if isinstance(seeds, int) else [int(s) for s in seeds]
    if not seed_list:
        raise UserError("simulate_spike needs at least one seed.")
    from .exact import BLAS_THREADS, blas_threads_limited

    fns = StepFunctions.of(params)
    with blas_threads_limited(BLAS_THREADS):  # the bits of ``simulate``, whatever BLAS was given
        runs = [spike_seed(params, d, s, fns) for s in seed_list]
    per_seed = {key: np.array([run[key] for run in runs], dtype=np.float64) for key in SPIKE_KEYS + SPIKE_VECTOR_KEYS}
    count = len(seed_list)
    mean = {key: values.mean(axis=0) for key, values in per_seed.items()}
    se = {
        key: values.std(axis=0, ddof=1) / math.sqrt(count) if count > 1 else np.full_like(values[0], np.nan)
        for key, values in per_seed.items()
    }
    return {"mean": mean, "se": se, "per_seed": per_seed}
