"""Preprocessing throughput: the polars workflow in memory, on polars' streaming engine (one chunk of users at
a time, ``recstack preprocess --streaming``) and on a local Dask cluster of 1 and 2 worker processes
(``recstack preprocess --engine dask --workers N``), against a plain-pandas version of the same transformations.

Each implementation runs in its own process on the same synthetic parquet files, so peak memory (the child's own
high-water mark, VmHWM) is its own; a Dask run's is the peak of the summed resident memory of its process and
its cluster's (scheduler in-process, nannies, workers), sampled every 0.1 s. Time covers reading the raw parquet,
every transformation of the leave-one-out pipeline and writing the output tables (and, for Dask, starting and
closing the cluster).

    recstack bench preprocessing                    # 1M and 10M events
    recstack bench preprocessing --sizes 200000     # a quick run
    recstack bench preprocessing --sizes 100000000 --implementations polars-streaming dask-1 dask-2 \\
        --results-dir build/bench/results           # larger than memory on 24 GiB
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import polars as pl
from recstack.benchmarks.machine import describe_machine
from recstack.benchmarks.plots import figure
from recstack.preprocessing.config import WorkflowConfig
from recstack.preprocessing.datasets import SyntheticConfig, generate_synthetic
from recstack.preprocessing.schema import RawDataset

from recstack.settings import Settings

IMPLEMENTATIONS = ("polars", "polars-streaming", "pandas", "dask-1", "dask-2")
BASELINE = "polars"  # every other implementation's ratios are to it
# The implementations whose prepared outputs must agree in every count (pandas writes fewer tables).
SAME_OUTPUTS = ("polars", "polars-streaming", "dask-1", "dask-2")
# Small enough that the largest default size is several chunks, so the streaming and Dask rows show a bounded peak.
STREAMING_CHUNK_EVENTS = 500_000
DEFAULT_SIZES = (1_000_000, 10_000_000)
RESULTS_DIR = Path(__file__).resolve().parent / "results"


def _raw_files(size: int, seed: int, cache: Path) -> tuple[Path, Path]:
    """Synthetic events/items parquet for ``size`` events, generated once and reused."""
    folder = cache / f"synthetic_{size}_{seed}"
    events, items = folder / "events.parquet", folder / "items.parquet"
    if not (events.exists() and items.exists()):
        folder.mkdir(parents=True, exist_ok=True)
        data = generate_synthetic(SyntheticConfig(n_events=size, seed=seed))
        data.events.write_parquet(events)
        data.items.write_parquet(items)
    return events, items


def _peak_rss_mb() -> float:
    """This process's peak resident memory. Not ``ru_maxrss`` of the child from ``wait4``: Linux carries the
    maximum over fork and exec, so a child would also report the parent's size at the fork."""
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmHWM:")) / 1024  # KiB


class TreeMemory:
    """Peak of the summed resident memory of this process and its descendants (a Dask cluster's processes),
    sampled on a thread."""

    def __init__(self, interval_s: float = 0.1):
        import psutil

        self._me, self._interval = psutil.Process(), interval_s
        self.peak_mb = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        import psutil

        while not self._stop.is_set():
            total = 0
            for process in [self._me, *self._me.children(recursive=True)]:
                try:
                    total += process.memory_info().rss
                except psutil.Error:  # a process that ended between the listing and the read
                    pass
            self.peak_mb = max(self.peak_mb, total / 2**20)
            self._stop.wait(self._interval)

    def __enter__(self) -> TreeMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def _worker(implementation: str, events: Path, items: Path, out: Path) -> dict:
    """Run one implementation in this process; returns its timings, output counts and peak memory."""
    started = time.perf_counter()
    config = WorkflowConfig()
    if implementation.startswith("dask-"):
        from recstack.preprocessing.dask_engine import preprocess_dask

        with TreeMemory() as memory:
            counts = preprocess_dask(events, items, out, config, workers=int(implementation.removeprefix("dask-")),
                                     device="cpu", progress=False, chunk_events=STREAMING_CHUNK_EVENTS).counts
        return {"seconds": time.perf_counter() - started, "counts": counts,
                "peak_rss_mb": max(memory.peak_mb, _peak_rss_mb())}
    if implementation == "polars":
        from recstack.preprocessing.pipeline import preprocess

        data = RawDataset("bench", pl.read_parquet(events), pl.read_parquet(items))
        counts = preprocess(data, out, config, engine="cpu", progress=False).counts
    elif implementation == "polars-streaming":
        from recstack.preprocessing.streaming import preprocess_streaming

        counts = preprocess_streaming(events, items, out, config, progress=False,
                                      chunk_events=STREAMING_CHUNK_EVENTS).counts
    else:
        import pandas as pd
        from recstack.benchmarks.pandas_reference import preprocess_pandas

        counts = preprocess_pandas(pd.read_parquet(events), pd.read_parquet(items), config, out)
    return {"seconds": time.perf_counter() - started, "counts": counts, "peak_rss_mb": _peak_rss_mb()}


