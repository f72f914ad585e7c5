"""The readout after one gradient step: node values of the κ-rule and the generated kernel's solve.

The derived System (:func:`sobolev_rf.derive.onestep.derive_onestep_system`) takes, per Gauss–Hermite
node κ_i, the conditional coefficients μ₀, μ₁, μ₂² of σ(rκ_i + c_W z) and h, h₁, hh of φ(γκ_i + ρz)
(z ~ N(0, 1)) as parameters. They are computed here for any activation and teacher by a composite
Gauss–Legendre rule in z on [−:data:`Z_MAX`, :data:`Z_MAX`], split at the kinks of σ resp. φ (so a
ReLU is integrated as accurately as tanh), vectorised over nodes and points. Without a spike (r = 0,
c_W = 1) the student coefficients are the Hermite coefficients (κ₀, κ₁, κ_*²) themselves, so η̃ = 0 is
the random-features model exactly.

The Sobolev readout (τ > 0, k ∈ {1, 2}; :func:`~sobolev_rf.derive.onestep.derive_onestep_sobolev_system`)
also takes the conditional coefficients of σ′ and φ′ and a Gauss–Hermite rule in ζ₁; its errors depend on
the readout's ζ shift c = r⟨û, v⟩, ⟨û, v_l⟩ = γϖ_l + ρν_l, and are averaged over ν ~ N(0, I_k)
(:func:`alignment_law`). Its Jacobian is taken by forward differences of the residual inside the generated
kernel (C, or NumPy where no compiler builds).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from ...codegen import cache, jit
from ...codegen.jit import package_source_hash
from ...codegen.runtime import CKernel, NumpyKernel
from ...derive.errors import UserError
from ...derive.params import ModelParams
from .coefficients import coefficients

#: Half-width of the z-interval of the inner rule (the Gaussian mass beyond is below 1e-31).
Z_MAX = 12.0
#: Equal panels of the inner rule before the kinks are added, and Gauss–Legendre nodes per panel.
PANELS, PANEL_NODES = 8, 24
#: Default Gauss–Hermite nodes in κ (a parameter of the derived system).
NODES = 48
#: Default Gauss–Hermite nodes in z, ζ₁ = c + c_W z (the Sobolev readout).
ZETA_NODES = 48
#: Damped fixed-point steps before Newton's method in the Sobolev readout's solve (from a poor start Newton alone
#: can land on a root with negative traces, which :func:`solve_sobolev_readout` rejects).
FIXED_POINT_STEPS = 300


@dataclass(frozen=True)
class ReadoutSpike:
    """The first layer after the step: spike strength r, bulk row variance c_W², overlap γ = ⟨û, θ₀⟩, and
    d × the per-row covariance of the spike entries t_j and the squared bulk row norms e_j (Σ_tt, Σ_te,
    Σ_ee; ``None``: Σ_tt = c_W², Σ_te = Σ_ee = 0, a bulk whose rows all have norm c_W)."""

    r: Any
    cW2: Any
    gamma: Any
    sigma_tt: Any = None
    sigma_te: Any = None
    sigma_ee: Any = None

    def channels(self) -> dict[str, Any]:
        """The System's parameters Sigma_tt, Sigma_te, Sigma_ee."""
        return {
            "Sigma_tt": self.cW2 if self.sigma_tt is None else self.sigma_tt,
            "Sigma_te": 0.0 if self.sigma_te is None else self.sigma_te,
            "Sigma_ee": 0.0 if self.sigma_ee is None else self.sigma_ee,
        }


@dataclass(frozen=True)
class SpikeScaling:
    """The spike of a step as a function of (η̃, α₀), from :func:`sobolev_rf.derive.spike.spike_theory` at
    η̃ = 1 and α₀ = 1, 2 (whose closed forms are polynomials in η̃ and 1/α₀ inside these combinations), A = 1/α₀:
    N² = m² + ν₁²A, r = η̃|κ₁|N, γ = sgn(κ₁)m/N, row rescaling c = 1 + η̃δ₁, bulk b² = η̃²b₁²A,
    c_W² = c² + b²; the rows' spread: β_t = k_t·r, ε_u = η̃(e₀ + e₁A)/N, β_e = c² + 2cη̃δ₁′ + η̃²b₁′A,
    ν_e = η̃²(q₀ + q₁A) − 4ε_u² + 2b⁴, and Σ_tt = 1 + [2η̃P(A) + η̃²S(A)]/N² + 2β_t², Σ_te = 2cε_u + 2β_tβ_e,
    Σ_ee = 4ε_u² + 2β_e² + ν_e (m the spike's signal, ν₁² its noise, δ₁ the row shift, b₁² the bulk
    variance, δ₁′ and b₁′ their slopes in a row's squared norm, at η̃ = α₀ = 1; the polynomials P (degree 2,
    coefficients ``overlap_poly`` in powers of A) and S (degree 3, ``along_poly``) are N²ûᵀMû/η̃ and
    N²(‖Mû‖² + b_û²)/η̃², the bulk's own spread along û of derive/spike.py)."""

    signal: float
    noise: float
    kappa1: float
    row_shift: float
    bulk: float
    spike_norm_ratio: float = 0.0
    overlap0: float = 0.0
    overlap1: float = 0.0
    shift_slope: float = 0.0
    bulk_slope: float = 0.0
    noise0: float = 0.0
    noise1: float = 0.0
    overlap_poly: tuple[float, ...] = (0.0,)
    along_poly: tuple[float, ...] = (0.0,)

    def at(self, eta: Any, alpha0: Any) -> ReadoutSpike:
        eta, alpha0 = np.asarray(eta, dtype=float), np.asarray(alpha0, dtype=float)
        if np.any(~np.isfinite(eta)) or np.any(eta < 0) or np.any(~np.isfinite(alpha0)) or np.any(alpha0 <= 0):
            raise UserError("the step needs eta >= 0 and alpha0 > 0 (finite).")
        inv = 1.0 / alpha0
        norm = np.sqrt(self.signal**2 + self.noise * inv)
        gamma = math.copysign(1.0, self.kappa1) * self.signal / norm
        c = 1.0 + eta * self.row_shift
        b2 = eta**2 * self.bulk * inv
        cW2 = c**2 + b2
        r = eta * abs(self.kappa1) * norm
        beta_t = self.spike_norm_ratio * r
        eps_u = np.divide(eta * (self.overlap0 + self.overlap1 * inv), norm, out=np.zeros_like(norm), where=norm > 0)
        beta_e = c**2 + 2 * c * eta * self.shift_slope + eta**2 * self.bulk_slope * inv
        noise_e = eta**2 * (self.noise0 + self.noise1 * inv) - 4 * eps_u**2 + 2 * b2**2
        along = 2 * eta * np.polyval(self.overlap_poly[::-1], inv) + eta**2 * np.polyval(self.along_poly[::-1], inv)
        n2 = norm**2
        sigma_tt = np.where(n2 > 0, 1 + np.divide(along, n2, out=np.zeros_like(n2), where=n2 > 0), cW2)
        return ReadoutSpike(
            r,
            cW2,
            gamma,
            sigma_tt + 2 * beta_t**2,
            2 * c * eps_u + 2 * beta_t * beta_e,
            4 * eps_u**2 + 2 * beta_e**2 + noise_e,
        )


