"""The documentation's generated references, its code blocks, its gallery and its link check, without Sphinx
(``make docs`` builds the site; these run in ``make test``, so a change that would break the site shows here)."""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
sys.path.insert(0, str(DOCS / "_ext"))
sys.path.insert(0, str(DOCS))

import check_links  # noqa: E402
import sobolev_docs  # noqa: E402

#: Hand-written pages (the generated ones are written by the build).
PAGES = sorted(
    page
    for page in DOCS.rglob("*.md")
    if "_build" not in page.parts and not any(page.is_relative_to(DOCS / g) for g in sobolev_docs.GENERATED)
)


def test_every_public_name_module_and_subcommand_gets_a_page(tmp_path) -> None:
    import sobolev_rf.numeric as api
    from sobolev_rf.numeric.cli.main import COMMANDS, build_parser

    counts = sobolev_docs.write_pages(DOCS, tmp_path)
    assert counts["cli"] == len(COMMANDS) and counts["api"] >= len(api.__all__)
    for name in api.__all__:
        text = (tmp_path / "reference/api" / f"{name}.md").read_text()
        assert re.search(r"\.\. auto(function|class):: sobolev_rf\.", text), name
    assert (tmp_path / "reference/modules/sobolev_rf.numeric.theory.dataset.md").is_file()
    assert counts["modules"] >= 60
    for name in COMMANDS:
        page = (tmp_path / "reference/cli" / f"{name}.md").read_text()
        parser = next(a for a in build_parser([name])._actions if isinstance(a, argparse._SubParsersAction))
        for action in parser.choices[name]._actions:
            for flag in [] if isinstance(action, argparse._HelpAction) else action.option_strings:
                assert f"`{flag}`" in page, (name, flag)
        assert f"usage: sobolev-rf {name}" in page
    # a second build starts from empty folders: a removed command leaves no page behind
    (tmp_path / "reference/cli/gone.md").write_text("# gone\n")
    sobolev_docs.write_pages(DOCS, tmp_path)
    assert not (tmp_path / "reference/cli/gone.md").exists()


def test_docstrings_are_escaped_where_docutils_would_misread_them() -> None:
    lines = [
        "The grid, shape (points + 2, *broadcast shape); |x| is a norm, *this* is emphasis, **kwargs too.",
        "Keep ``a|b`` and :func:`f` as they are.",
        "Example::",
        "",
        "    |x| * 2",
        "back to |text|",
    ]
    sobolev_docs.escape_docstring(lines)
    assert lines[0] == (
        r"The grid, shape (points + 2, \*broadcast shape); \|x\| is a norm, *this* is emphasis, \*\*kwargs too."
    )
    assert lines[1] == "Keep ``a|b`` and :func:`f` as they are."
    assert lines[4] == "    |x| * 2" and lines[5] == r"back to \|text\|"


def _blocks(text: str) -> list[tuple[str, str]]:
    """(info string, body) of every fenced block of a Markdown page."""
    found = re.findall(r"^(`{3,})([^\n]*)\n(.*?)^\1[ \t]*$", text, flags=re.S | re.M)
    return [(info.strip(), body) for _, info, body in found]


def test_every_code_block_is_executed_or_checked() -> None:
    """Python runs as notebook cells (executed on every build); a console block holds only ``make`` targets
    that exist and ``sobolev-rf`` commands the parser accepts; ``text`` blocks are diagrams."""
    from sobolev_rf.numeric.cli.args import join_negative_values
    from sobolev_rf.numeric.cli.main import build_parser

    targets = set(re.findall(r"^([a-z]+):", (ROOT / "Makefile").read_text(), flags=re.M))
    cells = 0
    for page in PAGES:
        for info, body in _blocks(page.read_text(encoding="utf-8")):
            where = f"{page.relative_to(DOCS)}: {info}"
            if info.startswith("{code-cell}"):
                cells += 1
            elif info == "console":
                for line in body.splitlines():
                    command = line.split("#")[0].removeprefix("$ ").split()
                    if command[:1] == ["make"]:
                        assert set(command[1:]) <= targets and command[1:], (where, line)
                    else:
                        assert command[:1] == ["sobolev-rf"], (where, line)
                        parser = build_parser(command[1:])
                        parser.parse_args(join_negative_values(parser, command[1:]))
            else:
                assert info in ("text", "{toctree}", "{figure}", "{eval-rst}") or info.startswith("{figure}"), where
    assert cells >= 15


def test_the_gallery_shows_every_figure_with_the_command_that_made_it() -> None:
    """The gallery page is generated from the README and the figures: each figure once, with its command."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    page = sobolev_docs.gallery_page(readme, DOCS)
    figures = re.findall(r"```\{figure\} (gallery/\S+\.png)\n(.*?)\n```", page, flags=re.S)
    assert sorted(path for path, _ in figures) == sorted(f"gallery/{p.name}" for p in (DOCS / "gallery").glob("*.png"))
    for path, body in figures:
        command = sobolev_docs.made_by(DOCS / path)
        assert command.startswith("sobolev-rf ") and f"Made by: `{command}`" in body, path
    # the README's caption is kept, and a figure the README shows without one is captioned by its command
    assert "the peak moves from p = n to p = (k + 1)n" in page
    fake = "![x](docs/gallery/double_descent.png)\n"
    assert "`sobolev-rf demo --d 400 --seeds 3 --grid 80`" in sobolev_docs.gallery_page(fake, DOCS)


def test_link_check_finds_missing_pages_and_anchors(tmp_path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "index.html").write_text(
        '<a href="sub/page.html#here">ok</a><a href="#top">self</a><h1 id="top">t</h1>'
        '<a href="https://example.org/x">external</a><img src="missing.png"><a href="sub/page.html#nowhere">bad</a>'
    )
    (tmp_path / "sub" / "page.html").write_text('<p id="here"></p><a href="../index.html">up</a>')
    assert check_links.broken_links(tmp_path) == [
        "index.html: missing.png (no such file)",
        "index.html: sub/page.html#nowhere (no anchor #nowhere)",
    ]
    run = subprocess.run([sys.executable, str(DOCS / "check_links.py"), str(tmp_path)], capture_output=True, text=True)
    assert run.returncode == 1 and "2 broken link(s)" in run.stdout


def test_tutorials_are_notebooks_with_a_figure() -> None:
    """Each tutorial is a notebook that myst-nb executes, and the phase-diagram, spectrum and campaign ones plot."""
    for page in sorted((DOCS / "tutorials").glob("*.md")) + [DOCS / "getting-started.md"]:
        text = page.read_text(encoding="utf-8")
        assert text.startswith("---\nfile_format: mystnb\n") and "```{code-cell} ipython3" in text, page.name
    for name in ("phase-diagram", "pencil-spectrum", "campaign"):
        assert (
            ".plot" in (DOCS / "tutorials" / f"{name}.md").read_text()
            or "plt." in (DOCS / "tutorials" / f"{name}.md").read_text()
        )
