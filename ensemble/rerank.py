"""The re-rank stage: from ranked candidates to the list a user sees, each item with a reason.

Per user, in this order: drop seen, excluded, unavailable and padding candidates; turn ranker scores into a
relevance in [0, 1] (min-max over the remaining candidates), with a ranker that has objective heads plus the weighted
objectives (:mod:`recstack.ensemble.objectives`: P(click), P(add-to-cart), P(purchase), P(purchase) × business
value, by each user's weights), plus a freshness boost for new items; then fill
the list greedily by maximal marginal relevance (``λ·relevance − (1−λ)·max cosine to the items already
chosen``), never letting more than ``max_category_run`` items of one category follow each other while another
category is left to choose from, with promoted items placed in their fixed positions.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from recstack.ensemble.catalog import Catalog
from recstack.ensemble.config import OBJECTIVE_WEIGHTS, ObjectiveWeights, RerankConfig
from recstack.ensemble.objectives import min_max, objective_terms, relative_value
from recstack.ensemble.retrieve import ANN, COVISITED, EXPLORATION, PADDING, TRENDING, known_items
from recstack.ensemble.rowsets import RowSets, first_occurrence

PROMOTED = 4
POPULAR_REASON = "popular right now"
VALUE_REASON = "often bought by shoppers like you"  # moved up by the revenue objective
REVENUE = OBJECTIVE_WEIGHTS.index("revenue")


@dataclass
class Recommendations:
    """One user's final list: item indices, relevance scores and reasons, best first."""

    items: np.ndarray
    scores: np.ndarray
    reasons: list[str]


