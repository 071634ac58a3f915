"""Batch scoring throughput (``recstack score``): users/s for K = 50, in-process and through Triton, per user count.

For each user count a synthetic shop (``--events-per-user`` events per user, ``--items`` items) is generated and
preprocessed, both models are exported with initial weights (throughput depends on shapes, not on what the
weights learned) and a repository is built. Each mode then scores the users into its own folder (the same
chunked, resumable writer a campaign uses); ``--max-users`` caps how many are scored per mode, so a 1M-user
shop can be measured on a slice. The first chunk's lists of the two modes are compared, and the peak memory
of the scoring process (and of Triton) is sampled. Writes ``batch_scoring.json`` and ``batch_scoring.png``.
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
MODES = ("in-process", "triton")


class PeakMemory:
    """Peak resident memory (GiB) of processes and their children, sampled every 0.2 s in a thread."""

    def __init__(self, pids):
        self.pids, self.peak, self._stop = list(pids), 0.0, threading.Event()

    def _sample(self) -> float:
        total = 0
        for pid in self.pids:
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
    users = len(Shop.load(data_dir).histories)
    say(f"{n_users:,} users generated, {users:,} with a history; {args.items:,} items: ready in "
        f"{time.perf_counter() - started:.0f} s")
    scored = min(users, args.max_users) if args.max_users else users
    max_chunks = -(-scored // args.chunk_users)
    result = {"n_users": users, "items": args.items, "k": args.k, "modes": {}}
    for mode in args.modes:
        out = shop / f"scores_{mode}"
        shutil.rmtree(out, ignore_errors=True)  # a fresh run: resuming would time nothing
        if mode == "triton":
            with TritonServer(repository, work_dir=args.work / "triton") as server:
                with PeakMemory([psutil.Process().pid, server.pid]) as memory:
                    summary = score_users(data_dir, out, mode, args.k, triton_url=server.grpc_url,
                                          chunk_users=args.chunk_users, max_chunks=max_chunks, progress=not args.quiet)
        else:
            with PeakMemory([psutil.Process().pid]) as memory:
                summary = score_users(data_dir, out, mode, args.k, repository=repository,
                                      chunk_users=args.chunk_users, max_chunks=max_chunks, progress=not args.quiet)
        summary["peak_memory_gib"] = round(memory.peak, 2)
        result["modes"][mode] = summary
        say(f"  {mode:<10} {summary['scored_now']:,} users in {summary['seconds']:.0f} s: "
            f"{summary['users_per_second']:.0f} users/s, peak memory {memory.peak:.1f} GiB")
    if set(MODES) <= set(args.modes):
        first = [pl.read_parquet(shop / f"scores_{mode}" / "parts" / "part-00000.parquet") for mode in MODES]
        same = first[0].select("user_id", "item_id").equals(first[1].select("user_id", "item_id"))
        result["identical_lists_first_chunk"] = bool(same)
        result["max_score_difference"] = float((first[0]["score"] - first[1]["score"]).abs().max()) if same else None
        result["triton_over_in_process"] = (result["modes"]["triton"]["users_per_second"]
                                            / result["modes"]["in-process"]["users_per_second"])
    return result


def plot(results: list[dict], path: Path) -> None:
    with figure(path, ncols=1, size=(6, 3.8)) as (_, ax):
        labels = [f"{r['n_users']:,} users" for r in results]
        width = 0.38
        for m, mode in enumerate(MODES):
            values = [r["modes"].get(mode, {}).get("users_per_second", 0) for r in results]
            bars = ax.bar([i + (m - 0.5) * width for i in range(len(results))], values, width, label=mode)
            ax.bar_label(bars, fmt="%.0f", fontsize=8)
        ax.set_xticks(range(len(results)), labels)
        ax.set_ylabel("users scored per second (K = 50)")
        ax.set_title("batch scoring throughput", fontsize=10)
        ax.legend()


def format_table(results: list[dict]) -> str:
    lines = ["| users in shop | scored | mode | users/s | seconds | peak memory GiB | same lists |",
             "|---:|---:|---|---:|---:|---:|---|"]
    for r in results:
        for mode, s in r["modes"].items():
            lines.append(f"| {r['n_users']:,} | {s['scored_now']:,} | {mode} | {s['users_per_second']:.0f} | "
                         f"{s['seconds']:.0f} | {s['peak_memory_gib']:.2f} | "
                         f"{r.get('identical_lists_first_chunk', 'n/a')} |")
    return "\n".join(lines)


def main(argv: list[str], settings: Settings) -> int:
    parser = argparse.ArgumentParser(prog="recstack bench scoring", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, nargs="+", default=[100_000, 1_000_000], help="users per shop")
    parser.add_argument("--items", type=int, default=50_000)
    parser.add_argument("--events-per-user", type=int, default=10)
    parser.add_argument("--modes", nargs="+", choices=MODES, default=list(MODES))
    parser.add_argument("-k", type=int, default=50)
    parser.add_argument("--max-users", type=int, help="score at most this many users per mode (a slice)")
    parser.add_argument("--chunk-users", type=int, default=5000)
    parser.add_argument("--work", type=Path, default=Path("build/bench/scoring"), help="generated files")
    parser.add_argument("--out", type=Path, default=RESULTS, help="where the JSON and PNG go")
    parser.add_argument("--smoke", action="store_true", help="a tiny shop (for tests)")
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)
    if args.smoke:
        args.users, args.items, args.chunk_users, args.max_users = [600], 2000, 200, None
    say = (lambda *_: None) if args.quiet else (lambda *a: print(*a, flush=True))
    results = [run_users(n, args, say) for n in args.users]
    payload = {"benchmark": "batch_scoring", "machine": describe_machine(),
               "command": "recstack bench scoring " + " ".join(argv if argv is not None else sys.argv[1:]),
               "note": "models exported with initial weights; Triton mode: gRPC, batches of 64 users, 4 in flight, "
                       "client and server on the same machine", "results": results}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "batch_scoring.json").write_text(json.dumps(payload, indent=2) + "\n")
    plot(results, args.out / "batch_scoring.png")
    print(format_table(results))
    return 0
