"""Progress bars of the commands and study runs, drawn by tqdm on stderr.

Solvers and the simulator never draw: they take a ``progress`` callback (called with the amount of work just
done), and the commands and studies pass :meth:`Progress.update` (a campaign's runner reports its task counts
instead, to :meth:`TaskBar.update`). A bar is shown when stderr is a terminal;
``SOBOLEV_RF_PROGRESS=1`` forces it, ``=0`` silences it.
"""

from __future__ import annotations

import os
import sys
from typing import Any


def progress_enabled(enabled: bool | None = None) -> bool:
    """Whether to draw a bar: ``enabled`` unless ``SOBOLEV_RF_PROGRESS=0``; by default when stderr is a
    terminal or ``SOBOLEV_RF_PROGRESS=1``."""
    setting = os.environ.get("SOBOLEV_RF_PROGRESS")
    if setting == "0":
        return False
    if enabled is None:
        return setting == "1" or sys.stderr.isatty()
    return enabled


class Progress:
    """``with Progress(total, "label") as bar: bar.update()``: a tqdm bar with the label, the count and the time."""

    def __init__(self, total: int, label: str = "", enabled: bool | None = None) -> None:
        self.total = max(int(total), 1)
        self.label = label
        self.enabled = progress_enabled(enabled)
        self.count = 0
        self._bar: Any = None

    def __enter__(self) -> Progress:
        if self.enabled:
            from tqdm import tqdm

            self._bar = tqdm(
                total=self.total, desc=self.label, file=sys.stderr, dynamic_ncols=True, mininterval=0.1, leave=True
            )
        return self

    def update(self, n: int = 1) -> None:
        """Add ``n`` units of work (0 refreshes the bar)."""
        self.count += n
        if self._bar is not None:
            self._bar.update(n)

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


class TaskBar:
    """A tqdm bar of tasks that run elsewhere (a campaign on a cluster): :meth:`update` takes a report with
    ``done``, ``failed``, ``running`` and ``total`` and shows done + failed of the total; the bar is drawn from the
    first report on, when the total is known."""

    def __init__(self, label: str) -> None:
        self.label = label
        self._bar: Any = None

    def __enter__(self) -> TaskBar:
        return self

    def update(self, report: Any) -> None:
        """Show the counts of ``report``."""
        if self._bar is None:
            from tqdm import tqdm

            self._bar = tqdm(total=report.total, unit="task", desc=self.label, file=sys.stderr, dynamic_ncols=True)
        self._bar.n = report.done + report.failed
        self._bar.set_postfix_str(
            f"done {report.done}, failed {report.failed}, running {report.running}", refresh=False
        )
        self._bar.refresh()

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
