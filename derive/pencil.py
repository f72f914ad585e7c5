"""Linear pencils of noncommutative rational matrix expressions.

A *pencil* of a rational expression ``r`` (an ``m × n`` matrix built from rectangular matrix symbols
X₁, X₂, … by sums, products, transposes, scalar coefficients, identities and inverses) is

    L = L₀ + Σᵢ Lᵢ ⊗ Xᵢ   (a square block matrix; every block entry is a linear combination
                            c·I + Σ cᵢ Xᵢ + Σ c'ᵢ Xᵢᵀ with scalar coefficients),

together with constant block columns u, v (each non-zero entry a scalar multiple of an identity) such that

    r = uᵀ L⁻¹ v.

The realisation is recursive, in the spirit of the Helton–Mai–Speicher linearisation trick:

* an atom X (m × n):   L = [[I_m, −X], [0, I_n]],  u = e₁, v = e₂        (uᵀL⁻¹v = X);
* c·I_m:               L = [I_m],  u = 1,  v = c;
* a sum r + s:         L = L_r ⊕ L_s,  u = (u_r; u_s),  v = (v_r; v_s);
* a product r s:       L = [[L_r, −v_r u_sᵀ], [0, L_s]],  u = (u_r; 0),  v = (0; v_s)
                       (the inverse of a block upper-triangular matrix gives u_rᵀL_r⁻¹v_r·u_sᵀL_s⁻¹v_s);
* a transpose rᵀ:      L = L_rᵀ (blocks transposed),  u ↔ v;
* an inverse r⁻¹:      L = [[L_r, −v_r], [u_rᵀ, 0]],  u = v = e_last
                       (the Schur complement of L_r is uᵀL_r⁻¹v = r, so (L⁻¹)_{last,last} = r⁻¹).

The result is then pruned:

* *elimination* of a block k with a constant invertible diagonal α·I: with b = L_{·k}, c = L_{k·},
  uᵀL⁻¹v = (u − cᵀu_k/α)ᵀ (L' − b c/α)⁻¹ (v − b v_k/α) + u_kᵀv_k/α, allowed when every product b_i c_j
  stays linear (one factor a multiple of I), the new u, v stay constant and u_kᵀv_k = 0;
  this collapses identity chains such as those of products of atoms;
* *trimming* of blocks that x = L⁻¹v never reaches (L = [[L_AA, L_AB], [0, L_BB]] with v_B = 0 gives
  x_B = 0) and, dually, of blocks that y = L⁻ᵀu never reaches.

Several expressions can share one pencil (one pair u, v per output).  The self-adjoint form of a pencil
with rectangular blocks is the hermitisation H = [[0, L], [Lᵀ, 0]], for which
r = (0; u)ᵀ H⁻¹ (v; 0).

The small, safe expression syntax of the command line is :mod:`.matrix_syntax`; :func:`pencil` takes text in it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import sympy as sp
from sympy.matrices.expressions import (
    Identity,
    Inverse,
    MatAdd,
    MatMul,
    MatPow,
    MatrixExpr,
    MatrixSymbol,
    Transpose,
    ZeroMatrix,
)

from .errors import UserError

#: An atom of a block entry: ``None`` is the identity, ``(name, transposed)`` a matrix symbol or its transpose.
Atom = tuple[str, bool] | None
#: A block entry: a linear combination ``{atom: scalar coefficient}``.
Entry = dict[Atom, sp.Expr]


def _clean(entry: Mapping[Atom, sp.Expr]) -> Entry:
    """Drop zero coefficients (after expansion) from a block entry."""
    out: Entry = {}
    for atom, coef in entry.items():
        c = sp.expand(sp.sympify(coef))
        if c != 0:
            out[atom] = c
    return out


def _is_constant(entry: Mapping[Atom, sp.Expr]) -> bool:
    """True when the entry is a scalar multiple of the identity (or zero)."""
    return all(atom is None for atom in entry)


def _scale(entry: Mapping[Atom, sp.Expr], c: sp.Expr) -> Entry:
    return {a: v * c for a, v in entry.items()}


def _transpose_entry(entry: Mapping[Atom, sp.Expr]) -> Entry:
    return {(None if a is None else (a[0], not a[1])): v for a, v in entry.items()}


class CopySum(MatrixExpr):
    """Σ_{l=1..k} expr(D_l): the sum of k exchangeable copies of ``expr``, in which the diagonal matrix ``member``
    D stands for its l-th copy D_l (D_1, …, D_k iid; written ``sum(D, k, expr)`` in the expression syntax).

    The pencil realises one copy and marks its blocks (:attr:`Pencil.copies`); the operator-valued derivation
    turns the copy into a representative with multiplicity ``count`` (a symbol or a positive integer), so the
    derived system does not grow with k."""

    def __new__(cls, expr: MatrixExpr, member: MatrixSymbol, count: sp.Expr) -> CopySum:
        return MatrixExpr.__new__(cls, expr, member, sp.sympify(count))

    @property
    def shape(self) -> tuple[sp.Expr, sp.Expr]:
        return self.args[0].shape

    @property
    def summand(self) -> MatrixExpr:
        return self.args[0]

    @property
    def member(self) -> MatrixSymbol:
        return self.args[1]

    @property
    def count(self) -> sp.Expr:
        return self.args[2]

    def _eval_transpose(self) -> CopySum:
        return CopySum(Transpose(self.summand).doit(), self.member, self.count)


@dataclass(frozen=True)
class CopyDraws:
    """The k copies of a diagonal matrix in one finite draw: row l holds the diagonal of D_l (k × size)."""

    diagonals: np.ndarray


@dataclass(frozen=True)
class Output:
    """One realised expression ``r = uᵀ L⁻¹ v`` of shape ``shape`` (``u``, ``v``: block → scalar)."""

    name: str
    u: Mapping[int, sp.Expr]
    v: Mapping[int, sp.Expr]
    shape: tuple[sp.Expr, sp.Expr]


@dataclass(frozen=True)
class Pencil:
    """A linear pencil ``L = L₀ + Σ Lᵢ ⊗ Xᵢ`` with one or more outputs ``uᵀ L⁻¹ v``.

    ``sizes[i]`` is the (symbolic) dimension of block i; ``entries[(i, j)]`` the linear combination in
    block (i, j) (absent: zero); ``symbols`` the matrix symbols by name (for their shapes).  A pencil of an
    expression with a :class:`CopySum` realises one copy: ``copies`` are the blocks of that copy and
    ``family`` = (D, k) its diagonal matrix and multiplicity (the pencil *is* L for k = 1; for k copies the
    copy blocks are repeated k times, each copy with its own D_l).
    """

    sizes: tuple[sp.Expr, ...]
    entries: Mapping[tuple[int, int], Entry]
    outputs: tuple[Output, ...]
    symbols: Mapping[str, MatrixSymbol]
    copies: frozenset[int] = frozenset()
    family: tuple[str, sp.Expr] | None = None

    # ----------------------------------------------------------------------------------- basic facts
    @property
    def size(self) -> int:
        """Number of blocks of L."""
        return len(self.sizes)

    @property
    def dimension(self) -> sp.Expr:
        """Total dimension Σᵢ sizes[i] of L (a polynomial in the dimension symbols)."""
        return sp.Add(*self.sizes)

    @property
    def u(self) -> Mapping[int, sp.Expr]:
        """The left vector of the first output."""
        return self.outputs[0].u

    @property
    def v(self) -> Mapping[int, sp.Expr]:
        """The right vector of the first output."""
        return self.outputs[0].v

    @property
    def is_symmetric(self) -> bool:
        """True when L equals its block transpose (entry (j, i) is the transpose of entry (i, j))."""
        keys = set(self.entries) | {(j, i) for (i, j) in self.entries}
        for i, j in keys:
            a = _clean(self.entries.get((i, j), {}))
            b = _clean(_transpose_entry(self.entries.get((j, i), {})))
            if a != b:
                return False
        return True

    # ----------------------------------------------------------------------------------- transforms
    def hermitize(self) -> Pencil:
        """The self-adjoint pencil H = [[0, L], [Lᵀ, 0]] with r = (0; u)ᵀ H⁻¹ (v; 0)."""
        n = self.size
        entries: dict[tuple[int, int], Entry] = {}
        for (i, j), e in self.entries.items():
            entries[(i, n + j)] = dict(e)
            entries[(n + j, i)] = _transpose_entry(e)
        outputs = tuple(Output(o.name, {n + i: c for i, c in o.u.items()}, dict(o.v), o.shape) for o in self.outputs)
        copies = self.copies | {n + i for i in self.copies}
        return Pencil(self.sizes + self.sizes, entries, outputs, dict(self.symbols), copies, self.family)

    def self_adjoint(self) -> Pencil:
        """The pencil itself when it is already symmetric, else its hermitisation."""
        return self if self.is_symmetric else self.hermitize()

    # ----------------------------------------------------------------------------------- numerics
    def matrix(
        self, values: Mapping[str, np.ndarray], dims: Mapping[sp.Symbol, int], params: Mapping[sp.Symbol, float]
    ) -> np.ndarray:
        """Assemble L as a dense array for given matrices (by name), dimensions and scalars."""
        n = [int(sp.sympify(s).xreplace(dict(dims))) for s in self.sizes]
        off = np.concatenate([[0], np.cumsum(n)]).astype(int)
        L = np.zeros((off[-1], off[-1]))
        subs = {**dict(dims), **dict(params)}
        for (i, j), e in self.entries.items():
            blk = L[off[i] : off[i + 1], off[j] : off[j + 1]]
            for atom, coef in e.items():
                c = float(sp.sympify(coef).xreplace(subs))
                if atom is None:
                    blk += c * np.eye(n[i], n[j])
                else:
                    m = np.asarray(values[atom[0]], dtype=float)
                    blk += c * (m.T if atom[1] else m)
        return L

    def evaluate(
        self, values: Mapping[str, np.ndarray], dims: Mapping[sp.Symbol, int], params: Mapping[sp.Symbol, float]
    ) -> list[np.ndarray]:
        """Numerical uᵀ L⁻¹ v for every output."""
        n = [int(sp.sympify(s).xreplace(dict(dims))) for s in self.sizes]
        off = np.concatenate([[0], np.cumsum(n)]).astype(int)
        L = self.matrix(values, dims, params)
        subs = {**dict(dims), **dict(params)}
        res = []
        for o in self.outputs:
            rows = int(sp.sympify(o.shape[0]).xreplace(dict(dims)))
            cols = int(sp.sympify(o.shape[1]).xreplace(dict(dims)))
            U = np.zeros((off[-1], rows))
            V = np.zeros((off[-1], cols))
            for i, c in o.u.items():
                U[off[i] : off[i + 1], :] = float(sp.sympify(c).xreplace(subs)) * np.eye(rows)
            for j, c in o.v.items():
                V[off[j] : off[j + 1], :] = float(sp.sympify(c).xreplace(subs)) * np.eye(cols)
            res.append(U.T @ np.linalg.solve(L, V))
        return res

    # ----------------------------------------------------------------------------------- printing
    def _entry_sympy(self, i: int, j: int, latex: bool) -> str:
        e = self.entries.get((i, j), {})
        if not e:
            return "0"
        terms = []
        for atom, coef in e.items():
            if atom is None:
                base = sp.Symbol("I")
            else:
                base = (
                    sp.Symbol(atom[0] + ("^T" if atom[1] else ""), commutative=False)
                    if not latex
                    else sp.Symbol(atom[0] + ("^{T}" if atom[1] else ""))
                )
            terms.append(coef * base)
        expr = sp.Add(*terms)
        return sp.latex(expr) if latex else sp.sstr(expr)

    def to_text(self) -> str:
        """A human-readable listing of blocks, non-zero entries and outputs."""
        lines = [f"pencil: {self.size} blocks, dimension {sp.sstr(self.dimension)}"]
        lines.append("block sizes: " + ", ".join(f"{i}:{sp.sstr(s)}" for i, s in enumerate(self.sizes)))
        if self.family is not None:
            lines.append(
                f"blocks {', '.join(map(str, sorted(self.copies)))} are one of {sp.sstr(self.family[1])} "
                f"exchangeable copies (each with its own {self.family[0]})"
            )
        for i, j in sorted(self.entries):
            lines.append(f"  L[{i},{j}] = {self._entry_sympy(i, j, False)}")
        for o in self.outputs:
            us = ", ".join(f"{i}:{sp.sstr(c)}" for i, c in sorted(o.u.items()))
            vs = ", ".join(f"{j}:{sp.sstr(c)}" for j, c in sorted(o.v.items()))
            lines.append(
                f"output {o.name} ({sp.sstr(o.shape[0])}x{sp.sstr(o.shape[1])}) = u^T L^-1 v,"
                f" u = {{{us}}}, v = {{{vs}}}"
            )
        return "\n".join(lines)

    def to_latex(self) -> str:
        """The block matrix L as a LaTeX ``pmatrix`` followed by the outputs."""
        rows = [" & ".join(self._entry_sympy(i, j, True) for j in range(self.size)) for i in range(self.size)]
        body = " \\\\\n".join(rows)
        out = [f"L = \\begin{{pmatrix}}\n{body}\n\\end{{pmatrix}}"]
        for o in self.outputs:
            us = ", ".join(f"u_{{{i}}} = {sp.latex(c)}" for i, c in sorted(o.u.items()))
            vs = ", ".join(f"v_{{{j}}} = {sp.latex(c)}" for j, c in sorted(o.v.items()))
            out.append(f"\\mathrm{{{o.name}}} = u^\\top L^{{-1}} v,\\quad {us};\\; {vs}")
        return "\n".join(out)

    def as_dict(self) -> dict[str, Any]:
        """A JSON-serialisable description (coefficients as SymPy strings)."""
        return {
            "size": self.size,
            "dimension": sp.sstr(self.dimension),
            "sizes": [sp.sstr(s) for s in self.sizes],
            "entries": [
                {
                    "row": i,
                    "col": j,
                    "terms": [
                        {"atom": "I" if a is None else a[0] + ("^T" if a[1] else ""), "coef": sp.sstr(c)}
                        for a, c in e.items()
                    ],
                }
                for (i, j), e in sorted(self.entries.items())
            ],
            "outputs": [
                {
                    "name": o.name,
                    "shape": [sp.sstr(o.shape[0]), sp.sstr(o.shape[1])],
                    "u": {str(i): sp.sstr(c) for i, c in o.u.items()},
                    "v": {str(j): sp.sstr(c) for j, c in o.v.items()},
                }
                for o in self.outputs
            ],
        }

    def to_json(self) -> str:
        return json.dumps(self.as_dict(), indent=2)


# ======================================================================================= builder
@dataclass
class _Lin:
    """Mutable realisation used during construction: one output (u, v) of shape ``shape``; ``copies`` the
    blocks of a :class:`CopySum`'s copy and ``family`` its (D, k)."""

    sizes: list[sp.Expr]
    entries: dict[tuple[int, int], Entry]
    u: dict[int, sp.Expr]
    v: dict[int, sp.Expr]
    shape: tuple[sp.Expr, sp.Expr]
    symbols: dict[str, MatrixSymbol] = field(default_factory=dict)
    copies: set[int] = field(default_factory=set)
    family: tuple[str, sp.Expr] | None = None

    def shifted(self, k: int) -> tuple[dict[tuple[int, int], Entry], dict[int, sp.Expr], dict[int, sp.Expr]]:
        ent = {(i + k, j + k): dict(e) for (i, j), e in self.entries.items()}
        return ent, {i + k: c for i, c in self.u.items()}, {j + k: c for j, c in self.v.items()}


