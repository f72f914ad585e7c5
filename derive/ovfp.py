"""Operator-valued fixed points (matrix Dyson equations) of linear pencils.

Setting.  A pencil L = Λ + K (see :mod:`sobolev_rf.derive.pencil`) whose atoms are

* Gaussian matrices X (iid entries of variance ``variance``; rectangular, or symmetric square), the
  *random* part K, and
* diagonal matrices D = diag(ζ_j) with ζ_j iid from a given law (standard normal coordinates, possibly
  several D_l sharing the index j so that ζ_j ∈ ℝ^k, or a discrete law), part of the deterministic Λ.

Conditionally on the ζ's, Gaussian integration by parts gives for G = E L⁻¹, in the proportional limit,
the matrix Dyson equation

    G = (Λ − η(G))⁻¹,     η(G) = E[K G K]   (covariance map),

where, for X placed as c_a X in block (i, k) and as c_b Xᵀ in block (l, j) (or Xᵀ then X),
E[c_a X G_{kl} c_b Xᵀ] = c_a c_b v tr(G_{kl}) I: η(G)_{ij} is a combination of *normalised block traces*
g_{kl} = (1/s_k) tr G_{kl} (the transposed pairings X…X are O(1/N) and dropped).

Derivation steps (all SymPy, :func:`derive_system`):

1. *Balance*: with every dimension ∝ N, choose block scalings s_i = R^{e_i} (R a dimension symbol,
   e_i half-integers) so that constant blocks are O(1) and Gaussian blocks O(N^{-1/2}); the equations are
   covariant under this diagonal similarity and every pairing coefficient c_a c_b v s_k becomes O(1)
   (an inconsistent system of exponents means the expression is not in the proportional regime).
2. *Scalarise*: blocks of equal size form a class; Λ − η(G) restricted to a class is a small matrix whose
   entries are scalars, the ζ's and the unknown traces; G = (Λ − η)⁻¹ is taken entrywise in ζ
   (cofactors over the determinant, per connected component: sparse blocks are inverted separately).
   The unknown of a pair (k, l) in a class carrying diagonals is g_{kl} = E_ζ[G_{kl}(ζ)].
3. *Reduce*: partition refinement from "all unknowns zero" finds the largest invariant set of unknowns
   that vanish (identically, or by oddness of G_{kl} under ζ_l → −ζ_l for normal laws) and of unknowns
   that are equal (identical functions up to a permutation of exchangeable normal coordinates).  The
   invariant subspace contains the fixed-point iteration started at g = 0 (G = Λ⁻¹), i.e. the physical
   branch.  Identities are tested numerically at random points (Schwartz–Zippel style, float tolerance).
4. *Integrate*: E_ζ of every G entry (:mod:`.expectations`: closed forms over normal coordinates, exact
   sums over small discrete laws, else an unevaluated expectation integrated numerically; in the stored
   :class:`~.system.System` of :meth:`OVSystem.to_system` a sum over the nodes of its rule, kept with it).

The atoms are declared with :mod:`.laws`; the numerical fixed point (iteration, Newton, continuation from
z → i∞) is :mod:`sobolev_rf.numeric.theory.ovfp`.

:func:`sobolev_system` applies all of this to the first-order Sobolev resolvent of THEORY.md §3.
"""

from __future__ import annotations

import base64
import dataclasses
import itertools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np
import sympy as sp
from sympy import Identity, Inverse, MatrixSymbol

from .copies import copy_entries, copy_family
from .errors import UserError
from .expectations import CANCEL_OPS, CANCEL_SYMBOLS, GaussExpectation, LawExpectation, Quadrature, expectation
from .laws import DiagonalFunction, DiagonalLaw, GaussianMatrix, expectation_rule, zeta_symbol
from .pencil import Pencil, linearize
from .system import System


def _packed(a: np.ndarray) -> str:
    """An array as base64 text of its little-endian doubles, row-major (exact; read back by NumPy's frombuffer)."""
    return base64.b64encode(np.ascontiguousarray(a, dtype="<f8").tobytes()).decode("ascii")


def _entry_index(u: sp.Symbol) -> tuple[int, int]:
    """(i, j) of an unknown named ``g_i_j`` (an entry of the operator-valued resolvent)."""
    i, j = (int(part) for part in str(u)[2:].split("_"))
    return i, j


