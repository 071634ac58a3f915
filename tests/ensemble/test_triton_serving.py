"""The funnel on a real Triton server (started on free loopback ports, stopped by PID)."""

import json
import shutil
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import polars as pl
import pytest
from recstack.client.triton import TritonRecommender
from recstack.ensemble.build import build_repository
from recstack.ensemble.funnel import Funnel
from recstack.ensemble.server import TritonServer
from tritonclient.utils import InferenceServerException

from .conftest import ClientLoad

pytestmark = pytest.mark.triton


@pytest.fixture(scope="module")
def funnel(model_repository) -> Funnel:
    return Funnel(model_repository)


@pytest.fixture(scope="module")
def histories(trained_shop) -> list[list[int]]:
    rows = pl.read_parquet(trained_shop[0] / "eval_test.parquet", columns=["history"]).head(24)
    return rows["history"].to_list() + [[]]  # and a user with no history yet


def assert_same(got: dict, want: dict) -> None:
    assert np.array_equal(got["item_idx"], want["item_idx"])
    assert got["item_ids"].tolist() == want["item_ids"].tolist()
    assert got["reasons"].tolist() == want["reasons"].tolist()
    assert np.abs(got["scores"] - want["scores"]).max() <= 1e-4
    assert got["model_version"].tolist() == want["model_version"].tolist()


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_triton_equals_the_in_process_funnel(triton_server, funnel, histories, protocol):
    url = triton_server.http_url if protocol == "http" else triton_server.grpc_url
    with TritonRecommender(url, protocol) as client:
        assert_same(client.recommend_arrays(histories, limit=20), funnel.recommend_histories(histories, limit=20))
        exclude = [h[-3:] for h in histories]
        assert_same(client.recommend_arrays(histories[:4], exclude[:4], limit=7),
                    funnel.recommend_histories(histories[:4], exclude[:4], limit=7))
        # One user per request, many at once: the dynamic batcher merges them; results must not change.
        def alone(history):
            with TritonRecommender(url, protocol) as own:  # HTTP clients are not thread-safe: one per thread
                return own.recommend_arrays([history], limit=10)

        with ThreadPoolExecutor(8) as pool:
            singles = list(pool.map(alone, histories))
        for history, got in zip(histories, singles, strict=True):
            assert_same(got, funnel.recommend_histories([history], limit=10))
        for kind in ("similar", "also_viewed", "bought_together"):
            got = client.similar(7, 5, kind)
            want = funnel.similar(7, 5, kind)
            assert [r.item_idx for r in got.items] == want["item_idx"][0].tolist()
        assert [r.item_idx for r in client.trending(8).items] == funnel.trending(8)["item_idx"][0].tolist()


def test_served_lists_follow_the_rules(triton_server, funnel, histories):
    catalog = funnel.catalog
    promoted = int(catalog.index_of([catalog.rules.promoted[0][0]])[0])
    withdrawn = int(catalog.index_of(list(catalog.rules.unavailable))[0])
    with TritonRecommender(triton_server.grpc_url) as client:
        lists = client.recommend(histories, exclude=[[5, 6]] * len(histories), limit=15)
    for history, served in zip(histories, lists, strict=True):
        items = [r.item_idx for r in served.items]
        assert len(items) == 15 and not set(items) & (set(history) | {5, 6, withdrawn})
        assert all(r.reason for r in served.items)
        if promoted not in history:
            assert served.items[1].item_idx == promoted and served.items[1].reason == "promoted"
        cats = catalog.category_idx[[i for i in items if i != promoted]]
        assert not any(cats[i] == cats[i + 1] == cats[i + 2] for i in range(len(cats) - 2))
    reasons = {r.reason.split(" ")[0] for served in lists for r in served.items}
    assert {"because", "customers", "promoted"} <= reasons


def test_bad_requests_fail_alone(triton_server, histories):
    with TritonRecommender(triton_server.grpc_url) as client:
        with pytest.raises(InferenceServerException, match="limit must be within"):
            client.recommend(histories[:1], limit=5000)
        with pytest.raises(InferenceServerException, match="unknown item"):
            client.similar(10**9, 3)
        with pytest.raises(InferenceServerException, match="negative"):
            client.recommend([[5, -3]], limit=3)
        # Items newer than the served catalog (added since it was built) read as OOV, in every stage.
        assert len(client.recommend([[5, 10**9]], limit=3)[0].items) == 3
        assert len(client.recommend(histories[:1], limit=3)[0].items) == 3


def test_version_swap_under_load_fails_no_request(trained_shop, model_repository, tmp_path):
    data, models = trained_shop
    repository = tmp_path / "model_repository"
    shutil.copytree(model_repository, repository)
    histories = pl.read_parquet(data / "eval_test.parquet", columns=["history"]).head(4)["history"].to_list()
    server = TritonServer(repository).start()
    try:
        with ClientLoad(server, histories) as load:
            time.sleep(1.0)
            top = load.answers[-1][1].items[0].item_id
            rules = tmp_path / "rules.json"
            rules.write_text(json.dumps({"unavailable": [top]}))
            assert build_repository(data, models, repository, rules_path=rules, verbose=False)["version"] == 2
            server.reload_all()
            swapped = time.monotonic()
            time.sleep(1.0)
        errors, served = load.errors, load.answers
        assert errors == []
        versions = [(started, s.model_version.rsplit("/", 1)[1]) for started, s in served]
        assert versions[0][1] == "r1" and versions[-1][1] == "r2"
        # In-flight requests may finish on the old version; every request sent after the swap gets the new one.
        assert {v for started, v in versions if started > swapped} == {"r2"}
        assert all(top not in s.item_ids for _, s in served if s.model_version.endswith("/r2"))
    finally:
        pid = server.pid
        server.stop()
    assert server.process.poll() is not None
    with pytest.raises(ProcessLookupError):
        import os

        os.kill(pid, 0)
