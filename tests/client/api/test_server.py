"""Slow and idle clients against the real server (`recstack serve api`, uvicorn on a free port): dropped on time
while the others are served."""

import socket
import threading
import time

import httpx
import pytest
from recstack.benchmarks.serving_latency import facade_process

HEAD_TIMEOUT_S, BODY_TIMEOUT_S = 1.0, 1.5


@pytest.fixture(scope="module")
def facade(trained_shop, model_repository, tmp_path_factory):
    settings = {"head_timeout_s": HEAD_TIMEOUT_S, "body_timeout_s": BODY_TIMEOUT_S, "keep_alive_s": 1.0,
                "max_connections": 40, "max_head_bytes": 4096}
    with facade_process(trained_shop[0], tmp_path_factory.mktemp("facade"), "in-process", model_repository,
                        "127.0.0.1:1", facade_settings=settings) as (url, _, headers):
        yield url, headers


def connect(url: str) -> socket.socket:
    host, port = url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=30)
    return sock


def read_until_closed(sock: socket.socket) -> tuple[bytes, float]:
    """Everything the server sends until it closes the connection, and when it closed it."""
    received = b""
    while chunk := sock.recv(4096):
        received += chunk
    return received, time.monotonic()


class Served:
    """Other clients calling /health in a loop meanwhile: every answer must be a 200."""

    def __init__(self, url: str):
        self.url, self.statuses, self.stop = url, [], threading.Event()
        self.thread = threading.Thread(target=self.run)

    def run(self) -> None:
        with httpx.Client(timeout=5) as client:
            while not self.stop.is_set():
                self.statuses.append(client.get(f"{self.url}/health").status_code)
                time.sleep(0.05)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join()


def test_a_half_sent_body_is_dropped_on_time_while_others_are_served(facade):
    url, headers = facade
    sock = connect(url)
    head = (f"POST /api/v1/events HTTP/1.1\r\nHost: test\r\nX-API-Key: {headers['X-API-Key']}\r\n"
            "Content-Type: application/json\r\nContent-Length: 100\r\n\r\n")
    with Served(url) as others:
        start = time.monotonic()
        sock.sendall(head.encode() + b'{"user_id"')  # 10 of the 100 bytes announced
        received, closed = read_until_closed(sock)
    assert received.startswith(b"HTTP/1.1 408 ") and b"did not arrive in time" in received
    assert BODY_TIMEOUT_S * 0.9 <= closed - start < BODY_TIMEOUT_S + 1.0
    assert len(others.statuses) >= 10 and set(others.statuses) == {200}
    metrics = httpx.get(f"{url}/metrics").text
    assert 'recstack_dropped_requests_total{reason="body_timeout"} 1.0' in metrics


@pytest.mark.parametrize("sent", [b"", b"GET /health HTTP/1.1\r\nHost: te"], ids=["silent", "half-sent-head"])
def test_a_connection_without_a_whole_request_head_is_closed_on_time(facade, sent):
    url, _ = facade
    sock = connect(url)
    with Served(url) as others:
        start = time.monotonic()
        sock.sendall(sent)
        received, closed = read_until_closed(sock)
    assert received == b""
    assert HEAD_TIMEOUT_S * 0.9 <= closed - start < HEAD_TIMEOUT_S + 1.0
    assert set(others.statuses) == {200}


def test_a_trickled_head_does_not_reset_the_deadline(facade):
    url, _ = facade
    sock = connect(url)
    start = time.monotonic()
    closed = None
    for byte in b"GET /health HTTP/1.1\r\nHost: test\r\n\r\n":
        try:
            sock.sendall(bytes([byte]))
        except OSError:
            closed = time.monotonic()
            break
        time.sleep(0.2)
    if closed is None:
        received, closed = read_until_closed(sock)
        assert received == b""
    assert closed - start < HEAD_TIMEOUT_S + 1.0


def test_an_idle_keep_alive_connection_is_closed(facade):
    url, _ = facade
    sock = connect(url)
    sock.sendall(b"GET /health HTTP/1.1\r\nHost: test\r\n\r\n")
    start = time.monotonic()
    received, closed = read_until_closed(sock)
    assert received.startswith(b"HTTP/1.1 200 ") and closed - start < 1.0 + 1.0


def test_past_the_connection_cap_a_request_is_refused_at_once(facade):
    url, _ = facade
    idle = [connect(url) for _ in range(45)]
    try:
        time.sleep(0.2)
        assert httpx.get(f"{url}/health").status_code == 503
    finally:
        for sock in idle:
            sock.close()
    time.sleep(0.2)
    assert httpx.get(f"{url}/health").status_code == 200


def test_a_head_growing_past_the_limit_is_refused(facade):
    url, _ = facade
    sock = connect(url)
    sock.sendall(b"GET /health HTTP/1.1\r\nHost: test\r\nX-Padding: " + b"x" * 8192)  # and still no end
    received, _ = read_until_closed(sock)
    assert received.startswith(b"HTTP/1.1 400 ")
    assert httpx.get(f"{url}/health").status_code == 200
