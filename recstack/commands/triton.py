"""``recstack build-repo`` and ``recstack serve triton``: the serving stage's command lines."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from dataclasses import replace
from pathlib import Path

from recstack.ensemble.build import BuildError, build_repository
from recstack.ensemble.server import TritonError, TritonServer
from recstack.settings import Settings


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="recstack build-repo", description="Assemble the Triton model repository from "
                                "a prepared dataset and its trained, exported models (a new version when it exists).")
    p.add_argument("--data", type=Path, help="prepared dataset folder [build/data/synthetic]")
    p.add_argument("--models", type=Path, help="trained models folder [build/models/<dataset>]")
    p.add_argument("--out", type=Path, help="repository folder [build/model_repository]")
    p.add_argument("--rules", type=Path, help="business rules JSON: {\"unavailable\": [ids], "
                   "\"promoted\": [{\"item_id\": id, \"position\": 0-based}]}")
    p.add_argument("--candidates", type=int, help="candidates retrieved per user [500]")
    p.add_argument("--index", choices=["auto", "flat", "ivf", "ivfpq", "hnsw"], help="retrieval index kind [auto]")
    p.add_argument("--device", choices=["auto", "cpu", "gpu"], help="instance groups: KIND_GPU or KIND_CPU [auto]")
    p.add_argument("--new-items", type=Path, help="items added since training (JSON lines, CSV or parquet: item_id, "
                   "title, category, brand, price, created_at), e.g. the facade's build/ingest/new_items.jsonl")
    p.add_argument("--reload", metavar="HOST:PORT", help="then make the Triton server at this HTTP address load the "
                   "new version (no restart)")
    p.add_argument("--clean", action="store_true", help="delete the repository first instead of adding a version")
    return p


def build_main(argv: list[str], settings: Settings) -> int:
    args = build_parser().parse_args(argv)
    serving = settings.serving
    if args.candidates is not None:
        serving = replace(serving, retrieve=replace(serving.retrieve, candidates=args.candidates))
    serving = replace(serving, **{k: v for k, v in (("index", args.index), ("device", args.device)) if v})
    data = args.data or settings.data_output("synthetic")
    models = args.models or settings.models_output(Path(data).name)
    try:
        build_repository(data, models, args.out or settings.model_repository, serving, args.rules, args.clean,
                         new_items=args.new_items, triton_url=args.reload)
        if args.reload:
            print(f"Triton at {args.reload} serves the new version")
    except (BuildError, ValueError, FileNotFoundError, TritonError) as exc:
        print(f"recstack build-repo: {exc}", file=sys.stderr)
        return 1
    return 0


PROG_SERVE = "recstack serve triton"


def serve_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=PROG_SERVE, description="Run Triton over the model repository until Ctrl-C "
                                "(SIGINT/SIGTERM stop it cleanly). Ports: 0 picks a free one.")
    p.add_argument("--repository", type=Path, help="model repository [build/model_repository]")
    p.add_argument("--host", help="address to listen on [127.0.0.1]")
    p.add_argument("--http-port", type=int, help="[8000]")
    p.add_argument("--grpc-port", type=int, help="[8001]")
    p.add_argument("--metrics-port", type=int, help="[8002]")
    p.add_argument("--timeout", type=float, default=180.0, help="seconds to wait for readiness")
    return p


def serve_main(argv: list[str], settings: Settings) -> int:
    args = serve_parser().parse_args(argv)
    cfg = settings.serving
    repository = args.repository or settings.model_repository
    pick = {name: getattr(args, name) if getattr(args, name) is not None else getattr(cfg, name)
            for name in ("host", "http_port", "grpc_port", "metrics_port")}
    # Handlers first: a stop request that arrives while Triton starts still stops it cleanly.
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    try:
        server = TritonServer(repository, **pick).start(args.timeout)
    except TritonError as exc:
        print(f"{PROG_SERVE}: {exc}", file=sys.stderr)
        return 1
    print(f"Triton ready (pid {server.pid}): HTTP {server.http_url}, gRPC {server.grpc_url}, "
          f"metrics http://{server.host}:{server.metrics_port}/metrics; log {server.log_path}. Ctrl-C stops it.",
          flush=True)
    while not stop.wait(1.0):
        if server.process.poll() is not None:
            print(f"{PROG_SERVE}: tritonserver exited ({server.process.returncode}):\n{server.log_tail()}",
                  file=sys.stderr)
            return 1
    server.stop()
    print("Triton stopped")
    return 0

