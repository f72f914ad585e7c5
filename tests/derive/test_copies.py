"""Sums of exchangeable copies, ``sum(D, k, ...)``: one derived system for every k (the k gradient blocks of the
Sobolev Gram matrix), equal to the written-out copies at k = 1, 2 and to finite draws at k = 3, 8."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import numpy as np
import pytest

from sobolev_rf.derive.errors import UserError
from sobolev_rf.derive.laws import GaussianMatrix, declare_diagonals
from sobolev_rf.derive.matrix_syntax import declare_shapes, parse_expression
from sobolev_rf.derive.ovfp import derive_system
from sobolev_rf.derive.pencil import linearize
from sobolev_rf.numeric.studies.spectrum import StieltjesSolver, finite_eigenvalues, resolvent_system

FUNCTION_ROWS = "t(a1*X*Th/sqrt(d) + s1*E)*(a1*X*Th/sqrt(d) + s1*E)/n"
GRADIENT_ROWS = "{D}*t(b1*X*Th/sqrt(d) + s2*Ep)*(b1*X*Th/sqrt(d) + s2*Ep)*{D}/n"
SHAPES = ["X=n,d", "Th=d,p", "E=n,p", "Ep=n,p"]
VALUES = {"n": 1.0, "d": 1.0, "a1": 0.5, "s1": 0.3, "b1": 0.4, "s2": 0.3}


def _parsed(text: str, diags: list[str]) -> tuple[Any, dict[str, Any], dict[str, bool], list[Any]]:
    mats, dims = declare_shapes(SHAPES)
    dmats, laws = declare_diagonals(diags, dims, mats)
    gauss = {m: False for m in mats}
    mats.update(dmats)
    return parse_expression(text, mats, dims), mats, gauss, laws


@lru_cache(maxsize=4)
def _gram(k: int | None) -> tuple[Any, str, tuple[Any, ...]]:
    """The Sobolev Gram matrix with its k gradient blocks summed (None) or written out (k)."""
    if k is None:
        text, diags = FUNCTION_ROWS + " + sum(D, k, " + GRADIENT_ROWS.format(D="D") + ")", ["D=p"]
    else:
        text = FUNCTION_ROWS + "".join(" + " + GRADIENT_ROWS.format(D=f"D{l}") for l in range(1, k + 1))
        diags = [f"D{l}=p" for l in range(1, k + 1)]
    expr, mats, gauss, laws = _parsed(text, diags)
    system, z = resolvent_system(expr, gauss, laws)
    return system, z, (expr, mats, gauss, laws)


def test_one_system_for_every_k_equals_the_written_out_copies() -> None:
    summed, z, _ = _gram(None)
    assert "k" in [str(p) for p in summed.parameters]
    points = np.array([0.3 + 0.2j, 1.0 + 0.05j, 0.05 + 0.01j, 2.0 + 0.5j])
    for k in (1, 2):
        written, zk, _ = _gram(k)
        assert len(summed.unknowns) == len(written.unknowns)
        values = {**VALUES, "p": 4.0}
        _, m_written, ok_written = StieltjesSolver(written, zk, values).from_infinity(points)
        _, m_summed, ok_summed = StieltjesSolver(summed, z, {**values, "k": float(k)}).from_infinity(points)
        assert ok_written.all() and ok_summed.all()
        np.testing.assert_allclose(m_summed, m_written, rtol=1e-10)


@pytest.mark.parametrize("k, p_over_n", [(3, 6.0), (8, 4.0)])
def test_summed_copies_match_a_finite_draw(k: int, p_over_n: float) -> None:
    """m(z) = (1/p) tr (M − z)⁻¹ against one draw with p = 800 (its fluctuation at this Im z is below 1 %, measured
    over seeds: 0.4–0.8 % at p = 1200 for k = 3, 8); allowance 3 %."""
    summed, z, (expr, mats, gauss, laws) = _gram(None)
    values = {**VALUES, "p": p_over_n, "k": float(k)}
    scale = 1 + k / 4  # the spectrum's extent grows with the number of gradient blocks
    points = np.array([0.2, 1.0, 3.0]) * scale + 0.5j * scale
    _, m, ok = StieltjesSolver(summed, z, values).from_infinity(points)
    assert ok.all()
    eig = finite_eigenvalues(expr, mats, gauss, laws, values, 800, np.random.default_rng(k))
    finite = np.array([np.mean(1 / (eig - w)) for w in points])
    assert np.max(np.abs(finite - m)) < 0.03 * np.max(np.abs(m))


def test_many_copies_on_the_generated_kernel() -> None:
    """At k = 32 the order of e^x E_ν is ν = 16, where the upward recursion loses its digits near the negative
    axis: the special function against mpmath, and m(z) on the generated NumPy and complex C kernels against
    lambdify."""
    import mpmath

    from sobolev_rf.codegen.numpy.printer import generate_numpy_source
    from sobolev_rf.codegen.runtime import NumpyKernel
    from sobolev_rf.derive.system import System
    from sobolev_rf.numeric.theory.ovfp import FixedPoint, KernelEvaluator, scaled_expint

    rng = np.random.default_rng(5)
    x = np.exp(rng.uniform(np.log(0.1), np.log(200), 60)) * np.exp(
        1j * rng.uniform(2.5, 3.14, 60) * rng.choice([-1, 1], 60)
    )
    for nu in (16.0, 24.0):
        exact = np.array([complex(mpmath.expint(nu, complex(v)) * mpmath.exp(complex(v))) for v in x])
        assert np.max(np.abs(scaled_expint(np.full(3, nu), x) / exact - 1)) < 1e-13
    summed, z, _ = _gram(None)
    stored = System.from_dict(summed.to_system(meta={"jacobian": "differences"}).to_dict())
    module = NumpyKernel(generate_numpy_source(stored), "test_copies_kernel").module
    kernel = FixedPoint(KernelEvaluator(module, stored.meta["names"]))
    values = {**VALUES, "p": 3.0, "k": 32.0}
    points = np.array([2.0, 12.0, 20.0, 30.0]) + 1j * np.array([1e-3, 1e-2, 0.1, 1.0])[:, None]
    points = points.ravel()
    a = StieltjesSolver(summed, z, values).from_infinity(points)
    b = StieltjesSolver(kernel, z, values).from_infinity(points)
    assert a[2].all() and b[2].all()
    np.testing.assert_allclose(b[1], a[1], rtol=1e-9)
    # the complex C kernel reads the order k/2 from the parameters (where a C compiler is at hand)
    from sobolev_rf.codegen.complex_kernel import load_complex_kernel

    fast = load_complex_kernel(stored.to_dict())
    if fast is not None:
        compiled = FixedPoint(KernelEvaluator(module, stored.meta["names"], fast))
        c = StieltjesSolver(compiled, z, values).from_infinity(points)
        assert c[2].all()
        np.testing.assert_allclose(c[1], a[1], rtol=1e-9)


def test_copy_sums_are_checked() -> None:
    with pytest.raises(UserError, match="outside that sum"):
        _parsed("D*Tht*Th*D/d + sum(D, k, D*Tht*Th*D/d)", ["D=p"])
    with pytest.raises(UserError, match="summed twice"):
        _parsed("sum(D, k, D*Tht*Th*D/d) + sum(D, k, D*D)", ["D=p"])
    with pytest.raises(UserError, match="containing D"):
        _parsed("Tht*Th/d + sum(D, k, Tht*Th/d)", ["D=p"])
    with pytest.raises(UserError, match="number of copies"):
        _parsed("sum(D, 0, D*D)", ["D=p"])
    expr, mats, gauss, laws = _parsed("inv(1 + sum(D, k, D*Tht*Th*D/d))", ["D=p@1,2"])
    with pytest.raises(UserError, match="normal diagonal"):
        derive_system(linearize(expr), [GaussianMatrix("Th")], laws)
    expr, mats, gauss, laws = _parsed("inv(1 + sum(D, k, Tht*Th*D/d + D*Tht*Th/d))", ["D=p"])
    with pytest.raises(UserError, match="cannot be reduced"):
        derive_system(linearize(expr), [GaussianMatrix("Th")], laws)
