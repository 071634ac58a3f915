"""The facade under chaos (``recstack bench chaos``): open-loop load while its dependencies die and slow clients
crowd it.

One small synthetic shop behind the whole stack as deployed: Triton (the ``recommend`` ensemble), Redis (an
append-only file with ``--redis-fsync``) and the facade (``recstack serve api``, one worker, API keys on). A keyed
client sends ``--rate`` requests/s, open loop (each request on its schedule, whatever the earlier ones do):
personalised lists for known users, and a ``--events-share`` of single events, each with its own id. Every cycle
(``--cycle`` seconds, repeated for ``--soak-minutes`` when given) runs the same schedule, by share of the cycle:

- at 10 % Triton is SIGKILLed (its whole process group), at 25 % restarted on the same ports;
- at 45 % Redis is SIGKILLed, at 55 % restarted on the same port and file;
- from 65 % to 85 %, ``--slow-clients`` connections trickle request heads one byte a second (each is dropped by
  the facade's head deadline and reconnects at once);
- at 85 %, a schemathesis pass of ``--fuzz-examples`` generated requests over the whole OpenAPI schema
  (:mod:`recstack.benchmarks.schema_fuzz`) runs beside the load; its answers and failed checks are reported apart.

Reported: per-second status counts, degraded share and latency, p50/p99 overall, 5xx answers by route and status
(an event refused with 503 while Redis is down is sent again after its Retry-After, as a careful sender does, and
counted as refused), acknowledged events missing from Redis afterwards, events never acknowledged, seconds from
each restarted dependency being ready to the first answer that has its part again, and the facade's RSS over
time. Writes ``chaos.json`` and ``chaos.png`` under ``--out`` (``chaos_soak.*`` with ``--soak-minutes``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import threading
import time
from pathlib import Path

import numpy as np
from recstack.benchmarks.machine import describe_machine
from recstack.benchmarks.plots import figure
from recstack.benchmarks.redis_server import FSYNC_POLICIES, RedisServer
from recstack.benchmarks.schema_fuzz import fuzz_schema
from recstack.benchmarks.serving_latency import facade_process, prepare_shop

from recstack.settings import Settings

RESULTS = Path(__file__).parent / "results"
SCHEDULE = (("kill triton", 0.10), ("restart triton", 0.25), ("kill redis", 0.45), ("restart redis", 0.55),
            ("slow clients on", 0.65), ("slow clients off", 0.85))
FUZZ_AT = 0.85  # share of a cycle when the schema pass starts
REQUEST_TIMEOUT_S = 10.0
RETRY_FOR_S = 30.0  # how long the client keeps sending an event the facade refused (503: nothing recorded)


class Stack:
    """Triton and Redis, killed and restarted on their ports by the schedule; when each came back."""

    def __init__(self, repository: Path, work: Path, fsync: str):
        from recstack.ensemble.server import TritonServer

        self.repository = repository
        self.triton = TritonServer(repository, work_dir=work / "triton").start()
        self.redis = RedisServer(work / "redis", fsync=fsync).start()
        self.ready_at: list[tuple[str, float]] = []

    def kill_triton(self) -> None:
        os.killpg(self.triton.pid, signal.SIGKILL)  # the server and its python-backend stubs, no goodbye
        self.triton.process.wait()

    def restart_triton(self) -> None:
        from recstack.ensemble.server import TritonServer

        old = self.triton
        self.triton = TritonServer(self.repository, work_dir=old.work_dir, http_port=old.http_port,
                                   grpc_port=old.grpc_port, metrics_port=old.metrics_port).start()
        self.ready_at.append(("triton", time.monotonic()))

    def kill_redis(self) -> None:
        self.redis.kill()

    def restart_redis(self) -> None:
        self.redis.start()
        self.ready_at.append(("redis", time.monotonic()))

    def stop(self) -> None:
        self.triton.stop()
        self.redis.stop()


async def slow_client(host: str, port: int, until: float, counts: dict) -> None:
    """A client sending a request head one byte a second, reconnecting whenever it is dropped."""
    head = b"GET /api/v1/recommendations/u1 HTTP/1.1\r\nHost: chaos\r\n\r\n"
    while time.monotonic() < until:
        try:
            _, writer = await asyncio.open_connection(host, port)
            counts["connections"] += 1
            for byte in head:
                if time.monotonic() >= until:
                    break
                writer.write(bytes([byte]))
                await writer.drain()
                await asyncio.sleep(1.0)
            writer.close()
        except (ConnectionError, OSError):
            counts["dropped"] += 1
            await asyncio.sleep(0.1)


class Load:
    """The open-loop client: what each request was, when it was sent, how it ended."""

    def __init__(self, url: str, headers: dict, users: list[str], items: list[str], events_share: float, seed: int):
        self.url, self.headers, self.users, self.items = url, headers, users, items
        self.events_share = events_share
        self.rng = np.random.default_rng(seed)
        self.records: list[dict] = []
        self.acknowledged: set[str] = set()
        self.refused: set[str] = set()  # refused at least once

    async def one(self, session, n: int, began: float) -> None:
        sent = time.monotonic()
        is_event = self.rng.random() < self.events_share
        record = {"at": sent - began, "kind": "event" if is_event else "read", "status": None, "left_out": []}
        try:
            if is_event:
                event = {"user_id": self.users[n % len(self.users)], "event_type": "view", "context": f"chaos-{n}",
                         "item_id": self.items[int(self.rng.integers(len(self.items)))]}
                record["status"], record["latency_s"] = await self.post_event(session, event)
            else:
                async with session.get(f"{self.url}/api/v1/recommendations/{self.users[n % len(self.users)]}",
                                       params={"limit": "10"}) as response:
                    body = await response.json(content_type=None)
                    record["status"] = response.status
                    record["left_out"] = body.get("degraded_parts", []) if response.status == 200 else []
        except Exception as exc:  # noqa: BLE001 - a transport failure or time-out is an outcome to report
            record["status"] = type(exc).__name__
        record.setdefault("latency_s", time.monotonic() - sent)
        record["done"] = time.monotonic() - began
        self.records.append(record)

    async def post_event(self, session, event: dict) -> tuple[int, float]:
        """Send an event as a careful sender does: again after Retry-After while the facade refuses it. Returns the
        first answer's status and latency."""
        first, sent, deadline = None, time.monotonic(), time.monotonic() + RETRY_FOR_S
        while True:
            async with session.post(f"{self.url}/api/v1/events", json=event) as response:
                body = await response.json(content_type=None)
                first = first or (response.status, time.monotonic() - sent)
                if response.status == 200 and body.get("accepted") == 1:
                    self.acknowledged.add(event["context"])
                    return first
                if response.status != 503 or time.monotonic() > deadline:
                    return first
                self.refused.add(event["context"])
                await asyncio.sleep(float(response.headers.get("Retry-After", "1")))

    async def run(self, rate: float, seconds: float, began: float) -> None:
        import aiohttp

        timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S)
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0), headers=self.headers,
                                         timeout=timeout) as session:
            tasks, n = [], 0
            while (due := began + n / rate) < began + seconds:
                await asyncio.sleep(max(0.0, due - time.monotonic()))
                tasks.append(asyncio.create_task(self.one(session, n, began)))
                n += 1
            await asyncio.gather(*tasks)


