"""The C99 backend: a printer and its runtime templates (one point per loop iteration, OpenMP over points)."""
