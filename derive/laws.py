"""Declarations of the matrices of a pencil: diagonal laws (joint, continuous, data files, functions of other
diagonals), scalar parameter values (real or complex), and structural checks of expressions.

``--diag`` syntax (one declaration per option; names of one declaration share the index j):

* ``D=p``: diag(ζ) with ζ_j iid N(0, 1); several such declarations of one size form ζ_j ~ N(0, I_k);
* ``S=d@1:0.3,3:0.7`` or ``S=d@1,3``: a discrete law (value:weight, or equal weights);
* ``S=d@uniform(0.5,2)``: ζ_j uniform on [0.5, 2] (expectations by Gauss–Legendre quadrature);
* ``S,T=d@spectrum.csv``: a joint empirical law, one row per index j and one column per name, equal weights
  (comma- or whitespace-separated numbers, ``#`` comments, an optional header line);
* ``B=d@A``, ``B=d@A^2``, ``B=d@sqrt(A)``, ``B=d@1/(1+A)``: B is diag(f(ζ_{j,A})), the same index j as A
  (``@A`` makes B the same matrix as A); f may use several declared diagonals of the same size, numbers,
  + − * / ^ ** ( ) and sqrt, exp, log, abs.

Nothing here evaluates user text: the function syntax is tokenised and parsed into SymPy by hand.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import sympy as sp
from sympy import Inverse, MatrixSymbol

from .errors import UserError
from .syntax import DescentParser, tokenize

RESERVED = ("I", "inv", "t", "sqrt", "sum", "exp", "log", "abs", "uniform")
_NAME = r"[A-Za-z_][A-Za-z_0-9]*"
_FILE_SUFFIXES = (".csv", ".txt", ".tsv", ".dat")
#: Largest data file read for an empirical law (rows).
MAX_ROWS = 1_000_000


# ======================================================================================= atoms
@dataclass(frozen=True)
class GaussianMatrix:
    """A Gaussian matrix symbol: iid centred entries of variance ``variance`` (symmetric: a Wigner matrix)."""

    name: str
    variance: sp.Expr | float = 1
    symmetric: bool = False


@dataclass(frozen=True)
class DiagonalLaw:
    """Diagonal matrix symbols D_l = diag(ζ_{·l}) sharing the index j, with ζ_j iid from one (joint) law.

    ``kind="normal"``: the coordinates ζ_{jl} are iid N(0, 1) (so ζ_j ~ N(0, I_k)).
    ``kind="discrete"``: ζ_j takes the value ``atoms[a]`` (one number per name) with probability ``weights[a]``;
    a joint empirical law (rows of a data file, equal weights) is a discrete law with one atom per row.
    ``kind="uniform"``: one name, ζ_j uniform on [``low``, ``high``] (Gauss–Legendre quadrature).
    """

    names: tuple[str, ...]
    kind: str = "normal"
    atoms: tuple[tuple[float, ...], ...] = ()
    weights: tuple[float, ...] = ()
    low: float = 0.0
    high: float = 1.0

    def __post_init__(self) -> None:
        if self.kind not in ("normal", "discrete", "uniform"):
            raise UserError(f"diagonal law kind must be 'normal', 'discrete' or 'uniform', got {self.kind!r}.")
        if len(set(self.names)) != len(self.names) or not self.names:
            raise UserError("a diagonal law needs distinct matrix names.")
        if self.kind == "discrete":
            if not self.atoms or len(self.atoms) != len(self.weights):
                raise UserError("a discrete diagonal law needs as many weights as atoms.")
            if any(len(a) != len(self.names) for a in self.atoms):
                raise UserError("every atom of a discrete diagonal law needs one value per diagonal matrix.")
            if not all(math.isfinite(x) for a in self.atoms for x in a):
                raise UserError("the atoms of a discrete diagonal law must be finite numbers.")
            if any(not (w >= 0) for w in self.weights) or abs(math.fsum(self.weights) - 1) > 1e-12:
                raise UserError("the weights of a discrete diagonal law must be >= 0 and sum to 1.")
        if self.kind == "uniform":
            if len(self.names) != 1:
                raise UserError("a uniform diagonal law describes one diagonal matrix.")
            if not (math.isfinite(self.low) and math.isfinite(self.high) and self.low < self.high):
                raise UserError(f"a uniform law needs finite a < b, got [{self.low:g}, {self.high:g}].")

    @property
    def exact(self) -> bool:
        """True when expectations over this law are taken symbolically (normal, or a few atoms)."""
        return self.kind == "normal" or (self.kind == "discrete" and len(self.atoms) <= EXACT_SUM_ATOMS)

    def rule(self, coarse: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """Nodes (M × len(names)) and weights (M) of the numerical expectation over this law.

        Discrete laws are summed exactly (``coarse`` changes nothing); uniform laws use Gauss–Legendre with
        :data:`LEGENDRE_NODES` nodes (half as many when ``coarse``, for the error estimate)."""
        if self.kind == "discrete":
            return np.asarray(self.atoms, dtype=float), np.asarray(self.weights, dtype=float)
        if self.kind == "uniform":
            x, w = np.polynomial.legendre.leggauss(LEGENDRE_NODES // 2 if coarse else LEGENDRE_NODES)
            mid, half = (self.high + self.low) / 2, (self.high - self.low) / 2
            return (mid + half * x)[:, None], w / 2
        raise UserError("a normal law has no finite rule; it is integrated by Gauss–Hermite.")

    def sample(self, size: int, rng: np.random.Generator) -> np.ndarray:
        """``size`` iid draws of ζ_j (size × len(names)); an empirical law with exactly ``size`` rows is used
        as it is (each row once, in random order)."""
        if self.kind == "normal":
            return rng.standard_normal((size, len(self.names)))
        if self.kind == "uniform":
            return rng.uniform(self.low, self.high, (size, 1))
        atoms = np.asarray(self.atoms, dtype=float)
        w = np.asarray(self.weights, dtype=float)
        if len(atoms) == size and np.allclose(w, 1.0 / size):
            return atoms[rng.permutation(size)]
        return atoms[rng.choice(len(atoms), size=size, p=w / w.sum())]


@dataclass(frozen=True)
class DiagonalFunction:
    """A diagonal matrix that is a function of other diagonal matrices with the same index j:
    diag(f(ζ_{j,A}, ζ_{j,B}, …)); ``expr`` is written in the symbols :func:`zeta_symbol` of those matrices.
    (``DiagonalFunction("B", zeta_symbol("A"))`` makes B the same matrix as A.)"""

    name: str
    expr: sp.Expr


#: Discrete laws with at most this many atoms are summed symbolically; larger ones (e.g. a data file) numerically.
EXACT_SUM_ATOMS = 16
#: Gauss–Legendre nodes for continuous (uniform) laws.
LEGENDRE_NODES = 96
#: Gauss–Hermite nodes per normal coordinate of a numerical expectation over 1, 2, 3 normal coordinates
#: (:data:`HERMITE_NODES_MANY` for four or more).
HERMITE_NODES = {1: 120, 2: 60, 3: 28}
HERMITE_NODES_MANY = 14


def expectation_rule(
    laws: Sequence[tuple[DiagonalLaw | None, int]], coarse: bool = False
) -> list[tuple[tuple[int, ...], np.ndarray, np.ndarray]]:
    """The rule of a numerical expectation over coordinates ζ_0, ζ_1, … whose laws are ``laws`` (per
    coordinate: its :class:`DiagonalLaw` and its column in that law; ``None`` or a normal law: N(0, 1)), as
    independent factors (axes, nodes (M × len(axes)), weights (M)) whose tensor product is the rule
    (:func:`tensor_rule`): one Gauss–Hermite factor per normal coordinate (:data:`HERMITE_NODES` by how many
    there are, half as many when ``coarse``), and one factor per other law over its coordinates
    (:meth:`DiagonalLaw.rule`: its atoms, or Gauss–Legendre)."""
    normal = [pos for pos, (law, _) in enumerate(laws) if law is None or law.kind == "normal"]
    factors: list[tuple[tuple[int, ...], np.ndarray, np.ndarray]] = []
    if normal:
        n = HERMITE_NODES.get(len(normal), HERMITE_NODES_MANY)
        x, w = np.polynomial.hermite_e.hermegauss(n // 2 if coarse else n)
        factors += [((pos,), x[:, None], w / math.sqrt(2 * math.pi)) for pos in normal]
    groups: dict[int, tuple[DiagonalLaw, list[int], list[int]]] = {}
    for pos, (law, column) in enumerate(laws):
        if law is not None and law.kind != "normal":
            entry = groups.setdefault(id(law), (law, [], []))
            entry[1].append(pos)
            entry[2].append(column)
    for law, positions, columns in groups.values():
        nodes, w = law.rule(coarse)
        factors.append((tuple(positions), nodes[:, columns], w))
    return factors


def tensor_rule(
    factors: Sequence[tuple[Sequence[int], np.ndarray, np.ndarray]], width: int
) -> tuple[list[np.ndarray], np.ndarray]:
    """Nodes (one array per coordinate, ``width`` of them) and weights of the tensor product of ``factors``
    (:func:`expectation_rule`)."""
    nodes = np.zeros((1, width))
    weights = np.ones(1)
    for axes, x, w in factors:
        m_old, m_new = len(weights), len(w)
        nodes = np.repeat(nodes, m_new, axis=0)
        nodes[:, list(axes)] = np.tile(np.asarray(x, dtype=float).reshape(m_new, len(axes)), (m_old, 1))
        weights = np.repeat(weights, m_new) * np.tile(np.asarray(w, dtype=float), m_old)
    return [nodes[:, j].copy() for j in range(width)], weights


def zeta_symbol(name: str) -> sp.Symbol:
    """The scalar ζ standing for the diagonal entries of the diagonal matrix ``name``."""
    return sp.Symbol(f"zeta_{name}", real=True)


# ======================================================================================= scalar functions
#: Operators of the function syntax.
_FOPERATORS = ("**", "+", "-", "*", "/", "^", "(", ")")
_FUNCS = {"sqrt": sp.sqrt, "exp": sp.exp, "log": sp.log, "abs": sp.Abs}


class _FunctionParser(DescentParser):
    """expr := term (('+'|'-') term)*; term := unary (('*'|'/') unary)*; unary := '-' unary | power;
    power := atom (('^'|'**') unary)?; atom := number | name | func '(' expr ')' | '(' expr ')'."""

    def __init__(self, text: str, variables: Mapping[str, sp.Symbol], owner: str):
        super().__init__(tokenize(text, _FOPERATORS, f"the law of {owner}"), f"the law of {owner}")
        self.owner = owner
        self.variables = variables

    def parse(self) -> sp.Expr:
        if not self.tokens:
            raise UserError(f"the law of {self.owner} is empty.")
        out = self.expr()
        if self.peek() is not None:
            raise UserError(f"unexpected {self.peek()!r} in the law of {self.owner}.")
        return out

    def expr(self) -> sp.Expr:
        with self.nested():
            out = self.term()
            while self.peek() in ("+", "-"):
                op = self.take()[1]
                rhs = self.term()
                out = out + rhs if op == "+" else out - rhs
            return out

    def term(self) -> sp.Expr:
        out = self.unary()
        while self.peek() in ("*", "/"):
            op = self.take()[1]
            rhs = self.unary()
            if op == "/" and rhs == 0:
                raise UserError(f"division by zero in the law of {self.owner}.")
            out = out * rhs if op == "*" else out / rhs
        return out

    def unary(self) -> sp.Expr:
        if self.peek() in ("+", "-"):
            op = self.take()[1]
            with self.nested():
                x = self.unary()
            return -x if op == "-" else x
        return self.power()

    def power(self) -> sp.Expr:
        base = self.atom()
        if self.peek() in ("^", "**"):
            self.take()
            with self.nested():
                exponent = self.unary()
            if exponent.free_symbols or abs(float(exponent)) > 64:
                raise UserError(f"exponents in the law of {self.owner} must be numbers of size at most 64.")
            return base**exponent
        return base

    def atom(self) -> sp.Expr:
        kind, val = self.take()
        if kind == "num":
            return sp.Rational(val) if re.fullmatch(r"\d+", val) else sp.nsimplify(float(val), rational=True)
        if kind == "name":
            if self.peek() == "(":
                if val not in _FUNCS:
                    raise UserError(f"unknown function {val!r} in the law of {self.owner}; use sqrt, exp, log or abs.")
                self.take()
                arg = self.expr()
                if self.take()[1] != ")":
                    raise UserError(f"missing ')' in the law of {self.owner}.")
                return _FUNCS[val](arg)
            if val not in self.variables:
                raise UserError(
                    f"{val!r} in the law of {self.owner} is not a declared diagonal matrix of the same size."
                )
            return self.variables[val]
        if val == "(":
            out = self.expr()
            if self.take()[1] != ")":
                raise UserError(f"missing ')' in the law of {self.owner}.")
            return out
        raise UserError(f"unexpected {val!r} in the law of {self.owner}.")


def parse_function(text: str, variables: Mapping[str, sp.Symbol], owner: str) -> sp.Expr:
    """Parse a scalar function of diagonal entries (see the module docstring); never evaluates text."""
    return _FunctionParser(text, variables, owner).parse()


# ======================================================================================= laws
def _numbers_law(names: tuple[str, ...], law: str) -> DiagonalLaw | None:
    """``v1:w1,v2:w2`` or ``v1,v2`` → a discrete law, or None when the text is not a list of numbers."""
    values: list[float] = []
    given: list[float | None] = []
    items = law.split(",")
    rest = re.sub(r"\d+\.?\d*(?:[eE][-+]?\d+)?|\.\d+(?:[eE][-+]?\d+)?", "", law)
    words = {w.lower() for w in re.findall(r"[A-Za-z_][A-Za-z_0-9]*", rest)}
    if (words - {"inf", "nan", "infinity"}) or re.search(r"[()*/^]", rest):
        return None  # a function of other diagonals
    for item in items:
        parts = item.split(":")
        try:
            numbers = [float(part) for part in parts]
        except ValueError:
            raise UserError(f"bad law {law!r} for {names[0]}; write v1:w1,v2:w2 or v1,v2.") from None
        if len(parts) > 2 or not all(math.isfinite(x) for x in numbers):
            raise UserError(f"bad law {law!r} for {names[0]}; write v1:w1,v2:w2 or v1,v2 with finite numbers.")
        values.append(numbers[0])
        given.append(numbers[1] if len(numbers) == 2 else None)
    if len(names) != 1:
        raise UserError(
            f"a list of values describes one diagonal matrix, not {', '.join(names)}; give a joint law as a data file."
        )
    if all(w is None for w in given):
        weights = [1.0 / len(values)] * len(values)
    elif any(w is None for w in given):
        raise UserError(f"give a weight for every value of the law of {names[0]}, or none.")
    else:
        weights = [w for w in given if w is not None]
    return DiagonalLaw(names, "discrete", tuple((v,) for v in values), tuple(weights))


def read_law_file(path: str | Path, names: tuple[str, ...]) -> DiagonalLaw:
    """A joint empirical law from a data file: one row per index j, one column per name, equal weights."""
    label = ", ".join(names)
    p = Path(path)
    if not p.is_file():
        raise UserError(f"the law of {label}: no such file {str(path)!r}.")
    rows: list[list[float]] = []
    header = False
    try:
        with p.open("r", encoding="utf-8") as fh:
            for number, line in enumerate(fh, 1):
                text = line.split("#", 1)[0].strip()
                if not text:
                    continue
                cells = [c for c in re.split(r"[,\s;]+", text) if c]
                try:
                    vals = [float(c) for c in cells]
                except ValueError:
                    if not rows and not header:
                        header = True  # one header line before the first row
                        continue
                    raise UserError(f"{p.name}, line {number}: not a row of numbers.") from None
                if len(vals) != len(names):
                    raise UserError(
                        f"{p.name}, line {number}: {len(vals)} columns for {len(names)} matrices ({label})."
                    )
                if not all(math.isfinite(v) for v in vals):
                    raise UserError(f"{p.name}, line {number}: numbers must be finite.")
                rows.append(vals)
                if len(rows) > MAX_ROWS:
                    raise UserError(f"{p.name} has more than {MAX_ROWS} rows.")
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"cannot read {str(path)!r}: {exc.__class__.__name__}.") from None
    if not rows:
        raise UserError(f"{p.name} holds no rows of numbers.")
    m = len(rows)
    return DiagonalLaw(names, "discrete", tuple(tuple(r) for r in rows), tuple([1.0 / m] * m))


def _uniform_law(names: tuple[str, ...], law: str) -> DiagonalLaw | None:
    m = re.fullmatch(r"\s*(?:uniform|U)\s*\(\s*([^,()]+?)\s*,\s*([^,()]+?)\s*\)\s*", law)
    if not m:
        return None
    try:
        a, b = float(m.group(1)), float(m.group(2))
    except ValueError:
        raise UserError(f"bad uniform law {law!r}; write uniform(a,b) with numbers a < b.") from None
    if len(names) != 1:
        raise UserError("a uniform law describes one diagonal matrix.")
    return DiagonalLaw(names, "uniform", low=a, high=b)


def declare_diagonals(
    specs: Iterable[str], dims: dict[str, sp.Symbol], taken: Iterable[str] = ()
) -> tuple[dict[str, MatrixSymbol], list[DiagonalLaw | DiagonalFunction]]:
    """Parse ``--diag`` declarations (module docstring) into matrix symbols and laws/functions.

    ``dims`` maps dimension names to symbols (extended in place); ``taken`` names already used by other
    matrices. Normal declarations of one size share the index j (ζ_j ~ N(0, I_k))."""
    mats: dict[str, MatrixSymbol] = {}
    taken = set(taken)
    laws: list[DiagonalLaw] = []
    normal_by_size: dict[str, list[str]] = {}
    pending: list[tuple[str, sp.Expr, str]] = []
    for spec in specs:
        m = re.fullmatch(rf"\s*({_NAME}(?:\s*,\s*{_NAME})*)\s*=\s*({_NAME}|\d+)\s*(?:@(.*))?", spec, re.S)
        if not m:
            raise UserError(f"bad diagonal declaration {spec!r}; write NAME=DIM, NAME=DIM@LAW or N1,N2=DIM@FILE.")
        names = tuple(x.strip() for x in m.group(1).split(","))
        dim, law = m.group(2), m.group(3)
        for name in names:
            if name in RESERVED:
                raise UserError(f"{name!r} is reserved and cannot name a matrix.")
            if name in mats or name in taken or names.count(name) > 1:
                raise UserError(f"matrix {name!r} is declared twice.")
        if dim.isdigit():
            if int(dim) == 0:
                raise UserError(f"the size of {names[0]} must be positive.")
            size: sp.Expr = sp.Integer(int(dim))
        else:
            size = dims.setdefault(dim, sp.Symbol(dim, positive=True, integer=True))
        for name in names:
            mats[name] = MatrixSymbol(name, size, size)
        if law is None:
            if len(names) != 1:
                raise UserError(f"declare {', '.join(names)} one at a time, or give their joint law as a file.")
            normal_by_size.setdefault(sp.srepr(size), []).append(names[0])
            continue
        law = law.strip()
        if not law:
            raise UserError(f"the law of {names[0]} is empty.")
        if law.lower().endswith(_FILE_SUFFIXES):
            laws.append(read_law_file(law, names))
            continue
        found = _uniform_law(names, law) or _numbers_law(names, law)
        if found is not None:
            laws.append(found)
            continue
        if len(names) != 1:
            raise UserError(f"the joint law of {', '.join(names)} must be a data file (.csv, .txt, .tsv, .dat).")
        pending.append((names[0], sp.S.Zero, law))
    laws += [DiagonalLaw(tuple(names), "normal") for names in normal_by_size.values()]
    functions: list[DiagonalFunction] = []
    for name, _, text in pending:
        same = {n: zeta_symbol(n) for n, s in mats.items() if n != name and s.rows == mats[name].rows}
        expr = parse_function(text, same, name)
        if not expr.free_symbols:
            raise UserError(
                f"the law of {name} ({text!r}) uses no declared diagonal matrix; give constants as "
                "a discrete law, e.g. 2:1."
            )
        functions.append(DiagonalFunction(name, expr))
    return mats, [*laws, *functions]


# ======================================================================================= finite instances
def sample_diagonals(
    items: Sequence[DiagonalLaw | DiagonalFunction], sizes: Mapping[str, int], rng: np.random.Generator
) -> dict[str, np.ndarray]:
    """Diagonal entries of every declared diagonal for one finite draw (``sizes``: name → dimension)."""
    out: dict[str, np.ndarray] = {}
    for law in items:
        if isinstance(law, DiagonalLaw):
            size = sizes[law.names[0]]
            vals = law.sample(size, rng)
            for col, name in enumerate(law.names):
                out[name] = vals[:, col]
    pending = [f for f in items if isinstance(f, DiagonalFunction)]
    while pending:
        progress = False
        for f in list(pending):
            names = [str(z)[len("zeta_") :] for z in f.expr.free_symbols]
            if all(n in out for n in names):
                syms = [zeta_symbol(n) for n in names]
                fun = sp.lambdify(syms, f.expr, modules="numpy")
                with np.errstate(all="ignore"):
                    val = np.asarray(fun(*[out[n] for n in names]), dtype=complex)
                if np.any(np.abs(val.imag) > 1e-12 * (1 + np.abs(val.real))) or not np.all(np.isfinite(val)):
                    raise UserError(
                        f"the law of {f.name} gives non-real or infinite values on the draws of "
                        f"{', '.join(sorted(names))}."
                    )
                out[f.name] = np.broadcast_to(val.real, (sizes[f.name],)).copy()
                pending.remove(f)
                progress = True
        if not progress:
            raise UserError("diagonal functions refer to each other in a cycle.")
    return out


def finite_instance(
    symbols: Mapping[str, MatrixSymbol],
    gaussians: Mapping[str, bool],
    items: Sequence[DiagonalLaw | DiagonalFunction],
    dims: Mapping[sp.Symbol, int],
    rng: np.random.Generator,
    variance: Mapping[str, float] | None = None,
    copies: Mapping[str, int] | None = None,
) -> dict[str, Any]:
    """Random finite matrices for ``symbols``: Gaussian ones iid N(0, variance) (``gaussians[name]`` True for
    a symmetric, Wigner, matrix: (G + Gᵀ)/√2), diagonal ones drawn from their laws; a diagonal summed over
    ``copies[name]`` = k copies (``sum(D, k, ...)``) gets k iid draws of its (normal) law, as
    :class:`~sobolev_rf.derive.pencil.CopyDraws`."""

    def size(x: sp.Expr) -> int:
        return int(sp.sympify(x).xreplace(dict(dims)))

    values: dict[str, Any] = {}
    for name, sym in symbols.items():
        if name in gaussians:
            r, c = size(sym.rows), size(sym.cols)
            g = rng.standard_normal((r, c)) * math.sqrt((variance or {}).get(name, 1.0))
            values[name] = (g + g.T) / math.sqrt(2) if gaussians[name] else g
    diag_sizes = {}
    for law in items:
        for name in law.names if isinstance(law, DiagonalLaw) else (law.name,):
            if name in symbols:
                diag_sizes[name] = size(symbols[name].rows)
    # a base law whose matrices are all absent from the expression still needs a size: borrow a user's
    for law in items:
        if isinstance(law, DiagonalLaw) and not any(n in diag_sizes for n in law.names):
            users = [
                f
                for f in items
                if isinstance(f, DiagonalFunction)
                and any(str(z) == str(zeta_symbol(n)) for z in f.expr.free_symbols for n in law.names)
            ]
            for f in users:
                if f.name in diag_sizes:
                    for n in law.names:
                        diag_sizes[n] = diag_sizes[f.name]
                    break
    for law in items:
        for name in law.names if isinstance(law, DiagonalLaw) else (law.name,):
            if name not in diag_sizes:
                other = next(
                    (diag_sizes[n] for n in (law.names if isinstance(law, DiagonalLaw) else ()) if n in diag_sizes),
                    None,
                )
                diag_sizes[name] = other if other is not None else 1
    diag = sample_diagonals(items, diag_sizes, rng)
    for name, vals in diag.items():
        if name in symbols:
            values[name] = np.diag(vals)
    if copies:
        from .pencil import CopyDraws

        for name, k in copies.items():
            rest = rng.standard_normal((k - 1, diag_sizes[name]))
            values[name] = CopyDraws(np.vstack([np.diag(values[name])[None, :], rest]))
    return values


def _evaluate(expr: Any, values: Mapping[str, Any], subs: Mapping[sp.Symbol, Any]) -> np.ndarray:
    from .pencil import evaluate_expression

    return evaluate_expression(expr, values, subs)


def _small_instance(
    expr: Any,
    symbols: Mapping[str, MatrixSymbol],
    gaussians: Mapping[str, bool],
    items: Sequence[DiagonalLaw | DiagonalFunction],
    rng: np.random.Generator,
) -> tuple[dict[str, np.ndarray], dict[sp.Symbol, int]]:
    dims: dict[sp.Symbol, int] = {}
    for sym in symbols.values():
        for d in (sym.rows, sym.cols):
            for s in sp.sympify(d).free_symbols:
                dims.setdefault(s, 5 + 2 * len(dims))
    return finite_instance(symbols, gaussians, items, dims, rng), dims


def is_self_adjoint(
    expr: Any,
    symbols: Mapping[str, MatrixSymbol],
    gaussians: Mapping[str, bool],
    items: Sequence[DiagonalLaw | DiagonalFunction],
    params: Mapping[str, float],
    rng: np.random.Generator,
) -> bool:
    """Whether ``expr`` is a symmetric matrix for random small instances (two draws)."""
    if expr.rows != expr.cols:
        return False
    for _ in range(2):
        values, dims = _small_instance(expr, symbols, gaussians, items, rng)
        subs: dict[sp.Symbol, Any] = {**dims}
        subs.update({s: params[str(s)] for s in expr.free_symbols if str(s) in params and s not in subs})
        M = _evaluate(expr, values, subs)
        if not np.allclose(M, M.T, rtol=1e-9, atol=1e-9 * max(1.0, float(np.max(np.abs(M))))):
            return False
    return True


def herglotz_sign(
    expr: Any,
    param: str,
    symbols: Mapping[str, MatrixSymbol],
    gaussians: Mapping[str, bool],
    items: Sequence[DiagonalLaw | DiagonalFunction],
    params: Mapping[str, float],
    rng: np.random.Generator,
) -> int:
    """For ``expr`` = (M + c·param·I)⁻¹ with M symmetric and free of ``param`` and c real: the sign that
    Im (1/N) tr expr has when Im param > 0, i.e. −sign(c); 0 when ``expr`` is not of that form."""
    if not isinstance(expr, Inverse):
        return 0
    B = expr.arg
    if not any(str(s) == param for s in B.free_symbols):
        return 0
    values, dims = _small_instance(B, symbols, gaussians, items, rng)
    base: dict[Any, Any] = {**dims}
    for s in B.free_symbols:
        if str(s) in params and str(s) != param and s not in base:
            base[s] = params[str(s)]
    target = [s for s in B.free_symbols if str(s) == param]
    mats = []
    for v in (0.0, 1.0, 2.0):
        try:
            mats.append(_evaluate(B, values, {**base, **{s: v for s in target}}))
        except (TypeError, ValueError, np.linalg.LinAlgError):
            return 0
    M0, M1, M2 = mats
    if not np.allclose(M0, M0.T, atol=1e-9 * max(1.0, float(np.max(np.abs(M0))))):
        return 0
    D = M1 - M0
    c = float(np.mean(np.diag(D)))
    if (
        c == 0
        or not np.allclose(D, c * np.eye(len(D)), atol=1e-9 * abs(c))
        or not np.allclose(M2 - M0, 2 * D, atol=1e-9 * abs(c))
    ):
        return 0
    return -1 if c > 0 else 1