def spike_scaling(params: ModelParams) -> SpikeScaling:
    """The :class:`SpikeScaling` of the step of ``params`` (its η̃ and α₀ aside), cached on disk."""
    fields = {
        "activation": params.activation,
        "teacher": params.teacher,
        "step": params.step,
        "tau_step": params.tau_step if params.step == "sobolev" else 0.0,
        "k_step": params.k_step if params.step == "sobolev" else 0,
        "step_dirs": params.step_dirs if params.step == "sobolev" else "fresh",
        "second_layer": params.second_layer,
        "noise_f": params.noise_f,
        "noise_g": params.noise_g,
    }
    return _spike_scaling(json.dumps(fields, sort_keys=True))


@lru_cache(maxsize=64)
def _spike_scaling(text: str) -> SpikeScaling:
    def compute() -> str:
        from ...derive.spike import spike_coefficients

        fs = [spike_coefficients(**json.loads(text), eta=1.0, alpha0=a0, digits=20).as_floats() for a0 in (1, 2, 3, 4)]
        one, two = fs[0], fs[1]
        norms = [math.hypot(f["signal"], math.sqrt(f["noise"])) for f in fs]
        # N²ûᵀMû and N²(‖Mû‖² + b_û²) at η̃ = 1 are polynomials in A of degrees 2 and 3: through A = 1, 1/2, 1/3, 1/4
        powers = np.vander([1.0, 1 / 2, 1 / 3, 1 / 4], 4, increasing=True)
        overlap = [f["linear_overlap"] * n**2 for f, n in zip(fs, norms, strict=True)]
        along = [(f["linear_along"] + f["nonlinear_along"]) * n**2 for f, n in zip(fs, norms, strict=True)]
        overlap_poly = np.linalg.solve(powers[:3, :3], overlap[:3])
        along_poly = np.linalg.solve(powers, along)
        kappa1 = math.copysign(one["r"] / norms[0], one["gamma"]) if norms[0] > 0 else 0.0
        # ε_u N and Q = ν_e − 2b⁴ + 4ε_u² are affine in A = 1/α₀ at η̃ = 1: their values at A = 1 and 1/2
        e = [f["overlap_spike"] * n for f, n in zip((one, two), norms[:2], strict=True)]
        q = [f["norm_noise"] - 2 * f["bulk_variance"] ** 2 + 4 * f["overlap_spike"] ** 2 for f in (one, two)]
        values = [
            one["signal"],
            one["noise"],
            kappa1,
            one["row_shift"],
            one["bulk_variance"],
            one["spike_norm_slope"] / one["r"] if one["r"] > 0 else 0.0,
            2 * e[1] - e[0],
            2 * (e[0] - e[1]),
            one["row_shift_slope"],
            one["bulk_slope"],
            2 * q[1] - q[0],
            2 * (q[0] - q[1]),
            *overlap_poly,
            *along_poly,
        ]
        return json.dumps({"text": text, "values": values})

    def load(path: Path) -> SpikeScaling:  # a record that does not read is computed again
        values = [float(v) for v in json.loads(path.read_text())["values"]]
        if len(values) != 19:
            raise ValueError(f"a spike scaling has 19 values, the record has {len(values)}")
        v = values
        scalars = (v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7], v[8], v[9], v[10], v[11])
        return SpikeScaling(*scalars, overlap_poly=tuple(v[12:15]), along_poly=tuple(v[15:]))

    key = cache.artifact_key(package_source_hash("sobolev_rf.derive"), f"spike-scaling\0{text}", "spike")
    return cache.load_artifact(cache.cache_dir(), key, "json", "json", compute, load, what="the spike scaling")


def l2_spike(activation: str, teacher: str, eta: Any, alpha0: Any) -> ReadoutSpike:
    """The spike of an L2 step with a_j = 1/p (no label noise) at η̃ and α₀ (arrays broadcast)."""
    params = ModelParams(activation=activation, teacher=teacher, step="l2", eta=1.0, alpha0=1.0)
    return spike_scaling(params).at(eta, alpha0)


@lru_cache(maxsize=32)
def _function(text: str) -> tuple[Callable[[np.ndarray], np.ndarray], tuple[float, ...]]:
    """(vectorised f, kinks of f) of an activation text."""
    from ...derive.activations import kinks, parse_activation
    from ..simulation.functions import numpy_pair

    return numpy_pair(text)[0], tuple(k for k in kinks(parse_activation(text)) if math.isfinite(k))


@lru_cache(maxsize=32)
def _derivative(text: str) -> Callable[[np.ndarray], np.ndarray]:
    """σ′ of an activation text, vectorised (its jumps are at the kinks of σ)."""
    from ..simulation.functions import numpy_pair

    return numpy_pair(text)[1]


@lru_cache(maxsize=8)
def _legendre(n: int) -> tuple[np.ndarray, np.ndarray]:
    return np.polynomial.legendre.leggauss(n)


@lru_cache(maxsize=16)
def hermite_rule(nodes: int) -> tuple[np.ndarray, np.ndarray]:
    """Probabilists' Gauss–Hermite nodes and weights for E over κ ~ N(0, 1) (read-only arrays, computed once)."""
    x, w = np.polynomial.hermite_e.hermegauss(nodes)
    w = w / math.sqrt(2.0 * math.pi)
    x.flags.writeable = w.flags.writeable = False
    return x, w


#: Points per block of the inner rule (bounds the temporaries to a few MB).
BLOCK = 64


