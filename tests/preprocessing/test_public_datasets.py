"""The pipeline on the real public files: the split the papers use, and every dataset end to end."""

import polars as pl
import pytest
from recstack.preprocessing.datasets import load_dataset
from recstack.preprocessing.pipeline import preprocess
from recstack.preprocessing.workflow import Workflow

pytestmark = pytest.mark.shared_data


def _sasrec_partition(path):
    """SASRec's data_partition, written out plainly: last item test, second last valid, short users train."""
    sequences: dict[str, list[str]] = {}
    for line in path.read_text().splitlines():
        user, item = line.split()
        sequences.setdefault(user, []).append(item)
    valid = {u: s[-2] for u, s in sequences.items() if len(s) >= 3}
    test = {u: s[-1] for u, s in sequences.items() if len(s) >= 3}
    return sequences, valid, test


def test_ml_1m_leave_one_out_is_exactly_sasrecs_partition(data_dir, tmp_path):
    sequences, valid, test = _sasrec_partition(data_dir / "ml-1m-sasrec" / "ml-1m.txt")
    manifest = preprocess(load_dataset("ml-1m", data_dir=data_dir), tmp_path, progress=False)
    c = manifest.counts
    assert (c["raw_users"], c["raw_items"], c["raw_events"]) == (6040, 3416, 999_611)
    assert c["test_users"] == c["valid_users"] == len(test) == 6040
    assert c["train_events"] == 999_611 - 2 * 6040
    items = Workflow.load(tmp_path / "workflow").vocabularies["item_id"]

    def decoded(name):
        frame = pl.read_parquet(tmp_path / name)
        return frame.with_columns(items.decode(frame["targets"].list.first()).alias("target"))

    got_test = decoded("eval_test.parquet")
    assert dict(zip(got_test["user_id"], got_test["target"], strict=True)) == test
    got_valid = decoded("eval_valid.parquet")
    assert dict(zip(got_valid["user_id"], got_valid["target"], strict=True)) == valid
    user = got_test.filter(user_id="1").row(0, named=True)
    history = items.decode(pl.Series(user["history"])).to_list()
    assert history == sequences["1"][:-1]  # the whole history: evaluation filters every seen item


@pytest.mark.parametrize("name", ["ml-100k", "beauty", "diginetica"])
def test_public_dataset_preprocesses_end_to_end(name, data_dir, tmp_path):
    data = load_dataset(name, data_dir=data_dir)
    manifest = preprocess(data, tmp_path, progress=False)
    c = manifest.counts
    assert c["train_events"] + c["valid_events"] + c["test_events"] == c["raw_events"] == data.events.height
    assert c["test_users"] > 0 and manifest.vocabulary_sizes["item_id"] == c["raw_items"] + 2


def test_ml_100k_temporal_split_uses_real_time(data_dir, tmp_path):
    from recstack.preprocessing.config import SplitConfig

    manifest = preprocess(load_dataset("ml-100k", data_dir=data_dir), tmp_path,
                          split=SplitConfig(strategy="temporal", test_fraction=0.1, valid_fraction=0.1),
                          progress=False)
    test = pl.read_parquet(tmp_path / "events_test.parquet")
    train = pl.read_parquet(tmp_path / "events_train.parquet")
    assert train["timestamp"].max() < test["timestamp"].min()
    assert manifest.split["test_start"].startswith("1998")
