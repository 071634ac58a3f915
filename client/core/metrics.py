"""Prometheus metrics of the facade, in a registry of its own (one per app)."""

from __future__ import annotations

import time
from collections import Counter, deque

import numpy as np
from prometheus_client import CollectorRegistry, Gauge, Histogram
from prometheus_client import Counter as PromCounter

BUCKETS = (0.001, 0.0025, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.05, 0.075, 0.1, 0.2, 0.5, 1.0, 2.0)


class Metrics:
    def __init__(self):
        self.registry = CollectorRegistry()
        self.requests = PromCounter("recstack_requests_total", "HTTP requests", ["endpoint", "status"],
                                registry=self.registry)
        self.latency = Histogram("recstack_request_seconds", "request latency", ["endpoint"], buckets=BUCKETS,
                                 registry=self.registry)
        self.stage = Histogram("recstack_stage_seconds", "latency of a stage of a request", ["stage"],
                               buckets=BUCKETS, registry=self.registry)
        self.fallbacks = PromCounter("recstack_fallbacks_total", "answers from the popular-items fallback",
                                 ["reason"], registry=self.registry)
        self.triton_errors = PromCounter("recstack_triton_errors_total", "failed or timed-out Triton calls", ["model"],
                                     registry=self.registry)
        self.degraded = PromCounter("recstack_degraded_answers_total", "answers that left a part out "
                                    "(degraded_parts)", ["part"], registry=self.registry)
        self.dropped = PromCounter("recstack_dropped_requests_total", "requests dropped for a client too slow to "
                                   "send them", ["reason"], registry=self.registry)
        self.events = PromCounter("recstack_events_total", "posted events", ["outcome"], registry=self.registry)
        self.ingest_lag = Gauge("recstack_ingest_lag_events", "accepted events not yet in the event log "
                                "(recstack ingest); -1 without Redis", registry=self.registry)
        # Drift (client/core/drift.py): counted per personalised request, the gauges set every drift_interval_s.
        drift = ["model_version"]
        self.drift_requests = PromCounter("recstack_drift_requests_total", "personalised recommendation requests, "
                                          "by the model version that answered", drift, registry=self.registry)
        self.drift_unknown_items = PromCounter("recstack_drift_unknown_item_requests_total", "personalised requests "
                                               "whose history holds an item the model was not trained on", drift,
                                               registry=self.registry)
        self.drift_unknown_users = PromCounter("recstack_drift_unknown_user_requests_total", "personalised requests "
                                               "from a user without a training history", drift,
                                               registry=self.registry)
        self.drift_unknown_item_share = Gauge("recstack_drift_unknown_item_share", "share of the window's "
                                              "personalised requests whose history holds an untrained item", drift,
                                              registry=self.registry)
        self.drift_unknown_user_share = Gauge("recstack_drift_unknown_user_share", "share of the window's "
                                              "personalised requests from users without a training history", drift,
                                              registry=self.registry)
        self.drift_js = Gauge("recstack_drift_popularity_js", "Jensen-Shannon divergence (bits, 0..1) of the "
                              "window's accepted events' item popularity from the training popularity", drift,
                              registry=self.registry)
        self.drift_js_floor = Gauge("recstack_drift_popularity_js_floor", "the divergence a window of as many "
                                    "events drawn from the training popularity shows (sampling noise alone)", drift,
                                    registry=self.registry)
        self.drift_window_events = Gauge("recstack_drift_window_events", "accepted events in the drift window",
                                         drift, registry=self.registry)
        self.timeline = Timeline()
        self.model_versions: dict[str, float] = {}  # model version -> when it last served (Unix seconds)

    def served(self, versions) -> None:
        now = time.time()
        for version in set(versions):
            self.model_versions[version] = now


class Timeline:
    """The last minutes of the facade in fixed buckets, for the operations dashboard: requests, errors, fallbacks,
    events and latency percentiles. Prometheus keeps totals since start; a dashboard without a Prometheus server
    needs the recent shape, so this ring keeps ``span_s`` of it in memory (a few hundred numbers)."""

    def __init__(self, bucket_s: float = 10.0, span_s: float = 900.0, samples_per_bucket: int = 512):
        self.bucket_s, self.samples = bucket_s, samples_per_bucket
        self.buckets: deque[dict] = deque(maxlen=int(span_s // bucket_s))

    def _bucket(self, now: float | None = None) -> dict:
        start = (now if now is not None else time.time()) // self.bucket_s * self.bucket_s
        if not self.buckets or self.buckets[-1]["start"] < start:
            self.buckets.append({"start": start, "counts": Counter(), "latencies": []})
        return self.buckets[-1]

    def add(self, name: str, n: int = 1, now: float | None = None) -> None:
        self._bucket(now)["counts"][name] += n

    def request(self, status: int, seconds: float, now: float | None = None) -> None:
        bucket = self._bucket(now)
        bucket["counts"]["requests"] += 1
        if status >= 500:
            bucket["counts"]["errors"] += 1
        if len(bucket["latencies"]) < self.samples:  # a bucket's first requests stand for it under heavy load
            bucket["latencies"].append(seconds)

    def series(self, now: float | None = None) -> list[dict]:
        """One row per bucket, oldest first, empty buckets included, up to ``now``.

        Examples
        --------
        >>> timeline = Timeline(bucket_s=10, span_s=30)
        >>> timeline.request(200, 0.02, now=100.0); timeline.add("fallbacks", now=105.0)
        >>> [(r["start"], r["requests"], r["fallbacks"]) for r in timeline.series(now=125.0)]
        [(100.0, 1, 1), (110.0, 0, 0), (120.0, 0, 0)]
        """
        self._bucket(now)
        by_start = {b["start"]: b for b in self.buckets}
        last = self.buckets[-1]["start"]
        starts = [last - i * self.bucket_s for i in range(self.buckets.maxlen)][::-1]
        rows = []
        for start in starts:
            bucket = by_start.get(start, {"counts": Counter(), "latencies": []})
            if start < self.buckets[0]["start"]:
                continue
            latencies = np.asarray(bucket["latencies"]) * 1000
            rows.append({"start": start, "requests": bucket["counts"]["requests"],
                         "errors": bucket["counts"]["errors"], "fallbacks": bucket["counts"]["fallbacks"],
                         "events": bucket["counts"]["events"],
                         "p50_ms": round(float(np.percentile(latencies, 50)), 2) if len(latencies) else None,
                         "p95_ms": round(float(np.percentile(latencies, 95)), 2) if len(latencies) else None})
        return rows