def _gaussian_moments(
    f: Callable[[np.ndarray], np.ndarray], kinks: tuple[float, ...], shift: np.ndarray, scale: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(E f(s + c z), E z f(s + c z), E f(s + c z)²) for z ~ N(0, 1), elementwise over shift s and scale c > 0
    (broadcast), by the composite rule split where s + c z crosses a kink; each distinct (s, c) row is
    integrated once, in blocks of :data:`BLOCK` rows."""
    shift, scale = np.broadcast_arrays(np.asarray(shift, dtype=float), np.asarray(scale, dtype=float))
    shape = shift.shape
    pairs = np.stack([shift.reshape(-1, shape[-1]), scale.reshape(-1, shape[-1])], axis=1)
    if len(pairs) == 1:  # one point: nothing to share
        unique, inverse = pairs, np.zeros(1, dtype=int)
    else:
        unique, inverse = np.unique(pairs, axis=0, return_inverse=True)
    x, w = _legendre(PANEL_NODES)
    base = np.linspace(-Z_MAX, Z_MAX, PANELS + 1)
    out = np.empty((3, len(unique), shape[-1]))
    if not kinks:  # the same nodes for every row: f at s + c z against fixed weights
        lo, hi = base[:-1, None], base[1:, None]
        zf = (0.5 * (hi + lo) + 0.5 * (hi - lo) * x).ravel()
        wf = (0.5 * (hi - lo) * w * np.exp(-0.5 * (0.5 * (hi + lo) + 0.5 * (hi - lo) * x) ** 2)).ravel()
        wf = wf / math.sqrt(2.0 * math.pi)
        for start in range(0, len(unique), 4 * BLOCK):
            s, c = unique[start : start + 4 * BLOCK, 0], unique[start : start + 4 * BLOCK, 1]
            values = f(s[..., None] + c[..., None] * zf)
            out[0, start : start + 4 * BLOCK] = values @ wf
            out[1, start : start + 4 * BLOCK] = values @ (wf * zf)
            out[2, start : start + 4 * BLOCK] = (values * values) @ wf
        full = out[:, np.asarray(inverse).reshape(-1)]
        return full[0].reshape(shape), full[1].reshape(shape), full[2].reshape(shape)
    for start in range(0, len(unique), BLOCK):
        s, c = unique[start : start + BLOCK, 0], unique[start : start + BLOCK, 1]
        safe = np.where(c > 0, c, 1.0)
        cuts = [np.broadcast_to(b, s.shape) for b in base] + [np.clip((k - s) / safe, -Z_MAX, Z_MAX) for k in kinks]
        edges = np.sort(np.stack(cuts, axis=-1), axis=-1)
        lo, hi = edges[..., :-1, None], edges[..., 1:, None]
        z = 0.5 * (hi + lo) + 0.5 * (hi - lo) * x
        weight = 0.5 * (hi - lo) * w * np.exp(-0.5 * z * z) / math.sqrt(2.0 * math.pi)
        values = f(s[..., None, None] + c[..., None, None] * z)
        wv = weight * values
        out[0, start : start + BLOCK] = wv.sum(axis=(-2, -1))
        out[1, start : start + BLOCK] = (wv * z).sum(axis=(-2, -1))
        out[2, start : start + BLOCK] = (wv * values).sum(axis=(-2, -1))
    full = out[:, np.asarray(inverse).reshape(-1)]
    return full[0].reshape(shape), full[1].reshape(shape), full[2].reshape(shape)


def node_values(activation: str, teacher: str, spike: ReadoutSpike, nodes: int = NODES) -> dict[str, np.ndarray]:
    """Per node i (last axis) and point (leading axes of the spike's arrays): the parameters w, k, s0, s1,
    s2, t0, t1, t2, s3 of the derived system and those of its gradient errors: p0, p1, p2 (μ₀′, μ₁′, μ₂′² of
    σ′(rκ_i + c_W z)), p3 (μ_e′ = ∂μ₀′/∂(c_W²)) and u0, u1, u2 (h′, h₁′, hh′ of φ′(γκ_i + ρz))."""
    sigma, sigma_kinks = _function(activation)
    phi, phi_kinks = _function(teacher)
    dsigma = _derivative(activation)
    kappa, weight = hermite_rule(nodes)
    r = np.asarray(spike.r, dtype=float)[..., None]
    cW = np.sqrt(np.asarray(spike.cW2, dtype=float))[..., None]
    gamma = np.clip(np.asarray(spike.gamma, dtype=float), -1.0, 1.0)[..., None]
    rho = np.sqrt(1.0 - gamma**2)
    shape = np.broadcast_shapes(r.shape, cW.shape, gamma.shape, kappa.shape)
    m0, m1, m2 = _gaussian_moments(sigma, sigma_kinks, r * kappa, cW)
    d0, dz, d2 = _gaussian_moments(dsigma, sigma_kinks, r * kappa, cW)
    k0, k1, ks, k0p, k1p, ksp, _ = coefficients(activation)
    plain = (r == 0) & (cW == 1)  # no step: the Hermite coefficients exactly
    s0 = np.where(plain, k0, m0)
    s1 = np.where(plain, k1, m1 / cW)
    s2 = np.where(plain, ks**2, np.maximum(m2 - m0**2 - m1**2, 0.0))
    t0, t1, t2 = _gaussian_moments(phi, phi_kinks, gamma * kappa, rho)
    s3 = dz / (2.0 * cW)  # ∂μ₀/∂(c_W²) = E[z σ′(rκ + c_W z)]/(2c_W)
    p0 = np.where(plain, k0p, d0)
    p1 = np.where(plain, k1p, dz / cW)
    p2 = np.where(plain, ksp**2, np.maximum(d2 - d0**2 - dz**2, 0.0))
    # μ_e′ = ∂μ₀′/∂(c_W²) = (E[z²σ′] − μ₀′)/(2c_W²), E[z²σ′(s + cz)] from E[x²σ′(x)] at x = s + cz
    x2 = _gaussian_moments(lambda t: t * t * dsigma(t), sigma_kinks, r * kappa, cW)[0]
    z2 = (x2 - (r * kappa) ** 2 * d0 - 2 * r * kappa * cW * dz) / cW**2
    p3 = (z2 - d0) / (2 * cW**2)
    u0, u1, u2 = _gaussian_moments(_derivative(teacher), phi_kinks, gamma * kappa, rho)
    out = {"w": weight, "k": kappa, "s0": s0, "s1": s1, "s2": s2, "t0": t0, "t1": t1, "t2": t2, "s3": s3}
    out |= {"p0": p0, "p1": p1, "p2": p2, "p3": p3, "u0": u0, "u1": u1, "u2": u2}
    return {name: np.broadcast_to(v, shape) for name, v in out.items()}


def sobolev_node_values(
    activation: str, teacher: str, spike: ReadoutSpike, nodes: int = NODES
) -> dict[str, np.ndarray]:
    """:func:`node_values` and, per node, the cross terms of the Sobolev readout's rows: sx (the residual
    cross-covariance of σ and σ′) and tx = E φφ′."""
    out = dict(node_values(activation, teacher, spike, nodes))
    sigma, sigma_kinks = _function(activation)
    dsigma = _derivative(activation)
    phi, phi_kinks = _function(teacher)
    dphi = _derivative(teacher)
    kappa, _ = hermite_rule(nodes)
    r = np.asarray(spike.r, dtype=float)[..., None]
    cW = np.sqrt(np.asarray(spike.cW2, dtype=float))[..., None]
    gamma = np.clip(np.asarray(spike.gamma, dtype=float), -1.0, 1.0)[..., None]
    rho = np.sqrt(1.0 - gamma**2)
    shape = out["w"].shape
    cross = _gaussian_moments(lambda t: sigma(t) * dsigma(t), sigma_kinks, r * kappa, cW)[0]
    plain = (r == 0) & (cW == 1)
    c_sigma = coefficients(activation)[6]
    s0, s1, p0, p1 = out["s0"], out["s1"], out["p0"], out["p1"]
    sx = np.where(plain, c_sigma, cross - s0 * p0 - cW**2 * s1 * p1)
    tx = _gaussian_moments(lambda t: phi(t) * dphi(t), phi_kinks, gamma * kappa, rho)[0]
    out.update({"sx": sx, "tx": tx})
    return {name: np.broadcast_to(v, shape) for name, v in out.items()}


# --------------------------------------------------------------------------------------------------
# the kernel
# --------------------------------------------------------------------------------------------------


def system_record(nodes: int = NODES) -> dict[str, Any]:
    """The cached derived system of the τ = 0 readout with a ``nodes``-point κ-rule."""

    def derive() -> Any:
        from ...derive.onestep import derive_onestep_system

        return derive_onestep_system(nodes)

    return jit.system_record("onestep", {"nodes": nodes, "readout": "l2"}, derive)


@lru_cache(maxsize=16)
def _column_plan(
    parameters: tuple[str, ...], scalars: tuple[str, ...], fields: tuple[tuple[str, int], ...]
) -> tuple[tuple[tuple[str, int], ...], tuple[tuple[str, np.ndarray, np.ndarray], ...]]:
    """Where :func:`parameter_rows` puts what: (scalar, column) pairs and, per node field, the nodes the kernel
    takes and their columns; KeyError if some parameter gets no value."""
    position = {name: j for j, name in enumerate(parameters)}
    filled = np.zeros(len(parameters), dtype=bool)
    plain = tuple((name, position[name]) for name in scalars if name in position)
    filled[[j for _, j in plain]] = True
    nodal = []
    for field, nodes in fields:
        columns = [position.get(f"{field}_{i}", -1) for i in range(nodes)]
        kept = np.array([i for i, j in enumerate(columns) if j >= 0], dtype=int)
        if len(kept):
            nodal.append((field, kept, np.array([columns[i] for i in kept], dtype=int)))
            filled[nodal[-1][2]] = True
    if not filled.all():
        raise KeyError(f"no value for the parameters {[p for p, f in zip(parameters, filled) if not f]}")
    return plain, tuple(nodal)


def parameter_rows(
    scalars: Mapping[str, Any], values: Mapping[str, np.ndarray], parameters: tuple[str, ...]
) -> np.ndarray:
    """Rows (points, parameters) in the kernel's order from the scalar columns and the node arrays (nodes
    on their last axis; fields may have rules of different lengths)."""
    shape = np.broadcast_shapes(*[np.shape(v) for v in scalars.values()], *[np.shape(v)[:-1] for v in values.values()])
    plain, nodal = _column_plan(
        tuple(parameters), tuple(scalars), tuple((field, np.shape(array)[-1]) for field, array in values.items())
    )
    rows = np.empty((math.prod(shape), len(parameters)))
    for name, j in plain:
        rows[:, j] = np.broadcast_to(np.asarray(scalars[name], dtype=float), shape).reshape(-1)
    for field, kept, columns in nodal:
        array = np.asarray(values[field], dtype=float)
        rows[:, columns] = np.broadcast_to(array, shape + array.shape[-1:]).reshape(-1, array.shape[-1])[:, kept]
    return rows


@dataclass
class ReadoutResult:
    """Outputs and unknowns of the readout on the points (flattened), with convergence flags."""

    outputs: dict[str, np.ndarray]
    unknowns: dict[str, np.ndarray]
    converged: np.ndarray
    residual: np.ndarray
    #: the name of the derived System that was solved
    system: str = ""


def _spike_scalars(spike: ReadoutSpike, p_over_d: Any, n_over_d: Any, lam: Any, noise_f: Any) -> dict[str, Any]:
    """The scalar parameters both readouts' Systems share: λ, ψ = p/d, n/d, Δ_f and the spike (c_W², r, γ, Σ)."""
    scalars = {"lam": lam, "psi": p_over_d, "n_d": n_over_d, "Delta_f": noise_f, "cW2": spike.cW2}
    scalars |= {"r_spike": spike.r, "gamma_spike": np.clip(np.asarray(spike.gamma, dtype=float), -1.0, 1.0)}
    return scalars | spike.channels()


