"""Matrix-factorisation baselines from the ``implicit`` library: ALS and BPR.

Like ``implicit``'s own factories, each picks the library's CUDA model when a GPU is there and its CPU model
otherwise; both are moved to the CPU after fitting, so scoring is one code path. The defaults are the library's
usual settings for implicit feedback, not tuned on any test split (benchmarks/README.md has their figures).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from recstack.training.data import PreparedData
from recstack.training.interactions import history_matrix, interaction_matrix, user_index_matrix
from threadpoolctl import threadpool_limits

from recstack import devices


def implicit_device(device: str) -> Literal["cpu", "gpu"]:
    """``device`` resolved for ``implicit``: its CUDA models need a GPU and the library's CUDA build (the PyPI
    wheel's needs RMM and the CUDA 13 runtime, see pyproject.toml), so both are checked, not assumed."""

    def cuda_build() -> bool:
        import implicit.gpu

        return bool(implicit.gpu.HAS_CUDA)

    return devices.resolve(device, available=devices.gpu_count() > 0 and cuda_build())


def _fit(kind, matrix, device: str, **settings):
    """An ``implicit`` model of ``kind`` fitted on ``matrix`` on ``device`` and returned on the CPU, where
    scoring runs; on the CPU with as many threads as this process has cores."""
    # implicit's threads already cover the cores; OpenBLAS threads nested in them thrash (implicit warns of it
    # when the model is built, so the limit covers that too).
    with threadpool_limits(1, "blas"):
        model = kind(**settings, num_threads=devices.usable_cores(), use_gpu=device == "gpu")
        model.fit(matrix, show_progress=False)
    return model.to_cpu() if device == "gpu" else model


@dataclass
class ALS:
    """Implicit-feedback alternating least squares (Hu, Koren & Volinsky, 2008). A user's factors are solved
    from the history being scored, with the item factors fixed (the least-squares step of training, solved
    exactly), so like item-KNN and EASE it scores any history, including events after training.

    ``alpha`` weights an observed interaction against the unit weight of every unobserved one.
    """

    data: PreparedData
    factors: int = 64
    regularization: float = 0.05
    alpha: float = 10.0
    iterations: int = 15
    seed: int = 0
    device: str = "auto"  # resolved to "cpu" or "gpu" (where it fitted)

    def __post_init__(self):
        from implicit.als import AlternatingLeastSquares

        self.device = implicit_device(self.device)
        self.model = _fit(AlternatingLeastSquares, interaction_matrix(self.data), self.device,
                          factors=self.factors, regularization=self.regularization, alpha=self.alpha,
                          iterations=self.iterations, random_state=self.seed)

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
    device: str = "auto"  # resolved to "cpu" or "gpu" (where it fitted)

    def __post_init__(self):
        from implicit.bpr import BayesianPersonalizedRanking

        self.device = implicit_device(self.device)
        model = _fit(BayesianPersonalizedRanking, user_index_matrix(self.data), self.device,
                     factors=self.factors, learning_rate=self.learning_rate, regularization=self.regularization,
                     iterations=self.iterations, random_state=self.seed)
        # implicit appends a bias column to the item factors and a column of ones to the user factors.
        self.user_factors = np.asarray(model.user_factors, dtype=np.float32)
        self.item_factors = np.asarray(model.item_factors, dtype=np.float32)

    def __call__(self, histories, user_idx) -> torch.Tensor:
        users = np.zeros((len(user_idx), self.user_factors.shape[1]), dtype=np.float32)
        users[:, -1] = 1.0  # the bias column, for users training never saw
        known = np.asarray(user_idx) < len(self.user_factors)
        users[known] = self.user_factors[np.asarray(user_idx)[known]]
        return torch.from_numpy(users @ self.item_factors.T)
