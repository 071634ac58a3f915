"""What API keys and rate limits add to a request (``recstack bench security``).

The facade (``recstack serve api``, one worker, in-process engine) on one small synthetic shop, with keys on and
off, with its store, keys and rate limits in-process or in Redis: four configurations, measured in alternating
rounds in one run, each at one client (closed loop) and at a fixed rate (open loop, 100 req/s by default). The
route is the cheapest keyed one (a trending list), so the guard's cost is not hidden in the funnel's. The added
latency of keys is the p50 (and p99) with keys minus the p50 without, per store, per round; the figures quoted
are the median over rounds. Because an end-to-end difference of a fraction of a millisecond drowns in a shared
machine's noise, the key check and rate limit are also timed alone, as the route dependency runs them, per store
(``guard_alone``). Writes ``security_overhead.json`` and ``security_overhead.png`` under ``--out``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import statistics
import time
from pathlib import Path

from recstack.benchmarks.load import closed_loop, open_loop
from recstack.benchmarks.machine import describe_machine
from recstack.benchmarks.plots import figure
from recstack.benchmarks.redis_server import RedisServer
from recstack.benchmarks.serving_latency import facade_process, prepare_shop

from recstack.settings import Settings

RESULTS = Path(__file__).parent / "results"
STORES = ("in-process", "redis")


def trending_sender(url: str, headers: dict[str, str]):
    import aiohttp

    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0), headers=headers)

    async def send(i: int):
        async with session.get(f"{url}/api/v1/recommendations/anon_{i % 500}",
                               params={"type": "trending", "limit": "20"}) as response:
            if response.status != 200:
                raise RuntimeError(f"status {response.status}")
            return await response.read()

    return send, session.close


async def measure(url: str, headers: dict[str, str], args) -> list[dict]:
    send, close = trending_sender(url, headers)  # the client binds to the running event loop
    try:
        return [await closed_loop(send, 1, args.duration, args.warmup),
                await open_loop(send, args.rate, args.duration, args.warmup)]
    finally:
        await close()


async def guard_cost(redis_url: str | None, work: Path, calls: int) -> dict:
    """The key check and rate limit alone, as a route's dependency runs them: µs per admitted request."""
    from recstack.client.api.main import open_security
    from recstack.client.core.config import FacadeConfig
    from recstack.client.core.keys import create_key, open_key_store
    from starlette.requests import Request
    from starlette.responses import Response

    config = FacadeConfig(redis_url=redis_url, keys_file=work / "guard-keys.json", ingest_file=work / "unused.jsonl")
    key = create_key("bench-guard", "server", requests_per_minute=1e12)
    open_key_store(redis_url, config.keys_file).save(key.record)
    security = open_security(config)
    request = Request({"type": "http", "method": "GET", "path": "/api/v1/recommendations/anon_1", "query_string": b"",
                       "headers": [(b"x-api-key", key.key.encode())], "client": ("127.0.0.1", 40000)})
    timings = []
    try:
        for i in range(calls + calls // 10):
            start = time.perf_counter()
            await security.admit(request, Response(), "public")
            if i >= calls // 10:  # the first tenth warms the key cache and the script cache
                timings.append((time.perf_counter() - start) * 1e6)
    finally:
        await security.close()
    timings.sort()
    return {"calls": len(timings), "p50_us": round(timings[len(timings) // 2], 1),
            "p99_us": round(timings[int(len(timings) * 0.99)], 1), "mean_us": round(statistics.fmean(timings), 1)}


def added(points: list[dict]) -> dict:
    """Per store and load point: the median over rounds of (keys on − keys off) p50 and p99, in ms."""
    out = {}
    for store in {p["store"] for p in points}:
        for load in ("closed", "open"):
            pairs = {}
            for p in points:
                if p["store"] == store and p["mode"] == load:
                    pairs.setdefault(p["round"], {})[p["auth"]] = p
            diffs = [(r[True]["p50_ms"] - r[False]["p50_ms"], r[True]["p99_ms"] - r[False]["p99_ms"])
                     for r in pairs.values() if len(r) == 2]
            if diffs:
                out[f"{store}/{load}"] = {"added_p50_ms": round(statistics.median(d[0] for d in diffs), 3),
                                          "added_p99_ms": round(statistics.median(d[1] for d in diffs), 3),
                                          "rounds": len(diffs)}
    return out


def plot(points: list[dict], path: Path) -> None:
    with figure(path, ncols=2, size=(10, 4)) as (_, axes):
        for ax, load in zip(axes, ("closed", "open"), strict=True):
            labels, p50, p99 = [], [], []
            for store in STORES:
                for auth in (False, True):
                    chosen = [p for p in points if p["store"] == store and p["mode"] == load and p["auth"] == auth]
                    if chosen:
                        labels.append(f"{store}\nkeys {'on' if auth else 'off'}")
                        p50.append(statistics.median(p["p50_ms"] for p in chosen))
                        p99.append(statistics.median(p["p99_ms"] for p in chosen))
            xs = range(len(labels))
            ax.bar([x - 0.2 for x in xs], p50, 0.4, label="p50")
            ax.bar([x + 0.2 for x in xs], p99, 0.4, label="p99")
            ax.set_xticks(list(xs), labels, fontsize=8)
            ax.set_ylabel("ms")
            ax.set_title("one client" if load == "closed" else "fixed rate")
            ax.legend()


def main(argv: list[str], settings: Settings) -> int:
    parser = argparse.ArgumentParser(prog="recstack bench security", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per load point")
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--rate", type=float, default=100.0, help="the open-loop rate (req/s)")
    parser.add_argument("--items", type=int, default=2000)
    parser.add_argument("--calls", type=int, default=20_000, help="key checks timed alone, per store")
    parser.add_argument("--work", type=Path, default=settings.build_dir / "bench" / "security")
    parser.add_argument("--out", type=Path, default=RESULTS, help="where the JSON and PNG go")
    args = parser.parse_args(argv)
    args.work.mkdir(parents=True, exist_ok=True)
    data_dir, models_dir = prepare_shop(args.items, args.work / "shop", events=50_000)
    from recstack.ensemble.build import build_repository

    repository = args.work / "model_repository"
    build_repository(data_dir, models_dir, repository, clean=True, verbose=False)
    redis_server = RedisServer(args.work / "redis", fsync=None).start() if shutil.which("redis-server") else None
    redis_url = redis_server.url if redis_server else None
    stores = STORES if redis_url else STORES[:1]
    points, guard = [], {}
    try:
        for store in stores:
            guard[store] = asyncio.run(guard_cost(redis_url if store == "redis" else None, args.work, args.calls))
        for round_ in range(args.rounds):
            for store in stores:
                for auth in (False, True) if round_ % 2 == 0 else (True, False):  # alternate the order
                    url_of_store = redis_url if store == "redis" else None
                    with facade_process(data_dir, args.work, "in-process", repository, "127.0.0.1:1", auth=auth,
                                        redis_url=url_of_store) as (url, _, headers):
                        for point in asyncio.run(measure(url, headers, args)):
                            points.append({**point, "store": store, "auth": auth, "round": round_})
                            print(f"round {round_} {store:<10} keys {'on ' if auth else 'off'} {point['mode']:<6} "
                                  f"p50 {point['p50_ms']:.2f} ms  p99 {point['p99_ms']:.2f} ms  "
                                  f"errors {point['errors']}", flush=True)
    finally:
        if redis_server is not None:
            redis_server.kill()
    summary = added(points)
    payload = {"benchmark": "security_overhead", "machine": describe_machine(),
               "command": "recstack bench security " + " ".join(argv), "route": "GET trending (limit 20)",
               "rate_rps": args.rate, "guard_alone": guard, "added": summary, "points": points}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "security_overhead.json").write_text(json.dumps(payload, indent=2) + "\n")
    plot(points, args.out / "security_overhead.png")
    for store, figures in guard.items():
        print(f"  guard alone, {store:<10} p50 {figures['p50_us'] / 1000:.3f} ms  "
              f"p99 {figures['p99_us'] / 1000:.3f} ms")
    print("added by keys + rate limits end to end (median over rounds):")
    for name, figures in sorted(summary.items()):
        print(f"  {name:<20} p50 {figures['added_p50_ms']:+.3f} ms  p99 {figures['added_p99_ms']:+.3f} ms")
    return 0 if summary else 1
