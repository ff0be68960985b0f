"""Where a sweep's runs execute: in this process, in a local process pool, on Dask or through submitit.

Every backend is an existing engine; this module only adapts them to one interface,
``engine.map(fn, items)``, which yields ``(item, outcome)`` in completion order, where ``outcome`` is
``fn(item)``'s return value or a :class:`Failure` naming why no result came back (an exception, or a
worker that died). Leaving the loop early (Ctrl-C, an error in the driver) cancels what has not run
and stops what is running; runs already written stay. Engines:

* ``sequential`` — one run after the other in this process (``--jobs 1``).
* ``local`` — ``concurrent.futures.ProcessPoolExecutor`` (``forkserver``), one single-worker executor per
  slot, so a worker that dies (SIGKILL, out of memory) breaks only its own slot: its run is reported as
  a failure with the exit code, a fresh worker takes the slot, and the sweep goes on.
* ``dask`` — ``dask.distributed``: the cluster at ``scheduler`` or a ``LocalCluster`` of ``jobs``
  single-threaded workers (a dead worker's task fails at once, ``allowed-failures = 0``).
* ``submitit`` — ``submitit.AutoExecutor``: SLURM where it is available (one job array; SLURM options
  from :class:`SlurmOptions`), its local executor otherwise.

Dask and submitit are optional extras (``pip install "adpbench[dask]"`` / ``"adpbench[slurm]"``).
"""

from __future__ import annotations

import collections
import concurrent.futures as cf
import contextlib
import logging
import multiprocessing
import multiprocessing.connection
import os
import signal
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from problems import values

BACKENDS = ("local", "dask", "submitit")
SLURM_KEYS = ("partition", "time_min", "cpus_per_task", "gpus_per_node", "array_parallelism")
#: how often the submitit driver asks whether jobs are done (SLURM answers are cached by submitit)
SUBMITIT_POLL_S = {"slurm": 5.0, "local": 0.2, "debug": 0.2}
SUBMITIT_CLUSTERS = tuple(SUBMITIT_POLL_S)
_MAX_REASON = 2000  # characters of a failure reason kept in the record


@dataclass(frozen=True)
class Failure:
    """No result came back for a run: ``reason`` says why (exception text, or how the worker died)."""

    reason: str


@dataclass(frozen=True)
class SlurmOptions:
    """SLURM resources per run (submitit ``update_parameters``); ``None`` leaves submitit's default.

    ``time_min`` is also the local executor's timeout; ``cpus_per_task`` defaults to the threads per
    run; ``array_parallelism`` (runs at once) defaults to ``--jobs`` when given, else no limit.
    """

    partition: str | None = None
    time_min: int = 60
    cpus_per_task: int | None = None
    gpus_per_node: int = 0
    array_parallelism: int | None = None

    def __post_init__(self) -> None:
        if self.partition is not None and not isinstance(self.partition, str):
            raise ValueError(f"slurm partition must be a string, got {self.partition!r}")
        for name in ("time_min", "cpus_per_task", "array_parallelism"):
            values.POSITIVE_INTEGER.check(f"slurm {name}", getattr(self, name), optional=True)
        values.NONNEGATIVE_INTEGER.check("slurm gpus_per_node", self.gpus_per_node)


@dataclass(frozen=True)
class Execution:
    """How a sweep executes. ``jobs``: runs at once (None: the backend's default — local: 1, a Dask
    local cluster: the core count, submitit: ``array_parallelism`` or no limit; on a running Dask
    cluster its worker threads decide); ``scheduler``: address of a running Dask scheduler;
    ``submitit_cluster``: force submitit's executor (None: SLURM where available, else local)."""

    backend: str = "local"
    jobs: int | None = None
    scheduler: str | None = None
    slurm: SlurmOptions = field(default_factory=SlurmOptions)
    submitit_cluster: str | None = None

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, got {self.backend!r}")
        values.POSITIVE_INTEGER.check("jobs", self.jobs, optional=True)
        if self.scheduler is not None and self.backend != "dask":
            raise ValueError(f"a scheduler address needs backend 'dask', not {self.backend!r}")
        if self.submitit_cluster not in (None, *SUBMITIT_CLUSTERS):
            raise ValueError(f"submitit cluster must be one of {', '.join(SUBMITIT_CLUSTERS)}")
        if self.slurm != SlurmOptions() and self.backend != "submitit":
            raise ValueError(f"SLURM options need backend 'submitit', not {self.backend!r}")


