"""The recommender's guard around Triton calls, without a server: what a call's outcome does to the breaker."""

import asyncio
from dataclasses import replace

import pytest
from recstack.client.core.config import FacadeConfig
from recstack.client.core.guards import TritonUnavailable
from recstack.client.core.metrics import Metrics
from recstack.client.core.recommender import Recommender
from recstack.client.core.sessions import MemoryStore
from recstack.client.core.shop import Shop
from recstack.client.recommendation import Recommendation


@pytest.fixture
def recommender(trained_shop, tmp_path):
    shop = Shop.load(trained_shop[0])
    config = FacadeConfig(breaker_failures=1, breaker_reset_s=0.01, timeout_ms=50,
                          ingest_file=tmp_path / "new_items.jsonl")
    return Recommender(shop, MemoryStore(weights=shop.event_weights), engine=object(), config=config,
                       metrics=Metrics())


def test_a_cancelled_trial_frees_the_breaker(recommender):
    async def fail():
        raise ConnectionError("down")

    async def cancelled():
        raise asyncio.CancelledError

    async def scenario():
        with pytest.raises(TritonUnavailable):
            await recommender.engine.call("recommend", lambda _: fail())  # opens the circuit
        await asyncio.sleep(0.02)  # half-open: the next call is the trial
        with pytest.raises(asyncio.CancelledError):
            await recommender.engine.call("recommend", lambda _: cancelled())
        return recommender.engine.breaker.allow()

    assert asyncio.run(scenario()) is True


def test_a_timeout_counts_against_triton(recommender):
    async def slow():
        await asyncio.sleep(1)

    async def scenario():
        with pytest.raises(TritonUnavailable, match="TimeoutError"):
            await recommender.engine.call("recommend", lambda _: slow())
        return recommender.engine.breaker.state

    assert asyncio.run(scenario()) == "open"


def test_live_counts_below_the_threshold_do_not_move_lists(recommender):
    shop = recommender.shop
    item = shop.item_ids[int(shop.popular[-1])]  # the least popular item

    async def scenario():
        await recommender.store.append([{"user_id": "u", "item_id": item, "item_idx": 0, "event_type": "view"}])
        once = [i for i, _ in await recommender.popular.live_counts(10)]
        await recommender.store.append([{"user_id": "u", "item_id": item, "item_idx": 0, "event_type": "purchase"}])
        return once, [i for i, _ in await recommender.popular.live_counts(10)]

    once, after_purchase = asyncio.run(scenario())
    assert once == [] and after_purchase == [shop.item_index(item)]


def test_exploration_chooses_among_the_newest_items_only(recommender):
    recommender.exploration.config = replace(recommender.config, exploration_arms=1)
    newest = recommender.exploration.new_items[0]
    ages = recommender.shop.age_days[recommender.exploration.new_items]
    assert list(ages) == sorted(ages)
    items = [Recommendation(item_id=recommender.shop.item_ids[i], score=1.0, reason="r", model_version="m",
                            item_idx=i) for i in range(2, 8)]
    for _ in range(5):
        served = asyncio.run(recommender.exploration.fill(list(items), set(), 6, ""))
        assert served[3].item_id == recommender.shop.item_ids[newest]
    added = recommender.add_items([{"item_id": "brand-new", "title": "B"}])
    assert recommender.exploration.new_items[0] == added[0]


def test_the_facade_serves_each_variant_with_its_objective_weights(trained_shop, heads_repository):
    """Facade → in-process engine: users of the revenue variant get the re-rank their weights ask for."""
    from recstack.client.core.experiments import Experiment, Experiments, Variant
    from recstack.client.engine import open_engine
    from recstack.ensemble.config import ObjectiveWeights
    from recstack.ensemble.rerank import VALUE_REASON

    shop = Shop.load(trained_shop[0])
    weights = ObjectiveWeights(revenue=1.0)
    experiments = Experiments([Experiment("relevance-vs-revenue", (Variant("relevance"),
                                                                   Variant("revenue", objectives=weights)))])
    users = [u for u in sorted(shop.histories) if len(shop.histories[u])][:40]

    async def scenario():
        engine = open_engine("in-process", repository=heads_repository)
        recommender = Recommender(shop, MemoryStore(weights=shop.event_weights), engine,
                                  FacadeConfig(timeout_ms=10_000), Metrics(), experiments)
        try:
            return [await recommender.personalized(user, 10) for user in users]
        finally:
            await engine.close()

    served = asyncio.run(scenario())
    assert {s.variant for s in served} == {"relevance", "revenue"}
    moved_up = {variant: [any(i.reason == VALUE_REASON for i in s.items) for s in served if s.variant == variant]
                for variant in ("relevance", "revenue")}
    assert not any(moved_up["relevance"]) and sum(moved_up["revenue"]) >= len(moved_up["revenue"]) / 2
