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
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import integrate, optimize, special

from ...derive.params import ModelParams


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
