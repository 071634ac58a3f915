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


@pytest.mark.parametrize("name", ["als", "bpr"])
def test_matrix_factorisation_beats_popularity_and_scores_every_item(prepared, name):
    from recstack.training.baselines import BASELINES

    model = BASELINES[name](prepared)
    batch = prepared.valid
    scores = model(batch.histories[:4], batch.user_idx[:4])
    assert scores.shape == (4, prepared.n_items) and torch.isfinite(scores).all()
    popular = evaluate(MostPopular(prepared), prepared, prepared.valid)["ndcg@10"]
    assert evaluate(model, prepared, prepared.valid)["ndcg@10"] > popular * 1.2


def test_als_scores_a_history_it_never_saw_in_training(prepared):
    from recstack.training.baselines import ALS

    model = ALS(prepared)
    seq = prepared.train_sequences[0]
    short, longer = model([seq[:2]], np.array([0]))[0], model([seq], np.array([0]))[0]
    assert not torch.allclose(short, longer)  # the factors follow the history given, not the training row
