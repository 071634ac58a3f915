import numpy as np
from recstack.ensemble.rowsets import RowSets, first_occurrence


def test_each_row_is_its_own_set():
    sets = RowSets(np.array([[3, 5, 5], [9, 0, 0]]), n_items=10)
    asked = np.array([[5, 9, 3, 0], [3, 9, 0, 5]])
    assert sets.contains(asked).tolist() == [[True, False, True, False], [False, True, True, False]]
    assert not RowSets(np.zeros((2, 0), dtype=np.int64), n_items=10).contains(asked).any()


def test_first_occurrence_per_row():
    values = np.array([[7, 7, 2, 7], [2, 7, 7, 2]])
    assert first_occurrence(values, n_items=8).tolist() == [[True, False, True, False], [True, True, False, False]]
