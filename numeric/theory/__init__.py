"""The theory of model points on the generated kernels: one point, a path, a grid (:mod:`.solve`; a grid with
named axes as an ``xarray.Dataset``: :mod:`.dataset`), the Hermite coefficients they take (:mod:`.coefficients`)
and high-precision verification (:mod:`.verify`)."""

from .solve import GridResult, SolverError, TheoryResult, solve, solve_arrays, solve_grid, solve_path

__all__ = ["GridResult", "SolverError", "TheoryResult", "solve", "solve_arrays", "solve_grid", "solve_path"]
