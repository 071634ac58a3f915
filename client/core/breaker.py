"""A circuit breaker, so a dead Triton is not hammered: after ``failures`` consecutive failures calls are
skipped for ``reset_s`` seconds (or until a readiness probe sees it back: :meth:`CircuitBreaker.half_open`), then
one trial call decides whether to close again."""

from __future__ import annotations

import time


class CircuitBreaker:
    """
    Examples
    --------
    >>> breaker = CircuitBreaker(failures=2, reset_s=10)
    >>> breaker.record(False); breaker.record(False); breaker.allow()
    False
    """

    def __init__(self, failures: int = 3, reset_s: float = 5.0, clock=time.monotonic):
        if failures < 1 or reset_s <= 0:
            raise ValueError("failures must be ≥ 1 and reset_s > 0")
        self.failures, self.reset_s, self.clock = failures, reset_s, clock
        self.consecutive = 0
        self.opened_at: float | None = None
        self.trial_running = False

    @property
    def state(self) -> str:
        if self.opened_at is None:
            return "closed"
        return "half-open" if self.clock() - self.opened_at >= self.reset_s else "open"

    def allow(self) -> bool:
        """Whether to call now: always when closed; one trial at a time once the open period is over."""
        state = self.state
        if state == "closed":
            return True
        if state == "half-open" and not self.trial_running:
            self.trial_running = True
            return True
        return False

    def half_open(self) -> None:
        """End the open period now (the dependency was seen ready again): the next call is the trial."""
        if self.opened_at is not None:
            self.opened_at = min(self.opened_at, self.clock() - self.reset_s)

    def release(self) -> None:
        """End a call that is neither a success nor a failure (cancelled, or refused for its own input)."""
        self.trial_running = False

    def record(self, success: bool) -> None:
        self.trial_running = False
        if success:
            self.consecutive, self.opened_at = 0, None
            return
        self.consecutive += 1
        if self.consecutive >= self.failures or self.opened_at is not None:
            self.opened_at = self.clock()
