"""Latency of the whole funnel on Triton (HTTP and gRPC, batch 1) against catalog size, beside the same funnel
run in-process (onnxruntime + FAISS, no Triton).

For each catalog size a synthetic shop is generated and preprocessed, the ranker and the two-tower model are
exported with their initial weights (latency depends on shapes, not on what the weights learned; the retrieval
index is tuned on these vectors like on trained ones), a repository is built with ``--candidates``, and one
client sends requests one after another (closed loop, concurrency 1) with real users' histories. Triton's
statistics API gives each stage's share. Writes ``benchmarks/results/serving_latency.{json,png}``.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import polars as pl

from benchmarks.machine import describe_machine
from benchmarks.plots import figure

RESULTS = Path(__file__).parent / "results"
STAGES = ("query_encoder", "retrieve", "rank", "rerank")


def latency_stats(seconds: list[float]) -> dict:
    """Percentiles in milliseconds and the achieved rate of a closed-loop run."""
    ms = np.asarray(seconds) * 1000
    return {"requests": len(ms), "p50_ms": float(np.percentile(ms, 50)), "p95_ms": float(np.percentile(ms, 95)),
            "p99_ms": float(np.percentile(ms, 99)), "mean_ms": float(ms.mean()), "max_ms": float(ms.max()),
            "qps": float(len(ms) / (ms.sum() / 1000))}


def closed_loop(call: Callable[[int], object], requests: int, warmup: int) -> dict:
    """``call(i)`` one after another; the first ``warmup`` calls are not timed."""
    for i in range(warmup):
        call(i)
    seconds = []
    for i in range(requests):
        start = time.perf_counter()
        call(warmup + i)
        seconds.append(time.perf_counter() - start)
    return latency_stats(seconds)


def prepare_shop(n_items: int, out: Path, seed: int = 7) -> tuple[Path, Path]:
    """Synthetic shop with ``n_items`` items, preprocessed, and both models exported untrained."""
    import torch

    from preprocessing.datasets import SyntheticConfig, generate_synthetic
    from preprocessing.pipeline import preprocess
    from recstack.settings import Settings
    from training.data import load_prepared
    from training.export import export_sasrec, export_two_tower
    from training.models.sasrec import SASRec
    from training.models.two_tower import ItemFeatures, TwoTower

    data_dir, models_dir = out / "data", out / "models"
    if not (data_dir / "manifest.json").exists():
        events = max(200_000, 2 * n_items)
        preprocess(generate_synthetic(SyntheticConfig(n_events=events, n_items=n_items, seed=seed)), data_dir,
                   progress=False)
    data = load_prepared(data_dir)
    settings = Settings()
    torch.manual_seed(seed)
    extra = {"dataset": data.name, "dataset_fingerprint": data.fingerprint}
    if not (models_dir / "onnx" / "sasrec" / "manifest.json").exists():
        sasrec = SASRec(data.n_items, settings.sasrec).eval()
        export_sasrec(sasrec, models_dir / "onnx" / "sasrec", data.test.histories[:64], n_checks=2,
                      extra={**extra, "model_version": f"sasrec-untrained-{data.fingerprint[:8]}"}, verbose=False)
    if not (models_dir / "onnx" / "two_tower" / "manifest.json").exists():
        two_tower = TwoTower(ItemFeatures.from_prepared(data), settings.two_tower).eval()
        export_two_tower(two_tower, models_dir / "onnx" / "two_tower", data.test.histories[:64], n_checks=2,
                         extra={**extra, "model_version": f"two_tower-untrained-{data.fingerprint[:8]}"},
                         verbose=False)
    return data_dir, models_dir


def stage_breakdown(server_url: str, before: dict, after: dict) -> dict:
    """Mean compute + queue time per request of each stage between two statistics snapshots."""
    out = {}
    for model in STAGES:
        b, a = before.get(model), after.get(model)
        if not a:
            continue
        count = a["success"]["count"] - (b["success"]["count"] if b else 0)
        if count <= 0:
            continue
        total_ns = sum(a[k]["ns"] - (b[k]["ns"] if b else 0) for k in ("queue", "compute_input",
                                                                          "compute_infer", "compute_output"))
        out[model] = total_ns / count / 1e6
    return out


def model_statistics(http_url: str) -> dict:
    import tritonclient.http as httpclient

    with_client = httpclient.InferenceServerClient(http_url)
    try:
        stats = with_client.get_inference_statistics()["model_stats"]
    finally:
        with_client.close()
    return {s["name"]: s["inference_stats"] for s in stats}


def run_size(n_items: int, candidates: int, requests: int, warmup: int, work: Path, verbose: bool) -> dict:
    from client.triton import TritonRecommender
    from ensemble.build import build_repository
    from ensemble.config import ServingConfig
    from ensemble.funnel import Funnel
    from ensemble.retrieve import RetrieveConfig
    from ensemble.server import TritonServer

    say = print if verbose else (lambda *_: None)
    started = time.perf_counter()
    data_dir, models_dir = prepare_shop(n_items, work / f"items_{n_items}")
    config = ServingConfig(retrieve=RetrieveConfig(candidates=candidates))
    report = build_repository(data_dir, models_dir, work / f"items_{n_items}" / "model_repository", config,
                              clean=True, verbose=verbose)
    repository = work / f"items_{n_items}" / "model_repository"
    histories = pl.read_parquet(data_dir / "eval_test.parquet", columns=["history"]).head(256)["history"].to_list()
    say(f"{n_items:,} items: prepared in {time.perf_counter() - started:.0f} s")
    result = {"n_items": report["n_items"], "candidates": candidates, "index": report["index"], "limit": 20}
    funnel = Funnel(repository)
    result["in_process"] = closed_loop(lambda i: funnel.recommend_histories([histories[i % len(histories)]]),
                                       requests, warmup)
    say(f"  in-process: p50 {result['in_process']['p50_ms']:.2f} ms, p99 {result['in_process']['p99_ms']:.2f} ms")
    with TritonServer(repository, work_dir=work / "triton") as server:
        for protocol in ("http", "grpc"):
            url = server.http_url if protocol == "http" else server.grpc_url
            with TritonRecommender(url, protocol) as client:
                before = model_statistics(server.http_url)
                stats = closed_loop(lambda i, c=client: c.recommend([histories[i % len(histories)]]), requests,
                                    warmup)
                stats["stages_ms"] = stage_breakdown(server.http_url, before, model_statistics(server.http_url))
            result[protocol] = stats
            stages = ", ".join(f"{k} {v:.2f}" for k, v in stats["stages_ms"].items())
            say(f"  Triton {protocol}: p50 {stats['p50_ms']:.2f} ms, p95 {stats['p95_ms']:.2f} ms, "
                f"p99 {stats['p99_ms']:.2f} ms; mean ms per stage: {stages}")
    for protocol in ("http", "grpc"):
        result[f"{protocol}_vs_in_process_p50"] = result[protocol]["p50_ms"] / result["in_process"]["p50_ms"]
    return result


def plot(results: list[dict], path: Path) -> None:
    modes = ("in_process", "http", "grpc")
    width = 0.25
    with figure(path, size=(11, 4)) as (_, axes):
        for m, mode in enumerate(modes):
            for p, pct in enumerate(("p50_ms", "p99_ms")):
                x = np.arange(len(results)) + (m - 1) * width
                axes[p].bar(x, [r[mode][pct] for r in results], width, label=mode.replace("_", "-"))
        for p, pct in enumerate(("p50", "p99")):
            axes[p].set_xticks(np.arange(len(results)), [f"{r['n_items']:,} items" for r in results])
            axes[p].set_ylabel(f"{pct} latency (ms)")
            axes[p].set_title(f"funnel {pct}, batch 1, {results[0]['candidates']} candidates")
            axes[p].legend()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="recstack bench serving", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, nargs="+", default=[100_000, 1_000_000], help="catalog sizes")
    parser.add_argument("--candidates", type=int, default=1000)
    parser.add_argument("--requests", type=int, default=500, help="timed requests per mode")
    parser.add_argument("--warmup", type=int, default=30)
    parser.add_argument("--work", type=Path, default=Path("build/bench/serving"), help="generated files")
    parser.add_argument("--out", type=Path, default=RESULTS, help="where the JSON and PNG go")
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)
    results = [run_size(n, args.candidates, args.requests, args.warmup, args.work, not args.quiet)
               for n in args.items]
    args.out.mkdir(parents=True, exist_ok=True)
    payload = {"benchmark": "serving_latency", "machine": describe_machine(),
               "client": "same machine, one closed-loop client thread", "results": results}
    (args.out / "serving_latency.json").write_text(json.dumps(payload, indent=2) + "\n")
    plot(results, args.out / "serving_latency.png")
    print(format_table(results))
    return 0


def format_table(results: list[dict]) -> str:
    lines = ["| items | index | mode | p50 ms | p95 ms | p99 ms | max ms | QPS |",
             "|---|---|---|---:|---:|---:|---:|---:|"]
    for r in results:
        index = f"{r['index']['kind']} (recall@{r['index']['recall_k']} {r['index']['recall']:.3f})"
        for mode in ("in_process", "http", "grpc"):
            s = r[mode]
            lines.append(f"| {r['n_items']:,} | {index} | {mode.replace('_', '-')} | {s['p50_ms']:.2f} | "
                         f"{s['p95_ms']:.2f} | {s['p99_ms']:.2f} | {s['max_ms']:.2f} | {s['qps']:.0f} |")
    return "\n".join(lines)
