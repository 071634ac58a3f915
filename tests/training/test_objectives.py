"""The ranker's objective heads (``SASRecConfig.objectives``): training data, loss, what they learn, and that a
ranker without them is what it was."""

import hashlib
import json
from dataclasses import asdict, replace

import numpy as np
import pytest
import torch
from recstack.benchmarks.objectives import auc, target_stages
from recstack.preprocessing.datasets import load_dataset
from recstack.preprocessing.pipeline import preprocess
from recstack.training.config import OBJECTIVES, SASRecConfig, TrainConfig
from recstack.training.data import UNKNOWN_STAGE, load_prepared, pad_left
from recstack.training.models.sasrec import SASRec
from recstack.training.train_sasrec import label_stages, train_sasrec
from recstack.training.trainer import config_hash

HEADS = SASRecConfig(max_length=30, hidden=32, blocks=1, heads=2, dropout=0.0, objectives=True)


@pytest.fixture(scope="module")
def shop(tmp_path_factory):
    """A small shop whose funnel depends on the item: something for the heads to learn."""
    folder = tmp_path_factory.mktemp("funnel_shop")
    preprocess(load_dataset("synthetic", n_events=30_000, seed=4, conversion_spread=1.5, price_sensitivity=1.0),
               folder, progress=False)
    return load_prepared(folder).with_funnel_stages()


def test_the_config_hash_of_a_ranker_without_heads_is_that_of_earlier_releases():
    config = SASRecConfig()
    earlier = {k: v for k, v in asdict(config).items() if k not in ("objectives", "objective_weight")}
    expected = hashlib.sha256(json.dumps([earlier], sort_keys=True, default=str).encode()).hexdigest()[:8]
    assert config_hash(config) == expected
    assert config_hash(replace(config, objectives=True)) != expected
    assert SASRec(10, config).heads is None


def test_settings_are_validated():
    with pytest.raises(ValueError, match="objective_weight"):
        SASRecConfig(objective_weight=-0.1)
    with pytest.raises(ValueError, match="no objective heads"):
        SASRec(10, SASRecConfig(max_length=4, hidden=8, heads=1)).score_objectives(
            torch.tensor([[0, 2, 3, 4]]), torch.tensor([[5]]))


def test_funnel_stages_align_with_the_training_steps(shop):
    assert [len(s) for s in shop.train_stages] == [len(s) for s in shop.train_sequences]
    stages = np.concatenate(shop.train_stages)
    assert set(np.unique(stages)) == {1, 2, 3, 4}  # view, click, add-to-cart, purchase: every step is a view
    shifted = shop.shifted_back()
    assert [len(s) for s in shifted.train_stages] == [len(s) for s in shifted.train_sequences]


def test_label_stages_follow_the_labels_and_leave_appended_targets_unknown():
    stages = label_stages([np.array([5, 6, 7, 8])], [np.array([1, 2, 4])], 3)
    assert stages.tolist() == [[2, 4, UNKNOWN_STAGE]]  # labels 6, 7 and the appended 8


def test_steps_of_unknown_stage_add_nothing_to_the_loss():
    torch.manual_seed(0)
    model = SASRec(30, HEADS).eval()
    inputs, labels = torch.tensor([[0, 3, 4, 5]]), torch.tensor([[0, 4, 5, 6]])
    plain = model.loss(inputs, labels)
    assert torch.allclose(model.loss(inputs, labels, torch.zeros_like(labels)), plain)
    assert model.loss(inputs, labels, torch.tensor([[0, 4, 1, 2]])) > plain


def test_scores_with_objectives_equal_the_rankers_scores_and_give_probabilities():
    model = SASRec(30, HEADS).eval()
    seq, candidates = torch.tensor([[0, 0, 3, 4, 5]]), torch.tensor([[6, 7, 0, 1]])
    with torch.no_grad():
        scores, probabilities = model.score_objectives(seq, candidates)
        assert torch.equal(scores, model.score_candidates(seq, candidates))
    assert probabilities.shape == (1, 4, len(OBJECTIVES))
    assert (probabilities[0, 2:] == 0).all() and ((probabilities[0, :2] > 0) & (probabilities[0, :2] < 1)).all()


def test_heads_learn_who_buys_what_better_than_a_constant(shop, tmp_path):
    train = TrainConfig(epochs=6, batch_size=64, lr=3e-3, validate_every=3, precision="fp32", device="cpu")
    model = train_sasrec(shop, tmp_path, HEADS, train, resume=False, progress=False).model.eval()
    stages = target_stages(shop)
    known = stages != UNKNOWN_STAGE
    seq = torch.from_numpy(pad_left([h for h, k in zip(shop.test.histories, known, strict=True) if k], 30))
    targets = torch.tensor([[int(t[0])] for t, k in zip(shop.test.targets, known, strict=True) if k])
    with torch.no_grad():
        _, probabilities = model.score_objectives(seq, targets)
    purchase = OBJECTIVES.index("purchase")
    bought = stages[known] == 1 + 1 + purchase
    assert bought.sum() >= 30
    assert auc(probabilities[:, 0, purchase].numpy(), bought) > 0.6  # a constant's AUC is 0.5
