"""``make demo`` / ``recstack demo``: every stage that exists, end to end on the default synthetic data."""

from __future__ import annotations

import argparse

import polars as pl

from benchmarks.machine import describe_machine
from client.triton import TritonRecommender
from ensemble.build import build_repository
from ensemble.server import TritonServer
from preprocessing.datasets import SyntheticConfig, generate_synthetic
from preprocessing.pipeline import format_summary, preprocess
from recstack.demo_facade import show_facade
from recstack.demo_latency import latency_summary
from recstack.settings import Settings
from training.cli import parser as train_parser
from training.cli import run as train


def _top_items(out) -> str:
    stats = pl.read_parquet(out / "item_stats.parquet")
    items = pl.read_parquet(out / "items.parquet", columns=["item_idx", "item_id", "title"])
    top = (stats.sort("recent_popularity", descending=True).head(5)
           .join(items, on="item_idx", maintain_order="left")
           .select("item_id", "title", "recent_popularity", "recent_events"))
    return "\n".join(f"  {r['item_id']:>10}  {r['title'] or '':<40} score {r['recent_popularity']:>7,.0f} "
                      f"from {r['recent_events']} events" for r in top.iter_rows(named=True))


def _recommendations(data, client: TritonRecommender, users: int = 3, limit: int = 5) -> str:
    """A few test users: their latest items, then what the ensemble recommends and why."""
    histories = pl.read_parquet(data / "eval_test.parquet", columns=["user_id", "history"]).head(users)
    titles = pl.read_parquet(data / "items.parquet", columns=["item_idx", "title"])["title"].to_list()
    served = client.recommend(histories["history"].to_list(), limit=limit)
    lines = []
    for user, history, result in zip(histories["user_id"], histories["history"], served, strict=True):
        latest = ", ".join(titles[i] or str(i) for i in history[-3:])
        lines.append(f"user {user} (latest: {latest}) -> model {result.model_version}")
        lines += [f"  {r.item_id:>10}  {titles[r.item_idx] or '':<38} {r.score:5.3f}  {r.reason}"
                  for r in result.items]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="recstack demo", description=__doc__)
    parser.add_argument("--events", type=int, help="synthetic dataset size [RECSTACK_SYNTHETIC_EVENTS]")
    parser.add_argument("--train-minutes", type=float, default=1.5,
                        help="training budget per model, so the demo ends in a few minutes")
    args = parser.parse_args(argv)
    settings = Settings()
    config = SyntheticConfig(n_events=args.events or settings.synthetic_events, seed=settings.seed)
    print(f"1/5 generating synthetic data ({config.n_events:,} events, seed {config.seed})")
    data = generate_synthetic(config)
    out = settings.data_output(data.name)
    print(f"2/5 preprocessing into {out}")
    manifest = preprocess(data, out, settings.workflow, settings.split, engine=settings.engine)
    print(format_summary(manifest))
    print("trending items of the last week, weighted by event type (raw ids and titles via the id maps):")
    print(_top_items(out))
    models = settings.models_output(data.name)
    print(f"3/5 training the ranker and the two-tower model ({args.train_minutes:g} min each at most), "
          f"the baselines, and exporting to ONNX into {models}")
    train_args = train_parser().parse_args(["--data", str(out), "--out", str(models), "--max-minutes",
                                            str(args.train_minutes), "--no-resume"])
    train(train_args)
    repository = settings.model_repository
    print(f"4/5 building the Triton model repository in {repository}, starting Triton and asking it for "
          "recommendations")
    build_repository(out, models, repository, settings.serving, clean=True)
    with TritonServer(repository) as server:
        print(f"Triton ready on HTTP {server.http_url} / gRPC {server.grpc_url}")
        with TritonRecommender(server.grpc_url, "grpc") as client:
            print(_recommendations(out, client))
        print("5/5 the recommendation API (FastAPI facade) in front of Triton")
        print(show_facade(out, server.grpc_url))
        print(f"latency on this machine ({describe_machine()['summary']}), 20 items per answer; "
              "full sweeps: recstack bench serving")
        print(latency_summary(out, repository, server.grpc_url, settings.build_dir / "demo"))
    return 0
