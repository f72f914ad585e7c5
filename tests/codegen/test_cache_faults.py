"""Failure paths of the artifact cache: locks whose owner died or was stopped, damaged entries whose marker
still matches, a cache folder others could write, a compiler that does not work."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from sobolev_rf.codegen import cache, jit
from sobolev_rf.codegen.jit import find_compiler
from sobolev_rf.numeric.theory.solve import solve_grid

needs_cc = pytest.mark.skipif(find_compiler() is None, reason="no C compiler")
POINT = dict(activation="relu", teacher="tanh", p_over_d=np.array([0.5, 2.5]), n_over_d=1.0, lam=1e-2)


@pytest.fixture(autouse=True)
def private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "cache"
    monkeypatch.setenv("SOBOLEV_RF_CACHE", str(folder))
    return folder


def _start_ticks(pid: int) -> int:
    text = Path(f"/proc/{pid}/stat").read_text()
    return int(text[text.rindex(")") + 2 :].split()[19])


def _lock(folder: Path, key: str, **owner: object) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{key}.lock"
    path.write_text(json.dumps(owner))
    return path


def _generate() -> str:
    return "# generated\n"


# --------------------------------------------------------------------------------------------------
# locks
# --------------------------------------------------------------------------------------------------


def test_lock_records_its_owner_and_is_released(tmp_path: Path) -> None:
    seen: list[dict] = []

    def generate() -> str:
        seen.append(json.loads((tmp_path / ("a" * 64 + ".lock")).read_text()))
        return "# generated\n"

    cache.get_artifact(tmp_path, "a" * 64, "py", "py", generate)
    (owner,) = seen
    assert owner["pid"] == os.getpid() and owner["host"] == socket.gethostname()
    if Path("/proc/self/stat").exists():
        assert owner["start"] == _start_ticks(os.getpid())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a" * 64 + ".py", "a" * 64 + ".ready"]


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc")
def test_lock_of_a_dead_or_replaced_owner_is_broken_at_once(tmp_path: Path) -> None:
    gone = subprocess.Popen(["true"])
    gone.wait()
    host = socket.gethostname()
    cases = [
        dict(host=host, pid=gone.pid, start=None),  # no such process
        dict(host=host, pid=os.getppid(), start=1),  # a pid now used by another process than the owner
        dict(host="elsewhere", pid=1, start=1),  # another host, older than the bound (below)
    ]
    for i, owner in enumerate(cases):
        key = str(i) * 64
        lock = _lock(tmp_path, key, **owner)
        if owner["host"] == "elsewhere":
            old = time.time() - 2 * cache.STALE_LOCK_SECONDS
            os.utime(lock, (old, old))
        start = time.monotonic()
        path = cache.get_artifact(tmp_path, key, "py", "py", _generate)
        assert time.monotonic() - start < 5 and path.read_text() == "# generated\n" and not lock.exists()


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc")
def test_waiting_for_a_live_owner_is_said_in_one_line(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    owner = subprocess.Popen(["sleep", "30"])
    try:
        _lock(tmp_path, "b" * 64, host=socket.gethostname(), pid=owner.pid, start=_start_ticks(owner.pid))
        result: list[Path] = []
        waiter = threading.Thread(
            target=lambda: result.append(cache.get_artifact(tmp_path, "b" * 64, "py", "py", _generate))
        )
        waiter.start()
        time.sleep(cache.ANNOUNCE_AFTER_SECONDS + 0.5)
        assert waiter.is_alive() and not result  # the owner runs: wait
    finally:
        owner.kill()
        owner.wait()
    waiter.join(10)
    assert result and result[0].read_text() == "# generated\n"
    lines = [line for line in capfd.readouterr().err.splitlines() if "waiting" in line]
    assert len(lines) == 1 and f"waiting for process {owner.pid} on " in lines[0] and "b" * 64 in lines[0]


def test_a_deleted_ready_marker_rebuilds_without_waiting(tmp_path: Path) -> None:
    path = cache.get_artifact(tmp_path, "c" * 64, "py", "py", _generate)
    (tmp_path / ("c" * 64 + ".ready")).unlink()
    start = time.monotonic()
    assert cache.get_artifact(tmp_path, "c" * 64, "py", "py", _generate) == path
    assert time.monotonic() - start < 2 and (tmp_path / ("c" * 64 + ".ready")).exists()


def test_an_interrupted_build_leaves_no_lock_and_no_failure(tmp_path: Path) -> None:
    def interrupted() -> str:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        cache.get_artifact(tmp_path, "d" * 64, "py", "py", interrupted)
    assert list(tmp_path.iterdir()) == []


def _cold_solve(cache_folder: Path) -> subprocess.Popen[str]:
    env = dict(os.environ, SOBOLEV_RF_CACHE=str(cache_folder))
    code = "from sobolev_rf.numeric.cli.main import main; raise SystemExit(main(['solve', '--k', '37', '--json']))"
    return subprocess.Popen([sys.executable, "-c", code], env=env, stderr=subprocess.PIPE, text=True)


def _wait_for_lock(folder: Path, pid: int, timeout: float = 60) -> Path:
    """The lock that process ``pid`` holds while deriving the system (seconds long)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        for lock in folder.glob("*.lock"):
            try:
                owner = json.loads(lock.read_text())
                if owner["pid"] == pid and "derived system" in owner["what"]:
                    return lock
            except (OSError, ValueError, KeyError):
                pass
        time.sleep(0.005)
    raise AssertionError(f"process {pid} took no lock in {timeout} s")


