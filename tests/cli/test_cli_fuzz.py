"""CLI fuzz: hundreds of generated bad inputs, each must end in exit code 2 with one line on stderr.

Every case changes one piece of a valid command line into something invalid (a negative, NaN,
infinite or non-numeric number, a wrong alignment, an unknown or unsafe activation, an injection
string, an unknown option) and checks: exit code 2, exactly one line on stderr, nothing on stdout,
no traceback, and no file left in the (fresh, empty) working directory. Most cases run in-process
through :func:`sobolev_rf.numeric.cli.main.main`; a handful run as real subprocesses. The case list is
generated from a fixed seed, and every case fails at validation, before any heavy work.
"""

from __future__ import annotations

import argparse
import random
import subprocess
import sys
from pathlib import Path

import pytest

from sobolev_rf.derive.hermite import MAX_DIGITS, MAX_ORDER
from sobolev_rf.numeric import cli

SEED = 20240611
#: The file the injection strings try to create.
MARKER = "PWNED_MARKER"

INJECTIONS = (
    f"__import__('os').system('touch {MARKER}')",
    f'__import__("os").system("touch {MARKER}")',
    "x.__class__",
    "x.__class__.__mro__[-1].__subclasses__()",
    "lambda: 1",
    "lambda x: x",
    f"exec(\"open('{MARKER}', 'w')\")",
    f"eval(\"open('{MARKER}', 'w')\")",
    f"open('{MARKER}', 'w')",
    "exp(x**2)",
    f"x; import os; os.system('touch {MARKER}')",
    "().__class__.__bases__[0].__subclasses__()",
    "[c for c in ().__class__.__base__.__subclasses__()]",
    "globals()",
    "getattr(x, 'func')",
    "Symbol('y')",
    "S('x')",
    "sympify('x')",
)

BAD_ACTIVATIONS = INJECTIONS + (
    "",
    "   ",
    "nonsense",
    "relux",
    "x^2",
    "x**x",
    "1/x",
    "log(x)",
    "sqrt(x)",
    "Heaviside(x)",
    "sign(x)",
    "exp(exp(x))",
    "x**1000",
    "10**10**10",
    "y",
    "x +",
    "(x",
    "x)",
    "Max(",
    "x $ 1",
    "x @ x",
    "x % 2",
    "x // 2",
    "1 if x else 0",
    "x\nx",
    "é",
    "'x'",
    "x.real",
    "x[0]",
    "{x}",
    "Piecewise((x, x > 0))",
    "1/0",
    "0**-1",
    "0/0",
    "x + 1/0",
    "x*(1/0)",
    "exp(1/(0*x))",
    "True",
    "x > 0",
    "exp(x)**2 * exp(x**2)",
    "tanh(x, x)",
)

COMMANDS = ("hermite", "simulate", "solve", "pencil")

PENCIL_BASE = [
    "pencil",
    "inv(lam*I + Ft*F/n)",
    "--shape=F=n,p",
    "--solve",
    "--param=lam=0.5",
    "--param=n=1",
    "--param=p=2",
]
BASE = {
    "hermite": ["hermite", "--activation=relu", "--digits=10"],
    "simulate": ["simulate", "--d=20", "--n-test=50"],
    "solve": ["solve"],
}


def _junk(rng: random.Random, alphabet: str, low: int = 1, high: int = 12) -> str:
    """A string that no float parser accepts (it starts with 'q')."""
    return "q" + "".join(rng.choice(alphabet) for _ in range(rng.randint(low, high)))


JUNK_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789.,;:+-*/()[]{}'\"!?$%&=_ "


