"""Ranking metrics over full item rankings, computed batch by batch on torch tensors.

Conventions: item indices 0 (padding) and 1 (OOV) are never recommended; items in a user's history
are filtered out of the ranking unless they are targets (a target already seen stays reachable);
Recall@K = hits / |targets|; NDCG@K uses the ideal DCG of min(|targets|, K) hits; MRR uses the rank
of the best-ranked target in the whole ranking. With one target per user HR@K = Recall@K.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from recstack.preprocessing.vocabulary import FIRST_INDEX


def mask_scores(scores: torch.Tensor, histories: list[np.ndarray], targets: list[np.ndarray]) -> torch.Tensor:
    """Scores with padding, OOV and already-seen non-target items set to -inf (in place)."""
    scores[:, :FIRST_INDEX] = -torch.inf
    rows, cols = [], []
    for row, (history, target) in enumerate(zip(histories, targets, strict=True)):
        seen = np.setdiff1d(history, target, assume_unique=False)
        rows.append(np.full(len(seen), row))
        cols.append(seen)
    if rows:
        r = torch.from_numpy(np.concatenate(rows)).long()
        c = torch.from_numpy(np.concatenate(cols)).long()
        scores[r, c] = -torch.inf
    return scores


def _target_matrix(targets: list[np.ndarray], n_items: int, device) -> torch.Tensor:
    rows = np.concatenate([np.full(len(t), i) for i, t in enumerate(targets)])
    cols = np.concatenate(targets)
    hit = torch.zeros((len(targets), n_items), dtype=torch.bool, device=device)
    hit[torch.from_numpy(rows).long(), torch.from_numpy(cols).long()] = True
    return hit


@dataclass
class RankingAccumulator:
    """Adds up per-user metrics over batches; :meth:`result` averages them.

    Parameters
    ----------
    ks : tuple of int
        Cut-offs, e.g. ``(10, 20)``.
    item_category : np.ndarray, optional
        Category index per item, for intra-list diversity.
    item_user_share : np.ndarray, optional
        Share of training users who interacted with each item, for novelty (smoothed so that an
        item nobody saw has a finite self-information).

    Examples
    --------
    >>> acc = RankingAccumulator(ks=(1,), n_items=4)
    >>> acc.add(torch.tensor([[0., 0., 0.9, 0.1]]), [np.array([], dtype=int)], [np.array([3])])
    >>> acc.result()["ndcg@1"]
    0.0
    """

    ks: tuple[int, ...]
    n_items: int
    item_category: np.ndarray | None = None
    item_user_share: np.ndarray | None = None
    sums: dict[str, float] = field(default_factory=dict)
    users: int = 0
    recommended: set = field(default_factory=set)

    def _add(self, name: str, values: torch.Tensor) -> None:
        self.sums[name] = self.sums.get(name, 0.0) + float(values.sum())

    def add(self, scores: torch.Tensor, histories: list[np.ndarray], targets: list[np.ndarray]) -> None:
        """Rank every item for a batch of users (``scores``: users × n_items) and add their metrics."""
        scores = mask_scores(scores.float(), histories, targets)
        hit = _target_matrix(targets, self.n_items, scores.device)
        n_targets = hit.sum(1).clamp(min=1).float()
        # Lists are never longer than the recommendable catalog (padding and OOV are at -inf).
        depth = min(max(*self.ks, 10), self.n_items - FIRST_INDEX)
        top = torch.topk(scores, depth, dim=1).indices
        top_hit = hit.gather(1, top).float()
        discounts = 1.0 / torch.log2(torch.arange(2, depth + 2, dtype=torch.float32, device=scores.device))
        for k in self.ks:
            hits_k, discount_k = top_hit[:, :k], discounts[:k]
            ideal = torch.cumsum(discount_k, 0)[(n_targets.clamp(max=len(discount_k)) - 1).long()]
            self._add(f"hr@{k}", (hits_k.sum(1) > 0).float())
            self._add(f"recall@{k}", hits_k.sum(1) / n_targets)
            self._add(f"ndcg@{k}", (hits_k * discount_k).sum(1) / ideal)
        best_target = torch.where(hit, scores, torch.full_like(scores, -torch.inf)).max(1).values
        above = (scores > best_target.unsqueeze(1)).sum(1)
        tied = (scores == best_target.unsqueeze(1)).sum(1) - 1  # other items scored exactly like the target
        rank = above + tied / 2 + 1  # the mean rank over ties: a tie never counts in the model's favour
        self._add("mrr", 1.0 / rank.float())
        top10 = top[:, :10].cpu().numpy()
        self.recommended.update(np.unique(top10).tolist())
        if self.item_category is not None:
            cats = self.item_category[top10]
            pairs = top10.shape[1] * (top10.shape[1] - 1)
            different = (cats[:, :, None] != cats[:, None, :]).sum((1, 2)) / max(pairs, 1)
            self._add("diversity@10", torch.from_numpy(different))
        if self.item_user_share is not None:
            self._add("novelty@10", torch.from_numpy(-np.log2(self.item_user_share[top10]).mean(1)))
        self.users += len(targets)

    def result(self) -> dict[str, float]:
        out = {name: total / max(self.users, 1) for name, total in self.sums.items()}
        out["coverage@10"] = len(self.recommended) / max(self.n_items - FIRST_INDEX, 1)
        out["users"] = self.users
        return out


def sampled_ranks(scores: torch.Tensor, histories: list[np.ndarray], targets: list[np.ndarray],
                  n_negatives: int, rng: np.random.Generator) -> np.ndarray:
    """Rank of the first target among ``n_negatives`` uniformly sampled unseen items (1 = best).

    Only for comparing with older papers that report "sampled 100 negatives" metrics; these are
    several times higher than full-ranking metrics and never comparable with them.
    """
    n_items = scores.shape[1]
    ranks = np.empty(len(targets), dtype=np.int64)
    for row, (history, target) in enumerate(zip(histories, targets, strict=True)):
        excluded = np.union1d(history, target)
        negatives = rng.integers(FIRST_INDEX, n_items, size=n_negatives * 2 + len(excluded))
        negatives = negatives[~np.isin(negatives, excluded)][:n_negatives]
        candidates = scores[row, torch.from_numpy(negatives)]
        target_score = scores[row, int(target[0])]
        # Ties with the target count half, as in the full ranking.
        ranks[row] = int((candidates > target_score).sum()) + int((candidates == target_score).sum()) // 2 + 1
    return ranks