def test_killed_cold_solve_does_not_make_the_next_one_wait(private_cache: Path) -> None:
    """A cold ``solve --k 37`` killed while building (SIGKILL: its lock stays; SIGTERM: it removes it), then
    a run that completes without waiting. The second run is frozen (SIGSTOP) the moment its lock is seen, so
    the SIGTERM reaches it while it builds; should it have finished before the freeze (the derivation takes
    well under a second), the scene is played again in a fresh folder."""
    for attempt in range(3):
        folder = private_cache / f"attempt{attempt}"
        first = _cold_solve(folder)
        lock = _wait_for_lock(folder, first.pid)
        first.send_signal(signal.SIGKILL)
        first.communicate(timeout=30)
        assert lock.exists()  # the owner is dead, its lock left behind
        second = _cold_solve(folder)
        lock = _wait_for_lock(folder, second.pid, timeout=20)  # the dead owner's lock broken at once
        second.send_signal(signal.SIGSTOP)
        if second.poll() is None:
            break
        second.communicate(timeout=30)
    else:
        raise AssertionError("the second solve finished before it could be stopped, three times")
    second.send_signal(signal.SIGTERM)
    second.send_signal(signal.SIGCONT)
    _, err = second.communicate(timeout=30)
    assert second.returncode in (128 + signal.SIGTERM, -signal.SIGTERM) and "Traceback" not in err, err
    assert "waiting" not in err
    assert not list(folder.glob("*.lock"))  # cleaned up on SIGTERM
    third = _cold_solve(folder)
    _, err = third.communicate(timeout=120)
    assert third.returncode == 0 and "waiting" not in err, err


# --------------------------------------------------------------------------------------------------
# damaged entries whose marker matches
# --------------------------------------------------------------------------------------------------


def _damage(path: Path, content: bytes) -> None:
    """Replace an entry's content and write its matching marker (so only loading can tell); a new file,
    since this process may have mapped the old one."""
    tmp = path.with_name(path.name + ".new")
    tmp.write_bytes(content)
    os.replace(tmp, path)
    path.with_suffix(".ready").write_text(cache.file_hash(path))


def _records(folder: Path, key: str) -> list[Path]:
    out = []
    for path in folder.glob("*.json"):
        try:
            if key in json.loads(path.read_text()):
                out.append(path)
        except ValueError:
            pass
    return out