def _bad_reals(rng: random.Random, positive: bool) -> list[str]:
    """Values that are invalid for a real parameter that must be > 0 (``positive``) or >= 0."""
    fixed = [
        "-1",
        "-0.5",
        "-1e-300",
        "nan",
        "NaN",
        "-nan",
        "inf",
        "-inf",
        "Infinity",
        "1e400",
        "-1e400",
        "",
        " ",
        "abc",
        "1,5",
        "1.2.3",
        "0x10",
        "1/2",
        "one",
        "2 3",
        "--",
        "1e",
        "e5",
        "None",
    ]
    if positive:
        fixed += ["0", "0.0", "-0", "0e10"]
    fixed += [f"-{rng.uniform(1e-6, 1e6):.6g}" for _ in range(6)]
    fixed += [_junk(rng, JUNK_ALPHABET) for _ in range(4)]
    return fixed


def _bad_integers(rng: random.Random, minimum: int) -> list[str]:
    """Values that are invalid for an integer option >= ``minimum``."""
    fixed = ["nan", "inf", "-inf", "1e400", "abc", "", "1.5", "2.25", "0.999", "seven", "3x", "--1"]
    fixed += [str(minimum - 1), str(minimum - 1000), f"{minimum - 1}.0"]
    fixed += [str(rng.randint(-(10**6), minimum - 1)) for _ in range(4)]
    fixed += [f"{rng.randint(minimum, 100)}.{rng.randint(1, 9)}" for _ in range(3)]
    fixed += [_junk(rng, JUNK_ALPHABET) for _ in range(3)]
    return fixed


def _bad_activations(rng: random.Random) -> list[str]:
    out = list(BAD_ACTIVATIONS)
    for _ in range(6):
        out.append(f"x + {rng.choice(['os', 'sys', 'eval', 'open', 'np', 'z', 'foo', 'Symbol'])}")
        out.append(f"exp({rng.randint(1, 9)}*x**2)")
        out.append(f"x**{rng.randint(65, 10**6)}")
        out.append(f"1/(x - {rng.uniform(-3, 3):.3f})")
        out.append(f"Heaviside(x - {rng.uniform(-3, 3):.3f})")
        out.append(f"sqrt(x - {rng.uniform(-3, 3):.3f})")
        out.append("zz" + "".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(1, 8))))
        out.append("x" + rng.choice(";@$!?`~#\\") + "x")
    return out


def _model_cases(rng: random.Random, base: list[str]) -> list[list[str]]:
    """Bad values for the shared model arguments of ``solve`` and ``simulate``."""
    cases: list[list[str]] = []
    for opt in ("--p-over-d", "--n-over-d"):
        cases += [base + [f"{opt}={v}"] for v in _bad_reals(rng, positive=True)]
    for opt in ("--lam", "--noise-f", "--noise-g"):
        cases += [base + [f"{opt}={v}"] for v in _bad_reals(rng, positive=False)]
    cases += [base + [f"--k={v}"] for v in _bad_integers(rng, 0) + ["1e30", "1e300", str(10**40)]]
    cases += [
        base + [f"--tau={v}"]
        for v in ["-1", "-0.5", "nan", "inf", "", "x", "True", "1e400"]
        + [str(-rng.randint(1, 10**6)) for _ in range(5)]
    ]
    alignments = [
        "",
        "1,2",
        "a",
        "a,b",
        "1,,2",
        "nan",
        "inf",
        "-inf",
        "1;2",
        "(1)",
        "[1]",
        "1 2",
        "0x",
        ",",
        "1,",
        ",1",
    ]
    alignments += [",".join(f"{rng.uniform(-0.5, 0.5):.3f}" for _ in range(rng.choice([0, 2, 3, 5]))) for _ in range(5)]
    cases += [base + [f"--alignment={a}"] for a in alignments]
    cases += [base + ["--k=3", f"--alignment={a}"] for a in ("0.1,0.2", "0.1,0.2,0.3,0.4", "0.1,nan,0.2")]
    for opt in ("--activation", "--teacher"):
        cases += [base + [f"{opt}={a}"] for a in _bad_activations(rng)]
    return cases