def run_schedule(stack: Stack, cycle_s: float, cycles: int, began: float, log: list, say) -> None:
    """The dependencies' deaths and restarts, in a thread beside the load (starting Triton blocks)."""
    actions = {"kill triton": stack.kill_triton, "restart triton": stack.restart_triton,
               "kill redis": stack.kill_redis, "restart redis": stack.restart_redis,
               "slow clients on": lambda: None, "slow clients off": lambda: None}
    for cycle in range(cycles):
        for name, share in SCHEDULE:
            time.sleep(max(0.0, began + (cycle + share) * cycle_s - time.monotonic()))
            start = time.monotonic()
            actions[name]()
            log.append({"event": name, "at": start - began, "done": time.monotonic() - began})
            say(f"{start - began:7.1f} s  {name} ({time.monotonic() - start:.1f} s)")


def recovery_seconds(records: list[dict], ready_at: list[tuple[str, float]], began: float) -> list[dict]:
    """For each restart: seconds from the dependency being ready to the first read answer that has its part."""
    part = {"triton": "model", "redis": "live_session"}
    out = []
    for dependency, ready in ready_at:
        ready_s = ready - began
        whole = [r["done"] for r in records if r["kind"] == "read" and r["status"] == 200
                 and r["done"] >= ready_s and part[dependency] not in r["left_out"]]
        out.append({"dependency": dependency, "ready_at_s": round(ready_s, 3),
                    "recovery_s": round(min(whole) - ready_s, 3) if whole else None})
    return out


def per_second(records: list[dict], seconds: int) -> list[dict]:
    rows = []
    for second in range(seconds):
        mine = [r for r in records if second <= r["at"] < second + 1]
        reads = [r for r in mine if r["kind"] == "read" and r["status"] == 200]
        statuses: dict[str, int] = {}
        for r in mine:
            statuses[str(r["status"])] = statuses.get(str(r["status"]), 0) + 1
        rows.append({"second": second, "statuses": statuses,
                     "degraded_share": sum(bool(r["left_out"]) for r in reads) / len(reads) if reads else None,
                     "p99_ms": float(np.percentile([r["latency_s"] for r in mine], 99) * 1000) if mine else None})
    return rows