class Reranker:
    """Applies exclusions, diversity, freshness and business rules, and explains every item.

    :meth:`batch` re-ranks many users at once, each greedy step one array operation over all of them. A user's
    list is computed from that user's rows alone (per-user matrix products), so it does not depend on who else is
    in the batch: the online funnel, Triton's ``rerank`` model and the batch scorer give the same lists.

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
        self.value = relative_value(catalog.value)

    def __call__(self, candidates: np.ndarray, scores: np.ndarray, sources: np.ndarray, anchors: np.ndarray,
                 history: np.ndarray, exclude, limit: int, objectives: np.ndarray | None = None,
                 weights: ObjectiveWeights | None = None) -> Recommendations:
        """One user's list: :meth:`batch` on one row."""
        return self.batch(candidates[None], scores[None], sources[None], anchors[None],
                          np.asarray(history, dtype=np.int64)[None],
                          np.asarray(exclude, dtype=np.int64).reshape(1, -1), [limit],
                          None if objectives is None else np.asarray(objectives)[None], weights)[0]

    def batch(self, candidates: np.ndarray, scores: np.ndarray, sources: np.ndarray, anchors: np.ndarray,
              item_seq: np.ndarray, exclude: np.ndarray, limits, objectives: np.ndarray | None = None,
              weights: ObjectiveWeights | np.ndarray | None = None) -> list[Recommendations]:
        """``candidates``, ``scores``, ``sources``, ``anchors`` (B, N), left-padded ``item_seq`` (B, L),
        ``exclude`` (B, E) 0-padded and ``limits`` (B,): one list per user. ``objectives`` (B, N, 3): the ranker
        heads' probabilities, None for a ranker without heads (relevance alone, whatever the weights);
        ``weights``: per user (B, 4, ``OBJECTIVE_WEIGHTS`` order) or for all, None for the configured ones."""
        catalog, cfg = self.catalog, self.config
        candidates = np.asarray(candidates, dtype=np.int64)
        history = known_items(item_seq, len(catalog))
        limits = np.asarray(limits, dtype=np.int64).reshape(-1)
        blocked = RowSets(np.concatenate([history, np.asarray(exclude, dtype=np.int64)], axis=1), len(catalog))
        valid = (sources != PADDING) & catalog.available[candidates] & ~blocked.contains(candidates)
        valid &= first_occurrence(candidates, len(catalog))
        relevance, by_value = self._objectives(min_max(scores, valid), valid, candidates, objectives, weights)
        relevance += cfg.freshness_boost * catalog.is_new[candidates]
        order = np.argsort(np.where(valid, -relevance, np.inf), axis=1, kind="stable")[:, : cfg.pool]
        rows = np.take_along_axis(np.where(valid, np.arange(valid.shape[1]), -1), order, 1)  # -1: not in the pool
        items = np.take_along_axis(candidates, order, 1)
        chosen = _Chosen(len(items), int(limits.max(initial=0)))
        promoted = self._promoted_slots(blocked, limits, chosen.width)
        # A user's promoted items appear in their slots only.
        shown = (items[:, :, None] == np.where(promoted >= 0, promoted, -1)[:, None, :]).any(2)
        pool = _Pool(catalog, cfg, items, np.take_along_axis(relevance, order, 1), rows, ~shown)
        for position in range(chosen.width):
            slot = promoted[:, position]
            active = (position < limits) & ~chosen.done
            chosen.done |= active & (slot < 0) & ~pool.open.any(1)
            active &= ~chosen.done
            if (placed := active & (slot >= 0)).any():
                chosen.add(position, placed, *pool.place(placed, slot[placed]))
            if (free := active & (slot < 0)).any():
                chosen.add(position, free, *pool.pick(free, self._capped(chosen, promoted, position, free)))
        return self._lists(chosen, promoted, sources, anchors, history, by_value)

    def _objectives(self, relevance: np.ndarray, valid: np.ndarray, candidates: np.ndarray,
                    objectives: np.ndarray | None, weights) -> tuple[np.ndarray, np.ndarray]:
        """Relevance with the weighted objectives added (unchanged without heads or weights), and (B, N) whether
        the revenue objective moved a candidate up: it ranks higher than by relevance alone, and its revenue term
        is the largest of the objective terms."""
        by_value = np.zeros(valid.shape, dtype=bool)
        weights = self.config.objectives if weights is None else weights
        if objectives is None or not (weights.active if isinstance(weights, ObjectiveWeights) else np.any(weights)):
            return relevance, by_value
        terms = objective_terms(np.asarray(objectives), self.value[candidates], weights)
        combined = relevance + terms.sum(-1)
        if terms[..., REVENUE].any():
            by_value = (valid & (_ranks(combined, valid) < _ranks(relevance, valid))
                        & (terms[..., REVENUE] > 0) & (terms[..., REVENUE] == terms.max(-1)))
        return combined, by_value

    def _promoted_slots(self, blocked: RowSets, limits: np.ndarray, width: int) -> np.ndarray:
        """(B, width + 1): the item promoted into each position for each user, -1 where none. A promoted item
        shows within the user's limit, when available and neither seen nor excluded."""
        slots = np.full((len(limits), width + 1), -1, dtype=np.int64)
        for position, item in self.promoted.items():
            if position < width and self.catalog.available[item]:
                keep = (position < limits) & ~blocked.contains(np.full((len(limits), 1), item))[:, 0]
                slots[keep, position] = item
        return slots

    def _capped(self, chosen: _Chosen, promoted: np.ndarray, position: int, users: np.ndarray) -> np.ndarray:
        """(U, 2) categories ``users`` may not place at ``position`` (NO_CATEGORY for none): one more of a
        category would make a run longer than ``max_category_run``, counting the items already chosen before it
        and the promoted items fixed right after it. Only the latest category and the next promoted item's can."""
        last, run = chosen.last_category[users], chosen.run[users]
        ahead = promoted[users, position + 1:]  # at least one column: ``promoted`` is one wider than the lists
        ahead_categories = np.where(ahead >= 0, self.catalog.category_idx[np.maximum(ahead, 0)], NO_CATEGORY)
        capped = np.full((len(last), 2), NO_CATEGORY, dtype=np.int64)
        for column, category in enumerate((last, ahead_categories[:, 0])):
            same = ahead_categories == category[:, None]
            following = np.where(same.all(1), same.shape[1], np.argmin(same, 1))  # promoted run right after
            length = 1 + np.where(category == last, run, 0) + following
            capped[:, column] = np.where((category != NO_CATEGORY) & (length > self.config.max_category_run),
                                         category, NO_CATEGORY)
        return capped

    def _lists(self, chosen: _Chosen, promoted: np.ndarray, sources: np.ndarray, anchors: np.ndarray,
               history: np.ndarray, by_value: np.ndarray) -> list[Recommendations]:
        """Each user's chosen items, then the promoted slots past the end of a short list (their items still
        show, in slot order), each with its reason."""
        count = chosen.count[:, None]
        slots = np.arange(promoted.shape[1])
        shown = np.concatenate([slots[:chosen.width] < count, (slots >= count) & (promoted >= 0)], 1)
        order = np.argsort(~shown, axis=1, kind="stable")  # what is shown first, in order

        def listed(*parts: np.ndarray) -> np.ndarray:
            return np.take_along_axis(np.concatenate(parts, 1), order, 1)

        items = listed(chosen.items, promoted)
        scores = listed(chosen.scores, np.zeros(promoted.shape)).astype(np.float32)
        rows = listed(chosen.rows, np.full(promoted.shape, -1))
        lengths = shown.sum(1)
        reasons = self._reasons(items, rows, np.arange(items.shape[1]) < lengths[:, None], sources, anchors,
                                history, by_value)
        return [Recommendations(items[user, :n], scores[user, :n], reasons[user, :n].tolist())
                for user, n in enumerate(lengths)]

    def _reasons(self, items: np.ndarray, rows: np.ndarray, inside: np.ndarray, sources: np.ndarray,
                 anchors: np.ndarray, history: np.ndarray, by_value: np.ndarray) -> np.ndarray:
        """(B, W) reasons of the listed items (``rows``: their candidate columns, -1 promoted; ``inside``: the
        lists' items), "" elsewhere. Which reason is one array operation for the batch; each distinct reason is
        written once (a list names few items of its user's history)."""
        catalog = self.catalog
        at = np.maximum(rows, 0)
        source = np.where(rows < 0, PROMOTED, np.take_along_axis(sources, at, 1))
        anchor = np.where(rows < 0, -1, np.take_along_axis(anchors, at, 1))
        valued = (rows >= 0) & np.take_along_axis(by_value, at, 1)
        nearest = self._nearest(items, inside, history)
        kind = np.select([source == PROMOTED, valued, (source == COVISITED) & (anchor >= 0),
                          (source == EXPLORATION) | catalog.is_new[items], source == TRENDING,
                          (source == ANN) & (nearest >= 0)],
                         [_BY_PROMOTION, _BY_VALUE, _BY_COVISITATION, _BY_NEWNESS, _BY_TREND, _BY_HISTORY],
                         _BY_POPULARITY)
        subject = np.select([kind == _BY_COVISITATION, kind == _BY_TREND, kind == _BY_HISTORY],
                            [anchor, items, nearest], -1)
        keys, which = np.unique((kind * (len(catalog) + 1) + subject + 1)[inside], return_inverse=True)
        texts = np.array([self._reason(*divmod(int(key), len(catalog) + 1)) for key in keys] + [""], dtype=object)
        out = np.full(items.shape, len(keys))  # "" outside the lists
        out[inside] = which.reshape(-1)
        return texts[out]

    def _nearest(self, items: np.ndarray, inside: np.ndarray, history: np.ndarray) -> np.ndarray:
        """(B, W): the recent history item most like each listed item (-1 without history); one product per user,
        so a reason does not depend on who else is in the batch."""
        vectors = self.catalog.vectors
        nearest = np.full(items.shape, -1, dtype=np.int64)
        for user, count in enumerate(inside.sum(1)):
            recent = history[user][history[user] > 1][-self.config.reason_window:]
            if len(recent) and count:
                listed = items[user, :count]
                nearest[user, :count] = recent[np.argmax(vectors[recent] @ vectors[listed].T, axis=0)]
        return nearest

    def _reason(self, kind: int, subject_key: int) -> str:
        """The reason of ``kind`` about item ``subject_key`` - 1 (0: about no item)."""
        catalog, item = self.catalog, subject_key - 1
        if kind == _BY_PROMOTION:
            return "promoted"
        if kind == _BY_VALUE:
            return VALUE_REASON
        if kind == _BY_COVISITATION:
            return f"customers who viewed {catalog.title_of(item)} also viewed this"
        if kind == _BY_NEWNESS:
            return "new arrival"
        if kind == _BY_TREND and catalog.categories[item]:
            return f"trending in {catalog.categories[item]}"
        if kind == _BY_HISTORY:
            return f"because you viewed {catalog.title_of(item)}"
        return POPULAR_REASON