def _readout_scalars(
    spike: ReadoutSpike, p_over_d: Any, n_over_d: Any, lam: Any, noise_f: Any, bulk_overlap: bool, varpi2: Any
) -> dict[str, Any]:
    """The scalar parameters of the τ = 0 readout's System."""
    shared = _spike_scalars(spike, p_over_d, n_over_d, lam, noise_f)
    return shared | {"bulk_overlap": float(bulk_overlap), "varpi2": varpi2}


def solve_readout(
    activation: str,
    teacher: str,
    spike: ReadoutSpike,
    p_over_d: Any,
    n_over_d: Any,
    lam: Any,
    noise_f: Any = 0.0,
    nodes: int = NODES,
    backend: str = "auto",
    tol: float = 1e-13,
    bulk_overlap: bool = True,
    varpi2: Any = 0.0,
) -> ReadoutResult:
    """The τ = 0 readout on σ(W₁x) after a step with the given spike, on every point of the broadcast
    arrays (flattened in C order). ``bulk_overlap=False`` drops the bulk's component along û (θ ≡ 0), the
    fixed point behind the published values of Cui et al. 2024 (for comparison only). ``varpi2`` = ‖ϖ‖²/k
    enters eps_H1 only (its expectation over V)."""
    _check_lam(lam, p_over_d, n_over_d)
    record = system_record(nodes)
    kernel = jit.load_kernel(record, jit.resolve_backend(backend))
    values = node_values(activation, teacher, spike, nodes)
    scalars = _readout_scalars(spike, p_over_d, n_over_d, lam, noise_f, bulk_overlap, varpi2)
    rows = parameter_rows(scalars, values, kernel.parameters)
    u, out, ok, norm = kernel.solve(rows, np.full((len(rows), len(kernel.unknowns)), 0.5), tol)
    ok = ok & np.all(u > 0, axis=1)
    return ReadoutResult(
        {n: out[:, j] for j, n in enumerate(kernel.output_names)},
        {n: u[:, j] for j, n in enumerate(kernel.unknowns)},
        ok,
        norm,
        record["name"],
    )


def sobolev_system_record(k: int, nodes: int = NODES, znodes: int = ZETA_NODES) -> dict[str, Any]:
    """The cached derived system of the Sobolev readout (τ > 0) with k ∈ {1, 2} directions."""

    def derive() -> Any:
        from ...derive.onestep import derive_onestep_sobolev_system

        return derive_onestep_sobolev_system(k, nodes, znodes)

    return jit.system_record("onestep", {"nodes": nodes, "znodes": znodes, "readout": "sobolev", "k": k}, derive)


def rotated_alignment(alignment: Any, shift: Any) -> tuple[np.ndarray, np.ndarray]:
    """(‖c‖, ϖ′): the common ζ shift c ∈ ℝ^k (last axis) rotated onto the first direction, and the alignment ϖ
    in the rotated frame (ϖ′₁ = ⟨ϖ, c⟩/‖c‖, ϖ′₂ = (c₁ϖ₂ − c₂ϖ₁)/‖c‖ for k = 2; ϖ′ = ϖ where c = 0)."""
    varpi = np.asarray(alignment, dtype=float)
    c = np.asarray(shift, dtype=float)
    varpi, c = np.broadcast_arrays(varpi, c)
    norm = np.sqrt(np.sum(c * c, axis=-1))
    safe = np.where(norm > 0, norm, 1.0)[..., None]
    unit = np.where(norm[..., None] > 0, c / safe, np.eye(c.shape[-1])[0])
    first = np.sum(varpi * unit, axis=-1)
    if c.shape[-1] == 1:
        return norm, first[..., None]
    second = unit[..., 0] * varpi[..., 1] - unit[..., 1] * varpi[..., 0]
    return norm, np.stack([first, second], axis=-1)


