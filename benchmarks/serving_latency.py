"""Latency and throughput of the retrieve → rank → re-rank funnel under load, per catalog size and candidate count.

Four targets, measured one after another in the same run with the same users:

- ``triton-http`` / ``triton-grpc``: the ``recommend`` ensemble on Triton, called directly;
- ``facade``: the FastAPI facade (one uvicorn worker) in front of that Triton (gRPC);
- ``facade-in-process``: the same facade running the same funnel inside its worker (onnxruntime + FAISS,
  no Triton): the comparison the ratios in the results are about.

Each target gets a closed-loop concurrency sweep and open-loop fixed-rate runs (see :mod:`recstack.benchmarks.load`);
higher rates are skipped once a target saturates. A shop with ``n_items`` items is generated and preprocessed,
the two-tower model is trained for ``--train-minutes`` (so the index is tuned on trained item vectors; 0 keeps
initial weights) and the ranker exported with initial weights (latency depends on shapes, not on what weights
learned). Triton's statistics API gives each stage's share. The client runs in this process, on the same
machine as the servers: the CPU both sides used is recorded next to every point.
Writes ``serving_latency.json`` and ``serving_latency.png`` / ``serving_stages.png`` under ``--out``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import polars as pl
from recstack.benchmarks.load import CpuMeter, closed_loop, open_loop
from recstack.benchmarks.machine import describe_machine
from recstack.benchmarks.plots import figure
from recstack.preprocessing.layout import PreparedLayout

from recstack.settings import Settings

RESULTS = Path(__file__).parent / "results"
STAGES = ("query_encoder", "retrieve", "rank", "rerank")
TARGETS = ("triton-http", "triton-grpc", "facade", "facade-in-process")
LIMIT = 20  # items per answer, as a product page shows


def prepare_shop(n_items: int, out: Path, seed: int = 7, events: int | None = None, train_minutes: float = 0.0,
                 verbose: bool = False, n_users: int | None = None) -> tuple[Path, Path]:
    """Synthetic shop with ``n_items`` items (and ``n_users`` users, or as many as the generator derives from
    ``events``), preprocessed; the ranker exported untrained, the two-tower model trained for ``train_minutes``
    (0: untrained) and exported; both with the default architectures."""
    import torch
    from recstack.preprocessing.datasets import SyntheticConfig, generate_synthetic
    from recstack.preprocessing.pipeline import preprocess
    from recstack.training.config import SASRecConfig, TrainConfig, TwoTowerConfig
    from recstack.training.data import load_prepared
    from recstack.training.export_sasrec import export_sasrec
    from recstack.training.export_two_tower import export_two_tower
    from recstack.training.models.sasrec import SASRec
    from recstack.training.models.two_tower import ItemFeatures, TwoTower
    from recstack.training.train_two_tower import train_two_tower

    data_dir, models_dir = out / "data", out / "models"
    if not PreparedLayout(data_dir).exists():
        events = events or max(200_000, 2 * n_items)
        preprocess(generate_synthetic(SyntheticConfig(n_events=events, n_items=n_items, n_users=n_users, seed=seed)),
                   data_dir, progress=False)
    data = load_prepared(data_dir)
    torch.manual_seed(seed)
    extra = {"dataset": data.name, "dataset_fingerprint": data.fingerprint}
    if not (models_dir / "onnx" / "sasrec" / "manifest.json").exists():
        sasrec = SASRec(data.n_items, SASRecConfig()).eval()
        export_sasrec(sasrec, models_dir / "onnx" / "sasrec", data.test.histories[:64], n_checks=2,
                      extra={**extra, "model_version": f"sasrec-untrained-{data.fingerprint[:8]}"}, verbose=False)
    if not (models_dir / "onnx" / "two_tower" / "manifest.json").exists():
        if train_minutes > 0:
            trained = train_two_tower(data, models_dir / "two_tower", TwoTowerConfig(),
                                      TrainConfig(max_minutes=train_minutes, validation_users=1024, test_users=1024),
                                      progress=verbose)
            two_tower, version = trained.model.eval(), trained.report.version
        else:
            two_tower = TwoTower(ItemFeatures.from_prepared(data), TwoTowerConfig()).eval()
            version = f"two_tower-untrained-{data.fingerprint[:8]}"
        export_two_tower(two_tower, models_dir / "onnx" / "two_tower", data.test.histories[:64], n_checks=2,
                         extra={**extra, "model_version": version}, verbose=False)
    return data_dir, models_dir


def model_statistics(http_url: str) -> dict:
    import tritonclient.http as httpclient

    client = httpclient.InferenceServerClient(http_url)
    try:
        stats = client.get_inference_statistics()["model_stats"]
    finally:
        client.close()
    return {s["name"]: s["inference_stats"] for s in stats}


def stage_breakdown(before: dict, after: dict) -> dict:
    """Mean queue + compute ms per request of each stage between two statistics snapshots."""
    out = {}
    for model in STAGES:
        b, a = before.get(model), after.get(model)
        if not a:
            continue
        count = a["success"]["count"] - (b["success"]["count"] if b else 0)
        if count <= 0:
            continue
        parts = {k: (a[k]["ns"] - (b[k]["ns"] if b else 0)) / count / 1e6
                 for k in ("queue", "compute_input", "compute_infer", "compute_output")}
        out[model] = {"queue_ms": parts["queue"], "compute_ms": sum(parts.values()) - parts["queue"]}
    return out


@contextlib.contextmanager
def facade_process(data_dir: Path, work: Path, engine: str, repository: Path, triton_grpc_url: str,
                   auth: bool = True, redis_url: str | None = None, facade_settings: dict | None = None):
    """A facade (``recstack serve api``, one worker) on a free port, with its store and keys in ``redis_url`` or
    in-process and in a keys file, and :class:`FacadeConfig` fields ``facade_settings`` (through ``RECSTACK_FACADE__``
    variables); yields ``(url, pid, headers)``: the headers carry a server key (limited far above any load point)
    unless ``auth`` is off."""
    import httpx
    from recstack.client.core.keys import create_key, open_key_store
    from recstack.ensemble.server import THREAD_VARIABLES, free_port

    port = free_port()
    keys_file = work / "keys.json"
    key = create_key("bench", "server", requests_per_minute=1e9)
    open_key_store(redis_url, keys_file).save(key.record)  # replaces the previous run's
    headers = {"X-API-Key": key.key} if auth else {}
    env = {**os.environ, "RECSTACK_FACADE__INGEST_FILE": str(work / "ingest" / "new_items.jsonl"),
           "RECSTACK_FACADE__KEYS_FILE": str(keys_file), **({"RECSTACK_FACADE__REDIS_URL": redis_url} if redis_url
                                                            else {}),
           **{name: os.environ.get(name, "1") for name in THREAD_VARIABLES},  # as Triton's model instances
           **{f"RECSTACK_FACADE__{name.upper()}": str(value) for name, value in (facade_settings or {}).items()}}
    command = [sys.executable, "-m", "recstack", "serve", "api", "--data", str(data_dir), "--engine", engine,
               "--repository", str(repository), "--triton-url", triton_grpc_url, "--host", "127.0.0.1",
               "--port", str(port), *([] if auth else ["--insecure-no-auth"])]
    log = (work / f"facade-{engine}.log").open("w")
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 300
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"the facade exited ({process.returncode}); see {log.name}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{url}/ready", timeout=2).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise TimeoutError(f"the facade was not ready within 300 s; see {log.name}")
            time.sleep(0.5)
        yield url, process.pid, headers
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()


def triton_sender(url: str, protocol: str, histories: list):
    from recstack.client.engine import engine_kind, open_engine

    client = open_engine(engine_kind("triton", protocol), url)

    async def send(i: int):
        return await client.recommend_arrays([histories[i % len(histories)]], None, LIMIT)

    return send, client.close


def facade_sender(url: str, users: list[str], headers: dict[str, str]):
    import aiohttp

    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0), headers=headers)

    async def send(i: int):
        async with session.get(f"{url}/api/v1/recommendations/{users[i % len(users)]}",
                               params={"limit": str(LIMIT)}) as response:
            body = await response.json()
            # A fallback answer is fast but is not the funnel: count it as an error.
            if response.status != 200 or body.get("degraded"):
                raise RuntimeError(f"status {response.status}, degraded {body.get('degraded')}")
            return body

    return send, session.close


def saturated(point: dict, timeout_s: float) -> bool:
    """Past capacity: errors, answers falling behind the offered rate, or latency near the time-out."""
    return (point["errors"] > 0.01 * max(1, point["requests"]) or point["qps"] < 0.9 * point["offered_rps"]
            or point["p99_ms"] > 500 * timeout_s)


async def recovered(send, within_s: float = 15.0) -> None:
    """Wait until a request is answered normally again: after an overloaded point the facade's circuit breaker
    stays open for a while (answering with the fallback), which must not count against the next point."""
    deadline = time.perf_counter() + within_s
    while True:
        try:
            await send(0)
            return
        except Exception:  # noqa: BLE001 - still failing or degraded
            if time.perf_counter() > deadline:
                return  # the point will show the errors
            await asyncio.sleep(0.25)


async def sweep(send, cpu_pids: tuple[int, ...], concurrency: list[int], rates: list[float], duration_s: float,
                warmup_s: float, timeout_s: float, say) -> list[dict]:
    """Closed-loop points, then open-loop ones up to the first saturated rate; CPU of both sides per point."""
    points = []

    async def measure(label: str, run) -> dict:
        await recovered(send)
        with CpuMeter(cpu_pids) as cpu:
            point = await run
        points.append({**point, "client_cores": cpu.client_cores, "server_cores": cpu.server_cores})
        say(f"    {label:<12} {point['qps']:7.1f} req/s  p50 {point['p50_ms']:7.2f}  p99 {point['p99_ms']:7.2f}"
            f"  max {point['max_ms']:7.2f} ms  errors {point['errors']}  client {cpu.client_cores:.2f} cores")
        return point

    for c in concurrency:
        await measure(f"closed c={c}", closed_loop(send, c, duration_s, warmup_s, timeout_s))
    for rate in rates:
        if saturated(await measure(f"open {rate:.0f}/s", open_loop(send, rate, duration_s, warmup_s, timeout_s)),
                     timeout_s):
            say(f"    saturated at {rate:.0f}/s: higher rates skipped")
            break
    return points


def run_config(n_items: int, candidates: int, args, say) -> dict:
    from recstack.ensemble.build import build_repository
    from recstack.ensemble.config import RetrieveConfig, ServingConfig
    from recstack.ensemble.server import TritonServer

    shop = args.work / f"items_{n_items}"
    started = time.perf_counter()
    data_dir, models_dir = prepare_shop(n_items, shop, events=args.events, train_minutes=args.train_minutes,
                                        verbose=not args.quiet)
    repository = shop / f"model_repository_c{candidates}"
    config = ServingConfig(retrieve=RetrieveConfig(candidates=candidates))
    report = build_repository(data_dir, models_dir, repository, config, clean=True, verbose=False)
    test = pl.read_parquet(PreparedLayout(data_dir).eval_test, columns=["user_id", "history"]).head(args.users)
    users, histories = test["user_id"].to_list(), test["history"].to_list()
    say(f"{n_items:,} items, {candidates} candidates: ready in {time.perf_counter() - started:.0f} s; index "
        f"{report['index']['kind']} recall@{report['index']['recall_k']} {report['index']['recall']:.3f}, "
        f"{report['index']['ms_per_query']:.2f} ms/query (exact {report['index']['exact_ms_per_query']:.2f})")
    result = {"n_items": report["n_items"], "candidates": candidates, "index": report["index"], "limit": LIMIT,
              "history_length_p50": float(np.median([len(h) for h in histories])), "targets": {}}

    async def measure(target: str, connect, pids: tuple[int, ...], stats_url: str | None) -> None:
        say(f"  {target}")
        send, close = connect()  # clients bind to the running event loop
        before = model_statistics(stats_url) if stats_url else {}
        try:
            points = await sweep(send, pids, args.concurrency, args.rates, args.duration, args.warmup,
                                 args.timeout, say)
        finally:
            await close()
        entry = {"points": points}
        if stats_url:
            entry["stages"] = stage_breakdown(before, model_statistics(stats_url))
        result["targets"][target] = entry

    work = args.work / "run"
    work.mkdir(parents=True, exist_ok=True)
    with TritonServer(repository, work_dir=work / "triton") as server:
        triton_pid = server.pid
        for target in args.targets:
            if target.startswith("triton-"):
                protocol = target.split("-")[1]
                url = server.http_url if protocol == "http" else server.grpc_url
                asyncio.run(measure(target, lambda u=url, p=protocol: triton_sender(u, p, histories),
                                    (triton_pid,), server.http_url))
            else:
                engine = "in-process" if target == "facade-in-process" else "triton"
                with facade_process(data_dir, work, engine, repository, server.grpc_url) as (url, pid, headers):
                    pids = (pid,) if engine == "in-process" else (pid, triton_pid)
                    asyncio.run(measure(target, lambda u=url, h=headers: facade_sender(u, users, h), pids,
                                        None if engine == "in-process" else server.http_url))
    result["comparison"] = compare(result["targets"])
    return result


def _by_load(points: list[dict]) -> dict:
    return {(p["mode"], p.get("concurrency") or p.get("offered_rps")): p for p in points}


def compare(targets: dict) -> dict:
    """Facade on Triton ÷ facade in-process: latency ratios at the load points both ran, and best throughput."""
    if "facade" not in targets or "facade-in-process" not in targets:
        return {}
    a, b = _by_load(targets["facade"]["points"]), _by_load(targets["facade-in-process"]["points"])
    rows = []
    for key in a.keys() & b.keys():
        rows.append({"mode": key[0], "load": key[1], "p50_ratio": a[key]["p50_ms"] / b[key]["p50_ms"],
                     "p99_ratio": a[key]["p99_ms"] / b[key]["p99_ms"]})
    best = {name: max((p["qps"] for p in targets[name]["points"] if p["errors"] == 0), default=0.0)
            for name in ("facade", "facade-in-process")}
    return {"triton_over_in_process": sorted(rows, key=lambda r: (r["mode"], r["load"])),
            "max_qps": best, "max_qps_ratio": best["facade"] / best["facade-in-process"]
            if best["facade-in-process"] else None}


def check_targets(results: list[dict]) -> list[dict]:
    """The issue's targets, at 1M items and 1,000 candidates, from what was measured (None: not measured)."""
    config = next((r for r in results if r["n_items"] >= 1_000_000 and r["candidates"] == 1000), None)
    if config is None:
        return []
    facade = {p.get("offered_rps"): p for p in config["targets"].get("facade", {}).get("points", [])
              if p["mode"] == "open"}
    at_200 = facade.get(200)
    sustained = sustained_rate(list(facade.values()))
    index = config["index"]
    return [
        {"target": "facade p99 <= 20 ms at 200 req/s", "measured": at_200 and round(at_200["p99_ms"], 1),
         "met": bool(at_200 and at_200["p99_ms"] <= 20 and at_200["errors"] == 0)},
        {"target": ">= 300 req/s sustained with p99 <= 50 ms", "measured": sustained,
         "met": bool(sustained and sustained >= 300)},
        {"target": "FAISS recall@1000 >= 0.95 within 2 ms/query (batch 1)",
         "measured": f"recall {index['recall']:.3f}, {index['ms_per_query']:.2f} ms",
         "met": index["recall"] >= 0.95 and index["ms_per_query"] <= 2.0},
    ]


