"""The validated parameter object of the model (MODEL.md), shared by every command.

Symbols: σ (``activation``), φ (``teacher``), k, τ (``tau``), p/d, n/d, λ (``lam``),
Δ_f (``noise_f``), Δ_g (``noise_g``) and the alignment ϖ = Vᵀθ₀ ∈ ℝ^k (``alignment``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Any

from .errors import UserError

#: The largest number k of gradient projections (a larger k would only exhaust memory).
MAX_K = 10_000


class ParameterError(UserError):
    """A model parameter is invalid; the message names the parameter, the value and the rule."""


def _finite(name: str, value: Any) -> float:
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise ParameterError(f"{name} must be a real number, got {value!r}.") from None
    if not math.isfinite(x):
        raise ParameterError(f"{name} must be finite, got {value!r}.")
    return x


def _nonnegative(name: str, value: Any) -> float:
    x = _finite(name, value)
    if x < 0:
        raise ParameterError(f"{name} must be >= 0, got {value!r}.")
    return x


def _positive(name: str, value: Any) -> float:
    x = _finite(name, value)
    if x <= 0:
        raise ParameterError(f"{name} must be > 0, got {value!r}.")
    return x


def training_rows(k: int, tau: float) -> int:
    """Training rows per sample: 1 + k for Sobolev training (any τ > 0, k ≥ 1), else 1. The λ → 0⁺
    interpolation threshold is p = training_rows·n."""
    return 1 + k if tau > 0 and k >= 1 else 1


def parse_alignment(text: str) -> tuple[float, ...]:
    """Parse ``"a1,a2,...,ak"`` (empty text: k = 0) into a tuple of floats."""
    text = text.strip()
    if not text:
        return ()
    out = []
    for item in text.split(","):
        out.append(_finite("alignment entry", item.strip()))
    return tuple(out)


@dataclass(frozen=True)
class ModelParams:
    """One point of the model: activation σ, teacher φ, k, τ, ratios, ridge, noises and ϖ.

    ``alignment`` defaults to ϖ = (1, …, 1) when omitted (``None``).
    """

    activation: str = "relu"
    teacher: str = "tanh"
    k: int = 1
    tau: float = 1
    p_over_d: float = 2.0
    n_over_d: float = 1.0
    lam: float = 1e-3
    noise_f: float = 0.0
    noise_g: float = 0.0
    alignment: tuple[float, ...] | None = field(default=None)

    def __post_init__(self) -> None:
        set_ = lambda name, v: object.__setattr__(self, name, v)  # noqa: E731
        for name in ("activation", "teacher"):
            v = getattr(self, name)
            if not isinstance(v, str) or not v.strip():
                raise ParameterError(f"{name} must be a non-empty expression in x or a known name, got {v!r}.")
            set_(name, v.strip())
        k: Any = self.k
        if isinstance(k, bool) or not isinstance(k, (int, float)) or (isinstance(k, float) and not k.is_integer()):
            raise ParameterError(f"k must be a non-negative integer, got {k!r}.")
        if not 0 <= k <= MAX_K:
            raise ParameterError(f"k must be an integer from 0 to {MAX_K}, got {self.k!r}.")
        k = int(k)
        set_("k", k)
        if isinstance(self.tau, bool):
            raise ParameterError(f"tau must be a number >= 0 (0: L2 training, 1: Sobolev training), got {self.tau!r}.")
        tau = _nonnegative("tau", self.tau)
        set_("tau", int(tau) if tau.is_integer() else tau)
        set_("p_over_d", _positive("p_over_d", self.p_over_d))
        set_("n_over_d", _positive("n_over_d", self.n_over_d))
        set_("lam", _nonnegative("lam", self.lam))
        set_("noise_f", _nonnegative("noise_f", self.noise_f))
        set_("noise_g", _nonnegative("noise_g", self.noise_g))
        if self.alignment is None:
            al: tuple[float, ...] = (1.0,) * k
        else:
            raw: Iterable[Any] = self.alignment
            if isinstance(raw, str):
                raw = parse_alignment(raw)
            al = tuple(_finite("alignment entry", a) for a in raw)
            if len(al) != k:
                raise ParameterError(f"alignment must have k = {k} entries, got {len(al)}; pass --alignment a1,...,ak.")
        set_("alignment", al)

    @property
    def training_rows(self) -> int:
        """Training rows per sample (the interpolation threshold is p = training_rows·n)."""
        return training_rows(self.k, self.tau)

    def describe(self, omit: Iterable[str] = ()) -> str:
        """One line naming the point: σ, φ, k, τ, p/d, n/d, λ, Δ_f, Δ_g, ϖ, less the fields in ``omit``
        (field names, with ``noise`` for both noises and ``ratios`` for p/d and n/d). ϖ is listed for
        k ≤ 8 and summarised by its mean square above."""
        skip = set(omit)
        skip |= {"noise_f", "noise_g"} if "noise" in skip else set()
        skip |= {"p_over_d", "n_over_d"} if "ratios" in skip else set()
        parts = [
            ("activation", f"σ = {self.activation}"),
            ("teacher", f"φ = {self.teacher}"),
            ("k", f"k = {self.k}"),
            ("tau", f"τ = {self.tau:g}"),
            ("p_over_d", f"p/d = {self.p_over_d:g}"),
            ("n_over_d", f"n/d = {self.n_over_d:g}"),
            ("lam", f"λ = {self.lam:g}"),
            ("noise_f", f"Δ_f = {self.noise_f:g}"),
            ("noise_g", f"Δ_g = {self.noise_g:g}"),
        ]
        al = self.alignment or ()
        if al:
            text = (
                ", ".join(f"{a:g}" for a in al)
                if len(al) <= 8
                else f"{len(al)} entries, ‖ϖ‖²/k = {sum(a * a for a in al) / len(al):g}"
            )
            parts.append(("alignment", f"ϖ = ({text})"))
        return ", ".join(text for name, text in parts if name not in skip)

    def with_(self, **changes: Any) -> ModelParams:
        """A validated copy with some fields changed."""
        if "k" in changes and "alignment" not in changes and changes["k"] != self.k:
            changes["alignment"] = None
        return replace(self, **changes)

    def as_dict(self) -> dict[str, Any]:
        return {
            "activation": self.activation,
            "teacher": self.teacher,
            "k": self.k,
            "tau": self.tau,
            "p_over_d": self.p_over_d,
            "n_over_d": self.n_over_d,
            "lam": self.lam,
            "noise_f": self.noise_f,
            "noise_g": self.noise_g,
            "alignment": list(self.alignment or ()),
        }
