"""Token-bucket rate limits, shared by every facade process through one atomic Redis script, with an in-process
fallback (no Redis configured, or Redis unreachable: each process then limits on its own)."""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass

log = logging.getLogger(__name__)
BURST_SECONDS = 10.0  # a bucket holds this many seconds of its rate, so short bursts pass
MIN_BURST = 5.0
LOCAL_BUCKETS = 100_000  # in-process buckets kept before the full ones are dropped

# One call per request: refill by the time since the last one (Redis's clock, the same for every process),
# take a token if there is one, store the bucket with an expiry of its refill time.
TOKEN_BUCKET = """
local rate, burst = tonumber(ARGV[1]), tonumber(ARGV[2])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1e6
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(state[1]) or burst
local at = tonumber(state[2]) or now
tokens = math.min(burst, tokens + math.max(0, now - at) * rate)
local allowed = 0
if tokens >= 1 then
  tokens = tokens - 1
  allowed = 1
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(now))
redis.call('EXPIRE', KEYS[1], math.ceil(burst / rate) + 1)
return {allowed, tostring(tokens)}
"""


@dataclass(frozen=True)
class Decision:
    """One request's verdict and what the ``RateLimit-*`` headers tell the client."""

    allowed: bool
    limit: int  # the bucket's size: requests allowed in a burst
    remaining: int
    reset_s: int  # seconds until the bucket is full again
    retry_after_s: int  # seconds until the next request may pass (0 when allowed)

    def headers(self) -> dict[str, str]:
        headers = {"RateLimit-Limit": str(self.limit), "RateLimit-Remaining": str(self.remaining),
                   "RateLimit-Reset": str(self.reset_s)}
        return headers | ({"Retry-After": str(self.retry_after_s)} if not self.allowed else {})


def decision(allowed: bool, tokens: float, rate: float, burst: float) -> Decision:
    """The headers' numbers for a bucket left with ``tokens`` of ``burst``, refilling at ``rate`` per second.

    Examples
    --------
    >>> decision(False, 0.25, rate=0.5, burst=5)
    Decision(allowed=False, limit=5, remaining=0, reset_s=10, retry_after_s=2)
    """
    return Decision(allowed, int(burst), int(tokens), math.ceil((burst - tokens) / rate),
                    0 if allowed else math.ceil((1 - tokens) / rate))


class RateLimiter:
    def __init__(self, redis_url: str | None = None, prefix: str = "recstack:ratelimit:"):
        self.prefix = prefix
        self.redis = None
        if redis_url:
            import redis.asyncio as redis

            self.redis = redis.from_url(redis_url, socket_timeout=0.5, socket_connect_timeout=0.5)
            self.script = self.redis.register_script(TOKEN_BUCKET)
        self.local: dict[str, tuple[float, float]] = {}  # bucket -> (tokens, monotonic time)

    async def hit(self, bucket: str, per_minute: float) -> Decision:
        """Take one request from ``bucket`` (a key, or a key and a client address) limited to ``per_minute``."""
        rate = per_minute / 60
        burst = max(MIN_BURST, rate * BURST_SECONDS)
        if self.redis is not None:
            try:
                allowed, tokens = await self.script(keys=[self.prefix + bucket], args=[rate, burst])
                return decision(bool(allowed), float(tokens), rate, burst)
            except Exception as exc:  # noqa: BLE001 - Redis down: limit in this process rather than not at all
                log.warning("rate limits fall back to this process: %s: %s", type(exc).__name__, exc)
        now = time.monotonic()
        tokens, at = self.local.get(bucket, (burst, now))
        tokens = min(burst, tokens + (now - at) * rate)
        allowed = tokens >= 1
        tokens -= allowed
        if len(self.local) >= LOCAL_BUCKETS:  # many client addresses: forget the buckets that are full again
            self.local = {b: (t, a) for b, (t, a) in self.local.items() if t + (now - a) * rate < burst}
        self.local[bucket] = (tokens, now)
        return decision(allowed, tokens, rate, burst)

    async def close(self) -> None:
        if self.redis is not None:
            await self.redis.aclose()
