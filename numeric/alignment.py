"""The law of each error over the alignment ϖ ~ N(0, I_k).

At fixed everything else the asymptotic errors are exact quadratic forms e(ϖ) = c + bᵀϖ + ϖᵀAϖ
(the targets and the noise covariance are linear resp. quadratic in ϖ, the fixed point is not).
A, b, c are recovered exactly from 1 + 2k + k(k−1)/2 solves. With A = UΛUᵀ and y = Uᵀϖ ~ N(0, I_k),
e = c′ + Σ_i λ_i (y_i + δ_i)² + Σ_{λ_i = 0} β_i y_i: a generalised non-central χ² whose distribution
function is exact in one direction and a Gauss–Hermite average in the others (no sampling).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
from scipy import optimize, special

from sobolev_rf.derive.params import ModelParams


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
        """P(e ≤ x), exactly in the top eigen-direction y₁ of A and by Gauss–Hermite in the others.

        With A = UΛUᵀ and y = Uᵀϖ, e = Σ_i λ_i y_i² + βᵀy + c. Given y₂…y_k, e is a quadratic in y₁
        whose sub-level set is an interval (or its complement): its probability is a difference of
        normal distribution functions. The remaining k − 1 dimensional Gaussian average is smooth and
        done with a tensor Gauss–Hermite rule (200 nodes for k = 2, fewer per dimension for larger k; the
        conditional probability has kinks, so the error is about 1e-4 rather than spectral).
        """
        lam, U = np.linalg.eigh(self.A)
        order = np.argsort(-np.abs(lam))
        lam, U = lam[order], U[:, order]
        beta = U.T @ self.b
        k = len(lam)
        nodes, weights = special.roots_hermitenorm(max(24, min(200, int(2e5 ** (1 / max(k - 1, 1))))))
        weights = weights / weights.sum()
        grids = np.meshgrid(*([nodes] * (k - 1)), indexing="ij") if k > 1 else []
        rest = np.stack([g.ravel() for g in grids], axis=1) if k > 1 else np.zeros((1, 0))
        w = np.ones(len(rest))
        for i in range(k - 1):
            w = w * weights[np.searchsorted(nodes, rest[:, i])]
        const = self.c + rest @ beta[1:] + rest**2 @ lam[1:]
        a, bb, cc = lam[0], beta[0], const - x
        if abs(a) <= 1e-14 * max(1.0, np.max(np.abs(lam))):
            if bb == 0.0:
                prob = (cc <= 0).astype(float)
            else:
                prob = special.ndtr(-cc / bb) if bb > 0 else special.ndtr(cc / bb)
        else:
            disc = bb * bb - 4 * a * cc
            root = np.sqrt(np.maximum(disc, 0.0))
            r1, r2 = np.sort(np.stack([(-bb - root) / (2 * a), (-bb + root) / (2 * a)]), axis=0)
            inside = np.where(disc > 0, special.ndtr(r2) - special.ndtr(r1), 0.0)
            prob = inside if a > 0 else 1.0 - inside
        return float(min(1.0, max(0.0, np.sum(w * prob))))

    def quantile(self, q: float) -> float:
        sd = math.sqrt(max(self.variance, 1e-300))
        lo, hi = self.mean - 10 * sd, self.mean + 10 * sd
        lo = min(lo, float(self.c - abs(self.b).sum() - 1.0))
        return float(optimize.brentq(lambda x: self.cdf(x) - q, lo, hi, xtol=1e-12 * max(1.0, abs(self.mean))))


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


def alignment_laws(params: ModelParams, solve: Callable[[ModelParams], dict],
                   keys: tuple[str, ...] = ("eps_L2", "eps_H1", "eps_grad", "train_loss", "train_error_L2"),
                   ) -> dict[str, QuadraticLaw]:
    """The quadratic law of each error in ϖ, from exact solves at 1 + 2k + k(k−1)/2 alignments."""
    cache: dict[tuple[float, ...], dict] = {}

    def at(v: np.ndarray) -> dict:
        key = tuple(float(a) for a in v)
        if key not in cache:
            cache[key] = solve(params.with_(alignment=key))
        return cache[key]

    return {key: fit_quadratic(lambda v, key=key: at(v)[key], params.k) for key in keys
            if at(np.zeros(params.k))[key] is not None}
