"""Batch scoring on a Dask cluster (``recstack score --workers N`` or ``--scheduler tcp://HOST:PORT``).

Each missing chunk is one task: the worker that runs it scores it in batch mode and writes its part file
atomically, exactly as a single process would, so the output is the same and a run restarted after the client
died continues with the chunks still missing. A task lost with its worker is run again elsewhere by Dask; if its
first try had written the part already, the retry only finds it. Every worker process loads the prepared data and
the model repository once, on its first task, and keeps them for the next ones. Workers must see the same paths
(data, repository, output) as the client: one machine, or a shared filesystem.
"""

from __future__ import annotations

import threading
from functools import lru_cache
from pathlib import Path

from distributed import as_completed, get_worker
from recstack.client.core.shop import Shop
from recstack.client.scoring import ChunkJob
from recstack.ensemble.batch import BatchFunnel
from recstack.ensemble.build import REPOSITORY_FILE
from recstack.preprocessing.layout import MANIFEST_NAME
from tqdm import tqdm

from recstack.cluster import dask_client

# One chunk at a time per worker process, whatever its thread count: the engine spreads a chunk over all of them.
_ONE_CHUNK = threading.Lock()


def _stamp(marker: Path) -> int:
    """When ``marker`` was last written: a dataset or repository rebuilt at the same path is loaded again by
    workers of a long-lived cluster."""
    return marker.stat().st_mtime_ns if marker.exists() else 0


@lru_cache(maxsize=1)
def _shop(data_dir: Path, stamp: int) -> Shop:
    return Shop.load(data_dir)


@lru_cache(maxsize=1)
def _engine(repository: Path, threads: int, stamp: int) -> BatchFunnel:
    return BatchFunnel(repository, threads=threads)


def _score_chunk(job: ChunkJob, number: int, user_ids: list[str]) -> int:
    # The worker's thread count is its share of the host's cores (LocalCluster: threads_per_worker).
    threads = get_worker().state.nthreads
    with _ONE_CHUNK:
        shop = _shop(job.data_dir, _stamp(job.data_dir / MANIFEST_NAME))
        engine = _engine(job.repository, threads, _stamp(job.repository / REPOSITORY_FILE))
        return job.run(number, user_ids, shop, engine)


def score_chunks(chunks: dict[int, list[str]], job: ChunkJob, bar: tqdm, workers: int | None = None,
                 scheduler: str | None = None) -> None:
    """Run the chunks (number → user ids) as Dask tasks, on the cluster at ``scheduler`` or on a local cluster
    of ``workers`` processes (one thread each); returns when every part is written."""
    with dask_client(workers, scheduler) as client:
        futures = [client.submit(_score_chunk, job, number, user_ids, key=f"score-{job.parts}-{number}",
                                 pure=False) for number, user_ids in chunks.items()]
        for future in as_completed(futures):
            bar.update(future.result())
