"""The one tokenizer and recursive-descent base of the two expression parsers (matrix expressions in
:mod:`.pencil`, scalar functions of diagonal entries in :mod:`.laws`).

A token is (kind, text, position) with kind ``num`` (an unsigned decimal number), ``name`` or ``op`` (one
of the operators the parser allows). :class:`DescentParser` holds the token stream and bounds the nesting
depth, so that a pathological input (hundreds of nested parentheses or signs) is refused in one line
instead of exhausting Python's recursion limit. Nothing here evaluates user text.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from .errors import UserError

#: Deepest nesting of parentheses, function calls and prefix signs an expression may use.
MAX_DEPTH = 64
#: Longest expression text accepted (characters).
MAX_LENGTH = 20_000

_NUMBER = r"\d+\.\d*(?:[eE][-+]?\d+)?|\.\d+(?:[eE][-+]?\d+)?|\d+(?:[eE][-+]?\d+)?"
_NAME = r"[A-Za-z_][A-Za-z_0-9]*"

Token = tuple[str, str, int]

#: Help text for the expression syntax (shown by ``sobolev-rf pencil --help``).
SYNTAX_HELP = """\
Expression syntax: numbers, names, + - * / ^ ( ) and the functions inv(X), t(X) and sqrt(scalar).
Names declared with --shape NAME=ROWS,COLS are Gaussian matrices, with --diag NAME=DIM diagonal
matrices; X' or t(X) is a transpose, and an undeclared name Xt is the transpose of a declared X.
I is the identity (its size is inferred); a scalar added to a square matrix means scalar*I.
Every other name is a scalar parameter (dimension names such as n, p, d are scalars too).
X^k takes an integer k (X^-1 = inv(X)); division is by scalars only.
sum(D, k, X) is the sum over l = 1..k of X with the normal diagonal D replaced by its l-th iid copy D_l
(k a parameter name or a number; one such sum per expression, D only inside it): one derived system
serves every k, e.g. sum(D, k, D*t(G)*G*D/n) for the k gradient blocks of the Sobolev Gram matrix."""


def tokenize(text: str, operators: Sequence[str], where: str) -> list[Token]:
    """The tokens of ``text``; ``operators`` lists the allowed operators (longest first is not required);
    ``where`` names the text in error messages (e.g. "the expression", "the law of S")."""
    if len(text) > MAX_LENGTH:
        raise UserError(f"{where} is {len(text)} characters long; at most {MAX_LENGTH} are accepted.")
    ops = "|".join(re.escape(op) for op in sorted(operators, key=len, reverse=True))
    pattern = re.compile(rf"\s*(?:(?P<num>{_NUMBER})|(?P<name>{_NAME})|(?P<op>{ops}))")
    tokens: list[Token] = []
    pos, text = 0, text.rstrip()
    while pos < len(text):
        m = pattern.match(text, pos)
        if not m or m.end() == pos:
            bad = text[pos:].strip()[:1]
            raise UserError(f"unexpected character {bad!r} at position {pos} of {where}.")
        kind = m.lastgroup or ""
        tokens.append((kind, m.group(kind), m.start(kind)))
        pos = m.end()
    return tokens


class DescentParser:
    """Token stream with look-ahead, and a depth guard for the recursive rules."""

    def __init__(self, tokens: list[Token], where: str) -> None:
        self.tokens = tokens
        self.where = where
        self.i = 0
        self._depth = 0

    def peek(self) -> str | None:
        """The text of the next token, or None at the end."""
        return self.tokens[self.i][1] if self.i < len(self.tokens) else None

    def take(self, value: str | None = None) -> tuple[str, str]:
        """The next token (kind, text); with ``value``, it must be that text."""
        if self.i >= len(self.tokens):
            raise UserError(f"{self.where} ends too early.")
        kind, text, _ = self.tokens[self.i]
        if value is not None and text != value:
            raise UserError(f"expected {value!r} but found {text!r} in {self.where}.")
        self.i += 1
        return kind, text

    @contextmanager
    def nested(self) -> Iterator[None]:
        """One level deeper (a parenthesis, a function call, a prefix sign); refused beyond :data:`MAX_DEPTH`."""
        self._depth += 1
        if self._depth > MAX_DEPTH:
            raise UserError(f"{self.where} is nested more than {MAX_DEPTH} levels deep; simplify it.")
        try:
            yield
        finally:
            self._depth -= 1


def parse_value(name: str, text: str) -> float | complex:
    """A parameter value: a finite real number, or a complex one such as ``1+0.01j``."""
    t = text.strip()
    try:
        value: float | complex = float(t)
    except ValueError:
        if not re.fullmatch(r"[-+0-9.eE]*[-+]?[0-9.eE]*[jJ]", t):
            raise UserError(f"parameter {name} must be a number (or complex, e.g. 1+0.01j), got {text!r}.") from None
        try:
            value = complex(t)
        except ValueError:
            raise UserError(f"parameter {name} must be a number (or complex, e.g. 1+0.01j), got {text!r}.") from None
        if value.imag == 0:
            value = value.real
    if isinstance(value, complex):
        if not (math.isfinite(value.real) and math.isfinite(value.imag)):
            raise UserError(f"parameter {name} must be finite, got {text!r}.")
    elif not math.isfinite(value):
        raise UserError(f"parameter {name} must be finite, got {text!r}.")
    return value