# ======================================================================================= the system
@dataclass
class OVSystem:
    """Reduced fixed-point system g = Φ(g) of a pencil, and the normalised traces of its outputs.

    ``equations`` maps every remaining unknown to its right-hand side; ``outputs`` maps each output name
    to (1/m) tr(uᵀ G v) as a function of the unknowns; ``members`` lists, for each unknown, the block
    traces g_{kl} it stands for; ``zeros`` the block traces proven to vanish.
    """

    pencil: Pencil
    balanced: Pencil
    exponents: tuple[sp.Rational, ...]
    reference: sp.Expr
    unknowns: tuple[sp.Symbol, ...]
    equations: dict[sp.Symbol, sp.Expr]
    outputs: dict[str, sp.Expr]
    members: dict[sp.Symbol, tuple[sp.Symbol, ...]]
    zeros: tuple[sp.Symbol, ...]
    eta: dict[tuple[int, int], sp.Expr]
    class_matrices: dict[str, sp.Matrix]
    parameters: tuple[sp.Symbol, ...]
    constants: dict[sp.Symbol, sp.Expr]
    zeta_laws: dict[str, tuple[DiagonalLaw, int]] = field(default_factory=dict)

    # ------------------------------------------------------------------------------- printing
    def to_text(self) -> str:
        lines = [
            f"operator-valued fixed point: {len(self.unknowns)} unknowns "
            f"(from {sum(len(v) for v in self.members.values()) + len(self.zeros)} block traces, "
            f"{len(self.zeros)} vanish, {len(self.constants)} constant)"
        ]
        lines.append(
            "block scalings: " + ", ".join(f"s{i} = {sp.sstr(self.reference**e)}" for i, e in enumerate(self.exponents))
        )
        for name, M in self.class_matrices.items():
            lines.append(f"Lambda - eta(G) on blocks of size {name}: {sp.sstr(M.tolist())}")
        for u in self.unknowns:
            same = ", ".join(sp.sstr(m) for m in self.members[u])
            lines.append(f"  {sp.sstr(u)} = {sp.sstr(self.equations[u])}    [{same}]")
        for u, val in self.constants.items():
            same = ", ".join(sp.sstr(m) for m in self.members[u])
            lines.append(f"  {sp.sstr(u)} = {sp.sstr(val)} (constant)    [{same}]")
        if self.zeros:
            lines.append("  vanishing: " + ", ".join(sp.sstr(z) for z in self.zeros))
        for name, expr in self.outputs.items():
            lines.append(f"  tr({name})/m = {sp.sstr(expr)}")
        return "\n".join(lines)

    def to_latex(self) -> str:
        lines = [r"\begin{aligned}"]
        for u in self.unknowns:
            lines.append(f"{sp.latex(u)} &= {sp.latex(self.equations[u])} \\\\")
        for name, expr in self.outputs.items():
            lines.append(r"\tfrac{1}{m}\operatorname{tr}\mathrm{%s} &= %s \\" % (name, sp.latex(expr)))
        lines.append(r"\end{aligned}")
        return "\n".join(lines)

    def to_system(self, name: str = "ovfp", meta: Mapping[str, Any] | None = None) -> System:
        """The fixed point as a :class:`~sobolev_rf.derive.system.System`: residuals g − Φ(g) in the unknowns and
        the output traces, in neutral symbols (unknowns ``g0, g1, …``, parameters ``q0, q1, …``, coordinates of
        an expectation ``z0, z1, …``: a user's parameter may be called ``lambda`` or ``numpy``);
        ``meta["names"]`` keeps the real names, in order, and ``meta`` is recorded with it.

        A numerical expectation becomes a :class:`~.expectations.Quadrature` on a rule kept, as plain data, in
        ``meta["rules"]`` (a list of factors ``{"axes", "nodes", "weights"}`` each, :func:`.laws.expectation_rule`,
        the arrays as base64 text of their little-endian doubles, row-major: exact and compact for data files);
        where that rule is not an exact sum (normal coordinates, uniform laws), an output
        ``meta["quadrature_checks"][i]`` holds the difference to the same rule with half as many nodes (the
        error estimate |Q_n − Q_{n/2}|)."""
        unknowns = tuple(sp.Symbol(f"g{i}") for i in range(len(self.unknowns)))
        parameters = tuple(sp.Symbol(f"q{i}") for i in range(len(self.parameters)))
        neutral = dict(zip(self.unknowns, unknowns)) | dict(zip(self.parameters, parameters))
        rules: list[list[dict[str, Any]]] = []
        rule_index: dict[tuple[tuple[str, ...], bool], int] = {}
        checks: dict[str, sp.Expr] = {}

        def rule(zs: tuple[sp.Expr, ...], coarse: bool) -> tuple[int, bool]:
            laws = [self.zeta_laws.get(str(z), (None, 0)) for z in zs]
            key = (tuple(map(str, zs)), coarse)
            if key not in rule_index:
                factors = expectation_rule(laws, coarse)
                rule_index[key] = len(rules)
                rules.append([{"axes": list(a), "nodes": _packed(x), "weights": _packed(w)} for a, x, w in factors])
            exact = all(law is not None and law.kind == "discrete" for law, _ in laws)
            return rule_index[key], exact

        def stored(node: sp.Expr) -> sp.Expr:
            zs = tuple(node.args[1:])
            coords = tuple(sp.Symbol(f"z{i}") for i in range(len(zs)))
            h = node.args[0].xreplace(neutral | dict(zip(zs, coords)))
            fine, exact = rule(zs, False)
            q = Quadrature(sp.Integer(fine), h, *coords)
            if not exact:
                coarse, _ = rule(zs, True)
                check = q - Quadrature(sp.Integer(coarse), h, *coords)
                checks.setdefault(sp.srepr(check), check)  # one check per distinct expectation
            return q

        def convert(expr: sp.Expr) -> sp.Expr:
            nodes = sorted(expr.atoms(GaussExpectation, LawExpectation), key=sp.default_sort_key)
            return expr.xreplace(neutral).xreplace({n.xreplace(neutral): stored(n) for n in nodes})

        residuals = tuple(v - convert(self.equations[u]) for u, v in zip(self.unknowns, unknowns))
        outputs = {k: convert(v) for k, v in self.outputs.items()}
        checked = {f"quadrature check {i}": e for i, e in enumerate(checks.values())}
        names = {"unknowns": [str(u) for u in self.unknowns], "parameters": [str(p) for p in self.parameters]}
        extra: dict[str, Any] = {"rules": rules, "quadrature_checks": list(checked)} if rules else {}
        return System(
            name=name,
            unknowns=unknowns,
            parameters=parameters,
            residuals=residuals,
            outputs=outputs | checked,
            definitions={},
            branch="physical",
            meta={**dict(meta or {}), "names": names, **extra},
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "unknowns": [str(u) for u in self.unknowns],
            "equations": {str(u): sp.sstr(self.equations[u]) for u in self.unknowns},
            "members": {str(u): [str(m) for m in self.members[u]] for u in self.unknowns},
            "zeros": [str(z) for z in self.zeros],
            "constants": {str(u): sp.sstr(v) for u, v in self.constants.items()},
            "outputs": {k: sp.sstr(v) for k, v in self.outputs.items()},
            "parameters": [str(p) for p in self.parameters],
            "block_exponents": [str(e) for e in self.exponents],
            "reference_dimension": str(self.reference),
        }


