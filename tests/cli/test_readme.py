"""The README's Python snippets run as written."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parents[2] / "README.md"


def test_python_snippets_run(capsys) -> None:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.S)
    assert blocks, "README has no Python snippet"
    for block in blocks:
        exec(compile(block, "README.md", "exec"), {})  # project's own documentation, not user input
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
