"""Experiments through the API: sticky variants, a popular-items arm, interleaving, the exposure log."""

import json

import pytest
import redis

from .conftest import make_api, write_experiments

pytestmark = [pytest.mark.triton, pytest.mark.redis]


def exposures(redis_url):
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    return [json.loads(fields["exposure"]) for _, fields in client.xrange("recstack:exposures")]


def test_sticky_variants_and_the_popular_arm(trained_shop, triton_server, flush_redis, known_user, tmp_path):
    path = write_experiments(tmp_path / "e.json", [{"id": "model-vs-popular", "variants": [
        {"name": "control", "weight": 1}, {"name": "popular", "weight": 1, "source": "popular"}]}])
    with make_api(trained_shop, triton_server.grpc_url, flush_redis, experiments_file=path) as api:
        variants = {}
        for user in [known_user[0]] + [f"u{i}" for i in range(30)]:
            api.post("/api/v1/events", json={"user_id": user, "item_id": "i0000148", "event_type": "view"})
            first = api.get(f"/api/v1/recommendations/{user}", params={"limit": 5}).json()
            again = api.get(f"/api/v1/recommendations/{user}", params={"limit": 5}).json()
            assert first["experiment_id"] == "model-vs-popular" and first["variant"] == again["variant"]
            variants[user] = first
        assert {v["variant"] for v in variants.values()} == {"control", "popular"}
        for body in variants.values():
            reasons = {r["reason"] for r in body["recommendations"]}
            if body["variant"] == "popular":
                assert reasons == {"popular right now"} and body["degraded"] is False
        logged = exposures(flush_redis)
        assert len(logged) == 2 * len(variants)
        record = logged[0]
        assert set(record) >= {"request_id", "user_id", "variant", "items", "experiment_id", "context"}
        assert record["items"] == [r["item_id"] for r in variants[record["user_id"]]["recommendations"]]


def test_interleaving_merges_two_variants(trained_shop, triton_server, flush_redis, known_user, tmp_path):
    path = write_experiments(tmp_path / "e.json", [{"id": "il", "interleave": True, "variants": [
        {"name": "model"}, {"name": "popular", "source": "popular"}]}])
    with make_api(trained_shop, triton_server.grpc_url, flush_redis, experiments_file=path) as api:
        body = api.get(f"/api/v1/recommendations/{known_user[0]}", params={"limit": 10}).json()
        assert body["variant"] == "interleaved" and len(body["recommendations"]) == 10
        assert "team" not in body["recommendations"][0]
        (record,) = exposures(flush_redis)
        assert sorted(set(record["teams"])) == ["model", "popular"] and len(record["teams"]) == 10


def test_without_redis_the_in_process_store_keeps_sessions(trained_shop, triton_server, items):
    with make_api(trained_shop, triton_server.grpc_url, None) as api:
        assert api.get("/ready").json()["store"] is True
        posted = items[20:23]
        api.post("/api/v1/events", json=[{"user_id": "solo", "item_id": i, "event_type": "view"} for i in posted])
        recs = api.get("/api/v1/recommendations/solo", params={"limit": 10}).json()["recommendations"]
        assert not {r["item_id"] for r in recs} & set(posted)
        assert any(r["reason"].startswith(("because you viewed", "customers who viewed")) for r in recs)
