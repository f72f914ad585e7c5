"""Symbolic layer: activations, Hermite coefficients, saddle-point systems and linear pencils.

This layer knows nothing of :mod:`sobolev_rf.numeric` or :mod:`sobolev_rf.codegen`.
"""