def _joined(a: _Lin, b: _Lin) -> tuple[set[int], tuple[str, sp.Expr] | None]:
    """The copy blocks and family of a and b side by side (b shifted past a); one copy sum per expression."""
    if a.family is not None and b.family is not None:
        raise UserError("an expression may contain one sum(D, k, ...) only (and use it once).")
    return a.copies | {i + len(a.sizes) for i in b.copies}, a.family or b.family


def _atom(sym: MatrixSymbol) -> _Lin:
    m, n = sym.shape
    return _Lin(
        [m, n],
        {(0, 0): {None: sp.S.One}, (0, 1): {(sym.name, False): -sp.S.One}, (1, 1): {None: sp.S.One}},
        {0: sp.S.One},
        {1: sp.S.One},
        (m, n),
        {sym.name: sym},
    )


def _scalar_identity(c: sp.Expr, m: sp.Expr) -> _Lin:
    return _Lin([m], {(0, 0): {None: sp.S.One}}, {0: sp.S.One}, {0: sp.sympify(c)}, (m, m))


def _zero(m: sp.Expr, n: sp.Expr) -> _Lin:
    return _Lin([m, n], {(0, 0): {None: sp.S.One}, (1, 1): {None: sp.S.One}}, {0: sp.S.One}, {1: sp.S.One}, (m, n))


