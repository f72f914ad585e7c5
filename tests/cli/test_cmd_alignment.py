"""``sobolev-rf alignment`` (numeric/studies/alignment.py): the law of each error over ϖ ~ N(0, I_k).

The exact law (quantiles, mass per bin) is checked against its definition and against Monte Carlo samples of the
quadratic form; the per-draw simulations against e(ϖ) at the same ϖ; the command against its file contract.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sobolev_rf.derive.params import ModelParams
from sobolev_rf.numeric import cli
from sobolev_rf.numeric.reports.alignment import LAW_COLUMNS
from sobolev_rf.numeric.studies.alignment import (
    KEYS,
    QuadraticLaw,
    bin_masses,
    compare,
    exact_laws,
    simulate_draws,
    summarise,
    support_minimum,
)

FILES = {"alignment_law.png", "alignment_law.csv", "alignment_samples.csv"}

LAWS = [
    QuadraticLaw(A=np.array([[0.8]]), b=np.array([0.0]), c=0.9),  # scaled χ²₁: 1/√ edge singularity
    QuadraticLaw(A=np.array([[0.5]]), b=np.array([0.7]), c=0.2),  # non-central χ²₁
    QuadraticLaw(A=np.array([[-0.3]]), b=np.array([0.4]), c=2.0),  # bounded above, unbounded below
    QuadraticLaw(A=np.array([[0.5, 0.1], [0.1, 0.2]]), b=np.array([0.3, -0.1]), c=1.0),
]


@pytest.mark.parametrize("law", LAWS)
def test_quantiles_invert_the_cdf(law: QuadraticLaw) -> None:
    xs = np.array([law.quantile(q) for q in (0.01, 0.05, 0.3, 0.5, 0.7, 0.95, 0.99)])
    assert np.all(np.diff(xs) > 0)
    for q, x in zip((0.01, 0.05, 0.3, 0.5, 0.7, 0.95, 0.99), xs):
        assert law.cdf(x) == pytest.approx(q, abs=1e-8)
    # the vectorised CDF is the same computation
    grid = np.linspace(xs[0] - 1, xs[-1] + 1, 37)
    assert law.cdf_many(grid) == pytest.approx([law.cdf(x) for x in grid], abs=1e-13)


def test_support_minimum_is_the_lower_edge() -> None:
    law = LAWS[1]
    edge = support_minimum(law)
    assert edge == pytest.approx(0.2 - 0.7**2 / (4 * 0.5))
    assert law.cdf(edge) == pytest.approx(0.0, abs=1e-12)
    assert law.cdf(edge + 1e-3) > 0
    assert support_minimum(LAWS[2]) is None  # A ≺ 0: no lower edge
    assert support_minimum(QuadraticLaw(A=np.zeros((1, 1)), b=np.array([1.0]), c=0.0)) is None  # Gaussian


@pytest.mark.parametrize("law", LAWS)
def test_bin_masses_sum_to_one_and_match_monte_carlo(law: QuadraticLaw) -> None:
    samples = 100_000
    e = law(np.random.default_rng(7).standard_normal((samples, len(law.b))))
    summary = summarise("eps_L2", law, grid_points=50, bins=25)
    below, masses, above = bin_masses(law, summary.edges)
    assert below + masses.sum() + above == pytest.approx(1.0, abs=1e-12)
    assert np.all(masses >= 0)
    if support_minimum(law) is not None:
        assert below == pytest.approx(0.0, abs=1e-12)  # the bins start at the lower edge of the support
    counts = np.histogram(e, bins=summary.edges)[0] / samples
    outside = np.array([np.mean(e < summary.edges[0]), np.mean(e >= summary.edges[-1])])
    exact = np.concatenate([masses, [below, above]])
    freq = np.concatenate([counts, outside])
    se = np.sqrt(np.maximum(exact * (1 - exact), 1e-6) / samples)
    # the CDF is exact (k = 1) or a Fourier inversion accurate to ~1e-9 (k = 2): only sampling noise
    assert np.all(np.abs(freq - exact) <= 5 * se), np.max(np.abs(freq - exact) / se)


def test_per_draw_simulations_follow_the_exact_quadratic_form() -> None:
    """Simulated errors at d = 200 (one seed per draw) against e(ϖ) at the same ϖ.

    Finite-size allowance: single-seed errors at d = 200 scatter by ≈ 15 % (rms) around e(ϖ), so the mean
    relative deviation must be within 3 SE + 6 %. And the ϖ-dependence must be real: e(ϖ_i) explains the draws
    far better than the law's mean does (squared log-deviation at most 1/5 of that from the mean).
    """
    params = ModelParams(activation="relu", teacher="tanh", k=1, tau=1, p_over_d=2.0, n_over_d=1.0, lam=1e-3)
    laws = exact_laws(params)
    draws = simulate_draws(params, d=200, samples=24, seed=3, progress=False)
    assert draws.varpi.shape == (24, 1) and not draws.skipped
    for key in KEYS:
        law, sim = laws[key], draws.sim[key]
        c = compare(law, draws.varpi, sim)
        assert abs(c.rel_dev_mean) <= 3 * c.rel_dev_se + 0.06, (key, c)
        theory = law(draws.varpi)
        assert np.sum(np.log(sim / theory) ** 2) <= np.sum(np.log(sim / law.mean) ** 2) / 5, key


def test_unrealisable_draws_are_skipped_and_recorded() -> None:
    """At d = 10 with k = 2 some ϖ have no unit θ₀ with Vᵀθ₀ = ϖ: they are replaced and listed."""
    draws = simulate_draws(ModelParams(k=2), d=10, samples=10, seed=0, progress=False)
    assert len(draws.seeds) == 10 and len(draws.skipped) >= 1
    assert all(np.all(np.isfinite(draws.sim[key])) for key in KEYS)


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    try:
        code = cli.main(argv)
    except SystemExit as exc:  # argparse errors
        code = int(exc.code or 0)
    out = capsys.readouterr()
    return code, out.out, out.err


def _read_csv(path: Path) -> tuple[str, list[dict[str, str]], list[str]]:
    with path.open(encoding="utf-8") as fh:
        comment = fh.readline()
        reader = csv.DictReader(fh)
        return comment, list(reader), list(reader.fieldnames or [])


def test_cli_writes_the_three_files_with_the_command_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "al"
    argv = ["alignment", "--quick", "--samples", "6", "--sim-d", "40", "--out", str(out)]
    code, stdout, _ = _run(argv, capsys)
    assert code == 0
    assert {p.name for p in out.iterdir()} == FILES, "missing files or leftover temporary files"
    command = "sobolev-rf " + " ".join(argv)
    with Image.open(out / "alignment_law.png") as image:
        assert image.info["Description"] == command
        assert image.size[0] > 1000
    comment, rows, header = _read_csv(out / "alignment_law.csv")
    assert comment.strip() == f"# command: {command}"
    assert tuple(header) == LAW_COLUMNS
    for key in KEYS:
        cdf = [float(r["value"]) for r in rows if r["error"] == key and r["kind"] == "cdf"]
        assert cdf == sorted(cdf) and cdf[0] <= 0.01 and cdf[-1] >= 0.99
        masses = [float(r["value"]) for r in rows if r["error"] == key and r["kind"] == "bin"]
        assert sum(masses) == pytest.approx(1.0, abs=1e-9)
        quantiles = {r["label"]: float(r["x"]) for r in rows if r["error"] == key and r["kind"] == "quantile"}
        assert list(quantiles) == ["q05", "q50", "q95"] and quantiles["q05"] < quantiles["q50"] < quantiles["q95"]
        assert any(r["kind"] == "ks" and r["label"] == "simulation" for r in rows if r["error"] == key)
    comment, rows, header = _read_csv(out / "alignment_samples.csv")
    assert comment.strip() == f"# command: {command}"
    ok = [r for r in rows if r["status"] == "ok"]
    assert len(ok) == 6 and all(r["d"] == "40" for r in ok)
    assert {"varpi_1", "theory_eps_L2", "sim_eps_L2", "sim_eps_grad"} <= set(header)
    for r in ok:  # e(ϖ) in the file is the quadratic form at the listed ϖ
        assert float(r["theory_eps_L2"]) > 0 and math.isfinite(float(r["sim_eps_L2"]))
    assert "eps_H1" in stdout and "KS" in stdout


@pytest.mark.parametrize(
    "extra",
    [
        ["--alignment", "0.5"],  # ϖ is random here
        ["--k", "0"],  # no alignment
        ["--k", "9"],  # more than MAX_K = 8
        ["--samples", "1"],
        ["--samples", "x"],
        ["--sim-d", "5"],
        ["--p-over-d", "-1"],
        ["--activation", "log(x)"],
        ["--lam", "0", "--p-over-d", "2"],  # p = 2n is the interpolation threshold of k = 1, τ = 1: infinite error
    ],
)
def test_bad_input_is_one_line_exit_2_and_writes_nothing(
    extra: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "never"
    code, stdout, stderr = _run(["alignment", "--quick", "--no-sim", "--out", str(out), *extra], capsys)
    assert code == 2
    assert stdout == ""
    assert len(stderr.strip().splitlines()) == 1 and "Traceback" not in stderr
    assert not out.exists()


def test_out_that_is_a_file_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "file"
    target.write_text("keep")
    code, _, stderr = _run(["alignment", "--quick", "--no-sim", "--out", str(target)], capsys)
    assert code == 2 and "--out" in stderr and len(stderr.strip().splitlines()) == 1
    assert target.read_text() == "keep"
