"""Data-informed gradient subspaces (numeric/simulation/exact.py ``subspace="informed"``, outside the theory) and the
``sobolev-rf informed`` study (numeric/studies/informed.py)."""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import io
import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sobolev_rf.derive.params import ModelParams
from sobolev_rf.numeric import cli
from sobolev_rf.numeric.quantities import ERRORS
from sobolev_rf.numeric.reports.informed import COLUMNS
from sobolev_rf.numeric.simulation import exact as sim
from sobolev_rf.numeric.studies import informed as study


def dtanh(x: np.ndarray) -> np.ndarray:
    return 1.0 - np.tanh(x) ** 2


TANH = sim.ExactFeatures(np.tanh, dtanh, np.tanh, dtanh)


def realised_ratio(d: int, pilot: int, noise: float, seeds: int = 4) -> float:
    """Mean over seeds of the realised ϖ₁/√d = u₁ᵀθ₀ of an informed draw."""
    values = []
    for seed in range(seeds):
        v, theta0 = sim.draw_directions(
            np.random.default_rng(seed), d, (0.0,), "informed", pilot=pilot, noise_g=noise, dphi=dtanh
        )
        values.append(v[:, 0] @ theta0 / math.sqrt(d))
    return float(np.mean(values))


def bbp_overlap(signal: float, noise: float, d_over_m: float) -> float:
    """Top-eigenvector overlap |u₁ᵀθ₀| of a rank-one spiked sample covariance (signal·θ₀θ₀ᵀ + noise·I, m
    samples in dimension d) as d, m → ∞: √((1 − c/ℓ²)/(1 + c/ℓ)) with ℓ = signal/noise, c = d/m, 0 below
    the BBP threshold ℓ = √c."""
    ell = signal / noise
    return math.sqrt(max(0.0, (1 - d_over_m / ell**2) / (1 + d_over_m / ell)))


# ------------------------------------------------------------------------------------- the informed draw


