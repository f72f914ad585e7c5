"""The exact finite-size simulator: the ground truth every theory prediction is checked against.

Symbols as in MODEL.md. One *seed* draws

- the student features Θ ∈ ℝ^{d×p}, entries iid N(0, 1) (frozen);
- the gradient directions V = [v₁ … v_k] ∈ ℝ^{d×k} and the teacher θ₀ ∈ ℝ^d with Vᵀθ₀ = ϖ **exactly**
  and ‖θ₀‖ = 1 (see :func:`draw_directions`); or, with ``subspace="informed"`` (outside the theory), V from
  the dominant eigenvectors of a pilot estimate of the gradient covariance, ϖ = Vᵀθ₀ then being an output;
- n training inputs x_i ~ N(0, I_d), h_i = Θᵀx_i/√d ∈ ℝ^p, ω_i = θ₀ᵀx_i, labels
  y_i = φ(ω_i) + √Δ_f ε_i and gradient labels ỹ_il = ϖ_l φ′(ω_i) + √Δ_g ε_il;
- ζ_jl = θ_jᵀv_l/√d, i.e. ζ = ΘᵀV/√d ∈ ℝ^{p×k}.

It trains w by the closed form of the Sobolev loss
L(w) = (1/n) Σ_i [(y_i − f_w(x_i))² + τ Σ_l (ỹ_il − v_lᵀ∇f_w(x_i))²] + λ‖w‖², i.e. ridge regression on the
n function rows σ(h_i) and, for τ > 0, the k·n gradient rows √τ·σ′(h_i) ⊙ ζ_l with labels √τ·ỹ_il (:func:`fit`;
any real τ ≥ 0, so the gradient-label noise Δ_g enters with weight τ), and estimates
on a fresh noiseless test set (:func:`estimate_test_errors`)

- eps_L2   = E_x (φ(ω) − f_w(x))²,
- eps_H1   = (1/k) Σ_l E_x (ϖ_l φ′(ω) − Σ_j w_j σ′(h_j) ζ_jl)²   (NaN when k = 0),
- eps_grad = E_x ‖θ₀ φ′(ω) − ∇_x f_w(x)‖²,  ∇_x f_w(x) = Θ(w ⊙ σ′(h))/√d,

together with the training loss, the training L2 error, the order parameters of THEORY.md §2
(:func:`order_parameters`) and the realised alignment ϖ = Vᵀθ₀. :func:`simulate` averages over seeds and reports
means and standard errors.

Determinism: with one BLAS library on one kind of CPU, a seed's result depends only on (point, d, seed), bit for
bit. The random draws are fixed by the seed; the rounding of the BLAS products depends on how many threads split
them, so the simulator runs BLAS on one thread (:data:`BLAS_THREADS`, through threadpoolctl) unless its caller
asks otherwise (``blas_threads``).

The features are pluggable (:class:`FeatureMap`): :class:`ExactFeatures` applies σ, σ′, φ, φ′ themselves;
:class:`GaussianEquivalentFeatures` replaces them by their Gaussian-equivalent linearisations (THEORY.md §1),
which separates the Gaussian-equivalence error from the other finite-size effects.
"""

from __future__ import annotations

import contextlib
import functools
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import scipy.linalg
from numpy.typing import NDArray
from scipy.linalg.blas import dsyrk

from ...derive.errors import UserError
from ...derive.params import ModelParams
from .onestep import SPIKE_KEYS, SPIKE_VECTOR_KEYS, StepFunctions, seed_step, step_memory, step_work

Array = NDArray[np.float64]
VectorFn = Callable[[Array], Any]

#: Scalar quantities reported per seed (each also gets a standard error).
SCALAR_KEYS = ("eps_L2", "eps_H1", "eps_grad", "train_loss", "train_error_L2", "m", "q_s", "q_w", "s_a")
#: Per-direction quantities (length-k vectors): s_l, m_l, q_{s,l}, q_{w,l} and the realised alignment
#: ϖ = Vᵀθ₀ (the prescribed ϖ for random V; an output of the draw for informed V).
VECTOR_KEYS = ("s_l", "m_l", "q_s_l", "q_w_l", "alignment")
#: Keys of a Gaussian-equivalent coefficient dictionary (student κ's or teacher μ's).
GE_KEYS = ("kappa0", "kappa1", "kappa_star", "kappa0_prime", "kappa1_prime", "kappa_star_prime", "cross")
#: Constructions of V (:func:`draw_directions`): "random" is the model; "informed" is outside the theory.
SUBSPACES = ("random", "informed")
MODELS = ("exact", "gaussian_equivalent")

#: Test points per batch: bounds the test-time memory to about batch·(4p + 3d) doubles.
TEST_BATCH = 1000
#: Problems whose estimated working memory exceeds this many bytes are refused.
MEMORY_LIMIT_BYTES = 8 * 2**30
#: BLAS threads of a simulation unless the caller chooses: one, so that results do not depend on the machine's
#: core count (more threads round the same products differently, at the level of 1e-15).
BLAS_THREADS = 1


@functools.cache
def _blas_controller() -> Any:
    """threadpoolctl's view of the BLAS libraries loaded with NumPy and SciPy (inspected once)."""
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()


@contextlib.contextmanager
def blas_threads_limited(threads: int | None) -> Iterator[None]:
    """Run the block with BLAS on ``threads`` threads (None: leave the BLAS setting as it is)."""
    if threads is None:
        yield
        return
    with _blas_controller().limit(limits=threads, user_api="blas"):
        yield


class FeatureMap(Protocol):
    """Student features and teacher outputs at a batch of inputs.

    Called with h = Θᵀx/√d for a batch (B×p), ω = θ₀ᵀx (length B) and a random generator; returns
    (σ(h), σ′(h), φ(ω), φ′(ω)) as float64 arrays of shapes (B×p, B×p, B, B) — or their Gaussian
    equivalents, which need the generator. Callers never modify the returned arrays.
    """

    def __call__(self, h: Array, omega: Array, rng: np.random.Generator) -> tuple[Array, Array, Array, Array]: ...


