"""Sphinx configuration of the sobolev-rf documentation (``make docs`` builds it into docs/_build/html).

Pages are MyST Markdown; tutorials are MyST notebooks that myst-nb executes on every build. The API and CLI
references are generated at build time (``_ext/sobolev_docs.py``) from the package's public names, its modules
and the command's own argparse parsers, so a new module or subcommand appears without editing these pages.
"""

from __future__ import annotations

import sys
from importlib import metadata
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent / "_ext"))

project = "sobolev-rf"
author = "the sobolev-rf authors"
copyright = "the sobolev-rf authors (MIT licence)"
release = metadata.version("sobolev-rf")
version = release

extensions = [
    "myst_nb",
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.mathjax",
    "sobolev_docs",
]

source_suffix = {".md": "myst-nb", ".rst": "restructuredtext"}
exclude_patterns = ["_build", "_ext", "Thumbs.db", ".DS_Store", "**.ipynb_checkpoints", "jupyter_execute"]
root_doc = "index"

# MyST: $…$ and $$…$$ math, ::: fences, definition lists, heading anchors for internal links
myst_enable_extensions = ["dollarmath", "colon_fence", "deflist"]
myst_heading_anchors = 3

# myst-nb: run every notebook on every build (outputs can never be stale); any error fails the build
nb_execution_mode = "force"
nb_execution_raise_on_error = True
nb_execution_timeout = 180
nb_merge_streams = True
nb_execution_show_tb = True

# autodoc: members in source order, type hints in the signature,
# Google/NumPy sections via napoleon
autodoc_member_order = "bysource"
autodoc_typehints = "signature"
autodoc_default_options = {"members": True, "undoc-members": False, "show-inheritance": False}
napoleon_google_docstring = True
napoleon_numpy_docstring = True

html_theme = "furo"
html_title = f"sobolev-rf {release}"
html_static_path: list[str] = []
# local assets only: the site is read offline as well (MathJax is the one script loaded from its CDN)
html_copy_source = False

# an unqualified name in a docstring that several classes define (``unknowns``) links to one of them
suppress_warnings = ["ref.python"]
