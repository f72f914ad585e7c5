"""C99 kernels in complex arithmetic for the operator-valued fixed points (see :mod:`.printer`)."""

#: Expression-tree nodes (:mod:`sobolev_rf.derive.exprtree`) the complex C printer handles (here, free of SymPy, so
#: that a warm call can check a stored record without importing the printer).
SUPPORTED = frozenset(
    {
        "Add",
        "Mul",
        "Pow",
        "exp",
        "log",
        "sqrt",
        "Erfcx",
        "ScaledExpint",
        "Symbol",
        "Integer",
        "Rational",
        "Float",
        "Zero",
        "One",
        "NegativeOne",
        "Half",
        "Pi",
        "Exp1",
        "Quadrature",
    }
)
