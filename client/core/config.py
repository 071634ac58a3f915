"""Typed settings of the facade (part of :class:`recstack.settings.Settings` as ``facade``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from recstack.client.core.sessions import StorePolicy
from recstack.ensemble.config import DEFAULT_HOST, DEFAULT_TRITON_GRPC_URL, FRESHNESS_DAYS
from recstack.ensemble.serving import SERVING_FILE
from recstack.preprocessing.config import DEFAULT_MAX_SEQUENCE_LENGTH


@dataclass(frozen=True)
class FacadeConfig:
    """Where the facade finds Triton (or the repository it runs in-process) and the session store, and how it
    protects itself.

    ``redis_url`` unset means an in-process store (the demo's default); set it (``RECSTACK_FACADE__REDIS_URL=
    redis://127.0.0.1:6379/0``) to share sessions and events between workers and keep them across restarts.
    """

    engine: Literal["triton", "in-process"] = "triton"  # in-process: the funnel inside this worker, no Triton
    repository: Path | None = None  # built model repository the in-process engine reads [build/model_repository]
    triton_url: str = DEFAULT_TRITON_GRPC_URL
    protocol: Literal["http", "grpc"] = "grpc"
    timeout_ms: float = 250.0  # budget for the Triton call of one request; past it the fallback answers
    breaker_failures: int = 3  # consecutive Triton failures that open the circuit
    breaker_reset_s: float = 5.0  # how long an open circuit skips Triton before one trial request, at most
    breaker_probe_s: float = 0.2  # how often an open circuit asks Triton whether it is ready again
    redis_url: str | None = None
    # The fsync policy Redis runs with (docker/compose.yaml passes the same RECSTACK_REDIS_FSYNC to both): "always"
    # loses no acknowledged event to an OS crash or power cut, "everysec" up to the last ~1 s (2 s if the disk
    # stalls); a killed Redis process loses nothing under either. /ready reports what the server says beside it.
    redis_fsync: Literal["always", "everysec"] = "everysec"
    store_timeout_ms: float = 100.0  # budget of a store read; past it the answer goes on without live data
    live_min_count: float = 5.0  # weighted events an item needs before live counts move it up the lists
    session_length: int = DEFAULT_MAX_SEQUENCE_LENGTH  # live events kept per user
    max_batch_events: int = 1000
    max_body_bytes: int = 1 << 20  # larger bodies get 413 before they are read (1,000 small events: ~200 KB)
    max_json_depth: int = 32  # deeper JSON gets 422 before it is parsed
    exploration_slots: int = 1  # positions of a personalised list the new-item bandit fills
    exploration_position: int = 3  # where the first of them goes (0-based)
    exploration_arms: int = 200  # newest new items the bandit chooses among per request
    freshness_days: float = FRESHNESS_DAYS  # items created this recently are arms of the bandit
    data: Path | None = None  # prepared dataset (id maps, known histories) [build/data/synthetic]
    ingest_file: Path | None = None  # items added through the API, for build-repo --new-items [build/ingest/...]
    experiments_file: Path | None = None
    demo: bool = False  # the demo storefront at /demo/ on the prepared catalog, with a public key of its own
    host: str = DEFAULT_HOST
    port: int = 8080
    # Slow and idle clients (client/README.md, "Timeouts, degradation and durability"): a connection that has not
    # sent a request's head within head_timeout_s, or its body within body_timeout_s, is dropped, so a few hundred
    # trickling clients cannot hold the worker's connections; keep_alive_s closes idle connections between requests.
    head_timeout_s: float = 5.0
    body_timeout_s: float = 10.0  # 1,000 events (~150 kB) take well under a second on a slow mobile link
    keep_alive_s: float = 5.0
    max_connections: int = 1000  # past it a new request is answered 503 at once instead of queueing unseen
    max_head_bytes: int = 16_384  # a request head still incomplete past this size is refused with 400
    # Security (client/README.md, "Keys, limits and data rights"). Off only by an explicit choice, with a warning.
    auth: bool = True
    keys_file: Path | None = None  # the key store without Redis [build/keys.json]; with redis_url keys live there
    # A new or revoked key, a deleted user and a new serving state (canary, promote, rollback) take effect on every
    # process within this time.
    keys_refresh_s: float = 2.0
    public_requests_per_minute: float = 300.0  # per public key and client address
    server_requests_per_minute: float = 6000.0  # per key
    admin_requests_per_minute: float = 600.0  # per key
    build_dir: Path | None = None  # a user deletion rewrites its prepared data and scores, and tombstones [build]
    events_retention_days: float = 30.0  # events and exposures older than this are trimmed from the streams
    session_ttl_days: float = 30.0  # a user's live session expires after this long without an event
    count_window_hours: float = 24.0  # live popularity counts a user once per item and event type in this window
    # Drift (client/README.md, "Drift"): every drift_interval_s, the item popularity of the events accepted in the
    # last drift_window_s is compared with the training popularity. A window of few events diverges by sampling
    # noise alone (the floor /metrics reports beside it): a window holding a few times as many events as the
    # catalog has popular items keeps that floor low.
    drift_window_s: float = 3600.0
    drift_interval_s: float = 60.0

    @property
    def serving_file(self) -> Path | None:
        """The model repository's serving state, whose canary the experiments route a share of users to; a
        facade on another host than the repository sees no canary (the file is absent there)."""
        return Path(self.repository) / SERVING_FILE if self.repository else None

    @property
    def store_policy(self) -> StorePolicy:
        # An address's cap is the live threshold: one address alone lifts at most one item past it.
        return StorePolicy(self.events_retention_days, self.session_ttl_days, self.count_window_hours,
                           contributor_cap=self.live_min_count)
