"""The science built on the theory and the simulator: label noise, cost, the alignment law, the optimal
Sobolev weight τ*, limiting spectral densities."""
