"""The directions of a planted spiked layer W₁ = B + r1ûᵀ, shared by the benchmarks that simulate one."""

from __future__ import annotations

import math

import numpy as np


def planted_directions(rng: np.random.Generator, d: int, gamma: float) -> tuple[np.ndarray, np.ndarray]:
    """(û, θ₀): û uniform on the unit sphere of ℝᵈ and the teacher direction θ₀ = γû + √(1 − γ²)t, t uniform on
    the unit sphere of û^⊥, so that ⟨û, θ₀⟩ = γ (two draws of d standard normals from ``rng``, û's first)."""
    u = rng.standard_normal(d)
    u /= np.linalg.norm(u)
    t = rng.standard_normal(d)
    t -= (t @ u) * u
    t /= np.linalg.norm(t)
    return u, gamma * u + math.sqrt(1 - gamma**2) * t
