"""Label noise and the ridge (numeric/studies/noise.py) and the ``sobolev-rf noise`` command.

The physical statements were found by computing, at ReLU features, tanh teacher, τ = 1, k = 1, ϖ = 1, n/d = 1
(interpolation threshold p/d = (1 + τk)·n/d = 2):

- at p/d = 4 the optimal ridge is interior and grows with the function noise: λ* ≈ 0.30, 0.56, 1.9 for
  Δ_f = 0, 0.1, 0.5; even the noiseless point wants λ* > 0 (the nonlinear part of φ acts as noise);
- near the threshold (p/d = 2.5) λ → 0⁺ is far worse than λ* for any noise;
- only far above the threshold (p/d ≳ 12 here) is interpolation benign; at p/d = 20 the benign region
  reaches Δ_f ≈ 0.035–0.04 for function noise but Δ_g ≈ 0.14–0.17 for gradient noise, so Δ = 0.1 is
  benign for gradient noise and not for function noise.
"""

from __future__ import annotations

import contextlib
import csv
import io
import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sobolev_rf.derive.params import ModelParams
from sobolev_rf.numeric import cli
from sobolev_rf.numeric.reports.noise import BENIGN_COLUMNS, LAMBDA_COLUMNS
from sobolev_rf.numeric.studies.noise import (
    lambda_curves,
    minimise_on_grid,
    noise_maps,
    noise_response,
    optimal_lambda,
)
from sobolev_rf.numeric.theory.solve import solve

BASE = ModelParams(activation="relu", teacher="tanh", k=1, tau=1, p_over_d=4.0, n_over_d=1.0, lam=1e-3)
FILES = {"noise_lambda.png", "noise_lambda.csv", "noise_benign.png", "noise_benign.csv"}


# ------------------------------------------------------------------------------------------ library


@pytest.fixture(scope="module")
def noisy_optimum():
    point = BASE.with_(noise_f=0.1)
    return point, optimal_lambda(point)


def test_optimal_lambda_is_a_true_minimum(noisy_optimum) -> None:
    point, opt = noisy_optimum
    lam, value = opt  # unpacks as (λ*, ε(λ*))
    assert not opt.benign and not opt.at_upper_edge
    assert 0.3 < lam < 1.0
    assert value == pytest.approx(solve(point.with_(lam=lam)).eps_L2, rel=1e-9)
    for factor in (0.95, 1.05, 0.8, 1.25):
        assert solve(point.with_(lam=lam * factor)).eps_L2 >= value - 1e-10
    assert value < opt.value_zero  # noise makes λ* > 0 strictly better than λ → 0⁺


def test_lambda_curves_reuse_the_affine_scan_for_the_same_optimum(noisy_optimum) -> None:
    point, opt = noisy_optimum
    (curve,) = lambda_curves(BASE, [0.1], np.geomspace(1e-6, 1e2, 25), ("eps_L2",), ("function",))
    other = curve.optima["eps_L2"]
    assert other.lam == pytest.approx(opt.lam, rel=5e-3)
    assert other.value == pytest.approx(opt.value, rel=1e-8)
    assert other.value_zero == pytest.approx(opt.value_zero, rel=1e-9)


def test_function_noise_raises_the_optimal_lambda() -> None:
    lams = [optimal_lambda(BASE.with_(noise_f=nf)).lam for nf in (0.0, 0.1, 0.5)]
    assert lams[0] > 0.1, "even noiseless labels want λ* > 0 at p/d = 4 (nonlinear teacher part acts as noise)"
    assert lams[0] < lams[1] < lams[2]


def test_near_the_threshold_interpolating_the_noise_is_harmful() -> None:
    opt = optimal_lambda(BASE.with_(p_over_d=2.5, noise_f=0.1))
    assert not opt.benign and opt.lam > 1e-2
    assert opt.value_zero > 2 * opt.value