def _sum(a: _Lin, b: _Lin) -> _Lin:
    ea, ua, va = a.shifted(0)
    eb, ub, vb = b.shifted(len(a.sizes))
    copies, family = _joined(a, b)
    return _Lin(
        a.sizes + b.sizes, {**ea, **eb}, {**ua, **ub}, {**va, **vb}, a.shape, {**a.symbols, **b.symbols}, copies, family
    )


def _product(a: _Lin, b: _Lin) -> _Lin:
    ea, ua, va = a.shifted(0)
    eb, ub, vb = b.shifted(len(a.sizes))
    ent = {**ea, **eb}
    for i, cv in va.items():
        for j, cu in ub.items():
            ent[(i, j)] = {None: -cv * cu}
    copies, family = _joined(a, b)
    return _Lin(a.sizes + b.sizes, ent, ua, vb, (a.shape[0], b.shape[1]), {**a.symbols, **b.symbols}, copies, family)


def _transpose(a: _Lin) -> _Lin:
    ent = {(j, i): _transpose_entry(e) for (i, j), e in a.entries.items()}
    return _Lin(
        list(a.sizes), ent, dict(a.v), dict(a.u), (a.shape[1], a.shape[0]), dict(a.symbols), set(a.copies), a.family
    )


def _inverse(a: _Lin) -> _Lin:
    if a.shape[0] != a.shape[1]:
        raise UserError(f"cannot invert a non-square {a.shape[0]}x{a.shape[1]} matrix expression.")
    k = len(a.sizes)
    ent = {key: dict(e) for key, e in a.entries.items()}
    for i, c in a.v.items():
        ent[(i, k)] = {None: -c}
    for j, c in a.u.items():
        ent[(k, j)] = {None: c}
    return _Lin(
        a.sizes + [a.shape[0]], ent, {k: sp.S.One}, {k: sp.S.One}, a.shape, dict(a.symbols), set(a.copies), a.family
    )


