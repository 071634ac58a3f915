"""The re-rank stage: from ranked candidates to the list a user sees, each item with a reason.

Per user, in this order: drop seen, excluded, unavailable and padding candidates; turn ranker scores into a
relevance in [0, 1] (min-max over the remaining candidates) plus a freshness boost for new items; then fill
the list greedily by maximal marginal relevance (``λ·relevance − (1−λ)·max cosine to the items already
chosen``), never letting more than ``max_category_run`` items of one category follow each other while another
category is left to choose from, with promoted items placed in their fixed positions.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from recstack.ensemble.catalog import Catalog
from recstack.ensemble.config import RerankConfig
from recstack.ensemble.retrieve import ANN, COVISITED, EXPLORATION, PADDING, TRENDING, known_items

PROMOTED = 4
POPULAR_REASON = "popular right now"


@dataclass
class Recommendations:
    """One user's final list: item indices, relevance scores and reasons, best first."""

    items: np.ndarray
    scores: np.ndarray
    reasons: list[str]


class Reranker:
    """Applies exclusions, diversity, freshness and business rules, and explains every item.

    Examples
    --------
    >>> reranker = Reranker(catalog)  # doctest: +SKIP
    >>> top = reranker(candidates[0], scores[0], sources[0], anchors[0], item_seq[0], [], 10)  # doctest: +SKIP
    >>> top.reasons[0]  # doctest: +SKIP
    'because you viewed Elynova Sport Dog Food V675'
    """

    def __init__(self, catalog: Catalog, config: RerankConfig = RerankConfig()):
        self.catalog = catalog
        self.config = config
        promoted = catalog.index_of([item for item, _ in catalog.rules.promoted])
        self.promoted = {position: int(item) for (_, position), item in zip(catalog.rules.promoted, promoted,
                                                                             strict=True) if item >= 0}

    def __call__(self, candidates: np.ndarray, scores: np.ndarray, sources: np.ndarray, anchors: np.ndarray,
                 history: np.ndarray, exclude, limit: int) -> Recommendations:
        catalog, cfg = self.catalog, self.config
        history = known_items(history, len(catalog))
        blocked = np.union1d(history[history > 0], np.asarray(exclude, dtype=np.int64))
        valid = (sources != PADDING) & catalog.available[candidates] & ~np.isin(candidates, blocked)
        valid &= _first_occurrence(candidates)
        rows = np.flatnonzero(valid)
        items, raw = candidates[rows], scores[rows].astype(np.float64)
        spread = raw.max() - raw.min() if len(raw) else 0.0
        relevance = (raw - raw.min()) / spread if spread > 0 else np.ones_like(raw)
        relevance += cfg.freshness_boost * catalog.is_new[items]
        order = np.argsort(-relevance, kind="stable")[: cfg.pool]
        rows, items, relevance = rows[order], items[order], relevance[order]
        promoted = {pos: item for pos, item in self.promoted.items()
                    if pos < limit and catalog.available[item] and item not in blocked}
        vectors = catalog.vectors[items]
        categories = catalog.category_idx[items]
        # One product for the whole pool: a matrix-vector product per chosen item cost more than the MMR itself.
        similarity = vectors @ vectors.T
        closest = np.zeros(len(items))  # max cosine to the chosen items (0 until one is chosen)
        open_ = ~np.isin(items, list(promoted.values()))  # promoted items appear in their slots only
        chosen: list[tuple[int, float, int]] = []  # (item, score, row in candidates or -1 for promoted)
        chosen_categories: list[int] = []
        for position in range(limit):
            if position in promoted:
                item = promoted[position]
                inside = np.flatnonzero(items == item)
                score = float(relevance[inside[0]]) if len(inside) else 0.0
                open_[inside] = False
                chosen.append((item, score, -1))
                picked_similarity, picked_category = vectors @ catalog.vectors[item], int(catalog.category_idx[item])
            else:
                if not open_.any():
                    break
                mmr = np.where(open_, cfg.mmr_lambda * relevance - (1 - cfg.mmr_lambda) * closest, -np.inf)
                blocked = [c for c in np.unique(categories[open_])
                           if self._run_length(c, chosen_categories, position, promoted) > cfg.max_category_run]
                if blocked:
                    capped = np.where(np.isin(categories, blocked), -np.inf, mmr)
                    if np.isfinite(capped).any():  # only when another category is left to choose from
                        mmr = capped
                best = int(np.argmax(mmr))
                open_[best] = False
                chosen.append((int(items[best]), float(relevance[best]), int(rows[best])))
                picked_similarity, picked_category = similarity[best], int(categories[best])
            closest = np.maximum(closest, picked_similarity)
            chosen_categories.append(picked_category)
        # Promoted slots past the end of a short list still show their items, in slot order.
        chosen += [(item, 0.0, -1) for pos, item in sorted(promoted.items()) if pos >= len(chosen)]
        reasons = [self._reason(item, row, sources, anchors, history) for item, _, row in chosen]
        return Recommendations(np.array([c[0] for c in chosen], dtype=np.int64),
                               np.array([c[1] for c in chosen], dtype=np.float32), reasons)

    def _run_length(self, category: int, chosen: list[int], position: int, promoted: dict[int, int]) -> int:
        """Length of the run of ``category`` that placing it at ``position`` makes, counting the items already
        chosen before it and the promoted items fixed right after it."""
        run = 1
        for previous in reversed(chosen):
            if previous != category:
                break
            run += 1
        following = position + 1
        while following in promoted and self.catalog.category_idx[promoted[following]] == category:
            run += 1
            following += 1
        return run

    def _reason(self, item: int, row: int, sources: np.ndarray, anchors: np.ndarray, history: np.ndarray) -> str:
        catalog = self.catalog
        source = PROMOTED if row < 0 else int(sources[row])
        if source == PROMOTED:
            return "promoted"
        if source == COVISITED and anchors[row] >= 0:
            return f"customers who viewed {catalog.title_of(int(anchors[row]))} also viewed this"
        if source == EXPLORATION or catalog.is_new[item]:
            return "new arrival"
        if source == TRENDING:
            category = catalog.categories[item]
            return f"trending in {category}" if category else POPULAR_REASON
        recent = history[history > 1][-self.config.reason_window:]
        if source == ANN and len(recent):
            nearest = int(recent[np.argmax(catalog.vectors[recent] @ catalog.vectors[item])])
            return f"because you viewed {catalog.title_of(nearest)}"
        return POPULAR_REASON


