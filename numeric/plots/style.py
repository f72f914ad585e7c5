"""The look shared by every figure: error labels, axis names, log ticks, map cells and outlines.

Figures are private :class:`~matplotlib.figure.Figure` objects rendered off-screen (no pyplot), so importing a
figure module changes no global matplotlib state; :func:`~sobolev_rf.numeric.artifacts.png_bytes` writes the
command line into every PNG.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from matplotlib.axis import Axis
from matplotlib.ticker import FixedLocator, FormatStrFormatter, FuncFormatter, NullFormatter
from numpy.typing import NDArray

from ..quantities import NAMES, TEX

__all__ = ["NAMES", "TEX", "P_LABEL", "N_LABEL", "log_ticks", "log_cell_edges", "plain_log_labels", "cells", "outline"]

Array = NDArray[np.float64]
Segments = list[list[tuple[float, float]]]

P_LABEL = "features per input dimension  p/d"
N_LABEL = "samples per input dimension  n/d"
#: The model point on a (p/d, n/d) map.
STAR = dict(marker="*", ms=13, color="gold", mec="black", mew=0.8, ls="none")


def log_ticks(axis: Axis, ticks: Sequence[float]) -> None:
    """Label a log-scaled ``axis`` at the plain numbers ``ticks`` only (no 2×10⁰ minor labels)."""
    axis.set_major_locator(FixedLocator(list(ticks)))
    axis.set_major_formatter(FormatStrFormatter("%g"))
    axis.set_minor_formatter(NullFormatter())


def log_cell_edges(centres: Array) -> Array:
    """Cell edges of a log-spaced grid of cell centres (geometric midpoints, extrapolated at the ends)."""
    logc = np.log(centres)
    if len(centres) == 1:
        return np.exp(np.array([logc[0] - 0.5, logc[0] + 0.5]))
    mid = 0.5 * (logc[1:] + logc[:-1])
    return np.exp(np.concatenate([[2 * logc[0] - mid[0]], mid, [2 * logc[-1] - mid[-1]]]))


def _plain_label(ax: Any) -> Callable[[float, Any], str]:
    def label(value: float, _: Any) -> str:
        if value <= 0:
            return ""
        low, high = ax.get_ylim()
        mantissa = round(value / 10.0 ** math.floor(math.log10(value) + 1e-9), 6)
        if math.log10(max(high, 1e-300) / max(low, 1e-300)) > 1.5 and mantissa not in (1.0, 2.0, 5.0):
            return ""
        return f"{value:.2g}"

    return label


def plain_log_labels(ax: Any) -> None:
    """Label the log y axis of ``ax`` with plain numbers (0.3, not 3×10⁻¹); on an axis spanning more than 1.5
    decades only the mantissas 1, 2 and 5."""
    ax.yaxis.set_major_formatter(FuncFormatter(_plain_label(ax)))
    ax.yaxis.set_minor_formatter(FuncFormatter(_plain_label(ax)))


def cells(mask: np.ndarray, xe: Array, ye: Array) -> Segments:
    """The rectangles (as polygons) of the True cells of ``mask`` (shape (len(ye) − 1, len(xe) − 1))."""
    return [
        [(xe[j], ye[i]), (xe[j + 1], ye[i]), (xe[j + 1], ye[i + 1]), (xe[j], ye[i + 1])]
        for i, j in zip(*np.nonzero(mask))
    ]


def outline(mask: np.ndarray, xe: Array, ye: Array, border: bool = True) -> Segments:
    """Cell-edge segments between True and False cells of ``mask``; with ``border`` also the grid border of the
    True cells."""
    padded = np.pad(mask, 1, constant_values=False)
    rows, cols = mask.shape
    segments = []
    for i in range(rows):
        for j in range(cols):
            if not mask[i, j]:
                continue
            if not padded[i + 1, j] and (border or j > 0):
                segments.append([(xe[j], ye[i]), (xe[j], ye[i + 1])])
            if not padded[i + 1, j + 2] and (border or j < cols - 1):
                segments.append([(xe[j + 1], ye[i]), (xe[j + 1], ye[i + 1])])
            if not padded[i, j + 1] and (border or i > 0):
                segments.append([(xe[j], ye[i]), (xe[j + 1], ye[i])])
            if not padded[i + 2, j + 1] and (border or i < rows - 1):
                segments.append([(xe[j], ye[i + 1]), (xe[j + 1], ye[i + 1])])
    return segments
