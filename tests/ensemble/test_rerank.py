import numpy as np
import pytest
from recstack.ensemble.catalog import BusinessRules
from recstack.ensemble.config import ObjectiveWeights, RerankConfig
from recstack.ensemble.rerank import POPULAR_REASON, VALUE_REASON, Reranker, pack
from recstack.ensemble.retrieve import ANN, COVISITED, EXPLORATION, PADDING, TRENDING

from .conftest import make_catalog

PURE = RerankConfig(mmr_lambda=1.0, max_category_run=100, freshness_boost=0.0)


def run(reranker, candidates, scores, sources=None, anchors=None, history=(), exclude=(), limit=10):
    candidates = np.asarray(candidates, dtype=np.int64)
    sources = np.full(len(candidates), ANN, np.int8) if sources is None else np.asarray(sources, np.int8)
    anchors = np.full(len(candidates), -1, np.int64) if anchors is None else np.asarray(anchors, np.int64)
    return reranker(candidates, np.asarray(scores, np.float32), sources, anchors, np.asarray(history, np.int64),
                    np.asarray(exclude, np.int64), limit)


def test_relevance_order_when_no_rule_applies(small_catalog):
    out = run(Reranker(small_catalog, PURE), [2, 5, 7, 9], [0.1, 3.0, 2.0, 1.0])
    assert out.items.tolist() == [5, 7, 9, 2]
    assert out.scores[0] == pytest.approx(1.0) and out.scores[-1] == pytest.approx(0.0)
    assert np.all(np.diff(out.scores) <= 0)


def test_seen_excluded_unavailable_padding_and_duplicates_are_dropped():
    catalog = make_catalog(list("abcdefgh"), rules=BusinessRules(unavailable=("i6",)))
    out = run(Reranker(catalog, PURE), [2, 3, 4, 5, 6, 7, 0, 3], [9, 8, 7, 6, 5, 4, 99, 8],
              sources=[ANN] * 6 + [PADDING, ANN], history=[0, 0, 2], exclude=[4, 0])
    assert out.items.tolist() == [3, 5, 7]


def test_limit_and_short_lists(small_catalog):
    reranker = Reranker(small_catalog, PURE)
    assert len(run(reranker, [2, 5, 7, 9, 10], [5, 4, 3, 2, 1], limit=2).items) == 2
    assert len(run(reranker, [2, 5], [5, 4], limit=10).items) == 2


def test_no_three_of_a_category_in_a_row(small_catalog):
    # Items 2, 3, 4 are category "a" and the three best; 9, 10, 11 are "d".
    reranker = Reranker(small_catalog, RerankConfig(mmr_lambda=1.0, freshness_boost=0.0))
    out = run(reranker, [2, 3, 4, 9, 10, 11], [10, 9, 8, 7, 6, 5])
    categories = small_catalog.categories[out.items].tolist()
    assert categories == ["a", "a", "d", "a", "d", "d"]
    runs = [categories[i:i + 3] for i in range(len(categories) - 2)]
    assert not any(len(set(r)) == 1 for r in runs)


def test_a_single_category_still_fills_the_list(small_catalog):
    reranker = Reranker(small_catalog, RerankConfig(mmr_lambda=1.0))
    assert run(reranker, [2, 3, 4], [3, 2, 1]).items.tolist() == [2, 3, 4]


def test_mmr_pushes_a_near_duplicate_down():
    vectors = np.eye(6)
    vectors[3] = vectors[2] + 0.01  # item 3 is a near copy of item 2
    catalog = make_catalog(list("abcd"), vectors=vectors)
    candidates, scores = [2, 3, 4, 5], [1.0, 0.99, 0.9, 0.0]
    assert run(Reranker(catalog, PURE), candidates, scores).items.tolist()[:2] == [2, 3]
    diverse = RerankConfig(mmr_lambda=0.5, max_category_run=100, freshness_boost=0.0)
    assert run(Reranker(catalog, diverse), candidates, scores).items.tolist()[:2] == [2, 4]


