"""Check the internal links of the built site, offline: every relative ``href`` and ``src`` in every HTML page must
name a file of the site and, with ``#anchor``, an ``id`` in that file.

    python docs/check_links.py docs/_build/html

Links with a scheme (``https:``, ``mailto:``) and protocol-relative ones are external and not followed. Prints
each broken link as ``page: link (why)`` and exits 1 if there is any, 0 otherwise.
"""

from __future__ import annotations

import sys
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit


class _Page(HTMLParser):
    """The links and the ids of one HTML page."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.links: list[str] = []
        self.ids: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        for key in ("id", "name") if tag == "a" else ("id",):
            if values.get(key):
                self.ids.add(str(values[key]))
        for key in ("href", "src"):
            if values.get(key) and not (tag == "link" and values.get("rel") in ("preconnect", "dns-prefetch")):
                self.links.append(str(values[key]))


def _parse(path: Path) -> _Page:
    page = _Page()
    page.feed(path.read_text(encoding="utf-8", errors="replace"))
    return page


def broken_links(root: Path) -> list[str]:
    """``page: link (why)`` for every internal link of the site under ``root`` that does not resolve."""
    pages: dict[Path, _Page] = {}

    def page(path: Path) -> _Page:
        if path not in pages:
            pages[path] = _parse(path)
        return pages[path]

    problems = []
    for html in sorted(root.rglob("*.html")):
        for link in page(html).links:
            parts = urlsplit(link)
            if parts.scheme or link.startswith("//"):
                continue
            target = html if not parts.path else (html.parent / unquote(parts.path)).resolve()
            if target.is_dir():
                target = target / "index.html"
            where = html.relative_to(root)
            if not target.is_file():
                problems.append(f"{where}: {link} (no such file)")
            elif parts.fragment and target.suffix == ".html" and unquote(parts.fragment) not in page(target).ids:
                problems.append(f"{where}: {link} (no anchor #{parts.fragment})")
    return problems


def main(argv: list[str]) -> int:
    if len(argv) != 1 or not Path(argv[0]).is_dir():
        print("usage: python docs/check_links.py BUILT_HTML_FOLDER", file=sys.stderr)
        return 2
    root = Path(argv[0]).resolve()
    problems = broken_links(root)
    for problem in problems:
        print(problem)
    count = sum(1 for _ in root.rglob("*.html"))
    print(f"internal links: {count} pages checked, {len(problems)} broken link(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
