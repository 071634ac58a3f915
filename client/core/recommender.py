"""The facade's recommendation logic: live histories, the Triton call under a time budget and a circuit
breaker, cold start, experiments, and the popular-items fallback that keeps every answer a 200."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
import uuid
from dataclasses import dataclass, field

import numpy as np
from recstack.client.core.bandit import EXPLORATION_REASON, REWARDING_EVENTS, thompson_pick
from recstack.client.core.breaker import CircuitBreaker
from recstack.client.core.config import FacadeConfig
from recstack.client.core.experiments import Assignment, Experiments, team_draft
from recstack.client.core.metrics import Metrics
from recstack.client.core.sessions import SessionStore
from recstack.client.core.shop import Shop
from recstack.client.engine import Engine
from recstack.client.recommendation import Recommendation
from recstack.ensemble.triton_models import MAX_LIMIT

log = logging.getLogger(__name__)
FALLBACK_REASON = "popular right now"
FALLBACK_VERSION = "fallback-popular"


class UnknownItem(LookupError):
    """A raw item id the catalog does not know."""


class TritonUnavailable(RuntimeError):
    """Triton failed, timed out, or the circuit is open."""


class StoreUnavailable(RuntimeError):
    """The session store could not record what was posted."""


def _refused(exc: Exception) -> bool:
    """Whether the engine answered and refused the request (bad input), as opposed to failing or timing out:
    Triton's INVALID_ARGUMENT, or the in-process engine's ``ValueError`` (what Triton's python models map to it)."""
    from tritonclient.utils import InferenceServerException

    if isinstance(exc, ValueError):
        return True
    if not isinstance(exc, InferenceServerException):
        return False
    status = str(exc.status() or "")
    return any(code in status for code in ("INVALID_ARGUMENT", "NOT_FOUND", "400", "404"))


@dataclass
class Served:
    items: list[Recommendation]
    degraded: bool = False
    experiment_id: str | None = None
    variant: str | None = None
    request_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    teams: list[str] | None = None  # interleaving: the variant that contributed each item (exposure log only)


class Recommender:
    """Everything behind ``/api/v1``; one per app, shared by its requests."""

    def __init__(self, shop: Shop, store: SessionStore, engine: Engine | None,
                 config: FacadeConfig, metrics: Metrics, experiments: Experiments | None = None):
        self.shop, self.store, self.engine, self.config, self.metrics = shop, store, engine, config, metrics
        self.experiments = experiments or Experiments()
        self.breaker = CircuitBreaker(config.breaker_failures, config.breaker_reset_s)
        self.new_items = shop.new_items(config.freshness_days)
        self.new_item_set = set(self.new_items)
        self.rng = np.random.default_rng()

    # -- building blocks -------------------------------------------------------------------------------------

    async def _store(self, what: str, make_call, default):
        """A store read or best-effort write within ``store_timeout_ms``; an unreachable or slow store degrades
        the answer (no live session, no live counts) instead of failing it."""
        start = time.perf_counter()
        try:
            result = await asyncio.wait_for(make_call(), self.config.store_timeout_ms / 1000)
        except Exception as exc:  # noqa: BLE001 - connection, timeout and protocol errors alike
            log.warning("session store %s failed: %s: %s", what, type(exc).__name__, exc)
            self.metrics.fallbacks.labels("store").inc()
            return default
        self.metrics.stage.labels("store").observe(time.perf_counter() - start)
        return result

    def _indices(self, item_ids) -> list[int]:
        """Item indices of raw ids this process knows (ids from a newer catalog are left out)."""
        return [i for i in (self.shop.item_index(item) for item in item_ids) if i is not None]

    async def history(self, user_id: str) -> np.ndarray:
        """The user's known sequence followed by the events posted since (the live session)."""
        live = self._indices(await self._store("read", lambda: self.store.recent(user_id), []))
        base = self.shop.histories.get(user_id, np.empty(0, dtype=np.int64))
        return np.concatenate([base, np.asarray(live, dtype=np.int64)]) if live else base

    async def _live_counts(self, limit: int) -> list[tuple[int, float]]:
        """Items with at least ``live_min_count`` weighted events posted, most first."""
        pairs = await self._store("read", lambda: self.store.popular(limit), [])
        known = [(self.shop.item_index(item), count) for item, count in pairs if count >= self.config.live_min_count]
        return [(index, count) for index, count in known if index is not None]

    def item_index(self, item_id: str) -> int:
        index = self.shop.item_index(item_id)
        if index is None:
            raise UnknownItem(f"unknown item_id {item_id!r}")
        return index

    async def _triton(self, model: str, make_call):
        """Run a Triton call within the time budget. Timeouts and transport failures count towards opening the
        circuit; a request Triton refuses as invalid (e.g. an item it does not serve yet) falls back alone."""
        if self.engine is None or not self.breaker.allow():
            raise TritonUnavailable("circuit open" if self.engine else "no Triton configured")
        start = time.perf_counter()
        try:
            result = await asyncio.wait_for(make_call(), self.config.timeout_ms / 1000)
        except Exception as exc:  # noqa: BLE001 - timeouts, transport and model errors all fall back
            self.metrics.triton_errors.labels(model).inc()
            if _refused(exc):
                self.breaker.release()
            else:
                self.breaker.record(False)
            raise TritonUnavailable(f"{model}: {type(exc).__name__}: {exc}") from exc
        except BaseException:  # cancelled: neither a success nor a failure, but the trial slot must be freed
            self.breaker.release()
            raise
        self.breaker.record(True)
        self.metrics.stage.labels(f"triton_{model}").observe(time.perf_counter() - start)
        return result

    def _item(self, item: int, score: float, reason: str, model_version: str) -> Recommendation:
        return Recommendation(item_id=self.shop.item_ids[item], score=score, reason=reason,
                              model_version=model_version, item_idx=item)

    async def _popular(self, limit: int, category: str = "", skip: set[int] = frozenset()) -> list[Recommendation]:
        """Live popularity (posted events) first, then the dataset's recent popularity."""
        live = [item for item, _ in await self._live_counts(4 * limit + len(skip))]
        chosen: list[int] = []
        for item in live + self.shop.popular_items(limit + len(skip) + len(live), category, skip):
            if item not in skip and item not in chosen and (not category or self.shop.categories[item] == category):
                chosen.append(item)
            if len(chosen) == limit:
                break
        top = len(chosen)
        return [self._item(item, round((top - rank) / top, 6), FALLBACK_REASON, FALLBACK_VERSION)
                for rank, item in enumerate(chosen)]

    async def _fallback(self, reason: str, limit: int, category: str, skip: set[int]) -> list[Recommendation]:
        self.metrics.fallbacks.labels(reason).inc()
        return await self._popular(limit, category, skip)

    # -- endpoints --------------------------------------------------------------------------------------------

    async def personalized(self, user_id: str, limit: int, context: str = "homepage", exclude: tuple[str, ...] = (),
                           category: str = "", item_id: str | None = None) -> Served:
        history = await self.history(user_id)
        excluded = [i for i in (self.shop.item_index(e) for e in exclude) if i is not None]
        if item_id is not None:
            excluded.append(self.item_index(item_id))  # on a product page, not the product itself
        assignment = self.experiments.assign(user_id)
        served = Served([], experiment_id=assignment.experiment.id if assignment else None,
                        variant=(assignment.variant.name if assignment.variant else "interleaved")
                        if assignment else None)
        skip = set(history.tolist()) | set(excluded)
        if not len(history):  # a new user: what is popular in this context, personal once events arrive
            served.items = await self._trending_items(limit, category, skip)
            served.degraded = served.items[0].model_version == FALLBACK_VERSION if served.items else False
        else:
            try:
                served.items = await self._personal(history, excluded, limit, category, assignment, served)
                if assignment is None or (assignment.variant is not None and assignment.variant.source == "model"):
                    served.items = await self._explore(served.items, skip, limit, category)
            except TritonUnavailable:
                served.items, served.degraded = await self._fallback("triton", limit, category, skip), True
            except Exception:  # a bug must not cost the shop its list: logged, counted, answered with popular items
                log.exception("personalized recommendations failed for user %r", user_id)
                served.items, served.degraded = await self._fallback("error", limit, category, skip), True
        record = {"request_id": served.request_id, "user_id": user_id, "context": context,
                  "experiment_id": served.experiment_id, "variant": served.variant,
                  "items": [i.item_id for i in served.items], "teams": served.teams,
                  "degraded": served.degraded, "at": time.time()}
        await self._store("exposure log", lambda: self.store.log_exposure(record), None)
        return served

    async def _explore(self, items: list[Recommendation], skip: set[int], limit: int,
                       category: str) -> list[Recommendation]:
        """Give the bandit's new items their slots (from ``exploration_position`` on) and count the shows."""
        listed = {self.shop.item_index(i.item_id) for i in items}
        # The newest eligible items only: bandit statistics are read per request, so the arm count stays bounded.
        arms = [i for i in self.new_items if i not in skip and i not in listed
                and (not category or self.shop.categories[i] == category)][: self.config.exploration_arms]
        # Short lists stay the models' own: the slot is at exploration_position or not at all.
        slots = min(self.config.exploration_slots, limit - self.config.exploration_position)
        if not arms or slots <= 0:
            return items
        ids = [self.shop.item_ids[i] for i in arms]
        shows, rewards = await self._store("read", lambda: self.store.bandit_stats(ids), ({}, {}))
        picked = [self.shop.item_index(i) for i in thompson_pick(ids, shows, rewards, slots, self.rng)]
        kept = items[: limit - len(picked)]
        for offset, item in enumerate(picked):
            position = min(self.config.exploration_position + offset, len(kept))
            kept.insert(position, self._item(item, 0.0, EXPLORATION_REASON, "bandit-thompson"))
        shown = [self.shop.item_ids[i] for i in picked]
        await self._store("bandit", lambda: self.store.bandit_record(shown, []), None)
        return kept

    async def _model_list(self, history: np.ndarray, excluded: list[int], limit: int, category: str,
                          model: str) -> list[Recommendation]:
        # A category filter is applied to a longer list, topped up with what is popular in that category.
        fetch = min(max(limit * 4, 50), 1000) if category else limit
        result = await self._triton(model, lambda: self.engine.recommend([history], [excluded], fetch, model))
        items = [i for i in result[0].items if not category or
                 self.shop.categories[self.shop.item_index(i.item_id)] == category][:limit]
        if len(items) < limit:
            skip = set(history.tolist()) | set(excluded) | {self.shop.item_index(i.item_id) for i in items}
            items += await self._popular(limit - len(items), category, skip)
        return items

    async def _personal(self, history, excluded, limit, category, assignment: Assignment | None,
                        served: Served) -> list[Recommendation]:
        if assignment is None:
            return await self._model_list(history, excluded, limit, category, "recommend")
        skip = set(history.tolist()) | set(excluded)

        async def variant_list(variant):
            if variant.source == "popular":
                return await self._popular(limit, category, skip)
            return await self._model_list(history, excluded, limit, category, variant.model)

        if assignment.variant is not None:
            return await variant_list(assignment.variant)
        a, b = await asyncio.gather(*(variant_list(v) for v in assignment.experiment.variants))
        by_id = {i.item_id: i for i in b} | {i.item_id: i for i in a}
        merged = team_draft([i.item_id for i in a], [i.item_id for i in b], limit,
                            seed=int(served.request_id[:8], 16))
        names = [v.name for v in assignment.experiment.variants]
        served.teams = [names[team] for _, team in merged]
        return [by_id[item] for item, _ in merged]

    async def _trending_items(self, limit: int, category: str, skip: set[int]) -> list[Recommendation]:
        fetch = min(limit + len(skip), MAX_LIMIT)  # the python models' bound
        try:
            result = await self._triton("trending", lambda: self.engine.trending(fetch, category))
        except TritonUnavailable:
            return await self._fallback("triton", limit, category, skip)
        items = [i for i in result.items if self.shop.item_index(i.item_id) not in skip]
        items = (await self._with_live_counts(items, limit, category, skip))[:limit]
        if len(items) < limit:
            skip = skip | {self.shop.item_index(i.item_id) for i in items}
            items += await self._popular(limit - len(items), category, skip)
        return items

    async def _with_live_counts(self, items: list[Recommendation], limit: int, category: str,
                                skip: set[int]) -> list[Recommendation]:
        """Trending as built (recent popularity of the dataset) blended with the events posted since: each list's
        scores scaled to [0, 1] and added, so what is hot right now rises without a rebuild."""
        live = [(i, c) for i, c in await self._live_counts(4 * limit) if i not in skip
                and (not category or self.shop.categories[i] == category)]
        if not live:
            return items
        top = live[0][1] or 1.0
        version = items[0].model_version if items else "live-counts"
        reason = f"trending in {category}" if category else FALLBACK_REASON
        merged = {i.item_id: i for i in items}
        for item, count in live:
            entry = merged.get(self.shop.item_ids[item]) or self._item(item, 0.0, reason, version)
            merged[entry.item_id] = entry.model_copy(update={"score": entry.score + count / top})
        return sorted(merged.values(), key=lambda i: -i.score)

    async def trending(self, limit: int, category: str = "") -> Served:
        items = await self._trending_items(limit, category, set())
        return Served(items, degraded=bool(items) and items[0].model_version == FALLBACK_VERSION)

    async def similar(self, item_id: str, limit: int, kind: str = "similar") -> Served:
        index = self.item_index(item_id)
        try:
            result = await self._triton("similar", lambda: self.engine.similar(index, limit, kind))
            return Served(result.items)
        except TritonUnavailable:
            category = self.shop.categories[index]
            return Served(await self._fallback("triton", limit, category, {index}), degraded=True)

    async def rank(self, user_id: str, item_ids: list[str], keep_order_weight: float = 0.0) -> Served:
        """Order given items for a user: by the ranker's scores, blended with the given order when
        ``keep_order_weight`` > 0 (search re-ranking keeps some of the search engine's relevance)."""
        indices = [self.item_index(i) for i in item_ids]
        history = await self.history(user_id)
        position = 1.0 - np.arange(len(indices)) / max(len(indices), 1)
        try:
            if not len(history):
                raise TritonUnavailable("no history to personalise with")
            scores = await self._triton("rank", lambda: self.engine.rank(history, indices))
            spread = scores.max() - scores.min()
            relevance = (scores - scores.min()) / spread if spread > 0 else np.ones_like(scores)
            combined = (1 - keep_order_weight) * relevance + keep_order_weight * position
            reason, degraded, version = "ranked for you", False, "ranker"
        except TritonUnavailable as exc:
            combined, reason, version = position, "original order", FALLBACK_VERSION
            degraded = "no history" not in str(exc)
        order = np.argsort(-combined, kind="stable")
        return Served([self._item(indices[i], float(combined[i]), reason, version) for i in order],
                      degraded=degraded)

    def add_items(self, rows: list[dict]) -> list[int]:
        """Items new to the catalog: known to the API (events, exploration slots) at once, appended to the ingest
        file that the next ``recstack build-repo --new-items`` embeds and indexes for Triton."""
        self.config.ingest_file.parent.mkdir(parents=True, exist_ok=True)
        with self.config.ingest_file.open("a") as out:
            out.write("".join(json.dumps(row, default=str) + "\n" for row in rows))
            out.flush()
            os.fsync(out.fileno())  # an accepted item survives a crash
        indices = self.shop.add_items(rows)
        self.new_items[:0] = indices  # the newest of all
        self.new_item_set.update(indices)
        return indices

    async def post_events(self, events: list[dict]) -> None:
        """Record events; raises :class:`StoreUnavailable` when the store cannot take them (nothing half-done
        is reported as accepted)."""
        start = time.perf_counter()
        try:
            await asyncio.wait_for(self.store.append(events), max(1.0, self.config.store_timeout_ms / 100))
        except Exception as exc:  # noqa: BLE001
            raise StoreUnavailable(f"the session store did not take the events: {type(exc).__name__}") from exc
        rewarded = [e["item_id"] for e in events if e["event_type"] in REWARDING_EVENTS
                    and e["item_idx"] in self.new_item_set]
        if rewarded:
            await self._store("bandit", lambda: self.store.bandit_record([], rewarded), None)
        self.metrics.stage.labels("store").observe(time.perf_counter() - start)

    async def ready(self) -> dict[str, bool]:
        triton = self.engine is not None and await self.engine.ready()
        return {"triton": bool(triton), "store": await self.store.ping()}
