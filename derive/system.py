"""The value type that flows derive → codegen → numeric: a fixed-point system with its outputs.

A :class:`System` is the set of equations u − G(u; θ) = 0 in the unknowns u and the parameters θ,
plus named outputs f(u, θ). Both may refer to *definitions*: an ordered list of intermediate
quantities d_i = D_i(u, θ, d_1, …, d_{i−1}) that keep the expressions small and readable (each is
evaluated once, in order, the same way common-subexpression elimination would). :meth:`System.explicit`
substitutes them away and gives expressions in u and θ only.

A System also carries what its consumers need to know without counting or sniffing names: its
``branch`` and ``meta`` (for the saddle systems: k, whether gradient rows are trained, the training
rows per sample, and the meaning of every parameter). :meth:`System.to_dict` and
:meth:`System.from_dict` write and read it as plain JSON data in which every expression is a tree of
whitelisted SymPy node names (:mod:`.exprtree`): loading it executes no code.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import sympy as sp

from . import exprtree

#: Changes whenever the generated systems change; part of every fingerprint.
GENERATOR_VERSION = "sobolev-rf-saddle-2"


@dataclass(frozen=True)
class System:
    """Fixed-point equations ``residuals = u − G(u) = 0`` in ``unknowns`` with ``outputs``.

    ``definitions`` maps a name to its expression in the unknowns, the parameters and earlier
    definitions (in insertion order); residuals and outputs refer to a definition through
    ``sympy.Symbol(name)``. ``latex_names`` maps a symbol name to its LaTeX form (for ``to_latex``).
    """

    name: str
    unknowns: tuple[sp.Symbol, ...]
    parameters: tuple[sp.Symbol, ...]
    residuals: tuple[sp.Expr, ...]
    outputs: Mapping[str, sp.Expr] = field(hash=False)
    definitions: Mapping[str, sp.Expr] = field(hash=False)
    latex_names: Mapping[str, str] = field(default_factory=dict, hash=False)
    branch: str = "ridge"
    meta: Mapping[str, Any] = field(default_factory=dict, hash=False)

    @property
    def parameter_names(self) -> tuple[str, ...]:
        return tuple(str(q) for q in self.parameters)

    @property
    def unknown_names(self) -> tuple[str, ...]:
        return tuple(str(u) for u in self.unknowns)

    def definition_pairs(self, exprs: Iterable[sp.Expr] | None = None) -> list[tuple[sp.Symbol, sp.Expr]]:
        """(symbol, expression) of the definitions, in order; with ``exprs``, only those they need."""
        pairs = [(sp.Symbol(n), e) for n, e in self.definitions.items()]
        if exprs is None:
            return pairs
        needed = set().union(*(e.free_symbols for e in exprs))
        kept = []
        for sym, e in reversed(pairs):
            if sym in needed:
                kept.append((sym, e))
                needed |= e.free_symbols
        return kept[::-1]

    def explicit(self, expr: sp.Expr) -> sp.Expr:
        """``expr`` with every definition substituted: an expression in unknowns and parameters.

        The result shares subexpressions (a DAG); walked as a tree it grows quickly with k, so prefer
        the definitions for printing and evaluation.
        """
        explicit: dict[sp.Symbol, sp.Expr] = {}
        for sym, e in self.definition_pairs([expr]):
            explicit[sym] = e.xreplace(explicit)  # earlier definitions are already explicit (shared)
        return expr.xreplace(explicit)

    @cached_property
    def jacobian(self) -> sp.Matrix:
        """∂ residuals / ∂ unknowns (explicit in unknowns and parameters)."""
        return sp.Matrix([self.explicit(r) for r in self.residuals]).jacobian(sp.Matrix(self.unknowns))

    def to_text(self) -> str:
        """Plain-text listing: symbols, definitions, equations and outputs."""
        lines = [
            f"system {self.name}",
            "unknowns:   " + ", ".join(map(str, self.unknowns)),
            "parameters: " + ", ".join(map(str, self.parameters)),
            "definitions:",
        ]
        lines += [f"  {n} = {sp.sstr(e)}" for n, e in self.definitions.items()]
        lines.append("fixed point (each residual = 0):")
        lines += [f"  0 = {sp.sstr(r)}" for r in self.residuals]
        lines.append("outputs:")
        lines += [f"  {n} = {sp.sstr(e)}" for n, e in self.outputs.items()]
        return "\n".join(lines)

    def to_latex(self) -> str:
        """A LaTeX ``align*`` environment with definitions, equations and outputs."""
        names = {sp.Symbol(n): t for n, t in self.latex_names.items()}

        def tex(e: sp.Expr) -> str:
            return sp.latex(e, symbol_names=names)

        rows = [rf"{tex(sp.Symbol(n))} &= {tex(e)}" for n, e in self.definitions.items()]
        rows += [rf"0 &= {tex(r)}" for r in self.residuals]
        rows += [r"\mathrm{%s} &= %s" % (n.replace("_", r"\_"), tex(e)) for n, e in self.outputs.items()]
        return "\\begin{align*}\n" + " \\\\\n".join(rows) + "\n\\end{align*}"

    def _repr_latex_(self) -> str:
        """A notebook's display: :meth:`to_latex` (the text of ``sobolev-rf derive --format latex``)."""
        return self.to_latex()

    def to_json(self) -> str:
        """JSON with every expression as a SymPy string (``sympy.sympify`` reads it back)."""
        data = {
            "name": self.name,
            "generator": GENERATOR_VERSION,
            "fingerprint": self.fingerprint(),
            "unknowns": [str(u) for u in self.unknowns],
            "parameters": [str(p) for p in self.parameters],
            "definitions": {n: sp.sstr(e) for n, e in self.definitions.items()},
            "residuals": [sp.sstr(r) for r in self.residuals],
            "outputs": {n: sp.sstr(e) for n, e in self.outputs.items()},
            "branch": self.branch,
            "meta": dict(self.meta),
        }
        return json.dumps(data, indent=2)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON data (expressions as :mod:`.exprtree` trees) that :meth:`from_dict` reads back."""
        enc = exprtree.encode
        return {
            "format": exprtree.FORMAT,
            "name": self.name,
            "fingerprint": self.fingerprint(),
            "unknowns": [enc(u) for u in self.unknowns],
            "parameters": [enc(q) for q in self.parameters],
            "residuals": [enc(r) for r in self.residuals],
            "outputs": [[n, enc(e)] for n, e in self.outputs.items()],
            "definitions": [[n, enc(e)] for n, e in self.definitions.items()],
            "latex_names": dict(self.latex_names),
            "branch": self.branch,
            "meta": dict(self.meta),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> System:
        """The System of :meth:`to_dict`; ValueError if the data do not rebuild the recorded fingerprint."""
        if data.get("format") != exprtree.FORMAT:
            raise ValueError(f"not a {exprtree.FORMAT} system")
        dec = exprtree.decode
        system = cls(
            name=data["name"],
            unknowns=tuple(dec(u) for u in data["unknowns"]),
            parameters=tuple(dec(q) for q in data["parameters"]),
            residuals=tuple(dec(r) for r in data["residuals"]),
            outputs={n: dec(e) for n, e in data["outputs"]},
            definitions={n: dec(e) for n, e in data["definitions"]},
            latex_names=dict(data["latex_names"]),
            branch=data["branch"],
            meta=dict(data["meta"]),
        )
        if system.fingerprint() != data["fingerprint"]:
            raise ValueError("the stored system does not match its fingerprint")
        return system

    def fingerprint(self) -> str:
        """sha256 over the generator version and the srepr of every part, in a fixed order."""
        h = hashlib.sha256(GENERATOR_VERSION.encode())
        parts = [self.name, *map(sp.srepr, self.unknowns), "|", *map(sp.srepr, self.parameters), "|"]
        parts += [f"{n}:{sp.srepr(e)}" for n, e in self.definitions.items()]
        parts += ["|", *map(sp.srepr, self.residuals), "|"]
        parts += [f"{n}:{sp.srepr(e)}" for n, e in self.outputs.items()]
        parts += ["|", *(f"{n}:{t}" for n, t in sorted(self.latex_names.items()))]
        parts += ["|", self.branch, json.dumps(dict(self.meta), sort_keys=True)]
        for part in parts:
            h.update(part.encode())
            h.update(b"\0")
        return h.hexdigest()
