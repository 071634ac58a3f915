from dataclasses import replace

import numpy as np
import polars as pl
import pytest
from recstack.preprocessing.config import WorkflowConfig
from recstack.preprocessing.datasets import load_dataset
from recstack.preprocessing.pipeline import preprocess
from recstack.preprocessing.vocabulary import OOV
from recstack.training.data import load_prepared, pad_left


def test_loaded_arrays_match_the_parquet_tables(prepared):
    seqs = pl.read_parquet(prepared.folder / "sequences_train.parquet")
    assert len(prepared.train_sequences) == seqs.height
    assert prepared.train_sequences[5].tolist() == seqs["item_seq"][5].to_list()
    test = pl.read_parquet(prepared.folder / "eval_test.parquet")
    assert [t.tolist() for t in prepared.test.targets[:20]] == test["targets"].head(20).to_list()
    assert prepared.n_items == prepared.manifest.vocabulary_sizes["item_id"]
    assert prepared.item_popularity()[:2].tolist() == [0, 0]


def test_pad_left_keeps_the_newest_items_right_aligned():
    out = pad_left([np.array([1, 2, 3, 4]), np.array([7]), np.array([], dtype=np.int64)], 3)
    assert out.tolist() == [[2, 3, 4], [0, 0, 7], [0, 0, 0]]


@pytest.fixture(scope="module")
def with_oov_users(tmp_path_factory):
    """Users with few events share the OOV index, as with ``min_user_count > 1``."""
    folder = tmp_path_factory.mktemp("oov_users")
    preprocess(load_dataset("synthetic", n_events=8000, seed=4), folder, WorkflowConfig(min_user_count=12),
               progress=False)
    return load_prepared(folder)


def test_shifted_back_split_holds_out_the_validation_target_and_never_sees_the_test_target(with_oov_users):
    real = with_oov_users
    assert (real.valid.user_idx == OOV).sum() > 1  # the case the split must handle
    shifted = real.shifted_back()
    eligible = [i for i, (u, h) in enumerate(zip(real.valid.user_idx, real.valid.histories, strict=True))
                if u > OOV and len(h) >= 2]
    assert len(shifted.test) == len(shifted.valid) == len(eligible) > 0
    for j, i in enumerate(eligible):
        assert shifted.test.user_idx[j] == real.valid.user_idx[i]
        # The new test is the real validation, history and target; the new validation target is the last
        # training event, seen by neither the new validation history nor the new training sequences.
        assert shifted.test.histories[j].tolist() == real.valid.histories[i].tolist()
        assert shifted.test.targets[j].tolist() == real.valid.targets[i].tolist()
        assert shifted.valid.targets[j].tolist() == real.valid.histories[i][-1:].tolist()
        assert shifted.valid.histories[j].tolist() == real.valid.histories[i][:-1].tolist()
    real_train = dict(zip(real.train_user_idx.tolist(), real.train_sequences, strict=True))
    shifted_train = dict(zip(shifted.train_user_idx.tolist(), shifted.train_sequences, strict=True))
    for u in shifted.test.user_idx.tolist():
        assert shifted_train[u].tolist() == real_train[u][:-1].tolist()
    # Even its finishing epochs (training + validation events) train on the real training events only.
    finishing = dict(zip(shifted.train_user_idx.tolist(), shifted.train_and_valid_sequences(), strict=True))
    assert all(finishing[u].tolist() == real_train[u].tolist() for u in shifted.test.user_idx.tolist())
    # A run on it is never taken for a run on the real split.
    assert shifted.fingerprint[:8] != real.fingerprint[:8] and real.shifted_back().fingerprint == shifted.fingerprint


def test_shifted_back_refuses_a_temporal_split(with_oov_users):
    temporal = replace(with_oov_users, manifest=replace(with_oov_users.manifest, split={"strategy": "temporal"}))
    with pytest.raises(ValueError, match="leave-one-out"):
        temporal.shifted_back()