def plot_latency(results: list[dict], path: Path) -> None:
    """p50 (dashed) and p99 (solid) against offered load, one panel per catalog size and candidate count."""
    with figure(path, ncols=len(results), size=(4.2 * len(results), 3.8)) as (_, axes):
        axes = np.atleast_1d(axes)
        for ax, r in zip(axes, results, strict=True):
            for target, entry in r["targets"].items():
                open_points = [p for p in entry["points"] if p["mode"] == "open"]
                if not open_points:
                    continue
                x = [p["offered_rps"] for p in open_points]
                line, = ax.plot(x, [p["p99_ms"] for p in open_points], marker="o", label=target)
                ax.plot(x, [p["p50_ms"] for p in open_points], ls="--", color=line.get_color())
            ax.set_yscale("log")
            ax.set_xlabel("offered load (req/s)")
            ax.set_ylabel("latency (ms): p99 solid, p50 dashed")
            ax.set_title(f"{r['n_items']:,} items, {r['candidates']} candidates", fontsize=9)
            ax.grid(alpha=0.3)
        axes[0].legend(fontsize=7)


def plot_stages(results: list[dict], path: Path) -> None:
    """Mean ms per request of each Triton stage (compute and queue), per catalog size and candidate count."""
    with figure(path, ncols=1, size=(1.6 * len(results) + 3, 3.8)) as (_, ax):
        labels = [f"{r['n_items'] // 1000:,}k / {r['candidates']}" for r in results]
        bottom = np.zeros(len(results))
        for stage in STAGES:
            for part, hatch in (("compute_ms", None), ("queue_ms", "//")):
                values = np.array([r["targets"].get("triton-grpc", {}).get("stages", {}).get(stage, {}).get(part, 0)
                                   for r in results])
                ax.bar(labels, values, bottom=bottom, hatch=hatch,
                       label=f"{stage} {part[:-3]}" if part == "compute_ms" or values.any() else None)
                bottom += values
        ax.set_ylabel("ms per request (Triton statistics)")
        ax.set_xlabel("items / candidates")
        ax.set_title("where a request's time goes (triton-grpc sweep)", fontsize=9)
        ax.legend(fontsize=7)


