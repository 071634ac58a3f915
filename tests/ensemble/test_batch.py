"""The batch engine gives the online funnel's lists: same items, order and reasons, scores within 1e-5."""

import numpy as np
import pytest
from recstack.client.core.shop import Shop
from recstack.ensemble.batch import BatchFunnel
from recstack.ensemble.funnel import Funnel


@pytest.fixture(scope="module")
def shop(trained_shop) -> Shop:
    return Shop.load(trained_shop[0])


@pytest.mark.parametrize("limit", [10, 50])
def test_batch_lists_equal_the_online_funnels(model_repository, shop, limit):
    users = sorted(shop.histories)
    histories = [shop.histories[u] for u in users]
    rng = np.random.default_rng(limit)
    # Exclusions per user, some of them items of the small shop's trending list (the funnel's sources).
    exclude = [rng.choice(np.arange(2, 60), size=int(rng.integers(0, 4)), replace=False).tolist() for _ in users]
    funnel = Funnel(model_repository)
    # The online funnel in its batches of 64 users; the batch engine in groups of 32 ordered by history length,
    # so no user sits beside the same users in both.
    online = [funnel.recommend_histories(histories[i:i + 64], exclude[i:i + 64], limit)
              for i in range(0, len(users), 64)]
    engine = BatchFunnel(model_repository, threads=2, group_users=32)
    try:
        batch = engine.recommend_histories(histories, exclude, limit)
    finally:
        engine.close()
    width = batch["item_idx"].shape[1]
    expected = {name: np.concatenate([np.pad(o[name], ((0, 0), (0, width - o[name].shape[1])),
                                             constant_values={"item_idx": -1, "scores": 0.0}.get(name, b""))
                                      for o in online]) for name in ("item_idx", "item_ids", "reasons", "scores")}
    assert len(users) > 200 and width == limit
    assert (batch["item_idx"] == expected["item_idx"]).all()
    assert (batch["item_ids"] == expected["item_ids"]).all() and (batch["reasons"] == expected["reasons"]).all()
    assert np.abs(batch["scores"] - expected["scores"]).max() <= 1e-5
    assert (batch["model_version"] == funnel.model_version.encode()).all()
    for row, user in enumerate(users):  # nothing seen or excluded comes back
        listed = set(batch["item_idx"][row][batch["item_idx"][row] >= 0].tolist())
        assert not listed & (set(shop.histories[user].tolist()) | set(exclude[row]))


def test_a_single_user(model_repository, shop):
    engine = BatchFunnel(model_repository, threads=1)
    try:
        user = sorted(shop.histories)[0]
        one = engine.recommend_histories([shop.histories[user]], [[]], 5)
        assert one["item_idx"].shape == (1, 5)
        expected = Funnel(model_repository).recommend_histories([shop.histories[user]], None, 5)
        assert (one["item_idx"] == expected["item_idx"]).all()
    finally:
        engine.close()


def test_batch_lists_weigh_the_objectives_as_the_online_funnel(heads_repository, shop):
    from recstack.ensemble.config import ObjectiveWeights

    histories = [shop.histories[u] for u in sorted(shop.histories)[:96]]
    weights = ObjectiveWeights(purchase=0.5, revenue=0.5)
    online = Funnel(heads_repository).recommend_histories(histories, None, 10, weights)
    engine = BatchFunnel(heads_repository, threads=2, group_users=32)
    try:
        batch = engine.recommend_histories(histories, [[]] * len(histories), 10, weights)
    finally:
        engine.close()
    assert (batch["item_idx"] == online["item_idx"]).all() and (batch["reasons"] == online["reasons"]).all()
