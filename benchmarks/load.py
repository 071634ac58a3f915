"""Load generation: closed-loop concurrency and open-loop fixed-rate runs of an async ``send(i)``.

Closed loop: ``concurrency`` workers each send their next request as soon as the last one answered; it finds
the throughput a number of clients gets. Open loop: requests leave at a fixed rate whatever the answers do, as
independent users would send them, and each latency is counted from the moment its request was due, so a
client that falls behind shows up as latency instead of hiding it (no coordinated omission). Both report
p50/p95/p99/max in ms, the achieved rate, errors and the CPU the client itself used.
"""

from __future__ import annotations

import asyncio
import resource
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import numpy as np
import psutil

Send = Callable[[int], Awaitable[object]]


def latency_stats(seconds, wall_s: float, errors: int = 0) -> dict:
    """Percentiles in ms of the answered requests, the rate they were answered at, and the error count."""
    ms = np.asarray(seconds, dtype=np.float64) * 1000
    stats = {"requests": int(len(ms)), "errors": int(errors), "seconds": round(wall_s, 3),
             "qps": float(len(ms) / wall_s) if wall_s > 0 else 0.0}
    for name, q in (("p50", 50), ("p95", 95), ("p99", 99)):
        stats[f"{name}_ms"] = float(np.percentile(ms, q)) if len(ms) else float("nan")
    stats["mean_ms"] = float(ms.mean()) if len(ms) else float("nan")
    stats["max_ms"] = float(ms.max()) if len(ms) else float("nan")
    return stats


def _client_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


@dataclass
class CpuMeter:
    """CPU seconds used by this process (the client) and by the server processes, over one run."""

    server_pids: tuple[int, ...] = ()

    def _server_cpu_s(self) -> float:
        total = 0.0
        for pid in self.server_pids:
            try:
                process = psutil.Process(pid)
                for p in [process, *process.children(recursive=True)]:  # Triton's python-model stubs too
                    times = p.cpu_times()
                    total += times.user + times.system
            except psutil.NoSuchProcess:
                continue
        return total

    def __enter__(self) -> CpuMeter:
        self.started = time.perf_counter()
        self.client0, self.server0 = _client_cpu_s(), self._server_cpu_s()
        return self

    def __exit__(self, *exc) -> None:
        self.wall_s = time.perf_counter() - self.started
        self.client_cpu_s = _client_cpu_s() - self.client0
        self.client_cores = self.client_cpu_s / self.wall_s
        self.server_cores = (self._server_cpu_s() - self.server0) / self.wall_s if self.server_pids else None


async def closed_loop(send: Send, concurrency: int, duration_s: float, warmup_s: float = 1.0,
                      timeout_s: float = 5.0) -> dict:
    """``concurrency`` workers sending back to back for ``duration_s`` (after ``warmup_s`` untimed)."""
    counter = iter(range(10**12))
    latencies: list[float] = []
    errors = 0

    async def worker(until: float, timed: bool) -> None:
        nonlocal errors
        while time.perf_counter() < until:
            start = time.perf_counter()
            try:
                await asyncio.wait_for(send(next(counter)), timeout_s)
            except Exception:  # noqa: BLE001 - every failure (HTTP error, timeout, refused) is an error
                if timed:
                    errors += 1
                continue
            if timed:
                latencies.append(time.perf_counter() - start)

    if warmup_s > 0:
        await asyncio.gather(*(worker(time.perf_counter() + warmup_s, False) for _ in range(concurrency)))
    started = time.perf_counter()
    await asyncio.gather(*(worker(started + duration_s, True) for _ in range(concurrency)))
    return {"mode": "closed", "concurrency": concurrency,
            **latency_stats(latencies, time.perf_counter() - started, errors)}


async def open_loop(send: Send, rate: float, duration_s: float, warmup_s: float = 1.0,
                    timeout_s: float = 5.0, max_in_flight: int = 2000) -> dict:
    """Requests due every ``1/rate`` s for ``duration_s``; latency counted from when each was due.

    A request still unanswered after ``timeout_s`` is an error, and so is one that could not leave because
    ``max_in_flight`` were already waiting (the server fell too far behind for the run to mean anything).
    """
    counter = iter(range(10**12))
    latencies: list[float] = []
    errors = 0
    in_flight = 0

    async def one(due: float, timed: bool) -> None:
        nonlocal errors, in_flight
        in_flight += 1
        try:
            await asyncio.wait_for(send(next(counter)), timeout_s)
            if timed:
                latencies.append(time.perf_counter() - due)
        except Exception:  # noqa: BLE001 - every failure is an error
            if timed:
                errors += 1
        finally:
            in_flight -= 1

    async def schedule(count: int, timed: bool) -> list[asyncio.Task]:
        nonlocal errors
        tasks = []
        start = time.perf_counter()
        for i in range(count):
            due = start + i / rate
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            if in_flight >= max_in_flight:
                errors += timed
                continue
            tasks.append(asyncio.create_task(one(due, timed)))
        return tasks

    if warmup_s > 0:
        await asyncio.gather(*await schedule(int(rate * warmup_s), False))
    started = time.perf_counter()
    tasks = await schedule(max(1, int(rate * duration_s)), True)
    await asyncio.gather(*tasks)
    return {"mode": "open", "offered_rps": rate, **latency_stats(latencies, time.perf_counter() - started, errors)}
