"""Hermite coefficients of an activation as floats, cached on disk so that a warm start needs no SymPy.

The coefficients (κ₀, κ₁, κ_*, κ₀′, κ₁′, κ_*′, c) of MODEL.md are computed by
:func:`sobolev_rf.derive.hermite.hermite_coefficients` at :data:`DIGITS` digits and stored in the
code cache (atomic writes, sha256-checked ``.ready`` markers, a record that does not read is computed
again; see :mod:`sobolev_rf.codegen.cache`)
under the canonical expression, the digits and the derive package's source hash. The text a user
typed is an alias: a second record, keyed by the text, holds the canonical form and a copy of the
values, so ``relu`` and ``Max(0, x)`` are computed once and a warm lookup reads one JSON file.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import Any

from ...codegen import cache
from ...codegen.jit import package_source_hash

#: Significant digits of the cached values (more than double precision needs).
DIGITS = 20
#: The order of the values (the parameter order of the derived systems: κ or μ).
NAMES = ("kappa0", "kappa1", "kappa_star", "kappa0_prime", "kappa1_prime", "kappa_star_prime", "cross")


def _load(path: Path) -> dict[str, Any]:
    """A record, checked: every value present and a number (anything else raises, and it is rebuilt)."""
    record = json.loads(path.read_text())
    for name in NAMES:
        float(record["values"][name])
    return record


def _record(kind: str, text: str, compute: Callable[[], str]) -> dict[str, Any]:
    key = cache.artifact_key(package_source_hash("sobolev_rf.derive"), f"{kind}\0{text}\0{DIGITS}", "hermite")
    what = f"the Hermite coefficients of {text!r}"
    return cache.load_artifact(cache.cache_dir(), key, "json", "json", compute, _load, what=what)


@lru_cache(maxsize=64)
def coefficients(text: str) -> tuple[float, ...]:
    """(κ₀, κ₁, κ_*, κ₀′, κ₁′, κ_*′, c) of an activation text, as floats (UserError for bad text)."""

    def by_text() -> str:
        from ...derive.activations import describe, parse_activation
        from ...derive.hermite import hermite_coefficients

        expr = parse_activation(text)
        canonical = describe(expr)

        def by_expression() -> str:
            import mpmath

            values = hermite_coefficients(expr, digits=DIGITS).coefficients()
            return json.dumps(
                {"canonical": canonical, "values": {n: mpmath.nstr(values[n].value, DIGITS) for n in NAMES}}
            )

        return json.dumps({"text": text, **_record("canonical", canonical, by_expression)})

    record = _record("text", text, by_text)
    return tuple(float(record["values"][n]) for n in NAMES)
