"""The contract every baseline keeps (each one in BASELINES, so a new one is under it too), then what single
baselines promise beyond it."""

import numpy as np
import pytest
import torch
from recstack.training.baselines import BASELINES, EASE, ItemKNN, MostPopular, make_baseline
from recstack.training.evaluate import evaluate

PERSONALISED = [name for name in BASELINES if name != "most_popular"]


@pytest.fixture(scope="module")
def fitted(prepared):
    """Each baseline fitted once on the synthetic shop, on the CPU, built as the training command builds it."""
    return {name: make_baseline(name, prepared, "cpu") for name in BASELINES}


@pytest.fixture(scope="module")
def popularity_ndcg(prepared, fitted):
    return evaluate(fitted["most_popular"], prepared, prepared.valid)["ndcg@10"]


@pytest.mark.parametrize("name", BASELINES)
def test_scores_every_item_for_every_history_on_the_cpu(prepared, fitted, name):
    batch = prepared.valid.subset(np.arange(5))
    scores = fitted[name](batch.histories, batch.user_idx)
    assert scores.shape == (5, prepared.n_items) and scores.dtype == torch.float32
    assert scores.device.type == "cpu" and torch.isfinite(scores).all()
    assert fitted[name].device == "cpu"


@pytest.mark.parametrize("name", BASELINES)
def test_a_users_scores_do_not_depend_on_the_rest_of_the_batch(prepared, fitted, name):
    """The evaluation scores users in batches of 256; a user's ranking must not change with the batch."""
    batch = prepared.valid.subset(np.arange(6))
    together = fitted[name](batch.histories, batch.user_idx)
    alone = torch.cat([fitted[name](batch.histories[i:i + 1], batch.user_idx[i:i + 1]) for i in range(6)])
    torch.testing.assert_close(together, alone, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", PERSONALISED)
def test_personalised_baselines_beat_popularity_on_the_synthetic_shop(prepared, fitted, popularity_ndcg, name):
    """What a user relies on: a baseline that learnt from the events ranks them better than the bestsellers."""
    assert evaluate(fitted[name], prepared, prepared.valid)["ndcg@10"] > popularity_ndcg * 1.5


def test_the_factory_refuses_an_unknown_name(prepared):
    with pytest.raises(ValueError, match="unknown baseline 'svd'"):
        make_baseline("svd", prepared)


def test_most_popular_ranks_by_training_counts(prepared):
    scores = MostPopular(prepared)([np.array([2])], np.array([2]))
    assert torch.equal(scores[0], torch.from_numpy(prepared.item_popularity()).float())


def test_item_knn_scores_neighbours_of_the_history(prepared):
    model = ItemKNN(prepared, neighbours=20)
    seq = prepared.train_sequences[0]
    scores = model([seq[:3]], np.array([0]))[0]
    neighbours = set(model.similarity[:, seq[:3]].nonzero()[0].tolist())
    assert set(torch.nonzero(scores).flatten().tolist()) <= neighbours


def test_ease_refuses_catalogs_it_cannot_hold(prepared):
    with pytest.raises(ValueError, match="dense"):
        EASE(prepared, max_items=10)
