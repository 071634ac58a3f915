"""Where posted events live: each user's recent items (capped), an event stream for downstream training,
live popularity counters, and the exposure log of served lists. Items are kept by raw id, never by index, so
facade processes that know different catalog versions can share one store.

Two implementations of one interface: :class:`RedisStore` (shared by workers, survives restarts) and
:class:`MemoryStore` (in-process, the default when no ``REDIS_URL`` is configured). :func:`open_store` picks.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict, deque
from typing import Protocol

from recstack.preprocessing.config import DEFAULT_MAX_SEQUENCE_LENGTH

STREAM_MAXLEN = 1_000_000


class SessionStore(Protocol):
    async def append(self, events: list[dict]) -> None:
        """Record valid events: session, stream and popularity."""

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

    async def ping(self) -> bool: ...

    async def close(self) -> None: ...


class MemoryStore:
    """In-process store; nothing is shared between processes or kept across restarts."""

    def __init__(self, session_length: int = DEFAULT_MAX_SEQUENCE_LENGTH, weights: dict[str, float] | None = None):
        self.sessions: dict[str, deque[str]] = defaultdict(lambda: deque(maxlen=session_length))
        self.stream: deque[dict] = deque(maxlen=STREAM_MAXLEN)
        self.exposure_log: deque[dict] = deque(maxlen=STREAM_MAXLEN)
        self.counts: Counter[str] = Counter()
        self.shows: Counter[str] = Counter()
        self.rewards: Counter[str] = Counter()
        self.weights = weights or {}

    async def append(self, events: list[dict]) -> None:
        for event in events:
            self.sessions[event["user_id"]].append(event["item_id"])
            self.stream.append(event)
            self.counts[event["item_id"]] += self.weights.get(event["event_type"], 1.0)

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

    async def ping(self) -> bool:
        return True

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
                 weights: dict[str, float] | None = None, prefix: str = "recstack:"):
        import redis.asyncio as redis

        self.redis = redis.from_url(url, decode_responses=True, socket_timeout=2.0, socket_connect_timeout=2.0)
        self.session_length = session_length
        self.weights = weights or {}
        self.prefix = prefix

    def _key(self, name: str) -> str:
        return f"{self.prefix}{name}"

    async def append(self, events: list[dict]) -> None:
        async with self.redis.pipeline(transaction=True) as pipe:
            for event in events:
                key = self._key(f"session:{event['user_id']}")
                pipe.rpush(key, event["item_id"])
                pipe.ltrim(key, -self.session_length, -1)
                pipe.xadd(self._key("events"), {"event": json.dumps(event)}, maxlen=STREAM_MAXLEN, approximate=True)
                pipe.zincrby(self._key("popularity"), self.weights.get(event["event_type"], 1.0), event["item_id"])
            await pipe.execute()

    async def recent(self, user_id: str) -> list[str]:
        return await self.redis.lrange(self._key(f"session:{user_id}"), 0, -1)

    async def popular(self, limit: int) -> list[tuple[str, float]]:
        pairs = await self.redis.zrevrange(self._key("popularity"), 0, limit - 1, withscores=True)
        return [(item, float(score)) for item, score in pairs]

    async def log_exposure(self, record: dict) -> None:
        await self.redis.xadd(self._key("exposures"), {"exposure": json.dumps(record)}, maxlen=STREAM_MAXLEN,
                              approximate=True)

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
        return await self._stream("events", "event")

    async def ping(self) -> bool:
        try:
            return bool(await self.redis.ping())
        except Exception:  # noqa: BLE001 - unreachable in any way means not ready
            return False

    async def close(self) -> None:
        await self.redis.aclose()


def open_store(redis_url: str | None, session_length: int, weights: dict[str, float]) -> SessionStore:
    return RedisStore(redis_url, session_length, weights) if redis_url else MemoryStore(session_length, weights)
