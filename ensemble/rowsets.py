"""Per-row set operations on (B, K) arrays of item indices, for the stages that work on a batch of users at once
(retrieve's merge, the re-rank) without a Python loop per user: each (row, item) pair is one integer key."""

from __future__ import annotations

import numpy as np


class RowSets:
    """A set of item indices per row of a (B, K) array, asked about many items at once.

    Examples
    --------
    >>> sets = RowSets(np.array([[3, 5], [7, 7]]), n_items=10)
    >>> sets.contains(np.array([[5, 7], [7, 3]])).tolist()
    [[True, False], [True, False]]
    """

    def __init__(self, items: np.ndarray, n_items: int):
        self.n_items = n_items
        self.keys = np.unique(self._keys(items))

    def _keys(self, items: np.ndarray) -> np.ndarray:
        return np.arange(len(items))[:, None] * self.n_items + items

    def contains(self, items: np.ndarray) -> np.ndarray:
        """(B, M) items, one row per row of the sets (indices from 0 to ``n_items`` - 1) → (B, M) bool."""
        keys = self._keys(items)
        if not len(self.keys):
            return np.zeros(keys.shape, dtype=bool)
        return self.keys[np.minimum(np.searchsorted(self.keys, keys), len(self.keys) - 1)] == keys


def first_occurrence(values: np.ndarray, n_items: int) -> np.ndarray:
    """(B, N): True where a row holds a value for the first time.

    Examples
    --------
    >>> first_occurrence(np.array([[4, 2, 4], [4, 4, 1]]), n_items=5).tolist()
    [[True, True, False], [True, False, True]]
    """
    first = np.zeros(values.size, dtype=bool)
    first[np.unique((np.arange(len(values))[:, None] * n_items + values).ravel(), return_index=True)[1]] = True
    return first.reshape(values.shape)
