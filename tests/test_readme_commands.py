"""The commands of the README and of the documentation pages it links to (the studies and concepts moved out of
it) parse with the real command line, and the numbers they quote that are cheap to compute are recomputed, so
neither can drift from the tool.

* Every ``sobolev-rf ...`` command of the README (indented or fenced code blocks, and inline code in text and
  tables) names a real subcommand, and each ``--option`` it shows is an option of that subcommand.
* Every complete command (a code block without placeholders) is parsed by the real argument parser: option
  names, choices and types, without running the command.
* Quoted numbers checked here are each found in the README by a pattern and recomputed from the theory.
"""

from __future__ import annotations

import argparse
import re
import shlex
from pathlib import Path

import pytest

from sobolev_rf.derive.params import ModelParams
from sobolev_rf.numeric.cli.main import build_parser
from sobolev_rf.numeric.theory.solve import solve

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
#: The README's long sections live in these documentation pages (its "More" list links them).
PAGES = sorted((ROOT / "docs" / "studies").glob("*.md")) + [
    ROOT / "docs" / "concepts" / name for name in ("python.md", "layout.md", "checks.md")
]
TEXT = "\n\n".join(path.read_text(encoding="utf-8") for path in [README, *PAGES])


def _block_commands(text: str) -> list[str]:
    """Commands in indented (4 spaces) or fenced code blocks, continuation lines joined (a trailing backslash,
    or a quote left open at the end of a line)."""
    commands: list[str] = []
    lines = text.splitlines()
    fenced = False
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("```"):
            fenced = not fenced
            i += 1
            continue
        body = line.strip()
        in_block = fenced or line.startswith("    ")
        if in_block and body.startswith("sobolev-rf "):
            command = body
            while command.endswith("\\") or command.count("'") % 2 or command.count('"') % 2:
                i += 1
                if i == len(lines):
                    break
                command = (command[:-1] if command.endswith("\\") else command + "\n") + " " + lines[i].strip()
            commands.append(" ".join(command.replace("\\\n", " ").split(" ")))
        i += 1
    return commands


def _inline_commands(text: str) -> list[str]:
    """Inline code spans that start with ``sobolev-rf ``."""
    return [span for span in re.findall(r"`(sobolev-rf [^`]+)`", text)]


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def _command(name: str) -> argparse.ArgumentParser:
    """The full parser of one subcommand (``build_parser`` imports only the module of the one it is given)."""
    return _subparsers(build_parser([name]))[name]


def _options(parser: argparse.ArgumentParser) -> set[str]:
    return {option for action in parser._actions for option in action.option_strings}


def test_the_readme_shows_commands() -> None:
    assert len(_block_commands(TEXT)) >= 5 and len(_inline_commands(TEXT)) >= 15
    assert len(PAGES) == 11 and all(path.is_file() for path in PAGES)
    readme = README.read_text(encoding="utf-8")
    for path in PAGES:  # every moved page is linked from the README
        assert f"]({path.relative_to(ROOT).as_posix()})" in readme, path


def test_every_command_names_a_subcommand_and_its_options() -> None:
    commands = set(_subparsers(build_parser()))
    for text in _block_commands(TEXT) + _inline_commands(TEXT):
        words = text.replace("\\|", " ").split()
        if len(words) < 2 or words[1].startswith("-"):  # sobolev-rf --help, sobolev-rf alone
            assert set(words[1:]) <= {"--help", "-h", "--debug"}, text
            continue
        name = words[1].strip(".,;:)")
        if name == "COMMAND":  # the generic `sobolev-rf COMMAND --help`
            continue
        assert name in commands, (name, text)
        known = _options(_command(name))
        shown = {m.group(0) for w in words[2:] if (m := re.match(r"--[a-z][a-z0-9-]*", w.lstrip("[(")))}
        for option in shown:
            assert option in known, (option, text)


def test_complete_commands_parse() -> None:
    """Code-block commands without placeholders go through the real parser (nothing is run)."""
    checked = 0
    for text in _block_commands(TEXT):
        if re.search(r"\.\.\.|\[|\bHOST\b|\bEXPR\b|\bDIR\b", text):
            continue
        argv = shlex.split(text)[1:]
        try:
            args = build_parser(argv).parse_args(argv)
        except SystemExit as exc:  # argparse's error: report the command
            pytest.fail(f"the README command does not parse (exit {exc.code}): {text}")
        assert callable(getattr(args, "func", None)), text
        checked += 1
    assert checked >= 5


def _quoted(pattern: str) -> tuple[float, ...]:
    found = re.search(pattern, TEXT, flags=re.S)
    assert found, f"the README no longer says {pattern!r}: update this test with it"
    return tuple(float(g) for g in found.groups())


def test_quoted_zero_plus_jump_of_the_tau_study() -> None:
    """(0.84 → 0.45 at the default point): ε_H1 at τ = 0 and τ → 0⁺ at the default point of ``sobolev-rf tau``."""
    before, after = _quoted(r"\((\d\.\d+) → (\d\.\d+) at the\s+default point\)")
    defaults = _command("tau").parse_args([])
    point = ModelParams(p_over_d=float(defaults.p_over_d), n_over_d=float(defaults.n_over_d), lam=float(defaults.lam))
    assert round(solve(point.with_(tau=0.0)).eps_H1, 2) == before
    assert round(solve(point.with_(tau=1e-9)).eps_H1, 2) == after


def test_quoted_theory_of_the_linear_informed_example() -> None:
    """σ = φ = x in the informed section: the theory of random V (any ϖ: an affine σ fits only ζ_lᵀw)."""
    (theory,) = _quoted(r"--activation x --teacher x.*?\(theory (\d\.\d+) on average over ϖ")
    defaults = _command("informed").parse_args([])
    point = ModelParams(activation="x", teacher="x", p_over_d=float(defaults.p_over_d), lam=float(defaults.lam))
    assert round(solve(point).eps_L2, 4) == theory
    assert round(solve(point.with_(alignment=(2.5,))).eps_L2, 4) == theory