#: Gauss–Hermite nodes per direction of the average over the second alignment vector ν for k = 1.
NU_NODES_K1 = 16
#: For k = 2, by the spread s = |r|ρ of the shift c = r(γϖ + ρν): (largest s, nodes per direction). Against a
#: 20-node rule the averaged errors move by at most 6e-6 relative (tanh and ReLU, L2 and Sobolev steps, η̃ from
#: 0.5 to 3, s from 0.14 to 1.14; ReLU at η̃ = 2, α₀ = 1, s = 0.74 the largest, tanh at most 2e-6), of which
#: about 3e-7 is the ζ-rule's own error at a large shift.
NU_NODES_K2 = ((0.5, 6), (1.0, 8), (math.inf, 10))


def nu_nodes(k: int, spike: ReadoutSpike) -> int:
    """Gauss–Hermite nodes per direction of the average over ν (:data:`NU_NODES_K1`, :data:`NU_NODES_K2`); the
    spike's fields may be arrays (the rule of their widest law)."""
    if k == 1:
        return NU_NODES_K1
    gamma = np.clip(np.asarray(spike.gamma, dtype=float), -1.0, 1.0)
    spread = float(np.max(np.abs(np.asarray(spike.r, dtype=float)) * np.sqrt(1.0 - gamma**2), initial=0.0))
    return next(n for limit, n in NU_NODES_K2 if spread <= limit)


