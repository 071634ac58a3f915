"""Offline evaluation of any scorer on an evaluation set: full ranking (default) or sampled."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from recstack.training.data import EvalSet, PreparedData
from recstack.training.metrics import RankingAccumulator, sampled_ranks
from tqdm.auto import tqdm

# (histories, user indices) -> scores of every item, users x n_items.
Scorer = Callable[[list[np.ndarray], np.ndarray], torch.Tensor]
KS = (10, 20)


def item_side_info(data: PreparedData) -> tuple[np.ndarray, np.ndarray]:
    """Category index per item and the share of training users who interacted with it."""
    category = np.zeros(data.n_items, dtype=np.int64)
    category[data.items["item_idx"].to_numpy()] = data.items["category_idx"].to_numpy()
    users = np.zeros(data.n_items)
    users[data.item_stats["item_idx"].to_numpy()] = data.item_stats["users"].to_numpy()
    # Add-one smoothing: an item no training user saw gets a large but finite self-information.
    return category, (users + 1) / (len(data.train_sequences) + 1)


@torch.no_grad()
def evaluate(scorer: Scorer, data: PreparedData, eval_set: EvalSet, ks: tuple[int, ...] = KS,
             batch_size: int = 256, progress: bool = False) -> dict[str, float]:
    """Full-ranking metrics (see :mod:`recstack.training.metrics`) of ``scorer`` on ``eval_set``."""
    category, share = item_side_info(data)
    acc = RankingAccumulator(ks=ks, n_items=data.n_items, item_category=category, item_user_share=share)
    for start in tqdm(range(0, len(eval_set), batch_size), desc="evaluate", disable=not progress, leave=False):
        rows = np.arange(start, min(start + batch_size, len(eval_set)))
        batch = eval_set.subset(rows)
        acc.add(scorer(batch.histories, batch.user_idx).cpu(), batch.histories, batch.targets)
    return acc.result()


@torch.no_grad()
def evaluate_sampled(scorer: Scorer, data: PreparedData, eval_set: EvalSet, n_negatives: int = 100,
                     k: int = 10, batch_size: int = 256, seed: int = 0) -> dict[str, float]:
    """The older "target among ``n_negatives`` sampled items" protocol, labelled as such."""
    rng = np.random.default_rng(seed)
    ranks = []
    for start in range(0, len(eval_set), batch_size):
        batch = eval_set.subset(np.arange(start, min(start + batch_size, len(eval_set))))
        ranks.append(sampled_ranks(scorer(batch.histories, batch.user_idx).cpu().float(), batch.histories,
                                   batch.targets, n_negatives, rng))
    r = np.concatenate(ranks)
    label = f"sampled{n_negatives}"
    return {f"{label}_hr@{k}": float((r <= k).mean()),
            f"{label}_ndcg@{k}": float(np.where(r <= k, 1 / np.log2(r + 1), 0).mean())}
