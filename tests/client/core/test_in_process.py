import asyncio

import polars as pl
import pytest
from recstack.client.core.in_process import InProcessRecommender
from recstack.ensemble.funnel import Funnel

from tests.client.api.conftest import make_api


@pytest.fixture(scope="module")
def histories(trained_shop) -> list[list[int]]:
    return pl.read_parquet(trained_shop[0] / "eval_test.parquet")["history"].head(6).to_list()


def test_answers_like_the_funnel_and_batches_concurrent_requests(model_repository, histories):
    expected = Funnel(model_repository).recommend_histories(histories, limit=7)

    async def scenario():
        engine = InProcessRecommender(model_repository)
        calls = []
        run = engine._recommend_batch
        engine._recommend_batch = lambda batch: calls.append(len(batch)) or run(batch)
        try:
            # Different limits in one batch: each request gets its own.
            answers = await asyncio.gather(*(engine.recommend([h], limit=7 if i else 3)
                                             for i, h in enumerate(histories)))
        finally:
            await engine.close()
        return answers, calls

    answers, calls = asyncio.run(scenario())
    assert sum(calls) == len(histories) and len(calls) < len(histories)  # queued requests shared a batch
    assert [len(a[0].items) for a in answers] == [3] + [7] * (len(histories) - 1)
    for row, answer in enumerate(answers):
        ids = [r.item_id for r in answer[0].items]
        want = [i.decode() for i in expected["item_ids"][row] if i]
        assert ids == (want[:3] if row == 0 else want)
        assert all(r.reason for r in answer[0].items)


def test_refuses_other_models_and_bad_limits(model_repository, histories):
    async def scenario():
        engine = InProcessRecommender(model_repository)
        try:
            with pytest.raises(ValueError, match="recommend"):
                await engine.recommend([histories[0]], model="recommend_b")
            with pytest.raises(ValueError):
                await engine.recommend([histories[0]], limit=0)
            assert len(await engine.rank(histories[0], [5, 6, 7])) == 3
            assert (await engine.trending(4)).items
        finally:
            await engine.close()

    asyncio.run(scenario())


def test_facade_serves_personal_lists_without_triton(trained_shop, model_repository):
    row = pl.read_parquet(trained_shop[0] / "eval_test.parquet").row(0, named=True)
    items = pl.read_parquet(trained_shop[0] / "items.parquet")
    seen = set(items.filter(pl.col("item_idx").is_in(row["history"]))["item_id"].to_list())
    user = row["user_id"]
    with make_api(trained_shop, "127.0.0.1:1", None, engine="in-process", repository=model_repository) as api:
        body = api.get(f"/api/v1/recommendations/{user}", params={"limit": 5}).json()
        assert not body["degraded"]
        assert len(body["recommendations"]) == 5
        assert all(r["reason"] for r in body["recommendations"])
        assert not seen & {r["item_id"] for r in body["recommendations"]}
        assert api.get("/ready").status_code == 200


def test_requests_whose_caller_gave_up_are_not_computed(model_repository, histories):
    async def scenario():
        engine = InProcessRecommender(model_repository)
        computed = []
        run = engine._recommend_batch
        engine._recommend_batch = lambda batch: computed.extend(len(r[0]) for r in batch) or run(batch)
        try:
            first = asyncio.ensure_future(engine.recommend([histories[0]]))  # occupies the engine
            await asyncio.sleep(0)
            abandoned = asyncio.ensure_future(engine.recommend([histories[1]]))
            kept = asyncio.ensure_future(engine.recommend([histories[2]]))
            await asyncio.sleep(0)
            abandoned.cancel()  # what asyncio.wait_for does when the time budget runs out
            await first
            answer = await kept
        finally:
            await engine.close()
        return computed, answer

    computed, answer = asyncio.run(scenario())
    assert computed == [1, 1] and answer[0].items
