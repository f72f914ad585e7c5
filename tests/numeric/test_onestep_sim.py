"""The one-step simulator (numeric/simulation/onestep.py) and its parameters and command-line options.

- η̃ = 0 (an L2 or Sobolev step, fresh or shared, either second layer) reproduces the random-features
  simulation of the same seeds bit for bit;
- the step is W₁ = W₀ − (η̃p/2)∇_W L₁ of ONESTEP.md's loss, checked against central finite differences of
  that loss written out independently here, for fresh and shared directions and both second layers;
- the spike measurement recovers a planted spike, row rescaling and bulk;
- valid step fields round-trip through ``as_dict``, invalid ones raise a one-line ParameterError (property
  test), and bad step options on the command line end in one line on stderr and exit code 2;
- a campaign grid takes the step's axes and runs them.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sobolev_rf.derive.params import ModelParams, ParameterError
from sobolev_rf.numeric import cli, simulate
from sobolev_rf.numeric.simulation.onestep import StepFunctions, StepSpec, measure_spike, step_first_layer

BASE = ModelParams(activation="tanh", teacher="tanh", k=2, tau=0.5, noise_f=0.1, noise_g=0.2, alignment=(0.7, -1.2))


@pytest.mark.parametrize(
    "step",
    [
        {"step": "l2", "eta": 0},
        {"step": "sobolev", "eta": 0.0, "second_layer": "sign", "tau_step": 2, "k_step": 3},
        {"step": "sobolev", "eta": 0, "step_dirs": "shared", "tau_step": "2/d"},
    ],
)
def test_zero_rate_is_the_random_features_simulation_bit_for_bit(step: dict) -> None:
    plain = simulate(BASE, 40, seeds=[1, 5], n_test=300)
    stepped = simulate(BASE.with_(**step), 40, seeds=[1, 5], n_test=300)
    for key, values in plain.per_seed.items():
        assert np.array_equal(values, stepped.per_seed[key], equal_nan=True), key
    assert stepped.mean["spike_r"] == 0.0 and stepped.mean["row_scale"] == 1.0
    assert "spike_r" not in plain.per_seed


def _loss(w: np.ndarray, a: np.ndarray, fns: StepFunctions, x, y, u, labels) -> float:
    """L₁(W) of ONESTEP.md: (1/n₀)Σ_i[(y_i − f₀(x_i))² + τ₁Σ_l(ỹ_il − u_ilᵀ∇f₀(x_i))²] without τ₁ (added by
    the caller per term), written directly: f₀(x) = Σ_j a_jσ(w_jᵀx), ∇f₀(x) = Σ_j a_jσ′(w_jᵀx)w_j."""
    h = x @ w.T
    f = fns.sigma(h) @ a
    grad = (fns.dsigma(h) * a) @ w  # n₀ × d
    fit = np.mean((y - f) ** 2)
    proj = np.einsum("ild,id->il", u, grad)
    return float(fit), float(np.mean(np.sum((labels - proj) ** 2, axis=1)))


@pytest.mark.parametrize("dirs,layer", [("fresh", "const"), ("fresh", "sign"), ("shared", "sign"), ("shared", "const")])
def test_the_step_is_the_gradient_of_the_step_loss(dirs: str, layer: str) -> None:
    d, p, k1 = 7, 5, 2
    params = ModelParams(
        activation="tanh",
        teacher="sin(x)",
        k=3,
        noise_f=0.3,
        noise_g=0.4,
        step="sobolev",
        eta=0.7,
        alpha0=9 / 7,
        tau_step=1.3 * d if dirs == "shared" else 1.3,
        k_step=k1,
        step_dirs=dirs,
        second_layer=layer,
    )
    spec = StepSpec.of(params, d)
    assert spec.n0 == 9 and math.isclose(spec.tau1, 1.3)
    fns = StepFunctions.of(params)
    rng = np.random.default_rng(11)
    theta = rng.standard_normal((d, p))
    v = rng.standard_normal((d, 3))
    theta0 = rng.standard_normal(d)
    theta0 /= np.linalg.norm(theta0)
    varpi = v.T @ theta0
    theta1, signs = step_first_layer(fns, spec, theta, v, theta0, varpi, np.random.default_rng(3))
    # the same draws, in the documented order: signs, x, ε_f, then per l: u (fresh) and ε_g
    rng = np.random.default_rng(3)
    s = rng.choice(np.array([-1.0, 1.0]), size=p) if layer == "sign" else np.ones(p)
    assert np.array_equal(s, signs)
    x = rng.standard_normal((spec.n0, d))
    omega = x @ theta0
    y = fns.phi(omega) + math.sqrt(0.3) * rng.standard_normal(spec.n0)
    u = np.empty((spec.n0, k1, d))
    labels = np.empty((spec.n0, k1))
    for l in range(k1):
        u[:, l] = rng.standard_normal((spec.n0, d)) if dirs == "fresh" else v[:, l]
        labels[:, l] = (u[:, l] @ theta0) * fns.dphi(omega) + math.sqrt(0.4) * rng.standard_normal(spec.n0)
    a = s / p
    w0 = theta.T / math.sqrt(d)

    def total(w: np.ndarray) -> float:
        fit, grad_term = _loss(w, a, fns, x, y, u, labels)
        return fit + spec.tau1 * grad_term

    numeric = np.zeros_like(w0)
    eps = 1e-6
    for j in range(p):
        for c in range(d):
            e = np.zeros_like(w0)
            e[j, c] = eps
            numeric[j, c] = (total(w0 + e) - total(w0 - e)) / (2 * eps)
    expected = w0 - spec.eta * p / 2 * numeric
    np.testing.assert_allclose(theta1.T / math.sqrt(d), expected, rtol=0, atol=1e-8)


def test_measure_spike_recovers_a_planted_spike() -> None:
    rng = np.random.default_rng(0)
    d, p = 300, 600
    theta = rng.standard_normal((d, p))
    theta0 = rng.standard_normal(d)
    theta0 /= np.linalg.norm(theta0)
    g = rng.standard_normal(d)
    g -= (g @ theta0) * theta0
    g /= np.linalg.norm(g)
    gamma, r, c_plus, c_minus, b2 = 0.6, 0.8, 1.1, 0.95, 0.3
    u_hat = gamma * theta0 + math.sqrt(1 - gamma**2) * g
    signs = rng.choice(np.array([-1.0, 1.0]), size=p)
    w0 = theta.T / math.sqrt(d)
    c = np.where(signs > 0, c_plus, c_minus)
    w1 = c[:, None] * w0 + r * np.outer(signs, u_hat) + math.sqrt(b2 / d) * rng.standard_normal((p, d))
    v = rng.standard_normal((d, 2))
    out = measure_spike(theta, w1.T * math.sqrt(d), signs, theta0, v)
    assert abs(out["spike_r"] - r) < 0.01 and abs(out["spike_gamma"] - gamma) < 0.01
    assert abs(out["row_scale"] - c_plus) < 0.01 and abs(out["row_scale_neg"] - c_minus) < 0.01
    assert abs(out["bulk_variance"] - b2) < 0.01
    assert abs(out["c_W"] - math.sqrt(c_plus**2 + b2)) < 0.02
    # ⟨û, v_l⟩ carries û's O(1/√p) estimation error times ‖v_l‖ = √d
    np.testing.assert_allclose(out["spike_overlap_l"], v.T @ u_hat, atol=0.15)
    np.testing.assert_allclose(out["zeta_shift_l"], r * (v.T @ u_hat), atol=0.15)


def test_parameters_refuse_bad_steps() -> None:
    for bad, word in [
        ({"eta": 1}, "eta"),
        ({"step": "l2", "eta": -0.1}, "eta"),
        ({"step": "l2", "alpha0": 0}, "alpha0"),
        ({"step": "sobolev", "tau_step": -1}, "tau_step"),
        ({"step": "sobolev", "k_step": -1}, "k_step"),
        ({"step": "sobolev", "step_dirs": "shared", "tau_step": "2"}, "tau_step"),
        ({"step": "l2", "k_step": 1}, "k_step"),
    ]:
        with pytest.raises(ParameterError, match=word):
            ModelParams(**bad)
    p = ModelParams(step="sobolev", step_dirs="shared", tau_step="3/d", k=2)
    assert p.tau_step == 3 and p.k_step == 2 and p.step_weight(300) == 0.01
    assert ModelParams(**p.as_dict()) == p and p.with_(step="none") == ModelParams(k=2)
    assert "step" not in ModelParams().as_dict()


@settings(max_examples=120, deadline=None)
@given(
    step=st.sampled_from(["l2", "sobolev"]),
    k=st.integers(min_value=1, max_value=4),
    eta=st.none() | st.floats(min_value=0, max_value=1e6),
    alpha0=st.none() | st.floats(min_value=1e-6, max_value=1e6),
    tau_step=st.none() | st.floats(min_value=0, max_value=1e6),
    k_step=st.none() | st.integers(min_value=0, max_value=4),
    dirs=st.none() | st.sampled_from(["fresh", "shared"]),
    layer=st.none() | st.sampled_from(["const", "sign"]),
    field=st.sampled_from(["", "eta", "alpha0", "tau_step", "k_step", "step_dirs", "second_layer", "step"]),
)
def test_step_fields_validate_round_trip_or_refuse_in_one_line(
    step: str, k: int, eta, alpha0, tau_step, k_step, dirs, layer, field: str
) -> None:
    values = {"k": k, "step": step, "eta": eta, "alpha0": alpha0, "second_layer": layer}
    if step == "sobolev":
        values.update(tau_step=tau_step, step_dirs=dirs, k_step=None if k_step is None else min(k_step, k))
    bad = {"eta": -1.0, "alpha0": 0.0, "tau_step": -0.5, "k_step": -1, "step_dirs": "both", "second_layer": "x"}
    if field == "step":
        values["step"] = "none"  # every given step option is then refused
        if not any(values[name] is not None for name in values if name not in ("k", "step")):
            values["eta"] = 1.0
    elif field:
        values[field] = bad[field]
    try:
        params = ModelParams(**values)
    except ParameterError as exc:
        message = str(exc)
        assert field and "\n" not in message and (field in message or field == "step"), message
        return
    assert not field, f"accepted {field} = {values[field]!r}"
    assert params.has_step and params.eta is not None and params.alpha0 is not None and params.alpha0 > 0
    assert ModelParams(**params.as_dict()) == params
    assert (params.tau_step is None) == (step == "l2")


@pytest.mark.parametrize(
    "extra,word",
    [
        (["--eta", "1"], "--step"),
        (["--second-layer", "sign"], "--step"),
        (["--step", "l2", "--eta", "-1"], "eta"),
        (["--step", "l2", "--alpha0", "0"], "alpha0"),
        (["--step", "sobolev", "--tau-step", "-2"], "tau_step"),
        (["--step", "sobolev", "--k-step", "-1"], "k_step"),
        (["--step", "sobolev", "--k-step", "1.5"], "k_step"),
        (["--step", "sobolev", "--step-dirs", "shared", "--tau-step", "2"], "/d"),
        (["--step", "sobolev", "--tau-step", "2/d"], "shared"),
        (["--step", "l2", "--tau-step", "1"], "--step sobolev"),
        (["--step", "sobolev", "--step-dirs", "shared", "--k", "0"], "k"),
        (["--step", "sgd"], "step"),
        (["--step", "l2", "--eta", "1e300"], "smaller --eta"),
        (["--step", "sobolev", "--alpha0", "1e9"], "α₀"),
    ],
)
def test_cli_refuses_bad_step_options(
    extra: list[str], word: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as info:
        code = cli.main(["simulate", "--d", "20", *extra])
        raise SystemExit(code)
    captured = capsys.readouterr()
    assert info.value.code == 2 and captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and word in lines[0] and "Traceback" not in captured.err, captured.err
    assert list(tmp_path.iterdir()) == []


def test_cli_simulates_a_step(capsys: pytest.CaptureFixture[str]) -> None:
    code = cli.main(
        ["simulate", "--d", "30", "--activation", "tanh", "--step", "sobolev", "--step-dirs", "shared"]
        + ["--tau-step", "1/d", "--second-layer", "sign", "--json"]
    )
    assert code == 0
    out = capsys.readouterr().out
    assert '"spike_gamma"' in out and '"zeta_shift_l"' in out and '"step": "sobolev"' in out


def test_theory_of_a_step_covers_the_l2_readout(capsys: pytest.CaptureFixture[str]) -> None:
    from sobolev_rf.derive.errors import UserError
    from sobolev_rf.numeric import solve

    result = solve(ModelParams(step="l2", tau=0, eta=2.0))
    assert result.eps_L2 > 0 and result.order["spike"]["r"] > 0  # a ReLU student: the step hurts (≈ 1.41)
    with pytest.raises(UserError, match="k = 1 or 2"):
        solve(ModelParams(step="l2", eta=2.0, k=3))
    assert cli.main(["solve", "--step", "l2", "--eta", "2", "--k", "3"]) == 2
    err = capsys.readouterr().err
    assert "k = 1 or 2" in err and len(err.strip().splitlines()) == 1
    assert cli.main(["solve", "--step", "l2", "--eta", "2", "--tau", "0"]) == 0
    assert "eps_L2" in capsys.readouterr().out


def test_campaign_grid_has_step_axes_and_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from sobolev_rf.numeric.campaign.engine import GRID_AXES, grid, point_key

    points, axes = grid(step="sobolev", step_axes={"eta": [0, 1], "k_step": [1, 2]}, second_layer="sign")
    assert [name for name, _ in axes] == [*GRID_AXES, "eta", "k_step"] and len(points) == 4
    assert {(p.eta, p.k_step, p.second_layer, p.step_dirs) for p in points} == {
        (e, k, "sign", "fresh") for e in (0.0, 1.0) for k in (1, 2)
    }
    plain, _ = grid()
    assert point_key(plain[0]) == point_key(ModelParams())  # a grid without a step keeps its keys
    monkeypatch.chdir(tmp_path)
    bad = ["campaign", "--store=s.sqlite", "--step", "sobolev", "--step-dirs", "shared", "--tau-step", "1,2"]
    assert cli.main(bad) == 2 and "/d" in capsys.readouterr().err and not list(tmp_path.iterdir())
    assert cli.main(["campaign", "--store=s.sqlite", "--eta", "0:1:2"]) == 2
    assert "--step" in capsys.readouterr().err and not list(tmp_path.iterdir())
    argv = ["campaign", "--store=s.sqlite", "--workers=1", "--d=12", "--activation=tanh", "--step=sobolev"]
    argv += ["--eta=0,1", "--step-dirs=shared", "--tau-step=0:2:2/d", "--export=t.csv", "--summary=s.nc"]
    assert cli.main(argv) == 0
    header = (tmp_path / "t.csv").read_text().splitlines()[1].split(",")
    assert header[-11:-9] == ["step_dirs", "second_layer"] and len((tmp_path / "t.csv").read_text().splitlines()) == 6
    import xarray as xr

    with xr.open_dataset(tmp_path / "s.nc") as summary:
        assert summary.attrs["step_dirs"] == "shared" and set(summary.sizes) >= {"eta", "tau_step"}
