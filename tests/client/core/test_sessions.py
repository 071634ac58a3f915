"""The session stores (in-process and Redis) alike: what live popularity counts, retention, expiry, forgetting."""

import asyncio
import time

import pytest
import redis
from recstack.client.core.sessions import MemoryStore, RedisStore, StorePolicy

WEIGHTS = {"view": 1.0, "click": 2.0, "add_to_cart": 4.0, "purchase": 8.0, "rating": 1.0}


def event(user: str, item: str, kind: str = "view") -> dict:
    return {"user_id": user, "item_id": item, "item_idx": 2, "event_type": kind}


@pytest.fixture(params=["memory", "redis"])
def with_store(request):
    """``with_store(scenario, policy)`` runs ``await scenario(store)`` on a fresh store of the parameter's kind."""

    def run(scenario, policy: StorePolicy | None = None):
        async def main():
            policy_ = policy or StorePolicy()
            store = (MemoryStore(weights=WEIGHTS, policy=policy_) if request.param == "memory" else
                     RedisStore(request.getfixturevalue("flush_redis"), weights=WEIGHTS, policy=policy_))
            try:
                return await scenario(store)
            finally:
                await store.close()

        return asyncio.run(main())

    return run


def test_a_user_counts_once_per_item_and_event_type_in_a_window(with_store):
    async def scenario(store):
        counted = await store.append([event("u1", "a")] * 3 + [event("u1", "a", "purchase"), event("u2", "a")])
        assert [e["user_id"] + e["event_type"] for e in counted] == ["u1view", "u1purchase", "u2view"]
        assert await store.popular(5) == [("a", 10.0)]
        assert await store.recent("u1") == ["a"] * 4  # the session keeps every event
        return len(await store.events())

    assert with_store(scenario) == 5


def test_an_untrusted_contributor_adds_at_most_its_cap(with_store):
    async def scenario(store):
        bots = [event(f"anon_{n}", f"item{n % 3}", "purchase") for n in range(30)]
        counted = await store.append(bots, contributor="203.0.113.9")
        # The first purchase passes the cap; nothing after it counts, whatever the visitor ids.
        assert len(counted) == 1 and await store.popular(5) == [("item0", 8.0)]
        assert len(await store.append([event("anon_x", "item1")], contributor="198.51.100.1")) == 1
        assert len(await store.append([event("u9", "item2", "purchase")])) == 1  # backends are not capped

    with_store(scenario, StorePolicy(contributor_cap=5.0))


@pytest.mark.redis
def test_redis_trims_old_stream_entries_and_expires_idle_sessions(flush_redis):
    async def scenario():
        store = RedisStore(flush_redis, weights=WEIGHTS, policy=StorePolicy(retention_days=1 / 86_400,
                                                                            session_ttl_days=1.0))
        try:
            await store.append([event("u1", "a")])
            await store.log_exposure({"user_id": "u1", "items": ["a"]})
            time.sleep(1.2)
            await store.append([event("u2", "b")])
            await store.log_exposure({"user_id": "u2", "items": ["b"]})
            return await store.events(), await store.exposures()
        finally:
            await store.close()

    events, exposures = asyncio.run(scenario())
    assert [e["user_id"] for e in events] == ["u2"] and [e["user_id"] for e in exposures] == ["u2"]
    ttl = redis.Redis.from_url(flush_redis).ttl("recstack:session:u2")
    assert 86_000 < ttl <= 86_400


def test_forget_removes_the_session_and_stream_entries_of_one_user(with_store):
    async def scenario(store):
        await store.append([event("u1", "a"), event("u2", "b"), event("u1", "c")])
        await store.log_exposure({"user_id": "u1", "items": ["a"]})
        removed = await store.forget("u1")
        return removed, await store.recent("u1"), [e["user_id"] for e in await store.events()], \
            await store.exposures()

    removed, session, users, exposures = with_store(scenario)
    assert removed == {"session": 2, "events": 2, "exposures": 1}
    assert session == [] and users == ["u2"] and exposures == []


@pytest.mark.redis
@pytest.mark.parametrize("fsync", ["always", "everysec"])
def test_acknowledged_events_survive_a_killed_redis(tmp_path, fsync):
    """Redis writes the append-only file before it answers, so a SIGKILL of the process loses no acknowledged
    event under either policy (the policies differ on an OS crash, which a test cannot stage)."""
    from recstack.benchmarks.redis_server import RedisServer

    server = RedisServer(tmp_path / "redis", fsync=fsync).start()
    events = [{"user_id": f"u{n}", "item_id": f"i{n % 7}", "event_type": "view", "context": str(n)}
              for n in range(500)]

    async def write() -> None:
        store = RedisStore(server.url)
        for start in range(0, len(events), 50):
            await store.append(events[start:start + 50])
        await store.close()

    async def read() -> list[dict]:
        store = RedisStore(server.url)
        try:
            return await store.events()
        finally:
            await store.close()

    try:
        asyncio.run(write())
        server.kill()
        server.start()
        assert [e["context"] for e in asyncio.run(read())] == [e["context"] for e in events]
    finally:
        server.stop()
