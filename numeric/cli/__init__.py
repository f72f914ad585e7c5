"""The command line: thin commands that parse, call and write (``sobolev-rf``; see :mod:`.main`)."""

from .main import COMMANDS, build_parser, main

__all__ = ["COMMANDS", "build_parser", "main"]
