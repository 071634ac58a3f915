"""Item statistics from training events: popularity (overall and recent) and co-occurrence."""

from __future__ import annotations

from datetime import datetime, timedelta

import polars as pl
from recstack.preprocessing.schema import EVENT_TYPES
from recstack.preprocessing.sequences import mark_steps

# Event types that signal intent to buy; their co-occurrence is "frequently bought together".
BASKET_EVENTS = ("add_to_cart", "purchase")
COOCCURRENCE_KINDS = ("also_viewed", "bought_together")  # in the order cooccurrence.parquet lists them


def item_popularity(train: pl.LazyFrame, reference_time: datetime, recent_days: float) -> pl.LazyFrame:
    """One row per item with events: counts per event type, distinct users, summed weight, and the
    same over the ``recent_days`` before ``reference_time`` (the end of the fitting data)."""
    recent = pl.col("timestamp") > pl.lit(reference_time - timedelta(days=recent_days))
    per_type = [(pl.col("event_code") == code).sum().cast(pl.UInt32).alias(f"{name}_count")
                for code, name in enumerate(EVENT_TYPES)]
    return (train.group_by("item_idx").agg(
        pl.len().cast(pl.UInt32).alias("events"),
        pl.col("user_idx").n_unique().cast(pl.UInt32).alias("users"),
        pl.col("weight").sum().alias("popularity"),
        recent.sum().cast(pl.UInt32).alias("recent_events"),
        pl.col("weight").filter(recent).sum().alias("recent_popularity"),
        *per_type,
        pl.col("timestamp").min().alias("first_seen"),
        pl.col("timestamp").max().alias("last_seen"),
    ).sort("item_idx"))


def _pair_counts(steps: pl.LazyFrame, window: int) -> pl.LazyFrame:
    """How often two items are at most ``window`` steps apart in a session, in both directions.

    Shifting by 1..window keeps the cost linear in events, where a self-join on the session would
    be quadratic in session length. Rows are sorted by session, so a shifted row of the same session
    is a later step of it. Co-occurrence is symmetric: pairs are counted once, unordered, and then
    mirrored.
    """
    pairs = []
    for offset in range(1, window + 1):
        same_session = pl.col("session_id").shift(-offset) == pl.col("session_id")
        later = pl.when(same_session).then(pl.col("item_idx").shift(-offset))
        pairs.append(steps.select(pl.min_horizontal("item_idx", later).alias("item_a"),
                                  pl.max_horizontal("item_idx", later).alias("item_b"), later.alias("_later")))
    counts = (pl.concat(pairs).drop_nulls("_later").filter(pl.col("item_a") != pl.col("item_b"))
              .group_by("item_a", "item_b").agg(pl.len().cast(pl.UInt32).alias("count")))
    mirrored = counts.select(pl.col("item_b").alias("item_a"), pl.col("item_a").alias("item_b"), "count")
    return pl.concat([counts, mirrored])


def _top_k(counts: pl.LazyFrame, kind: str, top_k: int) -> pl.LazyFrame:
    """The ``top_k`` most frequent neighbours of each item; ties go to the smaller item index."""
    best = counts.group_by("item_a").agg(
        pl.col("item_b", "count").top_k_by(["count", "item_b"], top_k, reverse=[False, True]))
    return (best.explode("item_b", "count")
            .sort(["item_a", "count", "item_b"], descending=[False, True, False])
            .select(pl.lit(kind).alias("kind"), "item_a", "item_b", "count"))


def pair_counts(train: pl.LazyFrame, window: int) -> pl.LazyFrame:
    """``kind, item_a, item_b, count``: how often two items co-occur in a session, of both kinds, from events
    sorted by user and time. Sessions never span users, so the counts of disjoint sets of users add up
    (:func:`top_neighbours` sums them), which is how the streaming pipeline counts one chunk of users at a time.

    ``also_viewed``: any two steps of a session within ``window`` steps (repeats collapsed).
    ``bought_together``: two items carted or purchased in the same session within ``window``.
    """
    viewed = mark_steps(train, True, by="session_id").filter(pl.col("step_start"))
    basket_codes = [EVENT_TYPES.index(t) for t in BASKET_EVENTS]
    basket = (train.filter(pl.col("event_code").is_in(basket_codes))
              .unique(["session_id", "item_idx"], keep="first", maintain_order=True))
    return pl.concat([_pair_counts(steps, window).select(pl.lit(kind).alias("kind"), pl.all())
                      for kind, steps in zip(COOCCURRENCE_KINDS, (viewed, basket), strict=True)])


def top_neighbours(counts: pl.LazyFrame, top_k: int) -> pl.LazyFrame:
    """Top-``top_k`` neighbours per item and kind from :func:`pair_counts` (summed where a pair appears more
    than once)."""
    summed = counts.group_by("kind", "item_a", "item_b").agg(pl.col("count").sum().cast(pl.UInt32))
    return pl.concat([_top_k(summed.filter(pl.col("kind") == kind).drop("kind"), kind, top_k)
                      for kind in COOCCURRENCE_KINDS])


def cooccurrence(train: pl.LazyFrame, window: int, top_k: int) -> pl.LazyFrame:
    """Top-``top_k`` neighbours per item of each kind of :func:`pair_counts`."""
    return top_neighbours(pair_counts(train, window), top_k)
