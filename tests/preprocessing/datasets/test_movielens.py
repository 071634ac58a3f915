"""MovieLens loaders: documented counts on the real files (read in place) and format errors on tiny files."""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from pathlib import Path

import polars as pl
import pytest
from recstack.preprocessing.datasets.movielens import load_ml_1m_sasrec, load_ml_100k
from recstack.preprocessing.datasets.text_files import SYNTHETIC_START
from recstack.preprocessing.schema import EVENT_COLUMNS, ITEM_COLUMNS, InputError

EPOCH = datetime(1970, 1, 1)


@pytest.fixture(scope="module")
def ml_1m(data_dir: Path):
    return load_ml_1m_sasrec(data_dir / "ml-1m-sasrec")


@pytest.fixture(scope="module")
def ml_100k(data_dir: Path):
    return load_ml_100k(data_dir / "ml-100k")


@pytest.mark.shared_data
def test_ml_1m_documented_counts_and_schema(ml_1m):
    assert ml_1m.name == "ml-1m"
    assert ml_1m.has_timestamps is False
    assert dict(ml_1m.events.schema) == EVENT_COLUMNS
    assert ml_1m.events.height == 999_611
    assert ml_1m.events["user_id"].n_unique() == 6_040
    assert ml_1m.events["item_id"].n_unique() == 3_416
    assert ml_1m.events["event_type"].unique().to_list() == ["rating"]
    assert ml_1m.events["weight"].unique().to_list() == [1.0]


@pytest.mark.shared_data
def test_ml_1m_keeps_file_order_as_time(ml_1m, data_dir: Path):
    ts = ml_1m.events["timestamp"]
    assert ts[0] == SYNTHETIC_START == datetime(2000, 1, 1)
    assert (ts.diff().drop_nulls().dt.total_seconds() == 1).all()
    with open(data_dir / "ml-1m-sasrec" / "ml-1m.txt") as f:
        head = [f.readline().split() for _ in range(50)]
    first_user_items = [item for user, item in head if user == "1"]
    user_1 = ml_1m.events.filter(pl.col("user_id") == "1")
    assert user_1["item_id"].head(len(first_user_items)).to_list() == first_user_items
    assert user_1["timestamp"].is_sorted()


@pytest.mark.shared_data
def test_ml_1m_items_have_titles_genres_and_years(ml_1m):
    items = ml_1m.items
    assert dict(items.schema) == ITEM_COLUMNS
    assert items.height == 3_416
    assert items["item_id"].n_unique() == 3_416
    assert set(ml_1m.events["item_id"].unique()) == set(items["item_id"])
    assert items["title"].null_count() == 0
    assert items["category"].null_count() == 0
    assert items["brand"].null_count() == items["price"].null_count() == 3_416
    year_in_title = items["title"].str.extract(r"\((\d{4})\)$", 1).cast(pl.Int32)
    assert (items["created_at"].dt.year() == year_in_title).all()
    assert items["created_at"].dt.strftime("%m-%d").unique().to_list() == ["01-01"]


@pytest.mark.shared_data
def test_ml_1m_loads_fast(data_dir: Path):
    start = time.perf_counter()
    load_ml_1m_sasrec(data_dir / "ml-1m-sasrec")
    assert time.perf_counter() - start < 2.0


@pytest.mark.shared_data
def test_ml_100k_documented_counts_ratings_and_real_times(ml_100k, data_dir: Path):
    events = ml_100k.events
    assert ml_100k.name == "ml-100k"
    assert ml_100k.has_timestamps is True
    assert dict(events.schema) == EVENT_COLUMNS
    assert events.height == 100_000
    assert events["user_id"].n_unique() == 943
    assert events["item_id"].n_unique() == 1_682
    counts = dict(events["weight"].value_counts().iter_rows())
    assert counts == {1.0: 6_110, 2.0: 11_370, 3.0: 27_145, 4.0: 34_174, 5.0: 21_201}
    assert set(events["timestamp"].dt.year().unique()) == {1997, 1998}
    assert events["timestamp"].min() == EPOCH + timedelta(seconds=874_724_710)
    assert events["timestamp"].max() == EPOCH + timedelta(seconds=893_286_638)
    with open(data_dir / "ml-100k" / "u.data") as f:
        user, item, rating, unix = f.readline().split("\t")
    first = events.row(0, named=True)
    assert (first["user_id"], first["item_id"], first["weight"]) == (user, item, float(rating))
    assert first["timestamp"] == EPOCH + timedelta(seconds=int(unix))


