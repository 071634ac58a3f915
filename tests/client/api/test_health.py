"""/health, /ready, /metrics, and the fallback when Triton goes away and comes back."""

import shutil
import time

import pytest
from recstack.ensemble.server import TritonServer

from .conftest import make_api

pytestmark = [pytest.mark.triton, pytest.mark.redis]


def test_health_ready_and_metrics(api, known_user):
    assert api.get("/health").json() == {"status": "ok"}
    ready = api.get("/ready")
    assert ready.status_code == 200
    assert ready.json() | {"durability": None} == {"ready": True, "triton": True, "store": True, "degraded_parts": [],
                                                   "durability": None}
    api.get(f"/api/v1/recommendations/{known_user[0]}")
    text = api.get("/metrics").text
    assert 'recstack_requests_total{endpoint="/api/v1/recommendations/{user_id}",status="200"}' in text
    assert 'recstack_stage_seconds_count{stage="triton_recommend"}' in text
    assert "recstack_request_seconds_bucket" in text


def test_not_ready_without_triton_or_store(trained_shop):
    with make_api(trained_shop, "127.0.0.1:1", "redis://127.0.0.1:1/0") as api:
        ready = api.get("/ready")
        assert ready.status_code == 503
        assert ready.json() | {"durability": None} == {
            "ready": False, "triton": False, "store": False, "durability": None,
            "degraded_parts": ["model", "live_session", "live_counts", "exploration"]}


def test_fallback_while_triton_is_down_and_recovery(trained_shop, model_repository, flush_redis, known_user,
                                                   tmp_path):
    repository = tmp_path / "repo"
    shutil.copytree(model_repository, repository)
    server = TritonServer(repository).start()
    ports = {"http_port": server.http_port, "grpc_port": server.grpc_port, "metrics_port": server.metrics_port}
    user = known_user[0]
    with make_api(trained_shop, server.grpc_url, flush_redis, breaker_failures=2, breaker_reset_s=1.0) as api:
        try:
            assert api.get(f"/api/v1/recommendations/{user}").json()["degraded"] is False
            server.stop()
            for _ in range(6):
                response = api.get(f"/api/v1/recommendations/{user}", params={"limit": 5})
                assert response.status_code == 200
                body = response.json()
                assert body["degraded"] is True and len(body["recommendations"]) == 5
                assert {r["reason"] for r in body["recommendations"]} == {"popular right now"}
            assert api.get("/api/v1/similar/" + body["recommendations"][0]["item_id"]).json()["degraded"] is True
            assert api.get("/ready").status_code == 503
            metrics = api.get("/metrics").text
            # The circuit opened after two failures: later requests did not call the dead server.
            errors = sum(float(line.split()[-1]) for line in metrics.splitlines()
                         if line.startswith("recstack_triton_errors_total{"))
            assert errors <= 3
            assert 'recstack_fallbacks_total{reason="triton"}' in metrics
            server = TritonServer(repository, **ports).start()
            time.sleep(1.1)  # the open period ends; the next request is the trial
            deadline = time.monotonic() + 30
            while api.get(f"/api/v1/recommendations/{user}").json()["degraded"]:
                assert time.monotonic() < deadline, "the facade did not recover"
                time.sleep(0.5)
            assert api.get("/ready").status_code == 200
        finally:
            server.stop()
