"""Simulation campaigns: model points × d values × seeds, run by the exact simulator on a Dask cluster.

A :class:`Campaign` is a list of model points (usually the outer product of a :func:`grid`), a list of input
dimensions d and a number of seeds S. One *task* is one (point, d, seed): one call of the exact simulator
(:func:`sobolev_rf.numeric.simulation.exact.simulate` with ``seeds=[seed]``), so its random stream is the one
``simulate`` draws for that seed, which depends on nothing but (point, d, seed), and the simulator runs BLAS on
one thread wherever it runs: a campaign task gives, bit for bit, what ``sobolev-rf simulate`` gives for that
seed on the same machine. Next to the simulations each point gets its d → ∞ theory value
(:func:`sobolev_rf.numeric.theory.solve.solve`), computed as a task too.

:func:`run_campaign` executes the tasks that a store (:mod:`.store`) does not hold yet, with
dask.distributed: an embedded ``LocalCluster`` (worker processes, one thread and one BLAS thread each) or an
existing cluster reached through its scheduler address. Dask does the scheduling, the transport and the
rescheduling of the tasks of a worker that dies; the client writes each result into the store as it arrives,
and workers never touch the store. A task that raises (a UserError of the simulator such as a point that
needs too much memory, or any other exception) is recorded as failed with its one-line message; a task whose
workers keep dying is recorded as failed with Dask's message; failed tasks run again only when asked
(``retry_failed``). Results do not depend on the number of workers or on the order in which tasks run.
Resuming compares the grid with the store: task rows missing from it (deleted) are added back and run. At
the end the store is read back from disk and checked, so a store damaged during the run is reported.

Results leave the store through :mod:`.results` (CSV export, summary, report).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
import math
import os
import re
import socket
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ...derive.errors import UserError
from ...derive.params import ModelParams
from .store import ERRORS, CorruptStore, Store

#: Grid axes in the order of a grid's dimensions: lists (activation, k) and ranges (the rest).
GRID_AXES = ("activation", "k", "tau", "p_over_d", "n_over_d", "lam", "noise_f", "noise_g")
#: The axes that take ``sweep``'s range syntax (those of ``sweep``, τ included).
RANGE_AXES = ("tau", "p_over_d", "n_over_d", "lam", "noise_f", "noise_g")
#: Axes of a first-layer step (ONESTEP.md), after :data:`GRID_AXES`, each only when given: η̃, α₀, τ₁ (τ̃₁ for
#: shared directions) are ranges, k₁ a list. A grid without them has the keys it had before steps existed.
STEP_AXES = ("eta", "alpha0", "tau_step", "k_step")
#: Largest number of tasks of one campaign.
MAX_TASKS = 2_000_000
#: Most simulation tasks handed to Dask at a time (more are submitted as results come back).
WINDOW = 4096
#: Largest d (a larger one fails in every task anyway: the simulator's memory limit).
MAX_D = 10_000_000
#: Environment of the embedded cluster's worker processes: one BLAS thread each.
SINGLE_THREAD_ENV = {
    "OMP_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "VECLIB_MAXIMUM_THREADS": "1",
    "NUMEXPR_NUM_THREADS": "1",
}
_SCHEDULER = re.compile(r"^(tcp|tls)://[A-Za-z0-9_.\-\[\]:]+:\d{1,5}$")


def _sha(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _canonical(value: Any) -> Any:
    """-0.0 → 0.0 in floats and lists of floats (the same point must have one key)."""
    if isinstance(value, float):
        return value + 0.0
    if isinstance(value, (list, tuple)):
        return [_canonical(v) for v in value]
    return value


def point_key(params: ModelParams) -> str:
    """The hash of a model point (its canonical JSON: every field, floats by their shortest repr)."""
    return _sha({name: _canonical(value) for name, value in params.as_dict().items()})


def task_key(point: str, d: int, seed: int) -> str:
    """The hash of one task (point key, d, seed): its row key in the store and its Dask key."""
    return _sha({"point": point, "d": int(d), "seed": int(seed)})


@dataclass(frozen=True)
class Campaign:
    """Model points × ``ds`` × seeds 0..``seeds``−1; ``n_test`` test points per task (None: the simulator's
    default max(2000, 2p)). ``axes`` names the grid the points came from (:func:`grid`), in order: the
    points are then its outer product, last axis fastest; None for a plain list of points."""

    points: tuple[ModelParams, ...]
    ds: tuple[int, ...]
    seeds: int
    n_test: int | None = None
    axes: tuple[tuple[str, tuple[Any, ...]], ...] | None = None
    _keys: tuple[str, ...] = field(default=(), init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        points = tuple(self.points)
        if not points or not all(isinstance(p, ModelParams) for p in points):
            raise UserError("a campaign needs at least one model point (ModelParams).")
        keys = tuple(point_key(p) for p in points)
        if len(set(keys)) != len(keys):
            raise UserError("the campaign lists the same model point twice.")
        ds = tuple(self.ds)
        if not ds or not all(_is_int(d) and 2 <= d <= MAX_D for d in ds):
            raise UserError(f"d values must be integers from 2 to {MAX_D}, got {list(self.ds)!r}.")
        if len(set(ds)) != len(ds):
            raise UserError(f"d values must be distinct, got {list(ds)!r}.")
        if not _is_int(self.seeds) or self.seeds < 1:
            raise UserError(f"seeds must be an integer >= 1, got {self.seeds!r}.")
        if self.n_test is not None and (not _is_int(self.n_test) or self.n_test < 1):
            raise UserError(f"n_test must be an integer >= 1, got {self.n_test!r}.")
        kmax = max(p.k for p in points)
        if min(ds) <= kmax:
            raise UserError(f"k = {kmax} gradient directions need d > k, got d = {min(ds)}.")
        total = len(points) * len(ds) * self.seeds
        if total > MAX_TASKS:
            raise UserError(f"the campaign has {total} tasks, more than {MAX_TASKS}.")
        if self.axes is not None:
            size = math.prod(len(v) for _, v in self.axes)
            if size != len(points):
                raise UserError(f"the grid axes describe {size} points, the campaign has {len(points)}.")
        object.__setattr__(self, "points", points)
        object.__setattr__(self, "ds", tuple(int(d) for d in ds))
        object.__setattr__(self, "seeds", int(self.seeds))
        object.__setattr__(self, "_keys", keys)

    @property
    def point_keys(self) -> tuple[str, ...]:
        return self._keys

    @property
    def size(self) -> int:
        """Number of tasks."""
        return len(self.points) * len(self.ds) * self.seeds

    def tasks(self) -> Iterable[tuple[str, str, int, int]]:
        """(task_key, point_key, d, seed) of every task, in campaign order."""
        for key in self._keys:
            for d in self.ds:
                for seed in range(self.seeds):
                    yield task_key(key, d, seed), key, d, seed

    def spec(self) -> dict[str, Any]:
        """The campaign as JSON-ready data (what the store keeps; :meth:`from_spec` rebuilds it)."""
        return {
            "points": [p.as_dict() for p in self.points],
            "ds": list(self.ds),
            "seeds": self.seeds,
            "n_test": self.n_test,
            "axes": None if self.axes is None else [[name, list(values)] for name, values in self.axes],
        }

    def fingerprint(self) -> str:
        """The campaign's identity: its tasks (point keys, ds, seeds) and n_test."""
        return _sha({"points": list(self._keys), "ds": list(self.ds), "seeds": self.seeds, "n_test": self.n_test})

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any]) -> Campaign:
        """The campaign that :meth:`spec` described."""
        try:
            points = tuple(ModelParams(**{**p, "alignment": tuple(p["alignment"])}) for p in spec["points"])
            axes = spec.get("axes")
            return cls(
                points,
                tuple(spec["ds"]),
                spec["seeds"],
                spec.get("n_test"),
                None if axes is None else tuple((str(n), tuple(v)) for n, v in axes),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise UserError(f"the stored campaign cannot be read ({' '.join(str(exc).split())}).") from None


def grid(
    *,
    activation: Sequence[str] = ("relu",),
    k: Sequence[int] = (1,),
    tau: Sequence[float] = (1,),
    p_over_d: Sequence[float] = (4.0,),
    n_over_d: Sequence[float] = (1.0,),
    lam: Sequence[float] = (1e-3,),
    noise_f: Sequence[float] = (0.0,),
    noise_g: Sequence[float] = (0.0,),
    teacher: str = "tanh",
    alignment: Sequence[float] | None = None,
    step: str = "none",
    step_axes: Mapping[str, Sequence[float]] | None = None,
    step_dirs: str | None = None,
    second_layer: str | None = None,
) -> tuple[tuple[ModelParams, ...], tuple[tuple[str, tuple], ...]]:
    """The outer product of the axes (:data:`GRID_AXES`, in that order, then the given :data:`STEP_AXES`;
    the last fastest) as validated model points, and the axes themselves (repeated values dropped). Every
    activation is checked once here (``parse_activation``), so a bad one fails before any task runs.

    ``step``, ``step_dirs`` and ``second_layer`` are the same for every point; ``step_axes`` maps step axes
    to their values (``tau_step``: τ₁, or τ̃₁ for shared directions)."""
    from ...derive.activations import parse_activation

    given = dict(
        activation=activation,
        k=k,
        tau=tau,
        p_over_d=p_over_d,
        n_over_d=n_over_d,
        lam=lam,
        noise_f=noise_f,
        noise_g=noise_g,
    )
    extra = dict(step_axes or {})
    unknown = sorted(set(extra) - set(STEP_AXES))
    if unknown:
        raise UserError(f"unknown step axes {', '.join(unknown)}; the step axes are {', '.join(STEP_AXES)}.")
    given.update(extra)
    names = GRID_AXES + tuple(name for name in STEP_AXES if name in extra)
    axes = []
    for name in names:
        values = list(given[name])
        if not values:
            raise UserError(f"--{name.replace('_', '-')} needs at least one value.")
        if name == "activation":
            values = [str(v).strip() for v in values]
        elif name in ("k", "k_step"):
            values = [_integer_value(name, v) for v in values]
        else:
            values = [float(v) for v in values]  # type: ignore[arg-type]
        axes.append((name, tuple(dict.fromkeys(values))))
    for text in {*(a for a in axes[0][1]), teacher}:
        parse_activation(text)
    size = math.prod(len(v) for _, v in axes)
    if size > MAX_TASKS:
        raise UserError(f"the grid has {size} points, more than {MAX_TASKS}.")
    al = None if alignment is None else tuple(alignment)
    fixed: dict[str, Any] = {"teacher": teacher, "alignment": al, "step": step}
    if step_dirs is not None:
        fixed["step_dirs"] = step_dirs
    if second_layer is not None:
        fixed["second_layer"] = second_layer
    points = tuple(
        ModelParams(**fixed, **dict(zip(names, combo)))  # type: ignore[arg-type]
        for combo in itertools.product(*(v for _, v in axes))
    )
    return points, tuple(axes)


#: The options of a campaign besides the grid axes (:func:`campaign_from_options`).
CAMPAIGN_OPTIONS = ("teacher", "alignment", "d", "seeds", "n_test")


def campaign_from_options(options: Mapping[str, Any]) -> Campaign | None:
    """The campaign of a command line's option texts, or None when not one of them is given (a store's own
    campaign). Keys: :data:`GRID_AXES`, :data:`CAMPAIGN_OPTIONS`, ``step`` and its options (None: not given).
    The axes of :data:`RANGE_AXES` and the step's η̃, α₀, τ₁ take sweep's range syntax and comma-separated lists
    of it, activation and k (and k₁) comma-separated lists (commas inside parentheses belong to the expression);
    a shared step writes each τ̃₁ item with its 1/d scaling. Omitted axes take :func:`grid`'s defaults (MODEL.md's
    point), d = 200 and one seed."""
    from ...derive.params import STEP_OPTIONS, check_step_options, parse_alignment
    from ...derive.values import integer, integer_list, range_list, split_list

    if all(options.get(name) is None for name in (*GRID_AXES, *CAMPAIGN_OPTIONS, *STEP_OPTIONS)):
        if options["step"] == "none":
            return None
    check_step_options(options)
    given: dict[str, Any] = {}
    if options["activation"] is not None:
        given["activation"] = split_list(options["activation"])
        if not all(given["activation"]):
            raise UserError(f"--activation must be comma-separated expressions, got {options['activation']!r}.")
    if options["k"] is not None:
        given["k"] = integer_list("--k", options["k"], 0)
    given.update({name: range_list(name, options[name]) for name in RANGE_AXES if options[name] is not None})
    points, axes = grid(
        **given,
        teacher="tanh" if options["teacher"] is None else options["teacher"],
        alignment=None if options["alignment"] is None else parse_alignment(options["alignment"]),
        step=options["step"],
        step_axes=_step_axes(options),
        step_dirs=options["step_dirs"],
        second_layer=options["second_layer"],
    )
    ds = integer_list("--d", "200" if options["d"] is None else options["d"], 2)
    seeds = integer("--seeds", "1" if options["seeds"] is None else options["seeds"], 1)
    n_test = None if options["n_test"] is None else integer("--n-test", options["n_test"], 1)
    return Campaign(points, tuple(ds), seeds, n_test, axes)


def _step_axes(options: Mapping[str, Any]) -> dict[str, list[float]]:
    """The step axes given as text (η̃, α₀, τ₁ or τ̃₁ as ranges, k₁ as a list)."""
    from ...derive.params import ParameterError
    from ...derive.values import integer_list, range_list, split_list

    axes: dict[str, list[float]] = {}
    for name in ("eta", "alpha0"):
        if options[name] is not None:
            axes[name] = range_list(name, options[name])
    if options["tau_step"] is not None:
        shared = options["step_dirs"] == "shared"
        values: list[float] = []
        for item in split_list(options["tau_step"]):
            scaled = item.replace(" ", "").lower().endswith("/d")
            if scaled != shared:
                raise ParameterError(
                    f"--tau-step item {item!r}: "
                    + (
                        "a shared-direction step moves every row by O(√d) unless τ₁ = τ̃₁/d; write each item "
                        f"with its scaling, e.g. '{item}/d'."
                        if shared
                        else "the 1/d scaling belongs to --step-dirs shared; fresh directions take O(1) weights."
                    )
                )
            values.extend(range_list("tau_step", item.replace(" ", "")[:-2] if scaled else item))
        axes["tau_step"] = values
    if options["k_step"] is not None:
        axes["k_step"] = [float(v) for v in integer_list("--k-step", options["k_step"], 0)]
    return axes


def _integer_value(name: str, value: Any) -> int:
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise UserError(f"--{name} values must be integers, got {value!r}.") from None
    if not x.is_integer():
        raise UserError(f"--{name} values must be integers, got {value!r}.")
    return int(x)


def _is_int(value: Any) -> bool:
    import numbers

    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


# -- the tasks (run on the workers; they never touch the store) ----------------------------------------------


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    if isinstance(exc, UserError):
        return text or type(exc).__name__
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def simulate_task(point: Mapping[str, Any], d: int, seed: int, n_test: int | None) -> dict[str, Any]:
    """One (point, d, seed) by the exact simulator: ``status`` done with the five ``errors``, or failed with
    the exception's one-line ``message``; ``seconds`` and ``worker`` (host:pid) for the record."""
    from ..simulation.exact import simulate

    start = time.perf_counter()
    try:
        params = ModelParams(**{**point, "alignment": tuple(point["alignment"])})
        result = simulate(params, d=d, seeds=[seed], n_test=n_test)
        out: dict[str, Any] = {
            "status": "done",
            "message": None,
            "errors": {e: float(result.per_seed[e][0]) for e in ERRORS},
        }
    except Exception as exc:  # recorded, not raised: a failed task is a result of the campaign
        out = {"status": "failed", "message": _one_line(exc), "errors": {}}
    out["seconds"] = time.perf_counter() - start
    out["worker"] = _worker_name()
    return out


def theory_task(point: Mapping[str, Any]) -> dict[str, Any]:
    """The d → ∞ theory value of one point (``status``, ``errors``, ``message``)."""
    start = time.perf_counter()
    try:
        from ..theory.solve import solve

        result = solve(ModelParams(**{**point, "alignment": tuple(point["alignment"])}))
        errors = {}
        for e in ERRORS:
            value = getattr(result, e, None)
            errors[e] = math.nan if value is None else float(value)
        out: dict[str, Any] = {"status": "done", "message": None, "errors": errors}
    except Exception as exc:
        out = {"status": "failed", "message": _one_line(exc), "errors": {}}
    out["seconds"] = time.perf_counter() - start
    return out


def warm_worker(expressions: Sequence[str], theory: bool = False) -> str:
    """Import the simulator (and the theory, with ``theory``) and build σ, φ of every expression once per
    worker, so that the first tasks do not pay for it; returns the package version."""
    from ..simulation.exact import simulate  # noqa: F401
    from ..simulation.functions import numpy_pair

    if theory:
        try:
            from .. import theory as _theory  # noqa: F401
        except Exception:  # the theory tasks will report it
            pass

    for text in expressions:
        try:
            numpy_pair(text)
        except Exception:  # the task will report it
            pass
    try:
        from importlib.metadata import version

        return version("sobolev-rf")
    except Exception:
        return "unknown"


# -- running ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CampaignProgress:
    """What a progress callback receives after each result: tasks ``done`` and ``failed`` (in the store,
    this run included), ``running`` (on the workers now, refreshed every half second) of ``total``."""

    done: int
    failed: int
    running: int
    total: int


@dataclass(frozen=True)
class RunStats:
    """What :func:`run_campaign` did. ``startup_s``: starting or reaching the cluster and preparing the
    workers; ``run_s``: from the first submission to the last result; ``task_s``: the simulators' own time
    (sum over this run's tasks, as measured on the workers); ``theory_s``: the same for the theory tasks;
    ``restored``: task rows that were missing from the store (deleted) and were added back as pending."""

    total: int
    done: int
    failed: int
    ran: int
    failed_now: int
    workers: int
    startup_s: float
    run_s: float
    task_s: float
    first_failure: str | None
    scheduler: str | None
    theory_s: float = 0.0
    restored: int = 0

    def line(self, store: str) -> str:
        """The one line that ends a run: tasks done of all, what ran now, rows restored, failures and their remedy."""
        where = f"scheduler {self.scheduler}" if self.scheduler else f"{self.workers} local worker(s)"
        line = (
            f"sobolev-rf campaign: {self.done} of {self.total} tasks done ({self.ran} run now"
            + (f" on {where}, {self.run_s:.1f} s" if self.ran else "")
            + ")"
        )
        if self.restored:
            line += f"; {self.restored} task row(s) missing from the store were added back"
        if self.failed:
            line += (
                f"; {self.failed} failed (e.g. {self.first_failure}): they stay failed in the store, run again with "
                "--retry-failed to retry them"
            )
        return line + f"; store {store}"


def open_store(
    campaign: Campaign | None, store: str | os.PathLike[str], *, lock: bool = True, readonly: bool = False
) -> tuple[Campaign, Store]:
    """Open (or create) the store of ``campaign``; with ``campaign=None`` the store must exist and its own
    campaign is used. UserError (nothing written) for a store of another campaign or a corrupt one.
    ``readonly`` opens an existing store without writing anything (also in a folder that cannot be written)."""
    if campaign is None:
        st = Store.open(store, lock=lock, readonly=readonly)
        try:
            return Campaign.from_spec(st.spec), st
        except BaseException:
            st.close()
            raise
    st = Store.open(
        store,
        campaign.spec(),
        campaign.fingerprint(),
        points=[(k, p.as_dict()) for k, p in zip(campaign.point_keys, campaign.points)],
        tasks=campaign.tasks(),
        lock=lock,
        readonly=readonly,
    )
    return campaign, st


def check_scheduler_address(address: str) -> str:
    """``tcp://HOST:PORT`` (or ``tls://``), else UserError."""
    text = str(address).strip()
    if not _SCHEDULER.match(text):
        raise UserError(f"--scheduler must be an address tcp://HOST:PORT, got {address!r}.")
    return text


def run_campaign(
    campaign: Campaign | None,
    store: str | os.PathLike[str],
    *,
    scheduler: str | None = None,
    workers: int | None = None,
    retry_failed: bool = False,
    progress: Callable[[CampaignProgress], None] | None = None,
    connect_timeout: float = 10.0,
    theory: bool = True,
) -> RunStats:
    """Run every task of ``campaign`` that ``store`` does not hold yet and store each result as it arrives.

    ``campaign=None`` resumes the campaign stored in ``store``. ``scheduler`` (``tcp://HOST:PORT``) attaches
    to a running Dask cluster; otherwise an embedded ``LocalCluster`` on 127.0.0.1 runs ``workers`` processes
    (default: the number of cores), one thread and one BLAS thread each. Failed tasks are run again only
    with ``retry_failed``. ``progress`` is called after each result. ``theory=False`` leaves the theory
    values that are missing for a later run. Returns :class:`RunStats`.
    """
    if scheduler is not None:
        scheduler = check_scheduler_address(scheduler)
        if workers is not None:
            raise UserError("--workers applies to the embedded local cluster; an attached cluster has its own workers.")
    elif workers is not None and (not _is_int(workers) or workers < 1):
        raise UserError(f"workers must be an integer >= 1, got {workers!r}.")
    if not Path(store).exists():
        if campaign is None:
            raise UserError(f"{store} does not exist; give the campaign to create it.")
        # a new store is created only once the cluster answers: a failed start leaves no file behind
        t0 = time.perf_counter()
        client, cluster = _connect(scheduler, workers, connect_timeout)
        try:
            campaign, st = open_store(campaign, store)
        except BaseException:
            _close(client, cluster)
            raise
        return _run(
            campaign, st, scheduler, workers, retry_failed, progress, connect_timeout, (client, cluster, t0), theory
        )
    campaign, st = open_store(campaign, store)
    return _run(campaign, st, scheduler, workers, retry_failed, progress, connect_timeout, None, theory)


def _run(
    campaign: Campaign,
    st: Store,
    scheduler: str | None,
    workers: int | None,
    retry_failed: bool,
    progress: Callable[[CampaignProgress], None] | None,
    connect_timeout: float,
    connected: tuple[Any, Any, float] | None,
    with_theory: bool = True,
) -> RunStats:
    """Run the pending tasks of an open store (closed on return), then check the store as written on disk;
    ``connected``: (client, cluster, start) of a cluster already started."""
    client = cluster = None
    try:
        restored = 0
        if not st.holds_grid(campaign.point_keys, campaign.ds, campaign.seeds):
            restored = st.restore_rows(
                list(zip(campaign.point_keys, (p.as_dict() for p in campaign.points))), campaign.tasks()
            )
        pending = st.pending_tasks(retry_failed)
        theory = st.pending_theory() if with_theory else []
        by_key = dict(zip(campaign.point_keys, campaign.points))
        counts = st.counts()
        total = campaign.size
        if progress is not None:
            progress(CampaignProgress(counts["done"], counts["failed"], 0, total))
        if connected is None and not pending and not theory:
            first = st.first_failure()
            st.close()
            return _checked(
                RunStats(
                    total, counts["done"], counts["failed"], 0, 0, 0, 0.0, 0.0, 0.0, first, scheduler, 0.0, restored
                ),
                st.path,
            )
        if connected is not None:
            client, cluster, t0 = connected
        else:
            t0 = time.perf_counter()
            client, cluster = _connect(scheduler, workers, connect_timeout)
        expressions = sorted({p.activation for p in campaign.points} | {p.teacher for p in campaign.points})
        try:
            client.run(warm_worker, expressions, bool(theory))
        except (ImportError, AttributeError) as exc:
            raise UserError(
                f"the Dask workers cannot import the simulator ({_one_line(exc)}); install "
                "sobolev-rf (this version) on every worker."
            ) from None
        nworkers = (
            len(client.scheduler_info(n_workers=-1)["workers"])
            if _takes_n_workers(client)
            else len(client.scheduler_info()["workers"])
        )
        startup = time.perf_counter() - t0
        t1 = time.perf_counter()
        from distributed import as_completed

        futures: dict[Any, tuple[str, str]] = {}
        queue = as_completed([], loop=client.loop)
        if theory:
            fs = client.map(
                theory_task,
                [by_key[k].as_dict() for k in theory],
                key=[f"theory-{k}" for k in theory],
                priority=10,
                pure=False,
            )
            futures.update({f: ("theory", k) for f, k in zip(fs, theory)})
            queue.update(fs)
        todo = iter(pending)

        def submit(count: int) -> None:
            """Hand the next ``count`` tasks to Dask (at most :data:`WINDOW` are in flight)."""
            chunk = list(itertools.islice(todo, count))
            if chunk:
                fs = client.map(
                    simulate_task,
                    [by_key[t[1]].as_dict() for t in chunk],
                    [t[2] for t in chunk],
                    [t[3] for t in chunk],
                    [campaign.n_test] * len(chunk),
                    key=[f"sim-{t[0]}" for t in chunk],
                    pure=False,
                )
                futures.update({f: ("task", t[0]) for f, t in zip(fs, chunk)})
                queue.update(fs)

        submit(WINDOW)
        done = counts["done"]
        # with retry_failed the failed tasks are pending again: count only those that fail anew
        failed = counts["failed"] - (len(pending) - counts["pending"] if retry_failed else 0)
        ran = failed_now = 0
        task_s = theory_s = 0.0
        first_failure = None
        running, refreshed = 0, 0.0
        lost, lost_reason = 0, ""
        from distributed import KilledWorker

        for future in queue:
            kind, key = futures.pop(future)
            try:
                result = future.result()
            except KilledWorker as exc:  # the task took its workers down again and again: a failure of the task
                result = {"status": "failed", "message": f"Dask: {_one_line(exc)[:300]}", "errors": {}}
            except BaseException as exc:  # cancelled, connection lost: not the task's fault, it stays pending
                if isinstance(exc, (KeyboardInterrupt, SystemExit)):
                    raise
                lost += 1
                lost_reason = lost_reason or _one_line(exc)[:300]
                future.release()
                continue
            future.release()
            if kind == "theory":
                st.record_theory(key, result)
                theory_s += float(result.get("seconds") or 0.0)
                continue
            st.record_task(key, result)
            if len(futures) < WINDOW // 2:
                submit(WINDOW // 2)
            ran += 1
            task_s += float(result.get("seconds") or 0.0)
            if result["status"] == "done":
                done += 1
            else:
                failed += 1
                failed_now += 1
                first_failure = first_failure or result.get("message")
            if progress is not None:
                now = time.perf_counter()
                if now - refreshed > 0.5:
                    running = _running(client)
                    refreshed = now
                progress(CampaignProgress(done, failed, min(running, total - done - failed), total))
        run = time.perf_counter() - t1
        if lost:
            raise UserError(
                f"{lost} task(s) got no result from the Dask cluster ({lost_reason}); every result "
                "that arrived is stored: run the same command again to finish."
            )
        first_failure = first_failure or st.first_failure()
    finally:
        try:
            if client is not None:
                _close(client, cluster)
        finally:
            st.close()
    stats = RunStats(
        total,
        done,
        failed,
        ran,
        failed_now,
        nworkers,
        startup,
        run,
        task_s,
        first_failure,
        scheduler,
        theory_s,
        restored,
    )
    return _checked(stats, st.path)


def _checked(stats: RunStats, path: Path) -> RunStats:
    """``stats`` once the store, read afresh from disk, passes SQLite's check and holds as many done and failed
    tasks as the run counted (a store damaged while the campaign ran, e.g. truncated, is reported, not
    success); UserError otherwise."""
    try:
        with Store.open(path, lock=False, readonly=True) as st:
            counts = st.counts()
    except CorruptStore as exc:
        raise UserError(
            f"the store {path} was damaged while the campaign ran (SQLite: {exc.detail}); its results cannot be "
            "trusted: move it aside and run the campaign again into a new --store."
        ) from None
    if (counts["done"], counts["failed"]) != (stats.done, stats.failed):
        raise UserError(
            f"the store {path} lost results while the campaign ran ({stats.done} done and {stats.failed} failed "
            f"recorded, {counts['done']} and {counts['failed']} read back); its results cannot be trusted: move "
            "it aside and run the campaign again into a new --store."
        )
    return stats


def _takes_n_workers(client: Any) -> bool:
    import inspect

    try:
        return "n_workers" in inspect.signature(client.scheduler_info).parameters
    except (TypeError, ValueError):
        return False


def _running(client: Any) -> int:
    """Tasks executing now: per worker, those it is processing, at most its number of threads."""
    try:
        threads = client.nthreads()
        return sum(min(len(keys), threads.get(w, 1)) for w, keys in client.processing().items())
    except Exception:
        return 0


def _connect(scheduler: str | None, workers: int | None, timeout: float) -> tuple[Any, Any]:
    """(client, cluster): attach to ``scheduler`` (cluster None) or start a LocalCluster on 127.0.0.1."""
    from distributed import Client, LocalCluster

    if scheduler is not None:
        try:
            client = Client(scheduler, timeout=f"{timeout}s", set_as_default=False)
        except (OSError, TimeoutError) as exc:
            raise UserError(f"cannot reach the Dask scheduler at {scheduler} ({_one_line(exc)}).") from None
        return client, None
    import dask

    n = workers or os.cpu_count() or 1
    # loopback only, ephemeral ports, no dashboard (the scheduler's HTTP server would default to :8787).
    # The worker environment is exactly SINGLE_THREAD_ENV: Dask's default also sets MALLOC_TRIM_THRESHOLD_,
    # which makes glibc map and zero every large NumPy array afresh (the simulator runs ~20 % slower).
    with dask.config.set({"distributed.nanny.pre-spawn-environ": dict(SINGLE_THREAD_ENV)}):
        cluster = LocalCluster(
            n_workers=n,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            scheduler_port=0,
            dashboard_address=None,
            silence_logs=logging.ERROR,
            scheduler_kwargs={"dashboard": False, "dashboard_address": "127.0.0.1:0"},
            env=dict(SINGLE_THREAD_ENV),
        )
    try:
        client = Client(cluster, set_as_default=False)
    except BaseException:
        cluster.close()
        raise
    return client, cluster


def _close(client: Any, cluster: Any) -> None:
    try:
        client.close()
    finally:
        if cluster is not None:
            cluster.close()
