"""The one tokenizer and recursive-descent base of the two expression parsers (matrix expressions in
:mod:`.pencil`, scalar functions of diagonal entries in :mod:`.laws`).

A token is (kind, text, position) with kind ``num`` (an unsigned decimal number), ``name`` or ``op`` (one
of the operators the parser allows). :class:`DescentParser` holds the token stream and bounds the nesting
depth, so that a pathological input (hundreds of nested parentheses or signs) is refused in one line
instead of exhausting Python's recursion limit. Nothing here evaluates user text.
"""

from __future__ import annotations

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
