"""Popular items: the fallback that keeps every answer a 200, and trending lists that move with live events.

Two sources: the dataset's recent popularity (``item_stats`` of the prepared data, fixed until the next build)
and the weighted counts of the events posted since (the session store's live counts).
"""

from __future__ import annotations

from recstack.client.core.config import FacadeConfig
from recstack.client.core.guards import GuardedStore, leave_out
from recstack.client.core.metrics import Metrics
from recstack.client.core.sessions import SessionStore
from recstack.client.core.shop import Shop
from recstack.client.recommendation import Recommendation

FALLBACK_REASON = "popular right now"
FALLBACK_VERSION = "fallback-popular"


class PopularItems:
    def __init__(self, shop: Shop, store: SessionStore, guarded_store: GuardedStore, config: FacadeConfig,
                 metrics: Metrics):
        self.shop, self.store, self.guarded_store, self.config, self.metrics = (shop, store, guarded_store, config,
                                                                                metrics)

    def item(self, item: int, score: float, reason: str, model_version: str) -> Recommendation:
        return Recommendation(item_id=self.shop.item_ids[item], score=score, reason=reason,
                              model_version=model_version, item_idx=item)

    async def live_counts(self, limit: int) -> list[tuple[int, float]]:
        """Items with at least ``live_min_count`` weighted events posted, most first."""
        pairs = await self.guarded_store("read", lambda: self.store.popular(limit), [], "live_counts")
        known = [(self.shop.item_index(item), count) for item, count in pairs if count >= self.config.live_min_count]
        return [(index, count) for index, count in known if index is not None]

    async def popular(self, limit: int, category: str = "", skip: set[int] = frozenset()) -> list[Recommendation]:
        """Live popularity (posted events) first, then the dataset's recent popularity."""
        live = [item for item, _ in await self.live_counts(4 * limit + len(skip))]
        chosen: list[int] = []
        for item in live + self.shop.popular_items(limit + len(skip) + len(live), category, skip):
            if item not in skip and item not in chosen and (not category or self.shop.categories[item] == category):
                chosen.append(item)
            if len(chosen) == limit:
                break
        top = len(chosen)
        return [self.item(item, round((top - rank) / top, 6), FALLBACK_REASON, FALLBACK_VERSION)
                for rank, item in enumerate(chosen)]

    async def fallback(self, reason: str, limit: int, category: str, skip: set[int]) -> list[Recommendation]:
        """:meth:`popular`, counted as a fallback for ``reason`` (triton, error)."""
        self.metrics.fallbacks.labels(reason).inc()
        self.metrics.timeline.add("fallbacks")
        leave_out("model")
        return await self.popular(limit, category, skip)

    async def with_live_counts(self, items: list[Recommendation], limit: int, category: str,
                               skip: set[int]) -> list[Recommendation]:
        """Trending as built (recent popularity of the dataset) blended with the events posted since: each list's
        scores scaled to [0, 1] and added, so what is hot right now rises without a rebuild."""
        live = [(i, c) for i, c in await self.live_counts(4 * limit) if i not in skip
                and (not category or self.shop.categories[i] == category)]
        if not live:
            return items
        top = live[0][1] or 1.0
        version = items[0].model_version if items else "live-counts"
        reason = f"trending in {category}" if category else FALLBACK_REASON
        merged = {i.item_id: i for i in items}
        for item, count in live:
            entry = merged.get(self.shop.item_ids[item]) or self.item(item, 0.0, reason, version)
            merged[entry.item_id] = entry.model_copy(update={"score": entry.score + count / top})
        return sorted(merged.values(), key=lambda i: -i.score)
