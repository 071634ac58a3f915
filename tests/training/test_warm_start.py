"""Warm starts: the serving model's weights in a model for a grown catalog, and training focused on new events."""

import numpy as np
import pytest
import torch
from recstack.training.warm_start import focus, grow_into
from torch import nn


def test_focus_trains_on_recent_users_and_a_replay_sample_and_keeps_evaluation_whole(prepared):
    recent = prepared.train_user_idx[:40]
    focused = focus(prepared, recent, replay=0.5, seed=0)
    assert np.isin(recent, focused.train_user_idx).all()
    assert len(focused.train_user_idx) == 40 + 20
    assert focused.valid is prepared.valid and focused.test is prepared.test
    again = focus(prepared, recent, replay=0.5, seed=0)
    assert (again.train_user_idx == focused.train_user_idx).all()  # seeded
    assert len(focus(prepared, recent, replay=0.0, seed=0).train_user_idx) == 40


def test_a_checkpoint_of_another_model_is_refused(tmp_path):
    torch.save({"model": nn.Linear(4, 2).state_dict()}, tmp_path / "old.pt")
    with pytest.raises(ValueError, match="retrain from scratch"):
        grow_into(nn.Linear(5, 2), tmp_path / "old.pt")
    with pytest.raises(ValueError, match="not a checkpoint of this model"):
        grow_into(nn.Sequential(nn.Linear(4, 2)), tmp_path / "old.pt")
