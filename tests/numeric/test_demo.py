"""The ``sobolev-rf demo`` command (numeric/studies/demo.py, reports/demo.py, plots/demo.py) in its ``--quick`` form."""

from __future__ import annotations

import contextlib
import csv
import io
import math
from pathlib import Path

import pytest
from PIL import Image

from sobolev_rf.numeric import cli
from sobolev_rf.numeric.reports.demo import DD_COLUMNS, PHASE_COLUMNS

FILES = {"double_descent.png", "double_descent.csv", "phase_L2.png", "phase_diagram.csv"}


def read_csv(path: Path) -> tuple[str, list[dict[str, str]], list[str]]:
    """(comment line, rows as dicts, header) of a demo CSV."""
    with path.open(encoding="utf-8") as fh:
        comment = fh.readline()
        reader = csv.DictReader(fh)
        return comment, list(reader), list(reader.fieldnames or [])


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """Run the quick demo once into a fresh folder; return the folder and stdout."""
    out = tmp_path_factory.mktemp("demo") / "out"
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        assert cli.main(["demo", "--quick", "--out", str(out)]) == 0
    return out, buf.getvalue()


def test_writes_exactly_the_four_files(quick_run: tuple[Path, str]) -> None:
    out, _ = quick_run
    names = {p.name for p in out.iterdir()}
    assert names == FILES, "missing files or leftover temporary (half-written) files"
    assert all((out / name).stat().st_size > 0 for name in FILES)


def test_double_descent_csv(quick_run: tuple[Path, str]) -> None:
    out, _ = quick_run
    comment, rows, header = read_csv(out / "double_descent.csv")
    assert comment.startswith("# command: sobolev-rf demo --quick")
    assert tuple(header) == DD_COLUMNS
    kinds = {(row["kind"], row["tau"], row["k"]) for row in rows}
    configs = (("0", "1"), ("1", "1"), ("1", "2"))
    assert kinds == {(kind, tau, k) for kind in ("theory", "simulation") for tau, k in configs}
    sims = [row for row in rows if row["kind"] == "simulation"]
    assert all(row["d"] == "60" and row["seeds"] == "1" for row in sims)
    theory = [row for row in rows if row["kind"] == "theory"]
    assert sum(math.isfinite(float(row["eps_L2"])) for row in theory) == len(theory)
    assert all(float(row["eps_L2"]) > 0 for row in sims)


def test_phase_csv(quick_run: tuple[Path, str]) -> None:
    out, _ = quick_run
    comment, rows, header = read_csv(out / "phase_diagram.csv")
    assert comment.startswith("# command: sobolev-rf demo --quick")
    assert tuple(header) == PHASE_COLUMNS
    assert len(rows) == 5 * 5
    for row in rows:
        diff = float(row["eps_L2_tau1"]) - float(row["eps_L2_tau0"])
        assert float(row["eps_L2_diff"]) == pytest.approx(diff, rel=1e-6, abs=1e-8)


def test_png_metadata_holds_the_command(quick_run: tuple[Path, str]) -> None:
    out, _ = quick_run
    for name in ("double_descent.png", "phase_L2.png"):
        with Image.open(out / name) as image:
            assert image.format == "PNG"
            assert image.info["Description"].startswith("sobolev-rf demo --quick")


def test_summary_table_on_stdout(quick_run: tuple[Path, str]) -> None:
    _, stdout = quick_run
    assert "eps_L2 theory" in stdout and "eps_L2 simulation" in stdout
    for label in ("L2 (τ=0)", "Sobolev τ=1, k=1", "Sobolev τ=1, k=2"):
        assert label in stdout


def test_bad_option_is_a_one_line_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        cli.main(["demo", "--grid", "1"])
    assert exc.value.code == 2
    assert "--grid" in capsys.readouterr().err