# Why an item is listed, in order of precedence: promoted, moved up by the revenue objective, co-visited with a
# history item, new, trending, like a history item (ANN), popular.
_BY_PROMOTION, _BY_VALUE, _BY_COVISITATION, _BY_NEWNESS, _BY_TREND, _BY_HISTORY, _BY_POPULARITY = range(7)
NO_CATEGORY = -(2**62)  # below every category index: matches no item


class _Chosen:
    """The lists being filled, (B, width): item, score and candidate column (-1: promoted) per position, and the
    category that ends each list with the length of its run."""

    def __init__(self, users: int, width: int):
        self.width = width
        self.items = np.zeros((users, width), dtype=np.int64)
        self.scores = np.zeros((users, width), dtype=np.float64)
        self.rows = np.full((users, width), -1, dtype=np.int64)
        self.count = np.zeros(users, dtype=np.int64)
        self.done = np.zeros(users, dtype=bool)
        self.last_category = np.full(users, NO_CATEGORY, dtype=np.int64)
        self.run = np.zeros(users, dtype=np.int64)

    def add(self, position: int, users: np.ndarray, items, scores, rows, categories) -> None:
        self.items[users, position], self.scores[users, position], self.rows[users, position] = items, scores, rows
        self.count[users] = position + 1
        self.run[users] = np.where(categories == self.last_category[users], self.run[users] + 1, 1)
        self.last_category[users] = categories


