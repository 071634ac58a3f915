"""Honest degradation: an answer that went without a part says which, and so do /ready and /metrics."""

import pytest
from recstack.benchmarks.redis_server import RedisServer

from .conftest import make_api

pytestmark = [pytest.mark.triton, pytest.mark.redis]


def test_with_redis_stopped_an_answer_says_it_left_the_live_session_out(trained_shop, triton_server, known_user,
                                                                         items, tmp_path):
    user = known_user[0]
    redis_server = RedisServer(tmp_path / "redis").start()
    try:
        with make_api(trained_shop, triton_server.grpc_url, redis_server.url) as api:
            event = {"user_id": user, "item_id": items[0], "event_type": "view"}
            assert api.post("/api/v1/events", json=event).status_code == 200
            whole = api.get(f"/api/v1/recommendations/{user}", params={"limit": 5}).json()
            assert whole["degraded"] is False and whole["degraded_parts"] == []
            assert api.get("/ready").json()["degraded_parts"] == []

            redis_server.stop()
            answer = api.get(f"/api/v1/recommendations/{user}", params={"limit": 5})
            body = answer.json()
            assert answer.status_code == 200 and len(body["recommendations"]) == 5
            assert body["degraded"] is True and "live_session" in body["degraded_parts"]
            assert "model" not in body["degraded_parts"]  # the models still answered, on the known history
            assert {r["model_version"] for r in body["recommendations"]} != {"fallback-popular"}
            ready = api.get("/ready")
            assert ready.status_code == 503 and "live_session" in ready.json()["degraded_parts"]
            assert 'recstack_degraded_answers_total{part="live_session"} 1.0' in api.get("/metrics").text

            redis_server.start()
            again = api.get(f"/api/v1/recommendations/{user}", params={"limit": 5}).json()
            assert again["degraded"] is False and again["degraded_parts"] == []
    finally:
        redis_server.stop()


def test_without_triton_an_answer_says_the_models_were_left_out(trained_shop, known_user):
    with make_api(trained_shop, "127.0.0.1:1", None, timeout_ms=200) as api:
        body = api.get(f"/api/v1/recommendations/{known_user[0]}", params={"limit": 5}).json()
        assert body["degraded"] is True and body["degraded_parts"] == ["model"]
        ready = api.get("/ready").json()
        assert ready["triton"] is False and ready["degraded_parts"] == ["model"]
        assert 'recstack_degraded_answers_total{part="model"} 1.0' in api.get("/metrics").text
