"""The optimal Sobolev weight τ* (numeric/studies/tau.py), the ``tau`` command, and τ in ``sweep``/``simulate``.

Found by computing (ReLU features, tanh teacher, k = 1, ϖ = 1, n/d = 1):

- under-parameterised, p/d = 0.5, λ = 10⁻³: an interior optimum, τ* ≈ 1.41 (eps_L2), 4.93 (eps_H1),
  2.25 (eps_grad), 31 % better than L2 training on eps_L2 and 0.3 % better than τ = 1;
- over-parameterised, p/d = 4: τ* = 0 for eps_L2 and eps_grad (gradient data hurt: τ = 1 is 57 % worse on
  eps_L2), while eps_H1 wants a tiny positive weight (τ* ≈ 7e-4);
- a linear teacher φ = x makes the gradient labels the constant ϖ: at p/d = 0.5 eps_H1 keeps falling as
  τ → ∞ (status "infinity"); far above the threshold (p/d = 10, n/d = 0.1) eps_H1's infimum is its τ → 0⁺
  limit (status "zero_plus");
- τ* falls with the gradient-label noise Δ_g (1.41 → 0.19 for eps_L2 from Δ_g = 0 to 1 at p/d = 0.5) and rises
  with the function-label noise Δ_f (1.41 → 10.5).
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

from sobolev_rf.derive.errors import UserError
from sobolev_rf.derive.params import ModelParams
from sobolev_rf.numeric import cli
from sobolev_rf.numeric.reports.tau import CURVE_COLUMNS, MAP_COLUMNS, NOISE_COLUMNS
from sobolev_rf.numeric.studies.tau import (
    TAU_LARGE,
    classify,
    expected_work,
    golden_minimise,
    optimal_tau,
    optimal_tau_cells,
    tau_curve,
)
from sobolev_rf.numeric.theory.solve import solve

UNDER = ModelParams(p_over_d=0.5, n_over_d=1.0, lam=1e-3)
OVER = ModelParams(p_over_d=4.0, n_over_d=1.0, lam=1e-3)
FILES = {"tau_curve.png", "tau_curve.csv", "tau_maps.png", "tau_maps.csv", "tau_noise.png", "tau_noise.csv"}


# ------------------------------------------------------------------------------------------ library


def test_classify_prefers_the_ends_within_the_tie_tolerance() -> None:
    zero = np.array([1.0, 2.0, 2.0, 2.0, 1.00001, np.nan])
    zero_plus = np.array([1.0, 1.5, 2.0, 2.0, 1.00001, np.nan])
    best = np.array([1.2, 1.6, 1.0, 1.5, 1.0, np.nan])
    large = np.array([3.0, 3.0, 3.0, 1.0, 3.0, np.nan])
    status, value = classify(zero, zero_plus, best, large, rtol=1e-4)
    assert status.tolist() == ["zero", "zero_plus", "interior", "infinity", "zero", ""]
    assert value[:5].tolist() == [1.0, 1.5, 1.0, 1.0, 1.00001] and math.isnan(value[5])


def test_golden_section_finds_minima_of_many_cells_at_once() -> None:
    centres = np.array([-1.3, 0.2, 2.9])

    def func(x: np.ndarray, active: np.ndarray) -> np.ndarray:
        return np.where(active, (x - centres) ** 2 + 1.0, np.nan)

    x, v = golden_minimise(func, centres - 1.0, centres + 0.7, xatol=1e-6)
    assert np.allclose(x, centres, atol=1e-5) and np.allclose(v, 1.0)


@pytest.mark.parametrize("quantity, expected", [("eps_L2", 1.41), ("eps_H1", 4.93), ("eps_grad", 2.25)])
def test_underparameterised_point_has_an_interior_optimum(quantity: str, expected: float) -> None:
    opt = optimal_tau(UNDER, quantity)
    assert opt.status == "interior" and opt.tau_star == pytest.approx(expected, rel=0.01)
    value = getattr(solve(UNDER.with_(tau=opt.tau_star)), quantity)
    assert opt.value == pytest.approx(value, rel=1e-10)
    for factor in (0.9, 1.1, 0.5, 2.0):  # a true minimum
        assert getattr(solve(UNDER.with_(tau=opt.tau_star * factor)), quantity) >= opt.value * (1 - 1e-9)
    assert opt.value < opt.value_one < opt.value_zero  # beats both τ = 1 and L2 training
    assert opt.value_zero == pytest.approx(getattr(solve(UNDER.with_(tau=0)), quantity), rel=1e-12)


def test_vectorised_golden_search_agrees_with_brent() -> None:
    cells = optimal_tau_cells(1, dict(p_over_d=np.array([0.5, 4.0]), n_over_d=1.0, lam=1e-3))
    for i, point in enumerate((UNDER, OVER)):
        for q in cells.quantities:
            brent = optimal_tau(point, q)
            assert cells.status[q][i] == brent.status
            assert cells.value[q][i] == pytest.approx(brent.value, rel=1e-8)
            if brent.status == "interior":
                assert cells.tau_star[q][i] == pytest.approx(brent.tau_star, rel=2e-3)


def test_overparameterised_point_prefers_l2_training_for_the_function() -> None:
    cells = optimal_tau_cells(1, dict(p_over_d=4.0, n_over_d=1.0, lam=1e-3))
    for q in ("eps_L2", "eps_grad"):
        assert cells.status[q] == "zero" and cells.tau_star[q] == 0.0
        assert np.nanmin(cells.scan[q]) >= cells.value_zero[q] * (1 - cells.rtol)  # no τ > 0 of the scan is better
        assert cells.gain(q, "one") > 0.3  # τ = 1 costs > 30 %
    assert cells.status["eps_H1"] == "interior" and 1e-4 < cells.tau_star["eps_H1"] < 3e-3
    # eps_H1's τ → 0⁺ limit lies below its τ = 0 value (the spike), and the tiny-τ optimum below both
    assert cells.value["eps_H1"] < cells.value_zero_plus["eps_H1"] < cells.value_zero["eps_H1"]


def test_infinity_and_zero_plus_are_reported_not_clipped() -> None:
    linear = ModelParams(teacher="x", p_over_d=0.5, n_over_d=1.0, lam=1e-2)
    opt = optimal_tau(linear, "eps_H1")
    assert opt.status == "infinity" and opt.tau_star == math.inf
    assert opt.value == opt.value_infinity < 1e-6 < opt.value_one
    assert solve(linear.with_(tau=TAU_LARGE / 10)).eps_H1 > opt.value_infinity  # still falling at 1e7 → 1e8
    far = ModelParams(p_over_d=10.0, n_over_d=0.1, lam=1e-3)
    opt = optimal_tau(far, "eps_H1")
    assert opt.status == "zero_plus" and opt.tau_star == 0.0
    assert opt.value == opt.value_zero_plus < opt.value_zero


def test_tau_star_depends_on_the_label_noise() -> None:
    res = optimal_tau_cells(1, dict(p_over_d=0.5, n_over_d=1.0, lam=1e-3, noise_g=np.array([0.0, 0.1, 1.0])))
    for q in res.quantities:
        assert np.all(np.diff(res.tau_star[q]) < 0), q  # gradient noise pushes τ* down
    res = optimal_tau_cells(1, dict(p_over_d=0.5, n_over_d=1.0, lam=1e-3, noise_f=np.array([0.0, 0.1, 1.0])))
    for q in res.quantities:
        assert np.all(np.diff(res.tau_star[q]) > 0), q  # function noise pushes it up
    assert res.tau_star["eps_L2"][-1] > 5


def test_progress_reports_at_most_the_expected_work() -> None:
    calls: list[int] = []
    optimal_tau_cells(
        1, dict(p_over_d=np.array([0.5, 1.5, 4.0]), lam=1e-2), per_decade=2, xatol=1e-2, progress=calls.append
    )
    assert len(calls) > 5 and 0 < sum(calls) <= expected_work(3, per_decade=2, xatol=1e-2)


@pytest.mark.parametrize("bad", [dict(lam=0.0), dict(k=0)])
def test_library_refuses_lambda_zero_and_k_zero(bad: dict) -> None:
    with pytest.raises(UserError):
        optimal_tau(UNDER.with_(**bad))
    with pytest.raises(UserError):
        tau_curve(UNDER.with_(**bad), [0.0, 1.0])


# ------------------------------------------------------------------------------------------ sweep, simulate


def _run(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = cli.main(argv)
        except SystemExit as exc:
            code = exc.code
    return int(code or 0), out.getvalue(), err.getvalue()


def test_sweep_takes_tau_as_an_axis() -> None:
    code, out, err = _run(["sweep", "--tau", "log:0.01:100:5", "--p-over-d", "0.5:3:2", "--lam", "1e-2"])
    assert code == 0, err
    rows = list(csv.DictReader(io.StringIO(out)))
    assert len(rows) == 10 and "tau" in rows[0]
    for row in rows[::3]:
        point = ModelParams(tau=float(row["tau"]), p_over_d=float(row["p_over_d"]), lam=1e-2)
        assert float(row["eps_L2"]) == pytest.approx(solve(point).eps_L2, rel=1e-10)
    code, out, err = _run(["sweep", "--tau", "0:1:3", "--p-over-d", "2", "--lam", "0"])
    assert code == 0 and "p = (1 + k)n = 2n for every tau > 0" in err and "p = n for tau = 0" in err
    assert [r["converged"] for r in csv.DictReader(io.StringIO(out))] == ["1", "0", "0"]  # p = 2n: threshold


@pytest.mark.parametrize("text", ["log:0:1:3", "-1:1:3", "x"])
def test_sweep_refuses_bad_tau_ranges(text: str) -> None:
    code, out, err = _run(["sweep", "--tau", text])
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1


def test_simulate_and_solve_take_a_real_tau() -> None:
    code, out, err = _run(["simulate", "--tau", "0.3", "--d", "30", "--n-test", "200", "--json"])
    assert code == 0, err
    assert '"tau": 0.3' in out
    code, out, _ = _run(["solve", "--tau", "2.5"])
    assert code == 0 and "τ = 2.5" in out
    for bad in ("-0.1", "nan", "inf", "x"):
        code, out, err = _run(["solve", "--tau", bad])
        assert code == 2 and out == "" and len(err.strip().splitlines()) == 1


# ------------------------------------------------------------------------------------------ the command


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, list[str]]:
    out = tmp_path_factory.mktemp("tau")
    argv = ["tau", "--quick", "--out", str(out), "--tau", "2"]
    code, stdout, err = _run(argv)
    assert code == 0, err
    return out, stdout, argv


def test_cli_writes_the_files_with_the_command_line(quick_run) -> None:
    out, stdout, argv = quick_run
    assert {p.name for p in out.iterdir()} == FILES
    command = "sobolev-rf " + " ".join(argv)
    for name, columns in (
        ("tau_curve.csv", CURVE_COLUMNS),
        ("tau_maps.csv", MAP_COLUMNS),
        ("tau_noise.csv", NOISE_COLUMNS),
    ):
        lines = (out / name).read_text().splitlines()
        assert lines[0] == f"# command: {command}"
        assert lines[1].split(",") == list(columns)
    for name in ("tau_curve.png", "tau_maps.png", "tau_noise.png"):
        with Image.open(out / name) as image:
            assert image.info["Description"] == command and image.size[0] > 800
    assert "Optimal Sobolev weight τ*" in stdout and "(--tau 2 is marked" in stdout


def test_cli_tables_match_the_library(quick_run) -> None:
    out, _, _ = quick_run
    rows = list(csv.DictReader(io.StringIO((out / "tau_curve.csv").read_text().split("\n", 1)[1])))
    optimum = next(r for r in rows if r["kind"] == "optimum_eps_L2")
    assert optimum["status"] == "interior"
    assert float(optimum["tau"]) == pytest.approx(optimal_tau(UNDER, "eps_L2").tau_star, rel=0.02)
    sims = [r for r in rows if r["kind"] == "simulation"]
    assert [float(r["tau"]) for r in sims] == [0.0, 1.0] and all(r["d"] == "40" for r in sims)
    maps = list(csv.DictReader(io.StringIO((out / "tau_maps.csv").read_text().split("\n", 1)[1])))
    assert len(maps) == 3 * 4 * 4
    assert {r["status"] for r in maps} <= {"zero", "zero_plus", "interior", "infinity"}
    for r in maps:
        if r["status"] == "zero":
            assert float(r["tau_star"]) == 0.0 and float(r["gain_over_tau0"]) == 0.0


@pytest.mark.parametrize(
    "bad",
    [
        ["--lam", "0"],
        ["--k", "0"],
        ["--grid", "2"],
        ["--sim-d", "5"],
        ["--delta-max", "0"],
        ["--tau", "-1"],
        ["--p-over-d", "nan"],
    ],
)
def test_cli_bad_input_is_one_line_and_writes_nothing(tmp_path: Path, bad: list[str]) -> None:
    out = tmp_path / "out"
    code, stdout, err = _run(["tau", "--quick", "--out", str(out), *bad])
    assert code == 2 and stdout == "" and len(err.strip().splitlines()) == 1
    assert not out.exists()
