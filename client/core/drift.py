"""Drift: how far what the facade sees has moved from what the serving model was trained on.

Three signals, labelled by the model version that served (client/README.md, "Drift"): the share of personalised
requests whose history holds items the model was not trained on, the share from users without a training history,
and the Jensen–Shannon divergence between the item popularity of the events accepted in a sliding window and the
training-time popularity, beside its sampling floor. The shares cost two counter increments per request; the
divergence is computed every ``drift_interval_s`` over the last ``drift_window_s``, off the request path.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import Counter, deque
from collections.abc import Hashable, Iterable
from dataclasses import dataclass

import numpy as np
from recstack.client.core.bandit import EXPLORATION_VERSION
from recstack.client.core.metrics import Metrics
from recstack.client.recommendation import Recommendation

log = logging.getLogger(__name__)
WINDOW_STEPS = 60  # the sliding window moves in steps of window_s / WINDOW_STEPS
# Samples of the window's size drawn from the training distribution; the floor is the mean of their divergences.
# A fixed seed keeps the floor of a given window size the same from one refresh to the next.
FLOOR_DRAWS = 8
FLOOR_SEED = 0
NO_VERSION = "none"  # the label of a request answered with an empty list


def js_divergence(p, q) -> float:
    """Jensen–Shannon divergence of two count (or probability) vectors over the same item indices, in bits: 0 for
    the same distribution, 1 for disjoint supports. The shorter vector is padded with zeros (items it never had);
    NaN when either holds nothing.

    Examples
    --------
    >>> js_divergence([1, 1], [2, 2]), js_divergence([1, 0], [0, 1]), round(js_divergence([3, 1], [1, 3]), 4)
    (0.0, 1.0, 0.1887)
    """
    p, q = np.asarray(p, dtype=np.float64), np.asarray(q, dtype=np.float64)
    size = max(len(p), len(q))
    p, q = np.pad(p, (0, size - len(p))), np.pad(q, (0, size - len(q)))
    if p.sum() <= 0 or q.sum() <= 0:
        return math.nan
    p, q = p / p.sum(), q / q.sum()
    m = (p + q) / 2
    return float(min(1.0, max(0.0, (_kl_bits(p, m) + _kl_bits(q, m)) / 2)))  # clipped: rounding only


def _kl_bits(p: np.ndarray, m: np.ndarray) -> float:
    held = p > 0  # m > 0 wherever p > 0, as m is the mean of p and another distribution
    return float(np.sum(p[held] * np.log2(p[held] / m[held])))


def sampling_floor(expected, n: int, draws: int = FLOOR_DRAWS, seed: int = FLOOR_SEED) -> float:
    """The divergence from ``expected`` that ``n`` events drawn from ``expected`` itself show: sampling noise
    alone, the mean over ``draws`` multinomial samples. A window of few events over many items diverges a lot
    without any drift (most items cannot appear in it), so a divergence means something only above this floor.

    Examples
    --------
    >>> training = np.ones(1000)
    >>> few, many = sampling_floor(training, 100), sampling_floor(training, 100_000)
    >>> few > 0.5, many < 0.01
    (True, True)
    """
    expected = np.asarray(expected, dtype=np.float64)
    if n <= 0 or expected.sum() <= 0:
        return math.nan
    rng = np.random.default_rng(seed)
    p = expected / expected.sum()
    return float(np.mean([js_divergence(rng.multinomial(n, p), p) for _ in range(draws)]))


def served_version(items: list[Recommendation]) -> str:
    """The model version a list came from: its first item's, the new-item bandit's slot aside."""
    return next((i.model_version for i in items if i.model_version != EXPLORATION_VERSION), NO_VERSION)


class SlidingWindow:
    """Counts of keys over the last ``span_s`` seconds (to one step of ``span_s / steps``), with a running total,
    so reading costs what the window holds, not the number of additions."""

    def __init__(self, span_s: float, steps: int = WINDOW_STEPS):
        self.span_s, self.step_s = span_s, span_s / steps
        self.buckets: deque[tuple[float, Counter]] = deque()
        self.total: Counter = Counter()

    def add(self, keys: Iterable[Hashable], now: float | None = None) -> None:
        now = time.time() if now is None else now
        start = now // self.step_s * self.step_s
        if not self.buckets or self.buckets[-1][0] < start:
            self.buckets.append((start, Counter()))
        counts = Counter(keys)
        self.buckets[-1][1].update(counts)
        self.total.update(counts)
        self._expire(now)

    def counts(self, now: float | None = None) -> dict:
        """A copy of the window's counts (key -> count).

        Examples
        --------
        >>> window = SlidingWindow(60, steps=6)
        >>> window.add(["a", "b"], now=0.0); window.add(["a"], now=30.0)
        >>> window.counts(now=55.0), window.counts(now=75.0), window.counts(now=200.0)
        ({'a': 2, 'b': 1}, {'a': 1}, {})
        """
        self._expire(time.time() if now is None else now)
        return dict(self.total)

    def _expire(self, now: float) -> None:
        # A bucket stays while any of it is within the span.
        while self.buckets and self.buckets[0][0] + self.step_s <= now - self.span_s:
            for key, count in self.buckets.popleft()[1].items():
                self.total[key] -= count
                if self.total[key] <= 0:
                    del self.total[key]


@dataclass(frozen=True)
class Novelty:
    """What a request brings that the serving model was not trained on."""

    unknown_user: bool  # no training history
    unknown_items: bool  # the history holds an item without training events (added since, or never seen)


class DriftMonitor:
    """Counts requests and accepted events as they come, and publishes the drift gauges every ``interval_s``
    (:meth:`run`) over the last ``window_s``. ``trained_events``: training events per item index (zero for an
    item the models never saw; indices past its end are items added since)."""

    def __init__(self, trained_events: np.ndarray, metrics: Metrics, window_s: float, interval_s: float):
        self.trained = np.asarray(trained_events, dtype=np.float64)
        self.metrics, self.window_s, self.interval_s = metrics, window_s, interval_s
        self.events = SlidingWindow(window_s)
        self.requests = SlidingWindow(window_s)  # keys (model version, "requests" | "unknown_item" | "unknown_user")
        self.last_version: str | None = None
        self.published: set[str] = set()
        self.reading: dict | None = None  # the last refresh, for the dashboard

    def novelty(self, known_user: bool, live_ids: int, live: Iterable[int]) -> Novelty:
        """``live_ids``: raw item ids of the live session; ``live``: the indices of those this process knows (an id
        it does not know comes from a newer catalog, so no model it serves was trained on it)."""
        live = list(live)
        untrained = len(live) < live_ids or any(i >= len(self.trained) or self.trained[i] <= 0 for i in live)
        return Novelty(unknown_user=not known_user, unknown_items=untrained)

    def request(self, version: str, novelty: Novelty, now: float | None = None) -> None:
        """A personalised request answered by ``version``."""
        keys = [(version, "requests")]
        self.metrics.drift_requests.labels(version).inc()
        if novelty.unknown_items:
            self.metrics.drift_unknown_items.labels(version).inc()
            keys.append((version, "unknown_item"))
        if novelty.unknown_user:
            self.metrics.drift_unknown_users.labels(version).inc()
            keys.append((version, "unknown_user"))
        self.requests.add(keys, now)
        self.last_version = version

    def accepted(self, items: list[int], now: float | None = None) -> None:
        """Item indices of accepted interactions (impressions are not popularity)."""
        self.events.add(items, now)

    # -- the periodic part ------------------------------------------------------------------------------------

    def snapshot(self, now: float | None = None) -> tuple[dict, dict]:
        now = time.time() if now is None else now
        return self.events.counts(now), self.requests.counts(now)

    def compute(self, events: dict, requests: dict, now: float | None = None) -> dict:
        """The reading of a snapshot: the divergence and its floor (the costly part, over every item) and the
        shares per version that served within the window (or the last one, when none did)."""
        n = int(sum(events.values()))
        recent = np.zeros(max(len(self.trained), max(events, default=-1) + 1))
        recent[list(events)] = list(events.values())
        versions = sorted({version for version, _ in requests}) or ([self.last_version] if self.last_version else [])

        def share(version, kind):
            asked = requests.get((version, "requests"), 0)
            return requests.get((version, kind), 0) / asked if asked else None

        return {"at": time.time() if now is None else now, "window_s": self.window_s, "interval_s": self.interval_s,
                "events": n, "js_divergence": js_divergence(recent, self.trained) if n else None,
                "js_floor": sampling_floor(self.trained, n) if n else None,
                "versions": [{"model_version": v, "requests": requests.get((v, "requests"), 0),
                              "unknown_item_share": share(v, "unknown_item"),
                              "unknown_user_share": share(v, "unknown_user")} for v in versions]}

    def publish(self, reading: dict) -> None:
        m = self.metrics
        gauges = (m.drift_unknown_item_share, m.drift_unknown_user_share, m.drift_js, m.drift_js_floor,
                  m.drift_window_events)
        current = {row["model_version"] for row in reading["versions"]}
        for version in self.published - current:  # a version that stopped serving leaves no stale value behind
            for gauge in gauges:
                gauge.remove(version)
        nan = math.nan
        for row in reading["versions"]:
            version = row["model_version"]
            m.drift_unknown_item_share.labels(version).set(_or(row["unknown_item_share"], nan))
            m.drift_unknown_user_share.labels(version).set(_or(row["unknown_user_share"], nan))
            m.drift_js.labels(version).set(_or(reading["js_divergence"], nan))
            m.drift_js_floor.labels(version).set(_or(reading["js_floor"], nan))
            m.drift_window_events.labels(version).set(reading["events"])
        self.published, self.reading = current, reading

    @property
    def summary(self) -> dict:
        """The last reading (the dashboard's drift block); before the first, the settings and nothing measured."""
        return self.reading or {"at": None, "window_s": self.window_s, "interval_s": self.interval_s, "events": 0,
                                "js_divergence": None, "js_floor": None, "versions": []}

    def refresh(self, now: float | None = None) -> dict:
        """Snapshot, compute and publish at once (tests, and the loop's synchronous twin)."""
        reading = self.compute(*self.snapshot(now), now)
        self.publish(reading)
        return reading

    async def run(self) -> None:
        """Every ``interval_s`` until cancelled: the snapshot on the event loop (the windows change there), the
        computation on a worker thread, the gauges set back on the loop."""
        while True:
            await asyncio.sleep(self.interval_s)
            try:
                snapshot = self.snapshot()
                self.publish(await asyncio.to_thread(self.compute, *snapshot))
            except Exception:  # a monitoring bug must not stop the loop, nor anything else
                log.exception("drift computation failed")


def _or(value: float | None, default: float) -> float:
    return default if value is None else value