def _unknown_options(rng: random.Random, base: list[str]) -> list[list[str]]:
    cases = [base + [opt] for opt in ("--bogus", "--lamda=1", "-z", "--json=1", "---k")]
    cases += [
        base + ["--" + "".join(rng.choice("abcdefghijklmnopqrstuvwxyz-") for _ in range(8)) + "q"] for _ in range(3)
    ]
    return cases


def generate_cases(commands: tuple[str, ...]) -> list[list[str]]:
    """The deterministic list of bad command lines for the available ``commands``."""
    rng = random.Random(SEED)
    cases: list[list[str]] = [["nosuchcommand"], ["--bogus"], ["--debug=1", "solve"], ["SOLVE"], ["hermite " + "x"]]
    if "hermite" in commands:
        base = BASE["hermite"]
        cases += [["hermite", f"--activation={a}"] for a in _bad_activations(rng)]
        cases += [base + [f"--digits={v}"] for v in _bad_integers(rng, 1) + [str(MAX_DIGITS + 1), "10**9"]]
        cases += [base + [f"--order={v}"] for v in _bad_integers(rng, 0) + [str(MAX_ORDER + 1), "10**9"]]
        cases += [base + ["--json", "--latex"], base + ["--activation"]]
        cases += _unknown_options(rng, base)
    if "solve" in commands:
        cases += _model_cases(rng, BASE["solve"])
        cases += _unknown_options(rng, BASE["solve"])
    if "simulate" in commands:
        base = BASE["simulate"]
        cases += _model_cases(rng, base)
        cases += [["simulate", f"--d={v}"] for v in _bad_integers(rng, 2) + ["1e30", "1e15", str(10**20)]]
        cases += [["simulate", "--d=20", "--k=25"], ["simulate", "--d=3", "--k=3", "--alignment=0.5,0.5,0.5"]]
        cases += [base + [f"--seeds={v}"] for v in _bad_integers(rng, 1)]
        cases += [["simulate", "--d=20", f"--n-test={v}"] for v in _bad_integers(rng, 1)]
        cases += [base + [f"--subspace={v}"] for v in ("", "Random", "informed ", _junk(rng, JUNK_ALPHABET))]
        cases += _unknown_options(rng, base)
    if "pencil" in commands:
        head, tail = PENCIL_BASE[:2], PENCIL_BASE[2:]
        exprs = list(INJECTIONS) + [
            "",
            "inv(",
            "F*F",
            "F + I",
            "inv(G)",
            "lam*",
            "F.T",
            "F'",
            "I/0",
            "inv(lam*I + Ft*F/n))",
            "inv(lam*I + Ft*F/n) ; 1",
            "F*0",
            "F - F",
            "0*inv(lam*I + Ft*F/n)",
        ]
        cases += [["pencil", e] + tail for e in exprs]
        shapes = [
            "F",
            "F=",
            "=n,p",
            "F=n,p,q",
            "I=n,p",
            "inv=n",
            "F=n,",
            "F=-1,p",
            "F=n p",
            "1F=n,p",
            "F=n,p;import os",
        ]
        cases += [head + [f"--shape={s}", "--solve", "--param=lam=0.5", "--param=n=1", "--param=p=2"] for s in shapes]
        params = [
            "lam=x",
            "lam",
            "=1",
            "lam=nan",
            "lam=inf",
            "lam=-inf",
            "lam=",
            "lam=1=2",
            "1lam=1",
            "lam=__import__('os')",
            "n=0",
            "n=-1",
            "p=0",
            "p=nan",
            "n=inf",
        ]
        cases += [
            head
            + ["--shape=F=n,p", "--solve"]
            + [f"--param={q}" for q in ("lam=0.5", "n=1", "p=2") if q.split("=")[0] != prm.split("=")[0]]
            + [f"--param={prm}"]
            for prm in params
        ]
        diag_head = ["pencil", "inv(lam*I + D)", "--solve", "--param=lam=0.5", "--param=n=1"]
        diags = [
            "D",
            "D=",
            "D=n@",
            "D=n@a",
            "D=n@1:",
            "D=n@1:2:3",
            "D=n@1:nan",
            "D=n@nan",
            "D=n@inf",
            "D=n@1:inf",
            "D=n@1:-1",
            "D=n@1:0.3",
            "D=n@1:0.5,2",
            "I=n",
        ]
        cases += [diag_head + [f"--diag={s}"] for s in diags]
        cases += [PENCIL_BASE + [f"--format={f}"] for f in ("", "html", "JSON", _junk(rng, JUNK_ALPHABET))]
        cases += [PENCIL_BASE + ["--symmetric=F"], PENCIL_BASE + ["--symmetric=G"], ["pencil"]]
        cases += _unknown_options(rng, PENCIL_BASE)
    return [list(c) for c in dict.fromkeys(tuple(c) for c in cases)]


