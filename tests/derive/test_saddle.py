"""The symbolically derived system against the hand-written oracle (tests/oracle.py)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable

import numpy as np
import pytest
import sympy as sp
from scipy import optimize

from oracle import coefficients, gamma_resolvent, solve
from sobolev_rf.derive import saddle
from sobolev_rf.derive.onestep import derive_onestep_system
from sobolev_rf.derive.params import ModelParams
from sobolev_rf.derive.saddle import derive_system
from sobolev_rf.derive.special import GammaResolvent, GammaResolvent2, expand_closed_form
from sobolev_rf.derive.system import System
from sobolev_rf.numeric.cli.main import main
from sobolev_rf.numeric.theory.solve import COLUMNS


def gamma_resolvent2(s: float, y: float) -> float:
    """E[1/(t+y)²] from the oracle's H_s by the identity of derive.special."""
    return (1.0 - (y + s - 1.0) * gamma_resolvent(s, y)) / y


MODULES = [{"GammaResolvent": gamma_resolvent, "GammaResolvent2": gamma_resolvent2}, "numpy"]


def compile_system(system: System, exprs: list[sp.Expr]) -> Callable[..., list[float]]:
    """f(unknowns, parameters) → values of ``exprs``, evaluating the definitions once, in order."""
    pairs = system.definition_pairs(exprs)
    return sp.lambdify([system.unknowns, system.parameters], exprs, modules=MODULES, cse=lambda e: (pairs, e))


def parameter_values(system: System, p: ModelParams) -> list[float]:
    """Numbers for the parameter symbols, in the order of ``system.parameters``."""
    align = np.asarray(p.alignment if p.alignment is not None else (1.0,) * p.k)
    values = dict(zip(COLUMNS[:14], [*coefficients(p.activation), *coefficients(p.teacher)]))
    values.update(
        lam=p.lam,
        psi=p.p_over_d,
        n_d=p.n_over_d,
        Delta_f=p.noise_f,
        Delta_g=p.noise_g,
        tau=p.tau,
        varpi2=float(np.mean(align**2)) if p.k else 0.0,
        varpi_l=float(align[0]) if p.k else 0.0,
    )
    return [values[name] for name in system.parameter_names]


POINTS = [
    dict(activation="relu", teacher="tanh", p_over_d=2.0, n_over_d=1.0, lam=1e-2),
    dict(activation="tanh", teacher="relu", p_over_d=1.5, n_over_d=3.0, lam=0.05, noise_f=0.2, noise_g=0.3),
]


def _alignment(k: int, unit: bool) -> tuple[float, ...]:
    return (1.0,) * k if unit else tuple(0.4 + 0.55 * l for l in range(k))


@pytest.mark.parametrize("k", [0, 1, 2, 3])
@pytest.mark.parametrize("tau", [0, 1])
@pytest.mark.parametrize("point", [0, 1])
def test_derived_system_matches_numeric_theory(k: int, tau: int, point: int) -> None:
    p = ModelParams(k=k, tau=tau, alignment=_alignment(k, unit=point == 0), **POINTS[point])
    ref = solve(p)
    system = derive_system(k, tau)
    theta = parameter_values(system, p)
    residual = compile_system(system, list(system.residuals))
    jac = sp.lambdify([system.unknowns, system.parameters], system.jacobian, modules=MODULES)
    order = ref.order
    u_ref = np.array(order["V"][: 1 + (tau == 1 and k > 0)] + order["Omega"][: 1 + (k > 0)])
    # from scratch: damped fixed-point iteration u ← u − 0.3(u − G(u)) (G keeps u positive), then Newton
    u = np.full(len(u_ref), 0.5)
    for _ in range(2000):
        r = np.asarray(residual(u, theta), float)
        if np.max(np.abs(r)) < 1e-6 * np.max(np.abs(u)):
            break
        u = u - 0.3 * r
    sol = optimize.root(
        lambda v: residual(v, theta), u, jac=lambda v: np.asarray(jac(v, theta), float), method="hybr", tol=1e-14
    )
    assert np.max(np.abs(residual(sol.x, theta))) < 1e-11 * np.max(np.abs(sol.x))
    np.testing.assert_allclose(sol.x, u_ref, rtol=1e-9)
    names = list(system.outputs)
    values = dict(zip(names, compile_system(system, list(system.outputs.values()))(sol.x, theta)))
    expected = {
        "eps_L2": ref.eps_L2,
        "eps_grad": ref.eps_grad,
        "train_loss": ref.train_loss,
        "train_error_L2": ref.train_error_L2,
        "m": order["m"],
        "q_s": order["q_s"],
        "q_w": order["q_w"],
        "eps_H1": ref.eps_H1,
        "M_0": order["M"][0],
        "S_0": np.diag(order["S"])[0],
    }
    if k:
        expected["M_l"] = order["M"][1]  # direction l = 1: varpi_l = ϖ_1
    if k and tau:
        expected["S_l"] = np.diag(order["S"])[1]
    worst = max(abs(values[n] - expected[n]) / max(abs(expected[n]), 1e-300) for n in names)
    print(f"k={k} tau={tau} point={point}: worst relative deviation {worst:.1e}")
    for n in names:
        assert values[n] == pytest.approx(expected[n], rel=1e-9, abs=1e-14), n


