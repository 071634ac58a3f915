import numpy as np
import pytest
from recstack.ensemble.catalog import BusinessRules
from recstack.ensemble.lookups import SimilarItems, trending
from recstack.ensemble.rerank import POPULAR_REASON

from .conftest import flat_index, make_catalog


@pytest.fixture
def catalog():
    return make_catalog([f"c{i % 3}" for i in range(20)], dim=16, covisited={4: [9, 12, 4]},
                        rules=BusinessRules(unavailable=("i12",)))


def test_similar_items_are_the_nearest_vectors(catalog):
    out = SimilarItems(catalog, flat_index(catalog))(item=7, limit=4)
    expected = [i for i in np.argsort(-(catalog.vectors @ catalog.vectors[7])) if i not in (0, 1, 7)][:4]
    assert out.items.tolist() == expected
    assert out.reasons == ["similar to Title 7"] * 4


def test_also_viewed_uses_cooccurrence_then_tops_up(catalog):
    out = SimilarItems(catalog, flat_index(catalog))(item=4, limit=3, kind="also_viewed")
    assert out.items[0] == 9  # 12 is unavailable, 4 is the item itself
    assert out.reasons[0] == "customers who viewed Title 4 also viewed this"
    assert len(out.items) == 3 and 4 not in out.items and 12 not in out.items
    assert out.reasons[1:] == ["similar to Title 4"] * 2


def test_unknown_items_and_kinds_are_refused(catalog):
    similar = SimilarItems(catalog, flat_index(catalog))
    with pytest.raises(ValueError, match="unknown item"):
        similar(item=0, limit=3)
    with pytest.raises(ValueError, match="unknown kind"):
        similar(item=4, limit=3, kind="hated_together")


def test_trending_overall_and_in_a_category(catalog):
    overall = trending(catalog, 3)
    assert overall.items.tolist() == [2, 3, 4] and overall.reasons == [POPULAR_REASON] * 3
    assert overall.scores[0] == 1.0 and np.all(np.diff(overall.scores) < 0)
    in_c1 = trending(catalog, 2, "c1")
    assert catalog.categories[in_c1.items].tolist() == ["c1", "c1"]
    assert in_c1.reasons == ["trending in c1"] * 2
    assert len(trending(catalog, 5, "no such category").items) == 0
