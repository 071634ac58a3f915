"""The non-personal lists: items similar to an item ("similar products", "customers also viewed",
"frequently bought together") and trending items, overall or within a category."""

from __future__ import annotations

import faiss
import numpy as np
from recstack.ensemble.catalog import Catalog
from recstack.ensemble.rerank import POPULAR_REASON, Recommendations

SIMILAR_KINDS = ("similar", "also_viewed", "bought_together")


class SimilarItems:
    """Neighbours of an item: nearest item vectors for ``similar``, co-occurrence lists for the other kinds
    (topped up with nearest vectors when an item has too few co-occurring items).

    Examples
    --------
    >>> SimilarItems(catalog, index)(item=42, limit=5, kind="also_viewed").reasons[0]  # doctest: +SKIP
    'customers who viewed Rioix Signature Plush Toy R815 also viewed this'
    """

    def __init__(self, catalog: Catalog, index: faiss.Index):
        self.catalog = catalog
        self.index = index

    def __call__(self, item: int, limit: int, kind: str = "similar") -> Recommendations:
        if kind not in SIMILAR_KINDS:
            raise ValueError(f"unknown kind {kind!r}; expected one of {SIMILAR_KINDS}")
        catalog = self.catalog
        if not 0 <= item < len(catalog) or catalog.item_ids[item] is None:
            raise ValueError(f"unknown item index {item}")
        title = catalog.title_of(item)
        chosen: dict[int, tuple[float, str]] = {}
        if kind != "similar" and kind in catalog.covisitation:
            neighbours, counts = catalog.covisitation[kind].neighbours(item)
            reason = (f"customers who viewed {title} also viewed this" if kind == "also_viewed"
                      else f"frequently bought together with {title}")
            top = counts.max() if len(counts) else 1.0
            for other, count in zip(neighbours.tolist(), counts.tolist(), strict=True):
                if len(chosen) < limit and catalog.available[other] and other != item:
                    chosen[other] = (count / top, reason)
        if len(chosen) < limit:
            k = min(len(catalog), limit + len(chosen) + 8)
            sims, found = self.index.search(catalog.vectors[item][None, :], k)
            for other, sim in zip(found[0].tolist(), sims[0].tolist(), strict=True):
                if len(chosen) < limit and other >= 0 and other != item and other not in chosen \
                        and catalog.available[other]:
                    chosen[other] = (sim, f"similar to {title}")
        return Recommendations(np.array(list(chosen), dtype=np.int64),
                               np.array([s for s, _ in chosen.values()], dtype=np.float32),
                               [r for _, r in chosen.values()])


def trending(catalog: Catalog, limit: int, category: str = "") -> Recommendations:
    """The most popular available items right now (recent, event-type-weighted), optionally in a category."""
    items = catalog.trending(limit, category)
    top = catalog.popularity[items].max() if len(items) else 1.0
    reason = f"trending in {category}" if category else POPULAR_REASON
    return Recommendations(items, (catalog.popularity[items] / (top or 1.0)).astype(np.float32),
                           [reason] * len(items))
