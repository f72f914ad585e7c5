"""``sobolev-rf onestep`` (numeric/studies/onestep.py): files, their contents and bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from sobolev_rf.derive.params import ModelParams
from sobolev_rf.numeric import cli as cli_main
from sobolev_rf.numeric.studies.onestep import OnestepSettings, covered, error_curves, gain_map, overlap_curves
from sobolev_rf.numeric.theory.solve import solve

SMALL = ["--d", "24", "--seeds", "1", "--eta", "0:2:3", "--sim-eta", "1", "--map-alpha0", "log:1:4:2", "--tau-k", "0,1"]


def test_writes_the_figure_and_the_tables(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "o"
    assert cli_main.main(["onestep", *SMALL, "--out", str(out)]) == 0
    names = sorted(p.name for p in out.iterdir())
    assert names == ["onestep.png", "onestep_errors.csv", "onestep_gain.csv", "onestep_overlap.csv"]
    errors = (out / "onestep_errors.csv").read_text().splitlines()
    assert errors[0].startswith("# command: sobolev-rf") and errors[1] == "step,readout,source,eta,eps_L2,eps_L2_se"
    assert any(",simulation," in line for line in errors) and any("sobolev,l2,theory" in line for line in errors)
    assert any("l2,sobolev,theory" in line for line in errors) and any(
        "sobolev,sobolev,theory" in line for line in errors
    )
    assert (out / "onestep.png").read_bytes()[:4] == b"\x89PNG"
    assert "gain of the Sobolev step" in capsys.readouterr().out


@pytest.mark.parametrize(
    "extra,message",
    [
        (["--lam", "0"], "lam > 0"),
        (["--sim-eta", "-1"], ">= 0"),
        (["--tau", "0"], "tau > 0"),
        (["--tau-k", "x"], "comma-separated"),
        (["--eta", "0:2:100000000"], "more than 4000000"),
        (["--eta", "0:2:3000"], "more than 2000"),
        (["--eta", "0:2:1000", "--map-alpha0", "log:1:4:200"], "more than 100000"),
    ],
)
def test_bad_input_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str], message: str
) -> None:
    assert cli_main.main(["onestep", *SMALL, *extra, "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1 and "Traceback" not in err
    assert not (tmp_path / "o").exists()


def test_gain_map_and_overlaps_are_those_of_single_points() -> None:
    base = ModelParams(activation="tanh", teacher="tanh", k=1, tau=1.0, p_over_d=2.0, n_over_d=3.0, lam=1e-3)
    settings = OnestepSettings(
        base=base, map_alpha0=(4.0,), map_etas=(0.0, 1.0), tau_k=(0.0, 1.0), overlap_alpha0=(4.0,)
    )
    g = gain_map(settings)
    point = dict(tau=0.0, eta=1.0, alpha0=4.0)
    l2 = solve(base.with_(step="l2", **point)).eps_L2
    sob = solve(base.with_(step="sobolev", tau_step=1.0, k_step=1, **point)).eps_L2
    assert g.l2_step[0, 1] == pytest.approx(l2, rel=1e-10) and g.sobolev_step[0, 1] == pytest.approx(sob, rel=1e-10)
    # η̃ = 0: both are random features (their γ differ, which only the κ-rule's 1e-12 error sees)
    assert g.gain[0, 0] == pytest.approx(0.0, abs=1e-10)
    gammas = overlap_curves(settings)
    assert gammas[1.0][0] > gammas[0.0][0] > 0  # a Sobolev step aligns the spike better at α₀ = 4
    assert np.isfinite(g.gain).all()


def test_sobolev_readout_lines_are_those_of_single_points() -> None:
    """The Sobolev readout's theory lines after a step are the averaged one-step solves (k = 1 here), and at
    η̃ = 0 the random-features τ > 0 value; k = 3 after a step is not covered (simulation only)."""
    base = ModelParams(activation="tanh", teacher="tanh", k=1, tau=1.0, p_over_d=2.0, n_over_d=3.0, lam=1e-3)
    settings = OnestepSettings(base=base, etas=(0.0, 1.0), sim_etas=(1.0,), d=24, seeds=1)
    curves = error_curves(settings)
    rf = solve(base).eps_L2
    for step in ("l2", "sobolev"):
        line = curves.theory[step, "sobolev"]
        # η̃ = 0: random features; the spike's γ differs between the steps, which only the κ-rule's error sees
        # (measured 2e-15 after the L2 step, 2e-11 after the Sobolev step)
        assert line[0] == pytest.approx(rf, rel=1e-12 if step == "l2" else 1e-10)
        assert line[1] == pytest.approx(solve(settings.point(step, "sobolev", 1.0)).eps_L2, rel=1e-12)
        assert line[1] < rf and len(curves.sim[step, "sobolev"][0]) == 1
    assert not covered(OnestepSettings(base=base.with_(k=3)).point("l2", "sobolev", 1.0))


def test_sweep_takes_eta_and_alpha0_as_axes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import pandas as pd

    out = tmp_path / "s.csv"
    args = ["sweep", "--activation", "tanh", "--teacher", "tanh", "--tau", "0", "--p-over-d", "2", "--n-over-d", "3"]
    assert (
        cli_main.main([*args, "--step", "sobolev", "--eta", "0:2:3", "--alpha0", "log:1:4:2", "--out", str(out)]) == 0
    )
    table = pd.read_csv(out)
    assert len(table) == 6 and table["converged"].all()
    row = table[(table["eta"] == 1.0) & (table["alpha0"] == 4.0)].iloc[0]
    point = ModelParams(activation="tanh", teacher="tanh", k=1, tau=0.0, p_over_d=2.0, n_over_d=3.0)
    expected = solve(point.with_(step="sobolev", eta=1.0, alpha0=4.0)).eps_L2
    assert row["eps_L2"] == pytest.approx(expected, rel=1e-12)
    capsys.readouterr()
    assert cli_main.main([*args, "--step", "l2", "--noise-f", "0:1:2"]) == 2
    assert "take one value" in capsys.readouterr().err


@pytest.mark.parametrize(("tau", "system"), [("0", "onestep_l2_readout_n48"), ("1", "onestep_sobolev_readout_k1")])
def test_solve_names_the_system_it_solved(tau: str, system: str, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["solve", "--step", "sobolev", "--eta", "1", "--tau", tau, "--p-over-d", "2", "--n-over-d", "3"]
    assert cli_main.main(args) == 0
    assert f"converged: generated solver of {system}" in capsys.readouterr().out
