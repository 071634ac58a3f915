"""Amazon Beauty (S3-Rec sequences): documented counts on the real file and format errors on tiny files."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import polars as pl
import pytest
from recstack.preprocessing.datasets.amazon import load_amazon_beauty
from recstack.preprocessing.datasets.text_files import read_sequences
from recstack.preprocessing.schema import EVENT_COLUMNS, InputError


@pytest.fixture(scope="module")
def beauty(data_dir: Path):
    return load_amazon_beauty(data_dir / "amazon-beauty-s3rec")


@pytest.mark.shared_data
def test_beauty_documented_counts_and_schema(beauty):
    assert beauty.name == "beauty"
    assert beauty.has_timestamps is False
    assert beauty.items is None
    assert dict(beauty.events.schema) == EVENT_COLUMNS
    assert beauty.events.height == 198_502
    assert beauty.events["user_id"].n_unique() == 22_363
    assert beauty.events["item_id"].n_unique() == 12_101
    assert beauty.events["event_type"].unique().to_list() == ["purchase"]
    assert beauty.events["weight"].unique().to_list() == [1.0]


@pytest.mark.shared_data
def test_beauty_sequences_keep_file_order(beauty, data_dir: Path):
    with open(data_dir / "amazon-beauty-s3rec" / "Beauty.txt") as f:
        first_user, *first_items = f.readline().split()
    user = beauty.events.filter(pl.col("user_id") == first_user)
    assert user["item_id"].to_list() == first_items
    ts = beauty.events["timestamp"]
    assert ts[0] == datetime(2000, 1, 1)
    assert (ts.diff().drop_nulls().dt.total_seconds() == 1).all()
    # min 5 per user (5-core)
    assert beauty.events.group_by("user_id").len()["len"].min() >= 5


def test_beauty_tiny_file(tmp_path: Path):
    (tmp_path / "Beauty.txt").write_text("7 3 1  2\n\n8 1\n")
    ds = load_amazon_beauty(tmp_path)
    assert ds.events.select("user_id", "item_id").rows() == [("7", "3"), ("7", "1"), ("7", "2"), ("8", "1")]
    assert ds.events["timestamp"].to_list() == [datetime(2000, 1, 1, 0, 0, s) for s in range(4)]


def test_beauty_user_without_items_names_line(tmp_path: Path):
    (tmp_path / "Beauty.txt").write_text("1 2 3\n\n2\n")
    with pytest.raises(InputError, match=r"Beauty\.txt: line 3: expected a user id followed by"):
        load_amazon_beauty(tmp_path)


def test_beauty_empty_or_missing_file(tmp_path: Path):
    with pytest.raises(InputError, match="file not found"):
        load_amazon_beauty(tmp_path)
    (tmp_path / "Beauty.txt").write_text("\n \n")
    with pytest.raises(InputError, match="empty"):
        load_amazon_beauty(tmp_path)


def test_read_sequences_line_numbers(tmp_path: Path):
    path = tmp_path / "seq.txt"
    path.write_text("a b\n\n c\td \n")
    df = read_sequences(path)
    assert df["line"].to_list() == [1, 3]
    assert df["tokens"].to_list() == [["a", "b"], ["c", "d"]]
