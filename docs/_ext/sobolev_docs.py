"""The generated parts of the documentation: one page per public name, per module and per subcommand.

Everything is read from the package at build time, never copied by hand:

* the public API is ``sobolev_rf.numeric.__all__`` (each name documented where it is defined), with the
  classes its functions return;
* the module reference walks the three layers ``sobolev_rf.derive``, ``sobolev_rf.codegen`` and
  ``sobolev_rf.numeric`` with :mod:`pkgutil`, so a new module gets its page;
* the command-line reference builds the real ``sobolev-rf`` parser once per subcommand and writes its help text
  and a table of its options, so a new subcommand gets its page and an option never drifts from ``--help``.

The page writers are plain functions (``tests/test_docs_reference.py`` calls them without Sphinx); :func:`setup`
runs them when a build starts, into folders that are regenerated on every build (and ignored by git).
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import os
import pkgutil
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

#: The layers whose modules the module reference lists.
LAYERS = ("sobolev_rf.derive", "sobolev_rf.codegen", "sobolev_rf.numeric")
#: Classes that the public functions return or take, documented beside them.
RESULT_TYPES = (
    "sobolev_rf.numeric.theory.solve.TheoryResult",
    "sobolev_rf.numeric.theory.solve.GridResult",
    "sobolev_rf.numeric.theory.verify.VerifyResult",
    "sobolev_rf.numeric.simulation.exact.SimulationResult",
    "sobolev_rf.derive.system.System",
    "sobolev_rf.derive.hermite.HermiteCoefficients",
    "sobolev_rf.derive.errors.UserError",
)
#: Generated folders, relative to the documentation source.
GENERATED = ("reference/api", "reference/modules", "reference/cli")
#: The generated gallery page, relative to the documentation source.
GALLERY = "gallery.md"
#: A README image of the gallery folder and the text of its table cell (up to the next cell or line end).
_README_IMAGE = re.compile(r"!\[[^\]]*\]\(docs/(gallery/[^)\s]+\.png)\)([^|\n]*)")


def _object(path: str) -> Any:
    module, _, name = path.rpartition(".")
    return getattr(importlib.import_module(module), name)


def public_names() -> list[tuple[str, str, str]]:
    """(public name, dotted path where it is defined, ``function`` or ``class``) of every public name."""
    import sobolev_rf.numeric as api

    out = []
    for name in api.__all__:
        obj = getattr(api, name)
        kind = "class" if inspect.isclass(obj) else "function"
        out.append((name, f"{obj.__module__}.{obj.__qualname__}", kind))
    for path in RESULT_TYPES:
        try:
            obj = _object(path)
        except (ImportError, AttributeError):
            continue  # moved or renamed: the public names above still document everything users call
        out.append((obj.__qualname__, f"{obj.__module__}.{obj.__qualname__}", "class"))
    return out


def modules() -> list[str]:
    """Every module of the three layers (packages included), in a stable order."""
    found = []
    for layer in LAYERS:
        package = importlib.import_module(layer)
        found.append(layer)
        for info in pkgutil.walk_packages(package.__path__, prefix=f"{layer}."):
            if info.name.rsplit(".", 1)[-1] != "__main__":
                found.append(info.name)
    return sorted(found)


def subcommands() -> Iterator[tuple[str, argparse.ArgumentParser]]:
    """(name, full parser) of every ``sobolev-rf`` subcommand, from the command's own parser."""
    from sobolev_rf.numeric.cli.main import build_parser

    def sub_action(parser: argparse.ArgumentParser) -> argparse._SubParsersAction:
        return next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))

    for name in list(sub_action(build_parser()).choices):
        yield name, sub_action(build_parser([name])).choices[name]


def _fence(text: str, lang: str = "text") -> str:
    ticks = "````" if "```" in text else "```"
    return f"{ticks}{lang}\n{text.rstrip()}\n{ticks}\n"


def _cell(text: str) -> str:
    """Plain text as one Markdown table cell: characters MyST would read as markup (``*``, ``_``, ``$``, ``|``,
    ``<``, …) are escaped."""
    return re.sub(r"([\\`*_\[\]<>|{}$#])", r"\\\1", " ".join(text.split()))


