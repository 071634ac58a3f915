"""Honest baselines shown beside every model: most popular, item-item cosine CF, EASE, and matrix factorisation
(ALS and BPR, :mod:`recstack.training.factorisation`).

They share one interface, :class:`Baseline`, and are built by one factory, :func:`make_baseline`, which is how
``recstack train`` and ``recstack bench accuracy`` find them: a baseline added to :data:`BASELINES` is in every
accuracy table and under the contract tests (tests/training/test_baselines.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Protocol

import numpy as np
import scipy.sparse as sp
import torch
from recstack.training.data import PreparedData
from recstack.training.factorisation import ALS, BPR
from recstack.training.interactions import history_matrix, interaction_matrix


class Baseline(Protocol):
    """A model fitted on a prepared dataset's training events when built (``kind(data)``).

    Called with a batch of histories and their users' vocabulary indices, it returns a users × items float tensor
    on the CPU scoring every item. It masks nothing: the evaluation filters each user's seen items for every
    scorer alike, models and baselines, so all of them are compared on the same full ranking.
    """

    device: str  # where it fitted: "cpu" or "gpu"

    def __call__(self, histories: list[np.ndarray], user_idx: np.ndarray) -> torch.Tensor: ...


@dataclass
class MostPopular:
    """Every user gets the items with the most training interactions."""

    data: PreparedData
    device: ClassVar[str] = "cpu"

    def __post_init__(self):
        self.scores = torch.from_numpy(self.data.item_popularity()).float()

    def __call__(self, histories, user_idx) -> torch.Tensor:
        return self.scores.expand(len(histories), -1).clone()


@dataclass
class ItemKNN:
    """Item-item cosine similarity of co-consumption, the ``neighbours`` most similar kept per item;
    a user's score for an item is its summed similarity to the user's history."""

    data: PreparedData
    neighbours: int = 100
    device: ClassVar[str] = "cpu"

    def __post_init__(self):
        x = interaction_matrix(self.data)
        co = (x.T @ x).tocsr().astype(np.float32)
        norms = np.sqrt(co.diagonal())
        co.setdiag(0)
        co.eliminate_zeros()
        inv = sp.diags(1.0 / np.maximum(norms, 1e-9))
        sim = (inv @ co @ inv).tocsr()
        self.similarity = _keep_top_per_row(sim, self.neighbours).T.tocsr()  # column j: neighbours of j

    def __call__(self, histories, user_idx) -> torch.Tensor:
        h = history_matrix(histories, self.data.n_items)
        return torch.from_numpy((h @ self.similarity.T).toarray())


def _keep_top_per_row(matrix: sp.csr_matrix, k: int) -> sp.csr_matrix:
    indptr, indices, values = matrix.indptr, matrix.indices, matrix.data
    keep = np.zeros(len(values), dtype=bool)
    for row in range(matrix.shape[0]):
        lo, hi = indptr[row], indptr[row + 1]
        if hi - lo <= k:
            keep[lo:hi] = True
        else:
            keep[lo + np.argpartition(-values[lo:hi], k)[:k]] = True
    kept = sp.csr_matrix((np.where(keep, values, 0), indices, indptr), shape=matrix.shape)
    kept.eliminate_zeros()
    return kept


@dataclass
class EASE:
    """EASE (Steck, 2019): a closed-form item-item linear model, B = I - P / diag(P), P = (XᵀX + λI)⁻¹.

    Dense in items, so it refuses catalogs above ``max_items`` with a clear message.
    """

    data: PreparedData
    l2: float = 500.0
    max_items: int = 20_000
    device: ClassVar[str] = "cpu"

    def __post_init__(self):
        n = self.data.n_items
        if n > self.max_items:
            raise ValueError(f"EASE needs a dense {n}x{n} matrix; catalogs above {self.max_items:,} items "
                             "are out of its reach (use ItemKNN or the two-tower model)")
        x = interaction_matrix(self.data)
        gram = torch.from_numpy((x.T @ x).toarray()).double()
        gram += self.l2 * torch.eye(n, dtype=torch.float64)
        p = torch.linalg.inv(gram)
        b = -p / torch.diag(p)
        b.fill_diagonal_(0.0)
        self.weights = b.float()

    def __call__(self, histories, user_idx) -> torch.Tensor:
        h = torch.from_numpy(history_matrix(histories, self.data.n_items).toarray())
        return h @ self.weights


BASELINES = {"most_popular": MostPopular, "item_knn": ItemKNN, "ease": EASE, "als": ALS, "bpr": BPR}
ACCELERATED = frozenset({"als", "bpr"})  # those with a GPU code path, which take the device asked for


def make_baseline(name: str, data: PreparedData, device: str = "auto") -> Baseline:
    """The baseline ``name`` fitted on ``data``; ``device`` (``auto``, ``cpu``, ``gpu``) for those that can run
    on a GPU. Raises ``ValueError`` for a name not in :data:`BASELINES`, or a dataset the baseline cannot hold.
    """
    if name not in BASELINES:
        raise ValueError(f"unknown baseline {name!r}; choose from {list(BASELINES)}")
    kind = BASELINES[name]
    return kind(data, device=device) if name in ACCELERATED else kind(data)