def test_freshness_boost_lifts_new_items():
    catalog = make_catalog(list("abc"), is_new=[3])
    scores = [1.0, 0.97, 0.0]
    assert run(Reranker(catalog, PURE), [2, 3, 4], scores).items.tolist()[:2] == [2, 3]
    boosted = RerankConfig(mmr_lambda=1.0, max_category_run=100, freshness_boost=0.1)
    out = run(Reranker(catalog, boosted), [2, 3, 4], scores)
    assert out.items.tolist()[:2] == [3, 2]
    assert out.reasons[0] == "new arrival"


def test_promoted_items_take_their_slots_unless_seen_or_excluded():
    rules = BusinessRules(promoted=(("i9", 1), ("i8", 0), ("unknown", 2)))
    catalog = make_catalog(list("abcdefgh"), rules=rules)
    reranker = Reranker(catalog, PURE)
    out = run(reranker, [2, 3, 4, 5], [4, 3, 2, 1])
    assert out.items.tolist() == [8, 9, 2, 3, 4, 5]
    assert out.reasons[:2] == ["promoted", "promoted"]
    out = run(reranker, [2, 3, 4, 5], [4, 3, 2, 1], history=[8], exclude=[9])
    assert out.items.tolist() == [2, 3, 4, 5]


def test_promoted_item_among_candidates_is_not_repeated():
    catalog = make_catalog(list("abcd"), rules=BusinessRules(promoted=(("i2", 2),)))
    out = run(Reranker(catalog, PURE), [2, 3, 4, 5], [4, 3, 2, 1])
    assert out.items.tolist() == [3, 4, 2, 5]


def test_every_item_gets_a_reason():
    vectors = np.eye(10)
    vectors[7] = vectors[3] + 0.1  # item 7 looks like item 3 of the history
    catalog = make_catalog(list("abcdefgh"), vectors=vectors, is_new=[6])
    out = run(Reranker(catalog, PURE), [4, 5, 6, 7], [4, 3, 2, 1],
              sources=[COVISITED, TRENDING, EXPLORATION, ANN], anchors=[2, -1, -1, -1], history=[0, 2, 3])
    assert out.reasons == ["customers who viewed Title 2 also viewed this", "trending in d", "new arrival",
                           "because you viewed Title 3"]
    cold = run(Reranker(catalog, PURE), [4], [1.0], history=[0, 0])
    assert cold.reasons == [POPULAR_REASON]


def test_pack_pads_to_the_longest_list(small_catalog):
    reranker = Reranker(small_catalog, PURE)
    packed = pack([run(reranker, [2, 5, 7], [3, 2, 1]), run(reranker, [9], [1])], small_catalog, "m1")
    assert packed["item_idx"].tolist() == [[2, 5, 7], [9, -1, -1]]
    assert packed["item_ids"][1].tolist() == [b"i9", b"", b""]
    assert packed["model_version"].tolist() == [[b"m1"], [b"m1"]]


@pytest.mark.parametrize("bad", [{"mmr_lambda": 1.5}, {"max_category_run": 0}, {"pool": 0}])
def test_config_is_validated(bad):
    with pytest.raises(ValueError):
        RerankConfig(**bad)


def test_promoted_items_still_show_when_the_list_runs_short():
    catalog = make_catalog(list("abcdefgh"), rules=BusinessRules(promoted=(("i9", 5),)))
    out = run(Reranker(catalog, PURE), [2, 3, 4], [3, 2, 1], limit=10)
    assert out.items.tolist() == [2, 3, 4, 9] and out.reasons[-1] == "promoted"


def test_category_runs_count_the_promoted_slot_ahead():
    # Items 2, 3, 4 share category "a"; item 4 is promoted into position 2.
    catalog = make_catalog(["a", "a", "a", "b", "b"], rules=BusinessRules(promoted=(("i4", 2),)))
    reranker = Reranker(catalog, RerankConfig(mmr_lambda=1.0, freshness_boost=0.0))
    out = run(reranker, [2, 3, 5, 6], [10, 9, 2, 1])
    categories = catalog.categories[out.items].tolist()
    assert out.items[2] == 4
    assert not any(len(set(categories[i:i + 3])) == 1 for i in range(len(categories) - 2)), categories


