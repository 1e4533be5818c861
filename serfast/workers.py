"""Where the tasks of extract and predict run: in this process, in a pool of worker
processes, or on a Dask cluster, behind one call (:func:`run_tasks`).

Every process that runs tasks is set up once (:func:`set_up_worker`): it loads the
feature engine (Numba, SciPy, SciPy's own OpenBLAS) and installs the filter banks its
parent built; then the caller's ``load`` (a model, say) runs once and its result is
:func:`loaded`. Tasks run with every BLAS and OpenMP library limited to one thread
(threadpoolctl limits only the libraries loaded so far, hence after the engine): for good
in a pool's worker, a process serfast owns, which also keeps freed memory for reuse
(:mod:`serfast.process`); only while they run in this process or on a Dask worker, which
other jobs may share. The parent of a pool never loads the feature engine, so its
workers start sooner.

A pool is spawned and keeps at most ``2 x workers`` tasks in flight, a cluster
``4 x workers``: memory stays bounded whatever the number of tasks. A cluster ADDRESS
is a Dask scheduler (``tcp://host:8786``) or ``local:N`` for a local cluster of N
single-threaded worker processes on loopback; large read-only objects (filter banks,
models) are sent to each worker once, and Dask retries the tasks of a worker that
dies. Dask is imported only here, only when a cluster is asked for.
"""

from __future__ import annotations

import os
import uuid
from collections import deque
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from contextlib import contextmanager
from multiprocessing import get_context
from typing import Any, Callable, Iterable, Iterator

from threadpoolctl import threadpool_limits

from .features.filterbanks import FilterBanks, filter_banks, install_filter_banks
from .features.spec import FeatureSpec
from .process import own_this_process

__all__ = ["ClusterError", "connect", "loaded", "one_thread_each", "run_tasks",
           "set_up_worker", "worker_count"]

#: Tasks in flight per worker: in a pool, on a Dask cluster.
POOL_IN_FLIGHT, CLUSTER_IN_FLIGHT = 2, 4
#: Times Dask retries a task whose worker died.
RETRIES = 3


class ClusterError(Exception):
    """The cluster cannot be reached or used; one-line message."""


def worker_count(requested: int, tasks: int, most: int | None = None) -> int:
    """Processes for ``tasks`` tasks: ``requested`` (0 = every core), at most ``most``
    and the number of tasks, at least one."""
    n = requested or os.cpu_count() or 1
    if most is not None:
        n = min(n, most)
    return max(1, min(n, tasks or 1))


def one_thread_each() -> threadpool_limits:
    """Load the feature engine, then limit BLAS/OpenMP to one thread in this process
    (also a context manager that restores the limits)."""
    from .features import cpu  # noqa: F401 - its libraries must be loaded to be limited

    return threadpool_limits(1)


def set_up_worker(spec: FeatureSpec, banks: FilterBanks, own: bool = True) -> None:
    """Make this process a feature worker: the filter banks of ``spec`` installed and,
    with ``own`` (a pool's worker, a process serfast owns), one thread per BLAS and freed
    memory reused for good (:mod:`serfast.process`). A Dask worker, which other jobs may
    share, is not owned: its tasks limit threads only while they run."""
    if own:
        one_thread_each()
        own_this_process()
    install_filter_banks(spec, banks)


#: This process: the run it is set up for ("run") and what that run's load gave ("value").
_STATE: dict = {}


def loaded() -> Any:
    """What ``load`` of the run being served returned in this process (None without one)."""
    return _STATE.get("value")


def _set_up_once(run: str, spec: FeatureSpec, banks: FilterBanks,
                 load: Callable | None, *shared, own: bool = True) -> None:
    if _STATE.get("run") != run:
        set_up_worker(spec, banks, own)
        _STATE.update(run=run, value=load(*shared) if load else None)


