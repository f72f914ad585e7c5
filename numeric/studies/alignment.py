"""The law of each error over the alignment ϖ ~ N(0, I_k).

At fixed everything else the asymptotic errors are exact quadratic forms e(ϖ) = c + bᵀϖ + ϖᵀAϖ
(the targets and the noise covariance are linear resp. quadratic in ϖ, the fixed point is not).
A, b, c are recovered exactly from 1 + 2k + k(k−1)/2 solves. With A = UΛUᵀ and y = Uᵀϖ ~ N(0, I_k),
e = c′ + Σ_i λ_i (y_i + δ_i)² + Σ_{λ_i = 0} β_i y_i: a generalised non-central χ² whose distribution
function is exact for k = 1 and a Gil-Pelaez inversion of its characteristic function for k ≥ 2 (no sampling).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import integrate, optimize, special, stats

from ...derive.errors import UserError
from ...derive.params import ModelParams
from ..progress import Progress
from ..quantities import ERRORS
from ..simulation.exact import simulate
from ..theory.solve import solve


@dataclass(frozen=True)
class QuadraticLaw:
    """e(ϖ) = c + bᵀϖ + ϖᵀAϖ with ϖ ~ N(0, I_k)."""

    A: np.ndarray
    b: np.ndarray
    c: float

    @property
    def mean(self) -> float:
        return float(self.c + np.trace(self.A))

    @property
    def variance(self) -> float:
        return float(2 * np.sum(self.A * self.A) + self.b @ self.b)

    def __call__(self, varpi: np.ndarray) -> np.ndarray:
        v = np.atleast_2d(varpi)
        return self.c + v @ self.b + np.einsum("ni,ij,nj->n", v, self.A, v)

    def cdf(self, x: float) -> float:
        """P(e ≤ x); see :meth:`cdf_many`."""
        return float(self.cdf_many(np.array([x], dtype=np.float64))[0])

    def cdf_many(self, xs: np.ndarray) -> np.ndarray:
        """P(e ≤ x) at every x of ``xs``.

        With A = UΛUᵀ and y = Uᵀϖ ~ N(0, I_k), e = c + Σ_i (λ_i y_i² + β_i y_i) with β = Uᵀb.
        k = 1: the sub-level set {λy² + βy + c ≤ x} is an interval (or its complement), whose probability
        is a difference of normal distribution functions (exact).
        k = 2: the same in y₁ given y₂, then an adaptive integral over y₂ split at its square-root kinks
        (:meth:`_two_directions`, absolute error ≲ 1e-12).
        k ≥ 3: Gil-Pelaez inversion of the characteristic function (:meth:`_gil_pelaez`).
        """
        xs = np.asarray(xs, dtype=np.float64)
        lam, U = np.linalg.eigh(self.A)
        beta = U.T @ self.b
        flat = xs.ravel()
        if len(lam) == 1:
            out = _interval_probability(float(lam[0]), float(beta[0]), self.c - flat)
        elif len(lam) == 2:
            out = np.array([self._two_directions(lam, beta, float(x)) for x in flat])
        else:
            out = np.array([self._gil_pelaez(lam, beta, float(x)) for x in flat])
        return np.clip(out, 0.0, 1.0).reshape(xs.shape)

    def _two_directions(self, lam: np.ndarray, beta: np.ndarray, x: float) -> float:
        """P(e ≤ x) for k = 2: E_{y₂}[P(λ₁y₁² + β₁y₁ + c + β₂y₂ + λ₂y₂² − x ≤ 0 | y₂)] with y₁ the direction of
        the larger |λ|. The conditional probability has kinks where its discriminant
        β₁² − 4λ₁(c + β₂y₂ + λ₂y₂² − x) vanishes (a quadratic in y₂): they are passed to QUADPACK as
        break points of the integral over y₂ ∈ [−40, 40]."""
        i, j = (0, 1) if abs(lam[0]) >= abs(lam[1]) else (1, 0)
        a, b1, l2, b2 = float(lam[i]), float(beta[i]), float(lam[j]), float(beta[j])

        def given(y2: float) -> float:
            prob = _interval_probability(a, b1, np.array([self.c + b2 * y2 + l2 * y2 * y2 - x]))[0]
            return float(prob) * math.exp(-0.5 * y2 * y2)

        if a == 0.0:
            kinks: list[float] = []
        else:
            roots: Any = np.roots([4 * a * l2, 4 * a * b2, 4 * a * (self.c - x) - b1 * b1]) if l2 or b2 else []
            kinks = sorted(float(r.real) for r in roots if abs(r.imag) < 1e-12 and -40 < r.real < 40)
        value = integrate.quad(given, -40.0, 40.0, points=kinks or None, epsabs=1e-13, epsrel=1e-12, limit=400)[0]
        return value / math.sqrt(2 * math.pi)

    def _gil_pelaez(self, lam: np.ndarray, beta: np.ndarray, x: float) -> float:
        """F(x) = 1/2 − (1/π) ∫_0^∞ Im[e^{−itx}φ(t)]/t dt with
        φ(t) = e^{itc} g(t),  g(t) = Π_i (1 − 2iλ_i t)^{−1/2} exp(−β_i²t²/(2(1 − 2iλ_i t))).

        g has a bounded phase and decays like t^{−k/2}, so with ω = c − x the integrand is
        [sin(ωt) Re g + cos(ωt) Im g]/t: a Fourier integral, done by QUADPACK's QAWF on [T, ∞) and by
        plain adaptive quadrature on [0, T] (the integrand is finite at t = 0). Absolute error ≲ 1e-9;
        conditional probabilities would have square-root kinks that spoil any fixed rule.
        """
        scale = max(float(np.max(np.abs(lam))), float(np.max(np.abs(beta))) ** 2, 1e-300)
        omega = self.c - x

        def g(t: float) -> complex:
            z = 1.0 - 2j * lam * t
            return complex(np.exp(np.sum(-0.5 * np.log(z) - beta**2 * t**2 / (2 * z))))

        def full(t: float) -> float:
            return (np.exp(1j * omega * t) * g(t)).imag / t if t > 0 else float(omega + np.sum(lam))

        # the tail starts after the decay scale of g and a few oscillation periods (QAWF's cycle
        # extrapolation needs the integrand already in its asymptotic regime)
        T = max(4.0 / scale, min(20.0 / abs(omega), 1e4 / scale) if omega else 0.0)
        opts = dict(epsabs=1e-11, epsrel=1e-10, limit=400)
        head = integrate.quad(full, 0.0, T, **opts)[0]
        if abs(omega) * T < 1e-8:
            tail = integrate.quad(full, T, np.inf, **opts)[0]
        else:
            w = abs(omega)
            sign = 1.0 if omega > 0 else -1.0
            fourier = dict(epsabs=1e-11, limlst=200)
            tail = (
                sign * integrate.quad(lambda t: g(t).real / t, T, np.inf, weight="sin", wvar=w, **fourier)[0]
                + integrate.quad(lambda t: g(t).imag / t, T, np.inf, weight="cos", wvar=w, **fourier)[0]
            )
        return 0.5 - (head + tail) / math.pi

    def quantile(self, q: float) -> float:
        sd = math.sqrt(max(self.variance, 1e-300))
        lo, hi = self.mean - 10 * sd, self.mean + 10 * sd
        lo = min(lo, float(self.c - abs(self.b).sum() - 1.0))
        return float(optimize.brentq(lambda x: self.cdf(x) - q, lo, hi, xtol=1e-12 * max(1.0, abs(self.mean))))


def _interval_probability(a: float, b: float, cc: np.ndarray) -> np.ndarray:
    """P(a y² + b y + cc ≤ 0) for y ~ N(0, 1), elementwise in cc."""
    if abs(a) <= 1e-300:
        if b == 0.0:
            return (cc <= 0).astype(float)
        return special.ndtr(-cc / b) if b > 0 else special.ndtr(cc / b)
    disc = b * b - 4 * a * cc
    root = np.sqrt(np.maximum(disc, 0.0))
    r1 = np.minimum((-b - root) / (2 * a), (-b + root) / (2 * a))
    r2 = np.maximum((-b - root) / (2 * a), (-b + root) / (2 * a))
    inside = np.where(disc > 0, special.ndtr(r2) - special.ndtr(r1), 0.0)
    return inside if a > 0 else 1.0 - inside


def fit_quadratic(error: Callable[[np.ndarray], float], k: int) -> QuadraticLaw:
    """Recover c, b, A of an exact quadratic e(ϖ) from evaluations at 0, ±e_i and e_i + e_j."""
    c = error(np.zeros(k))
    b = np.zeros(k)
    A = np.zeros((k, k))
    eye = np.eye(k)
    plus = [error(eye[i]) for i in range(k)]
    minus = [error(-eye[i]) for i in range(k)]
    for i in range(k):
        b[i] = (plus[i] - minus[i]) / 2
        A[i, i] = (plus[i] + minus[i]) / 2 - c
    for i in range(k):
        for j in range(i + 1, k):
            both = error(eye[i] + eye[j])
            A[i, j] = A[j, i] = (both - plus[i] - plus[j] + c) / 2
    return QuadraticLaw(A=A, b=b, c=c)


def _entry(at: Callable[[np.ndarray], dict], key: str, v: np.ndarray) -> float:
    """One error of the solve at alignment v."""
    return float(at(v)[key])


def alignment_laws(
    params: ModelParams,
    solve: Callable[[ModelParams], dict],
    keys: tuple[str, ...] = ("eps_L2", "eps_H1", "eps_grad", "train_loss", "train_error_L2"),
) -> dict[str, QuadraticLaw]:
    """The quadratic law of each error in ϖ, from exact solves at 1 + 2k + k(k−1)/2 alignments."""
    cache: dict[tuple[float, ...], dict] = {}

    def at(v: np.ndarray) -> dict:
        key = tuple(float(a) for a in v)
        if key not in cache:
            cache[key] = solve(params.with_(alignment=key))
        return cache[key]

    return {
        key: fit_quadratic(functools.partial(_entry, at, key), params.k)
        for key in keys
        if at(np.zeros(params.k))[key] is not None
    }


# ----------------------------------------------------------------------------------------------- the study

#: The errors whose law is drawn, with their plot labels.
#: The errors whose law is drawn.
KEYS = ERRORS


QUANTILES = (0.05, 0.5, 0.95)


#: The largest k (the law needs 1 + 2k + k(k−1)/2 solves; k = 8: 45).
MAX_K = 8


#: Exact-CDF grid points per error: closed form for k = 1, a Fourier inversion (≈ 4 ms each) for k ≥ 2.
GRID_POINTS = {1: 400, **{k: 250 for k in range(2, MAX_K + 1)}}


SKIP_MESSAGE = "too small for alignment"  # the simulator's message for an unrealisable ϖ at this d


def exact_laws(params: ModelParams) -> dict[str, QuadraticLaw]:
    """The quadratic law in ϖ of eps_L2, eps_H1, eps_grad at ``params`` (its alignment is ignored)."""
    laws = alignment_laws(params, lambda p: solve(p).to_dict(), keys=KEYS)
    for key in KEYS:
        law = laws.get(key)
        if law is None or not (math.isfinite(law.c) and np.all(np.isfinite(law.b)) and np.all(np.isfinite(law.A))):
            raise UserError(
                f"the asymptotic {key} is not finite at this point (interpolation threshold with "
                "λ = 0?); change --p-over-d, --n-over-d or use --lam > 0."
            )
    return laws


def support_minimum(law: QuadraticLaw) -> float | None:
    """min over ϖ of e(ϖ) when it is bounded below (A ⪰ 0 and b in the range of A), else ``None``."""
    lam, U = np.linalg.eigh(law.A)
    scale = max(1.0, float(np.max(np.abs(lam))))
    if np.any(lam < -1e-12 * scale):
        return None
    beta = U.T @ law.b
    null = lam <= 1e-12 * scale
    if np.any(np.abs(beta[null]) > 1e-12 * max(1.0, float(np.max(np.abs(beta))))):
        return None
    pos = ~null
    return float(law.c - np.sum(beta[pos] ** 2 / (4 * lam[pos])))


def cdf_values(law: QuadraticLaw, xs: Sequence[float] | np.ndarray) -> np.ndarray:
    """The exact CDF at every x, made monotone (the quadratures for k ≥ 2 are accurate to ~1e-9, not to the
    last bit, so neighbouring values could otherwise dip by rounding)."""
    return np.maximum.accumulate(law.cdf_many(np.asarray(xs, dtype=float)))


def bin_masses(law: QuadraticLaw, edges: Sequence[float] | np.ndarray) -> tuple[float, np.ndarray, float]:
    """(P(e < e₀), [P(e_j ≤ e < e_{j+1})]_j, P(e ≥ e_last)) for increasing ``edges``: exact probability mass
    per bin as CDF differences; the three parts sum to 1."""
    cdf = cdf_values(law, edges)
    return float(cdf[0]), np.diff(cdf), float(1.0 - cdf[-1])


def ks_distance(samples: Sequence[float] | np.ndarray, law: QuadraticLaw) -> tuple[float, float]:
    """Kolmogorov–Smirnov distance sup |F_N − F| between samples and the exact law, and its p-value."""
    result = stats.kstest(np.asarray(samples, dtype=float), lambda x: law.cdf_many(np.atleast_1d(x)))
    return float(result.statistic), float(result.pvalue)


@dataclass(frozen=True)
class LawSummary:
    """What is drawn and written for one error: quantiles, plot range, CDF grid and histogram bins."""

    key: str
    law: QuadraticLaw
    minimum: float | None
    quantiles: dict[float, float]
    grid: np.ndarray
    cdf: np.ndarray
    edges: np.ndarray
    masses: np.ndarray
    below: float
    above: float


def summarise(
    key: str, law: QuadraticLaw, grid_points: int, bins: int, samples: np.ndarray | None = None
) -> LawSummary:
    """Quantiles, an x-range from the lower edge (or the 0.2 % quantile) to the 99.5 % quantile (widened to the
    simulated values up to their 97th percentile), the exact CDF on a grid over it and the exact bin masses."""
    minimum = support_minimum(law)
    quantiles = {q: law.quantile(q) for q in QUANTILES}
    lo = minimum if minimum is not None else law.quantile(0.002)
    hi = law.quantile(0.995)
    if samples is not None and len(samples):
        lo = min(lo, float(np.min(samples)))
        hi = max(hi, float(np.quantile(samples, 0.97)))
    pad = 0.02 * (hi - lo)
    x_lo = lo if minimum is not None and lo >= minimum else lo - pad
    grid = np.linspace(x_lo, hi, grid_points)
    if minimum is not None and x_lo <= minimum:
        grid = np.union1d(grid, [minimum])  # the CDF starts exactly at the edge of the support
    cdf = cdf_values(law, grid)
    edges = np.linspace(x_lo, hi, bins + 1)
    below, masses, above = bin_masses(law, edges)
    return LawSummary(key, law, minimum, quantiles, grid, cdf, edges, masses, below, above)


@dataclass(frozen=True)
class Draws:
    """The simulated draws: ϖ_i (N×k), their simulation seeds and errors, and the skipped (unrealisable) draws."""

    d: int
    p: int
    n: int
    n_test: int
    varpi: np.ndarray
    seeds: list[int]
    sim: dict[str, np.ndarray]
    skipped: list[tuple[np.ndarray, int]]


def simulation_seed(seed: int, index: int) -> int:
    """The simulator seed of draw ``index``: independent streams for different draws and different ``seed``."""
    return int(np.random.SeedSequence([seed, index]).generate_state(1)[0])


def simulate_draws(
    params: ModelParams, d: int, samples: int, seed: int = 0, n_test: int | None = None, progress: bool = True
) -> Draws:
    """``samples`` draws ϖ_i ~ N(0, I_k), each simulated once (one seed) at input dimension d.

    A draw the finite-d model cannot realise (ϖᵀ(VᵀV)⁻¹ϖ ≥ 1: no unit θ₀ with Vᵀθ₀ = ϖ) is recorded as skipped
    and replaced by a fresh draw; the retained draws are then ϖ conditioned on being realisable, which at
    d ≫ k is an event of probability ≈ 1 − P(χ²_k ≥ d). Too many skips raise a :class:`UserError`.
    """
    rng = np.random.default_rng(np.random.SeedSequence([seed, 2**31]))
    varpis: list[np.ndarray] = []
    seeds: list[int] = []
    sim: dict[str, list[float]] = {key: [] for key in KEYS}
    skipped: list[tuple[np.ndarray, int]] = []
    meta: tuple[int, int, int] | None = None
    index = 0
    with Progress(samples, f"simulate {samples} draws of ϖ at d={d}", enabled=None if progress else False) as bar:
        while len(varpis) < samples:
            if len(skipped) > max(10, samples // 2):
                raise UserError(
                    f"d = {d} is too small for ϖ ~ N(0, I_{params.k}): {len(skipped)} of {index} draws "
                    "have no unit θ₀ with Vᵀθ₀ = ϖ; increase --sim-d."
                )
            varpi = rng.standard_normal(params.k)
            sim_seed = simulation_seed(seed, index)
            index += 1
            try:
                result = simulate(
                    params.with_(alignment=tuple(float(a) for a in varpi)),
                    d,
                    seeds=[sim_seed],
                    n_test=n_test,
                )
            except UserError as exc:
                if SKIP_MESSAGE not in str(exc):
                    raise
                skipped.append((varpi, sim_seed))
                continue
            meta = (result.p, result.n, result.n_test)
            varpis.append(varpi)
            seeds.append(sim_seed)
            for key in KEYS:
                sim[key].append(float(result.mean[key]))
            bar.update()
    assert meta is not None
    return Draws(
        d=d,
        p=meta[0],
        n=meta[1],
        n_test=meta[2],
        varpi=np.array(varpis),
        seeds=seeds,
        sim={key: np.array(values) for key, values in sim.items()},
        skipped=skipped,
    )


@dataclass(frozen=True)
class Comparison:
    """Simulation against the law for one error."""

    sim_mean: float
    sim_se: float
    theory_at_draws_mean: float
    ks: float
    ks_pvalue: float
    ks_theory_draws: float
    rel_dev_mean: float
    rel_dev_se: float
    rel_dev_rms: float


def compare(law: QuadraticLaw, varpi: np.ndarray, sim: np.ndarray) -> Comparison:
    """Sample mean ± SE of the simulations, KS distances (simulations, and e(ϖ_i) at the same draws as the
    pure ϖ-sampling reference) and the per-draw relative deviations sim_i/e(ϖ_i) − 1 (mean ± SE, rms)."""
    count = len(sim)
    theory = law(varpi)
    rel = sim / theory - 1.0
    ks, pvalue = ks_distance(sim, law)
    ks_theory, _ = ks_distance(theory, law)
    return Comparison(
        sim_mean=float(sim.mean()),
        sim_se=float(sim.std(ddof=1) / math.sqrt(count)),
        theory_at_draws_mean=float(theory.mean()),
        ks=ks,
        ks_pvalue=pvalue,
        ks_theory_draws=ks_theory,
        rel_dev_mean=float(rel.mean()),
        rel_dev_se=float(rel.std(ddof=1) / math.sqrt(count)),
        rel_dev_rms=float(np.sqrt(np.mean(rel**2))),
    )


@dataclass(frozen=True)
class Study:
    """Everything one run computes: the exact laws, the simulated draws (None without simulation), what is
    drawn of each law and the simulation-against-law comparisons."""

    laws: dict[str, QuadraticLaw]
    draws: Draws | None
    summaries: list[LawSummary]
    comparisons: dict[str, Comparison]


def compute(
    params: ModelParams, d: int, samples: int, seed: int, n_test: int | None, simulated: bool, quick: bool
) -> Study:
    """The exact laws at ``params``, then (``simulated``) ``samples`` draws at d, then the summaries."""
    laws = exact_laws(params)
    draws = simulate_draws(params, d, samples, seed=seed, n_test=n_test) if simulated else None
    bins = 30 if draws is None else int(min(30, max(8, round(2 * math.sqrt(samples)))))
    grid = GRID_POINTS[params.k] if not quick else min(GRID_POINTS[params.k], 120)
    summaries = [summarise(key, laws[key], grid, bins, None if draws is None else draws.sim[key]) for key in KEYS]
    comparisons = {} if draws is None else {key: compare(laws[key], draws.varpi, draws.sim[key]) for key in KEYS}
    return Study(laws, draws, summaries, comparisons)
