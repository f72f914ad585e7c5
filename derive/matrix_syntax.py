"""The matrix-expression syntax of ``pencil`` and ``spectrum`` (:data:`~sobolev_rf.derive.syntax.SYNTAX_HELP`):
user text is tokenised (:mod:`.syntax`) and turned by a recursive-descent parser into SymPy matrix
expressions over declared matrix symbols (``--shape NAME=ROWS,COLS``), never evaluated; ``sum(D, k, X)``
becomes a :class:`~sobolev_rf.derive.pencil.CopySum`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

import sympy as sp
from sympy.matrices.expressions import Identity, Inverse, MatPow, MatrixExpr, MatrixSymbol

from .errors import UserError
from .pencil import CopySum
from .syntax import DescentParser, tokenize

#: Operators of the matrix-expression syntax.
_OPERATORS = ("+", "-", "*", "/", "^", "(", ")", ",", "'")


class _Parser(DescentParser):
    """Recursive-descent parser over scalars and SymPy matrix expressions.

    Grammar: expr := term (('+'|'-') term)*;  term := unary (('*'|'/') unary)*;
    unary := '-' unary | power;  power := postfix ('^' signed_int)?;
    postfix := atom "'"*;  atom := number | name | name '(' expr ')' | '(' expr ')'.
    """

    def __init__(self, text: str, matrices: Mapping[str, MatrixSymbol], scalars: Mapping[str, sp.Symbol]):
        super().__init__(tokenize(text, _OPERATORS, "the expression"), "the expression")
        self.text = text
        self.matrices = matrices
        self.scalars = dict(scalars)
        self.copied: set[str] = set()

    def parse(self) -> Any:
        if not self.tokens:
            raise UserError("the expression is empty.")
        out = self.expr()
        extra = self.peek()
        if extra is not None:
            raise UserError(f"unexpected {extra!r} after a complete expression.")
        return out

    @staticmethod
    def _is_mat(x: Any) -> bool:
        return isinstance(x, MatrixExpr)

    def _add(self, a: Any, b: Any) -> Any:
        if self._is_mat(a) and self._is_mat(b):
            if a.shape != b.shape:
                raise UserError(f"cannot add matrices of shapes {sp.sstr(a.shape)} and {sp.sstr(b.shape)}.")
            return a + b
        if self._is_mat(a) or self._is_mat(b):
            m, s = (a, b) if self._is_mat(a) else (b, a)
            if m.rows != m.cols:
                raise UserError(f"cannot add a scalar to the non-square {sp.sstr(m.shape)} matrix {sp.sstr(m)}.")
            return m + s * Identity(m.rows)
        return a + b

    def _mul(self, a: Any, b: Any) -> Any:
        if self._is_mat(a) and self._is_mat(b):
            if a.cols != b.rows:
                raise UserError(f"cannot multiply shapes {sp.sstr(a.shape)} and {sp.sstr(b.shape)}.")
            return a * b
        return a * b

    def expr(self) -> Any:
        with self.nested():
            out = self.term()
            while (op := self.peek()) in ("+", "-"):
                self.take()
                rhs = self.term()
                out = self._add(out, rhs if op == "+" else -rhs)
            return out

    def term(self) -> Any:
        out = self.unary()
        while (op := self.peek()) in ("*", "/"):
            self.take()
            rhs = self.unary()
            if op == "*":
                out = self._mul(out, rhs)
            else:
                if self._is_mat(rhs):
                    raise UserError("division is by scalars only; write inv(X) for a matrix inverse.")
                if rhs == 0:
                    raise UserError("division by zero in the expression.")
                out = out / rhs
        return out

    def unary(self) -> Any:
        op = self.peek()
        if op in ("+", "-"):
            self.take()
            with self.nested():
                x = self.unary()
            return -x if op == "-" else x
        return self.power()

    def power(self) -> Any:
        base = self.postfix()
        if self.peek() == "^":
            self.take()
            sign = 1
            if (op := self.peek()) in ("+", "-"):
                self.take()
                sign = -1 if op == "-" else 1
            kind, val = self.take()
            if kind != "num" or not re.fullmatch(r"\d+", val):
                raise UserError(f"exponents must be integers, got {val!r}.")
            k = sign * int(val)
            if self._is_mat(base):
                if base.rows != base.cols:
                    raise UserError(f"cannot take a power of the non-square matrix {sp.sstr(base)}.")
                if k == 0:
                    return Identity(base.rows)
                return self._inv(MatPow(base, abs(k)).doit()) if k < 0 else MatPow(base, k).doit()
            return base**k
        return base

    def postfix(self) -> Any:
        x = self.atom()
        while self.peek() == "'":
            self.take()
            x = x.T if self._is_mat(x) else x
        return x

    def _inv(self, x: Any) -> Any:
        if self._is_mat(x):
            if x.rows != x.cols:
                raise UserError(f"cannot invert the non-square {sp.sstr(x.shape)} matrix {sp.sstr(x)}.")
            return Inverse(x)
        if x == 0:
            raise UserError("cannot invert zero.")
        return 1 / x

    def _copy_sum(self) -> CopySum:
        """``sum(D, k, expr)`` after ``sum(``: the sum of k copies of expr, each with its own copy of D."""
        kind, name = self.take()
        if kind != "name" or name not in self.matrices:
            raise UserError(f"sum(D, k, ...) needs a declared diagonal matrix D first, got {name!r}.")
        member = self.matrices[name]
        if member.rows != member.cols:
            raise UserError(f"the copies of sum({name}, ...) must be a square (diagonal) matrix.")
        if name in self.copied:
            raise UserError(f"{name} is summed twice; an expression may contain one sum({name}, k, ...).")
        self.take(",")
        kind, val = self.take()
        if kind == "num" and re.fullmatch(r"\d+", val) and int(val) >= 1:
            count: sp.Expr = sp.Integer(int(val))
        elif kind == "name" and val not in self.matrices and val not in ("I", "inv", "t", "sqrt", "sum"):
            count = self.scalars.setdefault(val, sp.Symbol(val, positive=True))
        else:
            raise UserError(
                f"the number of copies in sum({name}, k, ...) must be a name or a positive integer, got {val!r}."
            )
        self.take(",")
        self.copied.add(name)
        body = self.expr()
        self.take(")")
        if not self._is_mat(body) or member not in body.free_symbols:
            raise UserError(f"the summand of sum({name}, {val}, ...) must be a matrix expression containing {name}.")
        return CopySum(body, member, count)

    def atom(self) -> Any:
        kind, val = self.take()
        if kind == "num":
            return sp.Rational(val) if re.fullmatch(r"\d+", val) else sp.Float(val)
        if kind == "name":
            if self.peek() == "(":
                if val not in ("inv", "t", "sqrt", "sum"):
                    raise UserError(f"unknown function {val!r}; use inv(...), t(...), sqrt(...) or sum(D, k, ...).")
                self.take("(")
                if val == "sum":
                    return self._copy_sum()
                arg = self.expr()
                self.take(")")
                if val == "inv":
                    return self._inv(arg)
                if val == "sqrt":
                    if self._is_mat(arg):
                        raise UserError("sqrt(...) takes a scalar, not a matrix.")
                    return sp.sqrt(arg)
                return arg.T if self._is_mat(arg) else arg
            if val in self.matrices:
                return self.matrices[val]
            if val == "I":
                return sp.S.One
            if val.endswith("t") and val[:-1] in self.matrices:
                return self.matrices[val[:-1]].T
            if val not in self.scalars:
                self.scalars[val] = sp.Symbol(val, positive=True)
            return self.scalars[val]
        if val == "(":
            out = self.expr()
            self.take(")")
            return out
        raise UserError(f"unexpected {val!r} in the expression.")


def _outside_copies(expr: Any, names: set[str]) -> set[str]:
    """The names among ``names`` that occur in ``expr`` outside every sum of copies."""
    if isinstance(expr, CopySum):
        return set()
    if isinstance(expr, MatrixSymbol):
        return {expr.name} & names
    out: set[str] = set()
    for arg in getattr(expr, "args", ()):
        out |= _outside_copies(arg, names)
    return out


def parse_expression(
    text: str, matrices: Mapping[str, MatrixSymbol], scalars: Mapping[str, sp.Symbol] | None = None
) -> MatrixExpr:
    """Parse ``text`` (see :data:`~sobolev_rf.derive.syntax.SYNTAX_HELP`) into a SymPy matrix expression; never
    evaluates it.

    ``matrices`` maps names to declared :class:`MatrixSymbol` s; ``scalars`` pre-declares scalar symbols
    (dimension symbols in particular, so ``/n`` refers to the same ``n`` as the shapes).
    """
    parser = _Parser(text, matrices, scalars or {})
    out = parser.parse()
    loose = _outside_copies(out, parser.copied) if parser.copied else set()
    if loose:
        raise UserError(
            f"{', '.join(sorted(loose))} is summed over copies with sum(...) and may not appear outside that sum."
        )
    if not isinstance(out, MatrixExpr):
        raise UserError("the expression is a scalar; it must contain at least one declared matrix.")
    if not out.free_symbols & set(matrices.values()):
        raise UserError(
            f"the expression simplifies to {sp.sstr(out)}, which contains no declared matrix; "
            f"it must contain at least one."
        )
    return out


def declare_shapes(specs: Iterable[str]) -> tuple[dict[str, MatrixSymbol], dict[str, sp.Symbol]]:
    """Parse ``NAME=ROWS,COLS`` (or ``NAME=DIM`` for square) declarations into matrix symbols.

    Dimension names become positive integer symbols; numeric dimensions are allowed.
    """
    mats: dict[str, MatrixSymbol] = {}
    dims: dict[str, sp.Symbol] = {}
    for spec in specs:
        m = re.fullmatch(r"\s*([A-Za-z_][A-Za-z_0-9]*)\s*=\s*([A-Za-z_0-9]+)\s*(?:,\s*([A-Za-z_0-9]+)\s*)?", spec)
        if not m:
            raise UserError(f"bad shape declaration {spec!r}; write NAME=ROWS,COLS, e.g. F=n,p.")
        name, r, c = m.group(1), m.group(2), m.group(3) or m.group(2)
        if name in ("I", "inv", "t", "sqrt", "sum"):
            raise UserError(f"{name!r} is reserved and cannot name a matrix.")
        if name in mats:
            raise UserError(f"matrix {name!r} is declared twice.")
        shape = []
        for d in (r, c):
            if d.isdigit():
                shape.append(sp.Integer(int(d)))
            else:
                dims.setdefault(d, sp.Symbol(d, positive=True, integer=True))
                shape.append(dims[d])
        mats[name] = MatrixSymbol(name, shape[0], shape[1])
    return mats, dims
