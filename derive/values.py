"""Numbers, integers, lists and ranges written as text: the one parser of each, shared by
:meth:`~.params.ModelParams.from_options`, the campaign grid and every command.

Each parser names the option it reads in its error (``--k must be an integer >= 0, got 'x'.``), so that bad
input is refused in one line that says what is allowed. Ranges are sweep's syntax: ``X``, ``start:stop:num``
(linear) or ``log:start:stop:num`` (geometric). Nothing here evaluates user text.
"""

from __future__ import annotations

import math

import numpy as np

from .errors import UserError


def integer(option: str, text: str, minimum: int | None = None, maximum: int | None = None) -> int:
    """An integer option (``1e3`` too) in [``minimum``, ``maximum``] (either bound may be absent)."""
    rule = (
        ""
        if minimum is None and maximum is None
        else f" >= {minimum}"
        if maximum is None
        else f" <= {maximum}"
        if minimum is None
        else f" from {minimum} to {maximum}"
    )
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if (
        not math.isfinite(value)
        or not value.is_integer()
        or (minimum is not None and value < minimum)
        or (maximum is not None and value > maximum)
    ):
        raise UserError(f"{option} must be an integer{rule}, got {text!r}.")
    return int(value)


def real(option: str, text: str) -> float:
    """A real number from the command line (validated further by :class:`~.params.ModelParams`)."""
    try:
        return float(text)
    except ValueError:
        raise UserError(f"{option} must be a real number, got {text!r}.") from None


def integers(option: str, text: str, minimum: int) -> tuple[int, ...]:
    """``"100,200,400"`` → (100, 200, 400): distinct integers >= ``minimum``, sorted."""
    try:
        values = [integer(option, item.strip(), minimum) for item in str(text).split(",")]
    except UserError:
        raise UserError(f"{option} must be comma-separated integers >= {minimum}, got {text!r}.") from None
    if len(set(values)) != len(values):
        raise UserError(f"{option} must not repeat a value, got {text!r}.")
    return tuple(sorted(values))


def integer_list(option: str, text: str, minimum: int) -> list[int]:
    """``"1,2,2"`` → [1, 2, 2]: comma-separated integers >= ``minimum``, in their order (repeats kept)."""
    items = split_list(text)
    if not all(items):
        raise UserError(f"{option} must be comma-separated integers >= {minimum}, got {text!r}.")
    return [integer(option, item, minimum) for item in items]


def split_list(text: str) -> list[str]:
    """Split at the commas outside parentheses: ``"relu,Max(0, x)"`` → ["relu", "Max(0, x)"]."""
    items, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        elif ch == "," and depth == 0:
            items.append(text[start:i])
            start = i + 1
    items.append(text[start:])
    return [item.strip() for item in items]


def positive_number(option: str, text: str, maximum: float = math.inf) -> float:
    """A finite number in (0, ``maximum``]."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or not 0 < value <= maximum:
        rule = "> 0" if maximum == math.inf else f"in (0, {maximum:g}]"
        raise UserError(f"{option} must be a finite number {rule}, got {text!r}.")
    return value


def nonnegative_numbers(option: str, text: str) -> list[float]:
    """``"0,0.1,0.5"`` → [0.0, 0.1, 0.5]: comma-separated finite numbers >= 0 (UserError naming ``option``)."""
    values = []
    for item in (t.strip() for t in str(text).split(",")):
        try:
            value = float(item)
        except ValueError:
            raise UserError(f"{option} must be comma-separated numbers >= 0, got {text!r}.") from None
        if not math.isfinite(value) or value < 0:
            raise UserError(f"{option} must be comma-separated finite numbers >= 0, got {text!r}.")
        values.append(value)
    return values


#: The most values one start:stop:num range may ask for (a larger one would only exhaust memory).
MAX_RANGE_VALUES = 4_000_000


def parse_range(name: str, text: str) -> np.ndarray:
    """``X`` (one value), ``start:stop:num`` (linear) or ``log:start:stop:num`` (geometric, start, stop > 0)."""
    parts = text.strip().split(":")
    log = parts[0].strip().lower() == "log"
    if log:
        parts = parts[1:]
    flag = f"--{name.replace('_', '-')}"
    try:
        if len(parts) == 1 and not log:
            start, stop, num = float(parts[0]), float(parts[0]), 1
        elif len(parts) == 3:
            start, stop, num = float(parts[0]), float(parts[1]), int(parts[2])
        else:
            raise ValueError
    except ValueError:
        num = 0
    if num < 1:
        raise UserError(f"{flag} must be X, start:stop:num or log:start:stop:num, got {text!r}.")
    if num > MAX_RANGE_VALUES:
        raise UserError(f"{flag} asks for {num} values, more than {MAX_RANGE_VALUES}; use fewer.")
    if log and not (start > 0 and stop > 0):
        raise UserError(f"{flag}: log ranges need start, stop > 0, got {text!r}.")
    if not (math.isfinite(start) and math.isfinite(stop)):
        raise UserError(f"{flag} must be finite, got {text!r}.")
    values = np.geomspace(start, stop, num) if log else np.linspace(start, stop, num)
    if not np.all(np.isfinite(values)):
        raise UserError(f"{flag} must be finite, got {text!r}.")
    return values


def range_list(name: str, text: str) -> list[float]:
    """Comma-separated items of sweep's range syntax, concatenated."""
    values: list[float] = []
    for item in split_list(text):
        values.extend(float(v) for v in parse_range(name, item))
    return values