def _as_shape(value: Any, shape: tuple[int, ...], name: str) -> Array:
    """``value`` as a C-contiguous float64 array of ``shape`` (broadcasting scalars such as σ′ ≡ 1)."""
    arr = np.asarray(value, dtype=np.float64)
    if arr.shape != shape:
        try:
            arr = np.broadcast_to(arr, shape)
        except ValueError:
            raise UserError(f"{name} returned an array of shape {arr.shape}, expected {shape}.") from None
    return np.ascontiguousarray(arr)


@dataclass(frozen=True)
class ExactFeatures:
    """The model itself: σ, σ′ (student) and φ, φ′ (teacher) as vectorised callables."""

    sigma: VectorFn
    dsigma: VectorFn
    phi: VectorFn
    dphi: VectorFn

    def __call__(self, h: Array, omega: Array, rng: np.random.Generator) -> tuple[Array, Array, Array, Array]:
        """(σ(h), σ′(h), φ(ω), φ′(ω)); ``rng`` is unused (the exact model has no extra randomness)."""
        return (
            _as_shape(self.sigma(h), h.shape, "sigma"),
            _as_shape(self.dsigma(h), h.shape, "sigma'"),
            _as_shape(self.phi(omega), omega.shape, "phi"),
            _as_shape(self.dphi(omega), omega.shape, "phi'"),
        )


def _ge_coefficients(coeffs: Mapping[str, float] | None, who: str) -> tuple[float, ...]:
    """Validate a Gaussian-equivalent coefficient dict; return its :data:`GE_KEYS` values and the correlation.

    The residual correlation is ρ = cross/(κ_*κ_*′); it is irrelevant (set to 0) when κ_*κ_*′ = 0.
    """
    if coeffs is None:
        raise UserError(f"model='gaussian_equivalent' needs the {who} coefficients {', '.join(GE_KEYS)}.")
    missing = [key for key in GE_KEYS if key not in coeffs]
    if missing:
        raise UserError(f"{who} Gaussian-equivalent coefficients lack {', '.join(missing)}.")
    values = []
    for key in GE_KEYS:
        try:
            x = float(coeffs[key])
        except (TypeError, ValueError):
            raise UserError(f"{who} coefficient {key} must be a real number, got {coeffs[key]!r}.") from None
        if not math.isfinite(x):
            raise UserError(f"{who} coefficient {key} must be finite, got {coeffs[key]!r}.")
        values.append(x)
    k0, k1, ks, k0p, k1p, ksp, cross = values
    if ks < 0 or ksp < 0:
        raise UserError(
            f"{who} coefficients kappa_star and kappa_star_prime must be >= 0 (they are standard "
            f"deviations), got {ks} and {ksp}."
        )
    scale = ks * ksp
    rho = cross / scale if scale > 0 else 0.0
    if abs(rho) > 1 + 1e-9 or (scale == 0 and abs(cross) > 1e-12):
        raise UserError(
            f"{who} coefficient cross = {cross} is not a covariance of residuals with standard "
            f"deviations {ks} and {ksp} (need |cross| <= kappa_star * kappa_star_prime)."
        )
    return k0, k1, ks, k0p, k1p, ksp, min(max(rho, -1.0), 1.0)


def _correlated_pair(rng: np.random.Generator, shape: tuple[int, ...], rho: float) -> tuple[Array, Array]:
    """Standard Gaussian arrays (η, η′) of ``shape`` with entrywise correlation ρ, entries otherwise iid."""
    eta = rng.standard_normal(shape)
    eta_prime = rng.standard_normal(shape)
    eta_prime *= math.sqrt(1.0 - rho * rho)
    eta_prime += rho * eta
    return eta, eta_prime


class GaussianEquivalentFeatures:
    """Gaussian-equivalent features (THEORY.md §1), coefficients given as dicts with keys :data:`GE_KEYS`.

    σ(h_ij) → κ₀ + κ₁h_ij + κ_*η_ij and σ′(h_ij) → κ₀′ + κ₁′h_ij + κ_*′η′_ij, with η, η′ standard Gaussian,
    iid over entries, corr(η_ij, η′_ij) = c_σ/(κ_*κ_*′) where ``cross`` = c_σ = E σσ′ − κ₀κ₀′ − κ₁κ₁′ is the
    covariance of the residuals. One η′ serves all k directions (only ζ_l differs between gradient rows).
    The teacher likewise: φ(ω) → μ₀ + μ₁ω + μ_*u, φ′(ω) → μ₀′ + μ₁′ω + μ_*′u′ with corr(u, u′) = c_φ/(μ_*μ_*′).
    Every call draws fresh η, η′, u, u′, so the test set gets its own equivalent features.
    """

    def __init__(self, student: Mapping[str, float] | None, teacher: Mapping[str, float] | None) -> None:
        self.student = _ge_coefficients(student, "student")
        self.teacher = _ge_coefficients(teacher, "teacher")

    def __call__(self, h: Array, omega: Array, rng: np.random.Generator) -> tuple[Array, Array, Array, Array]:
        """(κ₀ + κ₁h + κ_*η, κ₀′ + κ₁′h + κ_*′η′, μ₀ + μ₁ω + μ_*u, μ₀′ + μ₁′ω + μ_*′u′)."""
        k0, k1, ks, k0p, k1p, ksp, rho = self.student
        feat, dfeat = _correlated_pair(rng, h.shape, rho)
        feat *= ks
        feat += k1 * h
        feat += k0
        dfeat *= ksp
        dfeat += k1p * h
        dfeat += k0p
        m0, m1, ms, m0p, m1p, msp, rho_t = self.teacher
        phi, dphi = _correlated_pair(rng, omega.shape, rho_t)
        phi *= ms
        phi += m1 * omega
        phi += m0
        dphi *= msp
        dphi += m1p * omega
        dphi += m0p
        return feat, dfeat, phi, dphi


