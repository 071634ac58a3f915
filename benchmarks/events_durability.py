"""What an acknowledged event costs under each Redis fsync policy (``recstack bench events``).

``always`` puts every write on disk before Redis answers (an OS crash or power cut loses no acknowledged event);
``everysec``, the default, fsyncs once a second (an OS crash may take the last ~1 s, 2 s if the disk stalls). Two
redis-servers with append-only files on the same disk, one per policy, are written through the facade's own write
path (:meth:`recstack.client.core.sessions.RedisStore.append`: session, stream, live counts in one transaction),
in rounds that alternate between them so the drifts of a shared machine hit both alike. Per batch size: the
latency of an acknowledged write with one writer (p50, p99) and events/s with ``--writers`` concurrent writers,
with the ratios always / everysec. Afterwards each server is SIGKILLed and restarted and its acknowledged events
counted back. Writes ``events_durability.json`` and ``events_durability.png`` under ``--out``.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import shutil
import statistics
import time
from pathlib import Path

from recstack.benchmarks.load import latency_stats
from recstack.benchmarks.machine import describe_machine
from recstack.benchmarks.plots import figure
from recstack.benchmarks.redis_server import FSYNC_POLICIES, RedisServer

from recstack.settings import Settings

RESULTS = Path(__file__).parent / "results"


async def write_for(url: str, batch: int, writers: int, seconds: float, serial: itertools.count) -> dict:
    """``writers`` writers appending batches of ``batch`` events for ``seconds``: latency of each acknowledged
    batch and events/s."""
    from recstack.client.core.sessions import RedisStore

    store = RedisStore(url, weights={"view": 1.0})
    latencies: list[float] = []

    async def writer(until: float) -> None:
        while time.perf_counter() < until:
            events = [{"user_id": f"u{n % 5000}", "item_id": f"i{n % 977}", "event_type": "view",
                       "context": str(n)} for n in itertools.islice(serial, batch)]
            start = time.perf_counter()
            await store.append(events)
            latencies.append(time.perf_counter() - start)

    began = time.perf_counter()
    try:
        await asyncio.gather(*(writer(began + seconds) for _ in range(writers)))
    finally:
        await store.close()
    wall = time.perf_counter() - began
    stats = latency_stats(latencies, wall)
    return {**stats, "events_per_s": stats["qps"] * batch, "events": len(latencies) * batch}


def acknowledged_after_kill(server: RedisServer) -> int:
    """Events in the stream once the server was SIGKILLed and restarted."""
    import redis

    server.kill()
    server.start()
    client = redis.Redis.from_url(server.url)
    try:
        return int(client.xlen("recstack:events"))
    finally:
        client.close()


def ratios(points: list[dict]) -> list[dict]:
    """Per batch size and writer count: medians over rounds of each policy, and always / everysec."""
    out = []
    for batch, writers in sorted({(p["batch"], p["writers"]) for p in points}):
        row = {"batch": batch, "writers": writers}
        for policy in FSYNC_POLICIES:
            mine = [p for p in points if (p["batch"], p["writers"], p["fsync"]) == (batch, writers, policy)]
            for key in ("p50_ms", "p99_ms", "events_per_s"):
                row[f"{policy}_{key}"] = statistics.median(p[key] for p in mine)
        for key in ("p50_ms", "p99_ms", "events_per_s"):
            row[f"ratio_{key}"] = row[f"always_{key}"] / row[f"everysec_{key}"] if row[f"everysec_{key}"] else None
        out.append(row)
    return out


def plot(rows: list[dict], path: Path) -> None:
    import numpy as np

    labels = [f"{r['batch']} ev × {r['writers']} w" for r in rows]
    x = np.arange(len(rows))
    with figure(path) as (fig, (latency, rate)):
        for offset, policy in ((-0.2, "always"), (0.2, "everysec")):
            latency.bar(x + offset, [r[f"{policy}_p50_ms"] for r in rows], 0.4, label=f"{policy} p50")
            latency.scatter(x + offset, [r[f"{policy}_p99_ms"] for r in rows], marker="_", s=300, color="k",
                            label="p99" if policy == "always" else None)
            rate.bar(x + offset, [r[f"{policy}_events_per_s"] for r in rows], 0.4, label=policy)
        for ax, title, unit in ((latency, "acknowledged write latency", "ms"), (rate, "throughput", "events/s")):
            ax.set_xticks(x, labels)
            ax.set_title(title)
            ax.set_ylabel(unit)
            ax.legend()
        latency.set_yscale("log")  # one event takes under a millisecond, a hundred from eight writers hundreds
        fig.suptitle("Redis appendfsync always vs everysec (RedisStore.append)")


def main(argv: list[str], settings: Settings) -> int:
    parser = argparse.ArgumentParser(prog="recstack bench events", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=3.0, help="per policy, batch size and writer count, "
                                                                   "per round")
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 100], help="events per POST")
    parser.add_argument("--writers", type=int, default=8, help="concurrent writers of the throughput points")
    parser.add_argument("--work", type=Path, default=settings.build_dir / "bench" / "events",
                        help="the append-only files go here: put it on the disk Redis would use")
    parser.add_argument("--out", type=Path, default=RESULTS, help="where the JSON and PNG go")
    args = parser.parse_args(argv)
    for policy in FSYNC_POLICIES:
        shutil.rmtree(args.work / policy, ignore_errors=True)  # a previous run's file would be replayed at start
    servers = {policy: RedisServer(args.work / policy, fsync=policy).start() for policy in FSYNC_POLICIES}
    serial, points, acknowledged = itertools.count(), [], dict.fromkeys(FSYNC_POLICIES, 0)
    try:
        for round_ in range(args.rounds):
            order = FSYNC_POLICIES if round_ % 2 == 0 else FSYNC_POLICIES[::-1]
            for batch, writers in itertools.product(args.batches, sorted({1, args.writers})):
                for policy in order:
                    point = asyncio.run(write_for(servers[policy].url, batch, writers, args.seconds, serial))
                    acknowledged[policy] += point["events"]
                    points.append({"round": round_, "fsync": policy, "batch": batch, "writers": writers, **point})
                    print(f"round {round_} {policy:<8} batch {batch:>4} writers {writers:>2}  p50 "
                          f"{point['p50_ms']:7.2f} ms  p99 {point['p99_ms']:7.2f} ms  "
                          f"{point['events_per_s']:9.0f} events/s", flush=True)
        survived = {policy: acknowledged_after_kill(server) for policy, server in servers.items()}
    finally:
        for server in servers.values():
            server.stop()
    rows = ratios(points)
    payload = {"benchmark": "events_durability", "machine": describe_machine(),
               "command": "recstack bench events " + " ".join(argv), "work": str(args.work.resolve()),
               "summary": rows, "acknowledged": acknowledged, "found_after_sigkill": survived,
               "missing_after_sigkill": {p: acknowledged[p] - survived[p] for p in FSYNC_POLICIES}, "points": points}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "events_durability.json").write_text(json.dumps(payload, indent=2) + "\n")
    plot(rows, args.out / "events_durability.png")
    print(format_table(rows))
    print(f"missing after SIGKILL and restart: {payload['missing_after_sigkill']}")
    print(f"wrote {args.out / 'events_durability.json'} and events_durability.png")
    return 0


def format_table(rows: list[dict]) -> str:
    lines = ["| events × writers | always p50 / p99 ms | everysec p50 / p99 ms | p50 ratio | always ev/s | "
             "everysec ev/s | throughput ratio |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['batch']} × {r['writers']} | {r['always_p50_ms']:.2f} / {r['always_p99_ms']:.2f} | "
                     f"{r['everysec_p50_ms']:.2f} / {r['everysec_p99_ms']:.2f} | {r['ratio_p50_ms']:.2f}× | "
                     f"{r['always_events_per_s']:.0f} | {r['everysec_events_per_s']:.0f} | "
                     f"{r['ratio_events_per_s']:.2f}× |")
    return "\n".join(lines)
