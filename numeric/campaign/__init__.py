"""Simulation campaigns: a grid × d × seeds on Dask (:mod:`.engine`), results in SQLite (:mod:`.store`), exports
and the theory-vs-simulation report (:mod:`.results`)."""
