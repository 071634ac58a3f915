"""Batch scoring throughput (``recstack score``): users/s for K = 50 of the batch engine (in one process and on
a local Dask cluster), the online funnel in-process and through Triton, and the ranker alone (the floor), per user
count.

For each user count a synthetic shop (``--events-per-user`` events per user, ``--items`` items) is generated and
preprocessed, both models are exported with initial weights (throughput depends on shapes, not on what the
weights learned) and a repository is built. Each mode scores the users into its own folder (the same chunked,
resumable writer a campaign uses), one chunk per mode in turn, so a slower or busier minute of a shared machine
falls on every mode alike; ``--max-users`` caps how many are scored per mode, so a 1M-user shop can be measured
on a slice. ``dask`` scores each round's users in one chunk per worker on a local cluster (``--workers``
processes, one thread each) started once for the run, so each worker loads the models once. ``ranker`` times the
ranker alone on the batch engine's groups of each chunk (same users, widths and candidates, same threads): what
scoring would cost if everything else were free; the engine's other stages are timed with it one by one (query
encoder, FAISS search, candidate merge, re-rank), so the figure shows where the rest goes. The first chunk's lists
of the modes are compared, and the peak memory of the scoring process (and of Triton or the Dask workers) is
sampled. Writes ``batch_scoring.json`` and ``batch_scoring.png``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import threading
import time
from pathlib import Path

import polars as pl
import psutil
from recstack.benchmarks.machine import describe_machine
from recstack.benchmarks.plots import figure
from recstack.benchmarks.serving_latency import prepare_shop

from recstack.settings import Settings

RESULTS = Path(__file__).parent / "results"
MODES = ("batch", "dask", "in-process", "triton")
FLOOR = "ranker"  # the ranker alone on the batch engine's groups
STAGES = ("query_encoder", "search", "merge", "rank", "rerank")  # the batch engine's, timed one by one
TARGET = 5.0  # issue 16: the batch engine at 5x the in-process users/s on the same machine and shop


class PeakMemory:
    """Peak resident memory (GiB) of processes, sampled every 0.2 s in a thread: this process alone, and the
    servers a mode uses (Triton, Dask workers) with their children."""

    def __init__(self, servers=()):
        self.servers, self.peak, self._stop = list(servers), 0.0, threading.Event()

    def _sample(self) -> float:
        total = psutil.Process().memory_info().rss
        for pid in self.servers:
            try:
                process = psutil.Process(pid)
                total += sum(p.memory_info().rss for p in [process, *process.children(recursive=True)])
            except psutil.NoSuchProcess:
                continue
        return total / 2**30

    def _run(self) -> None:
        while not self._stop.wait(0.2):
            self.peak = max(self.peak, self._sample())

    def __enter__(self) -> PeakMemory:
        self.peak = self._sample()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def stage_seconds(repository: Path, histories: list, k: int) -> dict[str, float]:
    """Seconds each stage of the batch engine takes on these users, one stage after another (the engine runs the
    ranker beside the Python stages): its groups, widths, single search and candidates, its threads. ``rank``
    alone is the floor."""
    import numpy as np
    from recstack.ensemble.batch import BatchFunnel
    from recstack.ensemble.funnel import request_arrays
    from threadpoolctl import threadpool_limits

    seconds = dict.fromkeys(STAGES, 0.0)

    def timed(stage: str, call, *args):
        began = time.perf_counter()
        out = call(*args)
        seconds[stage] += time.perf_counter() - began
        return out

    engine = BatchFunnel(repository)
    try:
        funnel = engine.funnel
        order = np.argsort([len(h) for h in histories], kind="stable")
        groups = [request_arrays([histories[u] for u in order[i:i + engine.group_users]], None, k, funnel.max_length)
                  for i in range(0, len(order), engine.group_users)]
        queries = [timed("query_encoder", funnel.stages["query_encoder"], {"item_seq": seq})["query_embedding"]
                   for seq, _, _ in groups]
        ann = timed("search", funnel.retriever.search, np.concatenate(queries), max(g[0].shape[1] for g in groups))
        start = 0
        for (seq, excluded, limits), query in zip(groups, queries, strict=True):
            found, sources, anchors = timed("merge", funnel.retriever.merge, query, seq, ann[start:start + len(seq)])
            start += len(seq)
            scores = timed("rank", funnel.stages["rank"], {"item_seq": seq, "candidates": found})["scores"]
            with threadpool_limits(1, "blas"):  # as the engine re-ranks
                timed("rerank", funnel.reranker.batch, found, scores, sources, anchors, seq, excluded, limits[:, 0])
        return seconds
    finally:
        engine.close()


def run_users(n_users: int, args, say) -> dict:
    from recstack.client.core.shop import Shop
    from recstack.client.scoring import score_users
    from recstack.ensemble.build import build_repository
    from recstack.ensemble.server import TritonServer

    shop = args.work / f"users_{n_users}"
    started = time.perf_counter()
    data_dir, models_dir = prepare_shop(args.items, shop, events=args.events_per_user * n_users, n_users=n_users)
    repository = shop / "model_repository"
    if not (repository / "repository.json").exists():
        build_repository(data_dir, models_dir, repository, clean=True, verbose=False)
    histories = Shop.load(data_dir).histories
    users = len(histories)
    say(f"{n_users:,} users generated, {users:,} with a history; {args.items:,} items: ready in "
        f"{time.perf_counter() - started:.0f} s")
    scored = min(users, args.max_users) if args.max_users else users
    rounds = -(-scored // args.chunk_users)
    result = {"n_users": users, "items": args.items, "k": args.k, "rounds": rounds, "modes": {}}
    totals = {mode: {"scored_now": 0, "seconds": 0.0, "peak_memory_gib": 0.0} for mode in [*args.modes, FLOOR]}
    stages = dict.fromkeys(STAGES, 0.0)
    for mode in args.modes:
        shutil.rmtree(shop / f"scores_{mode}", ignore_errors=True)  # a fresh run: resuming would time nothing
    ordered = sorted(histories)
    server = TritonServer(repository, work_dir=args.work / "triton").start() if "triton" in args.modes else None
    cluster = _local_cluster(args.workers) if "dask" in args.modes else None
    servers = {"triton": [server.pid] if server else [], "dask": _worker_pids(cluster) if cluster else []}
    try:
        for number in range(rounds):  # one chunk per mode in turn
            for mode in args.modes:
                # Dask: the round's users in one chunk per worker, on a cluster started once for the whole run.
                distributed = {"scheduler": cluster.scheduler_address} if mode == "dask" else {}
                size = -(-args.chunk_users // args.workers) if mode == "dask" else args.chunk_users
                with PeakMemory(servers.get(mode, [])) as memory:
                    summary = score_users(data_dir, shop / f"scores_{mode}", "batch" if mode == "dask" else mode,
                                          args.k, repository=repository, triton_url=server.grpc_url if server else None,
                                          chunk_users=size, max_chunks=args.workers if mode == "dask" else 1,
                                          progress=False, **distributed)
                _add(totals[mode], summary["scored_now"], summary["seconds"], memory.peak)
                if summary.get("rows"):
                    totals[mode]["rows"] = summary["rows"]
            chunk = ordered[number * args.chunk_users:(number + 1) * args.chunk_users]
            with PeakMemory() as memory:
                seconds = stage_seconds(repository, [histories[u] for u in chunk], args.k)
            _add(totals[FLOOR], len(chunk), seconds["rank"], memory.peak)
            for stage, spent in seconds.items():
                stages[stage] += spent
            say(f"  round {number + 1}/{rounds}: " + ", ".join(
                f"{m} {t['scored_now'] / t['seconds']:.0f} users/s" for m, t in totals.items()))
    finally:
        if server is not None:
            server.stop()
        if cluster is not None:
            cluster.close()
    for mode, total in totals.items():
        total["users_per_second"] = round(total["scored_now"] / total["seconds"], 1)
        total["seconds"], total["peak_memory_gib"] = round(total["seconds"], 2), round(total["peak_memory_gib"], 2)
        result["modes"][mode] = total
        say(f"  {mode:<10} {total['scored_now']:,} users in {total['seconds']:.0f} s: "
            f"{total['users_per_second']:.0f} users/s, peak memory {total['peak_memory_gib']:.1f} GiB")
    result["stage_ms_per_user"] = {stage: round(1000 * spent / totals[FLOOR]["scored_now"], 3)
                                   for stage, spent in stages.items()}
    say("  batch engine's stages one by one, ms per user: " + ", ".join(
        f"{stage} {ms:.3f}" for stage, ms in result["stage_ms_per_user"].items()))
    speed = {mode: total["users_per_second"] for mode, total in totals.items()}
    result["ratios"] = {f"{a}_over_{b}": round(speed[a] / speed[b], 2) for a, b in
                        (("batch", "in-process"), ("batch", "triton"), ("triton", "in-process"), ("batch", FLOOR),
                         ("dask", "batch"), ("dask", "in-process"), ("dask", "triton"))
                        if a in speed and b in speed}
    if "batch" in speed and "in-process" in speed:
        result["target"] = {"batch_over_in-process": TARGET, "met": speed["batch"] / speed["in-process"] >= TARGET}
    reference = pl.read_parquet(shop / f"scores_{args.modes[0]}" / "parts" / "part-00000.parquet")
    first = {mode: pl.scan_parquet(shop / f"scores_{mode}" / "parts" / "part-*.parquet")
             .filter(pl.col("user_id").is_in(reference["user_id"].unique().to_list()))
             .sort("user_id", "rank").collect() for mode in args.modes}
    reference = reference.sort("user_id", "rank")
    result["identical_lists_first_chunk"] = all(
        f.select("user_id", "item_id", "reason").equals(reference.select("user_id", "item_id", "reason"))
        for f in first.values())
    result["max_score_difference"] = max(float((f["score"] - reference["score"]).abs().max()) for f in first.values()) \
        if result["identical_lists_first_chunk"] else None
    return result


def _local_cluster(workers: int):
    from distributed import LocalCluster

    return LocalCluster(n_workers=workers, processes=True, threads_per_worker=1, dashboard_address=None)


def _worker_pids(cluster) -> list[int]:
    import os

    from distributed import Client

    with Client(cluster) as client:
        return list(client.run(os.getpid).values())


def _add(total: dict, users: int, seconds: float, peak: float) -> None:
    total["scored_now"] += users
    total["seconds"] += seconds
    total["peak_memory_gib"] = max(total["peak_memory_gib"], peak)


def plot(results: list[dict], path: Path) -> None:
    with figure(path, ncols=2, size=(12, 3.8)) as (_, (ax, stages)):
        labels = [f"{r['n_users']:,} users" for r in results]
        modes = list(dict.fromkeys(m for r in results for m in r["modes"]))
        width = 0.8 / len(modes)
        for m, mode in enumerate(modes):
            values = [r["modes"].get(mode, {}).get("users_per_second", 0) for r in results]
            floor = mode == FLOOR
            bars = ax.bar([i + (m - (len(modes) - 1) / 2) * width for i in range(len(results))], values, width,
                          label=mode + (" alone (floor)" if floor else ""), hatch="//" if floor else None)
            ax.bar_label(bars, fmt="%.0f", fontsize=8)
        ax.set_xticks(range(len(results)), labels)
        ax.set_ylabel("users scored per second (K = 50)")
        ax.set_title("batch scoring throughput", fontsize=10)
        ax.legend(fontsize=8)
        bottom = [0.0] * len(results)
        for stage in STAGES:
            values = [r["stage_ms_per_user"][stage] for r in results]
            stages.bar(labels, values, 0.5, bottom=bottom, label=stage, hatch="//" if stage == "rank" else None)
            bottom = [b + v for b, v in zip(bottom, values, strict=True)]
        stages.set_ylabel("ms per user, stage by stage")
        stages.set_title("where the batch engine's time goes (rank: the floor)", fontsize=10)
        stages.legend(fontsize=8)


def format_table(results: list[dict]) -> str:
    lines = ["| users in shop | scored | mode | users/s | seconds | peak memory GiB |",
             "|---:|---:|---|---:|---:|---:|"]
    for r in results:
        for mode, s in r["modes"].items():
            lines.append(f"| {r['n_users']:,} | {s['scored_now']:,} | {mode} | {s['users_per_second']:.0f} | "
                         f"{s['seconds']:.0f} | {s['peak_memory_gib']:.2f} |")
        target = f"; target {TARGET}x in-process met: {r['target']['met']}" if "target" in r else ""
        lines.append(f"| | | ratios: {', '.join(f'{k} {v}' for k, v in r['ratios'].items())}; first chunk: same "
                     f"lists {r['identical_lists_first_chunk']}{target} | | | |")
    return "\n".join(lines)


def main(argv: list[str], settings: Settings) -> int:
    parser = argparse.ArgumentParser(prog="recstack bench scoring", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, nargs="+", default=[100_000, 1_000_000], help="users per shop")
    parser.add_argument("--items", type=int, default=50_000)
    parser.add_argument("--events-per-user", type=int, default=10)
    parser.add_argument("--modes", nargs="+", choices=MODES, default=list(MODES))
    parser.add_argument("--workers", type=int, default=2, help="Dask worker processes (one thread each), dask mode")
    parser.add_argument("-k", type=int, default=50)
    parser.add_argument("--max-users", type=int, help="score at most this many users per mode (a slice)")
    parser.add_argument("--chunk-users", type=int, default=5000)
    parser.add_argument("--work", type=Path, default=Path("build/bench/scoring"), help="generated files")
    parser.add_argument("--out", type=Path, default=RESULTS, help="where the JSON and PNG go")
    parser.add_argument("--smoke", action="store_true", help="a tiny shop (for tests)")
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)
    if args.smoke:
        args.users, args.items, args.chunk_users, args.max_users = [600], 2000, 300, None
    say = (lambda *_: None) if args.quiet else (lambda *a: print(*a, flush=True))
    results = [run_users(n, args, say) for n in args.users]
    payload = {"benchmark": "batch_scoring", "machine": describe_machine(),
               "command": "recstack bench scoring " + " ".join(argv if argv is not None else sys.argv[1:]),
               "note": "models exported with initial weights; modes alternate chunk by chunk; batch: groups of "
                       "256 users ordered by history length, FAISS and the ranker on every core; dask: the batch "
                       "engine on a LocalCluster of --workers processes with one thread each, the round's users in "
                       "one chunk per worker; in-process: the online funnel, one thread; triton: gRPC, batches of "
                       "64 users, 4 in flight, client and server on the same machine; ranker: the ranker alone on "
                       "the batch mode's groups",
               "results": results}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "batch_scoring.json").write_text(json.dumps(payload, indent=2) + "\n")
    plot(results, args.out / "batch_scoring.png")
    print(format_table(results))
    return 0
