"""User-supplied events/items files: good inputs in every accepted form and precise errors on bad ones."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import polars as pl
import pytest
from recstack.preprocessing.datasets.events_files import load_events_files
from recstack.preprocessing.schema import EVENT_COLUMNS, ITEM_COLUMNS, InputError

HEADER = "user_id,item_id,event_type,timestamp,weight\n"
ROW = "u1,i1,view,2024-05-01T12:30:00,1\n"

def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def _events(tmp_path: Path, body: str, header: str = HEADER, name: str = "shop.csv") -> Path:
    return _write(tmp_path / name, header + body)


def test_iso_csv_with_items_referencing_unknown_items(tmp_path: Path):
    events = _events(tmp_path, ROW + "u2,i9,purchase,2024-05-01 12:31:00,2\nu2,i1,Click,2024-05-02,\n")
    items = _write(tmp_path / "catalog.csv", "item_id,title,price,created_at\ni1,A,1.5,2020-01-01\ni2,B,2,\n")
    ds = load_events_files(events, items)
    assert ds.name == "shop"
    assert ds.has_timestamps is True
    assert dict(ds.events.schema) == EVENT_COLUMNS
    assert ds.events.rows() == [
        ("u1", "i1", "view", datetime(2024, 5, 1, 12, 30), 1.0),
        ("u2", "i9", "purchase", datetime(2024, 5, 1, 12, 31), 2.0),
        ("u2", "i1", "click", datetime(2024, 5, 2), 1.0),  # event type case-folded, empty weight = 1
    ]
    assert dict(ds.items.schema) == ITEM_COLUMNS
    assert ds.items.rows() == [
        ("i1", None, None, "A", 1.5, datetime(2020, 1, 1)),
        ("i2", None, None, "B", 2.0, None),
    ]


def test_tsv_without_weight_column(tmp_path: Path):
    text = "user_id\titem_id\tevent_type\ttimestamp\nu1\ti1\tview\t2024-05-01T12:30:00\n"
    path = _write(tmp_path / "log.tsv", text)
    ds = load_events_files(path)
    assert ds.name == "log"
    assert ds.items is None
    assert ds.events["weight"].to_list() == [1.0]


def test_iso_with_offset_becomes_utc(tmp_path: Path):
    ds = load_events_files(_events(tmp_path, "u1,i1,view,2024-05-01T12:30:00+02:00,1\n"))
    assert ds.events["timestamp"].to_list() == [datetime(2024, 5, 1, 10, 30)]


def test_parquet_with_unix_seconds_and_milliseconds(tmp_path: Path):
    path = tmp_path / "events.parquet"
    pl.DataFrame({
        "user_id": [1, 2], "item_id": [10, 11], "event_type": ["view", "add_to_cart"],
        "timestamp": [1_700_000_000, 1_700_000_000_123], "weight": [1, 3],
    }).write_parquet(path)
    items = tmp_path / "items.parquet"
    pl.DataFrame({"item_id": [10, 12], "brand": ["acme", None]}).write_parquet(items)
    ds = load_events_files(path, items)
    assert ds.name == "events"
    assert dict(ds.events.schema) == EVENT_COLUMNS
    assert ds.events.rows() == [
        ("1", "10", "view", datetime(2023, 11, 14, 22, 13, 20), 1.0),
        ("2", "11", "add_to_cart", datetime(2023, 11, 14, 22, 13, 20, 123_000), 3.0),
    ]
    assert ds.items["item_id"].to_list() == ["10", "12"]
    assert dict(ds.items.schema) == ITEM_COLUMNS


def test_parquet_with_datetimes(tmp_path: Path):
    path = tmp_path / "events.parquet"
    pl.DataFrame({"user_id": ["a"], "item_id": ["b"], "event_type": ["rating"],
                  "timestamp": [datetime(2024, 5, 1, 12, 30)], "weight": [4.5]}).write_parquet(path)
    ds = load_events_files(path)
    assert ds.events.row(0) == ("a", "b", "rating", datetime(2024, 5, 1, 12, 30), 4.5)


def test_csv_with_unix_seconds(tmp_path: Path):
    ds = load_events_files(_events(tmp_path, "u1,i1,view,1700000000,1\nu1,i2,view,1700000060,1\n"))
    assert ds.events["timestamp"].to_list() == [datetime(2023, 11, 14, 22, 13, 20),
                                                datetime(2023, 11, 14, 22, 14, 20)]


def test_csv_with_unix_milliseconds(tmp_path: Path):
    ds = load_events_files(_events(tmp_path, "u1,i1,view,1700000000123,1\n"))
    assert ds.events["timestamp"].to_list() == [datetime(2023, 11, 14, 22, 13, 20, 123_000)]


def test_csv_mixing_unix_seconds_and_iso(tmp_path: Path):
    ds = load_events_files(_events(tmp_path, "u1,i1,view,1700000000,1\n" + ROW))
    assert ds.events["timestamp"].to_list() == [datetime(2023, 11, 14, 22, 13, 20),
                                                datetime(2024, 5, 1, 12, 30)]


@pytest.mark.parametrize(("header", "pattern"), [
    ("user_id,itemid,event_type,timestamp,weight\n",
     r"missing required column\(s\) 'item_id' \(did you mean 'itemid'\?\)"),
    ("user_id,item_id,event_type,time_stamp,weight\n",
     r"missing required column\(s\) 'timestamp' \(did you mean 'time_stamp'\?\)"),
    ("user_id,item_id,event_type,timestamp,wieght\n",
     r"unknown column\(s\) 'wieght' \(did you mean 'weight'\?\)"),
])
def test_misspelled_column_suggests_name(tmp_path: Path, header: str, pattern: str):
    with pytest.raises(InputError, match=r"shop\.csv: " + pattern):
        load_events_files(_events(tmp_path, ROW, header=header))


def test_empty_file_and_header_only(tmp_path: Path):
    with pytest.raises(InputError, match=r"shop\.csv: cannot be read as csv"):
        load_events_files(_events(tmp_path, "", header=""))
    with pytest.raises(InputError, match=r"shop\.csv: no events \(the table is empty\)"):
        load_events_files(_events(tmp_path, ""))


def test_missing_file(tmp_path: Path):
    with pytest.raises(InputError, match=r"absent\.csv: file not found"):
        load_events_files(tmp_path / "absent.csv")


def test_unknown_event_type_names_line_and_value(tmp_path: Path):
    with pytest.raises(InputError, match=r"shop\.csv: column 'event_type', line 3: unknown event type 'like"):
        load_events_files(_events(tmp_path, ROW + "u1,i2,like,2024-05-01T12:31:00,1\n"))


def test_unparsable_timestamp_names_line_and_value(tmp_path: Path):
    pattern = r"shop\.csv: column 'timestamp', line 4: timestamp 'yesterday' does not"
    with pytest.raises(InputError, match=pattern):
        load_events_files(_events(tmp_path, ROW + ROW + "u1,i2,view,yesterday,1\n"))


def test_empty_timestamp_names_line(tmp_path: Path):
    with pytest.raises(InputError, match=r"shop\.csv: column 'timestamp', line 3: value is empty"):
        load_events_files(_events(tmp_path, ROW + "u1,i2,view,,1\n"))


def test_non_numeric_weight_names_line(tmp_path: Path):
    with pytest.raises(InputError, match=r"shop\.csv: column 'weight', line 3: 'heavy' is not a number"):
        load_events_files(_events(tmp_path, ROW + "u1,i2,view,2024-05-01T12:31:00,heavy\n"))


def test_empty_user_id_names_line(tmp_path: Path):
    with pytest.raises(InputError, match=r"shop\.csv: column 'user_id', line 2: value is empty"):
        load_events_files(_events(tmp_path, ",i1,view,2024-05-01T12:30:00,1\n"))


def test_parquet_errors_name_rows(tmp_path: Path):
    path = tmp_path / "events.parquet"
    pl.DataFrame({"user_id": ["a", "b"], "item_id": ["x", "y"], "event_type": ["view", "view"],
                  "timestamp": ["2024-05-01", "garbage"]}).write_parquet(path)
    with pytest.raises(InputError, match=r"events\.parquet: column 'timestamp', row 2: timestamp 'garbage'"):
        load_events_files(path)


def test_duplicate_item_rows_name_both_lines(tmp_path: Path):
    items = _write(tmp_path / "items.csv", "item_id,title\ni1,A\ni2,B\ni1,C\n")
    pattern = r"items\.csv: duplicate item rows: item_id 'i1' appears on line 2 and line 4"
    with pytest.raises(InputError, match=pattern):
        load_events_files(_events(tmp_path, ROW), items)


def test_items_errors(tmp_path: Path):
    events = _events(tmp_path, ROW)
    pattern = r"items\.csv: missing required column\(s\) 'item_id' \(did you mean 'itemid"
    with pytest.raises(InputError, match=pattern):
        load_events_files(events, _write(tmp_path / "items.csv", "itemid,title\ni1,A\n"))
    with pytest.raises(InputError, match=r"items\.csv: column 'price', line 3: 'cheap' is not a number"):
        load_events_files(events, _write(tmp_path / "items.csv", "item_id,price\ni1,2\ni2,cheap\n"))
    with pytest.raises(InputError, match=r"items\.csv: no items"):
        load_events_files(events, _write(tmp_path / "items.csv", "item_id,title\n"))


def test_only_unparsable_timestamps_raise_input_error(tmp_path: Path):
    with pytest.raises(InputError, match=r"line 2: timestamp 'yesterday' does not parse"):
        load_events_files(_events(tmp_path, "u1,i1,view,yesterday,1\n"))


def test_items_created_at_as_unix_seconds(tmp_path: Path):
    items = _write(tmp_path / "items.csv", "item_id,created_at\ni1,1700000000\n")
    ds = load_events_files(_events(tmp_path, ROW), items)
    assert ds.items["created_at"].to_list() == [datetime(2023, 11, 14, 22, 13, 20)]


@pytest.mark.parametrize("value", ["nan", "inf", "1e30"])
def test_non_finite_timestamp_names_line(tmp_path: Path, value: str):
    with pytest.raises(InputError, match=rf"column 'timestamp', line 3: timestamp '{value}'"):
        load_events_files(_events(tmp_path, ROW + f"u1,i1,view,{value},1\n"))


def test_blank_timestamp_names_line(tmp_path: Path):
    with pytest.raises(InputError, match=r"column 'timestamp', line 3: value is empty"):
        load_events_files(_events(tmp_path, ROW + "u1,i1,view,  ,1\n"))