@dataclass(frozen=True)
class Problem:
    """One drawn training set.

    ``theta`` Θ (d×p), ``v`` V (d×k), ``theta0`` θ₀ (d), ``zeta`` ζ = ΘᵀV/√d (p×k), ``alignment`` ϖ (k),
    ``x`` X (n×d), ``feat`` σ(H) and ``dfeat`` σ′(H) with H = XΘ/√d (n×p), ``y`` (n), ``y_grad`` ỹ (n×k),
    ``tau`` τ ≥ 0, the weight of the gradient rows in the training loss (they enter the design as √τ·rows
    with labels √τ·ỹ; τ = 0: not at all).
    """

    theta: Array
    v: Array
    theta0: Array
    zeta: Array
    alignment: Array
    x: Array
    feat: Array
    dfeat: Array
    y: Array
    y_grad: Array
    tau: float

    @property
    def d(self) -> int:
        return self.theta.shape[0]

    @property
    def n(self) -> int:
        return self.feat.shape[0]

    @property
    def p(self) -> int:
        return self.theta.shape[1]

    @property
    def k(self) -> int:
        return self.zeta.shape[1]

    @property
    def rows(self) -> int:
        """N = n(1 + k) for τ > 0 and n for τ = 0, the number of rows of the ridge design."""
        return self.n * (1 + self.k) if self.tau > 0 else self.n

    @property
    def grad_scale(self) -> float:
        """√τ, the factor of every gradient row and gradient label in the ridge design."""
        return math.sqrt(self.tau)


def _unit_orthogonal(rng: np.random.Generator, q: Array) -> Array:
    """A uniformly random unit vector orthogonal to the columns of the orthonormal ``q`` (d×r, r < d)."""
    g: Array = np.asarray(rng.standard_normal(q.shape[0]))
    g = g - q @ (q.T @ g)
    return g / float(np.linalg.norm(g))


def _informed_basis(rng: np.random.Generator, grads: Array, k: int) -> Array:
    """The top-k right singular vectors of the pilot gradients G (m×d) as a d×k orthonormal matrix.

    They are the dominant eigenvectors of Ĉ = GᵀG/m, from the thin SVD of G (O(m·d·min(m, d)), no d×d
    eigendecomposition). Each sign is chosen from the data: u_l is flipped so that the pilot mean of
    u_lᵀ∇y, i.e. the sum of the l-th left singular vector, is >= 0. Directions the pilot data do not determine
    (singular value zero to working precision: k > rank G, e.g. k > 1 with noiseless pilot gradients, or
    m < k) are completed by uniformly random orthonormal directions orthogonal to the determined ones.
    """
    m, d = grads.shape
    u, s, vt = scipy.linalg.svd(grads, full_matrices=False, check_finite=False)
    tol = (s[0] if s.size else 0.0) * max(m, d) * np.finfo(np.float64).eps
    rank = min(k, int(np.sum(s > tol)) if s.size and s[0] > 0 else 0)
    basis = np.empty((d, k))
    for l in range(rank):
        sign = -1.0 if float(np.sum(u[:, l])) < 0 else 1.0
        basis[:, l] = sign * vt[l]
    if rank < k:
        extra = rng.standard_normal((d, k - rank))
        if rank:
            extra -= basis[:, :rank] @ (basis[:, :rank].T @ extra)
        basis[:, rank:] = np.linalg.qr(extra)[0]
        if rank:  # one more projection against round-off
            basis[:, rank:] -= basis[:, :rank] @ (basis[:, :rank].T @ basis[:, rank:])
            basis[:, rank:] = np.linalg.qr(basis[:, rank:])[0]
    return basis


def draw_directions(
    rng: np.random.Generator,
    d: int,
    alignment: Sequence[float],
    subspace: str = "random",
    *,
    pilot: int | None = None,
    noise_g: float = 0.0,
    dphi: VectorFn | None = None,
) -> tuple[Array, Array]:
    """Draw (V, θ₀) with ‖θ₀‖ = 1.

    ``subspace="random"`` (the model, MODEL.md): Vᵀθ₀ = ϖ exactly. V has iid N(0, 1) entries (columns of
    norm ≈ √d, not normalised) and θ₀ = V(VᵀV)⁻¹ϖ + t·u, with u a uniformly random unit vector orthogonal to
    span(V) and t = √(1 − ϖᵀ(VᵀV)⁻¹ϖ); this needs ϖᵀ(VᵀV)⁻¹ϖ < 1 (≈ ‖ϖ‖²/d), otherwise d is too small
    for this ϖ. ``pilot``, ``noise_g`` and ``dphi`` are not used.

    ``subspace="informed"`` (data-informed gradient subspace, OUTSIDE the d → ∞ theory): θ₀ is uniform on
    the unit sphere; m = ``pilot`` (default d) pilot samples give noisy full gradients of the teacher
    ∇y(x_i) = θ₀ φ′(ω_i) + √Δ_g ε_i, ε_i ~ N(0, I_d), Δ_g = ``noise_g``, φ′ = ``dphi`` (ω_i = θ₀ᵀx_i ~ N(0, 1)
    is drawn directly: the gradients depend on x_i only through it); V = √d·[u₁ … u_k] with u_l the dominant
    eigenvectors of Ĉ = (1/m)Σ_i ∇y(x_i)∇y(x_i)ᵀ (:func:`_informed_basis`: thin SVD, signs from the data).
    Columns have norm exactly √d, as in the model. The true gradient covariance E φ′² θ₀θ₀ᵀ + Δ_g I has a
    rank-one signal, so v₁ ≈ √d·θ₀ and ϖ₁ = v₁ᵀθ₀ ≈ √d (an alignment growing with d, which the theory at
    fixed ϖ = O(1) does not describe), while v₂ … v_k are noise-dominated. The alignment ϖ = Vᵀθ₀ is an
    output of the draw (compute it from the returned V, θ₀); only k = len(``alignment``) is used, its values
    are ignored.
    """
    varpi = np.asarray(alignment, dtype=np.float64)
    k = varpi.shape[0]
    if subspace not in SUBSPACES:
        raise UserError(f"subspace must be one of {', '.join(SUBSPACES)}, got {subspace!r}.")
    if k >= d:
        raise UserError(f"k = {k} gradient directions need d > k, got d = {d}.")
    if subspace == "informed":
        if dphi is None:
            raise UserError("subspace='informed' needs the teacher derivative dphi for the pilot gradients.")
        m = d if pilot is None else pilot
        if not _is_int(m) or m < 1:
            raise UserError(f"pilot must be an integer >= 1, got {pilot!r}.")
        theta0 = rng.standard_normal(d)
        theta0 /= np.linalg.norm(theta0)
        omega = rng.standard_normal(int(m))
        grads = rng.standard_normal((int(m), d))
        grads *= math.sqrt(noise_g)
        grads += np.outer(_as_shape(dphi(omega), omega.shape, "phi'"), theta0)
        v = _informed_basis(rng, grads, k)
        v *= math.sqrt(d)
        return v, theta0
    v = rng.standard_normal((d, k))
    q, r = np.linalg.qr(v)
    coef = scipy.linalg.solve_triangular(r, varpi, trans="T") if k else varpi
    radius2 = float(coef @ coef)  # ϖᵀ(VᵀV)⁻¹ϖ
    if radius2 >= 1.0:
        raise UserError(
            f"d = {d} is too small for alignment {tuple(varpi.tolist())}: ϖᵀ(VᵀV)⁻¹ϖ = "
            f"{radius2:.3g} >= 1, so no unit θ₀ has Vᵀθ₀ = ϖ; increase d or reduce |ϖ|."
        )
    theta0 = q @ coef + math.sqrt(1.0 - radius2) * _unit_orthogonal(rng, q)
    return v, theta0


