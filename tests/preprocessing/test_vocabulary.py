import polars as pl
import pytest
from recstack.preprocessing.vocabulary import FIRST_INDEX, OOV, Vocabulary


def test_most_frequent_first_and_ties_broken_by_raw_value():
    v = Vocabulary.fit("item_id", pl.Series(["c", "b", "a", "b", "c", "d"]))
    assert v.table["raw"].to_list() == ["b", "c", "a", "d"]
    assert v.table["index"].to_list() == [2, 3, 4, 5]
    assert v.size == 4 + FIRST_INDEX


def test_threshold_sends_rare_values_to_oov_unless_always_kept():
    v = Vocabulary.fit("item_id", pl.Series(["a", "a", "b", "c"]), min_count=2, always_keep=pl.Series(["c", "new"]))
    encoded = v.encode(pl.Series(["a", "b", "c", "new", "never-seen"])).to_list()
    assert encoded[1] == OOV and encoded[4] == OOV
    assert len({encoded[0], encoded[2], encoded[3]}) == 3 and min(encoded[0], encoded[2], encoded[3]) >= 2
    assert dict(zip(v.table["raw"], v.table["count"], strict=True)) == {"a": 2, "c": 1, "new": 0}


def test_decode_inverts_encode_and_unknown_indices_give_null():
    raw = pl.Series(["x", "y", "z", "x"])
    v = Vocabulary.fit("user_id", raw)
    assert v.decode(v.encode(raw)).to_list() == raw.to_list()
    assert v.decode(pl.Series([0, OOV, 999])).to_list() == [None, None, None]


def test_save_and_load_round_trip(tmp_path):
    v = Vocabulary.fit("brand", pl.Series(["n", "m", "m"]))
    v.save(tmp_path)
    loaded = Vocabulary.load(tmp_path, "brand")
    assert loaded.table.equals(v.table)


@pytest.mark.parametrize("values", [pl.Series([], dtype=pl.String), pl.Series([None, None], dtype=pl.String)])
def test_empty_vocabulary_maps_everything_to_oov(values):
    v = Vocabulary.fit("category", values)
    assert v.size == FIRST_INDEX
    assert v.encode(pl.Series(["anything"])).to_list() == [OOV]
