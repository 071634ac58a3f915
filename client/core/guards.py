"""Time budgets around the facade's two dependencies: the engine (with a circuit breaker) and the session store.

A slow or failed call never fails a request: the engine's caller falls back to popular items, the store's
caller goes on without live data; both are counted in the metrics, and the answer says what it left out
(:func:`leave_out`, collected per request by :func:`collecting_left_out`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from recstack.client.core.breaker import CircuitBreaker
from recstack.client.core.config import FacadeConfig
from recstack.client.core.metrics import Metrics
from recstack.client.engine import Engine

log = logging.getLogger(__name__)

# Parts an answer can leave out: the models' ranking (popular items answered), the user's live session, the live
# popularity counts, the new-item bandit's statistics.
PARTS = ("model", "live_session", "live_counts", "exploration")
# The set of the request being answered; tasks it gathers share it, so any of them can add to it.
_LEFT_OUT: ContextVar[set[str] | None] = ContextVar("left_out", default=None)


@contextmanager
def collecting_left_out() -> Iterator[set[str]]:
    """Collect, for the answer built inside, the :data:`PARTS` it had to leave out."""
    parts: set[str] = set()
    token = _LEFT_OUT.set(parts)
    try:
        yield parts
    finally:
        _LEFT_OUT.reset(token)


def leave_out(part: str) -> None:
    """Note that the answer being built goes without ``part`` (nothing to note outside an answer)."""
    if part not in PARTS:
        raise ValueError(f"unknown part {part!r}; parts are {PARTS}")
    parts = _LEFT_OUT.get()
    if parts is not None:
        parts.add(part)


def left_out_now() -> set[str]:
    """What the answer being built has left out so far."""
    return set(_LEFT_OUT.get() or ())


class TritonUnavailable(RuntimeError):
    """The engine failed, timed out, or the circuit is open."""


def refused(exc: Exception) -> bool:
    """Whether the engine answered and refused the request (bad input), as opposed to failing or timing out:
    Triton's INVALID_ARGUMENT, or the in-process engine's ``ValueError`` (what Triton's python models map to it)."""
    from tritonclient.utils import InferenceServerException

    if isinstance(exc, ValueError):
        return True
    if not isinstance(exc, InferenceServerException):
        return False
    status = str(exc.status() or "")
    return any(code in status for code in ("INVALID_ARGUMENT", "NOT_FOUND", "400", "404"))


class GuardedEngine:
    """Engine calls within ``timeout_ms`` behind a circuit breaker. While the circuit is open a probe asks the
    engine every ``breaker_probe_s`` whether it is ready, so answers recover as soon as Triton does rather than
    after the rest of ``breaker_reset_s``."""

    def __init__(self, engine: Engine | None, config: FacadeConfig, metrics: Metrics):
        self.engine, self.config, self.metrics = engine, config, metrics
        self.breaker = CircuitBreaker(config.breaker_failures, config.breaker_reset_s)
        self.probe: asyncio.Task | None = None

    async def call(self, model: str, make_call):
        """``make_call(engine)``'s awaitable within the time budget. Timeouts and transport failures count towards
        opening the circuit; a request the engine refuses as invalid (e.g. an item it does not serve yet) falls back
        alone."""
        if self.engine is None or not self.breaker.allow():
            raise TritonUnavailable("circuit open" if self.engine else "no Triton configured")
        start = time.perf_counter()
        try:
            result = await asyncio.wait_for(make_call(self.engine), self.config.timeout_ms / 1000)
        except Exception as exc:  # noqa: BLE001 - timeouts, transport and model errors all fall back
            self.metrics.triton_errors.labels(model).inc()
            if refused(exc):
                self.breaker.release()
            else:
                self.breaker.record(False)
                self._start_probe()
            raise TritonUnavailable(f"{model}: {type(exc).__name__}: {exc}") from exc
        except BaseException:  # cancelled: neither a success nor a failure, but the trial slot must be freed
            self.breaker.release()
            raise
        self.breaker.record(True)
        self.metrics.stage.labels(f"triton_{model}").observe(time.perf_counter() - start)
        return result

    async def ready(self) -> bool:
        return self.engine is not None and await self.engine.ready()

    def _start_probe(self) -> None:
        if self.breaker.state == "open" and (self.probe is None or self.probe.done()):
            self.probe = asyncio.get_running_loop().create_task(self._probe_until_ready())

    async def _probe_until_ready(self) -> None:
        """Ends when the engine is ready (the next call is the trial) or the open period ends by itself."""
        while self.breaker.state == "open":
            await asyncio.sleep(self.config.breaker_probe_s)
            try:
                ready = await asyncio.wait_for(self.engine.ready(), self.config.timeout_ms / 1000)
            except Exception:  # noqa: BLE001 - a probe that fails or hangs says "not ready"
                ready = False
            if ready:
                self.breaker.half_open()


class GuardedStore:
    """Store reads and best-effort writes within ``store_timeout_ms``; an unreachable or slow store degrades the
    answer (no live session, no live counts) instead of failing it."""

    def __init__(self, config: FacadeConfig, metrics: Metrics):
        self.config, self.metrics = config, metrics

    async def __call__(self, what: str, make_call, default, part: str | None = None):
        """``make_call()``'s result, or ``default`` when the store fails; a read that feeds an answer names the
        ``part`` the answer then goes without."""
        start = time.perf_counter()
        try:
            result = await asyncio.wait_for(make_call(), self.config.store_timeout_ms / 1000)
        except Exception as exc:  # noqa: BLE001 - connection, timeout and protocol errors alike
            log.warning("session store %s failed: %s: %s", what, type(exc).__name__, exc)
            self.metrics.fallbacks.labels("store").inc()
            if part is not None:
                leave_out(part)
            return default
        self.metrics.stage.labels("store").observe(time.perf_counter() - start)
        return result
