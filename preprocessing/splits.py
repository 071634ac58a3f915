"""Reproducible train / validation / test splits."""

from __future__ import annotations

from datetime import datetime

import polars as pl
from recstack.preprocessing.config import SplitConfig
from recstack.preprocessing.engine import Engine, collect
from recstack.preprocessing.sequences import mark_steps, steps_after

SPLITS = ("train", "valid", "test")


def leave_one_out(encoded: pl.LazyFrame, collapse_repeats: bool) -> pl.LazyFrame:
    """Add ``split``: per user, last step → test, second-last → valid, the rest → train.

    Users with fewer than 3 steps keep everything in train, exactly as SASRec's ``data_partition``
    does on the ML-1M file. A step is one event, or one run of events on the same item when
    ``collapse_repeats`` is set. Row order (by user and time) is kept, so any union of splits is
    still sorted.
    """
    steps = mark_steps(encoded, collapse_repeats).with_columns(
        steps_after(pl.col("step_start"), "user_id").alias("_after"))
    long_enough = pl.col("step") + pl.col("_after") >= 2
    split = (pl.when(long_enough & (pl.col("_after") == 0)).then(pl.lit("test"))
             .when(long_enough & (pl.col("_after") == 1)).then(pl.lit("valid"))
             .otherwise(pl.lit("train")))
    return steps.with_columns(split.alias("split")).drop("step", "step_start", "_after")


def by_split(marked: pl.DataFrame) -> dict[str, pl.DataFrame]:
    """The rows of each split of a frame marked by :func:`leave_one_out`, without the marker."""
    return {name: marked.filter(pl.col("split") == name).drop("split") for name in SPLITS}


def temporal_cutoffs(events: pl.DataFrame | pl.LazyFrame, config: SplitConfig,
                     engine: Engine = "cpu") -> tuple[datetime, datetime]:
    """(valid_start, test_start): explicit ``test_start`` or timestamp quantiles (one aggregation of the
    events, which may be a lazy scan)."""
    ts = pl.col("timestamp")
    test_q = 1 - config.test_fraction
    first, test_quantile, valid_quantile = collect(events.lazy().select(
        ts.min().alias("first"), ts.quantile(test_q, "nearest").alias("test"),
        ts.quantile(test_q - config.valid_fraction, "nearest").alias("valid")), engine).row(0)
    if config.test_start is None:
        return valid_quantile, test_quantile
    test_start = config.test_start
    span = test_start - first
    if span.total_seconds() <= 0:
        raise ValueError(f"test_start {test_start} is not after the first event ({first})")
    return test_start - span * config.valid_fraction, test_start


def temporal_parts(events: pl.DataFrame, valid_start: datetime, test_start: datetime) -> dict[str, pl.DataFrame]:
    """Train before ``valid_start``, valid until ``test_start``, test after."""
    return {
        "train": events.filter(pl.col("timestamp") < valid_start),
        "valid": events.filter((pl.col("timestamp") >= valid_start) & (pl.col("timestamp") < test_start)),
        "test": events.filter(pl.col("timestamp") >= test_start),
    }


def temporal_split(events: pl.DataFrame, config: SplitConfig) -> tuple[dict[str, pl.DataFrame], dict]:
    """One global cut-off: train before ``valid_start``, valid until ``test_start``, test after.

    Returns the three event tables and the cut-offs used (saved in the manifest).
    """
    valid_start, test_start = temporal_cutoffs(events, config)
    parts = temporal_parts(events, valid_start, test_start)
    check_temporal_split(parts["train"].height, parts["test"].height, valid_start, test_start)
    return parts, cutoff_record(valid_start, test_start)


def cutoff_record(valid_start: datetime, test_start: datetime) -> dict[str, str]:
    """The cut-offs as the manifest records them."""
    return {"valid_start": valid_start.isoformat(), "test_start": test_start.isoformat()}


def check_temporal_split(train_events: int, test_events: int, valid_start: datetime, test_start: datetime) -> None:
    if train_events == 0:
        raise ValueError(f"temporal split leaves no training events before {valid_start}")
    if test_events == 0:
        raise ValueError(f"temporal split leaves no test events at or after {test_start}")