def _run_isolated(implementation: str, events: Path, items: Path) -> dict:
    """Run the worker in a child process; its last line of output is its result."""
    with tempfile.TemporaryDirectory(prefix=f"bench-{implementation}-") as out:
        cmd = [sys.executable, "-m", "recstack", "bench", "preprocessing", "--worker", implementation,
               "--events", str(events), "--items", str(items), "--out", out]
        proc = subprocess.run(cmd, stdout=subprocess.PIPE, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{implementation} worker failed with exit code {proc.returncode}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _ratio(size: int, n_events: int, label: str, slow: dict, fast: dict) -> dict:
    return {"target_events": size, "events": n_events, "implementation": label,
            "seconds_ratio": round(slow["seconds"] / fast["seconds"], 2),
            "memory_ratio": round(slow["peak_rss_mb"] / fast["peak_rss_mb"], 2)}


def run(sizes: list[int], seed: int, cache: Path, results_dir: Path,
        implementations: tuple[str, ...] = IMPLEMENTATIONS) -> dict:
    rows = []
    for size in sizes:
        events, items = _raw_files(size, seed, cache)
        n_events = pl.scan_parquet(events).select(pl.len()).collect().item()
        by_impl = {}
        for implementation in implementations:
            print(f"  {size:>11,} events: {implementation} ...", flush=True)
            result = _run_isolated(implementation, events, items)
            by_impl[implementation] = result
            rows.append({"target_events": size, "events": n_events, "implementation": implementation,
                         "seconds": round(result["seconds"], 3),
                         "events_per_second": round(n_events / result["seconds"]),
                         "peak_rss_mb": round(result["peak_rss_mb"], 1)})
        same = [by_impl[name]["counts"] for name in SAME_OUTPUTS if name in by_impl]
        test_events = {counts["test_events"] for counts in [*same, *(by_impl[n]["counts"] for n in ("pandas",)
                                                                     if n in by_impl)]}
        if any(counts != same[0] for counts in same) or len(test_events) > 1:
            raise RuntimeError(f"the implementations disagree at {size} events: {by_impl}")
        if BASELINE in by_impl:
            rows += [_ratio(size, n_events, f"{name} / {BASELINE}", by_impl[name], by_impl[BASELINE])
                     for name in implementations if name != BASELINE]
    report = {"benchmark": "preprocessing_throughput", "machine": describe_machine(),
              "versions": {"polars": pl.__version__, "pandas": __import__("pandas").__version__,
                           "dask": __import__("dask").__version__, "python": platform.python_version()},
              "command": "recstack bench preprocessing --sizes " + " ".join(map(str, sizes))
              + ("" if implementations == IMPLEMENTATIONS else " --implementations " + " ".join(implementations)),
              "streaming_chunk_events": STREAMING_CHUNK_EVENTS,
              "results": rows}
    results_dir.mkdir(parents=True, exist_ok=True)
    (results_dir / "preprocessing_throughput.json").write_text(json.dumps(report, indent=2))
    plot(report, results_dir / "preprocessing_throughput.png")
    print(markdown_table(report))
    return report


def markdown_table(report: dict) -> str:
    lines = ["| events | implementation | seconds | events/s | peak RSS (MB) |", "|---:|---|---:|---:|---:|"]
    for r in report["results"]:
        if "seconds_ratio" in r:
            lines.append(f"| {r['events']:,} | **{r['implementation']}** | **{r['seconds_ratio']}×** | | "
                         f"**{r['memory_ratio']}×** |")
        else:
            lines.append(f"| {r['events']:,} | {r['implementation']} | {r['seconds']:.2f} | "
                         f"{r['events_per_second']:,} | {r['peak_rss_mb']:,.0f} |")
    return "\n".join(lines)


def plot(report: dict, path: Path) -> None:
    rows = [r for r in report["results"] if "seconds" in r]
    sizes = sorted({r["events"] for r in rows})
    shown = [name for name in IMPLEMENTATIONS if any(r["implementation"] == name for r in rows)]
    width = 0.8 / len(shown)
    with figure(path) as (fig, axes):
        for i, impl in enumerate(shown):
            mine = {r["events"]: r for r in rows if r["implementation"] == impl}
            xs = [j + (i - (len(shown) - 1) / 2) * width for j in range(len(sizes))]
            axes[0].bar(xs, [mine[s]["events_per_second"] / 1e6 for s in sizes], width, label=impl)
            axes[1].bar(xs, [mine[s]["peak_rss_mb"] / 1024 for s in sizes], width, label=impl)
        for ax, title in zip(axes, ("throughput (million events/s, higher is better)",
                                    "peak memory (GiB, lower is better)"), strict=True):
            ax.set_xticks(range(len(sizes)), [f"{s:,} events" for s in sizes])
            ax.set_title(title, fontsize=10)
            ax.legend()
        fig.suptitle(f"Preprocessing (leave-one-out pipeline) — {report['machine']['summary']}", fontsize=10)


def main(argv: list[str], settings: Settings) -> int:
    p = argparse.ArgumentParser(prog="recstack bench preprocessing", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", type=int, nargs="+", default=list(DEFAULT_SIZES), help="events per run")
    p.add_argument("--seed", type=int, default=settings.seed)
    p.add_argument("--results-dir", type=Path, default=RESULTS_DIR)
    p.add_argument("--cache", type=Path, default=settings.build_dir / "bench", help="generated raw data")
    p.add_argument("--implementations", nargs="+", choices=IMPLEMENTATIONS, default=list(IMPLEMENTATIONS),
                   help="which to run (e.g. leave out the in-memory ones where the table outgrows memory); ratios "
                        "need polars")
    p.add_argument("--worker", choices=IMPLEMENTATIONS, help=argparse.SUPPRESS)
    p.add_argument("--events", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--items", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        print(json.dumps(_worker(args.worker, args.events, args.items, args.out)))
        return 0
    run(args.sizes, args.seed, args.cache, args.results_dir, tuple(args.implementations))
    return 0
