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
        its first :meth:`ann_depth` columns count, as if this batch had been searched alone."""
        cfg = self.config
        batch = len(queries)
        item_seq = known_items(item_seq, len(self.catalog))
        ann = ann[:, :self.ann_depth(item_seq.shape[1])]
        candidates = np.zeros((batch, cfg.candidates), dtype=np.int64)
        sources = np.full((batch, cfg.candidates), PADDING, dtype=np.int8)
        anchors = np.full((batch, cfg.candidates), -1, dtype=np.int64)
        explore = cfg.exploration and len(self.new_items)
        for row in range(batch):
            # One product per row, not one for the batch: a matrix product rounds differently with the batch
            # size, and a user's list must not depend on whom Triton's batcher put beside them.
            new_scores = self.new_vectors @ queries[row] if explore else None
            items, kinds, anchor_of = self._merge(new_scores, item_seq[row], ann[row])
            count = len(items)
            candidates[row, :count], sources[row, :count], anchors[row, :count] = items, kinds, anchor_of
        return candidates, sources, anchors

    def _merge(self, new_scores: np.ndarray | None, history: np.ndarray, ann: np.ndarray
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """One user's candidates, sources and anchors from the ANN results and the affinity to each new item.

        The small sources go item by item; the ANN results, most of the list, are filtered with array operations
        (a Python loop over them is slow at 1M items: benchmarks/README.md, "Measured design decisions").
        """
        catalog, cfg = self.catalog, self.config
        seen = set(history[history > 0].tolist())
        picked: list[tuple[int, int, int]] = []
        taken: set[int] = set()

        def take(items, source: int, anchor: int = -1, limit: int | None = None) -> int:
            added = 0
            for item in items:
                item = int(item)
                if len(picked) >= cfg.candidates or (limit is not None and added >= limit):
                    break
                if item < 0 or item in seen or item in taken or not catalog.available[item]:
                    continue
                picked.append((item, source, anchor))
                taken.add(item)
                added += 1
            return added

        budget = int(round(cfg.candidates * cfg.covisitation_share))
        # The distinct latest real items (OOV has no neighbours); a share one anchor leaves goes to the next.
        latest = list(dict.fromkeys(int(i) for i in history[history > 1][::-1]))[: cfg.covisitation_anchors]
        kinds = [catalog.covisitation[kind] for kind in COVISITATION_KINDS if kind in catalog.covisitation]
        for done, anchor in enumerate(latest):
            if budget <= 0 or not kinds:
                break
            share = -(-budget // (len(latest) - done))
            neighbours = np.concatenate([co.neighbours(anchor)[0] for co in kinds])
            budget -= take(neighbours, COVISITED, anchor, limit=share)
        take(self.trending, TRENDING)
        if new_scores is not None:
            # Seen and taken items are skipped, so that many more than the slots may be needed.
            depth = min(len(new_scores), cfg.exploration + len(seen) + len(taken))
            best = np.argpartition(-new_scores, depth - 1)[:depth]
            best = best[np.argsort(-new_scores[best], kind="stable")]
            take(self.new_items[best], EXPLORATION, limit=cfg.exploration)
        items = np.fromiter((p[0] for p in picked), dtype=np.int64, count=len(picked))
        room = cfg.candidates - len(picked)
        ann = ann[ann >= 0]
        blocked = np.fromiter(seen | taken, dtype=np.int64, count=len(seen | taken))
        # FAISS returns each item once, so filtering keeps the list free of duplicates.
        ann = ann[catalog.available[ann] & ~np.isin(ann, blocked)][:room]
        sources = np.concatenate([np.fromiter((p[1] for p in picked), dtype=np.int8, count=len(picked)),
                                  np.full(len(ann), ANN, dtype=np.int8)])
        anchors = np.concatenate([np.fromiter((p[2] for p in picked), dtype=np.int64, count=len(picked)),
                                  np.full(len(ann), -1, dtype=np.int64)])
        return np.concatenate([items, ann]), sources, anchors