def test_realised_alignment_grows_like_sqrt_d_and_tends_to_one() -> None:
    nodes, weights = np.polynomial.hermite_e.hermegauss(80)
    signal = float(weights @ dtanh(nodes) ** 2 / weights.sum())  # E φ′(ω)², the rank-one signal
    d = 200
    # noiseless pilot gradients: v₁ = √d·θ₀ exactly, for any m
    for m in (1, 50, 200):
        assert realised_ratio(d, m, 0.0, seeds=2) == pytest.approx(1.0, abs=1e-12)
    # noisy pilot gradients: smaller, increasing with m, as the BBP law of the spiked covariance says
    for noise in (0.2, 0.05):
        ratios = [realised_ratio(d, m, noise) for m in (100, 200, 800, 1600)]
        assert all(a < b for a, b in zip(ratios, ratios[1:])), ratios
        assert all(r < 0.999 for r in ratios)
        for m, r in zip((100, 200, 800, 1600), ratios):
            assert r == pytest.approx(bbp_overlap(signal, noise, d / m), abs=0.03)
    # ... and increasing as Δ_g → 0 at fixed m = d
    by_noise = [realised_ratio(d, d, noise) for noise in (0.3, 0.1, 0.03, 0.01)]
    assert all(a < b for a, b in zip(by_noise, by_noise[1:])) and by_noise[-1] > 0.98
    # below the BBP threshold the pilot estimate is uninformative: ϖ₁ = O(1), not √d
    assert realised_ratio(d, d // 2, 0.5) < 0.3


def test_realised_alignment_is_reported_by_simulate() -> None:
    params = ModelParams(activation="tanh", teacher="tanh", k=2, tau=1, p_over_d=1, n_over_d=1, lam=1e-2, noise_g=0.05)
    res = sim.simulate_features(TANH, params, 64, seeds=3, n_test=100, progress=False, subspace="informed")
    assert res.pilot == 64 and res.outside_theory
    aligns = res.per_seed["alignment"]
    assert aligns.shape == (3, 2)
    assert np.all(aligns[:, 0] / 8 > 0.8)  # ϖ₁ ≈ √d = 8 (noise 0.05 < E φ′², m = d: overlap ≈ 0.94)
    assert np.all(np.abs(aligns[:, 1]) < 3)  # the second direction is noise-dominated: ϖ₂ = O(1)
    random = sim.simulate_features(TANH, params, 64, seeds=3, n_test=100, progress=False)
    np.testing.assert_array_equal(random.per_seed["alignment"], np.ones((3, 2)))  # random V: ϖ as prescribed
    assert not random.outside_theory and random.pilot is None


# ------------------------------------------------------------------------------------------ sign invariance


def flipped(problem: sim.Problem, signs: np.ndarray) -> sim.Problem:
    """The same draw with v_l → s_l v_l: ζ_l, ϖ_l and the gradient labels ỹ_l (noise included, an equally
    likely noise draw) change sign with it."""
    return dataclasses.replace(
        problem,
        v=problem.v * signs,
        zeta=problem.zeta * signs,
        alignment=problem.alignment * signs,
        y_grad=problem.y_grad * signs,
    )


@pytest.mark.parametrize("p,lam", [(40, 1e-2), (150, 1e-2), (40, 0.0), (150, 0.0)])  # primal, dual, λ → 0⁺
@pytest.mark.parametrize("subspace", ["informed", "random"])
def test_training_is_invariant_under_flipping_a_direction(p: int, lam: float, subspace: str) -> None:
    problem = sim.draw_problem(
        TANH,
        30,
        p,
        25,
        (0.7, -0.4),
        1,
        0.1,
        0.2,
        np.random.default_rng(5),
        subspace,
        pilot=None if subspace == "random" else 30,
    )
    signs = np.array([-1.0, 1.0])
    other = flipped(problem, signs)
    assert not np.array_equal(problem.v, other.v)
    w, w_flip = sim.fit(problem, lam), sim.fit(other, lam)
    np.testing.assert_array_equal(w, w_flip)
    errors = sim.estimate_test_errors(problem, w, TANH, 300, np.random.default_rng(9))
    errors_flip = sim.estimate_test_errors(other, w_flip, TANH, 300, np.random.default_rng(9))
    assert errors == errors_flip  # exact equality
    assert sim.train_errors(problem, w, lam) == sim.train_errors(other, w_flip, lam)


# ------------------------------------------------------------------------------ informed vs random: findings


def arms(params: ModelParams, d: int, seeds: int) -> dict[str, study.ArmResult]:
    settings = study.Settings(params=params, ds=(d,), seeds=seeds, pilot_ratio=1.0, n_test=1000)
    return {r.arm: r for r in study.simulate_arms(settings)}


def test_informed_beats_random_for_a_linear_model() -> None:
    """Finding (measured): with a linear student and teacher (σ = φ = x; p/d = 2, n/d = 0.5, λ = 1e-3) the
    informed direction pins the teacher component of β = Θw/√d: eps_L2 ≈ 0.37 (informed) against ≈ 0.65
    (random V, ϖ ~ N(0, 1)) and ≈ 0.65 (L2) at d = 100–200."""
    params = ModelParams(activation="x", teacher="x", k=1, tau=1, p_over_d=2, n_over_d=0.5, lam=1e-3)
    res = arms(params, 100, 6)
    inf, rnd = res["informed"], res["random"]
    gap = rnd.mean("eps_L2") - inf.mean("eps_L2")
    assert gap > 3 * math.hypot(rnd.se("eps_L2"), inf.se("eps_L2")) and gap > 0.15, (
        inf.mean("eps_L2"),
        rnd.mean("eps_L2"),
    )


def test_informed_is_much_worse_than_random_for_relu_features_and_tanh_teacher() -> None:
    """Finding (measured): for ReLU features and a tanh teacher (p/d = 0.5, n/d = 1, λ = 1e-3) informed V is
    far worse — the part of φ′ the features cannot represent is scaled by ϖ₁ ≈ √d and acts as gradient-label
    noise of variance ∝ d (eps_L2 ≈ 2.5 at d = 100, 6.4 at d = 400; random V ≈ 0.41–0.44)."""
    params = ModelParams(activation="relu", teacher="tanh", k=1, tau=1, p_over_d=0.5, n_over_d=1, lam=1e-3)
    res = arms(params, 60, 3)
    assert res["informed"].mean("eps_L2") > 2 * res["random"].mean("eps_L2")
    np.testing.assert_allclose(res["informed"].ratio, 1.0, rtol=1e-12)


# --------------------------------------------------------------------------------------------- command line


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    out = tmp_path_factory.mktemp("informed") / "out"
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        assert cli.main(["informed", "--quick", "--out", str(out)]) == 0
    return out, buf.getvalue()


def test_cli_writes_csv_and_png_with_the_command(quick_run: tuple[Path, str]) -> None:
    out, stdout = quick_run
    assert {p.name for p in out.iterdir()} == {"informed.png", "informed.csv"}
    command = f"sobolev-rf informed --quick --out {out}"
    with (out / "informed.csv").open(encoding="utf-8") as fh:
        assert fh.readline() == f"# command: {command}\n"
        reader = csv.DictReader(fh)
        rows = list(reader)
        assert tuple(reader.fieldnames or ()) == COLUMNS
    assert {(r["arm"], r["d"]) for r in rows} == {(a, d) for a in ("random", "informed", "L2") for d in ("40", "60")}
    for r in rows:
        assert all(math.isfinite(float(r[f"{key}{suffix}"])) for key in ERRORS for suffix in ("", "_se"))
        if r["arm"] == "informed":
            assert r["outside_theory"] == "1" and r["pilot"] == r["d"] and r["tau"] == "1"
            assert float(r["varpi1_over_sqrt_d"]) == pytest.approx(1.0, abs=1e-12)  # noiseless pilot
            assert math.isnan(float(r["theory_eps_L2_mean"]))
        else:
            assert r["outside_theory"] == "0" and r["pilot"] == ""
            assert float(r["theory_eps_L2_mean"]) > 0 and float(r["theory_eps_L2_realised"]) > 0
    with Image.open(out / "informed.png") as image:
        assert image.format == "PNG" and image.info["Description"] == command
        assert image.size[0] >= 1200
    assert "outside the theory" in stdout and "informed" in stdout and "eps_grad" in stdout


@pytest.mark.parametrize(
    "argv",
    [
        ["--alignment", "1"],
        ["--tau", "0"],
        ["--k", "0"],
        ["--d", "5"],
        ["--d", "40,40"],
        ["--d", "4o"],
        ["--seeds", "1"],
        ["--seeds", "2.5"],
        ["--pilot-ratio", "0"],
        ["--pilot-ratio", "x"],
        ["--pilot-ratio", "nan"],
        ["--n-test", "0"],
        ["--lam", "-1"],
        ["--d", "20", "--k", "20"],
        ["--d", "100000"],
        ["--bogus"],
    ],
)
def test_bad_input_is_one_line_exit_2_and_writes_nothing(
    argv: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    try:
        code: object = cli.main(["informed", "--quick", "--out", str(out), *argv])
    except SystemExit as exc:
        code = exc.code
    captured = capsys.readouterr()
    assert code == 2 and captured.out == ""
    assert len(captured.err.strip().splitlines()) == 1 and "error" in captured.err
    assert not out.exists() and list(tmp_path.iterdir()) == []
