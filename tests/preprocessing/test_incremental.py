"""Incremental preprocessing: a prepared folder extended with newer events and items keeps every index."""

import shutil

import polars as pl
import pytest
from recstack.preprocessing.datasets import load_dataset
from recstack.preprocessing.incremental import extend_prepared, prepared_events, unseen_events
from recstack.preprocessing.layout import PreparedLayout
from recstack.preprocessing.pipeline import preprocess
from recstack.preprocessing.schema import RawDataset
from recstack.preprocessing.tombstones import digest, forget_prepared


@pytest.fixture(scope="module")
def shop(tmp_path_factory):
    data = load_dataset("synthetic", n_events=12_000, seed=5)
    events = data.events.sort("timestamp")
    folder = tmp_path_factory.mktemp("incremental")
    preprocess(RawDataset("shop", events.head(9_000), data.items), folder / "v1", progress=False)
    return data, events, folder


def indices(folder, name: str) -> pl.DataFrame:
    return pl.read_parquet(PreparedLayout(folder).vocabulary(name)).select("raw", "index")


def test_known_users_and_items_keep_their_index_and_new_ones_are_appended(shop):
    data, events, folder = shop
    added = pl.DataFrame({"item_id": ["api-2", "api-1"], "title": ["Second", "First"], "price": [1.0, 2.0]})
    ext = extend_prepared(folder / "v1", events, added, folder / "v2")
    assert ext.new_events.height == events.height - 9_000
    for name in ("user_id", "item_id", "category"):
        old, new = indices(folder / "v1", name), indices(folder / "v2", name)
        kept = old.join(new, on="raw", suffix="_new")
        assert kept.height == old.height and (kept["index"] == kept["index_new"]).all(), name
    items = indices(folder / "v2", "item_id")
    n_old = PreparedLayout(folder / "v1").read_manifest().n_items
    # Items added through the API come first among the new ones, in the order the facade numbered them.
    assert items.filter(pl.col("raw").is_in(["api-2", "api-1"])).sort("index")["raw"].to_list() == ["api-2", "api-1"]
    assert items.filter(pl.col("raw") == "api-2")["index"][0] == n_old
    new_items = set(items.filter(pl.col("index") >= n_old)["raw"])
    assert ext.new_items == len(new_items) and {"api-1", "api-2"} <= new_items
    # Every event of the log is in the extended folder once, with its raw weight.
    assert prepared_events(folder / "v2").height == events.height
    back = prepared_events(folder / "v2").sort("timestamp", "user_id", "item_id")["weight"]
    assert back.to_list() == pytest.approx(events.sort("timestamp", "user_id", "item_id")["weight"].to_list(),
                                           rel=1e-5)


def test_extending_with_a_log_already_held_adds_nothing(shop, tmp_path):
    _, events, folder = shop
    extend_prepared(folder / "v1", events.head(9_000), None, tmp_path / "same")
    assert unseen_events(prepared_events(tmp_path / "same"), events.head(9_000)).height == 0
    twice = pl.concat([events.tail(100), events.tail(100)])
    assert unseen_events(prepared_events(folder / "v1"), twice).height == 100


def test_a_forgotten_users_events_in_the_log_are_never_new(shop, tmp_path):
    _, events, folder = shop
    user = events.tail(1)["user_id"][0]
    tombstones = frozenset({digest(user)})
    first = extend_prepared(folder / "v1", events, None, tmp_path / "v2", tombstones=tombstones)
    assert user not in first.new_events["user_id"].to_list()
    again = extend_prepared(tmp_path / "v2", events, None, tmp_path / "v3", tombstones=tombstones)
    assert again.new_events.height == 0  # so a loop does not retrain on them every round


def test_indices_freed_by_forgetting_a_user_are_never_given_to_another(shop, tmp_path):
    _, events, folder = shop
    shutil.copytree(folder / "v1", tmp_path / "v1")
    users = pl.read_parquet(PreparedLayout(tmp_path / "v1").vocabulary("user_id")).sort("index")
    forget_prepared(tmp_path / "v1", [users["raw"][-1]])  # the user with the largest index
    extend_prepared(tmp_path / "v1", events, None, tmp_path / "v2")
    extended = indices(tmp_path / "v2", "user_id")
    assert extended["index"].is_unique().all() and extended["index"].min() > 1
    newcomers = extended.filter(~pl.col("raw").is_in(users["raw"].to_list()))["index"]
    assert newcomers.len() > 0 and newcomers.min() > users["index"].max()