# ======================================================================================= derivation
def _n_degree(c: sp.Expr, dims: Iterable[sp.Symbol]) -> sp.Rational:
    """Leading power of N in c when every dimension symbol is replaced by (dimension)·N."""
    N = sp.Dummy("N", positive=True)
    pos = {d: sp.Dummy(str(d), positive=True) * N for d in dims}
    cN = sp.expand(sp.expand_power_base(sp.powsimp(sp.sympify(c).xreplace(pos), force=True), force=True))
    best = None
    for t in sp.Add.make_args(cN):
        _, e = t.as_coeff_exponent(N)
        if N in e.free_symbols or not e.is_Rational:
            raise UserError(f"cannot read the order in the dimensions of the coefficient {sp.sstr(c)}.")
        best = e if best is None or e > best else best
    return sp.Rational(best if best is not None else 0)


def _balance(pencil: Pencil, random: Mapping[str, GaussianMatrix], dims: set[sp.Symbol]) -> list[sp.Rational]:
    """Block exponents e_i with e_i − e_j = −deg(c) (constant atoms) or −½ − deg(c) − deg(v)/2 (Gaussian)."""
    edges: dict[int, list[tuple[int, sp.Rational, str]]] = {}
    for (i, j), entry in pencil.entries.items():
        for atom, coef in entry.items():
            if atom is not None and atom[0] in random:
                delta = -sp.Rational(1, 2) - _n_degree(coef, dims) - _n_degree(random[atom[0]].variance, dims) / 2
            else:
                delta = -_n_degree(coef, dims)
            what = "I" if atom is None else atom[0]
            edges.setdefault(i, []).append((j, -delta, what))  # e_j = e_i - delta
            edges.setdefault(j, []).append((i, delta, what))
    e: dict[int, sp.Rational] = {}
    for start in range(pencil.size):
        if start in e:
            continue
        e[start] = sp.S.Zero
        stack = [start]
        while stack:
            i = stack.pop()
            for j, step, what in edges.get(i, []):
                val = e[i] + step
                if j not in e:
                    e[j] = val
                    stack.append(j)
                elif e[j] != val:
                    raise UserError(
                        f"the expression is not in the proportional regime: the scaling of {what} is inconsistent "
                        "(normalise Gaussian matrices, e.g. F*Ft/n instead of F*Ft)."
                    )
    return [e[i] for i in range(pencil.size)]


def _reference_dimension(pencil: Pencil, dims: set[sp.Symbol]) -> sp.Expr:
    in_coefs = set()
    for entry in pencil.entries.values():
        for c in entry.values():
            in_coefs |= sp.sympify(c).free_symbols & dims
    if len(in_coefs) == 1:
        return next(iter(in_coefs))
    row = pencil.outputs[0].shape[0]
    syms = sp.sympify(row).free_symbols & dims
    return next(iter(sorted(syms, key=str))) if syms else sorted(dims, key=str)[0]


