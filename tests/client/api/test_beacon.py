"""Beacons (``POST /api/v1/events/beacon``): what navigator.sendBeacon sends, with the public key in the URL;
impressions kept in the event stream only. The facade runs the funnel in-process on a real Redis."""

import json

import pytest
import redis

from .conftest import make_api, new_key

pytestmark = pytest.mark.redis

SHOP = "https://shop.example"


@pytest.fixture
def beacon_api(trained_shop, model_repository, flush_redis):
    with make_api(trained_shop, "127.0.0.1:1", flush_redis, engine="in-process",
                  repository=model_repository) as api:
        config = api.app.state.config
        yield api, {"public": new_key(config, "page", "public", (SHOP,)).key,
                    "server": new_key(config, "backend", "server").key}


def beacon(api, key, body, origin=SHOP):
    headers = {"content-type": "text/plain;charset=UTF-8", "X-API-Key": ""}
    if origin:
        headers["Origin"] = origin
    return api.post("/api/v1/events/beacon", params={"key": key} if key else {}, content=body, headers=headers)


def test_a_beacon_records_events_and_keeps_impressions_out_of_session_and_popularity(beacon_api, items,
                                                                                     flush_redis):
    api, keys = beacon_api
    seen = [{"user_id": "anon_b1", "item_id": item, "event_type": "impression",
             "context": {"request_id": "r42", "placement": "home", "position": i}} for i, item in enumerate(items[:3])]
    clicked = {"user_id": "anon_b1", "item_id": items[1], "event_type": "click", "context": {"request_id": "r42"}}
    response = beacon(api, keys["public"], json.dumps({"events": [*seen, clicked]}))
    assert response.status_code == 200, response.text
    assert response.json() == {"accepted": 4, "rejected": []}
    assert response.headers["Access-Control-Allow-Origin"] == SHOP
    stored = redis.Redis.from_url(flush_redis, decode_responses=True)
    stream = [json.loads(fields["event"]) for _, fields in stored.xrange("recstack:events")]
    # Interactions and impressions are written apart (one to the session too): each keeps its own order.
    assert sorted((e["event_type"], e["item_id"], e["context"]["request_id"]) for e in stream) == \
        [("click", items[1], "r42")] + [("impression", i, "r42") for i in sorted(items[:3])]
    assert stored.lrange("recstack:session:anon_b1", 0, -1) == [items[1]]  # the click only
    assert set(stored.zrange("recstack:popularity", 0, -1)) == {items[1]}


@pytest.mark.parametrize("key, origin, body, status, message", [
    (None, SHOP, "{}", 401, "an API key is needed"),
    ("rsk_public_guessed", SHOP, "{}", 401, "unknown or revoked"),
    ("server", SHOP, "{}", 403, "only a public key may be sent in a URL"),
    ("public", "https://elsewhere.example", "{}", 403, "is for pages on its origins only"),
    ("public", None, "{}", 403, "is for pages on its origins only"),
    ("public", SHOP, "not json", 422, "the body is not JSON"),
    ("public", SHOP, "[]", 422, "no events"),
    ("public", SHOP, json.dumps({"user_id": "u0000001", "item_id": "i1", "event_type": "view"}), 403,
     "anonymous visitors"),
])
def test_refused_beacons_record_nothing(beacon_api, flush_redis, key, origin, body, status, message):
    api, keys = beacon_api
    response = beacon(api, keys.get(key, key), body, origin)
    assert response.status_code == status, response.text
    assert message in response.text
    assert redis.Redis.from_url(flush_redis).xlen("recstack:events") == 0


def test_the_dashboard_reports_traffic_for_admin_keys_only(beacon_api, items):
    api, keys = beacon_api
    for _ in range(3):
        assert api.get("/api/v1/recommendations/anon_d1", params={"limit": 4},
                       headers={"X-API-Key": keys["server"]}).status_code == 200
    assert beacon(api, keys["public"], json.dumps({"user_id": "anon_d1", "item_id": items[0],
                                                   "event_type": "view"})).status_code == 200
    board = api.get("/api/v1/dashboard").json()  # the fixture's client sends an admin key
    assert board["totals"]["requests"] == 4 and board["totals"]["events"] == 1
    assert board["timeline"]["rows"][-1]["p95_ms"] > 0
    assert board["model_versions"] and board["engine"] == "in-process"
    assert len(board["trending"]) == 10 and all(t["title"] for t in board["trending"])
    assert board["event_stream"]["events"] == 1
    assert api.get("/api/v1/dashboard", headers={"X-API-Key": keys["server"]}).status_code == 403
    assert api.get("/api/v1/dashboard", headers={"X-API-Key": ""}).status_code == 401