def _teacher_derivative(features: FeatureMap, rng: np.random.Generator) -> VectorFn:
    """ω ↦ φ′(ω) of a feature map (its fourth output; the student part is evaluated at a dummy h = 0)."""
    return lambda omega: features(np.zeros((omega.shape[0], 1)), omega, rng)[3]


def draw_problem(
    features: FeatureMap,
    d: int,
    p: int,
    n: int,
    alignment: Sequence[float],
    tau: float,
    noise_f: float,
    noise_g: float,
    rng: np.random.Generator,
    subspace: str = "random",
    pilot: int | None = None,
    step: Callable[[Array, Array, Array, Array], Array] | None = None,
) -> Problem:
    """Draw Θ, (V, θ₀) (:func:`draw_directions`), X and the noisy labels y, ỹ of one training set.

    ``step`` (the one-step model, :mod:`.onestep`): called as step(Θ₀, V, θ₀, ϖ) right after Θ is drawn,
    it returns the first layer Θ₁ the readout uses; it draws from its own generator, so the readout's
    draw is the same with and without a step.

    The noises ε, ε_l are always drawn (also when Δ = 0), so Δ_f, Δ_g change nothing else in the draw.
    For ``subspace="informed"`` the alignment ϖ = Vᵀθ₀ is the realised one (``alignment`` only gives k) and
    ``pilot`` is the number m of pilot gradients (default d), whose noise variance is Δ_g.
    """
    if subspace == "informed":
        v, theta0 = draw_directions(
            rng, d, alignment, subspace, pilot=pilot, noise_g=noise_g, dphi=_teacher_derivative(features, rng)
        )
        varpi = v.T @ theta0
    else:
        v, theta0 = draw_directions(rng, d, alignment, subspace)
        varpi = np.asarray(alignment, dtype=np.float64)
    theta = rng.standard_normal((d, p))
    if step is not None:
        theta = step(theta, v, theta0, varpi)
    inv_sqrt_d = 1.0 / math.sqrt(d)
    zeta = theta.T @ v
    zeta *= inv_sqrt_d
    x = rng.standard_normal((n, d))
    h = x @ theta
    h *= inv_sqrt_d
    feat, dfeat, phi, dphi = features(h, x @ theta0, rng)
    del h
    y = phi + math.sqrt(noise_f) * rng.standard_normal(n)
    y_grad = np.outer(dphi, varpi) + math.sqrt(noise_g) * rng.standard_normal((n, varpi.shape[0]))
    return Problem(theta, v, theta0, zeta, varpi, x, feat, dfeat, y, y_grad, _weight(tau))


def _weight(tau: Any) -> float:
    """τ as a float, refused unless finite and >= 0 (bool is not a weight)."""
    if isinstance(tau, bool):
        raise UserError(f"tau must be a number >= 0, got {tau!r}.")
    try:
        value = float(tau)
    except (TypeError, ValueError):
        raise UserError(f"tau must be a number >= 0, got {tau!r}.") from None
    if not (math.isfinite(value) and value >= 0):
        raise UserError(f"tau must be a finite number >= 0, got {tau!r}.")
    return value


def design(problem: Problem) -> tuple[Array, Array]:
    """The ridge design A ∈ ℝ^{N×p} and targets b ∈ ℝ^N (N = n(1 + k) for τ > 0, n for τ = 0).

    A stacks the function rows σ(H) and, for τ > 0, the gradient blocks √τ·σ′(H)D_l (D_l = diag(ζ_l));
    b stacks y and √τ·ỹ_l in the same order, so that ‖Aw − b‖²/n is the Sobolev loss without the ridge.
    """
    n = problem.n
    k = problem.k if problem.tau > 0 else 0
    scale = problem.grad_scale
    a = np.empty((problem.rows, problem.p))
    a[:n] = problem.feat
    for l in range(k):
        block = a[(l + 1) * n : (l + 2) * n]
        np.multiply(problem.dfeat, problem.zeta[:, l], out=block)
        if scale != 1.0:
            block *= scale
    b = np.concatenate([problem.y, scale * problem.y_grad[:, :k].T.ravel()])
    return a, b


def _cholesky_solve(gram_upper: Array, shift: float, rhs: Array) -> Array:
    """Solve (G + shift·I)z = rhs for symmetric positive definite G given by its upper triangle (overwritten)."""
    gram_upper[np.diag_indices_from(gram_upper)] += shift
    factor = scipy.linalg.cho_factor(gram_upper, lower=False, overwrite_a=True, check_finite=False)
    return scipy.linalg.cho_solve(factor, rhs, check_finite=False)