def _first_occurrence(values: np.ndarray) -> np.ndarray:
    first = np.zeros(len(values), dtype=bool)
    first[np.unique(values, return_index=True)[1]] = True
    return first


def pack(results: list[Recommendations], catalog: Catalog, model_version: str) -> dict[str, np.ndarray]:
    """Lists of possibly different lengths as the ensemble's output tensors, padded to the longest:
    ``item_idx`` -1 and empty ``item_ids``/``reasons`` mark the padding."""
    width = max((len(r.items) for r in results), default=0)
    batch = len(results)
    item_idx = np.full((batch, width), -1, dtype=np.int64)
    scores = np.zeros((batch, width), dtype=np.float32)
    item_ids = np.full((batch, width), b"", dtype=object)
    reasons = np.full((batch, width), b"", dtype=object)
    for row, result in enumerate(results):
        n = len(result.items)
        item_idx[row, :n], scores[row, :n] = result.items, result.scores
        item_ids[row, :n] = [str(catalog.item_ids[i]).encode() for i in result.items]
        reasons[row, :n] = [reason.encode() for reason in result.reasons]
    versions = np.full((batch, 1), model_version.encode(), dtype=object)
    return {"item_ids": item_ids, "item_idx": item_idx, "scores": scores, "reasons": reasons,
            "model_version": versions}
