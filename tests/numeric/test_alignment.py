"""The law of the errors over ϖ ~ N(0, I_k): exact quadratic form and its distribution function."""

from __future__ import annotations

import math

import numpy as np
import pytest

from sobolev_rf.derive.params import ModelParams
from sobolev_rf.numeric.cli.main import main
from sobolev_rf.numeric.studies.alignment import QuadraticLaw, alignment_laws
from sobolev_rf.numeric.theory.solve import solve


def test_quadratic_form_reproduces_solves_at_new_alignments() -> None:
    params = ModelParams(activation="tanh", teacher="x + x**2/2", k=2, lam=1e-2, noise_g=0.3)
    laws = alignment_laws(params, lambda p: solve(p).to_dict())
    for varpi in [(0.7, -1.9), (2.5, 0.3)]:
        direct = solve(params.with_(alignment=varpi)).to_dict()
        for key, law in laws.items():
            assert law(np.array(varpi))[0] == pytest.approx(direct[key], rel=1e-9)


@pytest.mark.parametrize(
    "law",
    [
        QuadraticLaw(A=np.array([[0.7]]), b=np.array([0.4]), c=0.2),
        QuadraticLaw(A=np.array([[0.5, 0.1], [0.1, 0.2]]), b=np.array([0.3, -0.1]), c=1.0),
        QuadraticLaw(A=np.diag([0.5, -0.2, 0.1]), b=np.array([0.3, 0.0, 1.0]), c=0.0),
    ],
)
def test_distribution_function_matches_sampling(law: QuadraticLaw) -> None:
    z = np.random.default_rng(1).standard_normal((400_000, len(law.b)))
    e = law(z)
    for q in (0.05, 0.3, 0.7, 0.95):
        x = float(np.quantile(e, q))
        assert law.cdf(x) == pytest.approx(q, abs=3e-3)
    assert law.mean == pytest.approx(e.mean(), rel=1e-2)


def test_cli_alignment_distribution(capsys: pytest.CaptureFixture[str]) -> None:
    import json

    assert main(["solve", "--k", "1", "--lam", "0.01", "--alignment-distribution", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    law = out["alignment_distribution"]["eps_H1"]
    qs = list(law["quantiles"].values())
    assert qs == sorted(qs)
    assert law["mean"] > 0


@pytest.mark.parametrize("c, b", [(0.4, (0.0, 0.0)), (0.1, (0.3, -0.5))])
def test_k2_cdf_matches_a_one_dimensional_adaptive_integral(c: float, b: tuple[float, float]) -> None:
    """k = 2, A = diag(0.3, 0.12): conditional on y₂ the sub-level set in y₁ is an interval, and the
    remaining 1-D Gaussian integral is done adaptively between its square-root kinks (independent route)."""
    from scipy import integrate, special

    law = QuadraticLaw(A=np.diag([0.3, 0.12]), b=np.array(b), c=c)

    def reference(x: float) -> float:
        def given(y2: float) -> float:
            rest = c + b[1] * y2 + 0.12 * y2**2 - x  # 0.3 y₁² + b₁y₁ + rest ≤ 0
            disc = b[0] ** 2 - 4 * 0.3 * rest
            if disc <= 0:
                return 0.0
            r = math.sqrt(disc)
            return float(special.ndtr((-b[0] + r) / 0.6) - special.ndtr((-b[0] - r) / 0.6)) * math.exp(-y2 * y2 / 2)

        # kinks where disc = 0: 0.12 y² + b₁y + (c − x − b₀²/1.2) = 0
        roots = np.roots([0.12, b[1], c - x - b[0] ** 2 / 1.2])
        kinks = sorted(float(r.real) for r in roots if abs(r.imag) < 1e-12)
        value = integrate.quad(
            given, -12, 12, points=[k for k in kinks if -12 < k < 12] or None, epsabs=1e-13, epsrel=1e-12, limit=400
        )[0]
        return value / math.sqrt(2 * math.pi)

    for x in np.quantile(law(np.random.default_rng(0).standard_normal((20000, 2))), [0.02, 0.3, 0.7, 0.98]):
        assert law.cdf(float(x)) == pytest.approx(reference(float(x)), abs=1e-8)
