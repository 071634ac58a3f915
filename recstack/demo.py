"""``make demo`` / ``recstack demo``: every stage that exists, end to end on the default synthetic data."""

from __future__ import annotations

import argparse
from dataclasses import replace

import polars as pl

from recstack.benchmarks.machine import describe_machine
from recstack.client.triton import TritonRecommender
from recstack.demo_facade import show_facade
from recstack.demo_latency import latency_summary
from recstack.ensemble.build import build_repository
from recstack.ensemble.server import TritonServer
from recstack.preprocessing.datasets import SyntheticConfig, generate_synthetic
from recstack.preprocessing.layout import PreparedLayout
from recstack.preprocessing.pipeline import format_summary, preprocess
from recstack.preprocessing.tombstones import read_tombstones
from recstack.settings import Settings
from recstack.training.train_models import train_models


def _top_items(out) -> str:
    stats = pl.read_parquet(PreparedLayout(out).item_stats)
    items = pl.read_parquet(PreparedLayout(out).items, columns=["item_idx", "item_id", "title"])
    top = (stats.sort("recent_popularity", descending=True).head(5)
           .join(items, on="item_idx", maintain_order="left")
           .select("item_id", "title", "recent_popularity", "recent_events"))
    return "\n".join(f"  {r['item_id']:>10}  {r['title'] or '':<40} score {r['recent_popularity']:>7,.0f} "
                      f"from {r['recent_events']} events" for r in top.iter_rows(named=True))


def _recommendations(data, client: TritonRecommender, users: int = 3, limit: int = 5) -> str:
    """A few test users: their latest items, then what the ensemble recommends and why."""
    histories = pl.read_parquet(PreparedLayout(data).eval_test, columns=["user_id", "history"]).head(users)
    titles = pl.read_parquet(PreparedLayout(data).items, columns=["item_idx", "title"])["title"].to_list()
    served = client.recommend(histories["history"].to_list(), limit=limit)
    lines = []
    for user, history, result in zip(histories["user_id"], histories["history"], served, strict=True):
        latest = ", ".join(titles[i] or str(i) for i in history[-3:])
        lines.append(f"user {user} (latest: {latest}) -> model {result.model_version}")
        lines += [f"  {r.item_id:>10}  {titles[r.item_idx] or '':<38} {r.score:5.3f}  {r.reason}"
                  for r in result.items]
    return "\n".join(lines)


def main(argv: list[str], settings: Settings) -> int:
    parser = argparse.ArgumentParser(prog="recstack demo", description=__doc__)
    parser.add_argument("--events", type=int, help="synthetic dataset size [RECSTACK_SYNTHETIC_EVENTS]")
    parser.add_argument("--train-minutes", type=float, default=1.5,
                        help="training budget per model, so the demo ends in a few minutes")
    args = parser.parse_args(argv)
    config = SyntheticConfig(n_events=args.events or settings.synthetic_events, seed=settings.seed)
    print(f"1/5 generating synthetic data ({config.n_events:,} events, seed {config.seed})")
    data = generate_synthetic(config)
    out = settings.data_output(data.name)
    print(f"2/5 preprocessing into {out}")
    manifest = preprocess(data, out, settings.workflow, settings.split, engine=settings.engine,
                          tombstones=read_tombstones(settings.tombstones_file))
    print(format_summary(manifest))
    print("trending items of the last week, weighted by event type (raw ids and titles via the id maps):")
    print(_top_items(out))
    models = settings.models_output(data.name)
    print(f"3/5 training the ranker and the two-tower model ({args.train_minutes:g} min each at most), "
          f"the baselines, and exporting to ONNX into {models}")
    train_models(out, models, train=replace(settings.train, max_minutes=args.train_minutes), sasrec=settings.sasrec,
                 two_tower=settings.two_tower, resume=False)
    repository = settings.model_repository
    print(f"4/5 building the Triton model repository in {repository}, starting Triton and asking it for "
          "recommendations")
    build_repository(out, models, repository, settings.serving, clean=True)
    with TritonServer(repository) as server:
        print(f"Triton ready on HTTP {server.http_url} / gRPC {server.grpc_url}")
        with TritonRecommender(server.grpc_url, "grpc") as client:
            print(_recommendations(out, client))
        print("5/5 the recommendation API (FastAPI facade) in front of Triton")
        print(show_facade(replace(settings.facade_config(), data=out, triton_url=server.grpc_url)))
        print(f"latency on this machine ({describe_machine()['summary']}), 20 items per answer; "
              "full sweeps: recstack bench serving")
        print(latency_summary(out, repository, server.grpc_url, settings.build_dir / "demo"))
    port = settings.facade_config().port
    print("the demo storefront (recstack.js widgets on this catalog) and the operations dashboard, served until "
          f"Ctrl-C by:\n  .venv/bin/recstack serve api --engine in-process --demo\n  storefront: "
          f"http://127.0.0.1:{port}/demo/\n  dashboard:  http://127.0.0.1:{port}/dashboard#key=<admin key: "
          "recstack keys create --scope admin --name ops>")
    return 0
