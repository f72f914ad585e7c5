"""benchmarks/reporting.py, the statistics and results writing every benchmark script uses: mean ± SE over
seeds, paired differences, z-scores and the Richardson value 2·m(2d) − m(d) on numbers checked by hand, and a
results write that fails half-way (unserialisable content, a full disk, an interrupt) leaves the previous file
as it was and no staged file behind."""

from __future__ import annotations

import errno
import importlib.util
import json
import math
import os
from pathlib import Path

import pytest

from sobolev_rf.codegen import atomic
from sobolev_rf.codegen.atomic import WriteError

_SPEC = importlib.util.spec_from_file_location(
    "benchmark_reporting", Path(__file__).resolve().parents[1] / "benchmarks" / "reporting.py"
)
assert _SPEC is not None and _SPEC.loader is not None
reporting = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(reporting)


def test_mean_and_standard_error_over_seeds() -> None:
    # mean 2.5; sample variance ((1.5² + 0.5²)·2)/3 = 5/3; SE = √(5/3)/√4 = √(5/12)
    m, se = reporting.mean_se([1.0, 2.0, 3.0, 4.0])
    assert m == 2.5
    assert se == pytest.approx(math.sqrt(5 / 12), rel=1e-15)
    # one seed has no spread to measure: NaN, not 0
    m, se = reporting.mean_se([0.7])
    assert m == 0.7 and math.isnan(se)


def test_paired_difference_takes_the_spread_of_the_differences() -> None:
    sim = [1.0, 2.0, 3.0]
    theory = [0.9, 2.0, 2.9]  # sim − theory = 0.1, 0, 0.1: mean 1/15, variance 1/300, SE = √(1/900) = 1/30
    diff, se = reporting.paired_diff(sim, theory)
    assert diff == pytest.approx(1 / 15, rel=1e-14)
    assert se == pytest.approx(1 / 30, rel=1e-14)
    # a theory that follows the simulation seed by seed: the pair has a much smaller SE than the simulation alone
    assert se < reporting.mean_se(sim)[1] / 5
    # one theory number for every seed: the SE is the simulation's
    assert reporting.paired_diff(sim, 2.0) == pytest.approx((0.0, reporting.mean_se(sim)[1]), rel=1e-15)


def test_z_score() -> None:
    assert reporting.z_score(0.3, 0.1) == pytest.approx(3.0, rel=1e-15)
    assert reporting.z_score(-0.02, 0.01) == pytest.approx(-2.0, rel=1e-15)
    for diff, se in ((1.0, 0.0), (1.0, math.nan), (math.inf, 1.0), (math.nan, 1.0)):
        assert math.isnan(reporting.z_score(diff, se))


def test_richardson_value_and_standard_error() -> None:
    # m(d) = m∞ + c/d: m(400) = 0.11, m(800) = 0.105 → 2·0.105 − 0.11 = 0.10 = m∞
    value, se = reporting.richardson(0.11, 0.003, 0.105, 0.002)
    assert value == pytest.approx(0.10, rel=1e-14)
    assert se == pytest.approx(0.005, rel=1e-14)  # √((2·0.002)² + 0.003²) = √(16 + 9)·1e-3
    small = {"eps_L2": {"diff": 0.02, "diff_se": 0.003}, "eps_H1": {"diff": -0.01, "diff_se": 0.006}}
    large = {"eps_L2": {"diff": 0.01, "diff_se": 0.002}, "eps_H1": {"diff": -0.005, "diff_se": 0.004}}
    by_key = reporting.richardson_by_key(small, large, ("eps_L2", "eps_H1"), se="diff_se")
    assert list(by_key) == ["eps_L2", "eps_H1"]
    assert by_key["eps_L2"] == pytest.approx({"value": 0.0, "se": 0.005}, abs=1e-15)
    assert by_key["eps_H1"] == pytest.approx({"value": 0.0, "se": 0.01}, abs=1e-15)  # √(8² + 6²)·1e-3


def _staged(folder: Path) -> list[str]:
    return [p.name for p in folder.iterdir() if p.name.endswith(".tmp")]


def test_results_are_written_as_json_or_as_given_text(tmp_path: Path) -> None:
    rows = [{"d": 400, "mean": 0.1}, {"d": 800, "mean": 0.25}]
    path = reporting.write_results(tmp_path / "new" / "r.json", rows, indent=2)
    assert path.read_text() == json.dumps(rows, indent=2) + "\n"
    reporting.write_results(path, {"x": Path("a")}, default=str, end="")
    assert path.read_text() == '{\n "x": "a"\n}'
    reporting.write_results(tmp_path / "r.md", "| d |\n|---|\n")
    assert (tmp_path / "r.md").read_text() == "| d |\n|---|\n"
    assert _staged(tmp_path) == [] and _staged(tmp_path / "new") == []


def test_a_failed_write_keeps_the_previous_results(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "results.json"
    reporting.write_results(path, {"run": 1})
    before = path.read_bytes()

    first, second = object(), object()

    def serialise(value: object) -> object:  # the second object cannot be written, after the first was
        if value is second:
            raise TypeError("not serialisable")
        return "first"

    with pytest.raises(TypeError, match="not serialisable"):
        reporting.write_results(path, {"a": first, "b": second}, default=serialise)
    assert path.read_bytes() == before and _staged(tmp_path) == []

    # the disk fills up, or the run is interrupted, after half of the file went out
    real_write = os.write
    for error in (OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)), KeyboardInterrupt()):

        def half_then_fail(fd: int, data: memoryview, error: BaseException = error) -> int:
            real_write(fd, bytes(data[: len(data) // 2]))
            raise error

        monkeypatch.setattr(atomic.os, "write", half_then_fail)
        with pytest.raises(WriteError if isinstance(error, OSError) else KeyboardInterrupt):
            reporting.write_results(path, {"run": 2, "rows": list(range(1000))})
        monkeypatch.undo()
        assert path.read_bytes() == before and _staged(tmp_path) == []
