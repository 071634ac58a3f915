"""Batch scoring on a local Dask cluster (2 worker processes, one thread each): the single process's output, and
a run whose client or worker was killed finishes with every chunk written once."""

import os
import signal
import threading
import time

import polars as pl
import pytest
from recstack.client.core.shop import Shop
from recstack.client.scoring import score_users

pytest.importorskip("distributed", reason="Dask is the `dask` extra of recstack")


@pytest.fixture(scope="module")
def users(trained_shop) -> list[str]:
    return sorted(Shop.load(trained_shop[0]).histories)[:240]


@pytest.fixture(scope="module")
def single(trained_shop, model_repository, users, tmp_path_factory) -> pl.DataFrame:
    out = tmp_path_factory.mktemp("single")
    score_users(trained_shop[0], out, "batch", 10, model_repository, users=users, exclude=["i0000148"],
                chunk_users=30, progress=False)
    return pl.read_parquet(out / "recommendations.parquet")


def test_two_workers_write_the_single_process_output(trained_shop, model_repository, users, single, tmp_path):
    summary = score_users(trained_shop[0], tmp_path, "batch", 10, model_repository, users=users,
                          exclude=["i0000148"], chunk_users=30, progress=False, workers=2)
    assert summary["chunks_done"] == summary["chunks"] == 8 and summary["scored_now"] == len(users)
    assert pl.read_parquet(tmp_path / "recommendations.parquet").equals(single)


def test_a_restarted_run_scores_only_the_missing_chunks(trained_shop, model_repository, users, single, tmp_path):
    # What a killed client leaves: some parts written, no joined output.
    first = score_users(trained_shop[0], tmp_path, "batch", 10, model_repository, users=users,
                        exclude=["i0000148"], chunk_users=30, progress=False, max_chunks=3)
    assert first["chunks_done"] == 3 and not (tmp_path / "recommendations.parquet").exists()
    written = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "parts").iterdir()}
    rest = score_users(trained_shop[0], tmp_path, "batch", 10, model_repository, users=users,
                       exclude=["i0000148"], chunk_users=30, progress=False, workers=2)
    assert rest["scored_now"] == len(users) - 90
    assert all((tmp_path / "parts" / name).stat().st_mtime_ns == at for name, at in written.items())
    assert pl.read_parquet(tmp_path / "recommendations.parquet").equals(single)


def test_a_killed_worker_s_chunks_are_scored_again(trained_shop, model_repository, users, single, tmp_path):
    import psutil

    killed = []

    def is_worker(process) -> bool:
        try:
            return "spawn_main" in " ".join(process.cmdline())
        except psutil.Error:  # gone meanwhile (an earlier cluster's process exiting)
            return False

    def kill_a_worker_once_scoring_began():
        deadline = time.monotonic() + 120
        me = psutil.Process()
        while time.monotonic() < deadline and not killed:
            # The local cluster's nannies live in this process; each starts its worker with multiprocessing.
            workers = [p for p in me.children(recursive=True) if is_worker(p)]
            if workers and any((tmp_path / "parts").glob("part-*.parquet")):
                os.kill(workers[0].pid, signal.SIGKILL)
                killed.append(workers[0].pid)
            time.sleep(0.05)

    killer = threading.Thread(target=kill_a_worker_once_scoring_began, daemon=True)
    killer.start()
    summary = score_users(trained_shop[0], tmp_path, "batch", 10, model_repository, users=users,
                          exclude=["i0000148"], chunk_users=10, progress=False, workers=2)
    killer.join()
    assert killed, "no worker was killed while scoring"
    assert summary["chunks_done"] == summary["chunks"] == 24
    assert pl.read_parquet(tmp_path / "recommendations.parquet").equals(single)


def test_a_running_cluster_s_workers_load_the_models_once(trained_shop, model_repository, users, single, tmp_path):
    from distributed import Client, LocalCluster
    from recstack.client import distributed

    with LocalCluster(n_workers=2, processes=True, threads_per_worker=1, dashboard_address=None) as cluster:
        summary = score_users(trained_shop[0], tmp_path, "batch", 10, model_repository, users=users,
                              exclude=["i0000148"], chunk_users=30, progress=False,
                              scheduler=cluster.scheduler_address)
        with Client(cluster) as client:
            loads = client.run(lambda: (distributed._engine.cache_info().misses,
                                        distributed._engine.cache_info().hits))
    assert summary["workers"] == cluster.scheduler_address and summary["chunks_done"] == 8
    assert all(misses <= 1 for misses, _ in loads.values())  # 8 chunks, at most one load per worker
    assert sum(misses + hits for misses, hits in loads.values()) == 8
    assert pl.read_parquet(tmp_path / "recommendations.parquet").equals(single)


def test_a_repository_rebuilt_at_the_same_path_is_loaded_again(monkeypatch, tmp_path):
    import os

    from recstack.client import distributed

    loads = []
    monkeypatch.setattr(distributed, "BatchFunnel", lambda repository, threads: loads.append(repository) or object())
    distributed._engine.cache_clear()
    marker = tmp_path / distributed.REPOSITORY_FILE
    marker.write_text("{}")
    first = distributed._engine(tmp_path, 1, distributed._stamp(marker))
    assert distributed._engine(tmp_path, 1, distributed._stamp(marker)) is first  # one load per worker
    os.utime(marker, ns=(marker.stat().st_atime_ns, marker.stat().st_mtime_ns + 1_000_000))  # build-repo again
    assert distributed._engine(tmp_path, 1, distributed._stamp(marker)) is not first and len(loads) == 2
    distributed._engine.cache_clear()
