import numpy as np
import polars as pl
import pytest

from ensemble.funnel import Funnel


@pytest.fixture(scope="module")
def funnel(model_repository) -> Funnel:
    return Funnel(model_repository)


@pytest.fixture(scope="module")
def histories(trained_shop) -> list[np.ndarray]:
    rows = pl.read_parquet(trained_shop[0] / "eval_test.parquet", columns=["history"]).head(32)
    return [np.asarray(h, dtype=np.int64) for h in rows["history"].to_list()]


def recommend(funnel, histories, exclude=None, limit=20):
    return funnel.recommend_histories(histories, exclude, limit)


def test_lists_follow_every_rule(funnel, histories):
    out = recommend(funnel, histories)
    catalog = funnel.catalog
    promoted = catalog.index_of([catalog.rules.promoted[0][0]])[0]
    withdrawn = catalog.index_of(list(catalog.rules.unavailable))[0]
    for row, history in enumerate(histories):
        items = out["item_idx"][row]
        assert len(items) == 20 and len(set(items.tolist())) == 20
        assert not set(items.tolist()) & set(history.tolist())
        assert withdrawn not in items
        if promoted not in history:
            assert items[1] == promoted and out["reasons"][row][1] == b"promoted"
        assert [catalog.item_ids[i].encode() for i in items] == out["item_ids"][row].tolist()
        assert all(len(reason) > 0 for reason in out["reasons"][row])
        categories = catalog.category_idx[items]
        assert not any(categories[i] == categories[i + 1] == categories[i + 2] for i in range(len(items) - 2)
                       if items[i + 1] != promoted and items[i + 2] != promoted and items[i] != promoted)
    assert out["model_version"][0][0].decode() == funnel.model_version


def test_exclusions_are_honoured(funnel, histories):
    first = recommend(funnel, histories[:1])["item_idx"][0]
    exclude = [first[[0, 2, 5]]]
    again = recommend(funnel, histories[:1], exclude=exclude)["item_idx"][0]
    assert not set(first[[0, 2, 5]].tolist()) & set(again.tolist())


def test_a_new_user_gets_a_list(funnel):
    out = recommend(funnel, [np.array([], dtype=np.int64)], limit=10)
    assert (out["item_idx"][0] >= 2).all()
    assert {r.decode() for r in out["reasons"][0]} <= {"popular right now", "promoted", "new arrival"} | {
        f"trending in {c}" for c in set(funnel.catalog.categories)}


def test_limit_is_checked(funnel, histories):
    with pytest.raises(ValueError, match="limit must be within"):
        recommend(funnel, histories[:1], limit=0)
    with pytest.raises(ValueError, match="exclude lists"):
        recommend(funnel, histories[:2], exclude=[[3]])


def test_similar_and_trending(funnel):
    similar = funnel.similar(5, 5, "also_viewed")
    assert similar["item_idx"].shape == (1, 5) and 5 not in similar["item_idx"][0]
    top = funnel.trending(5)
    assert np.all(np.diff(funnel.catalog.popularity[top["item_idx"][0]]) <= 0)
