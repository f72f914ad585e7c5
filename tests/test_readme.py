"""The README's Python snippets run as written."""
from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"


def test_python_snippets_run(capsys) -> None:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.S)
    assert blocks, "README has no Python snippet"
    for block in blocks:
        exec(compile(block, "README.md", "exec"), {})  # project's own documentation, not user input
    assert "eps" not in capsys.readouterr().err
