"""Running shards of work on a Dask cluster (``--cluster ADDRESS``).

serfast ships work to an existing distributed engine rather than its own: ADDRESS is a
Dask scheduler (``tcp://host:8786``) or ``local:N`` for a local cluster of N single-threaded
worker processes on loopback. Dask retries the shards of a worker that dies, so a lost
worker costs only a retry. Dask is imported only here, only when a cluster is asked for.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Callable, Iterator, Sequence


class ClusterError(Exception):
    """The cluster cannot be reached or used; one-line message."""


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


def map_shards(client: Any, fn: Callable, shards: Sequence, args: tuple = (),
               broadcast: tuple = (), retries: int = 3) -> Iterator[Any]:
    """Run ``fn(shard, *broadcast, *args)`` for every shard; yield results as they come.

    ``broadcast`` holds large read-only objects (filter banks, models), sent once to every
    worker. At most ``4 x workers`` shards are in flight, so memory stays bounded; each
    shard is retried ``retries`` times if its worker dies.
    """
    from distributed import as_completed

    shared = [client.scatter(b, broadcast=True) for b in broadcast]
    limit = 4 * max(1, len(client.scheduler_info().get("workers", {})))
    queue = iter(shards)
    futures = as_completed()

    def submit(shard) -> None:
        futures.add(client.submit(fn, shard, *shared, *args, retries=retries, pure=False))

    for shard in queue:
        submit(shard)
        if futures.count() >= limit:
            break
    for done in futures:
        yield done.result()
        shard = next(queue, None)
        if shard is not None:
            submit(shard)
