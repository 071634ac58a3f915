"""The facade's recommendation logic: live histories, cold start, experiments and the answer of each endpoint.

Its parts live beside it: the engine and store calls under time budgets (:mod:`.guards`), the popular-items
fallback that keeps every answer a 200 (:mod:`.popular`), new-item exploration (:mod:`.bandit`) and A/B
assignment with interleaving (:mod:`.experiments`)."""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import os
import time
import uuid
from dataclasses import dataclass, field

import numpy as np
from recstack.client.core.bandit import NewItemExploration
from recstack.client.core.config import FacadeConfig
from recstack.client.core.drift import DriftMonitor, Novelty, served_version
from recstack.client.core.experiments import Assignment, Experiments, interleave
from recstack.client.core.guards import (
    GuardedEngine,
    GuardedStore,
    TritonUnavailable,
    collecting_left_out,
    leave_out,
    left_out_now,
)
from recstack.client.core.metrics import Metrics
from recstack.client.core.popular import FALLBACK_VERSION, PopularItems
from recstack.client.core.sessions import SessionStore
from recstack.client.core.shop import Shop
from recstack.client.engine import Engine
from recstack.client.recommendation import Recommendation
from recstack.ensemble.config import ObjectiveWeights
from recstack.ensemble.triton_models import MAX_LIMIT
from recstack.preprocessing.tombstones import TOMBSTONES_NAME, TombstoneWatch

log = logging.getLogger(__name__)
STREAM_ONLY = frozenset({"impression"})  # event types recorded in the event stream only
# Acknowledged events an OS crash or power cut can take, by fsync policy (Redis documentation; client/README.md).
OS_CRASH_LOSS_S = {"always": 0.0, "everysec": 2.0, "no": 30.0}
WRITE_S_PER_EVENT = 0.002  # a batch's write budget grows with it: 1,000 events take ~0.25 s on an idle 2-core host


class UnknownItem(LookupError):
    """A raw item id the catalog does not know."""


class StoreUnavailable(RuntimeError):
    """The session store could not record what was posted."""


@dataclass
class Served:
    items: list[Recommendation]
    experiment_id: str | None = None
    variant: str | None = None
    request_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    teams: list[str] | None = None  # interleaving: the variant that contributed each item (exposure log only)
    left_out: set[str] = field(default_factory=set)  # parts of the answer that could not be had (guards.PARTS)

    @property
    def degraded(self) -> bool:
        return bool(self.left_out)


def answer(method):
    """An endpoint of :class:`Recommender`: what its answer had to leave out is collected while it is built,
    attached to it and counted in the metrics."""

    @functools.wraps(method)
    async def wrapper(self: Recommender, *args, **kwargs) -> Served:
        with collecting_left_out() as left_out:
            served = await method(self, *args, **kwargs)
        served.left_out |= left_out
        for part in served.left_out:
            self.metrics.degraded.labels(part).inc()
        return served

    return wrapper


