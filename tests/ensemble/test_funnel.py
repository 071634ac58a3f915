import numpy as np
import polars as pl
import pytest
from recstack.ensemble.funnel import Funnel, request_arrays, window_width


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


def test_the_window_is_the_longest_history_rounded_up_to_a_power_of_two():
    assert [window_width([n], 200) for n in (0, 1, 8, 9, 16, 17, 100, 129, 500)] == [8, 8, 8, 16, 16, 32, 128,
                                                                                     200, 200]
    assert window_width([3, 40, 7], 200) == 64
    seq, excluded, limits = request_arrays([[5, 6, 7], list(range(2, 302))], None, 10, 200)
    assert seq.shape == (2, 200) and excluded[1].tolist() == list(range(2, 102))
    assert request_arrays([[5, 6, 7]], None, 10, 200)[0].tolist() == [[0, 0, 0, 0, 0, 5, 6, 7]]


def test_a_narrower_window_gives_the_same_lists_and_scores(funnel, histories):
    short = [h[-6:] for h in histories[:8]]
    narrow = funnel.recommend(*request_arrays(short, None, 20, funnel.max_length))
    wide = funnel.recommend(np.stack([np.pad(h, (funnel.max_length - len(h), 0)) for h in short]),
                            np.zeros((len(short), 1), dtype=np.int64), np.full(len(short), 20))
    assert request_arrays(short, None, 20, funnel.max_length)[0].shape[1] == 8
    assert (narrow["item_idx"] == wide["item_idx"]).all()
    np.testing.assert_allclose(narrow["scores"], wide["scores"], atol=1e-5)


def test_a_ranker_with_heads_weighs_each_requests_objectives(heads_repository, histories):
    from recstack.ensemble.config import ObjectiveWeights
    from recstack.ensemble.rerank import VALUE_REASON

    funnel = Funnel(heads_repository)
    assert funnel.specs["rank"].output_names == ("scores", "objectives")
    relevance = funnel.recommend_histories(histories, limit=10)
    zero = funnel.recommend_histories(histories, limit=10, objectives=ObjectiveWeights())
    revenue = funnel.recommend_histories(histories, limit=10, objectives=ObjectiveWeights(revenue=1.0))
    assert (zero["item_idx"] == relevance["item_idx"]).all() and (zero["reasons"] == relevance["reasons"]).all()
    changed = (revenue["item_idx"] != relevance["item_idx"]).any(1)
    assert changed.mean() > 0.5
    price = funnel.catalog.value
    assert price[revenue["item_idx"]].mean() > price[relevance["item_idx"]].mean()
    value_reason = VALUE_REASON.encode()
    assert (revenue["reasons"] == value_reason).any() and not (relevance["reasons"] == value_reason).any()
