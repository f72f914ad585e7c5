"""A dependency-free progress bar on stderr (silent when stderr is not a terminal unless forced)."""
from __future__ import annotations

import os
import sys
import time
from typing import Iterable, Iterator, TypeVar

T = TypeVar("T")


class Progress:
    """``with Progress(total, "label") as bar: bar.update()`` draws ``label [####....] i/total  t s``."""

    def __init__(self, total: int, label: str = "", enabled: bool | None = None, width: int = 30) -> None:
        self.total = max(int(total), 1)
        self.label = label
        self.width = width
        self.count = 0
        self.t0 = time.perf_counter()
        if enabled is None:
            enabled = sys.stderr.isatty() or os.environ.get("SOBOLEV_RF_PROGRESS") == "1"
        self.enabled = enabled and os.environ.get("SOBOLEV_RF_PROGRESS") != "0"

    def __enter__(self) -> "Progress":
        self._draw()
        return self

    def update(self, n: int = 1) -> None:
        self.count += n
        self._draw()

    def _draw(self) -> None:
        if not self.enabled:
            return
        frac = min(self.count / self.total, 1.0)
        filled = int(round(frac * self.width))
        bar = "#" * filled + "." * (self.width - filled)
        elapsed = time.perf_counter() - self.t0
        sys.stderr.write(f"\r{self.label} [{bar}] {self.count}/{self.total}  {elapsed:6.1f} s")
        sys.stderr.flush()

    def __exit__(self, *exc: object) -> None:
        if self.enabled:
            sys.stderr.write("\n")
            sys.stderr.flush()


def progress(items: Iterable[T], total: int, label: str = "", enabled: bool | None = None) -> Iterator[T]:
    """Iterate over ``items`` while drawing a :class:`Progress` bar."""
    with Progress(total, label, enabled) as bar:
        for item in items:
            yield item
            bar.update()
