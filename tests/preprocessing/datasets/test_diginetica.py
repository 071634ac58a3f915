"""DIGINETICA: the SR-GNN split (documented counts, test prefixes) and the raw CIKM CSV format."""

from __future__ import annotations

import csv
from datetime import datetime, timedelta
from pathlib import Path

import polars as pl
import pytest
from recstack.preprocessing.datasets.diginetica import load_diginetica, load_diginetica_raw
from recstack.preprocessing.schema import EVENT_COLUMNS, InputError

HEADER = "session_id;user_id;item_id;timeframe;eventdate\n"


@pytest.fixture(scope="module")
def diginetica(data_dir: Path):
    return load_diginetica(data_dir / "diginetica-srgnn")


@pytest.mark.shared_data
def test_diginetica_documented_counts_and_schema(diginetica):
    events = diginetica.events
    assert diginetica.name == "diginetica"
    assert diginetica.has_timestamps is False
    assert diginetica.items is None
    assert dict(events.schema) == EVENT_COLUMNS
    assert events.height == 906_140
    assert events["user_id"].n_unique() == 186_670
    assert events["event_type"].unique().to_list() == ["view"]
    assert events["weight"].unique().to_list() == [1.0]
    # Every one of the 43,097 items occurs in training; the test set adds none.
    assert events["item_id"].n_unique() == 43_097
    item_ids = events["item_id"].cast(pl.Int64)
    assert (item_ids.min(), item_ids.max()) == (1, 43_097)


@pytest.mark.shared_data
def test_diginetica_test_prefixes(diginetica):
    prefixes = diginetica.extras["test_prefixes"]
    assert dict(prefixes.schema) == {"prefix": pl.List(pl.String), "target": pl.String}
    assert prefixes.height == 60_858
    assert prefixes["prefix"].list.len().min() >= 1
    test_items = set(prefixes["prefix"].explode()) | set(prefixes["target"])
    train_items = set(diginetica.events["item_id"].unique())
    assert test_items <= train_items
    assert len(test_items | train_items) == 43_097
    # A test session of length L gives L-1 prefixes, exactly one of them of length 1.
    sessions = int((prefixes["prefix"].list.len() == 1).sum())
    assert sessions == 15_963
    assert prefixes.height + sessions == 76_821  # test clicks
    assert diginetica.events.height + prefixes.height + sessions == 982_961  # all clicks


@pytest.mark.shared_data
def test_diginetica_sessions_follow_file_lines(diginetica, data_dir: Path):
    folder = data_dir / "diginetica-srgnn"
    with open(folder / "train_sessions.txt") as f:
        first, second = f.readline().split(), f.readline().split()
    events = diginetica.events
    assert events.filter(pl.col("user_id") == "s1")["item_id"].to_list() == first
    assert events.filter(pl.col("user_id") == "s2")["item_id"].to_list() == second
    assert events["timestamp"][0] == datetime(2000, 1, 1)
    assert (events["timestamp"].diff().drop_nulls().dt.total_seconds() == 1).all()
    with open(folder / "test_prefixes.tsv") as f:
        prefix, target = f.readline().rstrip("\n").split("\t")
    row = diginetica.extras["test_prefixes"].row(0, named=True)
    assert (row["prefix"], row["target"]) == (prefix.split(), target)


@pytest.mark.shared_data
def test_diginetica_raw_sample(data_dir: Path):
    path = data_dir / "diginetica-srgnn" / "raw" / "sample_train-item-views.csv"
    ds = load_diginetica_raw(path)
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f, delimiter=";"))
    assert ds.name == "diginetica-raw"
    assert ds.has_timestamps is True
    assert dict(ds.events.schema) == EVENT_COLUMNS
    assert ds.events.height == len(rows) == 12_391
    assert ds.events["user_id"].n_unique() == len({r["session_id"] for r in rows})
    assert ds.events["item_id"].n_unique() == len({r["item_id"] for r in rows})
    first = rows[0]
    expected = datetime.fromisoformat(first["eventdate"]) + timedelta(milliseconds=int(first["timeframe"]))
    assert ds.events.row(0) == (f"s{first['session_id']}", first["item_id"], "view", expected, 1.0)
    assert set(ds.events["timestamp"].dt.year().unique()) == {2016}


def _raw(tmp_path: Path, body: str, header: str = HEADER) -> Path:
    path = tmp_path / "views.csv"
    path.write_text(header + body)
    return path


def test_diginetica_raw_tiny(tmp_path: Path):
    body = "5;NA;81;1500;2016-05-09\n5;NA;82;0;2016-05-09\n9;3;81;60000;2016-05-10\n"
    ds = load_diginetica_raw(_raw(tmp_path, body))
    assert ds.events.select("user_id", "item_id").rows() == [("s5", "81"), ("s5", "82"), ("s9", "81")]
    assert ds.events["timestamp"].to_list() == [
        datetime(2016, 5, 9, 0, 0, 1, 500_000), datetime(2016, 5, 9), datetime(2016, 5, 10, 0, 1)]


@pytest.mark.parametrize(("body", "pattern"), [
    ("1;NA;81;12ab;2016-05-09\n", r"views\.csv: column 'timeframe', line 2: '12ab' is not an integer"),
    ("1;NA;81;10;2016-05-09\n1;NA;82;10;09/05/2016\n",
     r"views\.csv: column 'eventdate', line 3: '09/05/2016'"),
    ("1;NA;81;10;2016-05-09\n1;NA;;10;2016-05-09\n", r"views\.csv: column 'item_id', line 3: value is empty"),
    ("1;NA;81;10;2016-02-30\n", r"column 'eventdate', line 2: '2016-02-30' is not a date"),
])
def test_diginetica_raw_bad_rows_name_file_column_line(tmp_path: Path, body: str, pattern: str):
    with pytest.raises(InputError, match=pattern):
        load_diginetica_raw(_raw(tmp_path, body))


def test_diginetica_raw_misspelled_column_suggests_name(tmp_path: Path):
    path = _raw(tmp_path, "1;NA;81;10;2016-05-09\n", header="sesion_id;user_id;item_id;timeframe;eventdate\n")
    pattern = r"missing required column\(s\) 'session_id' \(did you mean 'sesion_id'"
    with pytest.raises(InputError, match=pattern):
        load_diginetica_raw(path)


def test_diginetica_raw_empty_and_missing(tmp_path: Path):
    with pytest.raises(InputError, match="file not found"):
        load_diginetica_raw(tmp_path / "absent.csv")
    with pytest.raises(InputError, match=r"views\.csv: cannot be read"):
        load_diginetica_raw(_raw(tmp_path, "", header=""))
    with pytest.raises(InputError, match=r"views\.csv: no rows"):
        load_diginetica_raw(_raw(tmp_path, ""))


def test_diginetica_bad_test_prefix_line(tmp_path: Path):
    (tmp_path / "train_sessions.txt").write_text("1 2\n3\n")
    (tmp_path / "test_prefixes.tsv").write_text("1 2\t3\n1 2 3\n")
    with pytest.raises(InputError, match=r"test_prefixes\.tsv: line 2"):
        load_diginetica(tmp_path)
    (tmp_path / "test_prefixes.tsv").write_text("1 2\t3\n")
    ds = load_diginetica(tmp_path)
    assert ds.events["user_id"].to_list() == ["s1", "s1", "s2"]
    assert ds.extras["test_prefixes"].rows() == [(["1", "2"], "3")]
