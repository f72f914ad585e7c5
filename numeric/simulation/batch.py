"""The simulation batch of every study: many model points simulated one after the other under one progress bar.

A study lists what it wants simulated as :class:`SimJob` s (a tag of its own, the model point, d, the seeds and
any further :func:`~sobolev_rf.numeric.simulation.exact.simulate` options) and gets one :class:`SimPoint` per job,
in order: the realised sizes p, n and the mean and standard error over seeds of the quantities it asked for.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ...derive.params import ModelParams
from ..progress import Progress
from ..quantities import ERRORS
from .exact import simulate


@dataclass(frozen=True)
class SimJob:
    """One model point to simulate: ``tag`` is the study's name for it (a τ, a (kind, Δ, λ), a draw, ...)."""

    tag: Any
    params: ModelParams
    d: int
    seeds: int | tuple[int, ...]
    options: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class SimPoint:
    """One simulated model point: its job's tag and parameters, the realised sizes, mean and SE over seeds."""

    tag: Any
    params: ModelParams
    d: int
    p: int
    n: int
    mean: dict[str, Any]
    se: dict[str, Any]

    @property
    def p_over_d(self) -> float:
        """The realised p/d (p = round(p/d·d))."""
        return self.p / self.d

    @property
    def n_over_d(self) -> float:
        """The realised n/d (n = round(n/d·d))."""
        return self.n / self.d


def _value(value: Any) -> Any:
    return float(value) if np.ndim(value) == 0 else np.asarray(value, dtype=float)


def simulate_batch(jobs: Sequence[SimJob], keys: Sequence[str] = ERRORS, label: str | None = None) -> list[SimPoint]:
    """Simulate every job (one progress bar, labelled ``simulation d=<d>`` unless ``label`` is given)."""
    if not jobs:
        return []
    out = []
    ds = sorted({job.d for job in jobs})
    with Progress(len(jobs), label or f"simulation d={','.join(map(str, ds))}") as bar:
        for job in jobs:
            result = simulate(job.params, job.d, seeds=job.seeds, **job.options)
            out.append(
                SimPoint(
                    job.tag,
                    job.params,
                    job.d,
                    result.p,
                    result.n,
                    {key: _value(result.mean[key]) for key in keys},
                    {key: _value(result.se[key]) for key in keys},
                )
            )
            bar.update()
    return out
