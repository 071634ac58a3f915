"""POST /api/v1/events: strict validation, partial acceptance, Redis as the store."""

import json

import pytest
import redis

pytestmark = [pytest.mark.triton, pytest.mark.redis]


def test_one_event_lands_in_the_session_and_the_stream(api, items, flush_redis):
    response = api.post("/api/v1/events", json={"user_id": "u9", "item_id": items[3], "event_type": "purchase",
                                                "timestamp": "2026-03-01T10:00:00Z", "context": {"page": "pdp"}})
    assert response.status_code == 200 and response.json() == {"accepted": 1, "rejected": []}
    store = redis.Redis.from_url(flush_redis, decode_responses=True)
    assert store.lrange("recstack:session:u9", 0, -1) == [items[3]]  # raw ids: shareable across catalog versions
    (_, fields), = store.xrange("recstack:events")
    event = json.loads(fields["event"])
    assert event["item_id"] == items[3] and event["event_type"] == "purchase"
    assert event["timestamp"].startswith("2026-03-01T10:00:00")
    assert store.zscore("recstack:popularity", items[3]) == 8.0  # purchase weight


def test_event_times_are_stored_in_utc_an_offset_less_one_taken_as_utc(api, items, flush_redis):
    events = [{"user_id": "u9", "item_id": items[3], "event_type": "view", "timestamp": "2026-03-01T10:00:00"},
              {"user_id": "u9", "item_id": items[4], "event_type": "view", "timestamp": "2026-03-01T12:00:00+02:00"}]
    assert api.post("/api/v1/events", json=events).json()["accepted"] == 2
    stored = redis.Redis.from_url(flush_redis, decode_responses=True).xrange("recstack:events")
    assert [json.loads(fields["event"])["timestamp"] for _, fields in stored] == ["2026-03-01T10:00:00+00:00"] * 2


def test_a_batch_keeps_its_valid_events_and_names_the_bad_ones(api, items):
    batch = {"events": [
        {"user_id": "u1", "item_id": items[0], "event_type": "view"},
        {"user_id": "u1", "item_id": items[1], "event_type": "teleport"},
        {"user_id": "u1", "item_id": "no-such-item", "event_type": "view"},
        {"user_id": "", "item_id": items[2], "event_type": "view"},
        {"user_id": "u1", "event_type": "view"},
        {"user_id": "u1", "item_id": items[2], "event_type": "click", "timestamp": "yesterday"},
        {"user_id": "u1", "item_id": items[2], "event_type": "click", "colour": "red"},
        {"user_id": "u1", "item_id": items[4], "event_type": "add_to_cart"},
    ]}
    response = api.post("/api/v1/events", json=batch)
    assert response.status_code == 200
    body = response.json()
    assert body["accepted"] == 2
    reasons = {r["index"]: r["reason"] for r in body["rejected"]}
    assert sorted(reasons) == [1, 2, 3, 4, 5, 6]
    assert "event_type" in reasons[1] and "unknown item 'no-such-item'" in reasons[2]
    assert "user_id" in reasons[3] and "item_id" in reasons[4] and "timestamp" in reasons[5]
    assert "colour" in reasons[6]


@pytest.mark.parametrize(("body", "status", "message"), [
    ([], 422, "no events"),
    ({"user_id": "u1", "item_id": "nope", "event_type": "view"}, 422, "no valid event"),
    ([{"user_id": "u1", "item_id": "i", "event_type": "view"}] * 1001, 422, "over the limit of 1000"),
    ("not json", 422, ""),
])
def test_bad_bodies_are_rejected_with_the_reason(api, body, status, message):
    if body == "not json":
        response = api.post("/api/v1/events", content=b"{oops", headers={"content-type": "application/json"})
    else:
        response = api.post("/api/v1/events", json=body)
    assert response.status_code == status and message in response.text


def test_a_store_outage_degrades_reads_and_refuses_writes(trained_shop, triton_server, known_user, items):
    from .conftest import make_api

    with make_api(trained_shop, triton_server.grpc_url, "redis://127.0.0.1:1/0") as api:
        listed = api.get(f"/api/v1/recommendations/{known_user[0]}", params={"limit": 5})
        assert listed.status_code == 200 and len(listed.json()["recommendations"]) == 5
        assert api.get("/api/v1/recommendations/newbie", params={"type": "trending"}).status_code == 200
        posted = api.post("/api/v1/events", json={"user_id": "u1", "item_id": items[0], "event_type": "view"})
        assert posted.status_code == 503 and "nothing was recorded" in posted.text
        assert posted.headers["Retry-After"] == "1"
        assert 'recstack_fallbacks_total{reason="store"}' in api.get("/metrics").text


def top_trending(api, headers=None) -> list[str]:
    body = api.get("/api/v1/recommendations/anon_reader", params={"type": "trending", "limit": 10},
                   headers=headers or {}).json()
    return [r["item_id"] for r in body["recommendations"]]


def fake_purchases(api, targets: list[str], headers: dict) -> None:
    """The attack measured before keys existed: 20 POSTs of 1,000 purchases of the attacker's chosen items, each
    from a made-up visitor."""
    for post in range(20):
        batch = [{"user_id": f"anon_bot{post}x{n}", "item_id": targets[n % len(targets)], "event_type": "purchase"}
                 for n in range(1000)]
        assert api.post("/api/v1/events", json=batch, headers=headers).status_code == 200


@pytest.mark.parametrize("auth", [True, False], ids=["public-key", "no-auth"])
def test_a_burst_of_fake_purchases_from_one_client_moves_at_most_one_trending_item(trained_shop, triton_server,
                                                                                  flush_redis, auth):
    from .conftest import make_api, new_key

    with make_api(trained_shop, triton_server.grpc_url, flush_redis, auth=auth) as api:
        before = top_trending(api)
        shop = api.app.state.recommender.shop
        targets = [shop.item_ids[i] for i in shop.popular[-9:]]  # the least popular items
        headers = {}
        if auth:
            origin = "https://shop.example"
            headers = {"X-API-Key": new_key(api.app.state.config, "page", "public", (origin,)).key, "Origin": origin}
        fake_purchases(api, targets, headers)
        moved = set(top_trending(api)) - set(before)
        if auth:
            assert len(moved) <= 1 and len(set(top_trending(api)) & set(targets)) <= 1
        else:  # a trusted caller is believed: what the cap prevents for pages
            assert len(set(top_trending(api)) & set(targets)) >= 5
