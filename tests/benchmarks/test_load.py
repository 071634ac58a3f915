import asyncio
import time

import pytest
from recstack.benchmarks.load import CpuMeter, closed_loop, latency_stats, open_loop


def test_latency_stats_are_percentiles_of_the_timings():
    stats = latency_stats([0.001] * 98 + [0.010, 0.020], wall_s=2.0, errors=3)
    assert stats["requests"] == 100 and stats["errors"] == 3 and stats["qps"] == pytest.approx(50)
    assert stats["p50_ms"] == pytest.approx(1.0) and stats["max_ms"] == pytest.approx(20.0)
    assert stats["p99_ms"] > 9.0


def test_closed_loop_keeps_the_given_number_of_requests_in_flight():
    in_flight, peak = 0, 0

    async def send(i):
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        await asyncio.sleep(0.01)
        in_flight -= 1
        if i % 10 == 9:
            raise RuntimeError("a failed request")

    point = asyncio.run(closed_loop(send, concurrency=4, duration_s=0.3, warmup_s=0.05))
    assert peak == 4 and point["concurrency"] == 4
    assert point["errors"] > 0 and point["requests"] > 4 * point["errors"]
    assert point["p50_ms"] >= 10


def test_open_loop_counts_latency_from_when_a_request_was_due():
    """A server that answers one request at a time falls behind an offered 100/s at 20 ms each: the queueing
    shows in the latencies (they grow well past the 20 ms of service), and the achieved rate stays near 50/s."""
    lock = asyncio.Lock

    async def scenario():
        busy = lock()

        async def send(i):
            async with busy:
                await asyncio.sleep(0.02)

        return await open_loop(send, rate=100, duration_s=0.5, warmup_s=0, timeout_s=5)

    point = asyncio.run(scenario())
    assert point["offered_rps"] == 100 and point["errors"] == 0 and point["requests"] == 50
    assert point["max_ms"] > 200 and point["p50_ms"] > 100
    assert point["qps"] < 60


def test_open_loop_time_outs_are_errors():
    async def send(i):
        await asyncio.sleep(1)

    point = asyncio.run(open_loop(send, rate=50, duration_s=0.2, warmup_s=0, timeout_s=0.05))
    assert point["errors"] == 10 and point["requests"] == 0


def test_cpu_meter_counts_the_client_processes_cpu_time():
    with CpuMeter() as idle:
        time.sleep(0.2)
    with CpuMeter() as busy:
        start = time.process_time()
        while time.process_time() - start < 0.1:
            pass
    assert idle.client_cpu_s < 0.05 and busy.client_cpu_s >= 0.09
    assert busy.client_cores == pytest.approx(busy.client_cpu_s / busy.wall_s) and busy.server_cores is None