def test_far_overparameterised_benign_regimes() -> None:
    wide = BASE.with_(p_over_d=20.0)
    clean = optimal_lambda(wide)
    assert clean.benign and clean.lam == 0.0 and clean.value == clean.value_zero
    assert clean.value_zero <= clean.value_positive
    assert optimal_lambda(wide.with_(noise_f=0.01)).benign
    function = optimal_lambda(wide.with_(noise_f=0.1))
    gradient = optimal_lambda(wide.with_(noise_g=0.1))
    assert not function.benign and function.lam > 1e-3
    assert gradient.benign, "gradient noise Δ_g = 0.1 is still benign at p/d = 20"


def test_lambda_zero_is_the_linear_limit_of_small_lambda() -> None:
    """ε(λ) = ε(0⁺) + cλ + O(λ²): linear extrapolation from λ = 1e-6, 2e-6 hits the λ = 0 solve, on the
    interpolating branch (p > 2n) and on the least-squares branch (p < 2n, where c ≈ −12 and the λ² term
    ≈ 440λ²)."""
    for p_over_d in (4.0, 1.0):
        point = BASE.with_(p_over_d=p_over_d, noise_f=0.1, noise_g=0.05)
        zero = solve(point.with_(lam=0.0))
        e1, e2 = solve(point.with_(lam=1e-6)), solve(point.with_(lam=2e-6))
        for key in ("eps_L2", "eps_H1"):
            extrapolated = 2 * getattr(e1, key) - getattr(e2, key)
            assert extrapolated == pytest.approx(getattr(zero, key), rel=1e-7)
            assert getattr(e1, key) != pytest.approx(getattr(zero, key), rel=1e-9)  # a real slope, not a copy


def test_errors_are_affine_in_the_noise_variances() -> None:
    lams = np.array([1e-3, 0.3, 10.0])
    response = noise_response(BASE, lams)
    for nf, ng in ((0.3, 0.7), (2.0, 0.0)):
        for i, lam in enumerate(lams):
            direct = solve(BASE.with_(lam=float(lam), noise_f=nf, noise_g=ng))
            for key in ("eps_L2", "eps_H1"):
                assert response.curve(key, nf, ng)[i] == pytest.approx(getattr(direct, key), rel=1e-8)
        zero = solve(BASE.with_(lam=0.0, noise_f=nf, noise_g=ng))
        assert response.at_zero("eps_L2", nf, ng) == pytest.approx(zero.eps_L2, rel=1e-8)
    assert np.all(response.slope_f["eps_L2"] > 0) and np.all(response.slope_g["eps_L2"] > 0)


def test_tau0_gradient_noise_does_not_enter() -> None:
    plain = BASE.with_(tau=0, p_over_d=2.0)
    assert solve(plain.with_(noise_g=1.0)).eps_L2 == pytest.approx(solve(plain).eps_L2, rel=1e-12)
    response = noise_response(plain, [1e-2, 1.0])
    assert not np.any(response.slope_g["eps_L2"])
    maps = noise_maps(plain, [1.5, 4.0], [0.0, 0.1], [1e-3, 1e-2, 1e-1, 1.0, 10.0], ("eps_L2",))
    assert set(maps) == {("function", "eps_L2")}


def test_map_agrees_with_optimal_lambda() -> None:
    lams = np.geomspace(1e-6, 1e2, 33)
    maps = noise_maps(BASE, [4.0, 20.0], [0.0, 0.1], lams, ("eps_L2",))
    for kind, field in (("function", "noise_f"), ("gradient", "noise_g")):
        m = maps[(kind, "eps_L2")]
        for i, delta in enumerate(m.deltas):
            for j, p_over_d in enumerate(m.p_over_d):
                opt = optimal_lambda(BASE.with_(p_over_d=float(p_over_d), **{field: float(delta)}))
                assert bool(m.benign[i, j]) == opt.benign
                # the map minimises a cubic spline through 4 λ per decade: ~1e-5 relative accuracy
                assert m.eps_star[i, j] == pytest.approx(opt.value, rel=5e-5)
                if not opt.benign:
                    assert m.lam_star[i, j] == pytest.approx(opt.lam, rel=0.05)
    assert all(math.isnan(v) for v in minimise_on_grid(lams, np.full(len(lams), np.nan)))


