"""C99 kernels in complex arithmetic for the operator-valued fixed points (see :mod:`.printer`)."""
