"""Outputs that cannot be written (read-only folder, full disk, a file where a folder is expected) are one
line and exit code 2 with nothing half-written; the ``# command:`` header is one comment line; ``--debug``
works before and after the subcommand."""

from __future__ import annotations

import errno
import io
import os
import subprocess
from pathlib import Path

import pytest

from sobolev_rf.codegen import atomic
from sobolev_rf.codegen.atomic import WriteError, atomic_write_text
from sobolev_rf.derive.errors import UserError
from sobolev_rf.numeric.artifacts import command_line, csv_text, write_outputs
from sobolev_rf.numeric.cli.main import main

FILES: dict[str, str | bytes] = {"a.csv": "x\n1\n", "b.png": b"\x89PNG..."}


@pytest.fixture(autouse=True)
def private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "cache"
    monkeypatch.setenv("SOBOLEV_RF_CACHE", str(folder))
    return folder


def _tree(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def test_a_file_where_a_folder_is_expected(tmp_path: Path) -> None:
    blocker = tmp_path / "results"
    blocker.write_text("not a folder")
    for out in (blocker, blocker / "deeper"):
        with pytest.raises(WriteError, match=f"{blocker} is a file, not a folder"):
            write_outputs(out, FILES)
    assert blocker.read_text() == "not a folder" and _tree(tmp_path) == ["results"]


def test_a_full_disk_leaves_nothing_behind(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "new" / "out"
    (tmp_path / "old.csv").write_text("kept")
    written: list[int] = []
    real_write = os.write

    def full(fd: int, data: bytes) -> int:
        if written:  # the first file fits, the second does not
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        written.append(fd)
        return real_write(fd, data)

    monkeypatch.setattr(atomic.os, "write", full)
    with pytest.raises(WriteError, match="No space left on device"):
        write_outputs(out, FILES)
    with pytest.raises(OSError) as info:  # also an OSError, with its errno
        atomic_write_text(tmp_path / "old.csv", "replaced")
    assert info.value.errno == errno.ENOSPC
    monkeypatch.undo()
    assert _tree(tmp_path) == ["old.csv"]  # no temporary file, no new folder
    assert (tmp_path / "old.csv").read_text() == "kept"


def test_a_read_only_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "ro"
    folder.mkdir()
    if os.geteuid() != 0:  # root writes anyway: there the refusal is simulated below
        folder.chmod(0o555)
        try:
            with pytest.raises(WriteError, match="Permission denied"):
                write_outputs(folder / "sub", FILES)
        finally:
            folder.chmod(0o755)

    def read_only(*args: object, **kwargs: object) -> object:
        raise OSError(errno.EROFS, os.strerror(errno.EROFS))

    monkeypatch.setattr(atomic.tempfile, "mkstemp", read_only)
    with pytest.raises(WriteError, match="Read-only file system"):
        write_outputs(folder, FILES)
    monkeypatch.undo()
    assert _tree(folder) == []


def test_commands_that_write_say_so_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    sweep = ["sweep", "--p-over-d", "1:2:2", "--lam", "0.1", "--backend", "numpy"]
    assert main(sweep) == 0  # warms the cache, so that only the output is written below
    capsys.readouterr()
    for command in (
        [*sweep, "--out", str(blocker / "sweep.csv")],
        ["codegen", "--k", "1", "--out", str(blocker / "sub")],
    ):
        assert main(command) == 2, command
        err = capsys.readouterr().err
        last = err.splitlines()[-1]  # sweep's summary line comes first
        assert last.startswith("sobolev-rf: error: cannot write ") and "is a file, not a folder; " in last
        assert err.count("error") == 1 and "Traceback" not in err, err

    def full(fd: int, data: bytes) -> int:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(atomic.os, "write", full)
    assert main([*sweep, "--out", str(tmp_path / "out" / "sweep.csv")]) == 2
    monkeypatch.undo()
    err = capsys.readouterr().err.splitlines()
    assert err[-1] == f"sobolev-rf: error: cannot write {tmp_path / 'out' / 'sweep.csv'}: No space left on device; " + (
        "choose another output path."
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache", "file"]  # no "out" folder, no temporary file


def test_command_header_is_one_comment_line(tmp_path: Path) -> None:
    """A multi-line expression: the header stays one line, pandas reads the CSV, bash runs the command."""
    import pandas as pd

    words = ["spectrum", "inv(lam*I +\n  Ft*F/n)", "it's", "tab\there", "a\\nb", "x\u2028y", "--out", "my out"]
    line = command_line(words)
    assert "\n" not in line and "\u2028" not in line
    echoed = subprocess.run(
        ["bash", "-c", f"set -- {line}; shift; printf '%s\\0' \"$@\""], capture_output=True, text=True, check=True
    ).stdout
    assert echoed.split("\0")[:-1] == words  # the header is the command, runnable as it stands
    for command in (line, "sobolev-rf spectrum 'a\nb\r\nc'"):  # the CSV writer escapes a raw line break too
        text = csv_text(command, ["x", "y"], [[1, 2], [3, 4]])
        assert text.splitlines()[0].startswith("# command: ") and text.splitlines()[1] == "x,y"
        frame = pd.read_csv(io.StringIO(text), comment="#")
        assert list(frame.columns) == ["x", "y"] and frame.to_numpy().tolist() == [[1, 2], [3, 4]]


def test_png_description_is_one_line() -> None:
    from matplotlib.figure import Figure
    from PIL import Image

    from sobolev_rf.numeric.artifacts import png_bytes

    png = png_bytes(Figure(figsize=(1, 1)), "sobolev-rf spectrum 'a\nb'")
    assert Image.open(io.BytesIO(png)).text["Description"] == "sobolev-rf spectrum 'a\\nb'"


@pytest.mark.parametrize("where", ["before", "after"])
def test_debug_before_or_after_the_subcommand(where: str, capsys: pytest.CaptureFixture[str]) -> None:
    bad = ["hermite", "--activation", "nosuchfunction(x)"]
    assert main(bad) == 2 and "Traceback" not in capsys.readouterr().err
    with pytest.raises(UserError):
        main(["--debug", *bad] if where == "before" else [*bad, "--debug"])


def test_sigterm_midway_leaves_no_staged_output(tmp_path: Path) -> None:
    """SIGTERM during a long sweep into NetCDF unwinds like Ctrl-C: non-zero exit, no staged file left behind."""
    import signal
    import sys
    import time

    env = {**os.environ, "SOBOLEV_RF_CACHE": str(tmp_path / "cache"), "SOBOLEV_RF_PROGRESS": "0"}
    cmd = [sys.executable, "-m", "sobolev_rf.numeric.cli", "sweep", "--p-over-d", "0.5:8:1500"]
    cmd += ["--n-over-d", "0.5:4:1500", "--out", str(tmp_path / "big.nc")]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while not list(tmp_path.glob(".big.nc.*")) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert proc.poll() is None, "the sweep ended before it could be stopped"
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) != 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache"]


def test_sigkill_midway_leaves_a_staged_file_that_the_next_write_removes(tmp_path: Path) -> None:
    """SIGKILL cannot be caught: the killed sweep's staged file stays until the next write to the same target,
    which removes it (its process is gone) and keeps one whose process still runs."""
    import signal
    import sys
    import time

    env = {**os.environ, "SOBOLEV_RF_CACHE": str(tmp_path / "cache"), "SOBOLEV_RF_PROGRESS": "0"}
    cmd = [sys.executable, "-m", "sobolev_rf.numeric.cli", "sweep", "--p-over-d", "0.5:8:1500"]
    cmd += ["--n-over-d", "0.5:4:1500", "--out", str(tmp_path / "big.nc")]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while not list(tmp_path.glob(".big.nc.*")) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert proc.poll() is None, "the sweep ended before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    (left,) = tmp_path.glob(".big.nc.*.tmp")
    live = tmp_path / f".big.nc.{atomic._HOST}-{os.getpid()}-keep.tmp"  # this test's own process: alive
    live.write_text("")
    fd, staged = atomic.staged_temp(tmp_path / "big.nc")
    os.close(fd)
    assert not left.exists() and live.exists() and Path(staged).exists()


def test_a_device_or_pipe_in_the_way_is_refused_not_replaced(
    tmp_path: Path, private_cache: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Moving a staged file onto /dev/full (as root) would replace the device itself: a target that is neither
    a regular file nor a folder is refused in one line, and stays what it was."""
    import stat

    fifo = tmp_path / "pipe.csv"
    os.mkfifo(fifo)
    with pytest.raises(WriteError, match="device, pipe or socket"):
        atomic_write_text(fifo, "x")
    for out in (fifo, tmp_path / "pipe.nc"):
        if not out.exists():
            os.mkfifo(out)
        assert main(["sweep", "--p-over-d", "1:2:3", "--out", str(out)]) == 2
        err = capsys.readouterr().err.strip()
        assert "device, pipe or socket" in err and len(err.splitlines()) == 1
        assert stat.S_ISFIFO(out.stat().st_mode)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache", "pipe.csv", "pipe.nc"]


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
def test_a_full_standard_output_is_one_line_and_a_failure(tmp_path: Path) -> None:
    """``solve > /dev/full``: the write fails on a full device; one line on stderr, a non-zero exit, no traceback
    and no 'Exception ignored' at exit."""
    import sys

    env = {**os.environ, "SOBOLEV_RF_CACHE": str(tmp_path / "cache")}
    with open("/dev/full", "w") as full:
        proc = subprocess.run(
            [sys.executable, "-m", "sobolev_rf.numeric.cli", "hermite", "--activation", "relu"],
            env=env, stdout=full, stderr=subprocess.PIPE, text=True, timeout=120,
        )  # fmt: skip
    assert proc.returncode == 1
    assert proc.stderr.strip() == "sobolev-rf: error: No space left on device; the output is incomplete."


def test_running_out_of_memory_is_one_line_and_a_failure(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A MemoryError (an allocation the machine cannot give) is one line, exit code 1, no traceback, and the
    output is not written."""
    from sobolev_rf.numeric.theory import onestep

    def exhausted(*args: object, **kwargs: object) -> None:
        raise MemoryError

    monkeypatch.setattr(onestep, "solve_step_grid", exhausted)
    out = tmp_path / "grid.csv"
    assert main(["sweep", "--step", "l2", "--eta", "0.5:1:2", "--out", str(out)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("sobolev-rf: error: out of memory;") and "Traceback" not in "\n".join(err)
    assert not out.exists() and [p.name for p in tmp_path.iterdir() if p.name != "cache"] == []
