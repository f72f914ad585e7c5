"""The complex-arithmetic C kernels of operator-valued systems (``codegen.complex_c``, ``codegen.complex_kernel``).

* erfcx(z) = w(iz) through the kernel's Faddeeva function against 40-digit mpmath over the complex plane:
  relative error ≤ 1e-13 for Re z ≥ 0 (|z| from 1e-4 to 1e8, the half plane the principal √ of the systems
  reaches) and for |z| ≤ 5; elsewhere in Re z < 0, where erfcx(z) ≈ 2e^{z²} carries the condition number
  2|z|² of e^{z²}, within 1e-13·(1 + |z|²).
* Residual, outputs and Newton of a derived resolvent system agree with its NumPy kernel (1e-13; the
  Jacobians, both by forward differences, to 1e-6), and a spectrum through either kernel gives the same
  density (1e-9), Stieltjes transform and atoms.
* A system outside the supported nodes, or a machine without a working compiler, has no complex kernel.
"""

from __future__ import annotations

import json
from pathlib import Path

import mpmath
import numpy as np
import pytest
import sympy as sp

from sobolev_rf.codegen import complex_kernel, jit
from sobolev_rf.codegen.complex_c.printer import generate_complex_c_source
from sobolev_rf.derive.expectations import Erfcx, ScaledExpint
from sobolev_rf.derive.system import System

needs_cc = pytest.mark.skipif(jit.find_compiler() is None, reason="no C compiler")


@pytest.fixture(autouse=True)
def private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "cache"
    monkeypatch.setenv("SOBOLEV_RF_CACHE", str(folder))
    return folder


def toy_record() -> dict:
    """g = 1/(1 − z − t g) with an erfcx output: a small closed-form system with a complex parameter z."""
    g, t, z = sp.symbols("g t z")
    system = System(
        "toy",
        (g,),
        (t, z),
        (g - 1 / (1 - z - t * g),),
        outputs={"m": g, "e": Erfcx(sp.sqrt(g * z)) + sp.exp(g) * sp.log(1 + z) + g ** sp.Rational(3, 2)},
        definitions={},
    )
    return json.loads(json.dumps(system.to_dict()))


def test_faddeeva_erfcx_matches_mpmath_over_the_complex_plane() -> None:
    kernel = complex_kernel.load_complex_kernel(toy_record())
    assert kernel is not None
    rng = np.random.default_rng(5)
    r = 10 ** rng.uniform(-4, 8, 1500)
    z = r * np.exp(1j * rng.uniform(-np.pi, np.pi, r.size))
    axes = 10 ** np.linspace(-4, 8, 25)
    z = np.concatenate([z, axes, 1j * axes, -1j * axes, -axes[axes < 20], [0.0, 5 - 5j, -3 + 4j, -2 - 2j]])
    z = z[~((z.real < 0) & ((z**2).real > 600))]  # e^{z²} overflows there
    with mpmath.workdps(40):
        ref = np.array([complex(mpmath.exp(mpmath.mpc(v) ** 2) * mpmath.erfc(mpmath.mpc(v))) for v in z])
    err = np.abs(kernel.erfcx(z) / ref - 1)
    principal = (z.real >= 0) | (np.abs(z) <= 5)
    assert np.max(err[principal]) < 1e-13, z[principal][np.argmax(err[principal])]
    assert np.max(err / (1 + np.abs(z) ** 2)) < 1e-13


