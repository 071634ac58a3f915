"""The retrieve stage: merge candidate sources into a fixed-size candidate list per user.

Sources, in the order they claim slots: co-visitation of the user's latest items ("also viewed / bought
together"), trending items, exploration slots for new items (the new items nearest to the user's query vector,
so a cold item is placed by its content embedding), and two-tower ANN search filling the rest. Items the user
has already seen are never candidates. Every candidate carries its source and, for co-visitation, the history
item that brought it (the re-rank stage turns both into a reason).
"""

from __future__ import annotations

import faiss
import numpy as np
from recstack.ensemble.catalog import COVISITATION_KINDS, Catalog
from recstack.ensemble.config import RetrieveConfig
from recstack.ensemble.rowsets import RowSets, first_occurrence
from recstack.preprocessing.vocabulary import OOV

# Candidate sources (the ``sources`` tensor); PADDING marks unused slots of a short list.
PADDING, ANN, COVISITED, TRENDING, EXPLORATION = -1, 0, 1, 2, 3


def known_items(item_seq: np.ndarray, n_items: int) -> np.ndarray:
    """Histories with items newer than this catalog (indices past its end) read as OOV; negative indices
    are an error.

    Examples
    --------
    >>> known_items(np.array([[0, 5, 9]]), n_items=8).tolist()
    [[0, 5, 1]]
    """
    item_seq = np.asarray(item_seq, dtype=np.int64)
    if item_seq.size and item_seq.min() < 0:
        raise ValueError("item_seq holds negative item indices")
    return np.where(item_seq >= n_items, OOV, item_seq)


