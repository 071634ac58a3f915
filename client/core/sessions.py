"""Where posted events live: each user's recent items (capped), an event stream for downstream training,
live popularity counters, and the exposure log of served lists. Items are kept by raw id, never by index, so
facade processes that know different catalog versions can share one store.

Two implementations of one interface: :class:`RedisStore` (shared by workers, survives restarts) and
:class:`MemoryStore` (in-process, the default when no ``REDIS_URL`` is configured). :func:`open_store` picks.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections import Counter, defaultdict, deque
from dataclasses import dataclass
from typing import Protocol

from recstack.preprocessing.config import DEFAULT_MAX_SEQUENCE_LENGTH

STREAM_MAXLEN = 1_000_000
KEY_PREFIX = "recstack:"  # of every key recstack keeps in Redis
EVENTS_STREAM = "events"  # what recstack ingest moves to the event log
INGEST_GROUP = "ingest"  # the consumer group of recstack ingest
FORGET_PAGE = 10_000  # stream entries read per round trip when a user's entries are searched
DAY_S = 86_400

# Live popularity counts an event only if (a) this user has not had this event type on this item counted in the
# window, and (b) its contributor (the client address of a public key) has counted less than its cap in the window.
# One call per batch, atomic, so several facade processes share the gates.
# KEYS: popularity, the contributor's counter ("" for none), then one gate per event; ARGV: window seconds, cap,
# then weight and item per event. Returns 1 or 0 per event.
COUNT_ONCE = """
local window, cap = tonumber(ARGV[1]), tonumber(ARGV[2])
local contributor = KEYS[2]
local verdicts = {}
for i = 3, #KEYS do
  local weight, item = ARGV[2 * i - 3], ARGV[2 * i - 2]
  local counted = 0
  if redis.call('SET', KEYS[i], 1, 'NX', 'EX', window) then
    local given = contributor ~= '' and tonumber(redis.call('GET', contributor) or '0') or 0
    if given < cap then
      if contributor ~= '' then
        redis.call('INCRBYFLOAT', contributor, weight)
        redis.call('EXPIRE', contributor, window)
      end
      redis.call('ZINCRBY', KEYS[1], weight, item)
      counted = 1
    end
  end
  verdicts[#verdicts + 1] = counted
end
return verdicts
"""


@dataclass(frozen=True)
class StorePolicy:
    """How long the store keeps what it holds, and how much one source may add to the shared statistics."""

    retention_days: float = 30.0  # events and exposures older than this are trimmed from the streams
    session_ttl_days: float = 30.0  # a live session expires after this long without an event
    count_window_hours: float = 24.0  # a user counts once per item and event type within this window
    # What one untrusted contributor (a public key's client address) may add to live counts in a window: the
    # live threshold, so one address alone lifts at most one item past it.
    contributor_cap: float = 5.0

    @property
    def window_s(self) -> int:
        return max(1, int(self.count_window_hours * 3600))


def count_key(event: dict) -> str:
    """The once-per-window gate of a user's event type on an item: a digest, so no store key names the user."""
    raw = f"{event['user_id']}\n{event['item_id']}\n{event['event_type']}"
    return hashlib.sha256(raw.encode()).hexdigest()[:32]


class SessionStore(Protocol):
    async def append(self, events: list[dict], contributor: str | None = None) -> list[dict]:
        """Record valid events in the sessions and the stream; count them in live popularity as
        :class:`StorePolicy` allows (``contributor``: an untrusted source whose share is capped, None for a
        trusted backend). Returns the events that were counted."""

    async def log_events(self, events: list[dict]) -> None:
        """Events kept in the stream only (impressions): no session, no live counts."""

    async def recent(self, user_id: str) -> list[str]:
        """The user's live items (raw ids), oldest first."""

    async def popular(self, limit: int) -> list[tuple[str, float]]:
        """Items with the most weighted events posted since start (or ever, in Redis)."""

    async def log_exposure(self, record: dict) -> None: ...

    async def bandit_record(self, shown: list[str], rewarded: list[str]) -> None:
        """Count exploration shows and rewards of new items."""

    async def bandit_stats(self, items: list[str]) -> tuple[dict[str, float], dict[str, float]]:
        """Shows and rewards of these items."""

    async def exposures(self) -> list[dict]: ...

    async def events(self) -> list[dict]: ...

    async def forget(self, user_id: str) -> dict[str, int]:
        """Remove everything the store holds that names the user; returns what was removed per part."""

    async def ingest_lag(self) -> int | None:
        """Events on the stream not yet in the event log (None: no stream consumers here)."""

    async def ping(self) -> bool: ...

    async def durability(self) -> dict:
        """How the store keeps what it acknowledged: ``appendonly`` (an append-only file survives restarts) and
        ``appendfsync`` (its fsync policy; None where the store's user may not read the configuration)."""

    async def close(self) -> None: ...


class MemoryStore:
    """In-process store; nothing is shared between processes or kept across restarts."""

    def __init__(self, session_length: int = DEFAULT_MAX_SEQUENCE_LENGTH, weights: dict[str, float] | None = None,
                 policy: StorePolicy = StorePolicy()):
        self.policy = policy
        self.sessions: dict[str, deque[str]] = defaultdict(lambda: deque(maxlen=session_length))
        self.stream: deque[dict] = deque(maxlen=STREAM_MAXLEN)
        self.exposure_log: deque[dict] = deque(maxlen=STREAM_MAXLEN)
        self.counts: Counter[str] = Counter()
        self.shows: Counter[str] = Counter()
        self.rewards: Counter[str] = Counter()
        self.weights = weights or {}
        self.counted_until: dict[str, float] = {}  # count gate -> when it opens again
        self.given: dict[str, tuple[float, float]] = {}  # contributor -> (weight given, window end)

    async def append(self, events: list[dict], contributor: str | None = None) -> list[dict]:
        now, counted = time.monotonic(), []
        if len(self.counted_until) > STREAM_MAXLEN:
            self.counted_until = {k: t for k, t in self.counted_until.items() if t > now}
        for event in events:
            self.sessions[event["user_id"]].append(event["item_id"])
            self.stream.append(event)
            gate, weight = count_key(event), self.weights.get(event["event_type"], 1.0)
            if self.counted_until.get(gate, 0.0) > now:
                continue
            if contributor is not None:
                given, until = self.given.get(contributor, (0.0, now + self.policy.window_s))
                given = given if until > now else 0.0
                if given >= self.policy.contributor_cap:
                    continue
                self.given[contributor] = (given + weight, until if until > now else now + self.policy.window_s)
            self.counted_until[gate] = now + self.policy.window_s
            self.counts[event["item_id"]] += weight
            counted.append(event)
        return counted

    async def log_events(self, events: list[dict]) -> None:
        self.stream.extend(events)

    async def recent(self, user_id: str) -> list[str]:
        return list(self.sessions.get(user_id, ()))

    async def popular(self, limit: int) -> list[tuple[str, float]]:
        return self.counts.most_common(limit)

    async def log_exposure(self, record: dict) -> None:
        self.exposure_log.append(record)

    async def bandit_record(self, shown: list[str], rewarded: list[str]) -> None:
        self.shows.update(shown)
        self.rewards.update(rewarded)

    async def bandit_stats(self, items: list[str]) -> tuple[dict[str, float], dict[str, float]]:
        return {i: self.shows[i] for i in items}, {i: self.rewards[i] for i in items}

    async def exposures(self) -> list[dict]:
        return list(self.exposure_log)

    async def events(self) -> list[dict]:
        return list(self.stream)

    async def forget(self, user_id: str) -> dict[str, int]:
        session = len(self.sessions.pop(user_id, ()))
        removed = {"session": session}
        for name, log in ((EVENTS_STREAM, self.stream), ("exposures", self.exposure_log)):
            kept = [entry for entry in log if entry.get("user_id") != user_id]
            removed[name] = len(log) - len(kept)
            log.clear()
            log.extend(kept)
        return removed

    async def ingest_lag(self) -> int | None:
        return None

    async def ping(self) -> bool:
        return True

    async def durability(self) -> dict:
        return {"appendonly": False, "appendfsync": None}

    async def close(self) -> None:
        pass


class RedisStore:
    """Redis: ``session:<user>`` lists (capped), ``events`` and ``exposures`` streams, ``popularity`` sorted set.

    Examples
    --------
    >>> store = RedisStore("redis://127.0.0.1:6379/0")  # doctest: +SKIP
    >>> await store.recent("u0001175")  # doctest: +SKIP
    [2000, 367, 3329]
    """

    def __init__(self, url: str, session_length: int = DEFAULT_MAX_SEQUENCE_LENGTH,
                 weights: dict[str, float] | None = None, prefix: str = KEY_PREFIX,
                 policy: StorePolicy = StorePolicy()):
        import redis.asyncio as redis

        self.redis = redis.from_url(url, decode_responses=True, socket_timeout=2.0, socket_connect_timeout=2.0)
        self.session_length = session_length
        self.weights = weights or {}
        self.prefix = prefix
        self.policy = policy
        self.count_once = self.redis.register_script(COUNT_ONCE)

    def _oldest_kept(self) -> str:
        """The stream id before which entries are older than the retention (``XTRIM MINID``)."""
        return f"{max(0, int((time.time() - self.policy.retention_days * DAY_S) * 1000))}-0"

    def _key(self, name: str) -> str:
        return f"{self.prefix}{name}"

    async def append(self, events: list[dict], contributor: str | None = None) -> list[dict]:
        ttl_s = max(1, int(self.policy.session_ttl_days * DAY_S))
        contributor_key = self._key(f"given:{contributor}") if contributor is not None else ""
        gates, weighted = [], []
        async with self.redis.pipeline(transaction=True) as pipe:
            for event in events:
                key = self._key(f"session:{event['user_id']}")
                pipe.rpush(key, event["item_id"])
                pipe.ltrim(key, -self.session_length, -1)
                pipe.expire(key, ttl_s)  # an idle session does not stay forever
                pipe.xadd(self._key(EVENTS_STREAM), {"event": json.dumps(event)}, maxlen=STREAM_MAXLEN,
                          approximate=True)
                gates.append(self._key(f"counted:{count_key(event)}"))
                weighted += [self.weights.get(event["event_type"], 1.0), event["item_id"]]
            pipe.xtrim(self._key(EVENTS_STREAM), minid=self._oldest_kept(), approximate=False)
            await self.count_once(keys=[self._key("popularity"), contributor_key, *gates],
                                  args=[self.policy.window_s, self.policy.contributor_cap, *weighted], client=pipe)
            verdicts = (await pipe.execute())[-1]
        return [event for event, counted in zip(events, verdicts, strict=True) if counted]

    async def log_events(self, events: list[dict]) -> None:
        async with self.redis.pipeline(transaction=False) as pipe:
            for event in events:
                pipe.xadd(self._key(EVENTS_STREAM), {"event": json.dumps(event)}, maxlen=STREAM_MAXLEN,
                          approximate=True)
            pipe.xtrim(self._key(EVENTS_STREAM), minid=self._oldest_kept(), approximate=False)
            await pipe.execute()

    async def recent(self, user_id: str) -> list[str]:
        return await self.redis.lrange(self._key(f"session:{user_id}"), 0, -1)

    async def popular(self, limit: int) -> list[tuple[str, float]]:
        pairs = await self.redis.zrevrange(self._key("popularity"), 0, limit - 1, withscores=True)
        return [(item, float(score)) for item, score in pairs]

    async def log_exposure(self, record: dict) -> None:
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.xadd(self._key("exposures"), {"exposure": json.dumps(record)}, maxlen=STREAM_MAXLEN,
                      approximate=True)
            pipe.xtrim(self._key("exposures"), minid=self._oldest_kept(), approximate=False)
            await pipe.execute()

    async def bandit_record(self, shown: list[str], rewarded: list[str]) -> None:
        async with self.redis.pipeline(transaction=False) as pipe:
            for name, items in (("bandit:shows", shown), ("bandit:rewards", rewarded)):
                for item in items:
                    pipe.hincrby(self._key(name), item, 1)
            await pipe.execute()

    async def bandit_stats(self, items: list[str]) -> tuple[dict[str, float], dict[str, float]]:
        if not items:
            return {}, {}
        shows = await self.redis.hmget(self._key("bandit:shows"), items)
        rewards = await self.redis.hmget(self._key("bandit:rewards"), items)
        return ({i: float(v or 0) for i, v in zip(items, shows, strict=True)},
                {i: float(v or 0) for i, v in zip(items, rewards, strict=True)})

    async def _stream(self, name: str, field: str) -> list[dict]:
        return [json.loads(fields[field]) for _, fields in await self.redis.xrange(self._key(name))]

    async def exposures(self) -> list[dict]:
        return await self._stream("exposures", "exposure")

    async def events(self) -> list[dict]:
        return await self._stream(EVENTS_STREAM, "event")

    async def forget(self, user_id: str) -> dict[str, int]:
        removed = {"session": int(await self.redis.llen(self._key(f"session:{user_id}")))}
        await self.redis.delete(self._key(f"session:{user_id}"))
        for name, field in ((EVENTS_STREAM, "event"), ("exposures", "exposure")):
            ids, start = [], "-"
            while True:  # the whole stream, a page at a time
                page = await self.redis.xrange(self._key(name), min=start, count=FORGET_PAGE)
                ids += [entry_id for entry_id, fields in page if json.loads(fields[field]).get("user_id") == user_id]
                if len(page) < FORGET_PAGE:
                    break
                start = "(" + page[-1][0]
            removed[name] = int(await self.redis.xdel(self._key(name), *ids)) if ids else 0
        return removed

    async def ingest_lag(self) -> int | None:
        stream = self._key(EVENTS_STREAM)
        try:
            if not await self.redis.exists(stream):
                return 0
            lag = group_lag(await self.redis.xinfo_groups(stream))
            return int(await self.redis.xlen(stream)) if lag is None else lag
        except Exception:  # noqa: BLE001 - no stream yet, or Redis unreachable: nothing to report
            return None

    async def ping(self) -> bool:
        try:
            return bool(await self.redis.ping())
        except Exception:  # noqa: BLE001 - unreachable in any way means not ready
            return False

    async def durability(self) -> dict:
        import redis

        info = await self.redis.info("persistence")  # allowed to the compose file's ACL user (+info)
        try:
            policy = (await self.redis.config_get("appendfsync")).get("appendfsync")
        except redis.ResponseError:  # CONFIG is an admin command, denied to that user
            policy = None
        return {"appendonly": bool(info.get("aof_enabled")), "appendfsync": policy}

    async def close(self) -> None:
        await self.redis.aclose()


def group_lag(groups: list[dict]) -> int | None:
    """The ingest group's backlog from ``XINFO GROUPS``: entries never delivered plus delivered but not yet
    acknowledged; None before any consumer made the group (then the whole stream is the backlog)."""
    for group in groups:
        if group["name"] == INGEST_GROUP:
            return int(group.get("lag") or 0) + int(group.get("pending") or 0)
    return None


def open_store(redis_url: str | None, session_length: int, weights: dict[str, float],
               policy: StorePolicy = StorePolicy()) -> SessionStore:
    if redis_url:
        return RedisStore(redis_url, session_length, weights, policy=policy)
    return MemoryStore(session_length, weights, policy)