def missing_events(redis_url: str, acknowledged: set[str]) -> int:
    from recstack.client.core.sessions import RedisStore

    async def contexts() -> set[str]:
        store = RedisStore(redis_url)
        try:
            return {e.get("context") for e in await store.events()}
        finally:
            await store.close()

    return len(acknowledged - asyncio.run(contexts()))


def summarize(records: list[dict], load: Load, stack: Stack, began: float, schedule_log: list, rss: list,
              slow: dict, missing: int) -> dict:
    latencies = np.asarray([r["latency_s"] for r in records if isinstance(r["status"], int)]) * 1000
    server_errors = [r for r in records if isinstance(r["status"], int) and r["status"] >= 500]
    reads = [r for r in records if r["kind"] == "read" and r["status"] == 200]
    return {"requests": len(records), "p50_ms": float(np.percentile(latencies, 50)),
            "p99_ms": float(np.percentile(latencies, 99)),
            "transport_errors": sum(not isinstance(r["status"], int) for r in records),
            "server_errors_5xx": len(server_errors),
            "server_errors_by_kind": {f"{kind} {status}": sum(1 for r in server_errors
                                                              if (r["kind"], r["status"]) == (kind, status))
                                      for kind, status in sorted({(r["kind"], r["status"]) for r in server_errors})},
            "degraded_share": sum(bool(r["left_out"]) for r in reads) / len(reads) if reads else None,
            "events_sent": sum(r["kind"] == "event" for r in records),
            "acknowledged_events": len(load.acknowledged), "acknowledged_events_missing": missing,
            "events_refused_then_acknowledged": len(load.refused & load.acknowledged),
            "events_never_acknowledged": sum(r["kind"] == "event" for r in records) - len(load.acknowledged),
            "recovery": recovery_seconds(records, stack.ready_at, began), "schedule": schedule_log,
            "slow_clients": slow, "facade_rss_mib": {"start": rss[0][1] if rss else None,
                                                    "end": rss[-1][1] if rss else None,
                                                    "max": max(v for _, v in rss) if rss else None}}


def plot(rows: list[dict], rss: list, schedule_log: list, path: Path) -> None:
    seconds = [r["second"] for r in rows]
    with figure(path, ncols=3, size=(16, 4.5)) as (fig, (status_ax, degraded_ax, rss_ax)):
        statuses = sorted({s for r in rows for s in r["statuses"]})
        bottom = np.zeros(len(rows))
        for status in statuses:
            counts = np.asarray([r["statuses"].get(status, 0) for r in rows])
            status_ax.bar(seconds, counts, 1.0, bottom=bottom, label=status)
            bottom += counts
        status_ax.set_title("answers per second by status")
        status_ax.legend(fontsize=7)
        degraded_ax.plot(seconds, [r["degraded_share"] for r in rows], label="degraded share of reads")
        twin = degraded_ax.twinx()
        twin.plot(seconds, [r["p99_ms"] for r in rows], color="tab:red", alpha=0.6, label="p99 ms")
        twin.set_yscale("log")
        twin.set_ylabel("p99 ms")
        degraded_ax.set_title("degraded share (blue) and p99 latency (red)")
        rss_ax.plot([t for t, _ in rss], [v for _, v in rss])
        rss_ax.set_title("facade RSS (MiB)")
        for ax in (status_ax, degraded_ax, rss_ax):
            ax.set_xlabel("s")
            for entry in schedule_log:
                ax.axvline(entry["at"], color="grey", lw=0.6, ls=":")
        fig.suptitle("chaos: " + ", ".join(dict.fromkeys(e["event"] for e in schedule_log)))


def users_and_items(data_dir: Path) -> tuple[list[str], list[str]]:
    import polars as pl

    users = pl.read_parquet(data_dir / "eval_test.parquet")["user_id"].head(500).to_list()
    items = pl.read_parquet(data_dir / "items.parquet").filter(pl.col("item_idx") >= 2)["item_id"].to_list()
    return users, items


def parse_args(argv: list[str], settings: Settings) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="recstack bench chaos", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", type=float, default=50.0, help="requests/s, open loop")
    parser.add_argument("--events-share", type=float, default=0.3, help="share of requests that post an event")
    parser.add_argument("--cycle", type=float, default=60.0, help="seconds of one kill/restart cycle")
    parser.add_argument("--soak-minutes", type=float, default=0.0, help="repeat the cycle for this long (e.g. 10)")
    parser.add_argument("--slow-clients", type=int, default=200)
    parser.add_argument("--fuzz-examples", type=int, default=100, help="schemathesis requests per cycle (0: none)")
    parser.add_argument("--redis-fsync", choices=FSYNC_POLICIES, default="everysec")
    parser.add_argument("--items", type=int, default=2000)
    parser.add_argument("--work", type=Path, default=settings.build_dir / "bench" / "chaos")
    parser.add_argument("--out", type=Path, default=RESULTS, help="where the JSON and PNG go")
    return parser.parse_args(argv)