def alignment_law(
    alignment: Any, spike: ReadoutSpike, nodes: int | None = None, half: bool = True
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The law of the readout's ζ shift after a step with a_j = 1/p, as a product Gauss–Hermite rule over
    ν ~ N(0, I_k) with ``nodes`` per direction (default :func:`nu_nodes`): ⟨û, v_l⟩ = γϖ_l + ρν_l,
    c = r⟨û, v⟩; returns (‖c‖, ϖ′, weights) per node (:func:`rotated_alignment`).

    For k = 2 the rule is taken in the frame e₁ = ϖ/‖ϖ‖ (e₁ = (1, 0) where ϖ = 0), e₂ = (−e₁₂, e₁₁), ν = a e₁ + b e₂
    (ν is isotropic, so any orthonormal frame gives a rule for the same law). Reflecting b → −b reflects c across
    e₁: it keeps ‖c‖ and ϖ′₁ and flips the sign of ϖ′₂, and the readout is even in ϖ′₂ (ζ₂ → −ζ₂). With ``half``
    the rule keeps only the nodes with b ≥ 0, those with b > 0 at twice their weight: the same average from about
    half the nodes. The nodes go line by line of constant b, every other line backwards (a path through
    neighbours, so that the C kernel continues a point's whole rule as one run). For k = 1 there is no such
    symmetry (the sign of ν matters through γϖ) and ``half`` is ignored."""
    varpi = np.asarray(alignment, dtype=float)
    k = varpi.shape[-1]
    x, w = hermite_rule(nodes or nu_nodes(k, spike))
    gamma = float(spike.gamma)
    rho = math.sqrt(max(1.0 - gamma**2, 0.0))
    if k == 1:
        beta = gamma * varpi + rho * x[:, None]
        shift, rotated = rotated_alignment(np.broadcast_to(varpi, beta.shape), float(spike.r) * beta)
        return shift, rotated, np.array(w)
    b_nodes, b_weights = (x[x >= 0], np.where(x[x >= 0] > 0, 2.0, 1.0) * w[x >= 0]) if half else (x, w)
    b = np.repeat(b_nodes, len(x))
    a = np.concatenate([x if j % 2 == 0 else x[::-1] for j in range(len(b_nodes))])
    weight = np.concatenate([b_weights[j] * (w if j % 2 == 0 else w[::-1]) for j in range(len(b_nodes))])
    length = math.hypot(varpi[0], varpi[1])
    e1 = varpi / length if length > 0 else np.array([1.0, 0.0])
    e2 = np.array([-e1[1], e1[0]])
    beta = gamma * varpi + rho * (a[:, None] * e1 + b[:, None] * e2)
    shift, rotated = rotated_alignment(np.broadcast_to(varpi, beta.shape), float(spike.r) * beta)
    return shift, rotated, weight


def _sobolev_guess(
    n_points: int, k: int, cW2: np.ndarray, psi: np.ndarray, shift: np.ndarray, unknowns: int
) -> np.ndarray:
    """A start for the fixed point: T and X (the leading unknowns) of a resolvent q ≈ 1/(1 + ζ̃ᵀζ̃), the
    other ``unknowns`` 0."""
    two = k == 2
    t00 = cW2 * psi / 2
    t11 = cW2 * psi * (shift**2 + cW2) / 4
    cols = [t00, 0 * t00, t11] + ([cW2 * psi * cW2 / 4] if two else [])
    cols = cols + [c / psi for c in cols]
    cols += [0 * t00] * (unknowns - len(cols))
    return np.stack([np.broadcast_to(c, (n_points,)) for c in cols], axis=-1)


def sobolev_parameter_rows(
    activation: str,
    teacher: str,
    spike: ReadoutSpike,
    p_over_d: Any,
    n_over_d: Any,
    lam: Any,
    tau: Any,
    shift: Any,
    varpi: np.ndarray,
    noise_f: Any,
    noise_g: Any,
    nodes: int,
    znodes: int,
    parameters: tuple[str, ...],
) -> np.ndarray:
    """The Sobolev readout's parameter rows (points, parameters) in the order ``parameters``: the scalars, the
    κ-nodes' conditional coefficients (:func:`sobolev_node_values`) and the ζ-rule (arguments of
    :func:`solve_sobolev_readout`)."""
    values = sobolev_node_values(activation, teacher, spike, nodes)
    z, zw = hermite_rule(znodes)
    scalars = _spike_scalars(spike, p_over_d, n_over_d, lam, noise_f)
    scalars |= {"Delta_g": noise_g, "tau": tau, "zeta_shift": shift}
    scalars |= {f"varpi_{l + 1}": varpi[..., l] for l in range(varpi.shape[-1])}
    return parameter_rows(scalars, values | {"zw": zw, "zz": z}, parameters)


def solve_sobolev_readout(
    activation: str,
    teacher: str,
    spike: ReadoutSpike,
    p_over_d: Any,
    n_over_d: Any,
    lam: Any,
    tau: Any,
    shift: Any,
    varpi: Any,
    noise_f: Any = 0.0,
    noise_g: Any = 0.0,
    nodes: int = NODES,
    znodes: int = ZETA_NODES,
    backend: str = "auto",
    tol: float = 1e-13,
    run: int = 0,
) -> ReadoutResult:
    """The Sobolev readout (τ > 0) on σ(W₁x) after a step, for the rotated ζ shift ``shift`` = ‖c‖ ≥ 0 and the
    rotated alignment ``varpi`` (last axis k ∈ {1, 2}, :func:`rotated_alignment`), on every point of the
    broadcast arrays (flattened in C order)."""
    lam_a = np.asarray(lam, dtype=float)
    if np.any(~np.isfinite(lam_a)) or np.any(lam_a <= 0):
        raise UserError("the one-step readout needs lam > 0 (the limit lam -> 0+ is not derived for it).")
    varpi = np.asarray(varpi, dtype=float)
    k = varpi.shape[-1]
    record = sobolev_system_record(k, nodes, znodes)
    kernel = jit.load_kernel(record, jit.resolve_backend(backend))
    rows = sobolev_parameter_rows(
        activation, teacher, spike, p_over_d, n_over_d, lam, tau, shift, varpi, noise_f, noise_g, nodes, znodes,
        kernel.parameters,
    )  # fmt: skip
    col = {name: rows[:, kernel.parameters.index(name)] for name in ("cW2", "psi", "zeta_shift")}
    u0 = _sobolev_guess(len(rows), k, col["cW2"], col["psi"], col["zeta_shift"], len(kernel.unknowns))
    if isinstance(kernel, NumpyKernel):
        theta = kernel._theta(rows)
        # a few damped fixed-point steps, then Newton (the fixed-point phase alone converges slowly here)
        u, ok, norm = kernel.module.solve(theta, u0=u0.T, tol=tol, fixed_point_iterations=FIXED_POINT_STEPS)
        values = kernel.module.outputs(u, theta)
    else:
        assert isinstance(kernel, CKernel)
        ut, out, ok, norm = kernel.solve(
            rows, u0, tol, run=run, fixed_point_iterations=FIXED_POINT_STEPS, reuse_jacobian=True
        )
        u = ut.T
        values = {name: out[:, j] for j, name in enumerate(kernel.output_names)}
    # the physical root: positive traces X_rr, Y_rr = T_rr/(c_W²ψ) and non-negative quadratic forms O_rr, I_rr
    names = list(kernel.unknowns)
    diag = [f"{f}_{p}" for f in ("T", "Xu") for p in ("00", "11", "22")]
    forms = [f"{f}_{p}" for f in ("O", "I") for p in ("00", "11", "22")]
    ok = ok & np.all([u[names.index(n)] > 0 for n in diag if n in names], axis=0)
    ok = ok & np.all([u[names.index(n)] >= 0 for n in forms if n in names], axis=0)
    return ReadoutResult(
        {n: np.broadcast_to(values[n], ok.shape).astype(float) for n in kernel.output_names},
        {n: u[j] for j, n in enumerate(kernel.unknowns)},
        ok,
        norm,
        record["name"],
    )


def verify_readout(
    activation: str,
    teacher: str,
    spike: ReadoutSpike,
    p_over_d: float,
    n_over_d: float,
    lam: float,
    noise_f: float = 0.0,
    nodes: int = NODES,
    digits: int = 50,
    varpi2: float = 0.0,
) -> dict[str, Any]:
    """One point solved by the generated kernel in double precision and by Newton's method in mpmath at
    ``digits`` digits on the same derived System (the node values taken exactly as their doubles)."""
    from ...derive.onestep import derive_onestep_system
    from .verify import verify_system

    if digits < 20:
        raise UserError(f"digits must be at least 20, got {digits}.")
    double = solve_readout(activation, teacher, spike, p_over_d, n_over_d, lam, noise_f, nodes, varpi2=varpi2)
    if not bool(double.converged[0]):
        raise UserError("the double-precision readout did not converge at this point, so there is nothing to verify.")
    system = derive_onestep_system(nodes)
    values = node_values(activation, teacher, spike, nodes)
    scalars = _readout_scalars(spike, p_over_d, n_over_d, lam, noise_f, True, varpi2)
    theta = [float(v) for v in parameter_rows(scalars, values, system.parameter_names)[0]]
    u_double = [float(double.unknowns[name][0]) for name in system.unknown_names]
    outputs_double = {name: float(double.outputs[name][0]) for name in system.outputs}
    return verify_system(system, theta, u_double, outputs_double, digits)


# --------------------------------------------------------------------------------------------------
# model points (ModelParams with a step)
# --------------------------------------------------------------------------------------------------


@lru_cache(maxsize=32)
def _odd(activation: str) -> bool:
    """Whether σ(−x) = −σ(x)."""
    from ...derive.activations import is_odd, parse_activation

    return bool(is_odd(parse_activation(activation)))


def sobolev_readout(params: ModelParams) -> bool:
    """Whether ``params`` has a Sobolev readout (τ > 0 with k ≥ 1 gradient rows)."""
    return params.tau > 0 and params.k >= 1


def check_supported(params: ModelParams) -> None:
    """UserError unless the theory covers ``params``: a step, a_j = 1/p (or ±1/p with an odd σ for the L2
    readout), λ > 0 (or λ = 0 with p < n for the L2 readout), and for a Sobolev readout (τ > 0) a_j = 1/p, λ > 0
    and k ∈ {1, 2} directions after a step with fresh directions.

    The ±1/p layer with an odd σ is the a_j = 1/p model in other coordinates: a row with a_j < 0 has spike
    entry −t_j and, σ being odd, s_jσ(t_jκ + b_jᵀx) = σ(s_jt_jκ + s_jb_jᵀx); the readout's weights s_ja_j (of
    the same norm) then see rows with spike entries s_jt_j of mean r and the Gaussian bulk diag(s)B, and the
    rows' spread Σ of the spike with a_j > 0 (derive/spike.py: for odd σ the row shift δ and its slope vanish,
    so both populations have the same Σ in these coordinates)."""
    if not params.has_step:
        raise UserError("the one-step theory needs a first-layer step: step = 'l2' or 'sobolev'.")
    if sobolev_readout(params):
        if not params.lam > 0:
            raise UserError("the one-step Sobolev readout needs lam > 0 (the limit lam -> 0+ is not derived for it).")
        if params.k > 2:
            raise UserError(
                f"the Sobolev readout after a step is derived for k = 1 or 2 directions, got k = {params.k}; "
                "simulate it with `sobolev-rf simulate --step ...`."
            )
        if params.step == "sobolev" and params.step_dirs == "shared":
            raise UserError(
                "the Sobolev readout after a shared-direction step is not derived (the spike then depends on V); "
                "use --step-dirs fresh or simulate it."
            )
        if params.second_layer != "const":
            raise UserError(
                "the Sobolev readout after a step is derived for second_layer = 'const' (a_j = 1/p); "
                "simulate the 'sign' layer."
            )
    if params.second_layer != "const" and not _odd(params.activation):
        raise UserError(
            "the one-step theory covers the ±1/p second layer (second_layer = 'sign') for an odd activation only "
            "(then its two populations of neurons are mirror images); use second_layer = 'const' or simulate it."
        )
    _check_lam(params.lam, params.p_over_d, params.n_over_d)


def _check_lam(lam: Any, p_over_d: Any, n_over_d: Any) -> None:
    """UserError unless λ > 0, or λ = 0 with p < n (element-wise on broadcast arrays).

    λ = 0 is the limit λ → 0⁺ where the fixed point stays finite: with p < n (underparameterised) the
    Marchenko–Pastur averages keep a = V̂₂ > 0 and V₁, V₂ converge (tanh, Sobolev step, p/d = 2, n/d = 3:
    eps_L2 0.042805, 0.042812, 0.042812 at λ = 10⁻⁶, 10⁻⁹, 0), so λ = 0 is solved as it stands. With p ≥ n the
    readout interpolates, V₁, V₂ grow like 1/λ and the limit needs the scaled unknowns of an interpolating
    branch, which is not derived for the one-step readout."""
    lam_a, p_a, n_a = np.broadcast_arrays(*(np.asarray(v, dtype=float) for v in (lam, p_over_d, n_over_d)))
    if np.any(~np.isfinite(lam_a)) or np.any(lam_a < 0):
        raise UserError("the one-step readout needs a finite lam >= 0.")
    if np.any((lam_a == 0) & ~(p_a < n_a)):
        raise UserError(
            "the one-step readout needs lam > 0 when p >= n (the interpolating branch of lam -> 0+ is not derived "
            "for it); lam = 0 is covered for p < n."
        )


#: Outputs of the Sobolev readout that are averaged over the law of ν.
SOBOLEV_OUTPUTS = ("eps_L2", "eps_H1", "eps_grad", "train_error_L2", "train_loss", "m", "theta", "chi", "q_1", "q_2")


def solve_sobolev_expected(
    params: ModelParams,
    spike: ReadoutSpike,
    p_over_d: Any,
    n_over_d: Any,
    lam: Any,
    tol: float = 1e-13,
    nodes: int = NODES,
    znodes: int = ZETA_NODES,
    backend: str = "auto",
    per_direction: int | None = None,
) -> ReadoutResult:
    """The Sobolev readout of ``params`` averaged over the law of the ζ shift (:func:`alignment_law`, with
    ``per_direction`` nodes, default :func:`nu_nodes` of the widest law among the points), on every point of the
    broadcast arrays of the spike's fields and p/d, n/d, λ (flattened); a point converges when every ν-node
    does. The unknowns are those of the centre ν = 0. A point's ν-nodes are solved as one batch and one run of
    the C kernel, continued from node to node along the rule's path, each carrying on the factored Jacobian of
    the nodes before it (:meth:`~sobolev_rf.codegen.runtime.CKernel.solve`)."""
    ch = spike.channels()
    fields = (spike.r, spike.cW2, spike.gamma, ch["Sigma_tt"], ch["Sigma_te"], ch["Sigma_ee"], p_over_d, n_over_d, lam)
    arrays = np.broadcast_arrays(*[np.asarray(v, dtype=float) for v in fields])
    r, cW2, gamma, stt, ste, see, p, n, lam_a = (v.reshape(-1) for v in arrays)
    varpi = np.asarray(params.alignment, dtype=float)
    per_direction = per_direction or nu_nodes(len(varpi), ReadoutSpike(r, cW2, gamma))  # one rule for all points
    laws = [alignment_law(varpi, ReadoutSpike(r[i], cW2[i], gamma[i]), per_direction) for i in range(len(r))]
    weights = laws[0][2]
    nus = len(weights)
    col = (slice(None), None)
    res = solve_sobolev_readout(
        params.activation,
        params.teacher,
        ReadoutSpike(r[col], cW2[col], gamma[col], stt[col], ste[col], see[col]),
        p[col],
        n[col],
        lam_a[col],
        params.tau,
        np.stack([law[0] for law in laws]),
        np.stack([law[1] for law in laws]),
        params.noise_f,
        params.noise_g,
        nodes,
        znodes,
        backend,
        tol,
        run=nus,
    )
    outputs = {key: res.outputs[key].reshape(-1, nus) @ weights for key in SOBOLEV_OUTPUTS}
    centre = nus // 2  # the middle node of an odd rule per direction is ν = 0 for k = 1; any node will do for k = 2
    unknowns = {key: v.reshape(-1, nus)[:, centre] for key, v in res.unknowns.items()}
    ok = np.all(res.converged.reshape(-1, nus), axis=1)
    residual = np.max(res.residual.reshape(-1, nus), axis=1)
    return ReadoutResult(outputs, unknowns, ok, residual, res.system)


def solve_point(params: ModelParams, tol: float = 1e-13, backend: str = "auto", nodes: int = NODES) -> Any:
    """The :class:`~.solve.TheoryResult` of a model point with a step: eps_L2, train_error_L2, train_loss and
    eps_grad (derive/onestep_grad.py); with a Sobolev readout (τ > 0) also eps_H1, and every error averaged
    over the law of the readout's ζ shift (:func:`alignment_law`). The τ = 0 readout's eps_H1 (k ≥ 1) is its
    expectation over V, None after a shared-direction step (which moves the rows along V).
    The spike is in ``order["spike"]``."""
    from .solve import SolverError, TheoryResult

    point = _readout_point(params)
    spike = point[2]
    if sobolev_readout(params):
        res = solve_sobolev_expected(
            params, spike, params.p_over_d, params.n_over_d, params.lam, tol, nodes, backend=backend
        )
    else:
        res = solve_readout(*point, nodes, backend, tol, varpi2=_mean_square_alignment(params))
    if not bool(res.converged[0]):
        raise SolverError(f"the one-step readout did not converge at this point (residual {res.residual[0]:.2e}).")
    out = {name: float(v[0]) for name, v in res.outputs.items()}
    order: dict[str, Any] = {name: float(v[0]) for name, v in res.unknowns.items()} | {
        name: out[name] for name in ("m", "theta", "theta_e", "chi", "q_1", "q_2", "Vhat_1", "Vhat_2") if name in out
    }
    order["spike"] = {"r": float(spike.r), "gamma": float(spike.gamma), "cW2": float(spike.cW2)} | {
        name: float(value) for name, value in spike.channels().items()
    }
    if sobolev_readout(params):
        notes = [
            "one-step Sobolev readout (tau > 0): errors averaged over the readout's zeta shift r<u, v_l>.",
            "on a real tanh Sobolev step the simulation's eps_L2 sits 0.0008 +- 0.0002 (1.7 %) above this readout at "
            "every d from 400 to 3200 (eps_H1 0.0006): a small theory error, not finite size, whose source is not "
            "settled; a planted spiked layer matches (docs/studies/onestep.md).",
        ]
        eps_h1: float | None = out["eps_H1"]
        train_loss = out["train_loss"]
    else:
        notes = []
        eps_h1 = out["eps_H1"] if params.k >= 1 else None
        if params.k >= 1 and _step_sees_v(params):
            eps_h1 = None
            notes.append(
                "one-step readout (tau = 0) after a shared-direction step: eps_H1 is not derived (the step moves the "
                "rows along V, so W1 is not independent of V); None."
            )
        train_loss = out["train_error_L2"] + params.lam * out["q_2"]
    if not _odd(params.activation):
        if params.step == "sobolev" and params.step_dirs == "fresh":
            notes.append(
                "the rows' spread is derived for an L2 step (any activation) and for a fresh Sobolev step with an odd "
                "activation; here the Sobolev step's bulk linear in W0 is taken generic along the spike."
            )
        notes.append(
            "for an activation that is not odd the bulk has a part linear in W0 whose shape (spectrum, alignment "
            "with the teacher) the readout does not carry: ReLU, L2 step, eta = 1: 0.490 against the simulator's "
            "0.468 +- 0.007 at d = 800 (docs/studies/onestep.md); Sigma_ee misses a covariance of that bulk (ReLU: "
            "1.47 against 1.39-1.42 measured)."
        )
    return TheoryResult(
        eps_L2=out["eps_L2"],
        eps_H1=eps_h1,
        eps_grad=out["eps_grad"],
        train_loss=train_loss,
        eps_H1_self_averaging=sobolev_readout(params) or params.k == 0,
        train_error_L2=out["train_error_L2"],
        order=order,
        residual=float(res.residual[0]),
        converged=True,
        notes=tuple(notes),
        state=(res.system, np.array([float(v[0]) for v in res.unknowns.values()])),
    )


def _mean_square_alignment(params: ModelParams) -> float:
    """ϖ̄² = ‖ϖ‖²/k (0 for k = 0)."""
    al = np.asarray(params.alignment or (), dtype=float)
    return float(np.mean(al**2)) if al.size else 0.0


def _step_sees_v(params: ModelParams) -> bool:
    """Whether the step uses the readout's directions V (a Sobolev step with shared directions)."""
    return params.step == "sobolev" and params.step_dirs == "shared"


