"""Shared fixtures: the licensed datasets folder (read in place, never copied) and small synthetic data."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def shared_data_dir() -> Path:
    return Path(os.environ.get("RECSTACK_DATA_DIR", REPO.parent / "shared" / "data")).resolve()


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The public datasets folder; tests using it skip with the reason when it is absent."""
    path = shared_data_dir()
    if not path.is_dir():
        pytest.skip(f"licensed datasets not found at {path} (set RECSTACK_DATA_DIR to the shared/data folder)")
    return path


def pytest_collection_modifyitems(config, items):
    """GPU tests skip cleanly on machines without a CUDA GPU; each checks the GPU backend it needs itself."""
    from recstack.devices import gpu_count

    if gpu_count() > 0:
        return
    skip = pytest.mark.skip(reason="no CUDA GPU on this machine (the gpu-marked tests run on a GPU host)")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def trained_shop(tmp_path_factory) -> tuple[Path, Path]:
    """A small synthetic shop, preprocessed, with the ranker and the two-tower model trained for two epochs
    and exported to ONNX: (prepared data folder, models folder)."""
    from recstack.preprocessing.datasets import load_dataset
    from recstack.preprocessing.pipeline import preprocess
    from recstack.training.config import TrainConfig
    from recstack.training.train_models import train_models

    root = tmp_path_factory.mktemp("shop")
    data, models = root / "data", root / "models"
    preprocess(load_dataset("synthetic", n_events=15_000, seed=3), data, progress=False)
    train_models(data, models, ("sasrec", "two_tower"), TrainConfig(epochs=2), resume=False, progress=False)
    return data, models


@pytest.fixture(scope="session")
def shop_rules(trained_shop, tmp_path_factory) -> Path:
    """Business rules for the small shop: its most popular item is out of stock, another is promoted to the
    second slot."""
    import json

    import polars as pl

    data, _ = trained_shop
    items = pl.read_parquet(data / "items.parquet", columns=["item_idx", "item_id"])
    top = (pl.read_parquet(data / "item_stats.parquet").sort("recent_popularity", descending=True)
           .join(items, on="item_idx").head(40)["item_id"].to_list())
    path = tmp_path_factory.mktemp("rules") / "rules.json"
    path.write_text(json.dumps({"unavailable": [top[0]], "promoted": [{"item_id": top[30], "position": 1}]}))
    return path


@pytest.fixture(scope="session")
def model_repository(trained_shop, shop_rules, tmp_path_factory) -> Path:
    """The small shop's Triton model repository (version 1)."""
    from recstack.ensemble.build import build_repository

    data, models = trained_shop
    out = tmp_path_factory.mktemp("serving") / "model_repository"
    build_repository(data, models, out, rules_path=shop_rules, verbose=False)
    return out


@pytest.fixture(scope="session")
def heads_repository(trained_shop, tmp_path_factory) -> Path:
    """The small shop's repository with a ranker trained with objective heads (two epochs; the two-tower model of
    ``trained_shop`` reused)."""
    import shutil

    from recstack.ensemble.build import build_repository
    from recstack.training.config import SASRecConfig, TrainConfig
    from recstack.training.train_models import train_models

    data, models = trained_shop
    root = tmp_path_factory.mktemp("heads")
    shutil.copytree(models / "onnx" / "two_tower", root / "models" / "onnx" / "two_tower")
    train_models(data, root / "models", ("sasrec",), TrainConfig(epochs=2), SASRecConfig(objectives=True),
                 resume=False, progress=False)
    build_repository(data, root / "models", root / "model_repository", verbose=False)
    return root / "model_repository"


@pytest.fixture(scope="session")
def triton_server(model_repository):
    """A real Triton server over the small shop's repository, on free loopback ports, stopped by PID."""
    from recstack.ensemble.server import TritonServer

    server = TritonServer(model_repository).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory):
    """A real redis-server (Debian's package) on a free loopback port, stopped by PID at the end."""
    import shutil
    import subprocess
    import time

    import redis
    from recstack.ensemble.server import free_port

    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not installed (make test installs Debian's redis-server)")
    port = free_port()
    folder = tmp_path_factory.mktemp("redis")
    process = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                                "--appendonly", "no", "--dir", str(folder)], stdout=subprocess.DEVNULL)
    url = f"redis://127.0.0.1:{port}/0"
    client = redis.Redis.from_url(url)
    deadline = time.monotonic() + 10
    while True:
        try:
            client.ping()
            break
        except redis.ConnectionError:
            if time.monotonic() > deadline or process.poll() is not None:
                process.kill()
                raise
            time.sleep(0.05)
    yield url
    client.close()
    process.terminate()
    process.wait(10)


@pytest.fixture
def flush_redis(redis_url):
    """The test Redis, emptied."""
    import redis

    redis.Redis.from_url(redis_url).flushdb()
    return redis_url
