"""The ``sobolev-rf hermite`` subcommand (numeric/cli/cmd_hermite.py)."""

from __future__ import annotations

import json
import re

import pytest

from sobolev_rf.numeric import cli

KEYS = ("kappa0", "kappa1", "kappa_star", "kappa0_prime", "kappa1_prime", "kappa_star_prime")


def significant_digits(text: str) -> int:
    mantissa = re.sub(r"[eE][+-]?\d+$", "", text).lstrip("+-").replace(".", "")
    return len(mantissa.lstrip("0"))


def test_json_has_the_six_keys_at_40_digits(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["hermite", "--activation", "relu", "--digits", "40", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    for key in KEYS:
        assert set(out[key]) == {"value", "exact"}
        assert significant_digits(out[key]["value"]) == 40, out[key]
    assert out["kappa1"]["exact"] == "1/2"
    assert out["kappa0"]["value"].startswith("0.3989422804014326779399460599343818684759")
    assert out["cross"] == {"value": "0", "exact": "0"}


def test_json_sequence_and_quadrature_values(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["hermite", "--activation", "tanh", "--digits", "25", "--order", "3", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert len(out["sequence"]) == 4
    assert out["kappa1"]["exact"] is None and significant_digits(out["kappa1"]["value"]) == 25
    assert out["sequence"][1]["value"] == out["kappa1"]["value"]


def test_table_and_latex(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["hermite", "--activation", "x*erf(x/sqrt(2))"]) == 0
    table = capsys.readouterr().out
    assert "κ_*′" in table and "kappa_star_prime" in table
    assert cli.main(["hermite", "--activation", "relu", "--latex", "--order", "2"]) == 0
    latex = capsys.readouterr().out
    assert r"\kappa_1 = \frac{1}{2}" in latex and "a_{2}" in latex


@pytest.mark.parametrize(
    "argv",
    [
        ["hermite", "--activation", "foo(x)"],
        ["hermite", "--activation", "__import__('os')"],
        ["hermite", "--activation", "exp(x**2)"],
        ["hermite", "--digits", "0"],
        ["hermite", "--digits", "many"],
        ["hermite", "--order", "-1"],
    ],
)
def test_bad_input_is_one_line_and_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("sobolev-rf: error:") and err.count("\n") == 1
