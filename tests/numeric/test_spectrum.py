"""Limiting spectral densities by Stieltjes inversion (``sobolev-rf spectrum`` and ``numeric.spectrum``).

Showcases: Marchenko–Pastur against its closed form (density to 1e-6, Stieltjes transform to 1e-10, the atom
at 0), Wishart with a two-point covariance against the Silverstein cubic, the random-features Gram matrix
(Gaussian-equivalent pencil) and the Sobolev Gram matrix with k = 1, 2 gradient rows per sample, whose atom
at 0 has mass 1 − (k + 1)n/p above the threshold p = (k + 1)n and vanishes below it; each against one finite draw
with the largest dimension 1200 (Stieltjes transform at η = 0.3 to 1e-2; the pencil examples of
``test_pencil_autofpt.py`` use N = 2000).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import scipy.special

from sobolev_rf.derive.laws import declare_diagonals
from sobolev_rf.derive.matrix_syntax import declare_shapes, parse_expression
from sobolev_rf.numeric.cli.main import main
from sobolev_rf.numeric.studies.spectrum import (
    StieltjesSolver,
    finite_eigenvalues,
    resolvent_system,
    spectral_density,
)


def build(text: str, shapes: list[str], diags: list[str] = ()) -> tuple[Any, str, Any, dict, list]:
    mats, dims = declare_shapes(shapes)
    dm, laws = declare_diagonals(list(diags), dims, mats)
    gauss = {k: False for k in mats}
    mats.update(dm)
    expr = parse_expression(text, mats, dims)
    system, z = resolvent_system(expr, gauss, laws)
    return system, z, expr, mats, laws


def finite_stieltjes(eigs: np.ndarray, z: np.ndarray) -> np.ndarray:
    return np.mean(1 / (eigs[None, :] - z[:, None]), axis=1)


Z_CHECK = np.array([0.2, 0.6, 1.5, 3.0]) + 0.3j


# ----------------------------------------------------------------------------------- Marchenko–Pastur
@pytest.fixture(scope="module")
def mp() -> tuple[Any, str, Any, dict, list]:
    return build("Ft*F/n", ["F=n,p"])


def mp_stieltjes(z: np.ndarray, g: float) -> np.ndarray:
    """m(z) of FᵀF/n, p/n = γ (closed form, branch with m ~ −1/z)."""
    a, b = (1 - math.sqrt(g)) ** 2, (1 + math.sqrt(g)) ** 2
    return (1 - g - z + np.sqrt(z - a) * np.sqrt(z - b)) / (2 * g * z)


def test_marchenko_pastur_closed_form(mp: tuple[Any, str, Any, dict, list]) -> None:
    system, z, *_ = mp
    g = 2.0
    solver = StieltjesSolver(system, z, {"n": 1.0, "p": g})
    x = np.linspace(0, 6, 400)
    eta = 1e-9
    spec = spectral_density(solver, x, eta)
    assert spec.converged.all() and spec.stats["continued_along_x"] > 300
    ref_m = mp_stieltjes(x + 1j * eta, g)
    assert np.max(np.abs(spec.stieltjes[1:] - ref_m[1:]) / np.abs(ref_m[1:])) < 1e-10
    a, b = (1 - math.sqrt(g)) ** 2, (1 + math.sqrt(g)) ** 2
    inside = (x > a) & (x < b)
    rho = np.zeros_like(x)
    rho[inside] = np.sqrt((b - x[inside]) * (x[inside] - a)) / (2 * math.pi * g * x[inside])
    # the continuous part is resolved everywhere except inside the atom's core (x = 0 itself at this η)
    assert np.isnan(spec.density[0]) and np.all(np.isfinite(spec.density[1:])) and spec.stats["atom_core"] == 1
    assert np.max(np.abs(spec.density[1:] - rho[1:])) < 1e-6
    assert len(spec.atoms) == 1
    ((x0, w),) = spec.atoms
    assert x0 == 0.0 and abs(w - (1 - 1 / g)) < 1e-8
    assert np.all(spec.stieltjes.imag > 0)  # the physical branch: Im m > 0 for Im z > 0


def test_marchenko_pastur_finite_draw(mp: tuple[Any, str, Any, dict, list]) -> None:
    system, z, expr, mats, laws = mp
    eigs = finite_eigenvalues(expr, mats, {"F": False}, laws, {"n": 1.0, "p": 2.0}, 1200, np.random.default_rng(0))
    assert eigs.shape == (1200,)
    assert abs(np.mean(np.abs(eigs) < 1e-8) - 0.5) < 1e-3  # rank n = p/2: the atom at 0
    ref = mp_stieltjes(Z_CHECK, 2.0)
    assert np.max(np.abs(finite_stieltjes(eigs, Z_CHECK) / ref - 1)) < 1e-2


# ----------------------------------------------------------------------------------- Wishart, two-point covariance
def silverstein_two_point(z: np.ndarray, t: tuple[float, float], w: tuple[float, float], g: float) -> np.ndarray:
    """m(z) of C XᵀX C/n, covariance C² with eigenvalues t (weights w), γ = d/n: the root with Im m > 0 of
    m = Σ_a w_a/(t_a(1 − γ − γzm) − z), a cubic in m."""
    out = []
    for zz in z:
        u = [ta * (1 - g) - zz for ta in t]
        v = [-g * zz * ta for ta in t]
        coef = [
            v[0] * v[1],
            u[0] * v[1] + u[1] * v[0],
            u[0] * u[1] - w[0] * v[1] - w[1] * v[0],
            -(w[0] * u[1] + w[1] * u[0]),
        ]
        roots = np.roots(coef)
        out.append(roots[np.argmax(roots.imag)])
    return np.array(out)


def test_wishart_two_point_covariance() -> None:
    system, z, expr, mats, laws = build("C*Xt*X*C/n", ["X=n,d"], ["C=d@1,2"])
    solver = StieltjesSolver(system, z, {"n": 1.0, "d": 0.5})
    x = np.linspace(0.0, 12.0, 400)
    spec = spectral_density(solver, x, 1e-6)
    assert spec.converged.all() and not spec.atoms
    ref = silverstein_two_point(x + 1e-6j, (1.0, 4.0), (0.5, 0.5), 0.5)
    assert np.max(np.abs(spec.stieltjes - ref) / np.abs(ref)) < 1e-8
    assert abs(np.trapezoid(spec.density, x) - 1) < 5e-3
    rng = np.random.default_rng(1)
    d, n = 1200, 2400
    c = np.where(np.arange(d) < d // 2, 1.0, 2.0)
    Xm = rng.standard_normal((n, d)) * c
    eigs = np.linalg.eigvalsh(Xm.T @ Xm / n)
    zc = np.array([0.5, 2.0, 5.0, 8.0]) + 0.3j
    got = solver.from_infinity(zc)[1]
    assert np.max(np.abs(finite_stieltjes(eigs, zc) / got - 1)) < 1e-2


def _kernel_fixed_point(system: Any, compiled: bool = False) -> Any:
    """The fixed point of a derived system on its generated NumPy kernel (through the System's JSON form);
    with ``compiled``, its complex evaluations on the complex C kernel (None where there is none)."""
    from sobolev_rf.codegen.complex_kernel import load_complex_kernel
    from sobolev_rf.codegen.numpy.printer import generate_numpy_source
    from sobolev_rf.codegen.runtime import NumpyKernel
    from sobolev_rf.derive.system import System
    from sobolev_rf.numeric.theory.ovfp import FixedPoint, KernelEvaluator

    record = system.to_system(meta={"jacobian": "differences"}).to_dict()
    stored = System.from_dict(record)
    module = NumpyKernel(generate_numpy_source(stored), "test_kernel").module
    fast = load_complex_kernel(record) if compiled else None
    if compiled and fast is None:
        return None
    return FixedPoint(KernelEvaluator(module, stored.meta["names"], fast))


# ----------------------------------------------------------------------------------- random-features Gram
def test_random_features_gram() -> None:
    A = "(k1*X*Th/sqrt(d) + ks*E)"
    system, z, *_ = build(f"t{A}*{A}/n", ["X=n,d", "Th=d,p", "E=n,p"])
    solver = StieltjesSolver(system, z, {"n": 1.0, "p": 2.0, "d": 1.0, "k1": 0.5, "ks": 0.3})
    spec = spectral_density(solver, np.linspace(0, 2.5, 200), 1e-4)
    assert spec.converged.all()
    assert len(spec.atoms) == 1 and spec.atoms[0][0] == 0.0 and abs(spec.atoms[0][1] - 0.5) < 1e-6
    rng = np.random.default_rng(2)
    p, n = 1200, 600
    Am = 0.5 * rng.standard_normal((n, n)) @ rng.standard_normal((n, p)) / math.sqrt(n) + 0.3 * rng.standard_normal(
        (n, p)
    )
    eigs = np.linalg.eigvalsh(Am.T @ Am / n)
    zc = np.array([0.05, 0.2, 0.6, 1.5]) + 0.3j
    got = solver.from_infinity(zc)[1]
    assert np.max(np.abs(finite_stieltjes(eigs, zc) / got - 1)) < 1e-2


# ----------------------------------------------------------------------------------- Sobolev Gram (k = 1, 2)
SOBOLEV_VALUES = {"n": 1.0, "d": 1.0, "a1": 0.5, "s1": 0.3, "b1": 0.4, "s2": 0.3}


def sobolev_gram_expression(k: int) -> str:
    """(A₀ᵀA₀ + Σ_l D_l A′ᵀA′ D_l)/n: n function rows A₀ = κ₁H + κ_*E and, per direction l, n gradient rows
    A′D_l with A′ = κ₁′H + κ_*′E′ (one E′ shared by the directions), H = XΘ/√d."""
    grad = "(b1*X*Th/sqrt(d) + s2*Ep)"
    terms = "".join(f" + D{l}*t{grad}*{grad}*D{l}/n" for l in range(1, k + 1))
    return "t(a1*X*Th/sqrt(d) + s1*E)*(a1*X*Th/sqrt(d) + s1*E)/n" + terms


SOBOLEV_GRAM = sobolev_gram_expression(1)
_SYSTEMS: dict[int, tuple[Any, str]] = {}


def sobolev_gram(k: int) -> tuple[Any, str]:
    if k not in _SYSTEMS:
        _SYSTEMS[k] = build(
            sobolev_gram_expression(k), ["X=n,d", "Th=d,p", "E=n,p", "Ep=n,p"], [f"D{l}=p" for l in range(1, k + 1)]
        )[:2]
    return _SYSTEMS[k]


@pytest.mark.parametrize("k, p_over_n", [(1, 3.0), (1, 1.5), (2, 4.0)])
def test_sobolev_gram_threshold(k: int, p_over_n: float) -> None:
    """The design has (k + 1)n rows: above p = (k + 1)n the Gram matrix has an atom 1 − (k + 1)n/p at 0."""
    system, z = sobolev_gram(k)
    solver = StieltjesSolver(system, z, {**SOBOLEV_VALUES, "p": p_over_n})
    spec = spectral_density(solver, np.linspace(0, 1, 120), 1e-4)
    masses = [w for x0, w in spec.atoms if abs(x0) < 1e-6]
    if p_over_n > k + 1:
        assert len(masses) == 1 and abs(masses[0] - (1 - (k + 1) / p_over_n)) < 1e-3
    else:
        assert not masses
    # one finite draw (p = 1200; ζ on permuted normal quantile grids, THEORY.md §4)
    rng = np.random.default_rng(5)
    p = 1200
    n = d = int(round(p / p_over_n))
    X, T = rng.standard_normal((n, d)), rng.standard_normal((d, p))
    H = X @ T / math.sqrt(d)
    A0 = 0.5 * H + 0.3 * rng.standard_normal((n, p))
    Ag = 0.4 * H + 0.3 * rng.standard_normal((n, p))
    gram = A0.T @ A0
    for _ in range(k):
        zeta = rng.permutation(scipy.special.ndtri((np.arange(p) + 0.5) / p))
        gram += zeta[:, None] * (Ag.T @ Ag) * zeta[None, :]
    eigs = np.linalg.eigvalsh(gram / n)
    assert abs(np.mean(np.abs(eigs) < 1e-9) - max(0.0, 1 - (k + 1) * n / p)) < 2e-3
    zc = np.array([0.05, 0.2, 0.6, 1.5]) + 0.3j
    got = solver.from_infinity(zc)[1]
    assert np.max(np.abs(finite_stieltjes(eigs, zc) / got - 1)) < 1e-2
    # the generated complex kernel of the same system (erfcx, e^x E_ν) gives the same m(z) as lambdify
    kernel = StieltjesSolver(_kernel_fixed_point(system), z, {**SOBOLEV_VALUES, "p": p_over_n})
    zk = (np.array([0.01, 0.05, 0.3, 1.0]) + np.array([1e-3, 1e-2, 0.1, 0.3])[:, None] * 1j).ravel()
    a, b = solver.from_infinity(zk)[1], kernel.from_infinity(zk)[1]
    assert np.max(np.abs(a - b) / np.abs(a)) < 1e-10
    # and so does its complex C kernel (erfcx through the Faddeeva function, Newton per point in C); at
    # p = 3n the whole spectrum (density, atom) through both kernels
    fixed_point = _kernel_fixed_point(system, compiled=True)
    if fixed_point is None:
        pytest.skip("no complex C kernel here (no C compiler, or a special function it does not write)")
    compiled = StieltjesSolver(fixed_point, z, {**SOBOLEV_VALUES, "p": p_over_n})
    assert np.max(np.abs(compiled.from_infinity(zk)[1] - a) / np.abs(a)) < 1e-10
    if (k, p_over_n) == (1, 3.0):
        grid = np.linspace(0, 1, 60)
        one, two = spectral_density(kernel, grid, 1e-4), spectral_density(compiled, grid, 1e-4)
        assert np.array_equal(np.isnan(one.density), np.isnan(two.density)) and one.converged.all()
        assert np.max(np.abs(one.stieltjes - two.stieltjes) / np.abs(one.stieltjes)) < 1e-10
        away = grid > 100 * 1e-4  # outside the core of the atom at 0 (there ρ = Im m/π − w/(πη), w/(πη) ~ 1e3)
        assert np.nanmax(np.abs(one.density - two.density)[away]) < 1e-9 * np.nanmax(one.density)
        assert len(one.atoms) == len(two.atoms) == 1
        assert abs(one.atoms[0][0] - two.atoms[0][0]) < 1e-9 and abs(one.atoms[0][1] - two.atoms[0][1]) < 1e-9


# ----------------------------------------------------------------------------------- command line
MP_ARGV = [
    "spectrum",
    "Ft*F/n",
    "--shape",
    "F=n,p",
    "--param",
    "n=1",
    "--param",
    "p=2",
    "--x",
    "0:6:100",
    "--eta",
    "1e-6",
]


def test_cli_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(MP_ARGV + ["--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert {"x", "density", "atoms"} <= set(data)
    assert len(data["x"]) == len(data["density"]) == 100
    assert data["atoms"][0]["x"] == 0.0 and abs(data["atoms"][0]["mass"] - 0.5) < 1e-8
    assert main(MP_ARGV) == 0
    text = capsys.readouterr().out
    assert "atom at x = 0: mass 0.5" in text and "continued along x" in text


def test_cli_out_writes_png_and_csv(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from PIL import Image

    out = tmp_path / "mp"
    assert main(MP_ARGV + ["--n", "400", "--out", str(out)]) == 0
    capsys.readouterr()
    names = sorted(p.name for p in out.iterdir())
    assert names == ["spectrum.csv", "spectrum.png", "spectrum_atoms.csv", "spectrum_eigenvalues.csv"]
    first = (out / "spectrum.csv").read_text().splitlines()
    assert first[0].startswith("# command: sobolev-rf spectrum") and first[1] == (
        "x,density,stieltjes_re,stieltjes_im,note"
    )
    assert len(first) == 102
    eig_lines = (out / "spectrum_eigenvalues.csv").read_text().splitlines()
    assert len(eig_lines) == 402
    assert Image.open(out / "spectrum.png").info["Description"].startswith("sobolev-rf spectrum")


@pytest.mark.parametrize(
    "extra, fragment",
    [
        (["--x", "1:0:10"], "a < b"),
        (["--x", "0:1"], "a:b:num"),
        (["--x", "0:1:1"], "between 2"),
        (["--x", "0:nan:10"], "a < b"),
        (["--eta", "0"], "> 0"),
        (["--eta", "-1"], "> 0"),
        (["--param", "z=1+1j"], "real"),
        (["--n", "-3"], "integer"),
    ],
)
def test_cli_bad_input_one_line(
    extra: list[str], fragment: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "never"
    try:
        code = main(MP_ARGV + extra + ["--out", str(out)])
    except SystemExit as exc:  # argparse type errors
        code = exc.code
    assert code == 2
    err = capsys.readouterr().err
    assert fragment in err and err.count("\n") == 1 and "Traceback" not in err
    assert not out.exists()


@pytest.mark.parametrize(
    "argv, fragment",
    [
        (
            ["spectrum", "F*Ft/n*D", "--shape", "F=n,p", "--diag", "D=n", "--param", "n=1", "--param", "p=2"],
            "not self-adjoint",
        ),
        (["spectrum", "Ft*F/n", "--shape", "F=n,p", "--param", "n=1"], "missing parameter"),
        (["spectrum", "F", "--shape", "F=n,p", "--param", "n=1", "--param", "p=2"], "square"),
    ],
)
def test_cli_bad_expressions(argv: list[str], fragment: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert fragment in err and err.count("\n") == 1


def _bad_spectrum_cases() -> list[list[str]]:
    base = MP_ARGV[:2] + ["--shape", "F=n,p", "--param", "n=1", "--param", "p=2"]
    cases = [
        base + ["--x", v]
        for v in (
            "",
            ":",
            "0:1:",
            "0:1:2:3",
            "0:1:x",
            "0:1:-5",
            "0:1:1e3",
            "1:1:10",
            "-inf:1:10",
            "0:1e400:10",
            "a:1:10",
            "0:1:100001",
        )
    ]
    cases += [base + [f"--eta={v}"] for v in ("", "0", "-0", "-1e-3", "nan", "inf", "1e400", "x", "1/2")]
    cases += [base + [f"--n={v}"] for v in ("-1", "1.5", "x", "1e3", "20001", "nan")]
    cases += [base + [f"--seed={v}"] for v in ("-1", "x")]
    cases += [base + [f"--param={v}"] for v in ("q=1+1j", "q=nan", "q", "=1", "n=0", "p=-2", "p=1+2j", "q=1e400")]
    cases += [
        base + [f"--diag={v}"]
        for v in (
            "D",
            "D=n@",
            "D=n@1:",
            "D=n@x",
            "D=n@sqrt(",
            "D=n@exp(F)",
            "D,E=n@1,2",
            "D=n@uniform(1)",
            "D=n@nosuchfile.csv",
            "F=n",
        )
    ]
    cases += [
        ["spectrum", e] + base[2:]
        for e in ("", "x.__class__", "__import__('os')", "F", "F*F", "Ft*F", "lam", "inv(Ft*F/n)*F'")
    ]
    cases += [base + ["--bogus"], base + ["--json=1"], ["spectrum"]]
    return cases


@pytest.mark.parametrize("argv", _bad_spectrum_cases())
def test_cli_fuzz_one_line_errors(
    argv: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    try:
        code: object = main(argv + ["--out", "figs"])
    except SystemExit as exc:
        code = exc.code
    out, err = capsys.readouterr()
    assert code == 2, (argv, err)
    assert len(err.splitlines()) == 1 and "Traceback" not in err and out == ""
    assert list(tmp_path.iterdir()) == []


def test_finite_draw_beyond_memory_refused_before_any_work(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A finite draw whose matrices would not fit is refused in one line, before the derivation starts."""
    import sobolev_rf.numeric.studies.spectrum as study

    monkeypatch.setattr(study, "available_memory", lambda: 1 << 30)
    monkeypatch.setattr(study, "resolvent_system", lambda *a, **k: pytest.fail("derived before the check"))
    out = tmp_path / "never"
    assert main(MP_ARGV + ["--n", "9000", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "memory" in err and "--n" in err and err.count("\n") == 1
    assert not out.exists()


def test_atom_reported_whether_or_not_the_grid_contains_it(capsys: pytest.CaptureFixture[str]) -> None:
    """The atom of FᵀF/n at 0 (mass 1 − n/p) is found from a grid on [0.5, 6]; the output says how much mass
    the grid and the atoms capture, and why a point has no density."""
    argv = MP_ARGV[:-4] + ["--x", "0.5:6:60", "--eta", "1e-6", "--json"]
    assert main(argv) == 0
    data = json.loads(capsys.readouterr().out)
    assert len(data["atoms"]) == 1 and data["atoms"][0]["x"] == 0.0 and abs(data["atoms"][0]["mass"] - 0.5) < 1e-8
    assert abs(data["mass"]["atoms"] - 0.5) < 1e-8 and 0.4 < data["mass"]["continuous_on_grid"] < 0.45
    assert main(MP_ARGV[:-4] + ["--x", "0.5:6:60", "--eta", "1e-6"]) == 0
    text = capsys.readouterr().out
    assert "% of the mass: " in text and "lies outside [0.5, 6]" in text
    assert main(MP_ARGV + ["--json"]) == 0  # x = 0 is in the atom's core: null, with the reason
    data = json.loads(capsys.readouterr().out)
    assert data["density"][0] is None and "core of the atom at 0" in data["density_notes"][0]
    assert all((d is None) == (note is not None) for d, note in zip(data["density"], data["density_notes"]))


def test_warm_calls_import_no_sympy(tmp_path: Path) -> None:
    """A repeated spectrum or pencil --solve loads the stored system and its kernel: no SymPy, same output;
    also for a law given by a data file (ridge bias with a teacher column: numerical expectations, stored
    as sums over the file's rows)."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "SOBOLEV_RF_CACHE": str(tmp_path / "cache")}
    check = (
        "import sys; from sobolev_rf.numeric.cli.main import main; code = main(sys.argv[1:]); "
        "print('SYMPY' if 'sympy' in sys.modules else 'NOSYMPY'); sys.exit(code)"
    )
    pencil = ["pencil", "inv(Ft*F/n - z*I)", "--shape", "F=n,p", "--solve", "--param", "z=1+0.01j"]
    rng = np.random.default_rng(9)
    columns = tmp_path / "columns.csv"
    columns.write_text(
        "".join(f"{a!r},{b!r}\n" for a, b in zip(rng.uniform(0.5, 2.5, 50).tolist(), rng.exponential(1.0, 50).tolist()))
    )
    ridge = "inv(R*Zt*Z*R/n + lam)"
    data_law = ["pencil", f"{ridge} * T * {ridge} * S", "--shape", "Z=n,d", "--diag", f"S,T=d@{columns}"]
    data_law += ["--diag", "R=d@sqrt(S)", "--solve", "--param", "lam=0.1", "--param", "n=1", "--param", "d=0.5"]
    for argv in (
        MP_ARGV[:-4] + ["--x", "0:6:40", "--json"],
        pencil + ["--param", "n=1", "--param", "p=2"],
        data_law,
    ):
        runs = [
            subprocess.run([sys.executable, "-c", check, *argv], env=env, capture_output=True, text=True, timeout=300)
            for _ in range(2)
        ]
        assert [r.returncode for r in runs] == [0, 0], runs[0].stderr[-500:]
        assert runs[0].stdout.rstrip().endswith("SYMPY") and runs[1].stdout.rstrip().endswith("NOSYMPY")
        assert runs[0].stdout.replace("NOSYMPY", "SYMPY") == runs[1].stdout.replace("NOSYMPY", "SYMPY")
