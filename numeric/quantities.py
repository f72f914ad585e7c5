"""The test errors the studies report (MODEL.md), with their names and TeX labels: the one table of them."""

from __future__ import annotations

#: The asymptotic test errors, in the order every study reports them.
ERRORS = ("eps_L2", "eps_H1", "eps_grad")

#: Axis and colour-bar labels (matplotlib mathtext).
TEX = {
    "eps_L2": r"$\varepsilon_{L^2}$",
    "eps_H1": r"$\varepsilon_{H^1}$",
    "eps_grad": r"$\varepsilon_{\nabla}$",
}

#: What each error measures, for titles and legends.
NAMES = {
    "eps_L2": "test error ε_L2",
    "eps_H1": "gradient error ε_H1 (k directions)",
    "eps_grad": "full-gradient error ε_grad",
}