def format_table(results: list[dict]) -> str:
    lines = ["| items | cand. | target | load | req/s | p50 ms | p95 ms | p99 ms | max ms | errors | client cores |",
             "|---:|---:|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in results:
        for target, entry in r["targets"].items():
            for p in entry["points"]:
                load = f"c={p['concurrency']}" if p["mode"] == "closed" else f"{p['offered_rps']:.0f}/s"
                lines.append(f"| {r['n_items']:,} | {r['candidates']} | {target} | {load} | {p['qps']:.0f} | "
                             f"{p['p50_ms']:.1f} | {p['p95_ms']:.1f} | {p['p99_ms']:.1f} | {p['max_ms']:.1f} | "
                             f"{p['errors']} | {p['client_cores']:.2f} |")
    return "\n".join(lines)


def sustained_rate(points: list[dict], p99_ms: float = 50.0) -> float | None:
    """The highest open-loop rate answered in full (no errors, ≥ 97 % of the offered rate) with p99 ≤ ``p99_ms``."""
    rates = [p["offered_rps"] for p in points if p["mode"] == "open" and p["errors"] == 0
             and p["qps"] >= 0.97 * p["offered_rps"] and p["p99_ms"] <= p99_ms]
    return max(rates, default=None)


def _p99_cell(point: dict | None) -> str:
    if point is None:
        return "–"
    if point["requests"] == 0:  # requests counts the answered ones
        return f"all {point['errors']} failed"
    return f"{point['p99_ms']:.1f}" + (f" ({point['errors']} err.)" if point["errors"] else "")


def headline_table(results: list[dict], rates: tuple[float, ...] = (100, 200, 300)) -> str:
    """One row per catalog size, candidate count and target: latency at c=1, best closed-loop throughput, p99 at
    a few offered rates (– where not reached: the sweep stopped at a saturated rate) and the highest rate
    sustained with p99 ≤ 50 ms."""
    lines = ["| items | cand. | target | c=1 p50 / p99 ms | best closed-loop req/s | "
             + " | ".join(f"p99 ms at {r:.0f}/s" for r in rates) + " | sustained at p99 ≤ 50 ms |",
             "|---:|---:|---|---:|---:|" + "---:|" * len(rates) + "---:|"]
    for r in results:
        for target, entry in r["targets"].items():
            points = entry["points"]
            first = next(p for p in points if p["mode"] == "closed")
            best = max(p["qps"] for p in points if p["mode"] == "closed")
            by_rate = {p["offered_rps"]: p for p in points if p["mode"] == "open"}
            sustained = sustained_rate(points)
            lines.append(f"| {r['n_items']:,} | {r['candidates']} | {target} | {first['p50_ms']:.1f} / "
                         f"{first['p99_ms']:.1f} | {best:.0f} | " + " | ".join(_p99_cell(by_rate.get(rate))
                                                                               for rate in rates)
                         + f" | {'–' if sustained is None else f'{sustained:.0f}/s'} |")
    return "\n".join(lines)


def summary(results: list[dict]) -> str:
    """One line per catalog size and target: the best throughput and the latency at the lightest load."""
    lines = []
    for r in results:
        for target, entry in r["targets"].items():
            first = entry["points"][0]
            best = max(p["qps"] for p in entry["points"])
            lines.append(f"{r['n_items']:>9,} items, {r['candidates']:>4} cand., {target:<18} p50 "
                         f"{first['p50_ms']:6.2f} ms, p99 {first['p99_ms']:6.2f} ms at c=1; up to {best:5.0f} req/s")
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="recstack bench serving", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, nargs="+", default=[10_000, 100_000, 1_000_000], help="catalog sizes")
    parser.add_argument("--candidates", type=int, nargs="+", default=[200, 1000])
    parser.add_argument("--targets", nargs="+", choices=TARGETS, default=list(TARGETS))
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 4, 16], help="closed-loop clients")
    parser.add_argument("--rates", type=float, nargs="+", default=[50, 100, 200, 300, 400, 600],
                        help="open-loop offered loads (req/s)")
    parser.add_argument("--duration", type=float, default=6.0, help="seconds timed per load point")
    parser.add_argument("--warmup", type=float, default=1.0, help="seconds untimed before each point")
    parser.add_argument("--timeout", type=float, default=2.0, help="a request slower than this is an error")
    parser.add_argument("--users", type=int, default=2000, help="distinct users the requests cycle through")
    parser.add_argument("--events", type=int, help="synthetic events per shop [max(200k, 2 × items)]")
    parser.add_argument("--train-minutes", type=float, default=5.0,
                        help="two-tower training per shop, so the index holds trained vectors (0: untrained)")
    parser.add_argument("--work", type=Path, default=Path("build/bench/serving"), help="generated files")
    parser.add_argument("--out", type=Path, default=RESULTS, help="where the JSON and PNGs go")
    parser.add_argument("--smoke", action="store_true", help="a tiny shop and a few short points (for tests)")
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)
    if args.smoke:
        args.items, args.candidates, args.events, args.train_minutes = [3000], [100], 20_000, 0.0
        args.concurrency, args.rates, args.duration, args.warmup, args.users = [1, 2], [20], 0.5, 0.2, 50
    return args


def main(argv: list[str], settings: Settings) -> int:
    args = parse_args(argv)
    say = (lambda *_: None) if args.quiet else (lambda *a: print(*a, flush=True))
    results = [run_config(n, c, args, say) for n in args.items for c in args.candidates]
    machine = describe_machine()
    payload = {"benchmark": "serving_latency", "machine": machine,
               "client": f"this process (asyncio, one thread) on the same machine as the servers, sharing its "
                         f"{machine['cores']} cores; each point records the cores client and server used",
               "command": "recstack bench serving " + " ".join(argv if argv is not None else sys.argv[1:]),
               "results": results, "targets": check_targets(results)}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "serving_latency.json").write_text(json.dumps(payload, indent=2) + "\n")
    plot_latency(results, args.out / "serving_latency.png")
    plot_stages(results, args.out / "serving_stages.png")
    print(format_table(results))
    print(headline_table(results))
    print(summary(results))
    for t in payload["targets"]:
        print(f"target: {t['target']}: measured {t['measured']} -> {'met' if t['met'] else 'NOT met'}")
    return 0
