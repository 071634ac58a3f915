"""Who may call what: keys and scopes, revocation, origins and CORS, user tokens, rate limits, operators' routes.

Each refusal is checked for its status and message and for what it leaves behind: a refused request records
nothing (the real Redis is read back)."""

import pytest
import redis
from fastapi.testclient import TestClient
from recstack.client.api.main import create_app
from recstack.client.core.keys import FileKeyStore, revoke_key, sign_user_token

from .conftest import make_api, new_key

pytestmark = [pytest.mark.triton, pytest.mark.redis]

SHOP = "https://shop.example"
ROUTES = [  # (method, path, body, scope needed)
    ("GET", "/api/v1/recommendations/anon_visitor", None, "public"),
    ("GET", "/api/v1/similar/{item}", None, "public"),
    ("POST", "/api/v1/events", {"user_id": "anon_visitor", "item_id": "{item}", "event_type": "view"}, "public"),
    ("POST", "/api/v1/rank", {"user_id": "anon_visitor", "item_ids": ["{item}"]}, "server"),
    ("POST", "/api/v1/search/rerank", {"user_id": "anon_visitor", "item_ids": ["{item}"]}, "server"),
    ("POST", "/api/v1/items", {"item_id": "sku-from-a-stranger"}, "admin"),
    ("DELETE", "/api/v1/users/u1", None, "admin"),
]


def call(api: TestClient, route, item: str, **headers):
    method, path, body, _ = route
    path = path.format(item=item)
    if isinstance(body, dict):
        body = {k: (v.format(item=item) if isinstance(v, str) else [x.format(item=item) for x in v])
                if isinstance(v, str | list) else v for k, v in body.items()}
    return api.request(method, path, json=body, headers=headers)


def nothing_recorded(redis_url: str) -> bool:
    stored = redis.Redis.from_url(redis_url)
    return stored.xlen("recstack:events") == 0 and not stored.keys("recstack:session:*")


@pytest.fixture
def keyed(trained_shop, triton_server, flush_redis):
    """The facade, its config, and one key of each scope (the public one for SHOP)."""
    with make_api(trained_shop, triton_server.grpc_url, flush_redis) as api:
        config = api.app.state.config
        keys = {"public": new_key(config, "page", "public", (SHOP,)), "server": new_key(config, "backend", "server"),
                "admin": new_key(config, "ops", "admin")}
        yield api, config, keys


def test_every_route_needs_a_key_and_refusals_record_nothing(keyed, items, flush_redis):
    api, _, _ = keyed
    for route in ROUTES:
        for headers in ({"X-API-Key": ""}, {"X-API-Key": "rsk_admin_guessed"}, {"Authorization": "Bearer garbage"}):
            response = call(api, route, items[0], **headers)
            assert response.status_code == 401, (route, headers, response.text)
            assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert nothing_recorded(flush_redis)
    assert api.get("/health", headers={"X-API-Key": ""}).status_code == 200  # liveness stays open


def test_a_key_without_the_scope_is_refused_with_the_scope_it_needs(keyed, items):
    api, _, keys = keyed
    for route in ROUTES:
        needed = route[3]
        for scope, new in keys.items():
            response = call(api, route, items[0], **{"Authorization": f"Bearer {new.key}", "Origin": SHOP})
            if scope == "admin" or (scope == "server" and needed != "admin") or needed == "public":
                assert response.status_code < 400, (route, scope, response.text)
            else:
                assert response.status_code == 403, (route, scope, response.text)
                assert repr(needed) in response.json()["detail"]


def test_a_revoked_key_is_refused_by_every_facade_process(keyed, trained_shop, triton_server, items, flush_redis):
    api, config, keys = keyed
    with TestClient(create_app(config, trained_shop[0])) as other:  # a second process on the same Redis
        headers = {"X-API-Key": keys["server"].key}
        assert other.post("/api/v1/rank", json={"user_id": "u", "item_ids": [items[0]]}, headers=headers).is_success
        from recstack.client.core.keys import open_key_store

        revoke_key(open_key_store(config.redis_url, config.keys_file), "backend")
        for client in (api, other):  # keys_refresh_s is 0 here: at once
            response = client.post("/api/v1/rank", json={"user_id": "u", "item_ids": [items[0]]}, headers=headers)
            assert response.status_code == 401 and "revoked" in response.json()["detail"]


def test_public_keys_work_from_their_origins_only_with_cors(keyed, items, flush_redis):
    api, _, keys = keyed
    key = keys["public"].key
    path = "/api/v1/recommendations/anon_visitor?type=trending"
    allowed = api.get(path, headers={"X-API-Key": key, "Origin": SHOP})
    assert allowed.status_code == 200
    assert allowed.headers["Access-Control-Allow-Origin"] == SHOP
    assert "Access-Control-Allow-Credentials" not in allowed.headers
    for origin in ("https://evil.example", None):
        headers = {"X-API-Key": key} | ({"Origin": origin} if origin else {})
        refused = api.get(path, headers=headers)
        assert refused.status_code == 403 and "origin" in refused.json()["detail"]
        assert "Access-Control-Allow-Origin" not in refused.headers
    event = {"user_id": "anon_visitor", "item_id": items[0], "event_type": "view"}
    assert api.post("/api/v1/events", json=event, headers={"X-API-Key": key, "Origin": "https://evil.example"}
                    ).status_code == 403
    assert nothing_recorded(flush_redis)
    preflight = api.options("/api/v1/events", headers={"Origin": SHOP, "Access-Control-Request-Method": "POST",
                                                        "Access-Control-Request-Headers": "content-type,x-api-key"})
    assert preflight.status_code == 204 and preflight.headers["Access-Control-Allow-Origin"] == SHOP
    assert "X-API-Key" in preflight.headers["Access-Control-Allow-Headers"]
    foreign = api.options("/api/v1/events", headers={"Origin": "https://evil.example",
                                                     "Access-Control-Request-Method": "POST"})
    assert foreign.status_code == 403 and "Access-Control-Allow-Origin" not in foreign.headers


