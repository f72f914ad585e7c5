"""The public Python API: one import, every name a callable, even after the subpackages were imported."""

from __future__ import annotations

import importlib

import sobolev_rf.numeric as api


def test_every_public_name_is_the_documented_callable() -> None:
    importlib.import_module("sobolev_rf.numeric.simulation.exact")  # a subpackage must not shadow a name
    importlib.import_module("sobolev_rf.numeric.theory.solve")
    for name in api.__all__:
        assert callable(getattr(api, name)), name
    from sobolev_rf.numeric import ModelParams, simulate, solve

    assert simulate.__module__.endswith("simulation.exact") and solve.__module__.endswith("theory.solve")
    assert solve(ModelParams()).eps_L2 > 0