def fit(problem: Problem, lam: float) -> Array:
    """The minimiser w of L(w): w = (AᵀA + nλI)⁻¹Aᵀb.

    λ > 0: Cholesky on the smaller of the primal p×p system and the dual N×N system
    w = Aᵀ(AAᵀ + nλI)⁻¹b (primal when p ≤ N). The primal Gram matrix is assembled without A:
    AᵀA = σ(H)ᵀσ(H) + τ (σ′(H)ᵀσ′(H)) ⊙ (ζζᵀ), since Σ_l D_l S D_l = S ⊙ Σ_l ζ_lζ_lᵀ, and
    Aᵀb = σ(H)ᵀy + τ Σ_l D_l σ′(H)ᵀỹ_l.
    λ = 0: the limit λ → 0⁺, i.e. the minimum-norm least-squares solution A⁺b (SVD-based ``gelsd``,
    singular values below ε_mach·max(N, p)·s_max treated as zero): the least-squares solution when
    underparameterised, the minimum-norm interpolant when overparameterised.
    """
    n, p, rows = problem.n, problem.p, problem.rows
    if lam == 0:
        a, b = design(problem)
        cond = np.finfo(np.float64).eps * max(a.shape)
        w, *_ = scipy.linalg.lstsq(
            a, b, cond=cond, lapack_driver="gelsd", overwrite_a=True, overwrite_b=True, check_finite=False
        )
        return w
    if p <= rows:
        gram = dsyrk(1.0, problem.feat.T)
        rhs = problem.feat.T @ problem.y
        if problem.tau > 0 and problem.k:
            grad_gram = dsyrk(problem.tau, problem.dfeat.T)
            grad_gram *= problem.zeta @ problem.zeta.T
            gram += grad_gram
            del grad_gram
            rhs += problem.tau * np.einsum("jl,jl->j", problem.dfeat.T @ problem.y_grad, problem.zeta)
        return _cholesky_solve(gram, n * lam, rhs)
    a, b = design(problem)
    alpha = _cholesky_solve(dsyrk(1.0, a.T, trans=1), n * lam, b)
    return a.T @ alpha


def student_predictions(feat: Array, dfeat: Array, w: Array, zeta: Array) -> tuple[Array, Array]:
    """f_w(x) = σ(h)ᵀw and the projected gradients v_lᵀ∇f_w(x) = Σ_j w_j σ′(h_j)ζ_jl for a batch.

    ``feat``, ``dfeat``: σ(h), σ′(h) (B×p). Returns (B,) and (B×k).
    """
    return feat @ w, dfeat @ (zeta * w[:, None])


def student_gradient(dfeat: Array, w: Array, theta: Array) -> Array:
    """∇_x f_w(x) = Θ(w ⊙ σ′(h))/√d for a batch, as a (B×d) matrix product (no B×p×d tensor)."""
    grad = (dfeat * w) @ theta.T
    grad *= 1.0 / math.sqrt(theta.shape[0])
    return grad


def batch_error_sums(problem: Problem, w: Array, features: FeatureMap, x: Array, rng: np.random.Generator) -> Array:
    """Σ over the batch ``x`` (B×d) of the three noiseless test losses.

    Returns [Σ (φ(ω) − f_w(x))², Σ (1/k)Σ_l (ϖ_l φ′(ω) − v_lᵀ∇f_w(x))² (NaN when k = 0),
    Σ ‖θ₀φ′(ω) − ∇_x f_w(x)‖²]. ``rng`` feeds the Gaussian-equivalent features.
    """
    h = x @ problem.theta
    h *= 1.0 / math.sqrt(problem.d)
    feat, dfeat, phi, dphi = features(h, x @ problem.theta0, rng)
    del h
    f, grad_proj = student_predictions(feat, dfeat, w, problem.zeta)
    err_l2 = float(np.sum((phi - f) ** 2))
    if problem.k:
        grad_proj -= np.outer(dphi, problem.alignment)
        err_h1 = float(np.sum(grad_proj**2)) / problem.k
    else:
        err_h1 = math.nan
    grad = student_gradient(dfeat, w, problem.theta)
    grad -= np.outer(dphi, problem.theta0)
    return np.array([err_l2, err_h1, float(np.sum(grad**2))])


def estimate_test_errors(
    problem: Problem, w: Array, features: FeatureMap, n_test: int, rng: np.random.Generator, batch: int = TEST_BATCH
) -> dict[str, float]:
    """eps_L2, eps_H1, eps_grad as averages over ``n_test`` fresh inputs x ~ N(0, I_d), in batches."""
    sums = np.zeros(3)
    for start in range(0, n_test, batch):
        size = min(batch, n_test - start)
        sums += batch_error_sums(problem, w, features, rng.standard_normal((size, problem.d)), rng)
    sums /= n_test
    return {"eps_L2": float(sums[0]), "eps_H1": float(sums[1]), "eps_grad": float(sums[2])}


def train_errors(problem: Problem, w: Array, lam: float) -> dict[str, float]:
    """train_loss = L(w) (gradient term weighted by τ) and train_error_L2 = (1/n)Σ_i (y_i − f_w(x_i))²."""
    f, grad_proj = student_predictions(problem.feat, problem.dfeat, w, problem.zeta)
    err_l2 = float(np.mean((problem.y - f) ** 2))
    grad_term = problem.tau * float(np.sum((problem.y_grad - grad_proj) ** 2)) / problem.n if problem.tau > 0 else 0.0
    return {"train_loss": err_l2 + grad_term + lam * float(w @ w), "train_error_L2": err_l2}


def order_parameters(problem: Problem, w: Array) -> dict[str, Any]:
    """The overlaps of THEORY.md §2.

    m = θ₀ᵀΘw/√d, q_s = ‖Θw‖²/d, q_w = ‖w‖², s_a = 1ᵀw, and per direction l (length-k arrays)
    s_l = ζ_lᵀw, m_l = θ₀ᵀΘD_l w/√d, q_s_l = ‖ΘD_l w‖²/d, q_w_l = ‖D_l w‖², D_l = diag(ζ_l).
    """
    d = problem.d
    sqrt_d = math.sqrt(d)
    tw = problem.theta @ w
    zw = problem.zeta * w[:, None]
    tzw = problem.theta @ zw
    return {
        "m": float(problem.theta0 @ tw) / sqrt_d,
        "q_s": float(tw @ tw) / d,
        "q_w": float(w @ w),
        "s_a": float(np.sum(w)),
        "s_l": problem.zeta.T @ w,
        "m_l": (problem.theta0 @ tzw) / sqrt_d,
        "q_s_l": np.sum(tzw**2, axis=0) / d,
        "q_w_l": np.sum(zw**2, axis=0),
    }


