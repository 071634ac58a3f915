import numpy as np
import pytest
from recstack.ensemble.catalog import BusinessRules
from recstack.ensemble.config import RetrieveConfig
from recstack.ensemble.retrieve import ANN, COVISITED, EXPLORATION, PADDING, TRENDING, Retriever

from .conftest import flat_index, make_catalog


def catalog_of(n=40, **kwargs):
    return make_catalog([f"c{i % 4}" for i in range(n)], dim=16, **kwargs)


def retrieve(catalog, config, history, query=None):
    retriever = Retriever(catalog, flat_index(catalog), config)
    query = catalog.vectors[history[-1]] if query is None else query
    return retriever(query[None, :], np.asarray([history], dtype=np.int64))


def test_candidates_are_unique_unseen_and_available():
    catalog = catalog_of(rules=BusinessRules(unavailable=("i7", "i8")))
    history = [0, 0, 3, 9, 12]
    candidates, sources, anchors = retrieve(catalog, RetrieveConfig(candidates=20), history)
    assert candidates.shape == sources.shape == anchors.shape == (1, 20)
    picked = candidates[0][sources[0] != PADDING]
    assert len(picked) == 20 and len(set(picked.tolist())) == 20
    assert not set(picked.tolist()) & {0, 1, 3, 9, 12, 7, 8}


def test_small_catalog_pads_with_marked_slots():
    catalog = catalog_of(n=10)
    candidates, sources, _ = retrieve(catalog, RetrieveConfig(candidates=30), [2, 3])
    assert (sources[0] != PADDING).sum() == 8  # 10 items minus the 2 seen
    assert (candidates[0][sources[0] == PADDING] == 0).all()


def test_sources_covisitation_trending_exploration_and_ann():
    catalog = catalog_of(is_new=[30, 31, 32], covisited={5: [20, 21], 6: [22]})
    config = RetrieveConfig(candidates=25, covisitation_share=0.2, trending=3, exploration=2)
    candidates, sources, anchors = retrieve(catalog, config, [0, 6, 5])
    by_item = dict(zip(candidates[0].tolist(), zip(sources[0].tolist(), anchors[0].tolist(), strict=True),
                       strict=True))
    assert by_item[20] == (COVISITED, 5) and by_item[21] == (COVISITED, 5) and by_item[22] == (COVISITED, 6)
    trending = [i for i, (s, _) in by_item.items() if s == TRENDING]
    assert trending == [2, 3, 4]  # most popular first (popularity falls with the index)
    assert sum(s == EXPLORATION for s, _ in by_item.values()) == 2
    assert (sources[0] == ANN).sum() == 25 - 3 - 3 - 2


def test_exploration_places_new_items_by_their_vectors():
    catalog = catalog_of(is_new=[30, 31, 32, 33])
    config = RetrieveConfig(candidates=10, covisitation_share=0, trending=0, exploration=1)
    for target in (31, 33):
        candidates, sources, _ = retrieve(catalog, config, [2], query=catalog.vectors[target])
        assert candidates[0][sources[0] == EXPLORATION].tolist() == [target]


def test_ann_finds_the_nearest_items():
    catalog = catalog_of()
    config = RetrieveConfig(candidates=5, covisitation_share=0, trending=0, exploration=0)
    query = catalog.vectors[17]
    candidates, _, _ = retrieve(catalog, config, [2], query=query)
    expected = [i for i in np.argsort(-(catalog.vectors @ query)) if i not in (0, 1, 2)][:5]
    assert candidates[0].tolist() == expected


@pytest.mark.parametrize("bad", [{"candidates": 0}, {"covisitation_share": 2.0}, {"trending": -1}])
def test_config_is_validated(bad):
    with pytest.raises(ValueError):
        RetrieveConfig(**bad)


def test_negative_indices_are_refused_and_newer_items_read_as_oov():
    catalog = catalog_of(n=10)
    retriever = Retriever(catalog, flat_index(catalog), RetrieveConfig(candidates=5))
    with pytest.raises(ValueError, match="negative"):
        retriever(catalog.vectors[[2]], np.asarray([[0, -1]]))
    newer, _, _ = retriever(catalog.vectors[[2]], np.asarray([[3, len(catalog) + 5]]))
    same, _, _ = retriever(catalog.vectors[[2]], np.asarray([[3, 1]]))
    assert np.array_equal(newer, same)


def test_exploration_fills_its_slots_even_when_other_sources_took_new_items():
    catalog = catalog_of(is_new=[20, 21, 22, 23, 24], covisited={5: [20, 21]})
    config = RetrieveConfig(candidates=20, covisitation_share=0.2, trending=0, exploration=3)
    candidates, sources, _ = retrieve(catalog, config, [5])
    assert (sources[0] == EXPLORATION).sum() == 3


def test_repeated_anchors_count_once_and_share_the_budget():
    catalog = catalog_of(covisited={5: list(range(10, 30)), 6: list(range(30, 40))})
    config = RetrieveConfig(candidates=40, covisitation_share=0.5, trending=0, exploration=0)
    _, sources, anchors = retrieve(catalog, config, [6, 5, 5, 5, 5, 1])
    covisited = anchors[0][sources[0] == COVISITED].tolist()
    assert len(covisited) == 20 and covisited.count(5) == 10 and covisited.count(6) == 10


def test_a_batch_merges_each_user_as_if_alone():
    # Co-visitation over several anchors (a share one anchor leaves goes to the next), trending, exploration and
    # ANN for users of different histories in one batch: each row as that user retrieved alone.
    catalog = catalog_of(n=60, is_new=[50, 51, 52, 53], covisited={5: [20, 21, 22, 23], 6: [22, 24], 9: [25]})
    config = RetrieveConfig(candidates=30, covisitation_share=0.3, covisitation_anchors=2, trending=4, exploration=2)
    retriever = Retriever(catalog, flat_index(catalog), config)
    histories = np.asarray([[0, 9, 6, 5], [5, 6, 5, 6], [0, 0, 0, 2], [3, 4, 9, 50]])
    queries = catalog.vectors[[17, 30, 50, 2]]
    together = retriever(queries, histories)
    alone = [retriever(queries[[row]], histories[[row]]) for row in range(len(histories))]
    for part, rows in zip(together, zip(*alone, strict=True), strict=True):
        assert np.array_equal(part, np.concatenate(rows))
    candidates, sources, anchors = (part[0] for part in together)
    assert candidates[sources == COVISITED].tolist() == [20, 21, 22, 23, 24]  # anchor 5 leaves 1 of its 5 to 6
    assert set(anchors[sources == COVISITED].tolist()) == {5, 6}
