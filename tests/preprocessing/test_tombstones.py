"""Forgotten users: left out of every later build, and taken out of prepared data already written."""

import polars as pl
from recstack.preprocessing.layout import PreparedLayout
from recstack.preprocessing.pipeline import preprocess
from recstack.preprocessing.schema import RawDataset
from recstack.preprocessing.tombstones import TombstoneWatch, add_tombstones, forget_prepared, read_tombstones

from tests.preprocessing.helpers import CATALOG, SHOP


def tables_naming(root, text: str) -> list[str]:
    return [str(p.relative_to(root)) for p in root.rglob("*.parquet") if text in repr(pl.read_parquet(p).rows())]


def test_a_build_leaves_tombstoned_users_out(tmp_path):
    stones = tmp_path / "tombstones.txt"
    assert add_tombstones(stones, ["bob"]) == 1 and add_tombstones(stones, ["bob"]) == 0
    assert "bob" not in stones.read_text()  # the list names nobody
    manifest = preprocess(RawDataset("shop", SHOP, CATALOG), tmp_path / "out", progress=False,
                          tombstones=read_tombstones(stones))
    assert manifest.dropped["forgotten_users"] == 1
    assert tables_naming(tmp_path / "out", "bob") == []
    assert tables_naming(tmp_path / "out", "carol")  # everyone else is there


def test_forgetting_rewrites_prepared_data_keyed_by_id_or_index(tmp_path):
    preprocess(RawDataset("shop", SHOP, CATALOG), tmp_path / "data", progress=False)
    layout = PreparedLayout(tmp_path / "data")
    users = pl.read_parquet(layout.vocabulary("user_id"))
    carol = users.filter(pl.col("raw") == "carol")["index"][0]
    before = sum(pl.read_parquet(layout.events(s)).filter(pl.col("user_idx") == carol).height
                 for s in ("train", "valid", "test"))
    assert before > 0 and tables_naming(tmp_path, "carol")
    (tmp_path / "onnx").mkdir()
    (tmp_path / "onnx" / "manifest.json").write_text("{}")  # a model export's manifest: not a prepared dataset
    assert PreparedLayout.find(tmp_path) == [layout]
    removed = forget_prepared(layout.root, ["carol"])
    assert removed >= before + 1  # her events, her rows in the sequence tables, her vocabulary entry
    assert tables_naming(tmp_path, "carol") == []
    assert all(pl.read_parquet(layout.events(s)).filter(pl.col("user_idx") == carol).height == 0
               for s in ("train", "valid", "test"))
    assert forget_prepared(layout.root, ["carol"]) == 0


def test_a_watch_sees_new_tombstones(tmp_path):
    stones = tmp_path / "tombstones.txt"
    watch = TombstoneWatch(stones, refresh_s=0.0)
    assert "alice" not in watch
    add_tombstones(stones, ["alice"])
    assert "alice" in watch and "bob" not in watch
    assert "alice" not in TombstoneWatch(None)
