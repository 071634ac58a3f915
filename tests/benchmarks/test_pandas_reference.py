"""The pandas benchmark baseline writes the same tables as the polars pipeline (an honest comparison)."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from recstack.benchmarks.pandas_reference import preprocess_pandas
from recstack.preprocessing.config import WorkflowConfig
from recstack.preprocessing.pipeline import preprocess
from recstack.preprocessing.schema import EVENT_TYPES, RawDataset

from tests.preprocessing.helpers import CATALOG, SHOP

EVENT_SHARED = ["user_idx", "item_idx", "event_code", "weight", "hour", "weekday", "session_id", "session_position"]
EVENT_TYPED = {"user_idx": pl.UInt32, "item_idx": pl.UInt32, "event_code": pl.UInt8, "weight": pl.Float32,
               "hour": pl.UInt8, "weekday": pl.UInt8, "session_id": pl.UInt32, "session_position": pl.UInt32}
STAT_COUNTS = ["events", "users", "recent_events", *(f"{t}_count" for t in EVENT_TYPES)]
START = datetime(2024, 5, 1)
CONFIG = WorkflowConfig(min_item_count=2, min_user_count=3, max_sequence_length=12, cooccurrence_top_k=4,
                        recent_days=3.5)


def random_log(seed: int, n_users: int = 120, n_items: int = 250) -> tuple[pl.DataFrame, pl.DataFrame]:
    """A few thousand events: sessions of browsing with view → click → cart → purchase funnels on one
    item, repeated views, long gaps between sessions, rare items seen once, users with one or two
    events (OOV under ``min_user_count=3``) and a catalog with cold and rare items.

    Timestamps carry microsecond jitter, so no two events of a user are simultaneous; logs with
    ties are covered by the ``minute_resolution`` tests below.
    """
    rng = np.random.default_rng(seed)
    popularity = 1.0 / np.arange(1, n_items + 1) ** 1.1
    popularity /= popularity.sum()
    rows: list[tuple[str, str, str, int]] = []  # user, item, event type, microseconds after START
    rare = 0
    for u in range(n_users):
        user = f"u{rng.integers(10**6):06d}-{u}"
        clock = int(rng.integers(0, 20 * 86_400)) * 1_000_000
        short = rng.random() < 0.1  # one or two events only
        n_sessions = 1 if short else int(rng.integers(1, 6))
        for _ in range(n_sessions):
            n_steps = int(rng.integers(1, 3)) if short else int(rng.geometric(0.15))
            for _ in range(min(n_steps, 2) if short else n_steps):
                if rng.random() < 0.04:
                    item, rare = f"rare{rare}", rare + 1
                elif rows and rows[-1][0] == user and rng.random() < 0.1:
                    item = rows[-1][1]  # the same item again, after a pause
                else:
                    item = f"i{rng.choice(n_items, p=popularity)}"
                funnel = ["view"]
                for event_type in ("click", "add_to_cart", "purchase"):
                    if short or rng.random() > 0.35:
                        break
                    funnel.append(event_type)
                if rng.random() < 0.03:
                    funnel = ["rating"]
                for event_type in funnel:
                    rows.append((user, item, event_type, clock))
                    clock += int(rng.exponential(40)) * 1_000_000 + int(rng.integers(1, 1_000_000))
                clock += int(rng.exponential(120)) * 1_000_000 + int(rng.integers(1, 1_000_000))
            clock += int(rng.uniform(0.6, 72) * 3_600) * 1_000_000  # a gap that opens a new session
    order = rng.permutation(len(rows))  # logs arrive in no particular order
    events = pl.DataFrame({
        "user_id": [rows[i][0] for i in order],
        "item_id": [rows[i][1] for i in order],
        "event_type": [rows[i][2] for i in order],
        "timestamp": pl.Series([START + timedelta(microseconds=rows[i][3]) for i in order],
                               dtype=pl.Datetime("us")),
        "weight": pl.Series(rng.choice([1.0, 0.5, 2.0], size=len(rows)), dtype=pl.Float32),
    })
    catalog_ids = [f"i{k}" for k in range(0, n_items + 20, 2)] + ["rare0", "rare1"]  # cold items, kept rares
    n = len(catalog_ids)
    catalog = pl.DataFrame({
        "item_id": catalog_ids, "category": ["shoes", "hats"] * (n // 2) + ["hats"] * (n % 2),
        "brand": ["acme"] * n, "title": [f"Item {k}" for k in range(n)],
        "price": pl.Series(rng.uniform(1, 100, n), dtype=pl.Float64),
        "created_at": pl.Series([START] * n, dtype=pl.Datetime("us")),
    })
    return events, catalog


def run_both(events: pl.DataFrame, catalog: pl.DataFrame | None, config: WorkflowConfig,
             tmp_path: Path) -> tuple[Path, Path, dict, dict]:
    polars_dir, pandas_dir = tmp_path / "polars", tmp_path / "pandas"
    manifest = preprocess(RawDataset("log", events, catalog), polars_dir, config, progress=False)
    counts = preprocess_pandas(events.to_pandas(), None if catalog is None else catalog.to_pandas(), config,
                               pandas_dir)
    return polars_dir, pandas_dir, manifest, counts


def read_pair(polars_dir: Path, pandas_dir: Path, name: str) -> tuple[pl.DataFrame, pl.DataFrame]:
    return pl.read_parquet(polars_dir / f"{name}.parquet"), pl.read_parquet(pandas_dir / f"{name}.parquet")


def per_user(frame: pl.DataFrame, columns: list[str]) -> dict:
    return {row["user_id"]: tuple(tuple(row[c]) if isinstance(row[c], list) else row[c] for c in columns)
            for row in frame.iter_rows(named=True)}


def assert_same_tables(polars_dir: Path, pandas_dir: Path) -> None:
    for split in ("train", "valid", "test"):
        a, b = read_pair(polars_dir, pandas_dir, f"events_{split}")
        assert a.height == b.height, split
        a, b = (f.select(pl.col(c).cast(t) for c, t in EVENT_TYPED.items()) for f in (a, b))
        assert a.equals(b), split  # same rows in the same (user, time) order
    a, b = read_pair(polars_dir, pandas_dir, "sequences_train")
    assert a["user_id"].to_list() == b["user_id"].to_list()
    columns = ["user_idx", "item_seq", "timestamps", "length"]
    assert per_user(a, columns) == per_user(b, columns)
    for name in ("eval_valid", "eval_test"):
        a, b = read_pair(polars_dir, pandas_dir, name)
        assert a["user_id"].to_list() == b["user_id"].to_list(), name
        assert per_user(a, ["user_idx", "history", "targets"]) == per_user(b, ["user_idx", "history", "targets"])
    a, b = read_pair(polars_dir, pandas_dir, "item_stats")
    assert a["item_idx"].to_list() == b["item_idx"].to_list()
    for column in [*STAT_COUNTS, "first_seen", "last_seen"]:
        assert a[column].cast(b[column].dtype).to_list() == b[column].to_list(), column
    for column in ("popularity", "recent_popularity"):
        np.testing.assert_allclose(a[column].to_numpy(), b[column].to_numpy(), rtol=1e-5, err_msg=column)
    a, b = read_pair(polars_dir, pandas_dir, "cooccurrence")
    assert a.height == b.height
    assert set(a.iter_rows()) == set(b.iter_rows())


def test_matches_the_polars_pipeline_on_the_hand_made_shop(tmp_path):
    polars_dir, pandas_dir, manifest, counts = run_both(SHOP, CATALOG, WorkflowConfig(), tmp_path)
    assert counts == {name: manifest.counts[name] for name in counts}
    assert counts["valid_users"] == counts["test_users"] == 2
    assert_same_tables(polars_dir, pandas_dir)


def test_matches_the_polars_pipeline_without_a_catalog_or_collapsing(tmp_path):
    config = WorkflowConfig(collapse_repeats=False, cooccurrence_window=1, max_sequence_length=2)
    polars_dir, pandas_dir, manifest, counts = run_both(SHOP, None, config, tmp_path)
    assert counts == {name: manifest.counts[name] for name in counts}
    assert_same_tables(polars_dir, pandas_dir)


@pytest.mark.parametrize("seed", [0, 1])
def test_matches_the_polars_pipeline_on_a_random_realistic_log(seed, tmp_path):
    events, catalog = random_log(seed)
    polars_dir, pandas_dir, manifest, counts = run_both(events, catalog, CONFIG, tmp_path)
    # The log exercises what the comparison must cover.
    assert events.height > 2_000
    assert manifest.dropped["all_events_on_oov_items"] > 0
    train = pl.read_parquet(polars_dir / "events_train.parquet")
    assert (train["user_idx"] == 1).sum() > 0  # OOV users, kept apart by their raw id
    assert train["session_id"].n_unique() > 2 * train["user_id"].n_unique()
    assert train.select(pl.col("item_idx").diff().over("user_id") == 0).to_series().sum() > 100  # funnels
    stats = pl.read_parquet(polars_dir / "item_stats.parquet")
    assert 0 < stats["recent_events"].sum() < stats["events"].sum()
    assert (pl.read_parquet(polars_dir / "sequences_train.parquet")["length"] > 12).any()  # truncation
    neighbours = pl.read_parquet(polars_dir / "cooccurrence.parquet").group_by("kind", "item_a").len()
    assert neighbours["len"].max() == 4  # top-k cuts
    assert counts == {name: manifest.counts[name] for name in counts}
    assert_same_tables(polars_dir, pandas_dir)


def minute_resolution_log(seed: int) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The random log with timestamps truncated to the minute, as many real logs store them: a user's
    funnel steps and quick clicks then share a timestamp, and only the input order separates them."""
    events, catalog = random_log(seed)
    return events.with_columns(pl.col("timestamp").dt.truncate("1m")), catalog


