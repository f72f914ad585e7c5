"""The theory of one model point, a path of points or a grid (being moved onto the generated solvers)."""
from __future__ import annotations

from .asymptotics import SolverError, TheoryResult, solve, solve_path
from .generated import solve_grid

__all__ = ["SolverError", "TheoryResult", "solve", "solve_path", "solve_grid"]
