"""``recstack ingest``: the facade's event stream into the event log (:mod:`recstack.preprocessing.lake`).

A Redis consumer group (``ingest``), so several consumers can share the stream, each under its own name (the
host's by default). Each round reads a batch (first
this consumer's own unacknowledged entries, left by a crash; then entries other consumers left idle for
``claim_idle_s``; then new ones), writes it as one part per date, durably, and only then acknowledges it
(``XACK``). A consumer killed at any moment therefore loses nothing the facade acknowledged: what it read but had
not acknowledged is read again, written under the same part name (named after the batch's first entry), and the
log is deduplicated on the facade's ``event_id`` in any case.
"""

from __future__ import annotations

import json
import logging
import socket
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from recstack.client.core.sessions import EVENTS_STREAM, INGEST_GROUP, KEY_PREFIX, group_lag
from recstack.preprocessing.lake import LAKE_EVENT_COLUMNS, EventLake

log = logging.getLogger(__name__)


def lake_row(entry_id: str, event: dict) -> dict:
    # Events stored before the facade gave ids are named by their stream entry, which is unique too.
    row = {name: event.get(name) for name in LAKE_EVENT_COLUMNS if name != "weight"}
    row["event_id"] = event.get("event_id") or f"stream-{entry_id}"
    moment = datetime.fromisoformat(row["timestamp"])  # the facade's ISO text; older entries may lack an offset
    row["timestamp"] = (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).astimezone(UTC).isoformat()
    return row


@dataclass
class IngestStats:
    events: int = 0
    batches: int = 0


class Ingest:
    """Move events from the stream at ``redis_url`` to ``lake``, ``batch`` at a time."""

    def __init__(self, redis_url: str, lake: EventLake, batch: int = 5000, claim_idle_s: float = 60.0,
                 consumer: str | None = None, prefix: str = KEY_PREFIX):
        import redis

        self.redis = redis.Redis.from_url(redis_url, decode_responses=True)
        self.lake, self.batch, self.claim_idle_ms = lake, batch, int(claim_idle_s * 1000)
        # A stable name: a consumer restarted after a crash takes up the entries it had read but not acknowledged.
        self.consumer = consumer or socket.gethostname()
        self.stream = f"{prefix}{EVENTS_STREAM}"
        try:
            self.redis.xgroup_create(self.stream, INGEST_GROUP, id="0", mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):  # the group exists: another consumer made it
                raise
        self.own_pending = True  # after a restart, this consumer's unacknowledged entries come first

    def _read(self, block_ms: int) -> list[tuple[str, dict]]:
        if self.own_pending:
            entries = self._entries(self.redis.xreadgroup(INGEST_GROUP, self.consumer, {self.stream: "0"},
                                                          count=self.batch))
            if entries:
                return entries
            self.own_pending = False
        claimed = self.redis.xautoclaim(self.stream, INGEST_GROUP, self.consumer, self.claim_idle_ms, "0-0",
                                        count=self.batch)[1]
        if claimed:
            return [(entry_id, fields) for entry_id, fields in claimed if fields]
        return self._entries(self.redis.xreadgroup(INGEST_GROUP, self.consumer, {self.stream: ">"}, count=self.batch,
                                                   block=block_ms))

    @staticmethod
    def _entries(reply) -> list[tuple[str, dict]]:
        return [(entry_id, fields) for _, entries in reply or [] for entry_id, fields in entries if fields]

    def step(self, block_ms: int = 1000) -> int:
        """One batch: read, write durably, acknowledge; the number of events moved (0 when none came)."""
        entries = self._read(block_ms)
        if not entries:
            return 0
        rows = [lake_row(entry_id, json.loads(fields["event"])) for entry_id, fields in entries]
        self.lake.write(rows, batch_name=entries[0][0])
        self.redis.xack(self.stream, INGEST_GROUP, *[entry_id for entry_id, _ in entries])
        return len(rows)

    def lag(self) -> int:
        """Entries not yet in the log: never delivered, plus delivered but not acknowledged."""
        return group_lag(self.redis.xinfo_groups(self.stream)) or 0  # this consumer made the group

    def run(self, should_stop, idle_exit: bool = False, report_every_s: float = 10.0) -> IngestStats:
        """Move batches until ``should_stop()`` (checked between batches, so a batch always finishes), or, with
        ``idle_exit``, until the stream has nothing more."""
        stats, last_report = IngestStats(), time.monotonic()
        while not should_stop():
            moved = self.step(block_ms=100 if idle_exit else 1000)
            stats.events += moved
            stats.batches += bool(moved)
            if moved == 0 and idle_exit:
                break
            if time.monotonic() - last_report >= report_every_s:
                log.info("ingest: %d events in %d batches; lag %d", stats.events, stats.batches, self.lag())
                last_report = time.monotonic()
        return stats

    def close(self) -> None:
        self.redis.close()

