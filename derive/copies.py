"""Sums of k exchangeable copies in a pencil (``sum(D, k, X)``, :class:`~sobolev_rf.derive.pencil.CopySum`):
the check that the copies reduce to one representative, and the entries of G for k copies from those of one.

The pencil realises one copy; its blocks get sign −1 and the rest +1. When D stands only between a copy and
the rest, ζ_l → −ζ_l is the similarity by these signs, so every trace between a copy and the rest, or between
two copies, vanishes and the copies enter through ρ = Σ_l ζ_l² ~ χ²_k alone: one derived system, with k as a
parameter, serves every k.
"""

from __future__ import annotations

from collections.abc import Mapping

import sympy as sp

from .errors import UserError
from .laws import DiagonalLaw, zeta_symbol
from .pencil import Pencil


def copy_family(
    pencil: Pencil, diag_law: Mapping[str, DiagonalLaw], zeta_value: Mapping[str, sp.Expr]
) -> tuple[sp.Symbol, sp.Expr] | None:
    """(ζ_D, k) of the pencil's sum of k copies of a normal diagonal D (``diag_law``: the declared laws,
    ``zeta_value``: each diagonal's value in the coordinates ζ), checked to have the structure under which
    the copies reduce to one representative (None when the pencil has no copies).

    With shared blocks of sign +1 and copy blocks of sign −1, every entry must be even (no D) between blocks
    of equal sign and odd (a multiple of D alone) between a shared and a copy block: then flipping ζ_l → −ζ_l
    is the similarity by these signs, so every trace between a copy and the shared blocks, or between two
    copies, vanishes, and the copies meet the shared blocks only through D, i.e. through ζ_l ζ_lᵀ.
    """
    if pencil.family is None:
        return None
    name, count = pencil.family
    law = diag_law.get(name)
    if law is None or law.kind != "normal":
        raise UserError(f"the copies of sum({name}, ...) need {name} declared as a normal diagonal ({name}=DIM).")
    zeta = zeta_symbol(name)
    for other, value in zeta_value.items():
        if other != name and zeta in sp.sympify(value).free_symbols:
            raise UserError(f"{other} is a function of {name}, whose copies are summed; write the copies out.")
    sign = {i: -1 if i in pencil.copies else 1 for i in range(pencil.size)}

    def refuse(why: str) -> UserError:
        return UserError(
            f"the copies of sum({name}, {sp.sstr(count)}, ...) cannot be reduced to one ({why}); "
            f"write them out ({name}1, {name}2, ...) with one --diag each."
        )

    for (i, j), entry in pencil.entries.items():
        has_member = any(atom is not None and atom[0] == name for atom in entry)
        if has_member and len(entry) > 1:
            raise refuse(f"{name} is added to another term in one block")
        if has_member and sign[i] == sign[j]:
            raise refuse(f"{name} must stand between the copy and the rest of the expression, as in {name}*X*{name}")
        if not has_member and sign[i] != sign[j]:
            raise refuse(f"a copy meets the rest of the expression other than through {name}")
    for o in pencil.outputs:
        if any(sign[i] < 0 for i in (*o.u, *o.v)):
            raise refuse("the output lies inside the copy")
    return zeta, count


def _even_in(expr: sp.Expr, zeta: sp.Symbol, rho: sp.Symbol) -> sp.Expr:
    """expr(ζ), a polynomial in ζ with even powers only, as a polynomial in ρ = ζ²."""
    if zeta not in expr.free_symbols:
        return expr
    poly = sp.Poly(expr, zeta)
    if any(e % 2 for (e,), _ in poly.terms()):
        raise UserError("internal: an entry of the copies' resolvent is not even in their diagonal.")
    return sp.Add(*[c * rho ** (e // 2) for (e,), c in poly.terms()])


def copy_entries(
    entries: Mapping[tuple[int, int], tuple[sp.Expr, sp.Expr]],
    copies: frozenset[int],
    zeta: sp.Symbol,
    rho: sp.Symbol,
    count: sp.Expr,
) -> dict[tuple[int, int], tuple[sp.Expr, sp.Expr]]:
    """The entries of G for k copies from those of one copy G¹(ζ) (see :func:`copy_family`).

    With the copies' Schur complement Σ_l ζ_l² Φ = ρΦ (ρ = Σ_l ζ_l² ~ χ²_k): a shared entry is G¹ at ζ² = ρ;
    a copy entry G¹(ζ²) = B⁻¹ + ζ² F(ζ²) becomes B⁻¹ + ζ_1² F(ρ), whose expectation is that of
    (1 − 1/k) G¹(0) + (1/k) G¹(ρ) (E[ζ_1² f(ρ)] = E[ρ f(ρ)]/k); an entry between a copy and the rest is odd
    in ζ_l and vanishes."""
    out = {}
    for (a, b), (num, den) in entries.items():
        inside = (a in copies, b in copies)
        if inside[0] != inside[1]:
            out[(a, b)] = (sp.S.Zero, sp.S.One)
            continue
        n_rho, d_rho = _even_in(sp.expand(num), zeta, rho), _even_in(sp.expand(den), zeta, rho)
        if not inside[0]:
            out[(a, b)] = (n_rho, d_rho)
            continue
        n0, d0 = num.xreplace({zeta: 0}), den.xreplace({zeta: 0})
        out[(a, b)] = ((count - 1) * n0 * d_rho + n_rho * d0, count * d0 * d_rho)
    return out
