"""recstack ingest: every event the facade accepted reaches the event log exactly once, across crashes."""

import asyncio
import os
import random
import signal
import subprocess
import sys
import threading
import time
import uuid

import polars as pl
import pytest
from recstack.client.core.ingest import Ingest
from recstack.client.core.sessions import RedisStore
from recstack.preprocessing.datasets.events_files import load_events_files
from recstack.preprocessing.lake import EventLake

pytestmark = pytest.mark.redis


def make_events(n: int, day: str = "2026-11-30") -> list[dict]:
    return [{"event_id": uuid.uuid4().hex, "user_id": f"u{i % 37}", "item_id": f"i{i % 101}", "item_idx": 2,
             "event_type": "view", "timestamp": f"{day}T{i % 24:02d}:00:00+00:00", "context": None}
            for i in range(n)]


def post(redis_url: str, events: list[dict], batch: int = 100) -> None:
    """As the facade records accepted events."""
    async def run():
        store = RedisStore(redis_url)
        try:
            for start in range(0, len(events), batch):
                await store.append(events[start:start + batch])
        finally:
            await store.close()

    asyncio.run(run())


def lag(redis_url: str) -> int | None:
    async def run():
        store = RedisStore(redis_url)
        try:
            return await store.ingest_lag()
        finally:
            await store.close()

    return asyncio.run(run())


def test_events_reach_the_log_once_by_date_and_preprocessing_reads_it(flush_redis, tmp_path):
    events = make_events(700) + make_events(300, day="2026-12-01")
    events[5]["event_type"] = "impression"  # logged, but not an interaction to learn from
    events[6]["timestamp"] = "2026-11-30T05:00:00"  # stored before times were made UTC: taken as UTC
    post(flush_redis, events)
    assert lag(flush_redis) == 1000  # before any consumer: the whole stream
    lake = EventLake(tmp_path / "lake")
    ingest = Ingest(flush_redis, lake, batch=256)
    assert ingest.run(lambda: False, idle_exit=True).events == 1000
    assert lag(flush_redis) == 0
    logged = lake.events()
    assert sorted(logged["event_id"]) == sorted(e["event_id"] for e in events)
    assert {p.parent.name for p in lake.parts()} == {"date=2026-11-30", "date=2026-12-01"}
    assert load_events_files(lake.events_dir).events.height == 999
    post(flush_redis, make_events(10))
    assert lag(flush_redis) == 10


def test_a_batch_written_but_not_acknowledged_is_written_again_under_the_same_name(flush_redis, tmp_path):
    events = make_events(500)
    post(flush_redis, events)
    lake = EventLake(tmp_path / "lake")
    crashed = Ingest(flush_redis, lake, batch=200, consumer="worker-1")
    entries = crashed._read(block_ms=10)
    lake.write([{k: e[k] for k in ("event_id", "user_id", "item_id", "event_type", "timestamp")}
                for e in events[:len(entries)]], batch_name=entries[0][0])  # then killed before XACK
    restarted = Ingest(flush_redis, lake, batch=200, consumer="worker-1")
    assert restarted.run(lambda: False, idle_exit=True).events == 500
    assert sum(pl.read_parquet(part).height for part in lake.parts()) == 500  # no row twice on disk


def test_entries_a_dead_consumer_left_are_claimed_by_another(flush_redis, tmp_path):
    events = make_events(300)
    post(flush_redis, events)
    lake = EventLake(tmp_path / "lake")
    Ingest(flush_redis, lake, batch=300, consumer="dead")._read(block_ms=10)  # read, never written
    other = Ingest(flush_redis, lake, batch=300, consumer="alive", claim_idle_s=0.0)
    other.run(lambda: False, idle_exit=True)
    assert sorted(lake.events()["event_id"]) == sorted(e["event_id"] for e in events)
    assert lag(flush_redis) == 0


def test_sigkill_at_random_moments_loses_and_doubles_nothing(flush_redis, tmp_path):
    events = make_events(6000)
    lake = EventLake(tmp_path / "lake")
    env = {**os.environ, "RECSTACK_FACADE__REDIS_URL": flush_redis, "RECSTACK_BUILD_DIR": str(tmp_path)}
    command = [sys.executable, "-m", "recstack", "ingest", "--batch", "40"]
    writer = threading.Thread(target=post, args=(flush_redis, events, 50))
    writer.start()
    rng = random.Random(7)
    kills = 0
    while writer.is_alive() or kills < 3:
        consumer = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(1.5, 3.0))  # an interpreter start, then some batches
        consumer.send_signal(signal.SIGKILL)
        consumer.wait()
        kills += 1
    writer.join()
    subprocess.run([*command, "--once"], env=env, check=True, capture_output=True, timeout=300)
    logged = lake.events()
    assert logged.height == len(events) and set(logged["event_id"]) == {e["event_id"] for e in events}
    assert lag(flush_redis) == 0
    assert all(pl.read_parquet(part).height for part in lake.parts())  # a killed write leaves no torn part
