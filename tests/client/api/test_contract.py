"""The API keeps its own contract: a bounded property-based fuzz of the whole OpenAPI schema against the real facade
(no 5xx, every answer as declared), and hostile bodies that cost the process no memory."""

import threading
import time
from pathlib import Path

import httpx
import pytest
import redis
import uvicorn
from recstack.benchmarks.schema_fuzz import fuzz_schema
from recstack.benchmarks.serving_latency import facade_process
from recstack.ensemble.server import free_port

from .conftest import make_api

pytestmark = pytest.mark.redis
FUZZ_EXAMPLES = 300  # over all operations: about 30 each, a minute on 2 cores


@pytest.fixture(scope="module")
def served_facade(trained_shop, model_repository, redis_url):
    """The facade (in-process engine, real, emptied Redis) behind uvicorn on a free port: (url, admin headers)."""
    redis.Redis.from_url(redis_url).flushdb()  # what other tests wrote by hand is not the facade's to serve
    client = make_api(trained_shop, "", redis_url, engine="in-process", repository=model_repository)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(client.app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the facade did not start"
        time.sleep(0.1)
    yield url, {"X-API-Key": client.headers["X-API-Key"]}
    server.should_exit = True
    thread.join(30)


def test_fuzzed_requests_never_fail_the_server_and_match_the_schema(served_facade):
    url, headers = served_facade
    result = fuzz_schema(url, headers, FUZZ_EXAMPLES)
    assert result.failures == []
    assert result.cases >= FUZZ_EXAMPLES // 2 and 200 in result.statuses, result.statuses


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def test_hostile_bodies_get_4xx_and_cost_no_memory(trained_shop, model_repository, items, tmp_path):
    huge = b'{"user_id": "u1", "item_id": "i", "event_type": "view", "context": "' + b"x" * (20 << 20) + b'"}'
    many = [{"user_id": "u1", "item_id": items[0], "event_type": "view"}] * 10_000
    attacks = {  # each makes its request's arguments afresh (a chunked body is a one-shot generator)
        "20 MB body": lambda: dict(content=huge),
        "20 MB chunked": lambda: dict(content=(huge[i:i + (1 << 20)] for i in range(0, len(huge), 1 << 20))),
        "10,000 events": lambda: dict(json=many),
        "100 KB id": lambda: dict(json={"user_id": "u" * 100_000, "item_id": items[0], "event_type": "view"}),
        "not UTF-8": lambda: dict(content=b'{"user_id": "\xff\xfe", "item_id": "\xc0", "event_type": "view"}'),
    }
    with facade_process(trained_shop[0], tmp_path, "in-process", model_repository, "") as (url, pid, headers), \
            httpx.Client(base_url=url, headers=headers, timeout=60) as client:
        def attack_all() -> dict[str, int]:
            return {name: client.post("/api/v1/events", **make()).status_code for name, make in attacks.items()}

        first = attack_all()
        assert all(400 <= status < 500 for status in first.values()), first
        for _ in range(2):  # allocators and connection buffers reach their working size
            attack_all()
        before = rss_mb(pid)
        for _ in range(10):
            assert attack_all() == first
        grown = rss_mb(pid) - before
        assert grown < 5, f"the facade grew by {grown:.1f} MB under hostile bodies"
        assert client.post("/api/v1/events", json=many[:2]).status_code == 200