def main(argv: list[str], settings: Settings) -> int:
    import shutil

    import psutil
    from recstack.ensemble.build import build_repository

    args = parse_args(argv, settings)
    say = lambda line: print(line, flush=True)  # noqa: E731
    args.work.mkdir(parents=True, exist_ok=True)
    data_dir, models_dir = prepare_shop(args.items, args.work / "shop", events=50_000)
    repository = args.work / "model_repository"
    build_repository(data_dir, models_dir, repository, clean=True, verbose=False)
    shutil.rmtree(args.work / "redis", ignore_errors=True)  # a previous run's events would count as found
    cycles = max(1, round(args.soak_minutes * 60 / args.cycle)) if args.soak_minutes else 1
    seconds = cycles * args.cycle
    users, items = users_and_items(data_dir)
    stack = Stack(repository, args.work, args.redis_fsync)
    try:
        with facade_process(data_dir, args.work, "triton", repository, stack.triton.grpc_url,
                            redis_url=stack.redis.url,
                            facade_settings={"redis_fsync": args.redis_fsync}) as (url, pid, headers):
            load = Load(url, headers, users, items, args.events_share, seed=7)
            host, port = url.removeprefix("http://").split(":")
            schedule_log, rss, slow, fuzzed = [], [], {"connections": 0, "dropped": 0}, []
            began = time.monotonic()
            schedule = threading.Thread(target=run_schedule, args=(stack, args.cycle, cycles, began, schedule_log,
                                                                   say), daemon=True)
            facade = psutil.Process(pid)

            async def drive() -> None:
                async def sample_rss() -> None:
                    while time.monotonic() < began + seconds:
                        rss.append((round(time.monotonic() - began, 1), facade.memory_info().rss / 2**20))
                        await asyncio.sleep(1.0)

                async def slow_phase(cycle: int) -> None:
                    on, off = (began + (cycle + share) * args.cycle for _, share in SCHEDULE[4:6])
                    await asyncio.sleep(max(0.0, on - time.monotonic()))
                    await asyncio.gather(*(slow_client(host, int(port), off, slow) for _ in range(args.slow_clients)))

                async def fuzz_phase(cycle: int) -> None:
                    await asyncio.sleep(max(0.0, began + (cycle + FUZZ_AT) * args.cycle - time.monotonic()))
                    result = await asyncio.to_thread(fuzz_schema, url, headers, args.fuzz_examples)
                    fuzzed.append({"cycle": cycle, **result.to_json()})
                    say(f"schema pass of cycle {cycle}: {result.cases} requests, {len(result.failures)} failed checks")

                await asyncio.gather(load.run(args.rate, seconds, began), sample_rss(),
                                     *(slow_phase(c) for c in range(cycles)),
                                     *(fuzz_phase(c) for c in range(cycles) if args.fuzz_examples))

            schedule.start()
            say(f"{args.rate:.0f} req/s for {seconds:.0f} s ({cycles} cycle(s)); facade at {url}")
            asyncio.run(drive())
            schedule.join()
            missing = missing_events(stack.redis.url, load.acknowledged)
            summary = summarize(load.records, load, stack, began, schedule_log, rss, slow, missing)
    finally:
        stack.stop()
    rows = per_second(load.records, int(seconds))
    payload = {"benchmark": "chaos", "machine": describe_machine(), "command": "recstack bench chaos " +
               " ".join(argv), "rate_rps": args.rate, "events_share": args.events_share, "cycle_s": args.cycle,
               "cycles": cycles, "redis_fsync": args.redis_fsync, "slow_clients": args.slow_clients,
               "schemathesis": fuzzed, "summary": summary,
               "per_second": rows, "rss_mib": rss}
    args.out.mkdir(parents=True, exist_ok=True)
    name = "chaos_soak" if args.soak_minutes else "chaos"  # a soak does not replace the short run's figures
    (args.out / f"{name}.json").write_text(json.dumps(payload, indent=2) + "\n")
    plot(rows, rss, schedule_log, args.out / f"{name}.png")
    say(json.dumps({k: v for k, v in summary.items() if k != "schedule"}, indent=1))
    say(f"wrote {args.out / name}.json and {name}.png")
    return 0
