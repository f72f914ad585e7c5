"""The finite-size simulator (numeric/simulation/exact.py) and its command line (numeric/cli/cmd_simulate.py)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import scipy.linalg

from sobolev_rf.derive.errors import UserError
from sobolev_rf.derive.params import ModelParams
from sobolev_rf.numeric.simulation import exact as sim


def dtanh(x: np.ndarray) -> np.ndarray:
    return 1.0 - np.tanh(x) ** 2


TANH = sim.ExactFeatures(np.tanh, dtanh, np.tanh, dtanh)
# A teacher with φ′(0) ≠ 0 and φ(0) ≠ 0 and a non-odd student exercise every term of the errors.
MIXED = sim.ExactFeatures(
    lambda h: np.log1p(np.exp(h)),
    lambda h: 1.0 / (1.0 + np.exp(-h)),
    lambda w: np.sin(w) + 0.5 * w**2,
    lambda w: np.cos(w) + w,
)


def reference_design(problem: sim.Problem) -> tuple[np.ndarray, np.ndarray]:
    """A and b written out row block by row block, independently of :func:`sim.design`."""
    blocks, targets = [problem.feat], [problem.y]
    if problem.tau:
        for l in range(problem.k):
            blocks.append(problem.dfeat * problem.zeta[:, l][None, :])
            targets.append(problem.y_grad[:, l])
    return np.vstack(blocks), np.concatenate(targets)


def draw(
    d: int, p: int, n: int, k: int, tau: int, seed: int = 0, features: sim.FeatureMap = MIXED, noise: float = 0.1
) -> sim.Problem:
    alignment = np.linspace(-1.2, 0.9, k) if k else ()
    return sim.draw_problem(features, d, p, n, alignment, tau, noise, noise, np.random.default_rng(seed))


# ---------------------------------------------------------------------------------------------- directions


@pytest.mark.parametrize("alignment", [(), (1.0,), (2.5, -0.3), (0.0, 1.7, -1.1)])
def test_alignment_is_exact_and_teacher_is_unit(alignment: tuple[float, ...]) -> None:
    for seed in range(5):
        v, theta0 = sim.draw_directions(np.random.default_rng(seed), 40, alignment, "random")
        assert v.shape == (40, len(alignment))
        np.testing.assert_allclose(v.T @ theta0, alignment, rtol=0, atol=1e-12)
        assert abs(np.linalg.norm(theta0) - 1.0) < 1e-12


@pytest.mark.parametrize("k,pilot,noise", [(1, None, 0.0), (2, None, 0.0), (3, 50, 0.3), (2, 1, 0.1), (3, 2, 0.0)])
def test_informed_directions_are_orthogonal_with_norm_sqrt_d(k: int, pilot: int | None, noise: float) -> None:
    """Informed V: ‖v_l‖ = √d exactly, orthogonal columns (also where the pilot data fix fewer than k
    directions and random ones complete them), unit θ₀, alignment values ignored (only k is used)."""
    d = 40
    for seed in range(3):
        args = dict(pilot=pilot, noise_g=noise, dphi=dtanh)
        v, theta0 = sim.draw_directions(np.random.default_rng(seed), d, (7.0,) * k, "informed", **args)
        v2, theta2 = sim.draw_directions(np.random.default_rng(seed), d, (0.0,) * k, "informed", **args)
        np.testing.assert_array_equal(v, v2)
        np.testing.assert_array_equal(theta0, theta2)
        assert v.shape == (d, k) and abs(np.linalg.norm(theta0) - 1.0) < 1e-12
        np.testing.assert_allclose(v.T @ v, d * np.eye(k), atol=1e-9)
        if noise == 0.0:  # noiseless pilot gradients: v₁ = √d·θ₀ exactly (tanh′ > 0 fixes the sign)
            assert v[:, 0] @ theta0 == pytest.approx(np.sqrt(d), rel=1e-12)
            np.testing.assert_allclose(v[:, 1:].T @ theta0, 0.0, atol=1e-9)


def test_informed_problem_uses_the_realised_alignment() -> None:
    problem = sim.draw_problem(
        MIXED, 30, 20, 15, (5.0, 5.0), 1, 0.0, 0.0, np.random.default_rng(2), "informed", pilot=12
    )
    np.testing.assert_allclose(problem.alignment, problem.v.T @ problem.theta0, rtol=1e-14)
    np.testing.assert_allclose(
        problem.y_grad, np.outer(MIXED.dphi(problem.x @ problem.theta0), problem.alignment), rtol=1e-12, atol=1e-12
    )
    assert problem.alignment[0] == pytest.approx(np.sqrt(30), rel=1e-12)  # noiseless pilot: ϖ₁ = √d


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"pilot": 0}, "pilot"),
        ({"pilot": 2.5}, "pilot"),
        ({"dphi": None}, "dphi"),
        ({"k": 40}, "d > k"),
    ],
)
def test_informed_draw_validates(kwargs: dict, match: str) -> None:
    args = {"pilot": None, "dphi": dtanh, "k": 1} | kwargs
    k = args.pop("k")
    with pytest.raises(UserError, match=match):
        sim.draw_directions(np.random.default_rng(0), 40, (1.0,) * k, "informed", **args)


def test_random_directions_are_unnormalised_gaussians() -> None:
    v, _ = sim.draw_directions(np.random.default_rng(1), 2000, (1.0, -1.0))
    norms2 = np.sum(v**2, axis=0) / 2000
    assert np.all(np.abs(norms2 - 1.0) < 0.1)  # ‖v_l‖² ≈ d, not 1


def test_alignment_too_large_for_d_is_a_user_error() -> None:
    with pytest.raises(UserError, match="too small"):
        sim.draw_directions(np.random.default_rng(0), 4, (10.0,))
    with pytest.raises(UserError, match="d > k"):
        sim.draw_directions(np.random.default_rng(0), 3, (0.1, 0.1, 0.1))


# ------------------------------------------------------------------------------------------------ training


@pytest.mark.parametrize(
    "tau,k,p,n",
    [
        (0, 1, 20, 40),  # primal, p < N = n
        (0, 2, 70, 40),  # dual, p > N = n
        (1, 1, 50, 30),  # primal, p < N = 2n
        (1, 2, 80, 30),  # primal, p < N = 3n
        (1, 2, 130, 30),  # dual, p > N = 3n
    ],
)
@pytest.mark.parametrize("lam", [1e-3, 0.7])
def test_ridge_solution_is_stationary(tau: int, k: int, p: int, n: int, lam: float) -> None:
    problem = draw(25, p, n, k, tau)
    w = sim.fit(problem, lam)
    a, b = reference_design(problem)
    grad = a.T @ (a @ w - b) + n * lam * w  # (n/2)∇L(w)
    assert np.linalg.norm(grad) <= 1e-8 * np.linalg.norm(a.T @ b)
    loss = np.sum((a @ w - b) ** 2) / n + lam * w @ w
    train = sim.train_errors(problem, w, lam)
    assert train["train_loss"] == pytest.approx(loss, rel=1e-10)
    assert train["train_error_L2"] == pytest.approx(np.mean((problem.feat @ w - problem.y) ** 2), rel=1e-10)


def test_design_matches_reference() -> None:
    problem = draw(20, 15, 12, 3, 1)
    a, b = sim.design(problem)
    a_ref, b_ref = reference_design(problem)
    np.testing.assert_array_equal(a, a_ref)
    np.testing.assert_array_equal(b, b_ref)


@pytest.mark.parametrize("tau,k", [(0, 1), (1, 1), (1, 2)])
def test_ridgeless_underparameterised_solves_normal_equations(tau: int, k: int) -> None:
    problem = draw(25, 18, 40, k, tau)
    w = sim.fit(problem, 0.0)
    a, b = reference_design(problem)
    assert np.linalg.norm(a.T @ (a @ w - b)) <= 1e-8 * np.linalg.norm(a.T @ b)


@pytest.mark.parametrize("tau,k,p", [(0, 1, 70), (1, 1, 90), (1, 2, 130)])
def test_ridgeless_overparameterised_is_min_norm_interpolant(tau: int, k: int, p: int) -> None:
    problem = draw(25, p, 30, k, tau)
    w = sim.fit(problem, 0.0)
    a, b = reference_design(problem)
    assert np.linalg.norm(a @ w - b) <= 1e-8 * np.linalg.norm(b)
    null = scipy.linalg.null_space(a)
    assert null.shape[1] == p - a.shape[0]
    assert np.linalg.norm(null.T @ w) <= 1e-8 * np.linalg.norm(w)
    # λ → 0⁺: the ridge solution converges to it.
    assert np.linalg.norm(sim.fit(problem, 1e-12) - w) <= 1e-4 * np.linalg.norm(w)


# ------------------------------------------------------------------------------------ student derivatives


def student(problem: sim.Problem, w: np.ndarray, features: sim.ExactFeatures, x: np.ndarray) -> float:
    return float(features.sigma(problem.theta.T @ x / np.sqrt(problem.d)) @ w)


def test_projected_gradient_equals_directional_derivative() -> None:
    problem = draw(20, 30, 10, 2, 1, seed=3)
    w = np.random.default_rng(4).standard_normal(problem.p)
    x = np.random.default_rng(5).standard_normal(problem.d)
    h = problem.theta.T @ x / np.sqrt(problem.d)
    _, grad_proj = sim.student_predictions(MIXED.sigma(h)[None], MIXED.dsigma(h)[None], w, problem.zeta)
    for l in range(problem.k):
        v = problem.v[:, l]
        u, norm = v / np.linalg.norm(v), np.linalg.norm(v)
        step = 1e-4
        fd = (student(problem, w, MIXED, x + step * u) - student(problem, w, MIXED, x - step * u)) / (2 * step)
        assert grad_proj[0, l] == pytest.approx(norm * fd, rel=1e-6)


def test_test_error_sums_match_finite_differences() -> None:
    problem = draw(12, 17, 10, 2, 1, seed=6)
    w = sim.fit(problem, 1e-2)
    x = np.random.default_rng(7).standard_normal((2, problem.d))
    sums = sim.batch_error_sums(problem, w, MIXED, x, np.random.default_rng(0))
    step = 1e-4
    eye = np.eye(problem.d)
    l2 = h1 = grad_err = 0.0
    for xi in x:
        omega = problem.theta0 @ xi
        grad = np.array(
            [
                (student(problem, w, MIXED, xi + step * e) - student(problem, w, MIXED, xi - step * e)) / (2 * step)
                for e in eye
            ]
        )
        l2 += (MIXED.phi(omega) - student(problem, w, MIXED, xi)) ** 2
        h1 += np.mean((problem.alignment * MIXED.dphi(omega) - problem.v.T @ grad) ** 2)
        grad_err += np.sum((problem.theta0 * MIXED.dphi(omega) - grad) ** 2)
    assert sums[0] == pytest.approx(l2, rel=1e-12)
    assert sums[1] == pytest.approx(h1, rel=1e-6)
    assert sums[2] == pytest.approx(grad_err, rel=1e-6)


def test_order_parameters_match_definitions() -> None:
    problem = draw(15, 11, 9, 2, 1, seed=8)
    w = sim.fit(problem, 0.1)
    op = sim.order_parameters(problem, w)
    sd = np.sqrt(problem.d)
    assert op["m"] == pytest.approx(problem.theta0 @ problem.theta @ w / sd, rel=1e-12)
    assert op["q_s"] == pytest.approx(np.sum((problem.theta @ w) ** 2) / problem.d, rel=1e-12)
    assert op["q_w"] == pytest.approx(w @ w, rel=1e-12)
    assert op["s_a"] == pytest.approx(np.sum(w), rel=1e-12)
    for l in range(problem.k):
        dw = np.diag(problem.zeta[:, l]) @ w
        assert op["s_l"][l] == pytest.approx(problem.v[:, l] @ problem.theta @ w / sd, rel=1e-10)
        assert op["m_l"][l] == pytest.approx(problem.theta0 @ problem.theta @ dw / sd, rel=1e-10)
        assert op["q_s_l"][l] == pytest.approx(np.sum((problem.theta @ dw) ** 2) / problem.d, rel=1e-10)
        assert op["q_w_l"][l] == pytest.approx(dw @ dw, rel=1e-10)


# ------------------------------------------------------------------------------------------- simulate()


@pytest.mark.parametrize("tau,k", [(0, 1), (1, 1), (0, 2), (1, 2)])
def test_interpolation_peak_moves_to_k_plus_one_n(tau: int, k: int) -> None:
    """THEORY.md §4: with λ → 0⁺ eps_L2 peaks at p = n (τ = 0) and at p = (k+1)n (τ = 1)."""
    ratios = (0.5, 0.75, 1.0, 1.5, 2.0, 2.5, 3.0, 4.0)
    base = ModelParams(activation="tanh", teacher="tanh", k=k, tau=tau, n_over_d=1.0, lam=1e-6)
    eps = [
        sim.simulate_features(TANH, base.with_(p_over_d=r), 60, seeds=3, n_test=1000, progress=False).mean["eps_L2"]
        for r in ratios
    ]
    assert ratios[int(np.argmax(eps))] == (1 + tau * k)


def test_simulate_is_deterministic_and_test_set_independent_of_training() -> None:
    params = ModelParams(activation="tanh", teacher="tanh", k=2, tau=1, p_over_d=1.5, n_over_d=0.5, lam=1e-2)
    a = sim.simulate_features(TANH, params, 30, seeds=[3, 4], n_test=300, progress=False)
    b = sim.simulate_features(TANH, params, 30, seeds=[3, 4], n_test=300, progress=False)
    c = sim.simulate_features(TANH, params, 30, seeds=[3, 4], n_test=700, progress=False)
    for key in sim.SCALAR_KEYS + sim.VECTOR_KEYS:
        np.testing.assert_array_equal(a.per_seed[key], b.per_seed[key])
    for key in ("train_loss", "q_w", "m", "s_l"):  # training draw does not depend on n_test
        np.testing.assert_array_equal(a.per_seed[key], c.per_seed[key])
    assert a.per_seed["s_l"].shape == (2, 2)
    assert a.se["eps_L2"] == pytest.approx(np.std(a.per_seed["eps_L2"], ddof=1) / np.sqrt(2))
    assert (a.p, a.n, a.n_test) == (45, 15, 300)


def test_single_seed_and_k_zero_report_nan() -> None:
    params = ModelParams(activation="tanh", teacher="tanh", k=0, tau=1, p_over_d=2, n_over_d=1, lam=1e-2)
    result = sim.simulate_features(TANH, params, 20, seeds=1, n_test=100, progress=False)
    assert np.isnan(result.mean["eps_H1"]) and np.isnan(result.se["eps_L2"])
    out = json.loads(json.dumps(result.to_dict()))
    assert out["eps_H1"] is None and out["eps_L2_se"] is None and out["s_l"] == []
    assert out["config"] == {
        "d": 20,
        "p": 40,
        "n": 20,
        "seeds": 1,
        "n_test": 100,
        "subspace": "random",
        "model": "exact",
    }


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"d": 1}, "d must be"),
        ({"d": 2.5}, "d must be"),
        ({"seeds": 0}, "seeds"),
        ({"seeds": [1, -2]}, "seeds"),
        ({"n_test": 0}, "n_test"),
        ({"subspace": "clever"}, "subspace"),
        ({"d": 200_000}, "GiB"),
        ({"pilot": 5}, "only applies"),
        ({"pilot": 0, "subspace": "informed"}, "pilot"),
        ({"pilot": 10**9, "subspace": "informed"}, "GiB"),
    ],
)
def test_simulate_validates_its_arguments(kwargs: dict, match: str) -> None:
    args = {"d": 10, "seeds": 1, "n_test": 10, "progress": False} | kwargs
    with pytest.raises(UserError, match=match):
        sim.simulate_features(TANH, ModelParams(), **args)


# --------------------------------------------------------------------------------- Gaussian equivalence


def ge_coefficients(kappa_star: float, kappa_star_prime: float, cross: float) -> dict[str, float]:
    return {
        "kappa0": 0.3,
        "kappa1": 0.8,
        "kappa_star": kappa_star,
        "kappa0_prime": 0.8,
        "kappa1_prime": -0.2,
        "kappa_star_prime": kappa_star_prime,
        "cross": cross,
    }


def test_gaussian_equivalent_features_have_the_prescribed_law() -> None:
    features = sim.GaussianEquivalentFeatures(ge_coefficients(0.5, 0.4, 0.12), ge_coefficients(1.0, 2.0, -1.0))
    rng = np.random.default_rng(0)
    h = rng.standard_normal((400, 500))
    omega = rng.standard_normal(200_000)
    feat, dfeat, phi, dphi = features(h, omega, rng)
    eta, eta_prime = (feat - 0.3 - 0.8 * h) / 0.5, (dfeat - 0.8 + 0.2 * h) / 0.4
    assert np.std(eta) == pytest.approx(1, abs=0.01) and np.std(eta_prime) == pytest.approx(1, abs=0.01)
    assert np.corrcoef(eta.ravel(), eta_prime.ravel())[0, 1] == pytest.approx(0.6, abs=0.01)
    u, u_prime = phi - 0.3 - 0.8 * omega, (dphi - 0.8 + 0.2 * omega) / 2.0
    assert np.corrcoef(u, u_prime)[0, 1] == pytest.approx(-0.5, abs=0.01)


@pytest.mark.parametrize(
    "student,match",
    [
        ({"kappa0": 0.0}, "lack"),
        (ge_coefficients(0.5, 0.4, 0.3), "cross"),
        (ge_coefficients(-0.1, 0.4, 0.0), ">= 0"),
    ],
)
def test_gaussian_equivalent_coefficients_are_validated(student: dict, match: str) -> None:
    with pytest.raises(UserError, match=match):
        sim.GaussianEquivalentFeatures(student, ge_coefficients(1, 1, 0))


def test_gaussian_equivalent_linear_model_matches_exact_linear_model() -> None:
    """σ(h) = h has κ_* = κ_*′ = 0: its Gaussian equivalent is the model itself, up to the random stream."""
    linear = {
        "kappa0": 0.0,
        "kappa1": 1.0,
        "kappa_star": 0.0,
        "kappa0_prime": 1.0,
        "kappa1_prime": 0.0,
        "kappa_star_prime": 0.0,
        "cross": 0.0,
    }
    params = ModelParams(activation="x", teacher="x", k=1, tau=1, p_over_d=0.5, n_over_d=2.0, lam=1e-3)
    ones = lambda h: np.ones_like(h)  # noqa: E731
    exact = sim.simulate_features(
        sim.ExactFeatures(lambda h: h, ones, lambda h: h, ones), params, 40, seeds=4, n_test=500, progress=False
    )
    ge = sim.simulate(
        params,
        40,
        seeds=4,
        n_test=500,
        progress=False,
        model="gaussian_equivalent",
        ge_student=linear,
        ge_teacher=linear,
    )
    assert ge.model == "gaussian_equivalent"
    for key in ("eps_L2", "eps_grad", "q_w"):
        assert ge.mean[key] == pytest.approx(exact.mean[key], rel=1e-9)


# -------------------------------------------------------------------------------------------- command line


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    from sobolev_rf.numeric.cli.main import main

    try:
        code = main(["simulate", *argv])
    except SystemExit as exc:  # argparse errors
        code = exc.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err


CLI_POINT = (
    "--activation",
    "relu",
    "--teacher",
    "tanh",
    "--k",
    "2",
    "--tau",
    "1",
    "--d",
    "30",
    "--p-over-d",
    "2",
    "--n-over-d",
    "1",
    "--lam",
    "1e-2",
    "--noise-f",
    "0.1",
    "--noise-g",
    "0.2",
    "--alignment",
    "1,-0.5",
    "--seeds",
    "2",
    "--n-test",
    "200",
)


def test_cli_prints_json_with_the_required_keys(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(capsys, *CLI_POINT, "--json")
    assert code == 0
    data = json.loads(out)
    for key in (
        "eps_L2",
        "eps_H1",
        "eps_grad",
        "train_loss",
        "train_error_L2",
        "m",
        "q_s",
        "q_w",
        "s_a",
        "s_l",
        "m_l",
        "q_s_l",
        "q_w_l",
    ):
        assert key in data and f"{key}_se" in data
    assert data["config"] == {
        "d": 30,
        "p": 60,
        "n": 30,
        "seeds": 2,
        "n_test": 200,
        "subspace": "random",
        "model": "exact",
    }
    assert len(data["s_l"]) == 2 and all(isinstance(data[k], float) for k in ("eps_H1", "eps_L2_se"))
    params = ModelParams(
        activation="relu",
        teacher="tanh",
        k=2,
        tau=1,
        p_over_d=2,
        n_over_d=1,
        lam=1e-2,
        noise_f=0.1,
        noise_g=0.2,
        alignment=(1, -0.5),
    )
    direct = sim.simulate(params, 30, seeds=2, n_test=200, progress=False)
    assert data["eps_grad"] == direct.mean["eps_grad"] and data["q_w_se"] == direct.se["q_w"]


def test_cli_prints_a_table_without_json(capsys: pytest.CaptureFixture[str]) -> None:
    informed = tuple(a for i, a in enumerate(CLI_POINT) if "--alignment" not in CLI_POINT[max(i - 1, 0) : i + 1])
    assert "--alignment" not in informed and len(informed) == len(CLI_POINT) - 2
    code, out, _ = run_cli(capsys, *informed, "--subspace", "informed", "--pilot", "40")
    assert code == 0
    assert "eps_grad" in out and "s_l[2]" in out and "subspace = informed" in out and "pilot = 40" in out
    assert "outside the d → ∞ theory" in out and "alignment[2]" in out


def test_cli_informed_json_reports_the_realised_alignment(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(
        capsys, "--d", "36", "--k", "1", "--seeds", "2", "--n-test", "100", "--subspace", "informed", "--json"
    )
    assert code == 0
    data = json.loads(out)
    assert data["config"]["pilot"] == 36 and data["config"]["outside_theory"] is True
    assert data["alignment"][0] == pytest.approx(6.0, rel=1e-12)  # noiseless pilot gradients: ϖ₁ = √36
    params = ModelParams(k=1)
    direct = sim.simulate(params, 36, seeds=2, n_test=100, progress=False, subspace="informed")
    assert data["eps_L2"] == direct.mean["eps_L2"] and direct.pilot == 36


@pytest.mark.parametrize(
    "argv",
    [
        ("--d", "1"),
        ("--d", "ten"),
        ("--tau", "-2"),
        ("--k", "-1"),
        ("--seeds", "0"),
        ("--n-test", "2.5"),
        ("--lam", "-1"),
        ("--alignment", "1,2"),
        ("--subspace", "clever"),
        ("--d", "3", "--alignment", "9"),
        ("--subspace", "informed", "--alignment", "1"),
        ("--pilot", "5"),
        ("--subspace", "informed", "--pilot", "0"),
        ("--subspace", "informed", "--pilot", "x"),
        ("--subspace", "informed", "--pilot", "1e12"),
    ],
)
def test_cli_rejects_invalid_values_with_one_line(capsys: pytest.CaptureFixture[str], argv: tuple[str, ...]) -> None:
    code, out, err = run_cli(capsys, "--d", "10", "--n-test", "10", *argv)
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and "error" in err