def usable_cores() -> int:
    """CPU cores this process may run on (the affinity mask where the OS has one)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def thread_budget() -> int:
    """Threads a sweep may use on this machine: the usable cores, capped by a positive
    ``OMP_NUM_THREADS`` (a user who set it to 1 for quiet timings keeps one thread per run)."""
    omp = os.environ.get("OMP_NUM_THREADS", "")
    return min(usable_cores(), int(omp)) if omp.isdigit() and int(omp) > 0 else usable_cores()


def concurrency(execution: Execution, n_runs: int) -> int:
    """Runs that execute at once on this machine's backends (an upper bound on a cluster)."""
    if execution.backend == "local":
        return max(1, min(execution.jobs or 1, n_runs))
    if execution.backend == "dask":
        return max(1, min(execution.jobs or usable_cores(), n_runs))
    limit = execution.slurm.array_parallelism or execution.jobs or n_runs
    return max(1, min(limit, n_runs))


def default_threads(execution: Execution, n_runs: int) -> int:
    """Torch threads per run when ``--threads`` is not given: :func:`thread_budget` ÷ runs at once on
    this machine; on a running Dask cluster 1 (each worker thread runs one run); under submitit the CPUs
    per task (default 1)."""
    if execution.backend == "dask" and execution.scheduler is not None:
        return 1
    if execution.backend == "submitit":
        return execution.slurm.cpus_per_task or 1
    return max(1, thread_budget() // concurrency(execution, n_runs))


def describe(exc: BaseException) -> str:
    """A failure reason: the exception's type and message (and its remote traceback, if any)."""
    text = f"{type(exc).__name__}: {exc}"
    cause = exc.__cause__
    if cause is not None and "Traceback" in str(cause):  # concurrent.futures' remote traceback
        text += f"\n{str(cause).strip()}"
    return text[:_MAX_REASON]


class Sequential:
    """One run after the other in this process; an exception becomes a Failure, Ctrl-C propagates."""

    name = "sequential"

    def __init__(self, execution: Execution, n_runs: int) -> None:
        self.concurrency = 1

    def map(self, fn: Callable[[Any], Any], items: Iterable[Any]) -> Iterator[tuple[Any, Any]]:
        for item in items:
            try:
                outcome = fn(item)
            except Exception as exc:  # a run that cannot even start is recorded; the sweep goes on
                outcome = Failure(describe(exc))
            yield item, outcome


def _signal_name(code: int | None) -> str:
    if code is None:
        return "exit status unknown"
    if code < 0:
        with contextlib.suppress(ValueError):
            return f"killed by {signal.Signals(-code).name}"
    return f"exit code {code}"


def _stop_on_sigterm(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)  # the shell's code for "ended by this signal"


def _init_worker() -> None:
    """Pool-worker initializer. SIGTERM (how the driver stops a worker on Ctrl-C) unwinds the run, so
    a half-written temporary file is removed; and the worker exits as soon as the driver is gone. A
    worker whose driver was killed (kill -9) would otherwise finish its run unseen and then wait on its
    task pipe forever; under forkserver it would also keep the fork server alive, and that server it."""
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    driver = multiprocessing.parent_process()  # the process that asked for this worker, not the server
    if driver is None:
        return

    def watch() -> None:
        multiprocessing.connection.wait([driver.sentinel])  # ready once the driver has exited
        os._exit(1)

    threading.Thread(target=watch, name="adpbench-driver-watch", daemon=True).start()


class _Slot:
    """A one-worker ProcessPoolExecutor: if its worker dies, only the run it held is lost."""

    def __init__(self, context: multiprocessing.context.BaseContext) -> None:
        self.executor = cf.ProcessPoolExecutor(max_workers=1, mp_context=context, initializer=_init_worker)
        self.process: multiprocessing.Process | None = None

    def submit(self, fn: Callable[[Any], Any], item: Any) -> cf.Future:
        future = self.executor.submit(fn, item)
        if self.process is None:
            # The executor spawns its worker inside submit(); keep the Process to read its exit code
            # if it dies. Python ≤ 3.13 has no public handle on it (3.14 adds terminate_workers()).
            procs = list((getattr(self.executor, "_processes", None) or {}).values())
            self.process = procs[0] if procs else None
        return future

    def death_reason(self) -> str:
        pid = self.process.pid if self.process is not None else "?"
        if self.process is not None:
            self.process.join(timeout=5)
        code = self.process.exitcode if self.process is not None else None
        return (
            f"worker process {pid} died while running this run ({_signal_name(code)}; "
            "killed, or out of memory)"
        )

    def close(self, *, stop_run: bool) -> None:
        """Shut the worker down; with ``stop_run`` (Ctrl-C) first stop the run it holds, which is then
        dropped, never half-written."""
        if stop_run:
            terminate = getattr(self.executor, "terminate_workers", None)  # Python ≥ 3.14
            if terminate is not None:
                terminate()
            elif self.process is not None and self.process.is_alive():
                self.process.terminate()
        self.executor.shutdown(wait=True, cancel_futures=True)


def _worker_context() -> multiprocessing.context.BaseContext:
    """``forkserver`` where the OS has it: one server process imports torch and the harness once and
    forks clean workers from it (a fresh worker then starts in milliseconds, not an import's seconds);
    ``spawn`` elsewhere. Neither inherits the driver's threads or state, unlike ``fork``."""
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["bench.sweep"])  # taken into account when the server starts
    return context


