import json
import tempfile
from pathlib import Path

import pytest
import redis
from fastapi.testclient import TestClient
from recstack.client.api.main import create_app
from recstack.client.core.config import FacadeConfig


@pytest.fixture
def flush_redis(redis_url):
    redis.Redis.from_url(redis_url).flushdb()
    return redis_url


def make_api(trained_shop, triton_url: str, redis_url: str | None, **overrides) -> TestClient:
    overrides = {"ingest_file": Path(tempfile.mkdtemp()) / "new_items.jsonl", "timeout_ms": 2000, **overrides}
    config = FacadeConfig(triton_url=triton_url, redis_url=redis_url, **overrides)
    return TestClient(create_app(config, trained_shop[0]))


@pytest.fixture
def api(trained_shop, triton_server, flush_redis):
    """The facade on the real Triton server and a real (emptied) Redis."""
    with make_api(trained_shop, triton_server.grpc_url, flush_redis) as client:
        yield client


@pytest.fixture(scope="session")
def known_user(trained_shop):
    import polars as pl

    row = pl.read_parquet(trained_shop[0] / "eval_test.parquet").row(0, named=True)
    return row["user_id"], row["history"] + row["targets"]


@pytest.fixture(scope="session")
def items(trained_shop):
    import polars as pl

    table = pl.read_parquet(trained_shop[0] / "items.parquet").filter(pl.col("item_idx") >= 2).sort("item_idx")
    return table["item_id"].to_list()


def write_experiments(path, experiments) -> str:
    path.write_text(json.dumps({"experiments": experiments}))
    return str(path)


@pytest.fixture(scope="session")
def categories(trained_shop) -> dict[str, str]:
    """Raw item id -> category name."""
    from recstack.client.core.shop import Shop

    shop = Shop.load(trained_shop[0])
    return {item: shop.categories[i] for i, item in enumerate(shop.item_ids) if item is not None}


@pytest.fixture(scope="session")
def funnel_scores(model_repository):
    """The ranker's scores computed in-process (onnxruntime on the repository's ONNX file)."""
    import numpy as np
    import onnxruntime as ort
    from recstack.ensemble.funnel import latest
    from recstack.training.data import pad_left

    session = ort.InferenceSession(str(latest(model_repository, "rank") / "model.onnx"))

    def scores(history, candidates):
        seq = pad_left([np.asarray(history, dtype=np.int64)], 200)
        return session.run(None, {"item_seq": seq, "candidates": np.asarray([candidates], dtype=np.int64)})[0][0]

    return scores