# Multi-objective re-rank: items 2..7 ranked 2 > 3 > ... > 7 by the ranker; item 6 is dear and likely bought.
OBJECTIVE_CANDIDATES, OBJECTIVE_SCORES = [2, 3, 4, 5, 6, 7], [6.0, 5.0, 4.0, 3.0, 2.0, 1.0]
PRICES = [0, 0, 10, 10, 10, 10, 200, 10]
P = np.array([[0.3, 0.1, 0.1]] * 4 + [[0.3, 0.2, 0.6], [0.3, 0.1, 0.1]])  # (click, cart, purchase) per candidate


def priced(rules=None):
    catalog = make_catalog(list("abcdef"), rules=rules)
    catalog.value = np.array(PRICES, dtype=np.float32)
    return catalog


def run_objectives(reranker, weights, probabilities=P):
    candidates = np.asarray(OBJECTIVE_CANDIDATES, np.int64)
    return reranker(candidates, np.asarray(OBJECTIVE_SCORES, np.float32), np.full(6, ANN, np.int8),
                    np.full(6, -1, np.int64), np.asarray([4], np.int64), np.zeros(0, np.int64), 6, probabilities,
                    weights)


def test_zero_objective_weights_keep_the_relevance_order_and_scores():
    reranker = Reranker(priced(), PURE)
    before = run(reranker, OBJECTIVE_CANDIDATES, OBJECTIVE_SCORES, history=[4], limit=6)
    for weights in (None, ObjectiveWeights(), np.zeros((1, 4))):
        after = run_objectives(reranker, weights)
        assert after.items.tolist() == before.items.tolist() == [2, 3, 5, 6, 7]
        assert after.scores.tolist() == before.scores.tolist() and after.reasons == before.reasons
    assert run_objectives(reranker, ObjectiveWeights(revenue=5.0), probabilities=None).items.tolist() == [2, 3, 5, 6, 7]


def test_a_revenue_weight_moves_a_dear_item_likely_bought_up_and_says_so():
    reranker = Reranker(priced(), PURE)
    out = run_objectives(reranker, ObjectiveWeights(revenue=0.2))
    assert out.items.tolist()[0] == 6  # 0.2 · P(purchase) 0.6 · 200/10 = 2.4 over the best relevance 1.0
    assert out.reasons[0] == VALUE_REASON and VALUE_REASON not in out.reasons[1:]
    # The built weights apply to a request that names none.
    assert run_objectives(Reranker(priced(), RerankConfig(mmr_lambda=1.0, max_category_run=100, freshness_boost=0.0,
                                                          objectives=ObjectiveWeights(revenue=0.2))),
                          None).items.tolist()[0] == 6


def test_an_out_of_stock_item_is_never_promoted_by_the_objectives():
    reranker = Reranker(priced(BusinessRules(unavailable=("i6",))), PURE)
    assert 6 not in run_objectives(reranker, ObjectiveWeights(revenue=100.0, purchase=100.0)).items.tolist()


def test_users_of_different_weights_in_one_batch_get_their_own_lists():
    reranker = Reranker(priced(), PURE)
    candidates = np.tile(np.asarray(OBJECTIVE_CANDIDATES, np.int64), (2, 1))
    both = reranker.batch(candidates, np.tile(np.asarray(OBJECTIVE_SCORES, np.float32), (2, 1)),
                          np.full((2, 6), ANN, np.int8), np.full((2, 6), -1, np.int64), np.full((2, 1), 4),
                          np.zeros((2, 1), np.int64), [6, 6], np.stack([P, P]),
                          np.stack([ObjectiveWeights().rows()[0], ObjectiveWeights(revenue=0.2).rows()[0]]))
    for got, weights in zip(both, (ObjectiveWeights(), ObjectiveWeights(revenue=0.2)), strict=True):
        alone = run_objectives(reranker, weights)
        assert got.items.tolist() == alone.items.tolist() and got.reasons == alone.reasons
    assert both[0].items.tolist() != both[1].items.tolist()
