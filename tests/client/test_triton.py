"""The typed Triton clients against a real server."""

import asyncio

import polars as pl
import pytest
from recstack.client.triton import AsyncTritonRecommender, TritonRecommender
from recstack.ensemble.funnel import Funnel

pytestmark = pytest.mark.triton


@pytest.fixture(scope="module")
def histories(trained_shop) -> list[list[int]]:
    return pl.read_parquet(trained_shop[0] / "eval_test.parquet", columns=["history"]).head(3)["history"].to_list()


@pytest.fixture(scope="module")
def funnel(model_repository) -> Funnel:
    return Funnel(model_repository)


def test_typed_lists_carry_raw_ids_scores_and_reasons(triton_server, histories, funnel):
    with TritonRecommender(triton_server.grpc_url, "grpc") as client:
        assert client.ready()
        lists = client.recommend(histories, limit=5)
    assert len(lists) == 3
    for served in lists:
        assert len(served.items) == 5 and served.model_version == funnel.model_version
        for item in served.items:
            assert item.item_id == funnel.catalog.item_ids[item.item_idx]
            assert item.reason and 0.0 <= item.score <= 1.0 + funnel.reranker.config.freshness_boost
    trending = TritonRecommender(triton_server.http_url, "http").trending(3)
    assert [r.item_idx for r in trending.items] == funnel.trending(3)["item_idx"][0].tolist()


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_async_client_matches_the_blocking_one(triton_server, histories, protocol):
    url = triton_server.http_url if protocol == "http" else triton_server.grpc_url
    with TritonRecommender(url, protocol) as blocking:
        want = blocking.recommend(histories, limit=8)
        want_similar = blocking.similar(9, 4, "also_viewed")

    async def run():
        client = AsyncTritonRecommender(url, protocol)
        try:
            many = await asyncio.gather(*(client.recommend([h], limit=8) for h in histories))
            return [m[0] for m in many], await client.similar(9, 4, "also_viewed"), await client.trending(2)
        finally:
            await client.close()

    got, similar, trending = asyncio.run(run())
    assert got == want and similar == want_similar and len(trending.items) == 2


def test_unreachable_server_is_not_ready():
    from recstack.ensemble.server import free_port

    with TritonRecommender(f"127.0.0.1:{free_port()}", "http") as client:
        assert not client.ready()


def test_protocol_is_checked():
    with pytest.raises(ValueError, match="protocol"):
        TritonRecommender("127.0.0.1:1", "websocket")


@pytest.fixture(scope="module")
def heads_server(heads_repository):
    """A real Triton server over the repository whose ranker has objective heads."""
    from recstack.ensemble.server import TritonServer

    server = TritonServer(heads_repository).start()
    yield server
    server.stop()


def test_variants_of_other_objective_weights_serve_other_orders(heads_server, heads_repository, trained_shop,
                                                                tmp_path):
    import json

    from recstack.client.core.experiments import Experiments
    from recstack.ensemble.rerank import VALUE_REASON

    path = tmp_path / "experiments.json"
    path.write_text(json.dumps({"experiments": [{"id": "relevance-vs-revenue", "variants": [
        {"name": "relevance"}, {"name": "revenue", "objectives": {"revenue": 1.0}}]}]}))
    relevance, revenue = Experiments.load(path).experiments[0].variants
    histories = pl.read_parquet(trained_shop[0] / "eval_test.parquet", columns=["history"]).head(8)["history"]
    histories = histories.to_list()
    funnel = Funnel(heads_repository)
    served = {}
    for protocol, url in (("grpc", heads_server.grpc_url), ("http", heads_server.http_url)):
        with TritonRecommender(url, protocol) as client:
            for variant in (relevance, revenue):
                lists = client.recommend(histories, limit=10, objectives=variant.objectives)
                served[protocol, variant.name] = [[item.item_idx for item in s.items] for s in lists]
                if variant.objectives is not None:
                    assert any(item.reason == VALUE_REASON for s in lists for item in s.items)
    for variant in (relevance, revenue):  # Triton answers what the in-process funnel does
        expected = funnel.recommend_histories(histories, limit=10, objectives=variant.objectives)["item_idx"]
        assert served["grpc", variant.name] == served["http", variant.name] == expected.tolist()
    different = [a != b for a, b in zip(served["grpc", "relevance"], served["grpc", "revenue"], strict=True)]
    assert different[0] and sum(different) >= 6