class Recommender:
    """Everything behind ``/api/v1``; one per app, shared by its requests."""

    def __init__(self, shop: Shop, store: SessionStore, engine: Engine | None,
                 config: FacadeConfig, metrics: Metrics, experiments: Experiments | None = None):
        self.shop, self.store, self.config, self.metrics = shop, store, config, metrics
        self.experiments = experiments or Experiments()
        self.engine = GuardedEngine(engine, config, metrics)
        self._store = GuardedStore(config, metrics)
        self.popular = PopularItems(shop, store, self._store, config, metrics)
        self.exploration = NewItemExploration(shop, store, self._store, config)
        self.forgotten = TombstoneWatch(config.build_dir / TOMBSTONES_NAME if config.build_dir else None,
                                        config.keys_refresh_s)
        self.drift = DriftMonitor(shop.trained_events, metrics, config.drift_window_s, config.drift_interval_s)

    # -- building blocks -------------------------------------------------------------------------------------

    def _indices(self, item_ids) -> list[int]:
        """Item indices of raw ids this process knows (ids from a newer catalog are left out)."""
        return [i for i in (self.shop.item_index(item) for item in item_ids) if i is not None]

    async def history(self, user_id: str) -> np.ndarray:
        """The user's known sequence followed by the events posted since (the live session)."""
        return (await self._history(user_id))[0]

    async def _history(self, user_id: str) -> tuple[np.ndarray, Novelty]:
        """:meth:`history`, and what in it the models were not trained on (drift)."""
        raw = await self._store("read", lambda: self.store.recent(user_id), [], "live_session")
        live = self._indices(raw)
        known = self.shop.histories.get(user_id)
        # A user deleted through another facade process is forgotten here too, before this one restarts.
        forgotten = known is not None and user_id in self.forgotten
        base = known if known is not None and not forgotten else np.empty(0, dtype=np.int64)
        novelty = self.drift.novelty(user_id in self.shop.trained_users and not forgotten, len(raw), live)
        return (np.concatenate([base, np.asarray(live, dtype=np.int64)]) if live else base), novelty

    def item_index(self, item_id: str) -> int:
        index = self.shop.item_index(item_id)
        if index is None:
            raise UnknownItem(f"unknown item_id {item_id!r}")
        return index

    # -- endpoints --------------------------------------------------------------------------------------------

    @answer
    async def personalized(self, user_id: str, limit: int, context: str = "homepage", exclude: tuple[str, ...] = (),
                           category: str = "", item_id: str | None = None) -> Served:
        history, novelty = await self._history(user_id)
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
        else:
            try:
                served.items = await self._personal(history, excluded, limit, category, assignment, served)
                if assignment is None or (assignment.variant is not None and assignment.variant.source == "model"):
                    served.items = await self.exploration.fill(served.items, skip, limit, category)
            except TritonUnavailable:
                served.items = await self.popular.fallback("triton", limit, category, skip)
            except Exception:  # a bug must not cost the shop its list: logged, counted, answered with popular items
                log.exception("personalized recommendations failed for user %r", user_id)
                served.items = await self.popular.fallback("error", limit, category, skip)
        self.drift.request(served_version(served.items), novelty)
        left_out = sorted(left_out_now())
        # "degraded" is what the experiment report reads: the models did not answer, so the variant was not shown.
        record = {"request_id": served.request_id, "user_id": user_id, "context": context,
                  "experiment_id": served.experiment_id, "variant": served.variant,
                  "items": [i.item_id for i in served.items], "teams": served.teams,
                  "degraded": "model" in left_out, "left_out": left_out, "at": time.time()}
        await self._store("exposure log", lambda: self.store.log_exposure(record), None)
        return served

    async def _model_list(self, history: np.ndarray, excluded: list[int], limit: int, category: str,
                          model: str, version: int | None = None, objectives: ObjectiveWeights | None = None
                          ) -> list[Recommendation]:
        # A category filter is applied to a longer list, topped up with what is popular in that category.
        fetch = min(max(limit * 4, 50), 1000) if category else limit
        result = await self.engine.call(model, lambda engine: engine.recommend([history], [excluded], fetch, model,
                                                                               version, objectives))
        items = [i for i in result[0].items if not category or
                 self.shop.categories[self.shop.item_index(i.item_id)] == category][:limit]
        if len(items) < limit:
            skip = set(history.tolist()) | set(excluded) | {self.shop.item_index(i.item_id) for i in items}
            items += await self.popular.popular(limit - len(items), category, skip)
        return items

    async def _personal(self, history, excluded, limit, category, assignment: Assignment | None,
                        served: Served) -> list[Recommendation]:
        if assignment is None:
            return await self._model_list(history, excluded, limit, category, "recommend")
        skip = set(history.tolist()) | set(excluded)

        async def variant_list(variant):
            if variant.source == "popular":
                return await self.popular.popular(limit, category, skip)
            return await self._model_list(history, excluded, limit, category, variant.model, variant.version,
                                          variant.objectives)

        if assignment.variant is not None:
            return await variant_list(assignment.variant)
        a, b = await asyncio.gather(*(variant_list(v) for v in assignment.experiment.variants))
        items, served.teams = interleave(a, b, [v.name for v in assignment.experiment.variants], limit,
                                         seed=int(served.request_id[:8], 16))
        return items

    async def _trending_items(self, limit: int, category: str, skip: set[int]) -> list[Recommendation]:
        fetch = min(limit + len(skip), MAX_LIMIT)  # the python models' bound
        try:
            result = await self.engine.call("trending", lambda engine: engine.trending(fetch, category))
        except TritonUnavailable:
            return await self.popular.fallback("triton", limit, category, skip)
        items = [i for i in result.items if self.shop.item_index(i.item_id) not in skip]
        items = (await self.popular.with_live_counts(items, limit, category, skip))[:limit]
        if len(items) < limit:
            skip = skip | {self.shop.item_index(i.item_id) for i in items}
            items += await self.popular.popular(limit - len(items), category, skip)
        return items

    @answer
    async def trending(self, limit: int, category: str = "") -> Served:
        return Served(await self._trending_items(limit, category, set()))

    @answer
    async def similar(self, item_id: str, limit: int, kind: str = "similar") -> Served:
        index = self.item_index(item_id)
        try:
            result = await self.engine.call("similar", lambda engine: engine.similar(index, limit, kind))
            return Served(result.items)
        except TritonUnavailable:
            category = self.shop.categories[index]
            return Served(await self.popular.fallback("triton", limit, category, {index}))

    @answer
    async def rank(self, user_id: str, item_ids: list[str], keep_order_weight: float = 0.0) -> Served:
        """Order given items for a user: by the ranker's scores, blended with the given order when
        ``keep_order_weight`` > 0 (search re-ranking keeps some of the search engine's relevance)."""
        indices = [self.item_index(i) for i in item_ids]
        history = await self.history(user_id)
        position = 1.0 - np.arange(len(indices)) / max(len(indices), 1)
        try:
            if not len(history):
                raise TritonUnavailable("no history to personalise with")
            scores = await self.engine.call("rank", lambda engine: engine.rank(history, indices))
            spread = scores.max() - scores.min()
            relevance = (scores - scores.min()) / spread if spread > 0 else np.ones_like(scores)
            combined = (1 - keep_order_weight) * relevance + keep_order_weight * position
            reason, version = "ranked for you", "ranker"
        except TritonUnavailable as exc:
            combined, reason, version = position, "original order", FALLBACK_VERSION
            if "no history" not in str(exc):
                leave_out("model")
        order = np.argsort(-combined, kind="stable")
        return Served([self.popular.item(indices[i], float(combined[i]), reason, version) for i in order])

    def add_items(self, rows: list[dict]) -> list[int]:
        """Items new to the catalog: known to the API (events, exploration slots) at once, appended to the ingest
        file that the next ``recstack build-repo --new-items`` embeds and indexes for Triton."""
        self.config.ingest_file.parent.mkdir(parents=True, exist_ok=True)
        with self.config.ingest_file.open("a") as out:
            out.write("".join(json.dumps(row, default=str) + "\n" for row in rows))
            out.flush()
            os.fsync(out.fileno())  # an accepted item survives a crash
        indices = self.shop.add_items(rows)
        self.exploration.add(indices)
        return indices

    async def post_events(self, events: list[dict], contributor: str | None = None) -> None:
        """Record events; raises :class:`StoreUnavailable` when the store cannot take them (nothing half-done
        is reported as accepted). ``contributor`` names an untrusted source (a public key's client address)
        whose share of the live statistics is capped."""
        start = time.perf_counter()
        # An impression says a list was seen, not that the item interested anyone: kept for reports, out of the
        # live session (the ranker's input), popularity and the bandit.
        seen = [e for e in events if e["event_type"] in STREAM_ONLY]
        interactions = [e for e in events if e["event_type"] not in STREAM_ONLY]
        try:
            budget = max(1.0, self.config.store_timeout_ms / 100) + len(events) * WRITE_S_PER_EVENT
            counted = await asyncio.wait_for(self.store.append(interactions, contributor), budget) \
                if interactions else []
            if seen:
                await asyncio.wait_for(self.store.log_events(seen), budget)
        except Exception as exc:  # noqa: BLE001
            raise StoreUnavailable(f"the session store did not take the events: {type(exc).__name__}") from exc
        await self.exploration.reward(counted)  # the bandit learns from what popularity counted, nothing else
        self.drift.accepted([e["item_idx"] for e in interactions])  # every accepted one: drift is what arrives
        self.metrics.stage.labels("store").observe(time.perf_counter() - start)

    async def durability(self) -> dict:
        """The stated fsync policy beside what the store reports, and the seconds of acknowledged events an OS crash
        can take (None: everything, as nothing is on disk)."""
        try:
            server = await asyncio.wait_for(self.store.durability(), self.config.store_timeout_ms / 1000)
        except Exception:  # noqa: BLE001 - an unreachable store says nothing
            server = {"appendonly": None, "appendfsync": None}
        policy = server["appendfsync"] or self.config.redis_fsync
        if server["appendfsync"] and server["appendfsync"] != self.config.redis_fsync:
            log.warning("redis_fsync is %r but Redis runs with appendfsync %r", self.config.redis_fsync, policy)
        loss = OS_CRASH_LOSS_S.get(policy) if server["appendonly"] is not False else None
        return {"redis_fsync": self.config.redis_fsync, **server, "os_crash_loss_s": loss}

    async def ready(self) -> tuple[dict[str, bool], list[str]]:
        """Whether Triton and the store answer, and what an answer would leave out right now."""
        checks = {"triton": bool(await self.engine.ready()), "store": await self.store.ping()}
        left_out = [] if checks["triton"] and self.engine.breaker.state == "closed" else ["model"]
        return checks, left_out + ([] if checks["store"] else ["live_session", "live_counts", "exploration"])