class LocalPool:
    """``jobs`` worker processes on this machine, each its own single-worker executor."""

    name = "local"

    def __init__(self, execution: Execution, n_runs: int) -> None:
        self.concurrency = concurrency(execution, n_runs)
        self.context = _worker_context()

    def map(self, fn: Callable[[Any], Any], items: Iterable[Any]) -> Iterator[tuple[Any, Any]]:
        pending = collections.deque(items)
        slots: list[_Slot | None] = [None] * self.concurrency
        free = list(range(self.concurrency))
        running: dict[cf.Future, tuple[int, Any]] = {}
        try:
            while pending or running:
                while pending and free:
                    i = free.pop()
                    slots[i] = slots[i] or _Slot(self.context)
                    item = pending.popleft()
                    running[slots[i].submit(fn, item)] = (i, item)
                done, _ = cf.wait(running, return_when=cf.FIRST_COMPLETED)
                for future in done:
                    i, item = running.pop(future)
                    try:
                        outcome = future.result()
                    except cf.process.BrokenProcessPool:
                        outcome = Failure(slots[i].death_reason())
                        slots[i].executor.shutdown(wait=True)
                        slots[i] = None  # a fresh worker takes this slot for the next run
                    except Exception as exc:
                        outcome = Failure(describe(exc))
                    free.append(i)
                    yield item, outcome
        finally:  # after the last run, or when the driver stops early (Ctrl-C, an error)
            busy = {i for i, _ in running.values()}
            for i, slot in enumerate(slots):
                if slot is not None:
                    slot.close(stop_run=i in busy)