def sizes(params: ModelParams, d: int) -> tuple[int, int]:
    """(p, n) = (round(p_over_d·d), round(n_over_d·d)), each at least 1."""
    return max(1, round(params.p_over_d * d)), max(1, round(params.n_over_d * d))


def default_n_test(p: int) -> int:
    """max(2000, 2p) test points: the Monte-Carlo relative error of each test error, ≈ √(2/n_test) for
    Gaussian-like residuals, then shrinks with the size like the O(1/√d) finite-size effects."""
    return max(2000, 2 * p)


def memory_estimate(
    d: int, p: int, n: int, k: int, tau: float, lam: float, batch: int = TEST_BATCH, pilot: int = 0
) -> int:
    """Working memory in bytes of one seed (an upper estimate, float64).

    Θ, X, three n×p feature arrays (H, σ(H), σ′(H); two more noise arrays for Gaussian-equivalent
    features), the linear system (primal: three p×p arrays; dual: A and AAᵀ; λ = 0: A twice plus the SVD
    workspace), the test batches (about batch·(4p + 3d)) and the pilot gradients of an informed draw with
    ``pilot`` = m samples (G and its thin SVD: about 2md + 2·min(m, d)·max(m, d)).
    """
    rows = n * (1 + k) if tau > 0 else n
    doubles = d * p + n * d + 5 * n * p
    if lam == 0:
        doubles += 2 * rows * p + 2 * min(rows, p) ** 2
    elif p <= rows:
        doubles += 3 * p * p
    else:
        doubles += rows * p + rows * rows
    doubles += batch * (4 * p + 3 * d)
    if pilot:
        doubles += 2 * pilot * d + 2 * min(pilot, d) * max(pilot, d)
    return 8 * doubles


#: Refuse simulations beyond this many floating-point operations (about an hour at 30 GFLOP/s).
WORK_LIMIT_FLOPS = 1e14


def _is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _seed_list(seeds: int | Sequence[int]) -> tuple[int, ...]:
    """``seeds`` as a tuple: an int S means the seeds 0, …, S−1; a sequence is taken as given."""
    if isinstance(seeds, (int, np.integer)) and not isinstance(seeds, bool):
        if seeds < 1:
            raise UserError(f"seeds must be >= 1, got {seeds}.")
        return tuple(range(int(seeds)))
    if (
        isinstance(seeds, Sequence)
        and not isinstance(seeds, str)
        and seeds
        and all(_is_int(s) and s >= 0 for s in seeds)
    ):
        return tuple(int(s) for s in seeds)
    raise UserError(
        f"seeds must be a positive integer or a non-empty sequence of non-negative integers, got {seeds!r}."
    )


def _positive_int(name: str, value: Any, minimum: int) -> int:
    if not _is_int(value) or value < minimum:
        raise UserError(f"{name} must be an integer >= {minimum}, got {value!r}.")
    return int(value)


def run_seed(
    features: FeatureMap,
    params: ModelParams,
    d: int,
    seed: int,
    n_test: int,
    subspace: str = "random",
    batch: int = TEST_BATCH,
    pilot: int | None = None,
    step_functions: StepFunctions | None = None,
) -> dict[str, Any]:
    """All reported quantities (:data:`SCALAR_KEYS`, :data:`VECTOR_KEYS`, and for a point with a
    first-layer step :data:`~.onestep.SPIKE_KEYS`, :data:`~.onestep.SPIKE_VECTOR_KEYS`) of one seed.

    The seed's ``SeedSequence`` spawns three streams: the training draw, the test set and the first-layer
    step, so the training draw depends neither on ``n_test`` nor on the step (η̃ = 0 gives the
    random-features numbers bit for bit).
    """
    train_seq, test_seq, step_seq = np.random.SeedSequence(seed).spawn(3)
    p, n = sizes(params, d)
    spike: dict[str, Any] = {}
    step = None
    if params.has_step:
        if step_functions is None:
            raise UserError("a model point with a first-layer step needs step_functions (σ, σ′, σ″, φ, φ′).")
        step = seed_step(step_functions, params, d, np.random.default_rng(step_seq), spike)
    problem = draw_problem(
        features,
        d,
        p,
        n,
        params.alignment or (),
        params.tau,
        params.noise_f,
        params.noise_g,
        np.random.default_rng(train_seq),
        subspace,
        pilot,
        step,
    )
    w = fit(problem, params.lam)
    out: dict[str, Any] = estimate_test_errors(problem, w, features, n_test, np.random.default_rng(test_seq), batch)
    out.update(train_errors(problem, w, params.lam))
    out.update(order_parameters(problem, w))
    out["alignment"] = problem.alignment.copy()
    out.update(spike)
    return out


def result_keys(params: ModelParams) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(scalar keys, vector keys) reported for ``params``: the spike's too when it has a first-layer step."""
    if params.has_step:
        return SCALAR_KEYS + SPIKE_KEYS, VECTOR_KEYS + SPIKE_VECTOR_KEYS
    return SCALAR_KEYS, VECTOR_KEYS