def _cluster_task(task, run: str, fn: Callable, args: tuple, spec: FeatureSpec,
                  load: Callable | None, banks: FilterBanks, *shared):
    """One task on a Dask worker, which is set up on its first task of the run."""
    _set_up_once(run, spec, banks, load, *shared, own=False)
    with one_thread_each():  # restored after the task: the worker may be shared
        return fn(task, *args)


def run_tasks(fn: Callable, tasks: Iterable, spec: FeatureSpec, workers: int = 1,
              cluster: str = "", args: tuple = (), load: Callable | None = None,
              shared: tuple = (), loaded_here: Any = None,
              may_start: Callable[[Any], bool] | None = None) -> Iterator:
    """``fn(task, *args)`` for every task; results in completion order.

    Runs in this process when ``workers == 1``, else in a pool of ``workers`` spawned
    processes, or on the Dask ``cluster`` when one is given. Every process is set up
    once (module doc), then ``load(*shared)`` runs there, once; ``loaded_here`` stands
    for its result in this process. ``fn`` and ``load`` must be module-level functions.
    A task waits while ``may_start(task)`` is false and others are in flight.
    """
    run = uuid.uuid4().hex
    may_start = may_start or (lambda task: True)
    if cluster:
        yield from _on_cluster(fn, tasks, run, spec, cluster, args, load, shared, may_start)
    elif workers == 1:
        with one_thread_each():
            value = loaded_here if loaded_here is not None else (load(*shared) if load else None)
            _STATE.update(run=run, value=value)
            try:
                for task in tasks:
                    yield fn(task, *args)
            finally:
                _STATE.clear()
    else:
        yield from _in_pool(fn, tasks, run, spec, workers, args, load, shared, may_start)


def _in_pool(fn, tasks, run, spec, workers, args, load, shared, may_start) -> Iterator:
    with ProcessPoolExecutor(workers, mp_context=get_context("spawn"),
                             initializer=_set_up_once,
                             initargs=(run, spec, filter_banks(spec), load, *shared)) as pool:
        todo, pending = deque(tasks), set()
        while todo or pending:
            while todo and len(pending) < POOL_IN_FLIGHT * workers and \
                    (not pending or may_start(todo[0])):
                pending.add(pool.submit(fn, todo.popleft(), *args))
            finished, pending = wait(pending, return_when=FIRST_COMPLETED)
            yield from (f.result() for f in finished)


def _on_cluster(fn, tasks, run, spec, address, args, load, shared, may_start) -> Iterator:
    from distributed import as_completed

    with connect(address) as client:
        sent = [client.scatter(b, broadcast=True) for b in (filter_banks(spec), *shared)]
        limit = CLUSTER_IN_FLIGHT * max(1, len(client.scheduler_info().get("workers", {})))
        todo, futures = deque(tasks), as_completed()

        def submit() -> None:
            while todo and futures.count() < limit and \
                    (futures.count() == 0 or may_start(todo[0])):
                futures.add(client.submit(_cluster_task, todo.popleft(), run, fn, args, spec,
                                          load, *sent, retries=RETRIES, pure=False))

        submit()
        for done in futures:
            yield done.result()
            submit()


@contextmanager
def connect(address: str) -> Iterator[Any]:
    """A ``distributed.Client`` for ``address``; a local cluster is closed afterwards."""
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        raise ClusterError("--cluster needs Dask: pip install 'serfast[cluster]'") from None
    if address.startswith("local:"):
        try:
            n = int(address.split(":", 1)[1])
        except ValueError:
            raise ClusterError(f"bad cluster address {address!r}: use local:N") from None
        if n < 1:
            raise ClusterError(f"bad cluster address {address!r}: local:N needs N >= 1")
        with LocalCluster(n_workers=n, threads_per_worker=1, processes=True,
                          host="127.0.0.1", dashboard_address=None) as cluster, \
                Client(cluster) as client:
            yield client
        return
    try:
        client = Client(address, timeout="10s")
    except (OSError, TimeoutError, ValueError) as err:
        raise ClusterError(f"cannot reach the Dask scheduler at {address}: "
                           f"{' '.join(str(err).split())}") from None
    with client:
        yield client