class DaskBackend:
    """Runs as Dask tasks on the cluster at ``scheduler``, or on a LocalCluster of ``jobs`` workers."""

    name = "dask"

    def __init__(self, execution: Execution, n_runs: int) -> None:
        try:
            import dask
            from dask import distributed
        except ImportError as exc:
            raise ValueError('backend dask needs the dask extra: pip install "adpbench[dask]"') from exc
        self._distributed = distributed
        self.cluster = None
        if execution.scheduler is None:
            workers = concurrency(execution, n_runs)
            # A worker that dies fails its task at once (recorded, resumable) instead of being retried.
            with dask.config.set({"distributed.scheduler.allowed-failures": 0}):
                self.cluster = distributed.LocalCluster(
                    n_workers=workers,
                    threads_per_worker=1,
                    processes=True,
                    dashboard_address=None,
                    silence_logs=logging.ERROR,
                )
            self.client = distributed.Client(self.cluster)
        else:
            self.client = distributed.Client(execution.scheduler)
        self.concurrency = max(1, min(sum(self.client.nthreads().values()), n_runs))

    def map(self, fn: Callable[[Any], Any], items: Iterable[Any]) -> Iterator[tuple[Any, Any]]:
        items = list(items)
        futures = {self.client.submit(fn, item, pure=False): item for item in items}
        try:
            for future in self._distributed.as_completed(futures):
                try:
                    outcome = future.result()
                except Exception as exc:  # KilledWorker when the worker died
                    outcome = Failure(describe(exc))
                yield futures[future], outcome
        finally:
            self.client.cancel(list(futures))
            self.client.close()
            if self.cluster is not None:
                self.cluster.close()


class SubmititBackend:
    """Runs as submitit jobs: a SLURM job array, or local subprocesses where there is no SLURM."""

    name = "submitit"

    def __init__(self, execution: Execution, n_runs: int, folder: Path, threads: int) -> None:
        try:
            import submitit
        except ImportError as exc:
            raise ValueError('backend submitit needs the slurm extra: pip install "adpbench[slurm]"') from exc
        slurm = execution.slurm
        self.executor = submitit.AutoExecutor(folder=folder, cluster=execution.submitit_cluster)
        self.concurrency = concurrency(execution, n_runs)
        params: dict[str, Any] = {
            "name": "adpbench",
            "timeout_min": slurm.time_min,
            "cpus_per_task": slurm.cpus_per_task or threads,
            "gpus_per_node": slurm.gpus_per_node,
            "slurm_array_parallelism": self.concurrency,
        }
        if slurm.partition is not None:
            params["slurm_partition"] = slurm.partition
        self.executor.update_parameters(**params)
        self.poll_s = SUBMITIT_POLL_S.get(self.executor.cluster, 1.0)

    def map(self, fn: Callable[[Any], Any], items: Iterable[Any]) -> Iterator[tuple[Any, Any]]:
        pending = collections.deque(items)
        running: dict[Any, Any] = {}
        # SLURM throttles a job array itself (%array_parallelism); the local executor would start
        # every job at once, so there the driver keeps at most `concurrency` in flight.
        cap = len(pending) if self.executor.cluster == "slurm" else self.concurrency
        try:
            while pending or running:
                batch = [pending.popleft() for _ in range(min(cap - len(running), len(pending)))]
                if batch:
                    with self.executor.batch():
                        jobs = [self.executor.submit(fn, item) for item in batch]
                    running.update(zip(jobs, batch, strict=True))
                finished = [job for job in running if job.done()]
                if not finished:
                    time.sleep(self.poll_s)
                for job in finished:
                    item = running.pop(job)
                    try:
                        outcome = job.result()
                    except Exception as exc:  # failed, killed or timed-out job
                        outcome = Failure(f"submitit job {job.job_id}: {describe(exc)}")
                    yield item, outcome
        finally:
            for job in running:
                job.cancel(check=False)


def make_engine(execution: Execution, n_runs: int, *, folder: Path, threads: int) -> Any:
    """The engine for ``execution``; ``folder`` holds submitit's job files."""
    if execution.backend == "dask":
        return DaskBackend(execution, n_runs)
    if execution.backend == "submitit":
        return SubmititBackend(execution, n_runs, folder, threads)
    if concurrency(execution, n_runs) == 1:
        return Sequential(execution, n_runs)
    return LocalPool(execution, n_runs)