def _code(text: str) -> str:
    """Text as a code span in a Markdown table cell (only ``|`` needs escaping there)."""
    return _cell(text) if "`" in text or not text.strip() else "`" + text.replace("|", "\\|") + "`"


def command_page(name: str, parser: argparse.ArgumentParser, summary: str) -> str:
    """The page of one subcommand: its one-line summary, its ``--help`` text, and its options as a table."""
    rows = []
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction) or action.help == argparse.SUPPRESS:
            continue
        flags = ", ".join(f"`{s}`" for s in action.option_strings) or f"`{action.metavar or action.dest}`"
        if action.nargs != 0 and action.option_strings:
            metavar = action.metavar or action.dest.upper()
            flags += f" {_cell(metavar if isinstance(metavar, str) else ' '.join(metavar))}"
        default = "" if action.default in (None, False, argparse.SUPPRESS) else _code(str(action.default))
        choices = ", ".join(map(str, action.choices)) if action.choices else ""
        text = (action.help or "").replace("%(default)s", str(action.default))
        if choices:
            text += f" (one of: {choices})"
        rows.append(f"| {flags} | {_cell(text)} | {default} |")
    previous = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = "100"  # argparse wraps to the terminal: the same width on every machine
    try:
        help_text = parser.format_help()
    finally:
        if previous is None:
            del os.environ["COLUMNS"]
        else:
            os.environ["COLUMNS"] = previous
    lines = [
        f"# `sobolev-rf {name}`",
        "",
        summary,
        "",
        "## Usage",
        "",
        _fence(help_text),
        "## Options",
        "",
        "| option | meaning | default |",
        "|---|---|---|",
        *rows,
        "",
    ]
    return "\n".join(lines)


def api_page(name: str, path: str, kind: str) -> str:
    directive = "autoclass" if kind == "class" else "autofunction"
    options = "   :members:\n" if kind == "class" else ""
    return f"# `{name}`\n\n```{{eval-rst}}\n.. {directive}:: {path}\n{options}```\n"


def module_page(module: str) -> str:
    """A module's page; its objects are indexed on the public API pages, so here they are not indexed again."""
    return f"# `{module}`\n\n```{{eval-rst}}\n.. automodule:: {module}\n   :members:\n   :no-index:\n```\n"


#: Inline literals and roles (``code``, :func:`name`): left as they are.
_LITERAL = re.compile(r"``.+?``|(?::[\w:.-]+:)?`[^`]+`_{0,2}")
_STARS = re.compile(r"\*+")


def _plain(segment: str) -> str:
    """Text outside literals as the docstrings mean it: ``|x|`` is an absolute value (not a substitution), and a
    run of stars that the next run does not close as emphasis (``*shape``, ``**kwargs``, ``a * b``) is stars."""
    segment = segment.replace("|", "\\|")
    runs = list(_STARS.finditer(segment))

    def opens(run: re.Match[str]) -> bool:
        start, end = run.span()
        return (
            (start == 0 or segment[start - 1] in " \t([{<'\"-/:") and end < len(segment) and not segment[end].isspace()
        )

    def closes(run: re.Match[str]) -> bool:
        start, end = run.span()
        return not segment[start - 1].isspace() and (end == len(segment) or not segment[end].isalnum())

    keep: set[int] = set()
    i = 0
    while i < len(runs):
        if opens(runs[i]) and i + 1 < len(runs) and runs[i + 1].group() == runs[i].group() and closes(runs[i + 1]):
            keep |= {i, i + 1}
            i += 2
        else:
            i += 1
    out, last = [], 0
    for i, run in enumerate(runs):
        out.append(segment[last : run.start()])
        out.append(run.group() if i in keep or not opens(run) else "\\" + "\\".join(run.group()))
        last = run.end()
    return "".join(out) + segment[last:]


