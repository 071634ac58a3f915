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


def test_shifted_back_split_holds_out_the_validation_target_and_never_sees_the_test_target(prepared):
    shifted = prepared.shifted_back()
    row = {int(u): i for i, u in enumerate(prepared.valid.user_idx)}
    checked = 0
    for j, u in enumerate(shifted.test.user_idx[:200]):
        i = row[int(u)]
        # The new test is the real validation; the new validation target is the last training event.
        assert shifted.test.targets[j].tolist() == prepared.valid.targets[i].tolist()
        assert shifted.valid.targets[j].tolist() == prepared.valid.histories[i][-1:].tolist()
        assert shifted.valid.histories[j].tolist() == prepared.valid.histories[i][:-1].tolist()
        checked += 1
    assert checked == min(200, len(shifted.test))
    by_user = dict(zip(prepared.train_user_idx.tolist(), prepared.train_sequences, strict=True))
    for u, seq in zip(shifted.train_user_idx.tolist(), shifted.train_sequences, strict=True):
        if u in row and u > 1 and len(by_user[u]) >= 2:
            assert seq.tolist() == by_user[u][:-1].tolist()
    # Even its finishing epochs (training + validation events) train on the real training events only.
    finishing = dict(zip(shifted.train_user_idx.tolist(), shifted.train_and_valid_sequences(), strict=True))
    assert all(finishing[u].tolist() == by_user[u].tolist() for u in row if u > 1)
