import json
import tempfile
from pathlib import Path

import pytest
import redis
from fastapi.testclient import TestClient
from recstack.client.api.main import create_app
from recstack.client.core.config import FacadeConfig
from recstack.client.core.keys import FileKeyStore, NewKey, add_key, create_key, open_key_store


def new_key(config: FacadeConfig, name: str, scope: str, origins: tuple[str, ...] = (),
            requests_per_minute: float | None = None) -> NewKey:
    """A key in the facade's key store (its Redis, or its keys file), as `recstack keys create` makes it; with an
    unreachable Redis, in the keys file (the copy a facade keeps of the last keys it read)."""
    new = create_key(name, scope, origins, requests_per_minute)
    try:
        add_key(open_key_store(config.redis_url, config.keys_file), new)
    except redis.ConnectionError:
        add_key(FileKeyStore(config.keys_file), new)
    return new


def make_api(trained_shop, triton_url: str, redis_url: str | None, data_dir: Path | None = None,
             **overrides) -> TestClient:
    """The facade (on the small shop's prepared data, or ``data_dir``), called with an admin key (limited far
    above what a test sends) unless auth is off."""
    scratch = Path(tempfile.mkdtemp())
    overrides = {"ingest_file": scratch / "new_items.jsonl", "keys_file": scratch / "keys.json", "timeout_ms": 2000,
                 "keys_refresh_s": 0.0, **overrides}
    config = FacadeConfig(triton_url=triton_url, redis_url=redis_url, **overrides)
    admin = new_key(config, f"tests{scratch.name}".replace(".", "_"), "admin", requests_per_minute=1e6)
    headers = {"X-API-Key": admin.key} if config.auth else {}
    return TestClient(create_app(config, data_dir or trained_shop[0]), headers=headers)


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
    from recstack.ensemble.funnel import serving_folder
    from recstack.training.data import pad_left

    session = ort.InferenceSession(str(serving_folder(model_repository, "rank") / "model.onnx"))

    def scores(history, candidates):
        seq = pad_left([np.asarray(history, dtype=np.int64)], 200)
        return session.run(None, {"item_seq": seq, "candidates": np.asarray([candidates], dtype=np.int64)})[0][0]

    return scores