@pytest.mark.shared_data
def test_ml_100k_items(ml_100k, data_dir: Path):
    items = ml_100k.items
    assert dict(items.schema) == ITEM_COLUMNS
    assert items.height == 1_682
    assert items["title"].null_count() == 0
    assert items["category"].null_count() == 0
    genre_lines = (data_dir / "ml-100k" / "u.genre").read_text().splitlines()
    genres = {line.split("|")[0] for line in genre_lines if line}
    assert set(items["category"].unique()) <= genres
    raw = (data_dir / "ml-100k" / "u.item").read_bytes().decode("latin-1").splitlines()
    assert items["created_at"].null_count() == sum(line.split("|")[2] == "" for line in raw)
    assert items["created_at"].drop_nulls().dt.year().min() >= 1900


def _write_ml_1m(folder: Path, pairs: str, movies: str = "10::Alpha (1999)::Drama|Comedy\n20::Beta::Horror\n",
                 ) -> Path:
    folder.mkdir(exist_ok=True)
    (folder / "ml-1m.txt").write_text(pairs)
    (folder / "sas_to_original_items.txt").write_text("1 10\n2 20\n3 30\n")
    (folder / "movies.dat").write_bytes(movies.encode("latin-1"))
    return folder


def test_ml_1m_format_on_tiny_files(tmp_path: Path):
    folder = _write_ml_1m(tmp_path, "1 1\n1 3\n2 2\n", "10::Caf\xe9 (1999)::Drama|Comedy\n20::Beta::Horror\n")
    ds = load_ml_1m_sasrec(folder)
    assert ds.events["item_id"].to_list() == ["1", "3", "2"]
    assert ds.events["timestamp"].to_list() == [datetime(2000, 1, 1, 0, 0, s) for s in range(3)]
    items = ds.items.sort("item_id")
    assert items["title"].to_list() == ["Caf\xe9 (1999)", "Beta", None]  # item 3's movie is not in movies.dat
    assert items["category"].to_list() == ["Drama", "Horror", None]
    assert items["created_at"].to_list() == [datetime(1999, 1, 1), None, None]


def test_ml_1m_bad_line_names_file_and_line(tmp_path: Path):
    folder = _write_ml_1m(tmp_path, "1 1\n1\n")
    with pytest.raises(InputError, match=r"ml-1m\.txt: column 'item_id', line 2"):
        load_ml_1m_sasrec(folder)


def test_ml_1m_missing_file(tmp_path: Path):
    with pytest.raises(InputError, match="ml-1m.txt: file not found"):
        load_ml_1m_sasrec(tmp_path)


def _write_ml_100k(folder: Path, release: str = "01-Jan-1995") -> Path:
    (folder / "u.data").write_text("1\t10\t4\t881250949\n2\t10\t1\t891717742\n")
    (folder / "u.genre").write_text("unknown|0\nAction|1\nDrama|2\n\n")
    (folder / "u.item").write_text(f"10|Gamma (1995)|{release}||http://x|0|0|1\n11|Delta (1996)|||http://y|0|1|1\n")
    return folder


def test_ml_100k_format_on_tiny_files(tmp_path: Path):
    ds = load_ml_100k(_write_ml_100k(tmp_path))
    assert ds.events["weight"].to_list() == [4.0, 1.0]
    assert ds.events["timestamp"].to_list() == [EPOCH + timedelta(seconds=s) for s in (881250949, 891717742)]
    assert ds.items["category"].to_list() == ["Drama", "Action"]
    assert ds.items["created_at"].to_list() == [datetime(1995, 1, 1), None]


def test_ml_100k_bad_release_date(tmp_path: Path):
    with pytest.raises(InputError, match=r"u\.item: release date, line 1: '1995/01/01'"):
        load_ml_100k(_write_ml_100k(tmp_path, release="1995/01/01"))


def test_ml_100k_non_numeric_rating(tmp_path: Path):
    _write_ml_100k(tmp_path)
    (tmp_path / "u.data").write_text("1\t10\tfour\t881250949\n")
    with pytest.raises(InputError, match=r"u\.data"):
        load_ml_100k(tmp_path)