def available_commands() -> tuple[str, ...]:
    """The fuzzed subcommands that :data:`cli.COMMANDS` registers."""
    parser = cli.build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return tuple(c for c in COMMANDS if c in sub.choices)


CASES = generate_cases(available_commands())

#: Cases also run as real processes: one from each kind of failure.
SUBPROCESS_CASES = [
    ["nosuchcommand"],
    ["solve", "--bogus"],
    ["hermite", f"--activation={INJECTIONS[0]}"],
    ["hermite", "--activation=exp(x**2)"],
    ["solve", "--k=1e30"],
    ["solve", "--lam=-1"],
    ["solve", "--k=2", "--alignment=1,2,3"],
    ["simulate", "--d=1"],
    ["simulate", "--d=20", "--activation=lambda: 1"],
    ["pencil", "x.__class__"],
    ["pencil", "inv(lam*I + D)", "--diag=D=n@1:nan"],
]


def _listing(path: Path) -> list[str]:
    return sorted(str(p.relative_to(path)) for p in path.rglob("*"))


def _check_failure(code: object, out: str, err: str, cwd: Path) -> None:
    assert code == 2, f"exit code {code!r}; stderr: {err!r}"
    assert "Traceback" not in out + err, err
    lines = err.splitlines()
    assert len(lines) == 1 and err.endswith("\n") and lines[0].strip(), f"stderr must be one line: {err!r}"
    assert out == "", f"nothing may be printed on stdout for bad input: {out!r}"
    assert _listing(cwd) == [], f"files left behind: {_listing(cwd)}"
    assert not (cwd / MARKER).exists()


def test_enough_cases() -> None:
    assert len(CASES) >= 500 or available_commands() != COMMANDS
    assert len({tuple(c) for c in CASES}) == len(CASES), "cases must be distinct"


@pytest.mark.parametrize("argv", CASES, ids=[f"{i:03d}-{c[0]}" for i, c in enumerate(CASES)])
def test_bad_input_in_process(
    argv: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    try:
        code: object = cli.main(argv)
    except SystemExit as exc:  # argparse errors exit from inside parse_args
        code = exc.code
    captured = capsys.readouterr()
    _check_failure(code, captured.out, captured.err, tmp_path)


def test_bad_input_as_subprocess(tmp_path: Path) -> None:
    """Real processes, started together: the real exit code and stderr of the installed entry point."""
    commands = available_commands()
    cases = [c for c in SUBPROCESS_CASES if c[0] not in COMMANDS or c[0] in commands]
    assert len(cases) >= 10
    runs = []
    for i, argv in enumerate(cases):
        cwd = tmp_path / f"case{i}"
        cwd.mkdir()
        proc = subprocess.Popen(
            [sys.executable, "-m", "sobolev_rf.numeric.cli", *argv],
            cwd=cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        runs.append((argv, cwd, proc))
    for argv, cwd, proc in runs:
        out, err = proc.communicate(timeout=120)
        try:
            _check_failure(proc.returncode, out, err, cwd)
        except AssertionError as exc:
            raise AssertionError(f"{argv}: {exc}") from None
