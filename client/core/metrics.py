"""Prometheus metrics of the facade, in a registry of its own (one per app)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

BUCKETS = (0.001, 0.0025, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.05, 0.075, 0.1, 0.2, 0.5, 1.0, 2.0)


class Metrics:
    def __init__(self):
        self.registry = CollectorRegistry()
        self.requests = Counter("recstack_requests_total", "HTTP requests", ["endpoint", "status"],
                                registry=self.registry)
        self.latency = Histogram("recstack_request_seconds", "request latency", ["endpoint"], buckets=BUCKETS,
                                 registry=self.registry)
        self.stage = Histogram("recstack_stage_seconds", "latency of a stage of a request", ["stage"],
                               buckets=BUCKETS, registry=self.registry)
        self.fallbacks = Counter("recstack_fallbacks_total", "answers from the popular-items fallback",
                                 ["reason"], registry=self.registry)
        self.triton_errors = Counter("recstack_triton_errors_total", "failed or timed-out Triton calls", ["model"],
                                     registry=self.registry)
        self.degraded = Counter("recstack_degraded_answers_total", "answers that left a part out (degraded_parts)",
                                ["part"], registry=self.registry)
        self.events = Counter("recstack_events_total", "posted events", ["outcome"], registry=self.registry)
        self.dropped = Counter("recstack_dropped_requests_total", "requests dropped for a client too slow to send them",
                               ["reason"], registry=self.registry)
