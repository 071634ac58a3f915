"""Binary users × items matrices the baselines fit and score on: an item counts once per user, however often
the user returned to it."""

from __future__ import annotations

import numpy as np
import polars as pl
import scipy.sparse as sp
from recstack.preprocessing.layout import PreparedLayout
from recstack.training.data import PreparedData


def _binary(rows: np.ndarray, cols: np.ndarray, n_rows: int, n_items: int) -> sp.csr_matrix:
    matrix = sp.csr_matrix((np.ones(len(cols), dtype=np.float32), (rows, cols)), shape=(n_rows, n_items))
    matrix.data[:] = 1.0  # repeated items were summed: count them once
    return matrix


def interaction_matrix(data: PreparedData) -> sp.csr_matrix:
    """Every training event (not the truncated model sequences), one row per training sequence."""
    rows, cols = data.train_interactions()
    return _binary(rows, cols, int(rows.max()) + 1 if len(rows) else 0, data.n_items)


def user_index_matrix(data: PreparedData) -> sp.csr_matrix:
    """As :func:`interaction_matrix`, with rows at the users' vocabulary indices (the ``user_idx`` an evaluation
    batch carries; users sharing the OOV index share its row), for models that keep a factor per user."""
    events = pl.read_parquet(PreparedLayout(data.folder).events("train"), columns=["user_idx", "item_idx"])
    rows, cols = events["user_idx"].cast(pl.Int64).to_numpy(), events["item_idx"].cast(pl.Int64).to_numpy()
    return _binary(rows, cols, int(rows.max()) + 1 if len(rows) else 0, data.n_items)


def history_matrix(histories: list[np.ndarray], n_items: int) -> sp.csr_matrix:
    """One row per history being scored."""
    rows = np.concatenate([np.full(len(h), i) for i, h in enumerate(histories)]) if histories else np.array([])
    cols = np.concatenate(histories) if histories else np.array([])
    return _binary(rows.astype(np.int64), cols.astype(np.int64), len(histories), n_items)
