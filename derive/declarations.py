"""The random matrices of an expression, declared as text: ``--shape NAME=ROWS,COLS`` (Gaussian), ``--symmetric
NAME`` (Wigner), ``--diag NAME[,NAME]=DIM[@LAW]`` (diagonal, with their law) and ``--param NAME=VALUE`` (real or
complex values of scalars and dimension ratios), as ``pencil`` and ``spectrum`` take them.

:func:`declarations` builds the matrices, dimensions and laws (SymPy); :func:`parse_params` and
:func:`declaration_key` import no SymPy, so a command whose derived system is cached never loads it.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from .errors import UserError


def parse_params(items: Sequence[str]) -> dict[str, float | complex]:
    """``--param NAME=VALUE`` items → values (real, or complex such as ``1+0.01j``); imports no SymPy."""
    from .syntax import parse_value

    out: dict[str, float | complex] = {}
    for item in items:
        m = re.fullmatch(r"\s*([A-Za-z_][A-Za-z_0-9]*)\s*=\s*(\S+)\s*", item)
        if not m:
            raise UserError(f"bad parameter {item!r}; write NAME=VALUE, e.g. lam=0.5 or z=1+0.01j.")
        out[m.group(1)] = parse_value(m.group(1), m.group(2))
    return out


def check_dimensions(dims: Iterable[str], values: Mapping[str, float | complex]) -> None:
    """Refuse a dimension ratio among ``values`` that is complex or not > 0."""
    for name in dims:
        v = values.get(name)
        if v is not None and (isinstance(v, complex) or v <= 0):
            raise UserError(f"dimension {name} must be a real number > 0, got {value_text(v)}.")


def value_text(v: float | complex) -> str:
    """A parameter value as the messages write it."""
    return f"{v:g}" if not isinstance(v, complex) else str(v)


def declarations(
    shape: Sequence[str], symmetric: Sequence[str], diag: Sequence[str], param: Sequence[str]
) -> tuple[dict[str, Any], dict[str, Any], list[Any], dict[str, bool], dict[str, float | complex]]:
    """Matrices, dimensions, diagonal laws, Gaussian names (→ symmetric?) and parameter values of the
    declarations --shape, --symmetric, --diag and --param."""
    from .laws import declare_diagonals
    from .matrix_syntax import declare_shapes

    mats, dims = declare_shapes(shape)
    diag_mats, laws = declare_diagonals(diag, dims, taken=mats)
    for name in symmetric:
        if name not in mats:
            raise UserError(f"--symmetric {name}: declare {name} with --shape first.")
        if mats[name].rows != mats[name].cols:
            raise UserError(f"--symmetric {name}: {name} must be square.")
    gaussians = {n: n in symmetric for n in mats}
    mats.update(diag_mats)
    values = parse_params(param)
    check_dimensions(dims, values)
    return mats, dims, laws, gaussians, values


def declaration_key(
    expr: str, shape: Sequence[str], symmetric: Sequence[str], diag: Sequence[str], param: Sequence[str]
) -> dict[str, Any]:
    """What a derived expression depends on, as plain data (a cache key): the expression text, the
    declarations, the parameter names and the sha256 of every data file a law reads."""
    files = {}
    for spec in diag:
        source = spec.split("@", 1)[1].strip() if "@" in spec else ""
        if source and Path(source).is_file():
            files[source] = hashlib.sha256(Path(source).read_bytes()).hexdigest()
    return {
        "expr": expr,
        "shape": list(shape),
        "symmetric": list(symmetric),
        "diag": list(diag),
        "parameters": sorted(parse_params(param)),
        "files": files,
    }