def test_simulation_matches_theory_at_the_optimal_lambda(noisy_optimum) -> None:
    """Theory (d → ∞) vs the exact simulator at λ* of Δ_f = 0.1: within 3 standard errors plus a 6 %
    finite-size allowance (the O(1/√d) effects at d = 300; cf. tests/numeric/test_asymptotics.py)."""
    from sobolev_rf.numeric.simulation.exact import simulate

    point, opt = noisy_optimum
    at = point.with_(lam=opt.lam)
    theory = solve(at)
    sim = simulate(at, d=300, seeds=3, progress=False)
    for key in ("eps_L2", "eps_H1"):
        mean, se, th = sim.mean[key], sim.se[key], getattr(theory, key)
        assert abs(mean - th) <= 3 * se + 0.06 * th, f"{key}: theory {th:.4f}, simulation {mean:.4f} ± {se:.4f}"


def test_bad_quantity_and_bracket() -> None:
    from sobolev_rf.derive.errors import UserError

    with pytest.raises(UserError):
        optimal_lambda(BASE, quantity="eps_L3")
    with pytest.raises(UserError):
        optimal_lambda(BASE, bracket=(1.0, 0.1))
    with pytest.raises(UserError):
        optimal_lambda(BASE.with_(k=0), quantity="eps_H1")


# ------------------------------------------------------------------------------------------ command


def read_csv(path: Path) -> tuple[str, list[dict[str, str]], list[str]]:
    with path.open(encoding="utf-8") as fh:
        comment = fh.readline()
        reader = csv.DictReader(fh)
        return comment, list(reader), list(reader.fieldnames or [])


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, list[str]]:
    out = tmp_path_factory.mktemp("noise") / "out"
    argv = ["noise", "--quick", "--out", str(out), "--levels", "0,0.5"]
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        assert cli.main(argv) == 0
    return out, buf.getvalue(), argv


def test_cli_writes_the_files_with_the_command_line(quick_run) -> None:
    out, stdout, argv = quick_run
    command = "sobolev-rf " + " ".join(argv)
    assert {p.name for p in out.iterdir()} == FILES
    comment, rows, header = read_csv(out / "noise_lambda.csv")
    assert comment.strip() == f"# command: {command}"
    assert tuple(header) == LAMBDA_COLUMNS
    kinds = {row["kind"] for row in rows}
    assert {"theory", "theory_lam0", "optimum_eps_L2", "optimum_eps_H1", "simulation"} <= kinds
    assert {row["noise"] for row in rows} == {"function", "gradient"}
    comment, rows, header = read_csv(out / "noise_benign.csv")
    assert comment.strip() == f"# command: {command}"
    assert tuple(header) == BENIGN_COLUMNS
    assert len(rows) == 2 * 2 * 4 * 4  # studies × errors × Δ × p/d
    for row in rows:
        if row["benign"] == "1":
            assert float(row["lam_star"]) == 0.0
            assert float(row["eps_lam0"]) <= float(row["eps_best_positive"]) * (1 + 1e-6)
    for name in ("noise_lambda.png", "noise_benign.png"):
        with Image.open(out / name) as image:
            assert image.format == "PNG"
            assert image.info["Description"] == command
    assert "λ*(eps_L2)" in stdout and "Benign regimes" in stdout


@pytest.mark.parametrize(
    "bad, word",
    [
        (["--levels", "0,-1"], "--levels"),
        (["--levels", "0,nan"], "--levels"),
        (["--delta-max", "0"], "--delta-max"),
        (["--quantity", "eps_H1", "--k", "0"], "k"),
        (["--activation", "bogus"], ""),
        (["--sim-d", "5"], "--sim-d"),
        (["--p-over-d", "-1"], "p_over_d"),
        (["--lam", "-1"], "lam"),
        (["--grid", "2"], "--grid"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_writes_nothing(
    bad: list[str], word: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    try:
        code = cli.main(["noise", "--quick", "--out", str(out), *bad])
    except SystemExit as exc:  # argparse errors
        code = exc.code
    captured = capsys.readouterr()
    assert code == 2
    assert len(captured.err.strip().splitlines()) == 1 and word in captured.err
    assert "Traceback" not in captured.err
    assert not out.exists()
