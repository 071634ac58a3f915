"""The demo's closing figures: a few seconds of load on Triton and on the facade, as a short latency table.

The full sweeps (catalog sizes, candidate counts, concurrency, offered rates) are ``recstack bench serving``.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import polars as pl

from recstack.benchmarks.load import closed_loop, open_loop
from recstack.benchmarks.serving_latency import facade_process, facade_sender, triton_sender
from recstack.preprocessing.layout import PreparedLayout


def latency_summary(data_dir: Path, repository: Path, triton_grpc_url: str, work: Path,
                    seconds: float = 3.0, rate: float = 100.0) -> str:
    """p50/p95/p99 of the funnel called directly over gRPC and through the facade (its own process), one
    client at a time and at ``rate`` requests/s."""
    test = pl.read_parquet(PreparedLayout(data_dir).eval_test, columns=["user_id", "history"]).head(500)
    users, histories = test["user_id"].to_list(), test["history"].to_list()

    async def measure(connect) -> list[dict]:
        send, close = connect()
        try:
            return [await closed_loop(send, 1, seconds, warmup_s=0.5),
                    await open_loop(send, rate, seconds, warmup_s=0.5)]
        finally:
            await close()

    rows = [("Triton gRPC", p) for p in asyncio.run(measure(lambda: triton_sender(triton_grpc_url, "grpc",
                                                                                   histories)))]
    work.mkdir(parents=True, exist_ok=True)
    with facade_process(data_dir, work, "triton", repository, triton_grpc_url) as (url, _, headers):
        rows += [("facade → Triton", p) for p in asyncio.run(measure(lambda: facade_sender(url, users, headers)))]
    lines = [f"{'target':<16} {'load':>12} {'req/s':>7} {'p50 ms':>7} {'p95 ms':>7} {'p99 ms':>7} {'errors':>6}"]
    for name, p in rows:
        load = "1 client" if p["mode"] == "closed" else f"{p['offered_rps']:.0f} req/s"
        lines.append(f"{name:<16} {load:>12} {p['qps']:7.0f} {p['p50_ms']:7.1f} {p['p95_ms']:7.1f} "
                     f"{p['p99_ms']:7.1f} {p['errors']:6d}")
    return "\n".join(lines)