@dataclass(frozen=True)
class SimulationResult:
    """Per-seed values and their mean and standard error over seeds.

    ``per_seed[key]`` has shape (S,) for :data:`SCALAR_KEYS` and (S, k) for :data:`VECTOR_KEYS`;
    ``mean`` and ``se`` reduce over seeds; se = sample std (ddof = 1)/√S, NaN for a single seed (no spread
    can be estimated). eps_H1 is NaN when k = 0. ``pilot`` is the number m of pilot gradients of an informed
    draw (None for random V); ``per_seed["alignment"]`` holds the realised ϖ = Vᵀθ₀ of every seed.
    """

    params: ModelParams
    d: int
    p: int
    n: int
    n_test: int
    seeds: tuple[int, ...]
    subspace: str
    model: str
    per_seed: dict[str, Array]
    mean: dict[str, Any]
    se: dict[str, Any]
    pilot: int | None = None

    @property
    def scalar_keys(self) -> tuple[str, ...]:
        """The scalar quantities of this result: :data:`SCALAR_KEYS`, and the measured spike
        (:data:`~.onestep.SPIKE_KEYS`) for a point with a first-layer step."""
        return result_keys(self.params)[0]

    @property
    def vector_keys(self) -> tuple[str, ...]:
        """The per-direction quantities: :data:`VECTOR_KEYS` (and :data:`~.onestep.SPIKE_VECTOR_KEYS`)."""
        return result_keys(self.params)[1]

    @property
    def outside_theory(self) -> bool:
        """True for informed V: ϖ₁ ≈ √d grows with d, a regime the fixed-ϖ d → ∞ theory does not describe."""
        return self.subspace == "informed"

    def table(self) -> str:
        """A readable table: one line per quantity (per direction for the vector ones), mean ± standard error."""

        def number(value: float | None) -> str:
            return "n/a" if value is None or not math.isfinite(value) else f"{value:.6g}"

        extra = (
            f", pilot = {self.pilot} (informed V: outside the d → ∞ theory, ϖ₁ ~ √d)" if self.pilot is not None else ""
        )
        lines = [
            f"d = {self.d}, p = {self.p}, n = {self.n}, seeds = {len(self.seeds)}, "
            f"n_test = {self.n_test}, subspace = {self.subspace}{extra}",
            f"{'quantity':<16}{'mean':>14}{'std. error':>14}",
        ]
        rows: list[tuple[str, float, float]] = [(key, self.mean[key], self.se[key]) for key in self.scalar_keys]
        for key in self.vector_keys:
            rows += [(f"{key}[{l + 1}]", self.mean[key][l], self.se[key][l]) for l in range(self.params.k)]
        lines += [f"{name:<16}{number(mean):>14}{number(se):>14}" for name, mean, se in rows]
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: every quantity and ``<key>_se`` (vectors as lists, NaN as None), plus ``config``."""

        def clean(value: Any) -> Any:
            if isinstance(value, np.ndarray):
                return [clean(v) for v in value.tolist()]
            value = float(value)
            return value if math.isfinite(value) else None

        out: dict[str, Any] = {}
        for key in self.scalar_keys + self.vector_keys:
            out[key] = clean(self.mean[key])
            out[f"{key}_se"] = clean(self.se[key])
        out["config"] = {
            "d": self.d,
            "p": self.p,
            "n": self.n,
            "seeds": len(self.seeds),
            "n_test": self.n_test,
            "subspace": self.subspace,
            "model": self.model,
        }
        if self.pilot is not None:
            out["config"]["pilot"] = self.pilot
            out["config"]["outside_theory"] = True
        out["params"] = self.params.as_dict()
        return out

    def to_dataset(self) -> Any:
        """The per-seed values as an ``xarray.Dataset``: dimension ``seed`` (coordinate: the seeds) and, for the
        per-direction quantities, ``direction`` (l = 0 … k−1); attributes: the model point, d, p, n, n_test, the
        subspace, the model and the versions. ``ds.mean("seed")`` is :attr:`mean`; every attribute is a string
        or a number, so ``ds.to_netcdf()`` keeps it all."""
        import xarray as xr

        from ..theory.dataset import point_attrs, versions

        data = {
            key: (("seed",) if key in SCALAR_KEYS else ("seed", "direction"), values)
            for key, values in self.per_seed.items()
        }
        attrs: dict[str, Any] = {
            "title": "sobolev-rf: exact finite-size simulation (simulate)",
            **point_attrs(self.params),
            "d": self.d,
            "p": self.p,
            "n": self.n,
            "n_test": self.n_test,
            "subspace": self.subspace,
            "model": self.model,
            **versions(),
        }
        if self.pilot is not None:
            attrs["pilot"] = self.pilot
        coords = {"seed": list(self.seeds), "direction": np.arange(self.params.k)}
        return xr.Dataset(data, coords=coords, attrs=attrs)

    def _repr_html_(self) -> str:
        """Mean ± standard error over the seeds of every quantity (a notebook's display)."""
        from ..display import html_table, number

        rows = [(key, number(self.mean[key]), number(self.se[key], 2)) for key in SCALAR_KEYS + VECTOR_KEYS]
        caption = (
            f"exact simulation (sobolev-rf simulate): d = {self.d}, p = {self.p}, n = {self.n}, "
            f"{len(self.seeds)} seed(s), n_test = {self.n_test}, {self.subspace} V, {self.model} features"
        )
        notes = ["informed V: outside the d → ∞ theory (ϖ₁ grows like √d)."] if self.outside_theory else []
        return html_table(caption, ("quantity", "mean", "standard error"), rows, notes)


def simulate_features(
    features: FeatureMap,
    params: ModelParams,
    d: int,
    seeds: int | Sequence[int] = 1,
    n_test: int | None = None,
    progress: Callable[[int], None] | None = None,
    subspace: str = "random",
    model: str = "exact",
    batch: int = TEST_BATCH,
    pilot: int | None = None,
    step_functions: StepFunctions | None = None,
    blas_threads: int | None = BLAS_THREADS,
) -> SimulationResult:
    """Simulate ``params`` at input dimension d with the given feature map (``params.activation`` and
    ``params.teacher`` are ignored: ``features`` defines σ, σ′, φ, φ′). ``model`` only labels the result.
    A point with a first-layer step (ONESTEP.md) needs ``step_functions`` (:class:`~.onestep.StepFunctions`)
    and random V; the step runs on its own batch before the readout's data are drawn (:mod:`.onestep`).

    p = round(p_over_d·d), n = round(n_over_d·d); ``n_test`` defaults to :func:`default_n_test`. ``progress(1)``
    is called after each seed. Deterministic given seeds.
    ``subspace="informed"`` draws V from m = ``pilot`` (default d) noisy pilot gradients (:func:`draw_directions`;
    outside the theory, ``params.alignment`` is ignored); ``pilot`` is refused with random V.
    ``blas_threads`` (default 1) pins the BLAS threads, so that the result does not depend on the process or
    its core count (a campaign worker gives the same bits); None leaves BLAS's own setting, faster for one
    large d on many cores, but then equal to the pinned result only to about 1e-15.
    """
    d = _positive_int("d", d, 2)
    if blas_threads is not None:
        blas_threads = _positive_int("blas_threads", blas_threads, 1)
    seed_list = _seed_list(seeds)
    p, n = sizes(params, d)
    n_test = default_n_test(p) if n_test is None else _positive_int("n_test", n_test, 1)
    batch = _positive_int("batch", batch, 1)
    if subspace not in SUBSPACES:
        raise UserError(f"subspace must be one of {', '.join(SUBSPACES)}, got {subspace!r}.")
    if subspace == "informed":
        pilot = d if pilot is None else _positive_int("pilot", pilot, 1)
    elif pilot is not None:
        raise UserError(
            f"pilot (the number of pilot gradients) only applies to subspace='informed', "
            f"got pilot = {pilot!r} with subspace = {subspace!r}."
        )
    if params.k >= d:
        raise UserError(f"k = {params.k} gradient directions need d > k, got d = {d}.")
    if params.has_step:
        if step_functions is None:
            raise UserError("a model point with a first-layer step needs step_functions (σ, σ′, σ″, φ, φ′).")
        if subspace != "random":
            raise UserError(
                "a first-layer step is simulated with random directions V only (the model), "
                f"got subspace = {subspace!r}."
            )
    need = memory_estimate(d, p, n, params.k, params.tau, params.lam, min(batch, n_test), pilot or 0)
    need += 8 * step_memory(params, d, p)
    if need > MEMORY_LIMIT_BYTES:
        raise UserError(
            f"d = {d}, p = {p}, n = {n} needs about {need / 2**30:.1f} GiB (limit "
            f"{MEMORY_LIMIT_BYTES / 2**30:.0f} GiB); reduce d or the ratios p/d, n/d"
            + (", or the step batch α₀." if params.has_step else ".")
        )
    rows = n * params.training_rows
    work = len(seed_list) * (
        (n_test + rows) * p * d + p**3 + (pilot or 0) * d * min(pilot or 0, d) + step_work(params, d, p)
    )
    if work > WORK_LIMIT_FLOPS:
        raise UserError(
            f"{len(seed_list)} seed(s) at d = {d}, p = {p}, n = {n}, n_test = {n_test} need about "
            f"{work:.1e} floating-point operations (limit {WORK_LIMIT_FLOPS:.0e}, hours on a laptop); "
            "reduce seeds, n_test or d" + (", or the step batch α₀." if params.has_step else ".")
        )
    runs = []
    for seed in seed_list:
        with blas_threads_limited(blas_threads):
            runs.append(run_seed(features, params, d, seed, n_test, subspace, batch, pilot, step_functions))
        if progress:
            progress(1)
    scalars, vectors = result_keys(params)
    per_seed = {key: np.array([run[key] for run in runs], dtype=np.float64) for key in scalars + vectors}
    mean: dict[str, Any] = {}
    se: dict[str, Any] = {}
    count = len(seed_list)
    for key, values in per_seed.items():
        mean[key] = values.mean(axis=0)
        se[key] = values.std(axis=0, ddof=1) / math.sqrt(count) if count > 1 else np.full_like(values[0], np.nan)
        if values.ndim == 1:
            mean[key], se[key] = float(mean[key]), float(se[key])
    return SimulationResult(
        params=params,
        d=d,
        p=p,
        n=n,
        n_test=n_test,
        seeds=seed_list,
        subspace=subspace,
        model=model,
        per_seed=per_seed,
        mean=mean,
        se=se,
        pilot=pilot,
    )


def simulate(
    params: ModelParams,
    d: int,
    seeds: int | Sequence[int] = 1,
    n_test: int | None = None,
    progress: Callable[[int], None] | None = None,
    subspace: str = "random",
    model: str = "exact",
    ge_student: Mapping[str, float] | None = None,
    ge_teacher: Mapping[str, float] | None = None,
    batch: int = TEST_BATCH,
    pilot: int | None = None,
    blas_threads: int | None = BLAS_THREADS,
) -> SimulationResult:
    """Simulate the model point ``params`` at input dimension d (see :func:`simulate_features`).

    A point with a first-layer step (``params.step`` l2 or sobolev, ONESTEP.md) simulates both phases: the
    step on its own batch of n₀ = α₀·d samples (:mod:`sobolev_rf.numeric.simulation.onestep`), then the
    Sobolev ridge on σ(W₁x); the result then also holds the measured spike (``spike_r``, ``spike_gamma``,
    ``row_scale``, ``row_scale_neg``, ``bulk_variance``, ``c_W``, ``spike_overlap_l``, ``zeta_shift_l``).
    η̃ = 0 gives the random-features numbers of the same seeds bit for bit.

    ``model="exact"`` resolves ``params.activation`` and ``params.teacher`` to vectorised (σ, σ′) and
    (φ, φ′) through :func:`sobolev_rf.numeric.simulation.functions.numpy_pair`. ``model="gaussian_equivalent"`` uses
    :class:`GaussianEquivalentFeatures` with the coefficient dicts ``ge_student`` (κ's) and ``ge_teacher``
    (μ's), keys :data:`GE_KEYS`.
    """
    step_functions = None
    if model == "exact":
        from .functions import numpy_pair

        sigma, dsigma = numpy_pair(params.activation)
        phi, dphi = numpy_pair(params.teacher)
        features: FeatureMap = ExactFeatures(sigma, dsigma, phi, dphi)
        step_functions = StepFunctions.of(params) if params.has_step else None
    elif params.has_step and model in MODELS:
        raise UserError(f"a first-layer step is simulated with the exact model only, got model = {model!r}.")
    elif model == "gaussian_equivalent":
        features = GaussianEquivalentFeatures(ge_student, ge_teacher)
    else:
        raise UserError(f"model must be one of {', '.join(MODELS)}, got {model!r}.")
    return simulate_features(
        features, params, d, seeds, n_test, progress, subspace, model, batch, pilot, step_functions, blas_threads
    )