def test_a_public_key_reads_a_shop_user_only_with_a_token_signed_by_the_shop(keyed, known_user):
    api, _, keys = keyed
    user, _ = known_user
    public = {"X-API-Key": keys["public"].key, "Origin": SHOP}
    refused = api.get(f"/api/v1/recommendations/{user}", headers=public)
    assert refused.status_code == 403 and "X-User-Token" in refused.json()["detail"]
    secret = keys["public"].token_secret
    signed = api.get(f"/api/v1/recommendations/{user}",
                     headers=public | {"X-User-Token": sign_user_token(secret, user)})
    assert signed.status_code == 200 and signed.json()["recommendations"]
    for token in (sign_user_token(secret, user, ttl_s=-1), sign_user_token(secret, "someone-else"),
                  sign_user_token("not-the-secret", user)):
        assert api.get(f"/api/v1/recommendations/{user}", headers=public | {"X-User-Token": token}
                       ).status_code == 403
    # Events for a shop user need the token too; trending and similar name nobody's history and stay open.
    assert api.post("/api/v1/events", json={"user_id": user, "item_id": "x", "event_type": "view"},
                    headers=public).status_code == 403
    assert api.get(f"/api/v1/recommendations/{user}?type=trending", headers=public).status_code == 200
    server = api.get(f"/api/v1/recommendations/{user}", headers={"X-API-Key": keys["server"].key})
    assert server.status_code == 200  # a shop's backend is trusted with every user


@pytest.mark.parametrize("with_redis", [True, False], ids=["redis", "in-process"])
def test_rate_limits_answer_429_with_retry_after(trained_shop, triton_server, flush_redis, with_redis):
    with make_api(trained_shop, triton_server.grpc_url, flush_redis if with_redis else None) as api:
        key = new_key(api.app.state.config, "slow", "server", requests_per_minute=6).key  # burst: 5 requests
        statuses, last = [], None
        for _ in range(7):
            last = api.get("/api/v1/recommendations/u?type=trending", headers={"X-API-Key": key})
            statuses.append(last.status_code)
            if last.status_code == 200:
                assert int(last.headers["RateLimit-Limit"]) == 5
        assert statuses == [200] * 5 + [429] * 2
        assert int(last.headers["Retry-After"]) >= 1 and last.headers["RateLimit-Remaining"] == "0"
        assert "rate limit" in last.json()["detail"]
        # Other keys have buckets of their own.
        assert api.get("/api/v1/recommendations/u?type=trending").status_code == 200


def test_rate_limits_are_shared_by_facade_processes_on_one_redis(trained_shop, triton_server, flush_redis):
    with make_api(trained_shop, triton_server.grpc_url, flush_redis) as api:
        config = api.app.state.config
        key = {"X-API-Key": new_key(config, "shared", "server", requests_per_minute=6).key}
        with TestClient(create_app(config, trained_shop[0])) as other:
            statuses = [client.get("/api/v1/recommendations/u?type=trending", headers=key).status_code
                        for client in (api, other) * 3]
        assert statuses.count(200) == 5 and statuses[-1] == 429


def test_operators_routes_need_an_admin_key_from_elsewhere(keyed):
    api, _, keys = keyed  # the test client's address is "testclient": not the host itself
    for path in ("/metrics", "/ready", "/docs", "/openapi.json"):
        assert api.get(path, headers={"X-API-Key": ""}).status_code == 401, path
        assert api.get(path, headers={"X-API-Key": keys["server"].key}).status_code == 403, path
        assert api.get(path, headers={"X-API-Key": keys["admin"].key}).status_code == 200, path


def test_keys_are_stored_hashed_and_the_file_is_private(tmp_path):
    config_keys = tmp_path / "keys.json"
    store = FileKeyStore(config_keys)
    from recstack.client.core.keys import add_key, create_key

    new = create_key("page", "public", (SHOP,))
    add_key(store, new)
    text = config_keys.read_text()
    assert new.key not in text and new.record.key_hash in text
    assert config_keys.stat().st_mode & 0o077 == 0
    with pytest.raises(ValueError, match="exists"):
        add_key(store, create_key("page", "server"))
    for bad in ({"name": "a b", "scope": "server"}, {"name": "x", "scope": "root"},
                {"name": "x", "scope": "server", "origins": (SHOP,)},
                {"name": "x", "scope": "public", "origins": ("shop.example",)}):
        with pytest.raises(ValueError):
            create_key(**bad)


def test_without_auth_everything_is_open(trained_shop, triton_server, items, caplog):
    with make_api(trained_shop, triton_server.grpc_url, None, auth=False) as api:
        assert "API keys are OFF" in caplog.text
        assert api.post("/api/v1/rank", json={"user_id": "u", "item_ids": [items[0]]}).status_code == 200
