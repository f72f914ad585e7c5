"""Campaign faults on real clusters: an attached ``dask scheduler`` with two ``dask worker`` processes,
a worker killed in mid-task, and a client killed with SIGKILL and run again.

Everything binds to 127.0.0.1 on ephemeral ports. Every process started here runs in its own session and
is killed with its whole process group when the test ends, also when it fails.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from sobolev_rf.numeric import cli
from sobolev_rf.numeric.campaign.engine import Campaign, grid, run_campaign
from sobolev_rf.numeric.campaign.store import ERRORS

DASK = Path(sys.executable).with_name("dask")
SINGLE_THREAD = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
pytestmark = pytest.mark.skipif(not DASK.exists(), reason="the dask command is not installed")


class Processes:
    """Processes started in new sessions; :meth:`kill_all` kills each one's process group."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.procs: list[subprocess.Popen] = []

    def start(self, argv: list[str], name: str, cwd: Path | None = None) -> subprocess.Popen:
        log = open(self.folder / f"{name}.log", "wb")
        proc = subprocess.Popen(
            argv,
            cwd=cwd or self.folder,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **SINGLE_THREAD},
            start_new_session=True,
        )
        log.close()
        self.procs.append(proc)
        return proc

    def kill_all(self) -> None:
        for proc in reversed(self.procs):  # workers before their scheduler
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        for proc in self.procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:  # pragma: no cover
                pass


def campaign(ds: tuple[int, ...], seeds: int, p_over_d: tuple[float, ...] = (1.0, 2.0)) -> Campaign:
    points, axes = grid(p_over_d=list(p_over_d), n_over_d=[1.0], lam=[1e-2])
    return Campaign(points, ds, seeds, None, axes)


def rows_by_key(store: Path) -> dict[str, tuple]:
    with sqlite3.connect(store) as conn:
        return {
            r[0]: r[1:]
            for r in conn.execute(f"SELECT task_key, status, {', '.join(ERRORS)}, message, worker FROM tasks")
        }


def listening_hosts(procs: Processes) -> set[str]:
    """The addresses the started processes (and their children) listen on."""
    import psutil

    hosts = set()
    for proc in procs.procs:
        parent = psutil.Process(proc.pid)
        for p in [parent, *parent.children(recursive=True)]:
            hosts.update(c.laddr.ip for c in p.net_connections(kind="inet") if c.status == psutil.CONN_LISTEN)
    return hosts


