"""Code generation: derived systems become NumPy modules and compiled C kernels."""