def test_pandas_test_history_is_the_train_steps_then_the_valid_step_with_simultaneous_events(tmp_path):
    events, catalog = minute_resolution_log(0)
    config = replace(CONFIG, max_sequence_length=200)
    counts = preprocess_pandas(events.to_pandas(), catalog.to_pandas(), config, tmp_path)
    sequences = per_user(pl.read_parquet(tmp_path / "sequences_train.parquet"), ["item_seq"])
    valid = per_user(pl.read_parquet(tmp_path / "eval_valid.parquet"), ["targets"])
    test = per_user(pl.read_parquet(tmp_path / "eval_test.parquet"), ["history"])
    assert len(test) == counts["test_users"] > 50
    for user, (history,) in test.items():
        assert history == sequences[user][0] + valid[user][0], user


@pytest.mark.parametrize("collapse_repeats", [True, False])
def test_matches_the_polars_pipeline_on_a_minute_resolution_log(collapse_repeats, tmp_path):
    # Regression guard: the test history once came from an unstable polars sort of train + valid,
    # which reordered simultaneous events (fixed with maintain_order=True in pipeline.preprocess).
    events, catalog = minute_resolution_log(1)
    config = replace(CONFIG, collapse_repeats=collapse_repeats)
    polars_dir, pandas_dir, manifest, counts = run_both(events, catalog, config, tmp_path)
    assert counts == {name: manifest.counts[name] for name in counts}
    assert_same_tables(polars_dir, pandas_dir)