def _realize(expr: MatrixExpr) -> _Lin:
    """Recursive realisation of a SymPy matrix expression (see the module docstring)."""
    if isinstance(expr, MatrixSymbol):
        return _atom(expr)
    if isinstance(expr, CopySum):
        lin = _realize(expr.summand)
        if lin.family is not None:
            raise UserError("sums of copies cannot be nested: write one sum(D, k, ...).")
        lin.copies = set(range(len(lin.sizes)))
        lin.family = (expr.member.name, expr.count)
        return lin
    if isinstance(expr, Identity):
        return _scalar_identity(sp.S.One, expr.rows)
    if isinstance(expr, ZeroMatrix):
        return _zero(expr.rows, expr.cols)
    if isinstance(expr, Transpose):
        return _transpose(_realize(expr.arg))
    if isinstance(expr, Inverse):
        return _inverse(_realize(expr.arg))
    if isinstance(expr, MatPow):
        base, e = expr.args
        if not (e.is_Integer and e != 0):
            raise UserError(f"only non-zero integer matrix powers are supported, got {sp.sstr(e)}.")
        lin = _realize(base)
        out = lin
        for _ in range(abs(int(e)) - 1):
            out = _product(out, _realize(base))
        return _inverse(out) if e < 0 else out
    if isinstance(expr, MatAdd):
        terms = [_realize(t) for t in expr.args]
        out = terms[0]
        for t in terms[1:]:
            out = _sum(out, t)
        return out
    if isinstance(expr, MatMul):
        coeff, mats = expr.as_coeff_matrices()
        if not mats:
            raise UserError("a matrix product has no matrix factor.")
        out = _realize(mats[0])
        for m in mats[1:]:
            out = _product(out, _realize(m))
        if coeff != 1:
            out.v = {j: c * coeff for j, c in out.v.items()}
        return out
    raise UserError(f"unsupported matrix expression {type(expr).__name__}: {sp.sstr(expr)}.")


