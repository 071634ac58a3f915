"""Hostile input gets a 4xx problem body, never a 500: non-finite numbers, deep JSON, oversized bodies (declared or
chunked), oversized context, blank ids and out-of-range limits."""

import json

import pytest
from recstack.client.api.limits import json_depth, json_problem
from recstack.client.api.problems import PROBLEM_JSON

from .conftest import make_api


@pytest.fixture(scope="module")
def api_in_process(trained_shop, model_repository):
    with make_api(trained_shop, "", None, engine="in-process", repository=model_repository) as client:
        yield client


def assert_problem(response, status: int, words: str):
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM_JSON
    body = response.json()
    assert body["status"] == status and body["title"] and words in body["detail"], body
    return body


@pytest.mark.parametrize("number", ["NaN", "Infinity", "-Infinity", "1e999"])
def test_non_finite_numbers_are_refused_and_the_next_request_is_served(api_in_process, items, number):
    raw = f'{{"user_id": "u1", "item_ids": ["{items[0]}"], "keep_order_weight": {number}}}'
    assert_problem(api_in_process.post("/api/v1/search/rerank", content=raw,
                                       headers={"content-type": "application/json"}), 422, "finite")
    raw = f'{{"user_id": "u1", "item_ids": [{number}]}}'
    assert_problem(api_in_process.post("/api/v1/rank", content=raw), 422, "finite")
    assert api_in_process.post("/api/v1/rank", json={"user_id": "u1", "item_ids": items[:3]}).status_code == 200


def test_deep_json_is_refused_before_parsing(api_in_process, items):
    nested = "[" * 900 + "]" * 900
    deep = f'{{"user_id": "u1", "item_id": "{items[0]}", "event_type": "view", "context": {nested}}}'
    assert_problem(api_in_process.post("/api/v1/events", content=deep), 422, "deeper than 32")
    assert_problem(api_in_process.post("/api/v1/events", content="[" * 100_000), 422, "deeper than 32")
    # Brackets inside strings do not count.
    assert json_depth(json.loads(json.dumps({"context": "[[[[" * 100}))) == 1


def test_a_body_that_is_not_json_is_left_to_the_route_and_costs_one_linear_pass():
    # An unterminated string of escaped quotes once took a pattern quadratic time (7 s at 60 KB).
    assert json_problem(b'"' + b'\\"' * 400_000, 32) is None


@pytest.mark.parametrize("content_type", ["application/octet-stream", "Application/JSON", "text/plain"])
def test_every_body_is_checked_whatever_its_declared_type(api_in_process, items, content_type):
    raw = f'{{"user_id": "anon_1", "item_id": "{items[0]}", "event_type": "view", "weight": NaN}}'
    refused = api_in_process.post("/api/v1/events/beacon", content=raw, headers={"content-type": content_type})
    assert_problem(refused, 422, "finite")


def test_oversized_bodies_are_refused_declared_or_chunked(api_in_process, items):
    big_context = {"user_id": "u1", "item_id": items[0], "event_type": "view", "context": "x" * (20 << 20)}
    assert_problem(api_in_process.post("/api/v1/events", json=big_context), 413, "over the limit")

    def chunks():  # no Content-Length: the limit applies as the body arrives
        for _ in range(40):
            yield b"[" + b" " * (64 << 10)

    assert_problem(api_in_process.post("/api/v1/events", content=chunks()), 413, "over the limit")
    assert_problem(api_in_process.post("/api/v1/events", content=b"{}", headers={"content-length": "x"}), 413, "")


def test_a_large_context_is_refused_per_event(api_in_process, items):
    events = [{"user_id": "u1", "item_id": items[0], "event_type": "view", "context": {"note": "x" * 5000}},
              {"user_id": "u1", "item_id": items[1], "event_type": "view", "context": {"page": "/p"}}]
    answer = api_in_process.post("/api/v1/events", json=events).json()
    assert answer["accepted"] == 1 and answer["rejected"][0]["index"] == 0
    assert "over 2000 characters" in answer["rejected"][0]["reason"]


def test_every_refusal_is_a_problem_body(api_in_process, items):
    assert_problem(api_in_process.get("/api/v1/recommendations/u1", params={"limit": 101}), 422, "limit")
    body = assert_problem(api_in_process.get("/api/v1/recommendations/%09"), 422, "user_id")
    assert body["errors"][0]["loc"] == ["path", "user_id"]
    assert_problem(api_in_process.get("/api/v1/similar/no-such-item"), 404, "no-such-item")
    body = assert_problem(api_in_process.post("/api/v1/events", json=[{"user_id": "u1", "item_id": "nope",
                                                                       "event_type": "view"}]), 422, "no valid event")
    assert body["rejected"][0]["index"] == 0
    assert_problem(api_in_process.get("/api/v1/similar/x", headers={"X-API-Key": "wrong"}), 401, "unknown")