@needs_cc
def test_toy_kernel_matches_mpmath() -> None:
    """Outputs with erfcx, exp, log and a half-integer power against mpmath; Newton finds a root."""
    kernel = complex_kernel.load_complex_kernel(toy_record())
    assert kernel is not None
    u = np.array([[0.3 + 0.2j], [1.5 - 0.7j]])
    theta = np.array([[0.5, 0.2 + 0.1j], [2.0, -1.0 + 0.5j]])
    got = kernel.outputs(u, theta)
    for row in range(2):
        with mpmath.workdps(30):
            g, z = mpmath.mpc(u[row, 0]), mpmath.mpc(theta[row, 1])
            s = mpmath.sqrt(g * z)
            expected = complex(mpmath.exp(s**2) * mpmath.erfc(s) + mpmath.exp(g) * mpmath.log(1 + z) + g**1.5)
        assert got[row, 0] == u[row, 0]
        assert abs(got[row, 1] - expected) < 1e-13 * abs(expected)
    zs = np.array([1.0 + 2.0j, -3.0 + 0.5j, 4.0 + 0.01j])
    theta = np.stack([np.full(3, 0.5), zs], axis=1)
    root = (1 - zs) - np.sqrt((1 - zs) ** 2 - 2)  # of t g² − (1 − z) g + 1 = 0 at t = 1/2
    g, ok = kernel.newton((root * (1.05 + 0.02j))[:, None], theta, 1e-13, 30)
    assert ok.all()
    assert np.all(np.abs(g[:, 0] - root) < 1e-12 * np.abs(root))
    assert np.all(np.abs(kernel.residual(g, theta)) < 1e-13 * (1 + np.abs(g)))


def test_unsupported_records_and_missing_compilers_have_no_kernel(monkeypatch: pytest.MonkeyPatch) -> None:
    record = toy_record()
    bad = dict(record, residuals=[["Add", ["Symbol", "g"], ["GammaResolvent", ["Half"], ["Symbol", "t"]]]])
    assert not complex_kernel.record_supported(bad)
    assert complex_kernel.load_complex_kernel(bad) is None
    monkeypatch.setattr(jit, "compiler_problem", lambda: "no C compiler found")
    assert complex_kernel.load_complex_kernel(record) is None


@needs_cc
def test_each_library_is_built_on_its_first_use(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A spectrum needs only the complex library, a real solve only the real twin: each is generated and built
    on its first evaluation (a cold spectrum compiles half the expressions)."""
    monkeypatch.setenv("SOBOLEV_RF_CACHE", str(tmp_path))

    def sources() -> list[str]:
        return sorted(p.read_text() for p in tmp_path.glob("*.c") if "complex_c.printer" in p.read_text())

    kernel = complex_kernel.load_complex_kernel(toy_record())
    assert kernel is not None and sources() == []
    kernel.residual(np.array([[0.3 + 0.2j]]), np.array([[0.5, 0.2 + 0.1j]]))
    (complex_source,) = sources()
    assert "sr_residual(" in complex_source and "srr_residual(" not in complex_source
    kernel.real_residual(np.array([[0.3]]), np.array([[0.5, 0.2]]))
    assert len(sources()) == 2 and any("srr_residual(" in s and "sr_residual(" not in s for s in sources())


def test_generated_source_is_deterministic() -> None:
    system = System.from_dict(toy_record())
    assert generate_complex_c_source(system) == generate_complex_c_source(System.from_dict(toy_record()))


@needs_cc
def test_scaled_expint_matches_mpmath() -> None:
    """e^z E_ν(z) against 25-digit mpmath over the complex plane (|z| from 1e-4 to 70, and just above the negative
    axis), ν = 1/2, 1 (erfcx; E₁ by series or continued fraction; the asymptotic series for |z| ≥ 60), 2 and 9/2
    (recursion, power series near the negative axis, continued fraction): relative error below 1e-13."""
    kernel = complex_kernel.load_complex_kernel(toy_record())
    assert kernel is not None
    rng = np.random.default_rng(8)
    r = 10 ** rng.uniform(-4, np.log10(59.9), 200)
    z = np.concatenate([r * np.exp(1j * rng.uniform(-np.pi, np.pi, r.size)), -np.linspace(0.01, 59, 30) + 1e-3j])
    z = np.concatenate([z, np.linspace(0.01, 59, 30) + 0j, 70 * np.exp(1j * np.linspace(-3, 3, 20))])
    for nu in (0.5, 1.0, 2.0, 4.5):
        with mpmath.workdps(25):
            ref = np.array([complex(mpmath.exp(mpmath.mpc(v)) * mpmath.expint(nu, mpmath.mpc(v))) for v in z])
        err = np.abs(kernel.scaled_expint(nu, z) / ref - 1)
        assert np.all(err < 1e-13), (nu, z[np.argmax(err)])


def test_scaled_expint_of_many_copies_near_the_negative_axis() -> None:
    """e^x E_ν(x) of order ν = k/2, k = 16 … 24 (the order of a sum of k copies), where the upward recursion and the
    continued fraction lose their digits: close to the negative axis (π − |arg x| from 1e-10 to 1.5, either side,
    |x| from 0.5 to 200). The NumPy function of the numeric layer, the generated NumPy kernel's and (with a
    compiler) the complex C kernel's against 25-digit mpmath: relative error below 1e-13."""
    from sobolev_rf.codegen.numpy.printer import runtime_source
    from sobolev_rf.numeric.theory.ovfp import scaled_expint

    runtime: dict[str, object] = {}
    exec(runtime_source(), runtime)
    kernel = complex_kernel.load_complex_kernel(toy_record()) if jit.find_compiler() is not None else None
    rng = np.random.default_rng(21)
    size = 10 ** rng.uniform(np.log10(0.5), np.log10(200), 36)
    gap = np.where(np.arange(36) % 2, 10 ** rng.uniform(-10, -1, 36), rng.uniform(0, 1.5, 36))
    x = size * np.exp(1j * (np.pi - gap) * np.where(np.arange(36) % 3, 1, -1))
    for k in range(16, 25):
        nu = k / 2
        with mpmath.workdps(25):
            ref = np.array([complex(mpmath.exp(mpmath.mpc(v)) * mpmath.expint(nu, mpmath.mpc(v))) for v in x])
        found = {"numeric": scaled_expint(nu, x), "generated": runtime["_scaled_expint"](np.full(2, nu), x)}  # type: ignore[operator]
        if kernel is not None:
            found["C"] = kernel.scaled_expint(nu, x)
        for where, got in found.items():
            err = np.abs(got / ref - 1)
            assert np.all(err < 1e-13), (where, nu, x[np.argmax(err)], err.max())