# ======================================================================================= pruning
def _eliminable(
    k: int,
    sizes: Sequence[sp.Expr],
    ent: Mapping[tuple[int, int], Entry],
    outs: Sequence[tuple[dict[int, sp.Expr], dict[int, sp.Expr]]],
) -> bool:
    diag = ent.get((k, k), {})
    if not diag or not _is_constant(diag) or not diag[None].is_number or diag[None] == 0:
        return False
    col = [(i, e) for (i, j), e in ent.items() if j == k and i != k and e]
    row = [(j, e) for (i, j), e in ent.items() if i == k and j != k and e]
    for _, ei in col:
        for _, ej in row:
            if not (_is_constant(ei) or _is_constant(ej)):
                return False
    for u, v in outs:
        if k in u and k in v:
            return False
        if k in u and not all(_is_constant(e) for _, e in row):
            return False
        if k in v and not all(_is_constant(e) for _, e in col):
            return False
    return True


def _eliminate(
    k: int, ent: dict[tuple[int, int], Entry], outs: list[tuple[dict[int, sp.Expr], dict[int, sp.Expr]]]
) -> None:
    """Schur-complement block k away (in place); see the module docstring for the formulas."""
    alpha = ent[(k, k)][None]
    col = [(i, e) for (i, j), e in ent.items() if j == k and i != k and e]
    row = [(j, e) for (i, j), e in ent.items() if i == k and j != k and e]
    for i, ei in col:
        for j, ej in row:
            if _is_constant(ei):
                upd = _scale(ej, ei[None] / alpha)
            else:
                upd = _scale(ei, ej[None] / alpha)
            cur = dict(ent.get((i, j), {}))
            for a, c in upd.items():
                cur[a] = cur.get(a, sp.S.Zero) - c
            cur = _clean(cur)
            if cur:
                ent[(i, j)] = cur
            else:
                ent.pop((i, j), None)
    for u, v in outs:
        if k in u:
            for j, ej in row:
                u[j] = sp.expand(u.get(j, sp.S.Zero) - ej[None] * u[k] / alpha)
                if u[j] == 0:
                    del u[j]
            del u[k]
        if k in v:
            for i, ei in col:
                v[i] = sp.expand(v.get(i, sp.S.Zero) - ei[None] * v[k] / alpha)
                if v[i] == 0:
                    del v[i]
            del v[k]
    for key in [key for key in ent if k in key]:
        del ent[key]


