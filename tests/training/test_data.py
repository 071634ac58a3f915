import numpy as np
import polars as pl

from training.data import pad_left


def test_loaded_arrays_match_the_parquet_tables(prepared):
    seqs = pl.read_parquet(prepared.folder / "sequences_train.parquet")
    assert len(prepared.train_sequences) == seqs.height
    assert prepared.train_sequences[5].tolist() == seqs["item_seq"][5].to_list()
    test = pl.read_parquet(prepared.folder / "eval_test.parquet")
    assert [t.tolist() for t in prepared.test.targets[:20]] == test["targets"].head(20).to_list()
    assert prepared.n_items == prepared.manifest["vocabulary_sizes"]["item_id"]
    assert prepared.item_popularity()[:2].tolist() == [0, 0]


def test_pad_left_keeps_the_newest_items_right_aligned():
    out = pad_left([np.array([1, 2, 3, 4]), np.array([7]), np.array([], dtype=np.int64)], 3)
    assert out.tolist() == [[2, 3, 4], [0, 0, 7], [0, 0, 0]]