def solve_map(params: ModelParams, eta: Any, alpha0: Any, backend: str = "auto", nodes: int = NODES) -> ReadoutResult:
    """The one-step readout of ``params`` on every point of the broadcast (η̃, α₀) arrays (flattened)."""
    return solve_step_grid(params, eta=eta, alpha0=alpha0, backend=backend, nodes=nodes)


#: Points per batch of a grid (:func:`solve_step_grid`): they bound its parameter rows (an L2-readout point
#: takes about 800 doubles, a Sobolev-readout point with its ν-nodes up to 50 × 975).
GRID_BATCH = {False: 4096, True: 128}


def solve_step_grid(
    params: ModelParams,
    *,
    eta: Any,
    alpha0: Any,
    p_over_d: Any = None,
    n_over_d: Any = None,
    lam: Any = None,
    backend: str = "auto",
    nodes: int = NODES,
    progress: Callable[[int], None] | None = None,
) -> ReadoutResult:
    """The one-step readout of ``params`` on the broadcast arrays of η̃, α₀ and (when given) p/d, n/d, λ
    (flattened in C order); the other fields of ``params`` are fixed. The points are solved in batches of
    :data:`GRID_BATCH` (every point on its own, so the batches change the numbers by rounding at most; a
    Sobolev readout takes one ν-rule for the whole grid), and ``progress`` is called with the number of points
    of each batch."""
    check_supported(params)
    arrays = np.broadcast_arrays(
        *[
            np.asarray(getattr(params, name) if value is None else value, dtype=float)
            for name, value in (
                ("eta", eta),
                ("alpha0", alpha0),
                ("p_over_d", p_over_d),
                ("n_over_d", n_over_d),
                ("lam", lam),
            )
        ]
    )
    e, a, p, n, lam_a = (v.reshape(-1) for v in arrays)
    if not len(e):
        raise UserError("the grid has no points: give at least one value of each axis.")
    if np.any(p <= 0) or np.any(n <= 0):
        raise UserError("p_over_d and n_over_d must be > 0.")
    spike = spike_scaling(params).at(e, a)
    fields = [np.broadcast_to(np.asarray(v, dtype=float), e.shape) for v in (spike.r, spike.cW2, spike.gamma)]
    fields += [np.broadcast_to(np.asarray(v, dtype=float), e.shape) for v in spike.channels().values()]
    sobolev = sobolev_readout(params)
    per_direction = nu_nodes(params.k, ReadoutSpike(*fields[:3])) if sobolev else None
    parts = []
    for start in range(0, len(e), GRID_BATCH[sobolev]):
        take = slice(start, start + GRID_BATCH[sobolev])
        piece = ReadoutSpike(*(f[take] for f in fields))
        if sobolev:
            res = solve_sobolev_expected(
                params, piece, p[take], n[take], lam_a[take], nodes=nodes, backend=backend, per_direction=per_direction
            )
        else:
            res = solve_readout(
                params.activation,
                params.teacher,
                piece,
                p[take],
                n[take],
                lam_a[take],
                params.noise_f,
                nodes,
                backend,
                varpi2=_mean_square_alignment(params),
            )
            if params.k == 0 or _step_sees_v(params):  # no directions, or a step that sees V: no eps_H1
                del res.outputs["eps_H1"]
        parts.append(res)
        if progress is not None:
            progress(len(res.converged))
    return ReadoutResult(
        {key: np.concatenate([r.outputs[key] for r in parts]) for key in parts[0].outputs},
        {key: np.concatenate([r.unknowns[key] for r in parts]) for key in parts[0].unknowns},
        np.concatenate([r.converged for r in parts]),
        np.concatenate([r.residual for r in parts]),
        parts[0].system,
    )


