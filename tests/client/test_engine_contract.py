"""One contract for every engine (Triton over gRPC, Triton over HTTP, in-process): what the facade, batch scoring and
the benchmarks rely on, checked the same way for each, against the same repository."""

import asyncio
import math

import numpy as np
import polars as pl
import pytest
from recstack.client.engine import ENGINE_KINDS, Engine, engine_kind, open_engine
from recstack.client.recommendation import RecommendationList
from recstack.ensemble.funnel import Funnel

pytestmark = pytest.mark.triton


@pytest.fixture(scope="module")
def histories(trained_shop) -> list[list[int]]:
    return pl.read_parquet(trained_shop[0] / "eval_test.parquet")["history"].head(5).to_list()


@pytest.fixture(scope="module")
def reference(model_repository, histories):
    """The funnel's own answers, computed in this process without any engine."""
    return Funnel(model_repository).recommend_histories(histories, [[h[0]] for h in histories], limit=8)


@pytest.fixture(params=ENGINE_KINDS)
def call(request, triton_server, model_repository):
    """Run ``f(engine)`` on a fresh engine of each kind inside one event loop, closing the engine after."""
    kind = request.param
    url = triton_server.http_url if kind == "triton-http" else triton_server.grpc_url

    def run(scenario):
        async def main():
            engine = open_engine(kind, url, model_repository)
            try:
                return await scenario(engine)
            finally:
                await engine.close()

        return asyncio.run(main())

    return run


def test_is_an_engine_and_ready(call):
    assert call(lambda engine: _ready(engine)) == (True, True)


async def _ready(engine):
    return isinstance(engine, Engine), await engine.ready()


def test_recommends_the_funnels_lists(call, histories, reference):
    exclude = [[h[0]] for h in histories]
    lists = call(lambda engine: engine.recommend(histories, exclude, limit=8))
    assert all(isinstance(served, RecommendationList) for served in lists) and len(lists) == len(histories)
    for row, (served, history) in enumerate(zip(lists, histories, strict=True)):
        keep = reference["item_idx"][row] >= 0
        assert [r.item_idx for r in served.items] == reference["item_idx"][row][keep].tolist()
        np.testing.assert_allclose([r.score for r in served.items], reference["scores"][row][keep], atol=1e-5)
        assert len(served.items) == 8 and not {r.item_idx for r in served.items} & set(history)
        assert all(r.item_id and r.reason for r in served.items) and served.model_version


def test_arrays_hold_the_same_lists(call, histories):
    async def both(engine):
        return await engine.recommend(histories[:2], limit=5), await engine.recommend_arrays(histories[:2], limit=5)

    lists, arrays = call(both)
    assert set(arrays) == {"item_ids", "item_idx", "scores", "reasons", "model_version"}
    for row, served in enumerate(lists):
        assert [r.item_idx for r in served.items] == [i for i in arrays["item_idx"][row].tolist() if i >= 0]


def test_ranks_every_candidate_alike(call, histories, model_repository):
    scores = call(lambda engine: engine.rank(histories[0], [5, 6, 7, 8]))
    expected = asyncio.run(_in_process_rank(model_repository, histories[0], [5, 6, 7, 8]))
    assert scores.shape == (4,) and all(math.isfinite(s) for s in scores)
    np.testing.assert_allclose(scores, expected, atol=1e-5)


async def _in_process_rank(repository, history, candidates):
    engine = open_engine("in-process", repository=repository)
    try:
        return await engine.rank(history, candidates)
    finally:
        await engine.close()


@pytest.mark.parametrize("kind", ["similar", "also_viewed", "bought_together"])
def test_similar_items_leave_the_item_out(call, kind):
    served = call(lambda engine: engine.similar(9, 4, kind))
    assert 0 < len(served.items) <= 4 and 9 not in [r.item_idx for r in served.items]


def test_trending(call):
    served = call(lambda engine: engine.trending(6))
    assert len(served.items) == 6 and len({r.item_id for r in served.items}) == 6


def test_a_bad_limit_is_an_error_not_an_empty_list(call, histories):
    with pytest.raises(Exception, match="limit"):
        call(lambda engine: engine.recommend(histories[:1], limit=5000))


def test_the_factory_refuses_what_it_cannot_open():
    with pytest.raises(ValueError, match="repository"):
        open_engine("in-process")
    with pytest.raises(ValueError, match="address"):
        open_engine("triton-grpc")
    with pytest.raises(ValueError, match="choose from"):
        engine_kind("carrier-pigeon")