def escape_docstring(lines: list[str]) -> None:
    """Escape, in place, what docutils would misread in a docstring (see :func:`_plain`); literal blocks (after
    a line ending in ``::``) and inline literals are kept as they are."""
    literal_indent: int | None = None
    for i, line in enumerate(lines):
        indent = len(line) - len(line.lstrip())
        if literal_indent is not None:
            if not line.strip() or indent > literal_indent:
                continue
            literal_indent = None
        pieces, last = [], 0
        for match in _LITERAL.finditer(line):
            pieces += [_plain(line[last : match.start()]), match.group()]
            last = match.end()
        lines[i] = "".join(pieces) + _plain(line[last:])
        if line.rstrip().endswith("::"):
            literal_indent = indent


def made_by(png: Path) -> str:
    """The command line a figure carries in its PNG ``Description`` metadata (one line), or ""."""
    from PIL import Image

    with Image.open(png) as image:
        return " ".join(str(image.info.get("Description", "")).split())


def gallery_page(readme: str, source: Path) -> str:
    """The gallery: every figure of ``source/gallery`` (the README's order first), with the README's caption where
    it has one and always the exact command that made it, read from the figure itself."""
    captions = {path: " ".join(text.split()) for path, text in _README_IMAGE.findall(readme)}
    shown = [path for path in dict.fromkeys(path for path, _ in _README_IMAGE.findall(readme))]
    shown += sorted(f"gallery/{p.name}" for p in (source / "gallery").glob("*.png") if f"gallery/{p.name}" not in shown)
    lines = [
        "# Gallery",
        "",
        "Every figure comes from a `sobolev-rf` command with its default settings (d → ∞ theory as lines, exact",
        "finite-size simulations as points with standard-error bars). The command under each figure is read from the",
        "figure itself: each PNG carries its command line in its `Description` metadata, and each CSV written beside",
        "it on its first line (`# command: ...`). This page is generated from the README's gallery when the",
        "documentation is built.",
        "",
    ]
    for path in shown:
        if not (source / path).is_file():
            continue
        command = made_by(source / path)
        caption = captions.get(path, "")
        lines += [f"```{{figure}} {path}", ":width: 90%", ""]
        lines.append(caption or f"`{command.split(' --out')[0]}`")
        lines += ["", f"Made by: `{command.replace('`', '')}`" if command else "", "```", ""]
    return "\n".join(lines)


def write_pages(source: Path, out: Path | None = None) -> dict[str, int]:
    """Write the generated pages of the documentation folder ``source`` (its figures, and the README beside it)
    under ``out`` (default: ``source`` itself); returns how many of each."""
    out = source if out is None else out
    from sobolev_rf.numeric.cli.main import COMMANDS

    for folder in GENERATED:
        shutil.rmtree(out / folder, ignore_errors=True)
        (out / folder).mkdir(parents=True)
    api, mods, cli = (out / folder for folder in GENERATED)
    names = public_names()
    for name, path, kind in names:
        (api / f"{name}.md").write_text(api_page(name, path, kind), encoding="utf-8")
    found = modules()
    for module in found:
        (mods / f"{module}.md").write_text(module_page(module), encoding="utf-8")
    commands = list(subcommands())
    for name, parser in commands:
        summary = COMMANDS[name].help if name in COMMANDS else ""
        (cli / f"{name}.md").write_text(command_page(name, parser, summary), encoding="utf-8")
    readme = source.parent / "README.md"
    gallery = gallery_page(readme.read_text(encoding="utf-8") if readme.is_file() else "", source)
    (out / GALLERY).write_text(gallery, encoding="utf-8")
    return {"api": len(names), "modules": len(found), "cli": len(commands), "gallery": gallery.count("{figure}")}


def _latex_outputs_unwrapped(app: Any, doctree: Any, docname: str) -> None:
    """A notebook's LaTeX output that is a whole environment (``\\begin{align*}``…) is passed to MathJax as it
    is; wrapped in display math (the default) MathJax would refuse the nested environment."""
    from docutils import nodes

    for node in doctree.findall(nodes.math_block):
        if "text_latex" in node.get("classes", []) and node.astext().lstrip().startswith("\\begin{"):
            node["nowrap"] = True


def setup(app: Any) -> dict[str, Any]:
    app.connect("builder-inited", lambda app: write_pages(Path(app.srcdir)))
    app.connect("autodoc-process-docstring", lambda app, what, name, obj, options, lines: escape_docstring(lines))
    app.connect("doctree-resolved", _latex_outputs_unwrapped)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
