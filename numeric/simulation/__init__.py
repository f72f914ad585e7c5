"""The exact finite-size simulator, the ground truth (:mod:`.exact`), and vectorised activations (:mod:`.functions`)."""

from .exact import SimulationResult, simulate

__all__ = ["SimulationResult", "simulate"]