@pytest.fixture(scope="module")
def scheduler(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``dask scheduler`` and two ``dask worker`` processes (one thread, one BLAS thread each) on 127.0.0.1."""
    from distributed import Client

    folder = tmp_path_factory.mktemp("dask")
    procs = Processes(folder)
    try:
        info = folder / "scheduler.json"
        procs.start(
            [
                str(DASK),
                "scheduler",
                "--host",
                "127.0.0.1",
                "--port",
                "0",
                "--no-dashboard",
                "--dashboard-address",
                "127.0.0.1:0",
                "--scheduler-file",
                str(info),
            ],
            "scheduler",
        )
        deadline = time.monotonic() + 60
        while not info.exists() or not info.read_text().strip():
            assert time.monotonic() < deadline, (folder / "scheduler.log").read_text()
            time.sleep(0.05)
        time.sleep(0.1)
        address = json.loads(info.read_text())["address"]
        assert address.startswith("tcp://127.0.0.1:")
        for i in range(2):
            procs.start(
                [
                    str(DASK),
                    "worker",
                    "--scheduler-file",
                    str(info),
                    "--host",
                    "127.0.0.1",
                    "--nthreads",
                    "1",
                    "--nworkers",
                    "1",
                    "--no-dashboard",
                    "--dashboard-address",
                    "127.0.0.1:0",
                    "--death-timeout",
                    "60",
                    "--name",
                    f"w{i}",
                ],
                f"worker{i}",
            )
        with Client(address, timeout="30s", set_as_default=False) as client:
            client.wait_for_workers(2, timeout=60)
        assert listening_hosts(procs) == {"127.0.0.1"}
        yield address
    finally:
        procs.kill_all()


def test_attach_to_dask_scheduler_and_workers(
    scheduler: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--scheduler`` runs the campaign on the attached workers, with the same bits as a local cluster."""
    monkeypatch.chdir(tmp_path)
    argv = ["campaign", "--p-over-d=1,2", "--n-over-d=1", "--lam=0.01", "--d=200", "--seeds=4", "--report=3"]
    assert cli.main([*argv, "--store=attached.sqlite", f"--scheduler={scheduler}"]) == 0
    out, err = capsys.readouterr()
    assert f"8 of 8 tasks done (8 run now on scheduler {scheduler}" in err
    assert "max |z|" in out
    attached = rows_by_key(tmp_path / "attached.sqlite")
    assert run_campaign(campaign((200,), 4), tmp_path / "local.sqlite", workers=1, theory=False).done == 8
    local = rows_by_key(tmp_path / "local.sqlite")
    assert {k: v[:-1] for k, v in attached.items()} == {k: v[:-1] for k, v in local.items()}
    assert all(v[0] == "done" for v in local.values())


def test_worker_killed_in_mid_task(scheduler: str, tmp_path: Path) -> None:
    """SIGKILL to a worker that is running a task: Dask runs the task again elsewhere, nothing fails."""
    from distributed import Client

    c = campaign((300,), 4, p_over_d=(1.0,))
    killed: dict[str, object] = {}
    with Client(scheduler, timeout="30s", set_as_default=False) as client:
        client.wait_for_workers(2, timeout=60)

        def kill_busy_worker(progress) -> None:
            if killed or progress.done < 1:
                return
            pids = client.run(os.getpid)
            for address, keys in client.processing().items():
                if keys and address in pids:
                    killed.update(pid=pids[address], keys={str(k).removeprefix("sim-") for k in keys})
                    os.kill(pids[address], signal.SIGKILL)
                    return

        stats = run_campaign(
            c, tmp_path / "killed.sqlite", scheduler=scheduler, progress=kill_busy_worker, theory=False
        )
        assert killed, "no worker was running a task when the first result came back"
        assert (stats.done, stats.failed) == (c.size, 0)
        rows = rows_by_key(tmp_path / "killed.sqlite")
        host_pid = {row[-1] for key, row in rows.items() if key in killed["keys"]}
        assert host_pid and all(not w.endswith(f":{killed['pid']}") for w in host_pid)  # ran again elsewhere
    again = run_campaign(c, tmp_path / "clean.sqlite", scheduler=scheduler, theory=False)
    assert again.done == c.size
    clean = rows_by_key(tmp_path / "clean.sqlite")
    assert {k: v[:-1] for k, v in rows.items()} == {k: v[:-1] for k, v in clean.items()}


def test_client_killed_then_run_again(tmp_path: Path) -> None:
    """SIGKILL to the client while its local cluster works: its workers go with it, the store keeps every
    result that had arrived, and the same command completes exactly the missing tasks."""
    import psutil

    argv = [
        "campaign",
        "--store=s.sqlite",
        "--p-over-d=1",
        "--n-over-d=1",
        "--lam=0.01",
        "--d=300",
        "--seeds=12",
        "--workers=1",
    ]
    procs = Processes(tmp_path)
    try:
        client = procs.start([sys.executable, "-m", "sobolev_rf.numeric.cli", *argv], "client", cwd=tmp_path)
        store = tmp_path / "s.sqlite"
        deadline = time.monotonic() + 90
        done = 0
        while done < 3:
            assert client.poll() is None, (tmp_path / "client.log").read_text()
            assert time.monotonic() < deadline, "the campaign did not start"
            time.sleep(0.05)
            if store.exists():
                try:
                    with sqlite3.connect(f"file:{store}?mode=ro", uri=True) as conn:
                        done = conn.execute("SELECT COUNT(*) FROM tasks WHERE status = 'done'").fetchone()[0]
                except sqlite3.OperationalError:  # busy for a moment
                    pass
        children = psutil.Process(client.pid).children(recursive=True)
        os.kill(client.pid, signal.SIGKILL)
        client.wait(timeout=10)
        gone, alive = psutil.wait_procs(children, timeout=20)
        assert not [p for p in alive if p.status() != psutil.STATUS_ZOMBIE], "workers outlived their client"
    finally:
        procs.kill_all()
    before = rows_by_key(store)
    done_before = {k: v for k, v in before.items() if v[0] == "done"}
    assert 3 <= len(done_before) < 12 and len(before) == 12
    assert cli.main(argv[:1] + [f"--store={store}"] + argv[2:]) == 0
    after = rows_by_key(store)
    assert len(after) == 12 and all(v[0] == "done" for v in after.values())
    assert {k: after[k] for k in done_before} == done_before  # nothing run twice, nothing rewritten
    with sqlite3.connect(store) as conn:
        assert (
            conn.execute("SELECT COUNT(DISTINCT point_key || ':' || d || ':' || seed) FROM tasks").fetchone()[0] == 12
        )
    ran_now = {k for k in after if k not in done_before}
    assert len(ran_now) == 12 - len(done_before)
    assert {after[k][-1] for k in ran_now}.isdisjoint({v[-1] for v in done_before.values()})  # a new worker ran them
