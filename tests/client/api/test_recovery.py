"""Triton killed under load and restarted: the facade answers from the models again within 2 s of Triton being
ready, with the default breaker settings (before the readiness probe and the short gRPC reconnect backoff it took
about 15 s)."""

import os
import shutil
import signal
import threading
import time

import pytest
from recstack.ensemble.server import TritonServer

from .conftest import make_api

pytestmark = [pytest.mark.triton, pytest.mark.redis]
RECOVERY_S = 2.0


class Load:
    """One client asking for a user's list back to back; records when each answer arrived and whether it was the
    models' (not degraded in its model part)."""

    def __init__(self, api, user: str):
        self.api, self.user, self.answers, self.stop = api, user, [], threading.Event()
        self.thread = threading.Thread(target=self.run)

    def run(self) -> None:
        while not self.stop.is_set():
            response = self.api.get(f"/api/v1/recommendations/{self.user}", params={"limit": 5})
            assert response.status_code == 200
            self.answers.append((time.monotonic(), "model" not in response.json()["degraded_parts"]))
            time.sleep(0.02)

    def first_whole_answer_after(self, since: float) -> float | None:
        return next((at for at, whole in self.answers if at >= since and whole), None)


def test_the_facade_recovers_within_two_seconds_of_triton_being_ready_again(trained_shop, model_repository,
                                                                           flush_redis, known_user, tmp_path):
    repository = tmp_path / "repo"
    shutil.copytree(model_repository, repository)
    server = TritonServer(repository).start()
    ports = {"http_port": server.http_port, "grpc_port": server.grpc_port, "metrics_port": server.metrics_port}
    with make_api(trained_shop, server.grpc_url, flush_redis, timeout_ms=500) as api:
        load = Load(api, known_user[0])
        load.thread.start()
        try:
            time.sleep(1.0)
            os.killpg(server.pid, signal.SIGKILL)  # the server and its python-backend stubs, no goodbye
            killed = time.monotonic()
            time.sleep(10.0)  # long enough for gRPC's default reconnect backoff to grow past several seconds
            assert load.first_whole_answer_after(killed + 1.0) is None, "answers claimed the models while down"
            server = TritonServer(repository, **ports).start()
            ready = time.monotonic()
            deadline = ready + 30
            while (recovered := load.first_whole_answer_after(ready)) is None and time.monotonic() < deadline:
                time.sleep(0.05)
        finally:
            load.stop.set()
            load.thread.join()
            server.stop()
    assert recovered is not None, "the facade did not recover within 30 s"
    assert recovered - ready < RECOVERY_S, f"recovered {recovered - ready:.2f} s after Triton was ready"
