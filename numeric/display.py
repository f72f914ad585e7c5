"""Rich display of results in a notebook: small HTML tables (``_repr_html_``) built from plain rows."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from html import escape
from typing import Any


def number(value: Any, digits: int = 6) -> str:
    """A number as short text: ``digits`` significant digits, lists and arrays element-wise, None and NaN as "–"."""
    if value is None:
        return "–"
    if hasattr(value, "tolist"):  # NumPy arrays and scalars
        value = value.tolist()
    if isinstance(value, (list, tuple)):
        return "(" + ", ".join(number(v, digits) for v in value) + ")"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, float) and math.isnan(value):
        return "–"
    return f"{value:.{digits}g}"


def html_table(caption: str, header: Sequence[str], rows: Iterable[Sequence[Any]], notes: Sequence[str] = ()) -> str:
    """An HTML table with a caption, one header row, text cells (escaped) and notes below it."""
    parts = [f"<table><caption style='text-align:left'>{escape(caption)}</caption>"]
    parts.append("<tr>" + "".join(f"<th>{escape(h)}</th>" for h in header) + "</tr>")
    for row in rows:
        parts.append("<tr>" + "".join(f"<td>{escape(str(cell))}</td>" for cell in row) + "</tr>")
    parts.append("</table>")
    parts += [f"<p><small>{escape(note)}</small></p>" for note in notes]
    return "\n".join(parts)
