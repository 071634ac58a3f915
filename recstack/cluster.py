"""The Dask cluster a stage spreads its work over: a running one (``--scheduler tcp://HOST:PORT``) or a local one of
``--workers N`` processes, which :func:`dask_client` starts and closes. Batch scoring (``recstack score``) and
preprocessing (``recstack preprocess --engine dask``) connect the same way.

It sits beside :mod:`recstack.devices`, below every stage, and imports no stage. Dask is the ``dask`` extra, so it is
imported only when a cluster is asked for.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def dask_client(workers: int | None = None, scheduler: str | None = None, gpu: bool = False) -> Iterator:
    """A ``distributed.Client`` of the cluster at ``scheduler``, or of a local cluster of ``workers`` processes (one
    thread each; one per core when None), closed on exit. With ``gpu`` the local cluster is ``dask-cuda``'s, one
    worker per GPU (``workers`` ignored)."""
    if workers is not None and workers < 1:
        raise ValueError(f"workers must be at least 1; got {workers}")
    from distributed import Client, LocalCluster

    cluster = None
    if scheduler is None and gpu:
        from dask_cuda import LocalCUDACluster

        cluster = LocalCUDACluster(dashboard_address=None)
    elif scheduler is None:
        cluster = LocalCluster(n_workers=workers, processes=True, threads_per_worker=1, dashboard_address=None)
    try:
        with Client(scheduler or cluster) as client:
            yield client
    finally:
        if cluster is not None:
            cluster.close()
