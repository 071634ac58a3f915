"""The quality gate: the held-out window, and the serving ranker scored as it serves a grown catalog."""

import numpy as np
import pytest
import torch
from recstack.preprocessing.vocabulary import OOV
from recstack.training.config import SASRecConfig
from recstack.training.gate import as_served, held_out, load_ranker
from recstack.training.models.sasrec import SASRec
from recstack.training.trainer import BEST


def test_the_window_is_the_new_events_users_unless_too_few(prepared):
    users = prepared.test.user_idx[:30]
    window, what = held_out(prepared, users, min_users=20)
    assert sorted(window.user_idx) == sorted(users) and "new events" in what
    everyone, what = held_out(prepared, users[:5], min_users=20)
    assert len(everyone) == len(prepared.test) and "fewer than 20" in what


def test_the_serving_ranker_reads_items_it_does_not_know_as_unknown_and_never_ranks_them():
    torch.manual_seed(0)
    model = SASRec(50, SASRecConfig(max_length=8, hidden=16, blocks=1, heads=1)).eval()
    scorer = as_served(model, n_items=60)
    with_new = scorer([np.array([5, 55, 7])], np.array([0]))
    with_oov = scorer([np.array([5, OOV, 7])], np.array([0]))
    assert with_new.shape == (1, 60)
    assert torch.isneginf(with_new[0, 50:]).all() and torch.isfinite(with_new[0, 2:50]).all()
    assert torch.allclose(with_new, with_oov)


def test_a_serving_ranker_trained_with_other_settings_is_a_clear_error(tmp_path):
    small = SASRecConfig(max_length=8, hidden=16, blocks=1, heads=1)
    (tmp_path / "sasrec").mkdir()
    torch.save({"model": SASRec(50, small).state_dict()}, tmp_path / "sasrec" / BEST)
    assert load_ranker(tmp_path, 50, small).n_items == 50
    with pytest.raises(ValueError, match="other SASRec settings"):
        load_ranker(tmp_path, 50, SASRecConfig(max_length=8, hidden=32, blocks=1, heads=1))
