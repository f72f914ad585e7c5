"""The NumPy backend: a printer and its runtime templates (vectorised over points)."""
