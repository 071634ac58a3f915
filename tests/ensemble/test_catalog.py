import json

import numpy as np
import polars as pl
import pytest
from recstack.ensemble.catalog import BusinessRules, Catalog


@pytest.fixture(scope="module")
def catalog(trained_shop) -> Catalog:
    data, models = trained_shop
    vectors = np.load(models / "onnx" / "two_tower" / "item_embeddings.npy")
    withdrawn = pl.read_parquet(data / "items.parquet").sort("item_idx")["item_id"][5]
    return Catalog.build(data, vectors, BusinessRules(unavailable=(withdrawn, "not-an-item")))


def test_rows_follow_the_item_vocabulary(catalog, trained_shop):
    items = pl.read_parquet(trained_shop[0] / "items.parquet").sort("item_idx")
    assert len(catalog) == items.height
    assert catalog.item_ids[2:].tolist() == items["item_id"].to_list()[2:]
    assert catalog.item_ids[0] is None and not catalog.available[:2].any()
    assert catalog.index_of([catalog.item_ids[7], "nope"]).tolist() == [7, -1]


def test_rules_withdraw_items_and_unknown_ids_are_ignored(catalog):
    assert not catalog.available[5]
    assert catalog.available.sum() == len(catalog) - 3


def test_new_items_are_recent_ones(catalog, trained_shop):
    items = pl.read_parquet(trained_shop[0] / "items.parquet").sort("item_idx")
    age = items["age_days"].to_numpy()
    assert catalog.is_new.any()
    assert (age[catalog.is_new] <= 14).all() and (age[2:][~catalog.is_new[2:]] > 14).all()


def test_covisitation_lists_are_most_frequent_first(catalog, trained_shop):
    pairs = pl.read_parquet(trained_shop[0] / "cooccurrence.parquet").filter(pl.col("kind") == "also_viewed")
    item = int(pairs.group_by("item_a").len().sort("len", descending=True)["item_a"][0])
    neighbours, counts = catalog.covisitation["also_viewed"].neighbours(item)
    expected = pairs.filter(pl.col("item_a") == item).sort(["count", "item_b"], descending=[True, False])
    assert neighbours.tolist() == expected["item_b"].to_list()
    assert np.all(np.diff(counts) <= 0)
    assert len(catalog.covisitation["also_viewed"].neighbours(10**9)[0]) == 0


def test_trending_is_recent_popularity_order(catalog):
    top = catalog.trending(5)
    assert np.all(np.diff(catalog.popularity[top]) <= 0) and catalog.available[top].all()


def test_save_and_load_round_trip(catalog, tmp_path):
    loaded = Catalog.load(catalog.save(tmp_path))
    for field in ("item_ids", "titles", "categories", "category_idx", "is_new", "available", "popularity",
                  "vectors"):
        assert np.array_equal(getattr(loaded, field), getattr(catalog, field)), field
    assert loaded.rules == catalog.rules
    co = loaded.covisitation["bought_together"]
    assert np.array_equal(co.indices, catalog.covisitation["bought_together"].indices)


def test_vectors_must_match_the_catalog(trained_shop):
    with pytest.raises(ValueError, match="do not belong together"):
        Catalog.build(trained_shop[0], np.zeros((3, 8), np.float32))


def test_rules_file_is_validated(tmp_path):
    path = tmp_path / "rules.json"
    path.write_text(json.dumps({"unavailable": ["a"], "promoted": [{"item_id": "b", "position": 2}]}))
    assert BusinessRules.load(path) == BusinessRules(("a",), (("b", 2),))
    path.write_text(json.dumps({"blocked": ["a"]}))
    with pytest.raises(ValueError, match="unknown keys"):
        BusinessRules.load(path)
    path.write_text(json.dumps({"promoted": [{"item_id": "b", "position": -1}]}))
    with pytest.raises(ValueError, match="must not be negative"):
        BusinessRules.load(path)
    assert BusinessRules.load(None) == BusinessRules()


def test_rules_file_mistakes_are_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        BusinessRules.load(tmp_path / "rulez.json")
    path = tmp_path / "rules.json"
    for bad, message in (({"unavailable": "i1"}, "list of item ids"),
                         ({"promoted": [{"item_id": "a", "position": 1}, {"item_id": "a", "position": 2}]},
                          "items must be distinct"),
                         ({"promoted": [{"item_id": "a", "position": 1}, {"item_id": "b", "position": 1}]},
                          "positions must be distinct")):
        path.write_text(json.dumps(bad))
        with pytest.raises(ValueError, match=message):
            BusinessRules.load(path)
