"""The Python snippets of the README and of the pages its long sections moved to run as written."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
#: Pages holding the README's former Python snippets (executed by the docs build too, as code cells).
PAGES = [ROOT / "docs" / "studies" / "tau.md", ROOT / "docs" / "studies" / "pencil-spectrum.md"]
PAGES += [ROOT / "docs" / "concepts" / "python.md"]
SNIPPET = re.compile(r"```(?:python|\{code-cell\} ipython3)\n(.*?)```", flags=re.S)


def test_python_snippets_run(capsys) -> None:
    for path in [README, *PAGES]:
        blocks = SNIPPET.findall(path.read_text(encoding="utf-8"))
        assert blocks, f"{path.name} has no Python snippet"
        for block in blocks:
            exec(compile(block, path.name, "exec"), {})  # project's own documentation, not user input
    assert "eps" not in capsys.readouterr().err


def test_gallery_images_exist_and_carry_their_command() -> None:
    """Every image the README shows is in the repository, and each says which command made it."""
    from PIL import Image

    images = re.findall(r"!\[[^\]]*\]\(([^)]+\.png)\)", README.read_text(encoding="utf-8"))
    assert len(images) >= 6
    for relative in images:
        path = README.parent / relative
        assert path.is_file(), relative
        description = Image.open(path).info.get("Description", "")
        assert description.startswith("sobolev-rf "), (relative, description)


def test_ridge_bias_example_runs_as_written(tmp_path, monkeypatch, capsys) -> None:
    """The pencil example with a data column: its page says how to write its file, and both lines run."""
    import shlex

    from sobolev_rf.numeric.cli.main import main

    text = (ROOT / "docs" / "studies" / "pencil-spectrum.md").read_text(encoding="utf-8")
    start = text.index("printf 'S,T")
    block = text[start : text.index("\n```", start)].replace("\\\n", " ")
    printf, command = (line.strip() for line in block.split("\n"))
    fmt = shlex.split(printf.split(">")[0])[1]
    monkeypatch.chdir(tmp_path)
    (tmp_path / "spectrum.csv").write_text(fmt.encode().decode("unicode_escape"))
    assert main(shlex.split(command)[1:]) == 0
    out = capsys.readouterr().out
    assert "tr(r)/m = " in out
