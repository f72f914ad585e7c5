"""Results in a notebook: a System and Hermite coefficients as LaTeX, solve / verify results as HTML tables."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser

import mpmath

from sobolev_rf.numeric import ModelParams, cli, derive, hermite, solve, verify


class _Cells(HTMLParser):
    """The text of every table cell, row by row."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[list[str]] = []
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: object) -> None:
        if tag == "tr":
            self.rows.append([])
        elif tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None:
            self.rows[-1].append("".join(self._cell))
            self._cell = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


def _table(html: str) -> dict[str, list[str]]:
    parser = _Cells()
    parser.feed(html)
    return {row[0]: row[1:] for row in parser.rows[1:]}


def test_system_latex_is_the_derive_command_text(capsys) -> None:
    system = derive(2, 1.0)
    assert cli.main(["derive", "--k", "2", "--tau", "1", "--format", "latex"]) == 0
    printed = capsys.readouterr().out
    assert system._repr_latex_() == printed.rstrip("\n")
    assert system._repr_latex_().startswith("\\begin{align*}") and "eps\\_L2" in printed


def test_hermite_latex_has_the_exact_forms() -> None:
    relu = hermite("relu", digits=20)._repr_latex_()
    assert r"\sigma(x) &= \max\left(0, x\right)" in relu
    assert r"\kappa_1 &= \frac{1}{2} \\" in relu  # exact rational: no decimal
    star = re.search(r"\\kappa_\* &= (.*) \\approx (\S+)", relu)
    with mpmath.workdps(30):
        exact = mpmath.sqrt(mpmath.pi - 2) / (2 * mpmath.sqrt(mpmath.pi))
    assert star and "\\pi" in star.group(1) and star.group(2) == mpmath.nstr(exact, 20, strip_zeros=False)
    tanh = hermite("tanh", digits=20)._repr_latex_()  # no closed form: the value alone
    assert re.search(r"\\kappa_1 &= \\approx 0\.6057", tanh)


def test_solve_result_table() -> None:
    point = ModelParams(lam=0.0, p_over_d=4.0)
    result = solve(point)
    cells = _table(result._repr_html_())
    assert float(cells["eps_L2"][0]) == float(f"{result.eps_L2:.6g}")
    assert cells["branch"] == ["interpolating"] and cells["converged"] == ["True"]
    assert float(cells["residual"][0]) <= 1e-10
    assert {"m", "q_s", "q_w", "V", "Omega", "M", "S"} <= set(cells)
    assert "interpolating branch" in result._repr_html_()  # the note on λ = 0
    assert result.to_dict()["branch"] == "interpolating"


def test_verify_result_table_and_json() -> None:
    report = verify(ModelParams(lam=1e-2), digits=20)
    json.dumps(report)  # still plain data
    cells = _table(report._repr_html_())
    assert float(cells["output eps_L2"][0]) == report["outputs"]["eps_L2"]["double"]
    assert cells["output eps_L2"][1] == report["outputs"]["eps_L2"]["mpmath"]
    assert "unknown V_0" in cells and f"{report['digits']} digits" in report._repr_html_()