def _reachable(start: Iterable[int], edges: Mapping[int, set[int]]) -> set[int]:
    seen = set(start)
    stack = list(seen)
    while stack:
        x = stack.pop()
        for y in edges.get(x, ()):
            if y not in seen:
                seen.add(y)
                stack.append(y)
    return seen


def _trim(
    n: int, ent: Mapping[tuple[int, int], Entry], outs: Sequence[tuple[dict[int, sp.Expr], dict[int, sp.Expr]]]
) -> set[int]:
    """Blocks that x = L⁻¹v reaches and y = L⁻ᵀu reaches (for some output)."""
    down: dict[int, set[int]] = {}
    up: dict[int, set[int]] = {}
    for (i, j), e in ent.items():
        if e and i != j:
            down.setdefault(j, set()).add(i)  # x_j ≠ 0 feeds row i
            up.setdefault(i, set()).add(j)
    keep: set[int] = set()
    for u, v in outs:
        keep |= _reachable(v, down) & _reachable(u, up)
    return keep


def _prune(
    lin_sizes: list[sp.Expr],
    ent: dict[tuple[int, int], Entry],
    outs: list[tuple[dict[int, sp.Expr], dict[int, sp.Expr]]],
) -> list[int]:
    """Eliminate and trim until nothing changes; returns the surviving block indices."""
    alive = set(range(len(lin_sizes)))
    changed = True
    while changed:
        changed = False
        for k in sorted(alive, reverse=True):
            if _eliminable(k, lin_sizes, ent, outs):
                _eliminate(k, ent, outs)
                alive.discard(k)
                changed = True
        keep = _trim(len(lin_sizes), ent, outs) & alive
        if keep != alive:
            for key in [key for key in ent if key[0] not in keep or key[1] not in keep]:
                del ent[key]
            for u, v in outs:
                for i in [i for i in u if i not in keep]:
                    del u[i]
                for j in [j for j in v if j not in keep]:
                    del v[j]
            alive = keep
            changed = True
    return sorted(alive)


