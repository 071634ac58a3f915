from datetime import timedelta

import polars as pl
import pytest
from recstack.preprocessing.config import WorkflowConfig
from recstack.preprocessing.schema import EVENT_TYPES
from recstack.preprocessing.vocabulary import OOV, PAD
from recstack.preprocessing.workflow import Workflow

from tests.preprocessing.helpers import CATALOG, SHOP, T0, events


@pytest.fixture
def fitted() -> Workflow:
    return Workflow(WorkflowConfig(min_token_count=1)).fit(SHOP, CATALOG)


def test_fit_save_reload_transform_gives_identical_output(fitted, tmp_path):
    fitted.save(tmp_path / "wf")
    reloaded = Workflow.load(tmp_path / "wf")
    assert reloaded.config == fitted.config
    assert reloaded.transform(SHOP).equals(fitted.transform(SHOP))
    assert reloaded.item_features(CATALOG).equals(fitted.item_features(CATALOG))


def test_raw_and_encoded_ids_map_both_ways(fitted):
    out = fitted.transform(SHOP)
    items = fitted.vocabularies["item_id"]
    users = fitted.vocabularies["user_id"]
    assert items.decode(out["item_idx"]).to_list() == out["item_id"].to_list()
    assert users.decode(out["user_idx"]).to_list() == out["user_id"].to_list()
    assert (out["item_idx"] >= 2).all()


def test_new_data_with_unseen_ids_goes_to_oov(fitted):
    new = events([("dave", "shoe", "view", 500), ("dave", "kite", "view", 501)])
    out = fitted.transform(new)
    assert out["user_idx"].to_list() == [OOV, OOV]
    assert out["item_idx"][0] >= 2 and out["item_idx"][1] == OOV


def test_event_type_weights_multiply_the_event_weight():
    config = WorkflowConfig(event_weights={"view": 1, "click": 3, "add_to_cart": 5, "purchase": 10, "rating": 2})
    log = events([("u", "a", "purchase", 0), ("u", "b", "view", 1)]).with_columns(
        pl.Series("weight", [0.5, 2.0], dtype=pl.Float32))
    out = Workflow(config).fit(log).transform(log)
    assert out["weight"].to_list() == [5.0, 2.0]
    assert out["event_code"].to_list() == [EVENT_TYPES.index("purchase"), EVENT_TYPES.index("view")]


def test_sessions_split_on_inactivity_gap_per_user(fitted):
    out = fitted.transform(SHOP)
    alice = out.filter(pl.col("user_id") == "alice")
    # Gap of 194 minutes before "belt" starts a second session; positions restart.
    assert alice["session_id"].n_unique() == 2
    assert alice["session_position"].to_list() == [0, 1, 2, 3, 4, 0, 1]
    assert out["session_id"].n_unique() == 4  # alice 2, bob 1, carol 1


def test_time_features(fitted):
    out = fitted.transform(events([("alice", "shoe", "view", 60 * 24 * 2 + 30)]))
    ts = T0 + timedelta(days=2, minutes=30)
    assert out["hour"][0] == ts.hour and out["weekday"][0] == ts.isoweekday()
    assert out["day"][0] == pytest.approx(2 + 30 / 1440, abs=1e-4)


def test_output_sorted_by_user_then_time_whatever_the_input_order(fitted):
    shuffled = SHOP.sample(fraction=1.0, shuffle=True, seed=3)
    out = fitted.transform(shuffled)
    assert out.select("user_id", "timestamp").equals(
        fitted.transform(SHOP).select("user_id", "timestamp"))


def test_item_features_cover_cold_catalog_items(fitted):
    feats = fitted.item_features(CATALOG)
    assert feats["item_idx"].to_list() == list(range(fitted.vocabularies["item_id"].size))
    scarf = feats.filter(pl.col("item_id") == "scarf").row(0, named=True)
    assert scarf["category_idx"] >= 2 and scarf["brand_idx"] >= 2
    assert scarf["price_bucket"] == PAD  # unknown price
    assert len(scarf["title_tokens"]) == 3 and OOV not in scarf["title_tokens"]
    pad, oov = feats.row(0, named=True), feats.row(1, named=True)
    assert pad["item_id"] is None and oov["category_idx"] == PAD


def test_price_buckets_follow_price_order(fitted):
    feats = fitted.item_features(CATALOG).filter(pl.col("price").is_not_null()).sort("price")
    buckets = feats["price_bucket"].to_list()
    assert buckets == sorted(buckets) and buckets[0] >= 1 and buckets[-1] > buckets[0]


def test_frequency_threshold_keeps_catalog_items():
    wf = Workflow(WorkflowConfig(min_item_count=3)).fit(SHOP, CATALOG)
    assert set(wf.vocabularies["item_id"].table["raw"]) == {"shoe", "hat", "sock", "belt", "scarf"}
    no_catalog = Workflow(WorkflowConfig(min_item_count=3)).fit(SHOP)
    assert set(no_catalog.vocabularies["item_id"].table["raw"]) == {"shoe", "hat"}


def test_unfitted_workflow_refuses_to_transform():
    with pytest.raises(RuntimeError, match="not fitted"):
        Workflow(WorkflowConfig()).transform(SHOP)


def test_load_from_a_folder_without_workflow_names_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="workflow.json"):
        Workflow.load(tmp_path)


def test_config_rejects_unknown_event_type_weights():
    with pytest.raises(ValueError, match="purchse"):
        WorkflowConfig(event_weights={"view": 1, "click": 1, "add_to_cart": 1, "purchse": 1, "rating": 1})
