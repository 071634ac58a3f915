from datetime import timedelta

import polars as pl
from recstack.preprocessing.config import WorkflowConfig
from recstack.preprocessing.item_stats import cooccurrence, item_popularity
from recstack.preprocessing.workflow import Workflow

from tests.preprocessing.helpers import SHOP, T0, events


def _setup(log=SHOP):
    wf = Workflow(WorkflowConfig()).fit(log)
    return wf, wf.transform(log)


def _by_raw(wf, frame, column="item_idx"):
    return frame.with_columns(wf.vocabularies["item_id"].decode(frame[column]).alias(column))


def test_popularity_counts_users_weights_and_recent_window():
    wf, enc = _setup()
    stats = _by_raw(wf, item_popularity(enc.lazy(), T0 + timedelta(minutes=210), recent_days=10 / 1440).collect())
    hat = stats.filter(pl.col("item_idx") == "hat").row(0, named=True)
    assert hat["events"] == 4 and hat["users"] == 3
    assert hat["view_count"] == 2 and hat["purchase_count"] == 1 and hat["add_to_cart_count"] == 1
    assert hat["popularity"] == 1 + 8 + 1 + 4  # view, purchase, view, add_to_cart
    assert hat["recent_events"] == 1 and hat["recent_popularity"] == 8  # only alice's purchase at +201 min


def test_also_viewed_pairs_only_within_session_and_window():
    log = events([("u", "a", "view", 0), ("u", "a", "click", 1), ("u", "b", "view", 2), ("u", "c", "view", 3),
                  ("u", "d", "view", 4), ("u", "e", "view", 500)])
    wf, enc = _setup(log)
    pairs = _by_raw(wf, _by_raw(wf, cooccurrence(enc.lazy(), window=2, top_k=10).collect(), "item_a"), "item_b")
    viewed = {(r["item_a"], r["item_b"]): r["count"] for r in pairs.filter(kind="also_viewed").iter_rows(named=True)}
    # Steps a b c d (the a-click repeat collapsed); "e" is another session.
    assert viewed == {("a", "b"): 1, ("b", "a"): 1, ("a", "c"): 1, ("c", "a"): 1, ("b", "c"): 1, ("c", "b"): 1,
                      ("b", "d"): 1, ("d", "b"): 1, ("c", "d"): 1, ("d", "c"): 1}


def test_bought_together_uses_cart_and_purchase_events_and_keeps_top_k():
    wf, enc = _setup()
    pairs = _by_raw(wf, _by_raw(wf, cooccurrence(enc.lazy(), window=3, top_k=1).collect(), "item_a"), "item_b")
    bought = pairs.filter(kind="bought_together")
    assert set(zip(bought["item_a"], bought["item_b"], strict=True)) == {("hat", "shoe"), ("shoe", "hat")}
    assert pairs.group_by("kind", "item_a").len()["len"].max() == 1
