"""eps_grad and eps_H1 of the τ = 0 readout after one step (derive/onestep_grad.py).

Measured when these tests were written (benchmarks/onestep_grad.py, tables in docs/studies/onestep.md):

- η̃ = 0 gives the random-features eps_grad and eps_H1 (k = 1, τ = 0) to ≤ 2e-15 relative (tanh and ReLU);
- tanh, L2 step η̃ = 2, α₀ = 2 (p/d = 1.5, n/d = 3, λ = 0.01, ϖ = 0.5): eps_grad 0.16194 against
  0.16423 ± 0.00216, 0.16165 ± 0.00168, 0.16426 ± 0.00196, 0.16234 ± 0.00167 at d = 200, 400, 800, 1600
  (32, 24, 16, 8 seeds); eps_H1 (its expectation over V) within 1.2 SE.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from sobolev_rf.derive.params import ModelParams
from sobolev_rf.numeric.simulation.exact import simulate
from sobolev_rf.numeric.theory.solve import solve

POINT = ModelParams(activation="tanh", teacher="tanh", k=1, tau=0, p_over_d=1.5, n_over_d=3.0, lam=0.01)


@pytest.mark.parametrize("activation,teacher,alpha0", [("tanh", "tanh", 0.5), ("relu", "sin(x)", 4.0)])
def test_no_step_gives_the_random_features_gradient_errors(activation: str, teacher: str, alpha0: float) -> None:
    params = POINT.with_(activation=activation, teacher=teacher, alignment=(0.7,))
    rf = solve(params)
    stepped = solve(params.with_(step="l2", eta=0.0, alpha0=alpha0))
    assert stepped.eps_grad == pytest.approx(rf.eps_grad, rel=1e-12)
    assert stepped.eps_H1 == pytest.approx(rf.eps_H1, rel=1e-12)
    assert not stepped.eps_H1_self_averaging  # τ = 0: eps_H1 is its expectation over V


def test_eps_h1_is_eps_grad_at_unit_alignment_and_absent_without_directions() -> None:
    """E_V eps_H1 = ϖ̄²eps_∥ + eps_grad − eps_∥: at ϖ̄² = 1 it is eps_grad; it is linear in ϖ̄²."""
    step = POINT.with_(step="l2", eta=2.0, alpha0=2.0)
    at = {a: solve(step.with_(alignment=(a,))) for a in (0.0, 0.5, 1.0)}
    assert at[1.0].eps_H1 == pytest.approx(at[1.0].eps_grad, rel=1e-13)
    assert at[0.5].eps_H1 == pytest.approx(0.75 * at[0.0].eps_H1 + 0.25 * at[1.0].eps_H1, rel=1e-12)
    assert at[0.0].eps_H1 < at[1.0].eps_H1  # the error along θ₀ is part of eps_grad
    assert solve(step.with_(k=0)).eps_H1 is None
    shared = step.with_(step="sobolev", eta=1.0, tau_step=2.0, k_step=1, step_dirs="shared")
    res = solve(shared)
    assert res.eps_H1 is None and math.isfinite(res.eps_grad)
    assert any("shared-direction step" in note for note in res.notes)


def test_against_the_simulator_after_a_sobolev_step() -> None:
    """tanh, Sobolev step (η̃ = 1, α₀ = 2, τ₁ = k₁ = 1), ϖ = 0.5 at d = 300, 16 seeds: eps_grad within 4 SE plus a
    finite-size allowance of 3 % (measured gaps +0.0032 ± 0.0021, ... at d = 200...1600), eps_H1 (not
    self-averaging: a seed spread of ~30 %) within 4 SE plus 3 %, and the step lowers eps_grad well below its
    no-step value (0.2667)."""
    params = POINT.with_(alignment=(0.5,), step="sobolev", eta=1.0, alpha0=2.0, tau_step=1.0, k_step=1)
    theory = solve(params)
    sim = simulate(params, 300, 16)
    for key in ("eps_grad", "eps_H1"):
        values = sim.per_seed[key]
        se = values.std(ddof=1) / math.sqrt(len(values))
        want = getattr(theory, key)
        assert abs(values.mean() - want) < 4 * se + 0.03 * want, (key, values.mean(), se, want)
    assert theory.eps_grad < 0.6 * solve(params.with_(eta=0.0)).eps_grad
    assert np.all(np.isfinite(sim.per_seed["eps_grad"]))
