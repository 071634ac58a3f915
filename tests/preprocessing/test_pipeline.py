import json

import polars as pl
import pytest
from recstack.preprocessing.config import SplitConfig, WorkflowConfig
from recstack.preprocessing.layout import Manifest, PreparedLayout
from recstack.preprocessing.pipeline import format_summary, preprocess
from recstack.preprocessing.schema import InputError, RawDataset
from recstack.preprocessing.workflow import Workflow

from tests.preprocessing.helpers import CATALOG, SHOP, events

LAYOUT = ["events_train.parquet", "events_valid.parquet", "events_test.parquet", "sequences_train.parquet",
          "eval_valid.parquet", "eval_test.parquet", "items.parquet", "item_stats.parquet", "cooccurrence.parquet"]


@pytest.fixture
def shop() -> RawDataset:
    return RawDataset("shop", SHOP, CATALOG)


def test_writes_the_documented_layout_with_a_manifest_describing_each_file(shop, tmp_path):
    manifest = preprocess(shop, tmp_path, progress=False)
    layout = PreparedLayout(tmp_path)
    assert Manifest.from_json(json.loads(layout.manifest.read_text())) == manifest == layout.read_manifest()
    assert sorted(manifest.files) == sorted(LAYOUT)
    for name, info in manifest.files.items():
        frame = pl.read_parquet(tmp_path / name)
        assert frame.height == info["rows"]
        assert {c: str(t) for c, t in frame.schema.items()} == info["schema"]
    assert manifest.vocabulary_sizes["item_id"] == 5 + 2
    assert (tmp_path / "workflow" / "workflow.json").exists()
    assert manifest.engine == "cpu" and len(manifest.fingerprint) == 16


def test_saved_workflow_reloads_and_reproduces_the_encoded_events(shop, tmp_path):
    preprocess(shop, tmp_path, progress=False)
    wf = Workflow.load(tmp_path / "workflow")
    parts = pl.concat([pl.read_parquet(tmp_path / f"events_{s}.parquet") for s in ("train", "valid", "test")])
    again = wf.transform(SHOP)
    key = ["user_id", "timestamp", "item_id"]
    assert parts.sort(key).equals(again.select(parts.columns).sort(key))


def test_leave_one_out_outputs_match_the_hand_worked_split(shop, tmp_path):
    preprocess(shop, tmp_path, progress=False)
    wf = Workflow.load(tmp_path / "workflow")
    decode = wf.vocabularies["item_id"].decode
    test = pl.read_parquet(tmp_path / "eval_test.parquet").filter(user_id="alice").row(0, named=True)
    assert decode(pl.Series(test["targets"])).to_list() == ["hat"]
    assert decode(pl.Series(test["history"])).to_list() == ["shoe", "hat", "sock", "belt"]
    seqs = pl.read_parquet(tmp_path / "sequences_train.parquet")
    assert sorted(seqs["user_id"]) == ["alice", "bob", "carol"]
    counts = PreparedLayout(tmp_path).read_manifest().counts
    assert counts["valid_users"] == counts["test_users"] == 2  # bob has only two steps


def test_every_raw_event_is_kept_or_counted_as_dropped(tmp_path):
    log = pl.concat([SHOP, events([("dave", "rare", "view", 30), ("dave", "shoe", "view", 31)])])
    manifest = preprocess(RawDataset("shop", log), tmp_path, WorkflowConfig(min_item_count=2),
                          SplitConfig(strategy="temporal", test_fraction=0.2, valid_fraction=0.2), progress=False)
    c = manifest.counts
    kept = c["train_events"] + c["valid_events"] + c["test_events"]
    assert kept + sum(manifest.dropped.values()) == c["raw_events"] == log.height
    # Train (before 09:21) has shoe x4, hat x2, sock x2: all kept. "rare" and "belt" only occur in test.
    assert manifest.dropped == {"train_events_on_oov_items": 0, "valid_events_on_oov_items": 0,
                                   "test_events_on_oov_items": 2}
    assert "dropped:" in format_summary(manifest) and "nothing" not in format_summary(manifest)


def test_runs_are_reproducible(shop, tmp_path):
    first = preprocess(shop, tmp_path / "a", progress=False)
    second = preprocess(RawDataset("shop", SHOP.reverse(), CATALOG), tmp_path / "b", progress=False)
    assert first.fingerprint == second.fingerprint
    for name in LAYOUT:
        assert pl.read_parquet(tmp_path / "a" / name).equals(pl.read_parquet(tmp_path / "b" / name)), name


def test_temporal_split_on_order_only_data_is_refused(tmp_path):
    order_only = RawDataset("seq", SHOP, has_timestamps=False)
    with pytest.raises(InputError, match="no real timestamps"):
        preprocess(order_only, tmp_path, split=SplitConfig(strategy="temporal"), progress=False)


def test_extras_are_written_beside_the_layout(tmp_path):
    extra = pl.DataFrame({"prefix": [["shoe"]], "target": ["hat"]})
    preprocess(RawDataset("shop", SHOP, extras={"test_prefixes": extra}), tmp_path, progress=False)
    assert pl.read_parquet(tmp_path / "extras" / "test_prefixes.parquet").equals(extra)


def test_read_manifest_of_a_non_dataset_folder_says_what_to_run(tmp_path):
    with pytest.raises(FileNotFoundError, match="recstack preprocess"):
        PreparedLayout(tmp_path).read_manifest()