@pytest.mark.parametrize("k", [0, 1, 4, 1000])
def test_derivation_time_and_structure(k: int) -> None:
    """The system has the same size for every k ≥ 1: k enters as a number, ϖ through ‖ϖ‖²/k."""
    saddle._derive.cache_clear()
    start = time.perf_counter()
    system = derive_system(k, 1)
    elapsed = time.perf_counter() - start
    print(f"derive_system({k}, 1): {elapsed:.3f} s, {len(system.definitions)} definitions")
    assert len(system.residuals) == len(system.unknowns) == (2 if k == 0 else 4)
    assert system.jacobian.shape == (len(system.unknowns),) * 2
    assert system.fingerprint() == derive_system(k, 1).fingerprint()
    if k:
        assert len(system.definitions) == len(derive_system(1, 1).definitions)
        assert len(system.parameters) == len(derive_system(1, 1).parameters)
    assert set(system.outputs) >= {"eps_L2", "eps_grad", "train_loss", "train_error_L2", "m", "q_s", "q_w"}
    known = set(system.unknowns) | set(system.parameters)
    for name, expr in system.definitions.items():  # each definition uses only earlier ones
        assert expr.free_symbols <= known, name
        known.add(sp.Symbol(name))
    for expr in [*system.residuals, *system.outputs.values()]:
        assert expr.free_symbols <= known
    assert system.explicit(system.outputs["m"]).free_symbols <= set(system.unknowns) | set(system.parameters)


def test_fingerprints_differ_and_json_round_trips() -> None:
    systems = [derive_system(k, tau) for k in (1, 2) for tau in (0, 1)]
    assert len({s.fingerprint() for s in systems}) == 4
    data = json.loads(systems[3].to_json())
    assert data["unknowns"] == ["V_0", "V_1", "Omega_0", "Omega_1"]
    assert sp.sympify(data["outputs"]["eps_L2"]) == systems[3].outputs["eps_L2"]
    assert r"H_{1}\left(" in systems[3].to_latex()


@pytest.mark.parametrize("s", [sp.Rational(1, 2), 1, sp.Rational(5, 2), 3])
def test_gamma_resolvent_closed_form_derivative_and_evalf(s: sp.Expr) -> None:
    y = sp.Symbol("y", positive=True)
    h = GammaResolvent(s, y)
    closed = expand_closed_form(h)
    for y0 in (0.2, 3.0):
        assert float(closed.subs(y, y0).evalf(30)) == pytest.approx(gamma_resolvent(float(s), y0), rel=1e-12)
        assert float(h.subs(y, y0).evalf(30)) == pytest.approx(gamma_resolvent(float(s), y0), rel=1e-12)
        numeric = float(sp.diff(closed, y).subs(y, y0).evalf(30))
        assert float(sp.diff(h, y).subs(y, y0).evalf(30)) == pytest.approx(numeric, rel=1e-12)
    value = GammaResolvent(s, sp.Rational(7, 3)).evalf(50)
    assert abs(value - expand_closed_form(GammaResolvent(s, sp.Rational(7, 3))).evalf(60)) < sp.Float(10) ** -48


def test_derive_command(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["derive", "--k", "2", "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["fingerprint"] == derive_system(2, 1).fingerprint()
    assert main(["derive", "--k", "1", "--tau", "0"]) == 0
    assert "eps_H1" in capsys.readouterr().out
    assert main(["derive", "--k", "1000"]) == 0
    assert "Omega_1" in capsys.readouterr().out
    assert main(["derive", "--k", "10001"]) == 2
    assert "--k" in capsys.readouterr().err


def test_gamma_resolvent2_is_minus_the_derivative() -> None:
    y = sp.Symbol("y", positive=True)
    for s in (sp.Rational(1, 2), 2, sp.Rational(41, 2)):
        h2 = GammaResolvent2(s, y)
        assert sp.diff(GammaResolvent(s, y), y) == -h2
        for y0 in (sp.Rational(3, 10), sp.Integer(7)):
            closed = expand_closed_form(h2).subs(y, y0).evalf(40)
            assert abs(h2.subs(y, y0).evalf(40) - closed) < sp.Float(10) ** -30 * abs(closed)
            numeric = sp.diff(expand_closed_form(h2), y).subs(y, y0).evalf(40)
            assert abs(sp.diff(h2, y).subs(y, y0).evalf(40) - numeric) < sp.Float(10) ** -25 * abs(numeric)


@pytest.mark.parametrize("k, tau", [(0, 0.0), (1, 1.0)])
def test_n_over_d_is_not_named_after_the_teacher(k: int, tau: float) -> None:
    """φ is the teacher (MODEL.md): no derived parameter called phi stands for n/d, in the names or the LaTeX."""
    for system in (derive_system(k, tau), derive_onestep_system(4)):
        assert "phi" not in system.parameter_names and "n_d" in system.parameter_names
        text = system.to_latex()
        assert "\\phi" not in text.replace("c_\\phi", "")
