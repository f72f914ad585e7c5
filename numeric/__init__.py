"""Numeric layer: the exact finite-size simulator, solvers, verification and the command line."""
