import numpy as np
from recstack.training.interactions import history_matrix, interaction_matrix


def test_baselines_learn_from_every_training_event_not_the_truncated_sequences(prepared):
    matrix = interaction_matrix(prepared)
    rows, cols = prepared.train_interactions()
    assert matrix.nnz == len(set(zip(rows.tolist(), cols.tolist(), strict=True)))
    assert matrix.shape[0] == len(prepared.train_sequences)


def test_an_item_seen_twice_counts_once():
    matrix = history_matrix([np.array([3, 1, 3]), np.array([2])], n_items=5)
    assert matrix.toarray().tolist() == [[0, 1, 0, 1, 0], [0, 0, 1, 0, 0]]