def linearize(exprs: MatrixExpr | Mapping[str, MatrixExpr], prune: bool = True) -> Pencil:
    """Linear pencil of one expression (output ``"r"``) or of several named expressions.

    Several expressions are realised as a direct sum of their pencils (one output each), then pruned
    jointly.  Raises :class:`UserError` for unsupported constructs (e.g. a non-square inverse).
    """
    items = list(exprs.items()) if isinstance(exprs, Mapping) else [("r", exprs)]
    if not items:
        raise UserError("nothing to linearise: give at least one matrix expression.")
    sizes: list[sp.Expr] = []
    ent: dict[tuple[int, int], Entry] = {}
    outs: list[tuple[dict[int, sp.Expr], dict[int, sp.Expr]]] = []
    shapes: list[tuple[sp.Expr, sp.Expr]] = []
    symbols: dict[str, MatrixSymbol] = {}
    copies: set[int] = set()
    family: tuple[str, sp.Expr] | None = None
    for _, expr in items:
        if not isinstance(expr, MatrixExpr):
            raise UserError(f"expected a matrix expression, got the scalar {sp.sstr(expr)}.")
        lin = _realize(expr)
        if lin.family is not None:
            if family is not None:
                raise UserError("only one of several expressions may contain a sum(D, k, ...).")
            family = lin.family
            copies = {i + len(sizes) for i in lin.copies}
        e, u, v = lin.shifted(len(sizes))
        sizes += lin.sizes
        ent.update({key: _clean(val) for key, val in e.items() if _clean(val)})
        outs.append((u, v))
        shapes.append(lin.shape)
        symbols.update(lin.symbols)
    alive = _prune(sizes, ent, outs) if prune else list(range(len(sizes)))
    index = {old: new for new, old in enumerate(alive)}
    entries = {(index[i], index[j]): e for (i, j), e in ent.items()}
    outputs = tuple(
        Output(name, {index[i]: c for i, c in u.items()}, {index[j]: c for j, c in v.items()}, shape)
        for (name, _), (u, v), shape in zip(items, outs, shapes)
    )
    kept = frozenset(index[i] for i in copies if i in index)
    return Pencil(tuple(sizes[i] for i in alive), entries, outputs, symbols, kept, family if kept else None)


# ======================================================================================= numerics
def evaluate_expression(expr: MatrixExpr, values: Mapping[str, Any], subs: Mapping[sp.Symbol, float]) -> np.ndarray:
    """Direct numerical evaluation of a matrix expression (the reference for :func:`check_pencil`).

    The member D of a :class:`CopySum` is given either as :class:`CopyDraws` (its k copies, one draw each)
    or as one matrix, which then stands for every copy (k from ``subs``)."""
    current: dict[str, np.ndarray] = {}

    def copy_sum(e: CopySum) -> np.ndarray:
        name = e.member.name
        given = values[name]
        if isinstance(given, CopyDraws):
            stack = [np.diag(row) for row in given.diagonals]
        else:
            given = np.asarray(given, dtype=float)
            k = complex(sp.sympify(e.count).xreplace(dict(subs)))
            if k.imag or k.real != round(k.real) or k.real < 1:
                raise UserError(f"the number of copies {sp.sstr(e.count)} must be a positive integer, got {k}.")
            stack = [given] * int(round(k.real))
        total = None
        for member in stack:
            current[name] = member
            term = ev(e.summand)
            total = term if total is None else total + term
        del current[name]
        assert total is not None
        return total

    def ev(e: Any) -> np.ndarray:
        if isinstance(e, MatrixSymbol):
            if e.name in current:
                return current[e.name]
            return np.asarray(values[e.name], dtype=float)
        if isinstance(e, CopySum):
            return copy_sum(e)
        if isinstance(e, Identity):
            return np.eye(int(sp.sympify(e.rows).xreplace(dict(subs))))
        if isinstance(e, ZeroMatrix):
            return np.zeros(
                (int(sp.sympify(e.rows).xreplace(dict(subs))), int(sp.sympify(e.cols).xreplace(dict(subs))))
            )
        if isinstance(e, Transpose):
            return ev(e.arg).T
        if isinstance(e, Inverse):
            return np.linalg.inv(ev(e.arg))
        if isinstance(e, MatPow):
            base, k = e.args
            m = np.linalg.matrix_power(ev(base), abs(int(k)))
            return np.linalg.inv(m) if k < 0 else m
        if isinstance(e, MatAdd):
            return sum((ev(t) for t in e.args[1:]), ev(e.args[0]))
        if isinstance(e, MatMul):
            coeff, mats = e.as_coeff_matrices()
            out = ev(mats[0])
            for m in mats[1:]:
                out = out @ ev(m)
            return float(sp.sympify(coeff).xreplace(dict(subs))) * out
        raise UserError(f"cannot evaluate {type(e).__name__}.")

    return ev(expr)


def one_copy(expr: MatrixExpr) -> MatrixExpr:
    """``expr`` with every sum of copies replaced by one copy (k = 1)."""
    return expr.replace(lambda x: isinstance(x, CopySum), lambda x: x.summand)


