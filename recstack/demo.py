"""``make demo`` / ``recstack demo``: every stage that exists, end to end on the default synthetic data."""

from __future__ import annotations

import argparse

import polars as pl

from preprocessing.datasets import SyntheticConfig, generate_synthetic
from preprocessing.pipeline import format_summary, preprocess
from recstack.settings import Settings


def _top_items(out) -> str:
    stats = pl.read_parquet(out / "item_stats.parquet")
    items = pl.read_parquet(out / "items.parquet", columns=["item_idx", "item_id", "title"])
    top = (stats.sort("recent_popularity", descending=True).head(5)
           .join(items, on="item_idx", maintain_order="left")
           .select("item_id", "title", "recent_popularity", "recent_events"))
    return "\n".join(f"  {r['item_id']:>10}  {r['title'] or '':<40} score {r['recent_popularity']:>7,.0f} "
                      f"from {r['recent_events']} events" for r in top.iter_rows(named=True))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="recstack demo", description=__doc__)
    parser.add_argument("--events", type=int, help="synthetic dataset size [RECSTACK_SYNTHETIC_EVENTS]")
    args = parser.parse_args(argv)
    settings = Settings()
    config = SyntheticConfig(n_events=args.events or settings.synthetic_events, seed=settings.seed)
    print(f"1/2 generating synthetic data ({config.n_events:,} events, seed {config.seed})")
    data = generate_synthetic(config)
    out = settings.data_output(data.name)
    print(f"2/2 preprocessing into {out}")
    manifest = preprocess(data, out, settings.workflow, settings.split, engine=settings.engine)
    print(format_summary(manifest))
    print("trending items of the last week, weighted by event type (raw ids and titles via the id maps):")
    print(_top_items(out))
    return 0
