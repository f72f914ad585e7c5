"""``sobolev-rf solve``: the text output carries the errors and the order parameters its help promises."""

from __future__ import annotations

import json

from sobolev_rf.numeric.cli import main


def test_text_output_prints_the_order_parameters(capsys) -> None:
    argv = ["solve", "--k", "2", "--p-over-d", "4", "--lam", "0.01", "--alignment", "1,0.5"]
    assert main([*argv, "--json"]) == 0
    order = json.loads(capsys.readouterr().out)["order_parameters"]
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "order parameters:" in text
    lines = {line.split()[0]: line.split(None, 1)[1] for line in text.splitlines() if line.startswith("  ")}
    for name, value in order.items():
        values = value if isinstance(value, list) else [value]
        printed = [float(v) for v in lines[name].split(", ")]
        assert printed == [float(f"{v:.10g}") for v in values], name
    assert len(lines["S"].split(", ")) == 3 and len(lines["V"].split(", ")) == 3  # rows 0, 1, 2


def test_ridgeless_order_parameters_mark_the_missing_v(capsys) -> None:
    assert main(["solve", "--p-over-d", "3", "--lam", "0"]) == 0
    text = capsys.readouterr().out
    assert "  V " in text and "—" in next(line for line in text.splitlines() if line.startswith("  V "))


def test_the_default_point_is_off_the_threshold_and_the_threshold_is_named(capsys) -> None:
    from sobolev_rf.derive.params import ModelParams

    default = ModelParams()
    assert default.p_over_d != default.training_rows * default.n_over_d
    assert main(["solve"]) == 0
    text = capsys.readouterr().out
    assert "p/d = 4" in text and "threshold" not in text
    assert main(["solve", "--p-over-d", "2.1"]) == 0  # p = 2.1n, near p = 2n with λ = 1e-3
    assert "near the interpolation threshold p = 2n (p/d = 2)" in capsys.readouterr().out
