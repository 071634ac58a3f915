import numpy as np
import pytest
import torch
from recstack.training.baselines import EASE, ItemKNN, MostPopular
from recstack.training.evaluate import evaluate


def test_most_popular_ranks_by_training_counts(prepared):
    scores = MostPopular(prepared)([np.array([2])], np.array([2]))
    assert torch.equal(scores[0], torch.from_numpy(prepared.item_popularity()).float())


def test_item_knn_scores_neighbours_of_the_history(prepared):
    model = ItemKNN(prepared, neighbours=20)
    seq = prepared.train_sequences[0]
    scores = model([seq[:3]], np.array([0]))[0]
    neighbours = set(model.similarity[:, seq[:3]].nonzero()[0].tolist())
    assert set(torch.nonzero(scores).flatten().tolist()) <= neighbours


def test_personalised_baselines_beat_popularity_on_the_synthetic_shop(prepared):
    popular = evaluate(MostPopular(prepared), prepared, prepared.valid)["ndcg@10"]
    assert evaluate(ItemKNN(prepared), prepared, prepared.valid)["ndcg@10"] > popular * 1.5
    assert evaluate(EASE(prepared), prepared, prepared.valid)["ndcg@10"] > popular * 1.5


def test_ease_refuses_catalogs_it_cannot_hold(prepared):
    with pytest.raises(ValueError, match="dense"):
        EASE(prepared, max_items=10)


def test_baselines_learn_from_every_training_event_not_the_truncated_sequences(prepared):
    from recstack.training.baselines import interaction_matrix

    matrix = interaction_matrix(prepared)
    rows, cols = prepared.train_interactions()
    assert matrix.nnz == len(set(zip(rows.tolist(), cols.tolist(), strict=True)))
    assert matrix.shape[0] == len(prepared.train_sequences)