class Retriever:
    """Turns query vectors and histories into candidates.

    Examples
    --------
    >>> retriever = Retriever(catalog, index, RetrieveConfig(candidates=500))  # doctest: +SKIP
    >>> candidates, sources, anchors = retriever(query_vectors, item_seq)  # doctest: +SKIP
    >>> candidates.shape  # doctest: +SKIP
    (1, 500)
    """

    def __init__(self, catalog: Catalog, index: faiss.Index, config: RetrieveConfig = RetrieveConfig()):
        self.catalog = catalog
        self.index = index
        self.config = config
        self.trending = catalog.trending(config.trending)
        new = np.flatnonzero(catalog.is_new & catalog.available)
        self.new_items, self.new_vectors = new, catalog.vectors[new]
        self.unavailable = int((~catalog.available).sum())
        self.other_sources = int(round(config.candidates * config.covisitation_share)) + config.trending \
            + config.exploration
        # FAISS on a GPU answers at most 2048 neighbours per query.
        self.max_k = 2048 if type(index).__name__.startswith("Gpu") else len(catalog)

    def __call__(self, queries: np.ndarray, item_seq: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``queries`` (B, dim) and left-padded ``item_seq`` (B, L) → candidates, sources, anchors (B, N)."""
        return self.merge(queries, item_seq, self.search(queries, item_seq.shape[1]))

    def ann_depth(self, width: int) -> int:
        """How many ANN results a batch whose ``item_seq`` is ``width`` wide asks for: extra ones make up for what
        :meth:`merge` filters out (seen and unavailable items, items the other sources took already)."""
        extra = width + self.unavailable + self.other_sources + 16
        return min(len(self.catalog), self.config.candidates + extra, self.max_k)

    def search(self, queries: np.ndarray, width: int) -> np.ndarray:
        """(B, :meth:`ann_depth`) nearest items to each query, best first; one search for the batch."""
        return self.index.search(np.ascontiguousarray(queries, dtype=np.float32), self.ann_depth(width))[1]

    def merge(self, queries: np.ndarray, item_seq: np.ndarray, ann: np.ndarray
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Candidates, sources and anchors (B, N) from the ANN results of :meth:`search` and the other sources;
        ``ann`` may be deeper than this batch asks for (one search for many batches, the deepest first): only
        its first :meth:`ann_depth` columns count, as if this batch had been searched alone.

        Every source is one array operation for the whole batch (a Python loop per user cost as much as the
        ranker: benchmarks/README.md, "Batch scoring"), and a row's candidates depend on that row alone.
        """
        cfg, n_items = self.config, len(self.catalog)
        item_seq = known_items(item_seq, n_items)
        picked = _Picked(len(queries), cfg.candidates, n_items)
        self._covisited(picked, item_seq)
        picked.take(np.broadcast_to(self.trending, (len(queries), len(self.trending))), TRENDING, item_seq,
                    self._available)
        if cfg.exploration and len(self.new_items):
            self._explore(picked, queries, item_seq)
        # FAISS returns each item once, so the ANN results need no check for repeats.
        picked.take(ann[:, :self.ann_depth(item_seq.shape[1])], ANN, item_seq, self._available, distinct=True)
        return picked.candidates, picked.sources, picked.anchors

    def _available(self, items: np.ndarray) -> np.ndarray:
        return (items >= 0) & self.catalog.available[np.maximum(items, 0)]

    def _covisitation(self, anchors: np.ndarray) -> np.ndarray:
        """(B, M): the co-visited items of one anchor per row (-1: none, also in between the kinds), every
        kind's neighbours in :data:`COVISITATION_KINDS` order, each by count."""
        blocks = []
        for kind in COVISITATION_KINDS:
            if (co := self.catalog.covisitation.get(kind)) is None:
                continue
            known = (anchors >= 0) & (anchors + 1 < len(co.indptr))
            start = np.where(known, co.indptr[np.where(known, anchors, 0)], 0)
            length = np.where(known, co.indptr[np.where(known, anchors, 0) + 1] - start, 0)
            offset = np.arange(length.max(initial=0))
            inside = offset < length[:, None]
            blocks.append(np.where(inside, co.indices[np.where(inside, start[:, None] + offset, 0)], -1)
                          if len(co.indices) else np.full((len(anchors), 0), -1))
        return np.concatenate(blocks, axis=1)

    def _covisited(self, picked: _Picked, item_seq: np.ndarray) -> None:
        """The co-visitation budget over each user's distinct latest real items (OOV has no neighbours), newest
        first, in equal shares; what one anchor leaves of its share goes to the next."""
        cfg = self.config
        if not any(kind in self.catalog.covisitation for kind in COVISITATION_KINDS):
            return
        newest_first = item_seq[:, ::-1]
        anchor = (newest_first > OOV) & first_occurrence(newest_first, len(self.catalog))
        order = np.cumsum(anchor, 1)
        anchor &= order <= cfg.covisitation_anchors
        rows, columns = np.nonzero(anchor)
        latest = np.full((len(item_seq), cfg.covisitation_anchors), -1, dtype=np.int64)
        latest[rows, order[rows, columns] - 1] = newest_first[rows, columns]
        count = anchor.sum(1)
        budget = np.full(len(item_seq), int(round(cfg.candidates * cfg.covisitation_share)))
        for done in range(cfg.covisitation_anchors):
            active = (done < count) & (budget > 0)
            if not active.any():
                break
            share = np.where(active, -(-budget // np.maximum(count - done, 1)), 0)
            anchors = np.where(active, latest[:, done], -1)
            budget -= picked.take(self._covisitation(anchors), COVISITED, item_seq, self._available, share,
                                  anchors)

    def _explore(self, picked: _Picked, queries: np.ndarray, item_seq: np.ndarray) -> None:
        """The exploration slots: the new items nearest to each user's query vector, best first."""
        cfg = self.config
        # One product per row, not one for the batch: a matrix product rounds differently with the batch size,
        # and a user's list must not depend on whom Triton's batcher put beside them.
        scores = np.stack([self.new_vectors @ query for query in queries])
        seen_count = ((item_seq > 0) & first_occurrence(item_seq, len(self.catalog))).sum(1)
        # Seen and taken items are skipped, so that many more than the slots may be needed.
        depth = np.minimum(scores.shape[1], cfg.exploration + seen_count + picked.count)
        deepest = int(depth.max())
        best = np.argpartition(-scores, deepest - 1, axis=1)[:, :deepest]
        best_scores = np.take_along_axis(scores, best, 1)
        best = np.take_along_axis(best, np.lexsort((best, -best_scores), axis=1), 1)  # ties: the lower index first
        items = np.where(np.arange(deepest) < depth[:, None], self.new_items[best], -1)
        picked.take(items, EXPLORATION, item_seq, self._available, np.full(len(queries), cfg.exploration))


class _Picked:
    """The candidate lists being filled, source by source: (B, N) items (0 and source PADDING where unfilled),
    sources and anchors, and how many each row holds."""

    def __init__(self, users: int, size: int, n_items: int):
        self.size, self.n_items = size, n_items
        self.candidates = np.zeros((users, size), dtype=np.int64)
        self.sources = np.full((users, size), PADDING, dtype=np.int8)
        self.anchors = np.full((users, size), -1, dtype=np.int64)
        self.count = np.zeros(users, dtype=np.int64)

    def take(self, items: np.ndarray, source: int, seen: np.ndarray, available, limit: np.ndarray | None = None,
             anchors: np.ndarray | None = None, distinct: bool = False) -> np.ndarray:
        """Append to each row, in order, its ``items`` (B, M; -1: none) that are available, not ``seen`` (B, L)
        and not picked yet, at most ``limit`` per row (B,; None: as many as fit); returns how many each row took."""
        # Seen and picked in one set (0, padding, fills the unused slots: never available, so never matched).
        blocked = RowSets(np.concatenate([seen, self.candidates[:, :self.count.max(initial=0)]], 1), self.n_items)
        ok = available(items) & ~blocked.contains(np.maximum(items, 0))
        if not distinct:
            ok &= first_occurrence(np.maximum(items, 0), self.n_items)
        rank = np.cumsum(ok, 1)
        ok &= self.count[:, None] + rank <= self.size
        if limit is not None:
            ok &= rank <= limit[:, None]
        rows, columns = np.nonzero(ok)
        slots = self.count[rows] + rank[rows, columns] - 1
        self.candidates[rows, slots] = items[rows, columns]
        self.sources[rows, slots] = source
        if anchors is not None:
            self.anchors[rows, slots] = anchors[rows]
        taken = ok.sum(1)
        self.count += taken
        return taken
