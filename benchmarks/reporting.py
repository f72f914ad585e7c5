"""Statistics over seeds and results files, shared by the benchmark scripts.

A simulation quantity m (an error such as eps_L2, or a spike scalar) is measured on S seeds at each input
dimension d; the scripts report

- the mean over seeds with its standard error, SE = std/√S (sample std, ddof = 1): :func:`mean_se`;
- the paired difference simulation − theory seed by seed (the theory evaluated at each seed's own measured
  quantities), its mean and SE: :func:`paired_diff`;
- the z-score diff/SE of a gap: :func:`z_score`;
- the Richardson value 2·m(2d) − m(d) of two sizes, which removes a finite-size effect shrinking like 1/d,
  with its SE √((2·SE(2d))² + SE(d)²) (the two sizes use independent seeds): :func:`richardson`, and
  :func:`richardson_by_key` for the gaps of several quantities.

:func:`write_results` writes a results file (JSON or Markdown) through a staged temporary file that replaces
the target only once complete, so a benchmark killed or failing while it writes leaves the previous file.

Run as ``python benchmarks/NAME.py``, a script finds this module next to it (``from reporting import ...``).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

import numpy as np
from numpy.typing import ArrayLike

from sobolev_rf.codegen.atomic import atomic_write_text


def mean_se(values: ArrayLike) -> tuple[float, float]:
    """The mean over seeds and its standard error std/√S (ddof = 1; NaN for fewer than two seeds)."""
    v = np.asarray(values, dtype=float)
    se = float(v.std(ddof=1) / np.sqrt(v.size)) if v.size > 1 else math.nan
    return float(v.mean()), se


def paired_diff(sim: ArrayLike, theory: ArrayLike) -> tuple[float, float]:
    """Mean and SE over seeds of simulation − theory, paired seed by seed (``theory`` may be one number)."""
    return mean_se(np.asarray(sim, dtype=float) - np.asarray(theory, dtype=float))


def z_score(diff: float, se: float) -> float:
    """diff/SE: how many standard errors a gap is; NaN where the gap is not finite or the SE not positive."""
    return diff / se if math.isfinite(diff) and se > 0 else math.nan


def richardson(m_d: float, se_d: float, m_2d: float, se_2d: float) -> tuple[float, float]:
    """The Richardson value 2·m(2d) − m(d) of the means at d and 2d (a 1/d finite-size term cancels) and its
    SE √((2·se_2d)² + se_d²)."""
    return 2 * m_2d - m_d, float(np.hypot(2 * se_2d, se_d))


def richardson_by_key(
    small: Mapping[str, Mapping[str, float]], large: Mapping[str, Mapping[str, float]], keys: Iterable[str], se: str
) -> dict[str, dict[str, float]]:
    """{key: {"value", "se"}}: :func:`richardson` of each quantity's ``diff`` (simulation − theory) at the sizes
    d (``small``) and 2d (``large``), each a mapping key → entry with ``diff`` and the SE under the name ``se``."""
    out = {}
    for key in keys:
        value, value_se = richardson(small[key]["diff"], small[key][se], large[key]["diff"], large[key][se])
        out[key] = {"value": value, "se": value_se}
    return out


def write_results(
    path: str | os.PathLike[str],
    content: object,
    *,
    indent: int = 1,
    default: Callable[[object], object] | None = None,
    end: str = "\n",
) -> Path:
    """Write a results file atomically (folders created as needed); its path. A ``str`` is written as it is
    (Markdown, or JSON already rendered); anything else as ``json.dumps(content, indent=indent,
    default=default) + end``. The content is rendered completely before anything is written, and it reaches
    ``path`` only when the staged file is complete on disk: a failure or a kill leaves the previous file."""
    text = content if isinstance(content, str) else json.dumps(content, indent=indent, default=default) + end
    return atomic_write_text(path, text)