@pytest.mark.parametrize("damage", [b"{", b"{}", b'{"values": {"kappa0": "x"}}', b"\x00\xff"])
def test_damaged_records_are_rebuilt(
    damage: bytes, private_cache: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    """Derived systems and Hermite coefficients: JSONDecodeError, KeyError 'fingerprint', a value that is
    not a number, bytes that are not text."""
    from sobolev_rf.numeric.theory import coefficients

    coefficients.coefficients.cache_clear()  # (kept per process) so that this cache holds them
    first = solve_grid(1, 1, POINT, backend="numpy")
    damaged = _records(private_cache, "fingerprint") + _records(private_cache, "values")
    assert len(damaged) >= 3
    for path in damaged:
        _damage(path, damage)
    monkeypatch.setattr(jit, "_RECORDS", {})
    coefficients.coefficients.cache_clear()
    capfd.readouterr()
    again = solve_grid(1, 1, POINT, backend="numpy")
    np.testing.assert_array_equal(again.outputs["eps_L2"], first.outputs["eps_L2"])
    assert all(p.read_bytes() != damage for p in damaged)
    warnings = [line for line in capfd.readouterr().err.splitlines() if "does not load" in line]
    assert warnings and all(line.endswith("building it again") for line in warnings)


def test_damaged_spike_scaling_is_computed_again(private_cache: Path, capfd: pytest.CaptureFixture[str]) -> None:
    from sobolev_rf.derive.params import ModelParams
    from sobolev_rf.numeric.theory import onestep

    onestep._spike_scaling.cache_clear()
    first = onestep.spike_scaling(ModelParams(step="l2"))
    (path,) = [p for p in _records(private_cache, "values") if '"step"' in json.loads(p.read_text())["text"]]
    _damage(path, b'{"values": [1, 2]}')
    onestep._spike_scaling.cache_clear()
    capfd.readouterr()
    assert onestep.spike_scaling(ModelParams(step="l2")) == first
    assert "the spike scaling in the cache does not load" in capfd.readouterr().err


_SOLVE = (
    "import sys, json, numpy as np; from sobolev_rf.numeric.theory.solve import solve_grid; "
    "g = solve_grid(1, 1, dict(activation='relu', teacher='tanh', p_over_d=np.array([0.5, 2.5]), n_over_d=1.0, "
    "lam=1e-2), backend='c'); print(json.dumps([g.backend, g.outputs['eps_L2'].tolist()]))"
)


@pytest.mark.parametrize("backend", ["numpy", pytest.param("c", marks=needs_cc)])
def test_damaged_kernels_are_rebuilt(
    backend: str, private_cache: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    """A library with an invalid ELF header (checked in a new process: this one keeps the libraries it
    loaded), a NumPy module that does not run."""
    first = solve_grid(1, 1, POINT, backend=backend)
    kernels = [p for p in private_cache.glob("*.so" if backend == "c" else "*.py") if "sr_probe" not in _source(p)]
    assert kernels
    damage = b"\x7fELF garbage" if backend == "c" else b"raise RuntimeError('damaged')\n"
    for path in kernels:
        _damage(path, damage)
    if backend == "numpy":
        monkeypatch.setattr(jit, "_LOADED", {})
        capfd.readouterr()
        again = solve_grid(1, 1, POINT, backend=backend)
        result, err = [again.backend, again.outputs["eps_L2"].tolist()], capfd.readouterr().err
    else:
        env = dict(os.environ, SOBOLEV_RF_CACHE=str(private_cache))
        proc = subprocess.run([sys.executable, "-c", _SOLVE], capture_output=True, text=True, env=env)
        assert proc.returncode == 0, proc.stderr
        result, err = json.loads(proc.stdout), proc.stderr
    assert result == [backend, first.outputs["eps_L2"].tolist()]
    assert "does not load" in err and "building it again" in err
    assert all(p.read_bytes() != damage for p in kernels)


def _source(artifact: Path) -> str:
    """The source of a C library (its artifact for NumPy)."""
    return artifact.with_suffix(".c").read_text() if artifact.suffix == ".so" else artifact.read_text()


def test_an_entry_that_does_not_load_after_a_fresh_build_is_an_error(tmp_path: Path) -> None:
    def refuse(path: Path) -> None:
        raise ValueError("never loads")

    with pytest.raises(cache.CodegenError, match="was built but does not load: never loads"):
        cache.load_artifact(tmp_path, "e" * 64, "py", "py", _generate, refuse)


# --------------------------------------------------------------------------------------------------
# the cache folder
# --------------------------------------------------------------------------------------------------


@pytest.fixture
def private_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A system temporary folder of the test's own, and no folder chosen yet."""
    folder = tmp_path / "tmp"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    monkeypatch.setattr(cache, "_FOLDERS", {})
    return folder


def _private(folder: Path) -> bool:
    st = folder.lstat()
    return folder.is_dir() and not folder.is_symlink() and st.st_uid == os.getuid() and not st.st_mode & 0o077


def test_fallback_folder_is_private(tmp_path: Path, private_tmp: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    monkeypatch.setenv("SOBOLEV_RF_CACHE", str(blocker / "cache"))  # cannot be written
    shared = private_tmp / f"sobolev-rf-cache-{os.getuid()}"
    assert cache.cache_dir() == shared and _private(shared)


@pytest.mark.parametrize("planted", ["writable by others", "a link", "another user's"])
def test_a_planted_fallback_folder_is_not_used(
    planted: str, tmp_path: Path, private_tmp: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    monkeypatch.setenv("SOBOLEV_RF_CACHE", str(blocker / "cache"))
    shared = private_tmp / f"sobolev-rf-cache-{os.getuid()}"
    if planted == "writable by others":
        shared.mkdir()
        shared.chmod(0o777)
    elif planted == "a link":
        (tmp_path / "theirs").mkdir(mode=0o700)
        shared.symlink_to(tmp_path / "theirs")
    else:
        shared.mkdir(mode=0o700)
        fake_uid = os.getuid() + 1
        monkeypatch.setattr(cache.os, "getuid", lambda: fake_uid)
        shared = private_tmp / f"sobolev-rf-cache-{fake_uid}"
        shared.mkdir(mode=0o700)  # created by the real user: another user's to the fake one
    chosen = cache.cache_dir()
    monkeypatch.undo()
    assert chosen != shared and chosen.parent == private_tmp and _private(chosen)
    assert "is not used" in capfd.readouterr().err


def test_configured_folder_writable_by_others_is_not_used(
    tmp_path: Path, private_tmp: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    configured = tmp_path / "shared-cache"
    configured.mkdir()
    configured.chmod(0o777)
    monkeypatch.setenv("SOBOLEV_RF_CACHE", str(configured))
    assert cache.cache_dir() == private_tmp / f"sobolev-rf-cache-{os.getuid()}"
    err = capfd.readouterr().err
    assert err.count("\n") == 1 and f"the cache folder {configured} is not used" in err and "chmod go-w" in err
    configured.chmod(0o755)
    monkeypatch.setattr(cache, "_FOLDERS", {})
    assert cache.cache_dir() == configured


# --------------------------------------------------------------------------------------------------
# a compiler that does not work
# --------------------------------------------------------------------------------------------------


def test_a_compiler_that_does_not_work_means_numpy_with_one_warning(
    monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    from sobolev_rf.numeric.cli.main import main

    monkeypatch.setenv("CC", "/bin/false")
    monkeypatch.setattr(jit, "_COMPILER_PROBLEMS", {})
    monkeypatch.setattr(jit, "_WARNED", set())
    assert main(["solve", "--k", "5", "--json"]) == 0
    out, err = capfd.readouterr()
    assert json.loads(out)["eps_L2"] > 0
    assert err.splitlines() == [
        "sobolev-rf: warning: the C compiler /bin/false failed (exit status 1); using the NumPy backend"
    ]
    assert solve_grid(1, 1, POINT, backend="c").backend == "numpy"  # asked for by name: the same