def _cofactor_inverse(M: sp.Matrix, pairs: Iterable[tuple[int, int]]) -> dict[tuple[int, int], tuple[sp.Expr, sp.Expr]]:
    """(num, den) of the entries (k, l) of M⁻¹ = adj(M)/det(M), per connected component of M's pattern.

    Determinants and minors come from one memoised Laplace expansion along the sparsest row
    (division-free, so substituting values later never meets 0/0).
    """
    n = M.rows
    nz = {(i, j): M[i, j] for i in range(n) for j in range(n) if M[i, j] != 0}
    parent = list(range(n))

    def find(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for i, j in nz:
        parent[find(i)] = find(j)
    memo: dict[tuple[frozenset[int], frozenset[int]], sp.Expr] = {}

    def det(rows: frozenset[int], cols: frozenset[int]) -> sp.Expr:
        if not rows:
            return sp.S.One
        key = (rows, cols)
        if key in memo:
            return memo[key]
        scols = sorted(cols)
        r = min(rows, key=lambda i: sum((i, j) in nz for j in cols))
        rank_r = sorted(rows).index(r)
        total = sp.S.Zero
        for pos, j in enumerate(scols):
            if (r, j) in nz:
                minor = det(rows - {r}, cols - {j})
                if minor != 0:
                    total += (-1) ** (rank_r + pos) * nz[(r, j)] * minor
        memo[key] = total
        return total

    out = {}
    for k, l in pairs:
        if find(k) != find(l):
            out[(k, l)] = (sp.S.Zero, sp.S.One)
            continue
        comp = frozenset(i for i in range(n) if find(i) == find(k))
        sk = sorted(comp)
        sign = (-1) ** (sk.index(l) + sk.index(k))  # (M⁻¹)_{kl} = (−1)^{l+k} det M[−l, −k] / det M
        out[(k, l)] = (sign * det(comp - {l}, comp - {k}), det(comp, comp))
    return out


def _structural_reach(pencil: Pencil) -> list[set[int]]:
    """reach[k] ⊇ {l : (L⁻¹)_{kl} can be non-zero}: l reachable from k along non-zero blocks of L.

    (L⁻¹ is a polynomial in L by Cayley–Hamilton, and (L^m)_{kl} ≠ 0 needs a path k → l of length m.)
    """
    nxt: dict[int, set[int]] = {}
    for (i, j), e in pencil.entries.items():
        if e:
            nxt.setdefault(i, set()).add(j)
    out = []
    for k in range(pencil.size):
        seen, stack = {k}, [k]
        while stack:
            x = stack.pop()
            for y in nxt.get(x, ()):
                if y not in seen:
                    seen.add(y)
                    stack.append(y)
        out.append(seen)
    return out


def _diagonal_values(laws: Sequence[DiagonalLaw], functions: Sequence[DiagonalFunction]) -> dict[str, sp.Expr]:
    """ζ of every diagonal matrix as an expression in the base coordinates (functions resolved, cycles refused)."""
    out: dict[str, sp.Expr] = {}
    for law in laws:
        for name in law.names:
            if name in out:
                raise UserError(f"diagonal matrix {name!r} is declared twice.")
            out[name] = zeta_symbol(name)
    pending = {}
    for f in functions:
        if f.name in out or f.name in pending:
            raise UserError(f"diagonal matrix {f.name!r} is declared twice.")
        pending[f.name] = sp.sympify(f.expr)
    by_symbol = {zeta_symbol(n): n for n in list(out) + list(pending)}
    for expr in pending.values():
        unknown = [str(z) for z in expr.free_symbols if z not in by_symbol]
        if unknown:
            raise UserError(
                f"a diagonal function refers to {', '.join(sorted(unknown))}, which is not a declared diagonal matrix."
            )
    while pending:
        ready = {n: e for n, e in pending.items() if all(by_symbol[z] in out for z in e.free_symbols)}
        if not ready:
            raise UserError("diagonal functions refer to each other in a cycle: " + ", ".join(sorted(pending)) + ".")
        for n, e in ready.items():
            out[n] = e.xreplace({zeta_symbol(m): out[m] for m in out})
            del pending[n]
    return out


#: Class id of the block traces proven to vanish during the reduction.
_ZERO_CLASS = -1


def _trace_symbol(k: int, l: int) -> sp.Symbol:
    """The unknown normalised block trace g_{kl}."""
    return sp.Symbol(f"g_{k}_{l}")


@dataclass(frozen=True)
class _Declarations:
    """The checked atoms of a pencil: Gaussian matrices, diagonal laws, ζ values and dimension symbols."""

    random: dict[str, GaussianMatrix]
    laws: list[DiagonalLaw]
    zeta_value: dict[str, sp.Expr]
    diag_law: dict[str, DiagonalLaw]
    dims: set[sp.Symbol]
    radial: tuple[tuple[sp.Symbol, sp.Expr], ...] = ()

    @property
    def zeta_normal(self) -> list[sp.Symbol]:
        """Base coordinates ζ with a standard normal law."""
        return [zeta_symbol(n) for n, law in self.diag_law.items() if law.kind == "normal"]

    @property
    def discrete(self) -> list[tuple[tuple[sp.Symbol, ...], DiagonalLaw]]:
        """Coordinate groups of the small discrete laws, summed exactly."""
        return [
            (tuple(zeta_symbol(n) for n in law.names), law) for law in self.laws if law.kind == "discrete" and law.exact
        ]

    @property
    def zeta_numeric(self) -> list[sp.Symbol]:
        """Base coordinates ζ whose expectations are taken numerically."""
        return [zeta_symbol(n) for n, law in self.diag_law.items() if not law.exact]

    @property
    def base_zetas(self) -> set[sp.Symbol]:
        """Every base coordinate ζ (and radial coordinate ρ)."""
        return {zeta_symbol(n) for n in self.diag_law} | {rho for rho, _ in self.radial}


def _declarations(
    pencil: Pencil, gaussians: Iterable[GaussianMatrix], diagonals: Iterable[DiagonalLaw | DiagonalFunction]
) -> _Declarations:
    """The atom declarations of ``pencil``, checked against its matrix symbols, and its dimension symbols."""
    random = {g.name: g for g in gaussians}
    items = list(diagonals)
    laws = [x for x in items if isinstance(x, DiagonalLaw)]
    functions = [x for x in items if isinstance(x, DiagonalFunction)]
    zeta_value = _diagonal_values(laws, functions)
    diag_law: dict[str, DiagonalLaw] = {}
    for law in laws:
        for name in law.names:
            diag_law[name] = law
    for name, sym in pencil.symbols.items():
        if name not in random and name not in zeta_value:
            raise UserError(f"matrix {name!r} is neither declared Gaussian nor diagonal.")
        if name in random and name in zeta_value:
            raise UserError(f"matrix {name!r} is declared both Gaussian and diagonal.")
        if name in zeta_value and sym.rows != sym.cols:
            raise UserError(f"diagonal matrix {name!r} must be square.")
        if name in random and random[name].symmetric and sym.rows != sym.cols:
            raise UserError(f"symmetric Gaussian matrix {name!r} must be square.")
    dims: set[sp.Symbol] = set()
    for s in pencil.sizes:
        dims |= sp.sympify(s).free_symbols
    for sym in pencil.symbols.values():
        dims |= sp.sympify(sym.rows).free_symbols | sp.sympify(sym.cols).free_symbols
    return _Declarations(random, laws, zeta_value, diag_law, dims)


def _rescaled(c: sp.Expr, R: sp.Expr, power: sp.Rational) -> sp.Expr:
    """c · R^power with the powers of R collected."""
    return sp.powsimp(sp.expand_power_base(sp.sympify(c) * R**power, force=True), force=True)


def _balanced(pencil: Pencil, decl: _Declarations) -> tuple[list[sp.Rational], sp.Expr, Pencil]:
    """Step 1: block exponents e_i, reference dimension R and the pencil under the similarity s_i = R^{e_i}."""
    ex = _balance(pencil, decl.random, decl.dims)
    R = _reference_dimension(pencil, decl.dims)
    bal_entries = {
        (i, j): {a: _rescaled(c, R, ex[i] - ex[j]) for a, c in e.items()} for (i, j), e in pencil.entries.items()
    }
    bal_outputs = tuple(
        type(o)(
            o.name,
            {i: _rescaled(c, R, -ex[i]) for i, c in o.u.items()},
            {j: _rescaled(c, R, ex[j]) for j, c in o.v.items()},
            o.shape,
        )
        for o in pencil.outputs
    )
    return ex, R, Pencil(pencil.sizes, bal_entries, bal_outputs, pencil.symbols, pencil.copies, pencil.family)


def _covariance_map(
    pencil: Pencil, balanced: Pencil, decl: _Declarations
) -> tuple[dict[tuple[int, int], sp.Expr], dict[tuple[int, int], sp.Expr]]:
    """Step 2: the deterministic blocks Λ (ζ's substituted) and the covariance map η(G) in the block traces."""
    rand_occ: list[tuple[int, int, str, bool, sp.Expr]] = []
    lam: dict[tuple[int, int], sp.Expr] = {}
    for (i, j), e in balanced.entries.items():
        for atom, c in e.items():
            if atom is not None and atom[0] in decl.random:
                rand_occ.append((i, j, atom[0], atom[1], c))
            else:
                val = c if atom is None else c * decl.zeta_value[atom[0]]
                lam[(i, j)] = lam.get((i, j), sp.S.Zero) + val
    random = decl.random
    reach = _structural_reach(pencil)
    eta: dict[tuple[int, int], sp.Expr] = {}
    for (i, k, a, ta, ca), (l, j, b, tb, cb) in itertools.product(rand_occ, rand_occ):
        if a != b or (ta == tb and not random[a].symmetric) or l not in reach[k]:
            continue
        coef = sp.powsimp(sp.expand_power_base(ca * cb * random[a].variance * pencil.sizes[k], force=True), force=True)
        eta[(i, j)] = eta.get((i, j), sp.S.Zero) + coef * _trace_symbol(k, l)
    return lam, eta


def _needed_pairs(
    eta: Mapping[tuple[int, int], sp.Expr], balanced: Pencil, dims: set[sp.Symbol]
) -> tuple[set[tuple[int, int]], list[list[tuple[int, int, sp.Expr]]]]:
    """Block pairs (k, l) whose G entry is needed (by η or an output), and each output's (i, j, coefficient) terms."""
    needed = {
        (k, l)
        for (i, j), val in eta.items()
        for (k, l) in [
            tuple(map(int, str(sym)[2:].split("_"))) for sym in val.free_symbols if str(sym).startswith("g_")
        ]
    }
    out_pairs: list[list[tuple[int, int, sp.Expr]]] = []
    for o in balanced.outputs:
        if o.shape[0] != o.shape[1]:
            raise UserError(f"output {o.name!r} is not square, so it has no normalised trace.")
        pairs = [(i, j, cu * cv) for i, cu in o.u.items() for j, cv in o.v.items()]
        for _i, _j, c in pairs:
            if _n_degree(c, dims) != 0:
                raise UserError(f"the normalised trace of output {o.name!r} is not of order one.")
        out_pairs.append(pairs)
        needed |= {(i, j) for i, j, _ in pairs}
    return needed, out_pairs


def _class_inverses(
    pencil: Pencil,
    lam: Mapping[tuple[int, int], sp.Expr],
    eta: Mapping[tuple[int, int], sp.Expr],
    needed: set[tuple[int, int]],
) -> tuple[dict[tuple[int, int], tuple[sp.Expr, sp.Expr]], dict[str, sp.Matrix], dict[int, str]]:
    """Step 2: (num, den) of the needed entries of G = (Λ − η)⁻¹ per class, the class matrices, each block's class."""
    classes: dict[str, list[int]] = {}
    for i, s in enumerate(pencil.sizes):
        classes.setdefault(sp.srepr(s), []).append(i)
    entries: dict[tuple[int, int], tuple[sp.Expr, sp.Expr]] = {}
    class_matrices: dict[str, sp.Matrix] = {}
    class_of: dict[int, str] = {}
    for key, blocks in classes.items():
        M = sp.Matrix(
            len(blocks),
            len(blocks),
            lambda r, c: lam.get((blocks[r], blocks[c]), 0) - eta.get((blocks[r], blocks[c]), 0),
        )
        name = sp.sstr(pencil.sizes[blocks[0]])
        class_matrices[name] = M
        for b_ in blocks:
            class_of[b_] = key
        local = [(blocks.index(k), blocks.index(l)) for (k, l) in needed if k in blocks]
        for (a_, b_), val in _cofactor_inverse(M, local).items():
            entries[(blocks[a_], blocks[b_])] = val
    return entries, class_matrices, class_of


def _unknown_pairs(
    eta: Mapping[tuple[int, int], sp.Expr],
    needed: set[tuple[int, int]],
    entries: Mapping[tuple[int, int], tuple[sp.Expr, sp.Expr]],
    decl: _Declarations,
) -> tuple[list[tuple[int, int]], list[sp.Symbol]]:
    """The block pairs whose traces η involves (the unknowns), and the parameters of the G entries."""
    unknown_pairs = sorted(
        {(k, l) for (i, j), val in eta.items() for (k, l) in needed if _trace_symbol(k, l) in val.free_symbols}
    )
    unknowns_all = [_trace_symbol(k, l) for k, l in unknown_pairs]
    params = sorted(
        {s for (num, den) in entries.values() for s in (num.free_symbols | den.free_symbols)}
        - set(unknowns_all)
        - decl.base_zetas,
        key=str,
    )
    return unknown_pairs, params


class _Probe:
    """The G entries of the unknowns evaluated at a few fixed random points (ζ's and parameters)."""

    NPTS = 4

    def __init__(
        self,
        entries: Mapping[tuple[int, int], tuple[sp.Expr, sp.Expr]],
        unknown_pairs: Sequence[tuple[int, int]],
        params: Sequence[sp.Symbol],
        decl: _Declarations,
        rng: np.random.Generator,
    ) -> None:
        npts = self.NPTS
        self.zeta_normal = decl.zeta_normal
        self.allz = (
            self.zeta_normal
            + [z for syms, _ in decl.discrete for z in syms]
            + decl.zeta_numeric
            + [rho for rho, _ in decl.radial]
        )
        unknowns_all = [_trace_symbol(k, l) for k, l in unknown_pairs]
        arg_syms = self.allz + unknowns_all + list(params)
        ratios = [entries[pq][0] / entries[pq][1] for pq in unknown_pairs]
        # the module itself, not "numpy": lambdify then skips ``from numpy import *`` (numpy.testing, f2py, ma)
        self.all_values = sp.lambdify(arg_syms, ratios, modules=np, cse=True)
        n_normal = len(self.zeta_normal)
        self.zpts = rng.standard_normal((len(self.allz), npts))
        self.zpts[n_normal:] = rng.uniform(0.3, 1.7, (len(self.allz) - n_normal, npts))  # inside sqrt, log
        self.ppts = rng.uniform(0.5, 1.5, (len(params), npts))
        self.perms = list(itertools.permutations(range(n_normal))) if n_normal <= 5 else [tuple(range(n_normal))]

    def evaluate(self, uvals: np.ndarray, zp: np.ndarray) -> np.ndarray:
        """Values of every unknown's G entry (rows) at the npts random points (columns)."""
        with np.errstate(all="ignore"):
            vals = self.all_values(*zp, *uvals, *self.ppts)
        return np.array([np.broadcast_to(np.asarray(v, dtype=float), (self.NPTS,)) for v in vals])

    def signatures(
        self, uvals: np.ndarray, unknown_pairs: Sequence[tuple[int, int]], normal_pair: Mapping[tuple[int, int], bool]
    ) -> dict[tuple[int, int], list[np.ndarray] | None]:
        """Per unknown: None if its G entry vanishes (identically or by oddness), else its values per permutation."""
        base = self.evaluate(uvals, self.zpts)
        flipped = []
        for zi, zsym in enumerate(self.allz):
            if zsym in self.zeta_normal:
                zf = self.zpts.copy()
                zf[zi] *= -1
                flipped.append(self.evaluate(uvals, zf))
        permuted = []
        for perm in self.perms:
            zp = self.zpts.copy()
            zp[: len(self.zeta_normal)] = self.zpts[list(perm)]
            permuted.append(self.evaluate(uvals, zp))
        signature: dict[tuple[int, int], list[np.ndarray] | None] = {}
        for r, pq in enumerate(unknown_pairs):
            scale = max(1.0, float(np.max(np.abs(base[r]))))  # a non-finite value never compares equal
            if np.max(np.abs(base[r])) < 1e-11 * scale or (
                normal_pair[pq] and any(np.allclose(f[r], -base[r], rtol=1e-9, atol=1e-12 * scale) for f in flipped)
            ):
                signature[pq] = None  # identically zero, or odd in some normal ζ_l: zero expectation
            else:
                signature[pq] = [v[r] for v in permuted]
        return signature


def _same_signature(x: list[np.ndarray] | None, y: list[np.ndarray] | None) -> bool:
    """True when two signatures agree: both vanish, or y's values equal x's under some permutation."""
    if x is None or y is None:
        return x is None and y is None
    return any(np.allclose(s, y[0], rtol=1e-9, atol=1e-12) for s in x)


def _refine(
    cls: Mapping[tuple[int, int], int],
    signature: Mapping[tuple[int, int], list[np.ndarray] | None],
    unknown_pairs: Sequence[tuple[int, int]],
    class_of: Mapping[int, str],
) -> tuple[dict[tuple[int, int], int], bool]:
    """One partition refinement of the unknowns by their signatures, and whether the partition is stable."""
    new_cls: dict[tuple[int, int], int] = {}
    leaders: list[tuple[int, tuple[int, int], int]] = []  # (old class, leader pair, new id)
    for pq in unknown_pairs:
        if signature[pq] is None and cls[pq] == _ZERO_CLASS:
            new_cls[pq] = _ZERO_CLASS
            continue
        found = next(
            (
                nid
                for old, lead, nid in leaders
                if old == cls[pq]
                and class_of[lead[0]] == class_of[pq[0]]
                and _same_signature(signature[pq], signature[lead])
            ),
            None,
        )
        if found is None:
            found = len(leaders)
            leaders.append((cls[pq], pq, found))
        new_cls[pq] = found
    stable = all((cls[pq] == _ZERO_CLASS) == (new_cls[pq] == _ZERO_CLASS) for pq in unknown_pairs) and len(
        {c for c in new_cls.values() if c != _ZERO_CLASS}
    ) == len({c for c in cls.values() if c != _ZERO_CLASS})
    return new_cls, stable


def _reduction_classes(
    pencil: Pencil,
    entries: Mapping[tuple[int, int], tuple[sp.Expr, sp.Expr]],
    unknown_pairs: Sequence[tuple[int, int]],
    params: Sequence[sp.Symbol],
    class_of: Mapping[int, str],
    decl: _Declarations,
    seed: int,
) -> dict[tuple[int, int], int]:
    """Step 3: class of every unknown (:data:`_ZERO_CLASS`: vanishes) by refinement from "all unknowns zero"."""
    rng = np.random.default_rng(seed)
    probe = _Probe(entries, unknown_pairs, params, decl, rng)
    npts = probe.NPTS
    normal_pair = {pq: _class_has_normal(pq, class_of, pencil, decl.diag_law) for pq in unknown_pairs}
    cls = {pq: _ZERO_CLASS for pq in unknown_pairs}
    while True:
        ids = sorted({c for c in cls.values() if c != _ZERO_CLASS})
        cval = {c: rng.uniform(0.3, 1.3, npts) for c in ids}
        uvals = np.array([np.zeros(npts) if cls[pq] == _ZERO_CLASS else cval[cls[pq]] for pq in unknown_pairs])
        signature = probe.signatures(uvals, unknown_pairs, normal_pair)
        cls, stable = _refine(cls, signature, unknown_pairs, class_of)
        if stable:
            return cls


def _substitutions(
    unknown_pairs: Sequence[tuple[int, int]], cls: Mapping[tuple[int, int], int]
) -> tuple[dict[int, sp.Symbol], dict[sp.Symbol, list[sp.Symbol]], dict[sp.Symbol, sp.Expr], list[sp.Symbol]]:
    """Representative of each class, its members, the substitution g_{kl} → representative or 0, the zeros."""
    reps: dict[int, sp.Symbol] = {}
    members: dict[sp.Symbol, list[sp.Symbol]] = {}
    subs: dict[sp.Symbol, sp.Expr] = {}
    zeros = []
    for p in unknown_pairs:
        if cls[p] == _ZERO_CLASS:
            subs[_trace_symbol(*p)] = sp.S.Zero
            zeros.append(_trace_symbol(*p))
        else:
            rep = reps.setdefault(cls[p], _trace_symbol(*p))
            subs[_trace_symbol(*p)] = rep
            members.setdefault(rep, []).append(_trace_symbol(*p))
    return reps, members, subs, zeros


def _reduced_entry(
    entry: tuple[sp.Expr, sp.Expr], subs: Mapping[sp.Symbol, sp.Expr], base_zetas: set[sp.Symbol]
) -> sp.Expr:
    """The G entry num/den with the reduction substituted, cancelled (in the ζ's only when large)."""
    num, den = entry
    num, den = num.xreplace(subs), den.xreplace(subs)
    free = (num.free_symbols | den.free_symbols) - base_zetas
    if len(free) <= CANCEL_SYMBOLS and sp.count_ops(num) + sp.count_ops(den) <= CANCEL_OPS:
        return sp.cancel(num / den)
    # large cofactors (big pencils): a full multivariate gcd can take minutes; cancel in the ζ's only
    zs = sorted((num.free_symbols | den.free_symbols) & base_zetas, key=str)
    return sp.cancel(num / den, *zs) if zs else num / den


def _integrated(
    entries: Mapping[tuple[int, int], tuple[sp.Expr, sp.Expr]],
    subs: Mapping[sp.Symbol, sp.Expr],
    unknowns: Sequence[sp.Symbol],
    balanced: Pencil,
    out_pairs: Sequence[Sequence[tuple[int, int, sp.Expr]]],
    decl: _Declarations,
) -> tuple[dict[sp.Symbol, sp.Expr], dict[str, sp.Expr]]:
    """Step 4: right-hand sides E_ζ[G_{kl}] of the unknowns and the output traces, integrated over the ζ's."""
    zeta_normal, discrete, zeta_numeric, base_zetas = (
        decl.zeta_normal,
        decl.discrete,
        decl.zeta_numeric,
        decl.base_zetas,
    )
    equations = {
        u: expectation(
            _reduced_entry(entries[_entry_index(u)], subs, base_zetas), zeta_normal, discrete, zeta_numeric, decl.radial
        )
        for u in unknowns
    }
    outputs = {}
    for o, pairs in zip(balanced.outputs, out_pairs):
        h = sp.Add(*[c * _reduced_entry(entries[(i, j)], subs, base_zetas) for i, j, c in pairs])
        outputs[o.name] = expectation(sp.cancel(h), zeta_normal, discrete, zeta_numeric, decl.radial)
    return equations, outputs


def _pruned(
    equations: dict[sp.Symbol, sp.Expr], outputs: dict[str, sp.Expr]
) -> tuple[dict[sp.Symbol, sp.Expr], dict[str, sp.Expr], dict[sp.Symbol, sp.Expr]]:
    """Equations and outputs without the unknowns whose equation involves no unknown (e.g. g = 1); those constants."""
    constants: dict[sp.Symbol, sp.Expr] = {}
    while True:
        fixed = {u: rhs for u, rhs in equations.items() if not (rhs.free_symbols & set(equations))}
        if not fixed:
            break
        constants.update(fixed)
        equations = {
            u: sp.cancel(rhs.xreplace(fixed)) if not rhs.has(GaussExpectation, LawExpectation) else rhs.xreplace(fixed)
            for u, rhs in equations.items()
            if u not in fixed
        }
    outputs = {k: v.xreplace(constants) for k, v in outputs.items()}
    return equations, outputs, constants


def derive_system(
    pencil: Pencil,
    gaussians: Iterable[GaussianMatrix],
    diagonals: Iterable[DiagonalLaw | DiagonalFunction] = (),
    seed: int = 0,
) -> OVSystem:
    """Derive the reduced matrix-Dyson fixed point of ``pencil`` (see the module docstring).

    Every matrix symbol of the pencil must be declared either in ``gaussians`` or in ``diagonals``
    (a :class:`DiagonalLaw`, or a :class:`DiagonalFunction` of other diagonals with the same index).
    ``seed`` fixes the random points of the numerical identity tests.
    """
    decl = _declarations(pencil, gaussians, diagonals)
    family = copy_family(pencil, decl.diag_law, decl.zeta_value)
    ex, R, balanced = _balanced(pencil, decl)
    lam, eta = _covariance_map(pencil, balanced, decl)
    if family is not None:  # traces between a copy and the rest are odd in its ζ_l: zero
        odd = {
            _trace_symbol(k, l): sp.S.Zero
            for k in range(pencil.size)
            for l in range(pencil.size)
            if (k in pencil.copies) != (l in pencil.copies)
        }
        eta = {key: val.xreplace(odd) for key, val in eta.items() if val.xreplace(odd) != 0}
    needed, out_pairs = _needed_pairs(eta, balanced, decl.dims)
    entries, class_matrices, class_of = _class_inverses(pencil, lam, eta, needed)
    if family is not None:
        zeta, count = family
        rho = sp.Symbol(f"rho_{zeta}", positive=True)
        entries = copy_entries(entries, pencil.copies, zeta, rho, count)
        law = {n: v for n, v in decl.diag_law.items() if zeta_symbol(n) != zeta}
        decl = dataclasses.replace(decl, diag_law=law, radial=((rho, count),))
    unknown_pairs, params = _unknown_pairs(eta, needed, entries, decl)
    cls = _reduction_classes(pencil, entries, unknown_pairs, params, class_of, decl, seed)
    reps, members, subs, zeros = _substitutions(unknown_pairs, cls)
    equations, outputs = _integrated(entries, subs, tuple(reps[c] for c in sorted(reps)), balanced, out_pairs, decl)
    equations, outputs, constants = _pruned(equations, outputs)
    unknowns = tuple(reps[c] for c in sorted(reps) if reps[c] in equations)
    free = set()
    for expr in list(equations.values()) + list(outputs.values()):
        free |= expr.free_symbols
    parameters = tuple(sorted(free - set(unknowns) - decl.base_zetas, key=str))
    zeta_laws = {str(zeta_symbol(n)): (law, law.names.index(n)) for n, law in decl.diag_law.items()}
    return OVSystem(
        pencil,
        balanced,
        tuple(ex),
        R,
        unknowns,
        equations,
        outputs,
        {u: tuple(m) for u, m in members.items()},
        tuple(zeros),
        eta,
        class_matrices,
        parameters,
        constants,
        zeta_laws,
    )


def _class_has_normal(
    pair: tuple[int, int], class_of: Mapping[int, str], pencil: Pencil, diag_law: Mapping[str, DiagonalLaw]
) -> bool:
    """True when block pair ``pair`` lives in a class whose size is that of a normal diagonal matrix."""
    key = class_of[pair[0]]
    return any(
        law.kind == "normal" and sp.srepr(pencil.symbols[n].rows) == key
        for n, law in diag_law.items()
        if n in pencil.symbols
    )


# ======================================================================================= Sobolev traces
def sobolev_expressions(k: int) -> tuple[dict[str, sp.MatrixExpr], list[GaussianMatrix], list[DiagonalLaw]]:
    """The four first-order Sobolev trace functionals of THEORY.md §3 as matrix expressions.

    Q = (aI + bW + c Σ_l D_l W D_l + e Σ_l D_l²)⁻¹, W = ΘᵀΘ/d, Θ ∈ ℝ^{d×p} iid N(0,1), D_l = diag(ζ_{·l}),
    ζ_j ~ N(0, I_k); outputs Q, QW, Q D₁WD₁ and Q D₁².
    """
    if k < 1:
        raise UserError(f"k must be a positive integer, got {k}.")
    p, d = sp.symbols("p d", positive=True, integer=True)
    a, b, c, e = sp.symbols("a b c e", positive=True)
    Th = MatrixSymbol("Theta", d, p)
    Ds = [MatrixSymbol(f"D{l + 1}", p, p) for l in range(k)]
    W = Th.T * Th / d
    inner = a * Identity(p) + b * W
    for D in Ds:
        inner = inner + c * D * W * D + e * D * D
    Q = Inverse(inner)
    exprs = {"Q": Q, "QW": Q * W, "QD1WD1": Q * Ds[0] * W * Ds[0], "QD1sq": Q * Ds[0] * Ds[0]}
    return exprs, [GaussianMatrix("Theta")], [DiagonalLaw(tuple(D.name for D in Ds), "normal")]


@lru_cache(maxsize=8)
def sobolev_system(k: int) -> OVSystem:
    """The derived (and cached) fixed-point system of the Sobolev trace functionals for a given k."""
    exprs, gauss, diags = sobolev_expressions(k)
    return derive_system(linearize(exprs), gauss, diags)
