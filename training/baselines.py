"""Honest baselines shown beside every model: most popular, item-item cosine CF, EASE, and matrix factorisation
(ALS and BPR from the ``implicit`` library, on its CUDA models where a GPU is there)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl
import scipy.sparse as sp
import torch
from recstack.preprocessing.layout import PreparedLayout
from recstack.training.data import PreparedData


def interaction_matrix(data: PreparedData) -> sp.csr_matrix:
    """Binary users × items matrix of every training event (not the truncated model sequences)."""
    rows, cols = data.train_interactions()
    matrix = sp.csr_matrix((np.ones(len(cols), dtype=np.float32), (rows, cols)),
                           shape=(int(rows.max()) + 1 if len(rows) else 0, data.n_items))
    matrix.data[:] = 1.0  # repeated items count once
    return matrix


def user_index_matrix(data: PreparedData) -> sp.csr_matrix:
    """As :func:`interaction_matrix`, with rows at the users' vocabulary indices (the ``user_idx`` an evaluation
    batch carries; users sharing the OOV index share its row), for models that keep a factor per user."""
    events = pl.read_parquet(PreparedLayout(data.folder).events("train"), columns=["user_idx", "item_idx"])
    rows, cols = events["user_idx"].cast(pl.Int64).to_numpy(), events["item_idx"].cast(pl.Int64).to_numpy()
    matrix = sp.csr_matrix((np.ones(len(cols), dtype=np.float32), (rows, cols)),
                           shape=(int(rows.max()) + 1 if len(rows) else 0, data.n_items))
    matrix.data[:] = 1.0
    return matrix


def history_matrix(histories: list[np.ndarray], n_items: int) -> sp.csr_matrix:
    rows = np.concatenate([np.full(len(h), i) for i, h in enumerate(histories)]) if histories else []
    cols = np.concatenate(histories) if histories else []
    m = sp.csr_matrix((np.ones(len(cols), dtype=np.float32), (rows, cols)), shape=(len(histories), n_items))
    m.data[:] = 1.0
    return m


@dataclass
class MostPopular:
    """Every user gets the items with the most training interactions."""

    data: PreparedData

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


def _implicit_device() -> bool:
    """Whether implicit's CUDA models can run here (its GPU build and a GPU): detected, not assumed."""
    import implicit.gpu

    return bool(implicit.gpu.HAS_CUDA)


@dataclass
class ALS:
    """Implicit-feedback alternating least squares (Hu, Koren & Volinsky, 2008). A user's factors are solved from
    the history being scored, exactly as training solves them, so like item-KNN and EASE it scores any history,
    including events after training."""

    data: PreparedData
    factors: int = 64
    regularization: float = 0.05
    alpha: float = 10.0  # confidence of an observed interaction: 1 + alpha
    iterations: int = 15
    seed: int = 0

    def __post_init__(self):
        from implicit.als import AlternatingLeastSquares
        from threadpoolctl import threadpool_limits

        with threadpool_limits(1, "blas"):  # implicit parallelises over users itself; nested BLAS threads thrash
            self.model = AlternatingLeastSquares(factors=self.factors, regularization=self.regularization,
                                                 alpha=self.alpha, iterations=self.iterations,
                                                 random_state=self.seed, use_gpu=_implicit_device())
            self.model.fit(interaction_matrix(self.data), show_progress=False)
        self.model = self.model.to_cpu() if hasattr(self.model, "to_cpu") else self.model

    def __call__(self, histories, user_idx) -> torch.Tensor:
        h = history_matrix(histories, self.data.n_items)
        users = self.model.recalculate_user(np.arange(len(histories)), h)
        return torch.from_numpy(np.asarray(users, dtype=np.float32) @ self.model.item_factors.T)


@dataclass
class BPR:
    """Bayesian personalised ranking (Rendle et al., 2009): factors trained to rank a user's items above sampled
    others. BPR has no closed form for a new history, so a user is scored with the factors learnt in training
    (users unseen there get the item biases alone)."""

    data: PreparedData
    factors: int = 64
    learning_rate: float = 0.05
    regularization: float = 0.01
    iterations: int = 100
    seed: int = 0

    def __post_init__(self):
        from implicit.bpr import BayesianPersonalizedRanking

        model = BayesianPersonalizedRanking(factors=self.factors, learning_rate=self.learning_rate,
                                            regularization=self.regularization, iterations=self.iterations,
                                            random_state=self.seed, use_gpu=_implicit_device())
        model.fit(user_index_matrix(self.data), show_progress=False)
        model = model.to_cpu() if hasattr(model, "to_cpu") else model
        # implicit appends a bias column to the item factors and a column of ones to the user factors.
        self.user_factors = np.asarray(model.user_factors, dtype=np.float32)
        self.item_factors = np.asarray(model.item_factors, dtype=np.float32)

    def __call__(self, histories, user_idx) -> torch.Tensor:
        users = np.zeros((len(user_idx), self.user_factors.shape[1]), dtype=np.float32)
        users[:, -1] = 1.0  # the bias column, for users training never saw
        known = np.asarray(user_idx) < len(self.user_factors)
        users[known] = self.user_factors[np.asarray(user_idx)[known]]
        return torch.from_numpy(users @ self.item_factors.T)


BASELINES = {"most_popular": MostPopular, "item_knn": ItemKNN, "ease": EASE, "als": ALS, "bpr": BPR}