def verify_point(params: ModelParams, digits: int = 50, nodes: int = NODES, znodes: int = ZETA_NODES) -> dict[str, Any]:
    """:func:`verify_readout` at the point of ``params`` (with a step); with a Sobolev readout, the derived
    system at the centre of the shift's law (ν = 0: ⟨û, v⟩ = γϖ)."""
    if not sobolev_readout(params):
        return verify_readout(*_readout_point(params), nodes, digits, _mean_square_alignment(params))
    from ...derive.onestep import derive_onestep_sobolev_system
    from .verify import verify_system

    if digits < 20:
        raise UserError(f"digits must be at least 20, got {digits}.")
    activation, teacher, spike, p_over_d, n_over_d, lam, noise_f = _readout_point(params)
    varpi = np.asarray(params.alignment, dtype=float)
    shift, rotated = rotated_alignment(varpi, float(spike.r) * float(spike.gamma) * varpi)
    args = (activation, teacher, spike, p_over_d, n_over_d, lam, params.tau, shift, rotated, noise_f, params.noise_g)
    double = solve_sobolev_readout(*args, nodes=nodes, znodes=znodes)
    if not bool(double.converged[0]):
        raise UserError("the double-precision readout did not converge at this point, so there is nothing to verify.")
    k = varpi.shape[-1]
    system = derive_onestep_sobolev_system(k, nodes, znodes)
    rows = sobolev_parameter_rows(*args, nodes, znodes, system.parameter_names)
    theta = [float(v) for v in rows[0]]
    u_double = [float(double.unknowns[name][0]) for name in system.unknown_names]
    outputs_double = {name: float(double.outputs[name][0]) for name in system.outputs}
    return verify_system(system, theta, u_double, outputs_double, digits)


def _readout_point(params: ModelParams) -> tuple[str, str, ReadoutSpike, float, float, float, float]:
    """The leading arguments of :func:`solve_readout` and :func:`verify_readout` at a point with a step."""
    check_supported(params)
    spike = spike_scaling(params).at(params.eta, params.alpha0)
    return params.activation, params.teacher, spike, params.p_over_d, params.n_over_d, params.lam, params.noise_f
