"""The validated parameter object of the model (MODEL.md), shared by every command.

Symbols: σ (``activation``), φ (``teacher``), k, τ (``tau``), p/d, n/d, λ (``lam``),
Δ_f (``noise_f``), Δ_g (``noise_g``) and the alignment ϖ = Vᵀθ₀ ∈ ℝ^k (``alignment``).

The one-step model (ONESTEP.md) adds a first-layer gradient step before the readout: ``step``
(``none``, ``l2`` or ``sobolev``), the normalised rate η̃ (``eta``), the step batch n₀ = α₀·d (``alpha0``),
the step's Sobolev weight τ₁ (``tau_step``; τ̃₁ for shared directions, used as τ₁ = τ̃₁/d) and k₁
(``k_step``), the directions ``step_dirs`` (``fresh`` or ``shared``) and the second layer during the step
``second_layer`` (``const``: a_j = 1/p, ``sign``: a_j = ±1/p). With ``step="none"`` they are all None and
the model is MODEL.md's random-features model.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from .errors import UserError

#: The largest number k of gradient projections (a larger k would only exhaust memory).
MAX_K = 10_000
#: First-layer steps (ONESTEP.md): none (random features), an L2 step, a Sobolev step.
STEPS = ("none", "l2", "sobolev")
#: Directions u_il of a Sobolev step: fresh N(0, I_d) per sample, or the readout's V (shared).
STEP_DIRS = ("fresh", "shared")
#: Second layer during the step: a_j = 1/p (const) or ±1/p with fair independent signs (sign).
SECOND_LAYERS = ("const", "sign")
#: The fields of the step; None unless ``step`` is ``l2`` or ``sobolev``.
STEP_FIELDS = ("eta", "alpha0", "tau_step", "k_step", "step_dirs", "second_layer")
#: Fields of a Sobolev step only (an L2 step has no gradient term).
SOBOLEV_STEP_FIELDS = ("tau_step", "k_step", "step_dirs")
#: Defaults of a step's fields when they are not given (k_step of a shared step defaults to k).
STEP_DEFAULTS: dict[str, Any] = {
    "eta": 1.0,
    "alpha0": 4.0,
    "tau_step": 1.0,
    "k_step": 1,
    "step_dirs": "fresh",
    "second_layer": "const",
}
#: The command-line option of each step field, as :meth:`ModelParams.from_options` names it in its errors.
STEP_OPTIONS = {name: "--" + name.replace("_", "-") for name in STEP_FIELDS}


class ParameterError(UserError):
    """A model parameter is invalid; the message names the parameter, the value and the rule."""


def _finite(name: str, value: Any) -> float:
    if isinstance(value, (list, tuple)) or len(getattr(value, "shape", ())) > 0:
        hint = f"; for many values use solve_grid(params, {name}=values), which returns an xarray.Dataset"
        raise ParameterError(
            f"{name} must be one number, got {len(value)} values (a ModelParams is one point)"
            + (hint * name.isidentifier())
            + "."
        )
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


def parse_tau_step(value: Any, step_dirs: str) -> float:
    """The step weight of ``tau_step`` text or number: τ₁ for fresh directions, τ̃₁ for shared ones.

    Shared directions (the readout's V, norm √d) move every row by O(√d) unless τ₁ = τ̃₁/d, so their
    weight is written with the scaling, ``"T/d"`` (τ̃₁ = T); a bare number is refused there, and ``"T/d"``
    is refused for fresh directions, whose τ₁ is O(1). A number (not text) is taken as given: τ₁ for
    fresh directions, τ̃₁ for shared ones.
    """
    if isinstance(value, bool):
        raise ParameterError(f"tau_step must be a number >= 0, got {value!r}.")
    if isinstance(value, str):
        text = value.strip()
        scaled = text.replace(" ", "").lower().endswith("/d")
        if scaled:
            text = text.replace(" ", "")[:-2]
        if step_dirs == "shared" and not scaled:
            raise ParameterError(
                f"tau_step = {value!r}: a shared-direction step moves every row by O(√d) unless τ₁ = τ̃₁/d; "
                f"write the weight with its scaling, e.g. '{text}/d'."
            )
        if step_dirs != "shared" and scaled:
            raise ParameterError(
                f"tau_step = {value!r}: the 1/d scaling belongs to shared directions (step_dirs='shared'); "
                f"fresh directions take an O(1) weight, e.g. '{text}'."
            )
        value = text
    return _nonnegative("tau_step", value)


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


def check_step_options(options: Mapping[str, Any]) -> bool:
    """Refuse the step options of a command line (:data:`STEP_OPTIONS`, keys of ``options``; None: not given)
    that its ``--step`` does not have (any with ``--step none``, the Sobolev ones with ``--step l2``), naming
    them as the command line does; True when there is a step."""
    given = [option for name, option in STEP_OPTIONS.items() if options.get(name) is not None]
    if options["step"] == "none":
        if given:
            raise ParameterError(
                f"{', '.join(given)} need{'s' if len(given) == 1 else ''} a first-layer step: add --step l2 or "
                "--step sobolev (the default --step none has no step to configure)."
            )
        return False
    if options["step"] == "l2":
        sobolev_only = [STEP_OPTIONS[name] for name in SOBOLEV_STEP_FIELDS if options.get(name) is not None]
        if sobolev_only:
            raise ParameterError(
                f"{', '.join(sobolev_only)} need{'s' if len(sobolev_only) == 1 else ''} --step sobolev: an L2 "
                "step has no gradient term."
            )
    return True


@dataclass(frozen=True)
class ModelParams:
    """One point of the model: activation σ, teacher φ, k, τ, ratios, ridge, noises and ϖ, and the
    first-layer step of the one-step model (ONESTEP.md).

    ``alignment`` defaults to ϖ = (1, …, 1) when omitted (``None``).

    Step fields (module docstring): with ``step="none"`` (default) every one of :data:`STEP_FIELDS` must be
    None (a given one is refused, not ignored); with ``step="l2"`` or ``"sobolev"`` the omitted ones take
    :data:`STEP_DEFAULTS`, and ``tau_step``, ``k_step``, ``step_dirs`` are refused for an L2 step.
    ``tau_step`` is τ₁ for fresh directions and τ̃₁ (τ₁ = τ̃₁/d) for shared ones; as text it follows
    :func:`parse_tau_step` (``"2/d"`` for a shared step). A shared step uses the readout's first k₁ ≤ k
    directions (``k_step`` defaults to k there).
    """

    activation: str = "relu"
    teacher: str = "tanh"
    k: int = 1
    tau: float = 1
    p_over_d: float = 4.0
    n_over_d: float = 1.0
    lam: float = 1e-3
    noise_f: float = 0.0
    noise_g: float = 0.0
    alignment: tuple[float, ...] | None = field(default=None)
    step: str = "none"
    eta: float | None = None
    alpha0: float | None = None
    tau_step: float | None = None
    k_step: int | None = None
    step_dirs: str | None = None
    second_layer: str | None = None

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
        self._check_step()

    def _check_step(self) -> None:
        """Validate (and complete with :data:`STEP_DEFAULTS`) the step fields."""
        set_ = lambda name, v: object.__setattr__(self, name, v)  # noqa: E731
        step = self.step
        if not isinstance(step, str) or step.strip().lower() not in STEPS:
            raise ParameterError(f"step must be one of {', '.join(STEPS)}, got {step!r}.")
        step = step.strip().lower()
        set_("step", step)
        given = [name for name in STEP_FIELDS if getattr(self, name) is not None]
        if step == "none":
            if given:
                verb = "applies" if len(given) == 1 else "apply"
                raise ParameterError(
                    f"{', '.join(given)} {verb} only to a first-layer step, but step = 'none'; "
                    "set step to 'l2' or 'sobolev', or drop them."
                )
            return
        if step == "l2":
            extra = [name for name in SOBOLEV_STEP_FIELDS if name in given]
            if extra:
                verb = "applies" if len(extra) == 1 else "apply"
                raise ParameterError(
                    f"{', '.join(extra)} {verb} only to a Sobolev step (step = 'sobolev'); an L2 step has no "
                    "gradient term."
                )
        for name in ("step_dirs", "second_layer"):
            allowed = STEP_DIRS if name == "step_dirs" else SECOND_LAYERS
            v = getattr(self, name)
            if v is None:
                continue
            if not isinstance(v, str) or v.strip().lower() not in allowed:
                raise ParameterError(f"{name} must be one of {', '.join(allowed)}, got {v!r}.")
            set_(name, v.strip().lower())
        for name in ("eta", "alpha0"):
            if isinstance(getattr(self, name), bool):
                raise ParameterError(f"{name} must be a number, got {getattr(self, name)!r}.")
        eta = _nonnegative("eta", STEP_DEFAULTS["eta"] if self.eta is None else self.eta)
        alpha0 = _positive("alpha0", STEP_DEFAULTS["alpha0"] if self.alpha0 is None else self.alpha0)
        set_("eta", eta)
        set_("alpha0", alpha0)
        set_("second_layer", self.second_layer or STEP_DEFAULTS["second_layer"])
        if step == "l2":
            return
        dirs = self.step_dirs or STEP_DEFAULTS["step_dirs"]
        set_("step_dirs", dirs)
        tau_step = STEP_DEFAULTS["tau_step"] if self.tau_step is None else parse_tau_step(self.tau_step, dirs)
        set_("tau_step", int(tau_step) if float(tau_step).is_integer() else float(tau_step))
        k_step: Any = self.k_step
        if k_step is None:
            k_step = self.k if dirs == "shared" else STEP_DEFAULTS["k_step"]
        if (
            isinstance(k_step, bool)
            or not isinstance(k_step, (int, float))
            or (isinstance(k_step, float) and not k_step.is_integer())
            or not 0 <= k_step <= MAX_K
        ):
            raise ParameterError(f"k_step must be an integer from 0 to {MAX_K}, got {self.k_step!r}.")
        k_step = int(k_step)
        if dirs == "shared":
            if self.k < 1:
                raise ParameterError(
                    "step_dirs = 'shared' steps along the readout's directions V, but k = 0; "
                    "use k >= 1 or step_dirs = 'fresh'."
                )
            if k_step > self.k:
                raise ParameterError(
                    f"k_step = {k_step}: a shared-direction step uses the readout's first k_step of its k = "
                    f"{self.k} directions, so k_step must be <= k."
                )
        set_("k_step", k_step)

    @property
    def has_step(self) -> bool:
        """True for the one-step model (step ``l2`` or ``sobolev``), False for random features."""
        return self.step != "none"

    def step_weight(self, d: int) -> float:
        """τ₁ at input dimension d: ``tau_step`` for fresh directions, τ̃₁/d for shared ones, 0 without a
        Sobolev step."""
        if self.step != "sobolev":
            return 0.0
        tau1 = float(self.tau_step or 0.0)
        return tau1 / d if self.step_dirs == "shared" else tau1

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
        if self.has_step:
            layer = "a = 1/p" if self.second_layer == "const" else "a = ±1/p"
            detail = f"η̃ = {self.eta:g}, α₀ = {self.alpha0:g}"
            if self.step == "sobolev":
                weight = (
                    f"τ̃₁ = {self.tau_step:g} (τ₁ = τ̃₁/d)" if self.step_dirs == "shared" else f"τ₁ = {self.tau_step:g}"
                )
                detail += f", {weight}, k₁ = {self.k_step}, {self.step_dirs} directions"
            parts.append(("step", f"{self.step} step ({detail}, {layer})"))
        return ", ".join(text for name, text in parts if name not in skip)

    def with_(self, **changes: Any) -> ModelParams:
        """A validated copy with some fields changed (``step="none"`` clears the step fields not given,
        ``step="l2"`` the Sobolev step's)."""
        cleared = {"none": STEP_FIELDS, "l2": SOBOLEV_STEP_FIELDS}.get(changes.get("step", ""), ())
        for name in cleared:
            changes.setdefault(name, None)
        if "k" in changes and "alignment" not in changes and changes["k"] != self.k:
            changes["alignment"] = None
        return replace(self, **changes)

    def grid_mapping(self) -> dict[str, Any]:
        """The point as the parameter mapping of the grid solvers: every field of :meth:`as_dict` but k and τ."""
        mapping = {key: value for key, value in self.as_dict().items() if key not in ("k", "tau")}
        return {**mapping, "alignment": self.alignment}

    def as_dict(self) -> dict[str, Any]:
        """Every field by name; the step fields only for a point with a step, so a random-features point
        has the same dictionary (and campaign key) as before the one-step model existed."""
        out = {
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
        if self.has_step:
            out["step"] = self.step
            out.update({name: getattr(self, name) for name in STEP_FIELDS})
        return out

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> ModelParams:
        """The point of a command line: ``options`` maps every model field to its option text (``--k 2`` as
        ``"k": "2"``), and the step fields too where the command has ``--step`` (a step option given with
        ``--step none`` is refused by :func:`check_step_options`, not ignored; one not given is None and takes
        :data:`STEP_DEFAULTS`). The texts of k, τ, η̃, α₀ and k₁ are read here, the others by the fields'
        own validation."""
        from .values import integer, real

        alignment = None if options["alignment"] is None else parse_alignment(options["alignment"])
        k, tau = integer("k", options["k"]), real("tau", options["tau"])
        step: dict[str, Any] = {}
        if "step" in options and check_step_options(options):
            step = {name: options[name] for name in ("step", "step_dirs", "second_layer", "tau_step")}
            for name in ("eta", "alpha0"):
                step[name] = None if options[name] is None else real(name, options[name])
            step["k_step"] = None if options["k_step"] is None else integer("k_step", options["k_step"])
        fields = ("activation", "teacher", "p_over_d", "n_over_d", "lam", "noise_f", "noise_g")
        return cls(k=k, tau=tau, alignment=alignment, **{name: options[name] for name in fields}, **step)