@needs_cc
def test_real_twin_matches_the_numpy_kernel() -> None:
    """For real parameters the kernel's double-precision twin gives the NumPy kernel's values (residuals to
    1e-14; outputs with erfcx and e^x E_ν(x) to 1e-12, what the upward recursion of E_{5/2} amplifies rounding
    to at x ≈ 20), and NaN where NumPy gives NaN (√ or log of a negative number, E₁ of a negative one)."""
    from sobolev_rf.codegen.numpy.printer import generate_numpy_source
    from sobolev_rf.codegen.runtime import NumpyKernel

    g, t, z = sp.symbols("g t z")
    system = System(
        "twin",
        (g,),
        (t, z),
        (g - 1 / (1 - z - t * g),),
        outputs={
            "a": Erfcx(g * z) + sp.exp(g) * sp.log(1 + z) + g ** sp.Rational(3, 2),
            "b": ScaledExpint(1, g * g * z) + ScaledExpint(sp.Rational(5, 2), g + z),
        },
        definitions={},
        meta={"jacobian": "differences"},
    )
    record = json.loads(json.dumps(system.to_dict()))
    kernel = complex_kernel.load_complex_kernel(record)
    assert kernel is not None
    module = NumpyKernel(generate_numpy_source(System.from_dict(record)), "twin").module
    rng = np.random.default_rng(3)
    u = rng.uniform(-2, 3, (400, 1))
    theta = np.stack([rng.uniform(0.1, 2, 400), rng.uniform(-1.5, 20, 400)], axis=1)
    with np.errstate(all="ignore"):
        expected = np.stack(list(module.outputs(u.T, list(theta.T)).values()), axis=1)
        residual = module.residual(u.T, list(theta.T)).T
        jacobian = np.moveaxis(module.jacobian(u.T, list(theta.T)), -1, 0)
    got = kernel.real_outputs(u, theta)
    assert np.array_equal(np.isnan(got), np.isnan(expected)) and np.isnan(expected).any()
    ok = np.isfinite(expected)
    assert np.all(np.abs(got[ok] - expected[ok]) <= 1e-12 * np.abs(expected[ok]))
    assert np.allclose(kernel.real_residual(u, theta), residual, rtol=1e-14, atol=1e-14, equal_nan=True)
    J = kernel.real_jacobian(u, theta)  # forward differences in both: rounding over the step, up to 1e-6
    assert np.array_equal(np.isnan(J), np.isnan(jacobian))
    assert np.nanmax(np.abs(J - jacobian) / (1 + np.abs(jacobian))) < 1e-6