def copy_counts(expr: MatrixExpr, values: Mapping[str, float]) -> dict[str, int]:
    """The number of copies of each sum of copies in ``expr`` (member name → k) at the parameter ``values``
    (by name); a non-integer or missing k is refused."""
    out = {}
    for node in expr.atoms(CopySum) if hasattr(expr, "atoms") else ():
        count = sp.sympify(node.count)
        k = sp.sympify(count.xreplace({s: sp.Float(values[str(s)]) for s in count.free_symbols if str(s) in values}))
        if k.free_symbols:
            raise UserError(f"give the number of copies with --param {sp.sstr(count)}=K (a positive integer).")
        if not (k.is_number and float(k) == round(float(k)) and float(k) >= 1):
            raise UserError(f"the number of copies {sp.sstr(count)} must be a positive integer, got {sp.sstr(k)}.")
        out[node.member.name] = int(round(float(k)))
    return out


def _expr_dims_params(exprs: Iterable[MatrixExpr]) -> tuple[set[sp.Symbol], set[sp.Symbol], dict[str, MatrixSymbol]]:
    dims: set[sp.Symbol] = set()
    params: set[sp.Symbol] = set()
    syms: dict[str, MatrixSymbol] = {}
    for expr in exprs:
        for s in expr.atoms(MatrixSymbol):
            syms[s.name] = s
            for d in s.shape:
                dims |= sp.sympify(d).free_symbols
        for idn in expr.atoms(Identity):
            dims |= sp.sympify(idn.rows).free_symbols
        params |= {s for s in expr.free_symbols if isinstance(s, sp.Symbol) and not isinstance(s, MatrixSymbol)}
    return dims, params - dims, syms


def check_pencil(
    pencil: Pencil,
    expr: MatrixExpr | Mapping[str, MatrixExpr],
    sizes: Mapping[sp.Symbol | str, int],
    rng: np.random.Generator,
    params: Mapping[sp.Symbol | str, float] | None = None,
) -> float:
    """Largest relative error ‖uᵀL⁻¹v − r‖_F / ‖r‖_F over the outputs, for random finite matrices.

    Matrix symbols get iid N(0, 1/rows) entries, scalar parameters not given in ``params`` a value
    drawn uniformly from [0.5, 1.5]; ``sizes`` maps every dimension symbol (or its name) to an integer.
    """
    exprs = dict(expr) if isinstance(expr, Mapping) else {"r": expr}
    dims, pars, syms = _expr_dims_params(exprs.values())
    by_name = {str(s): s for s in dims | pars}
    dim_vals: dict[sp.Symbol, int] = {}
    for key, val in sizes.items():
        sym = by_name.get(str(key))
        if sym is not None:
            dim_vals[sym] = int(val)
    missing = [str(d) for d in dims if d not in dim_vals]
    if missing:
        raise UserError(f"check_pencil needs sizes for {', '.join(sorted(missing))}.")
    par_vals: dict[sp.Symbol, float] = {}
    given = {str(k): float(v) for k, v in (params or {}).items()}
    for p in sorted(pars, key=str):
        par_vals[p] = given.get(str(p), float(rng.uniform(0.5, 1.5)))
    values = {}
    for name, s in sorted(syms.items()):
        r, c = (int(sp.sympify(x).xreplace(dim_vals)) for x in s.shape)
        values[name] = rng.standard_normal((r, c)) / np.sqrt(r)
    subs = {**dim_vals, **par_vals}
    got = pencil.evaluate(values, dim_vals, par_vals)
    err = 0.0
    for g, (_, e) in zip(got, exprs.items()):
        ref = evaluate_expression(one_copy(e), values, subs)  # the pencil of a sum of copies realises one
        err = max(err, float(np.linalg.norm(g - ref)) / max(float(np.linalg.norm(ref)), 1e-300))
    return err


def pencil(expr: MatrixExpr | Mapping[str, MatrixExpr] | str, shapes: Iterable[str] = (), prune: bool = True) -> Pencil:
    """The linear pencil of a SymPy matrix expression (or of several named ones, :func:`linearize`), or of an
    expression written in the syntax of :data:`~.syntax.SYNTAX_HELP`, e.g. ``pencil('inv(lam*I + Ft*F/n)',
    shapes=['F=n,p'])``: ``shapes`` declares its matrices as in ``--shape`` (a matrix must be declared to be
    one; an undeclared name is a scalar)."""
    if isinstance(expr, str):
        from .matrix_syntax import declare_shapes, parse_expression  # the syntax builds on this module's CopySum

        mats, dims = declare_shapes(shapes)
        if not mats:
            raise UserError(
                "declare the matrices of an expression string, e.g. pencil('inv(lam*I + Ft*F/n)', shapes=['F=n,p'])."
            )
        return linearize(parse_expression(expr, mats, dims), prune)
    return linearize(expr, prune)