class _Pool:
    """Each user's best candidates (B, P; ``rows`` -1 past the user's pool) for greedy maximal marginal
    relevance: what is still open, and each item's max cosine to the items already chosen."""

    def __init__(self, catalog: Catalog, config: RerankConfig, items, relevance, rows, open_):
        self.catalog, self.config = catalog, config
        self.items, self.relevance, self.rows = items, relevance, rows
        self.open = open_ & (rows >= 0)
        self.categories = catalog.category_idx[items]
        self.closest = np.zeros(items.shape)  # 0 until an item is chosen
        self.vectors = catalog.vectors[items]

    def _chosen(self, users: np.ndarray, vectors: np.ndarray) -> None:
        """Each of ``users`` chose an item with these vectors: its cosine to every pool item may be the closest.
        Only the chosen items' rows of the similarity matrix are computed (a quarter of it for 50 of 200), each
        user's from that user's vectors alone, so a list does not depend on who else is in the batch."""
        users = _rows_of(users, len(self.items))
        similarity = np.matmul(self.vectors[users], vectors[:, :, None])[:, :, 0]  # one BLAS product per user
        self.closest[users] = np.maximum(self.closest[users], similarity)

    def place(self, users: np.ndarray, items: np.ndarray):
        """Promoted ``items`` into their slots for ``users``: scored by their relevance when they were
        candidates, else 0."""
        inside = (self.items[users] == items[:, None]) & (self.rows[users] >= 0)
        scores = np.where(inside.any(1), self.relevance[users, np.argmax(inside, 1)], 0.0)
        self.open[users] &= ~inside
        self._chosen(users, self.catalog.vectors[items])
        return items, scores, np.full(len(items), -1), self.catalog.category_idx[items]

    def pick(self, users: np.ndarray, capped: np.ndarray):
        """The best open item by MMR for each of ``users``, skipping ``capped`` categories while another
        category is left to choose from."""
        lam = self.config.mmr_lambda
        rows = _rows_of(users, len(self.items))
        mmr = np.where(self.open[rows], lam * self.relevance[rows] - (1 - lam) * self.closest[rows], -np.inf)
        categories = self.categories[rows]
        limited = np.where((categories == capped[:, :1]) | (categories == capped[:, 1:]), -np.inf, mmr)
        mmr = np.where(np.isfinite(limited).any(1, keepdims=True), limited, mmr)
        best = np.argmax(mmr, 1)
        index = np.flatnonzero(users)
        self.open[index, best] = False
        self._chosen(users, self.vectors[index, best])
        return (self.items[index, best], self.relevance[index, best], self.rows[index, best],
                categories[np.arange(len(index)), best])


def _ranks(scores: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """(B, N): each candidate's place when a row's valid candidates are sorted best first (invalid ones last)."""
    order = np.argsort(np.where(valid, -scores, np.inf), axis=1, kind="stable")
    ranks = np.empty_like(order)
    np.put_along_axis(ranks, order, np.arange(order.shape[1])[None].repeat(len(order), 0), 1)
    return ranks


def _rows_of(users: np.ndarray, count: int) -> np.ndarray | slice:
    """The rows a mask of users selects; every row as a slice, a view rather than a copy of the (B, P, dim) pool."""
    return slice(None) if users.all() and len(users) == count else users


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
