"""The synthetic shop: exact schema, determinism and the statistical shape models learn from."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime, timedelta

import numpy as np
import polars as pl
import pytest
from recstack.preprocessing.datasets import load_dataset
from recstack.preprocessing.datasets.synthetic import (
    FUNNEL_EVENT_TYPES,
    SyntheticConfig,
    generate_synthetic,
    synthetic_conversion,
    synthetic_successors,
)
from recstack.preprocessing.schema import EVENT_COLUMNS, ITEM_COLUMNS, RawDataset

CONFIG = SyntheticConfig(n_events=50_000, seed=7)


@pytest.fixture(scope="module")
def dataset() -> RawDataset:
    return generate_synthetic(CONFIG)


@pytest.fixture(scope="module")
def views(dataset) -> pl.DataFrame:
    return dataset.events.filter(pl.col("event_type") == "view")


def session_pairs(views: pl.DataFrame, config: SyntheticConfig) -> pl.DataFrame:
    """Consecutive views of the same session (split at the configured gap) on different items."""
    gap = timedelta(minutes=config.session_gap_minutes)
    ordered = views.sort("user_id", "timestamp", maintain_order=True).with_columns(
        prev=pl.col("item_id").shift().over("user_id"),
        since_prev=(pl.col("timestamp") - pl.col("timestamp").shift()).over("user_id"),
    )
    return ordered.filter(pl.col("prev").is_not_null() & (pl.col("since_prev") < gap)
                          & (pl.col("prev") != pl.col("item_id")))


def test_same_seed_same_data_other_seed_other_data():
    config = SyntheticConfig(n_events=10_000, seed=3)
    first, again = generate_synthetic(config), generate_synthetic(SyntheticConfig(n_events=10_000, seed=3))
    assert first.events.equals(again.events)
    assert first.items.equals(again.items)
    other = generate_synthetic(SyntheticConfig(n_events=10_000, seed=4))
    assert not first.events.equals(other.events)
    assert not first.items.equals(other.items)


def test_load_dataset_passes_options_through():
    loaded = load_dataset("synthetic", n_events=10_000, seed=3)
    assert loaded.events.equals(generate_synthetic(SyntheticConfig(n_events=10_000, seed=3)).events)


@pytest.mark.parametrize("options", [
    {"n_events": 10_000},
    {"n_events": 50_000, "seed": 1},
    {"n_events": 200_000},
    {"n_events": 30_000, "n_users": 300, "n_items": 5_000},
    {"n_events": 30_000, "mean_session_views": 2.0, "p_click": 0.6, "p_add_to_cart": 0.5},
    {"n_events": 20_000, "weeks": 1, "new_user_share": 0.8},
])
def test_event_total_close_to_target(options):
    events = generate_synthetic(SyntheticConfig(**options)).events
    assert abs(events.height / options["n_events"] - 1) < 0.15


def test_schema_is_exact(dataset):
    assert dataset.name == "synthetic"
    assert dataset.has_timestamps is True
    assert list(dataset.events.schema.items()) == list(EVENT_COLUMNS.items())
    assert list(dataset.items.schema.items()) == list(ITEM_COLUMNS.items())
    assert dataset.events.null_count().row(0) == (0,) * len(EVENT_COLUMNS)
    assert dataset.items.null_count().row(0) == (0,) * len(ITEM_COLUMNS)


def test_events_sorted_with_well_formed_values(dataset):
    events = dataset.events
    assert events.equals(events.sort("timestamp", "user_id", maintain_order=True))
    assert set(events["event_type"].unique()) == set(FUNNEL_EVENT_TYPES)
    assert events["user_id"].str.contains(r"^u\d{7}$").all()
    assert events["item_id"].str.contains(r"^i\d{7}$").all()
    assert (events["weight"] == 1.0).all()
    assert events["item_id"].is_in(dataset.items["item_id"].implode()).all()


def test_timestamps_inside_window(dataset):
    timestamps = dataset.events["timestamp"]
    assert timestamps.min() >= CONFIG.start
    assert timestamps.max() < CONFIG.end
    # Activity covers the whole window rather than bunching up.
    weeks = ((timestamps - CONFIG.start).dt.total_days() // 7).value_counts()
    assert weeks.height == CONFIG.weeks
    assert weeks["count"].min() > 0.5 * weeks["count"].max()


def test_items_table(dataset):
    items = dataset.items
    assert items.height == CONFIG.item_count == 1_250
    assert items["item_id"].is_unique().all()
    assert items["item_id"].is_sorted()
    assert items["created_at"].is_sorted()  # ids follow listing order
    assert items["category"].n_unique() == CONFIG.n_categories
    assert items["category"].str.contains("/").all()
    assert (items["price"] > 0).all()
    assert (items["price"].round(2) == items["price"]).all()
    assert all(title.startswith(brand + " ") for title, brand in items.select("title", "brand").iter_rows())
    # Prices depend on the category: category medians spread over an order of magnitude.
    medians = items.group_by("category").agg(pl.col("price").median())["price"]
    assert medians.max() / medians.min() > 10


def test_popularity_is_heavy_tailed(views):
    counts = np.sort(views["item_id"].value_counts()["count"].to_numpy())[::-1]
    top_share = counts[: CONFIG.item_count // 10].sum() / counts.sum()
    assert top_share > 0.4
    ranks = np.arange(1, counts.size + 1)
    head = slice(0, counts.size // 2)
    slope = np.polyfit(np.log(ranks[head]), np.log(counts[head]), 1)[0]
    assert -1.5 < slope < -0.5


def test_popularity_is_independent_of_id_order(dataset, views):
    old_items = dataset.items.filter(pl.col("created_at") < CONFIG.start)["item_id"]
    counts = (pl.DataFrame({"item_id": old_items})
              .join(views.group_by("item_id").len(), on="item_id", how="left").fill_null(0))
    id_rank = counts["item_id"].rank().to_numpy()
    popularity_rank = counts["len"].rank().to_numpy()
    assert abs(np.corrcoef(id_rank, popularity_rank)[0, 1]) < 0.15


def test_users_concentrate_on_few_categories(dataset, views):
    per_user = (views.join(dataset.items.select("item_id", "category"), on="item_id")
                .group_by("user_id", "category").len()
                .group_by("user_id").agg(top_share=pl.col("len").max() / pl.col("len").sum(),
                                         n_views=pl.col("len").sum())
                .filter(pl.col("n_views") >= 10))
    assert per_user.height > 500
    assert per_user["top_share"].mean() > 10 / CONFIG.n_categories


def test_successors_stay_in_category_and_form_a_permutation(dataset):
    successors = synthetic_successors(CONFIG)
    assert successors["item_id"].equals(dataset.items["item_id"])
    assert successors["successor_id"].is_unique().all()
    assert (successors["item_id"] != successors["successor_id"]).all()
    category = dict(dataset.items.select("item_id", "category").iter_rows())
    assert all(category[a] == category[b] for a, b in successors.iter_rows())


def test_sequential_pattern_is_far_above_chance(views):
    successors = synthetic_successors(CONFIG)
    pairs = session_pairs(views, CONFIG).join(successors, left_on="prev", right_on="item_id")
    assert pairs.height > 10_000
    hit_rate = (pairs["item_id"] == pairs["successor_id"]).mean()
    # Chance: the popularity share of the successor, i.e. what a random view would match.
    share = views.group_by("item_id").len().select(
        successor_id="item_id", share=pl.col("len") / pl.col("len").sum())
    chance = pairs.join(share, on="successor_id", how="left")["share"].fill_null(0.0).mean()
    assert hit_rate > 0.35
    assert hit_rate > 20 * chance


def test_sequential_strength_zero_removes_the_pattern():
    config = SyntheticConfig(n_events=30_000, seed=7, sequential_strength=0.0)
    views = generate_synthetic(config).events.filter(pl.col("event_type") == "view")
    successors = synthetic_successors(config)
    pairs = session_pairs(views, config).join(successors, left_on="prev", right_on="item_id")
    assert (pairs["item_id"] == pairs["successor_id"]).mean() < 0.1


def test_next_item_from_previous_item_beats_popularity(views):
    """A first-order model fitted on the first 80% of the window beats most-popular on the rest."""
    cut = CONFIG.start + 0.8 * (CONFIG.end - CONFIG.start)
    pairs = session_pairs(views, CONFIG)
    train, test = pairs.filter(pl.col("timestamp") < cut), pairs.filter(pl.col("timestamp") >= cut)
    most_frequent_next = (train.group_by("prev", "item_id").len()
                          .sort("len", "item_id", descending=[True, False])
                          .unique("prev", keep="first", maintain_order=True)
                          .select("prev", predicted="item_id"))
    sequential = (test.join(most_frequent_next, on="prev", how="left")
                  .select((pl.col("predicted") == pl.col("item_id")).fill_null(False).mean()).item())
    most_popular = views.filter(pl.col("timestamp") < cut)["item_id"].mode().sort()[0]
    popular = (test["item_id"] == most_popular).mean()
    assert sequential > 0.25
    assert sequential > 4 * popular


def test_funnel_ratios_match_config(dataset):
    counts = dict(dataset.events["event_type"].value_counts().iter_rows())
    assert counts["click"] / counts["view"] == pytest.approx(CONFIG.p_click, abs=0.03)
    assert counts["add_to_cart"] / counts["click"] == pytest.approx(CONFIG.p_add_to_cart, abs=0.03)
    assert counts["purchase"] / counts["add_to_cart"] == pytest.approx(CONFIG.p_purchase, abs=0.05)


@pytest.mark.parametrize(("step", "previous"), [("click", "view"), ("add_to_cart", "click"),
                                                ("purchase", "add_to_cart")])
def test_each_funnel_step_follows_the_previous_within_seconds(dataset, step, previous):
    events = dataset.events
    later = events.filter(pl.col("event_type") == step)
    earlier = events.filter(pl.col("event_type") == previous).with_columns(earlier_at=pl.col("timestamp"))
    matched = later.join_asof(earlier.select("user_id", "item_id", "timestamp", "earlier_at"),
                              on="timestamp", by=["user_id", "item_id"], strategy="backward",
                              allow_exact_matches=False, check_sortedness=False)
    assert matched["earlier_at"].null_count() == 0
    delay = (matched["timestamp"] - matched["earlier_at"]).dt.total_seconds(fractional=True)
    assert delay.min() >= 1.0
    assert delay.max() <= 60.0


def test_sessions_have_short_inner_gaps_and_long_outer_gaps(dataset):
    gaps = (dataset.events.sort("user_id", "timestamp", maintain_order=True)
            .select((pl.col("timestamp") - pl.col("timestamp").shift()).over("user_id").alias("gap"))
            ["gap"].drop_nulls().dt.total_seconds(fractional=True).to_numpy())
    session_gap = CONFIG.session_gap_minutes * 60
    inner, outer = gaps[gaps < session_gap], gaps[gaps >= session_gap]
    assert 2 <= np.median(inner) <= 120  # seconds to minutes inside a session
    assert inner.max() <= session_gap / 2 + 3 * 60  # never close to the session gap
    assert np.median(outer) > 3600  # hours to days between sessions
    n_users = dataset.events["user_id"].n_unique()
    sessions_per_user = (outer.size + n_users) / n_users
    assert 2 < sessions_per_user < 8


def test_no_event_before_its_item_is_listed_and_new_items_get_events(dataset):
    events = dataset.events.join(dataset.items.select("item_id", "created_at"), on="item_id")
    assert (events["timestamp"] >= events["created_at"]).all()
    new_items = dataset.items.filter(pl.col("created_at") >= CONFIG.start)
    assert new_items.height / dataset.items.height == pytest.approx(CONFIG.new_item_share, abs=0.01)
    assert events.filter(pl.col("created_at") >= CONFIG.start)["item_id"].n_unique() > 0.5 * new_items.height


def test_new_users_join_during_the_window(dataset):
    first_seen = dataset.events.group_by("user_id").agg(pl.col("timestamp").min())
    late = first_seen.filter(pl.col("timestamp") >= CONFIG.end - timedelta(weeks=2))
    assert late.height > 0.05 * first_seen.height
    # Newcomers have the highest ids, in sign-up order, and their first event is at sign-up.
    first_newcomer = CONFIG.user_count - round(CONFIG.user_count * CONFIG.new_user_share)
    newcomers = first_seen.filter(pl.col("user_id") >= f"u{first_newcomer:07d}").sort("user_id")
    assert newcomers.height == pytest.approx(CONFIG.user_count * CONFIG.new_user_share, rel=0.05)
    assert newcomers["timestamp"].is_sorted()
    assert newcomers["timestamp"].min() < CONFIG.start + timedelta(days=2)
    assert newcomers["timestamp"].max() > CONFIG.end - timedelta(days=2)


def test_derived_sizes():
    assert (SyntheticConfig().item_count, SyntheticConfig().user_count) == (5_000, 8_000)
    assert SyntheticConfig(n_events=1_000).item_count == 200
    assert SyntheticConfig(n_events=100_000_000).item_count == 1_000_000
    assert SyntheticConfig(n_events=10_000, n_items=777, n_users=55).item_count == 777
    assert SyntheticConfig(weeks=2).end == SyntheticConfig().start + timedelta(weeks=2)


@pytest.mark.parametrize(("options", "message"), [
    ({"n_events": 10}, "n_events"),
    ({"n_events": 1e6}, "n_events"),
    ({"n_items": 50}, "at least 2 per category"),
    ({"n_users": 0}, "n_users"),
    ({"n_categories": 0}, "n_categories"),
    ({"n_brands": 0}, "n_brands"),
    ({"weeks": 0}, "weeks"),
    ({"seed": -1}, "seed"),
    ({"start": datetime.fromisoformat("2026-01-05T00:00:00+00:00")}, "naive"),
    ({"zipf_exponent": -1.0}, "zipf_exponent"),
    ({"sequential_strength": 1.5}, "sequential_strength"),
    ({"p_purchase": float("nan")}, "p_purchase"),
    ({"new_item_share": 0.95}, "new_item_share"),
    ({"new_user_share": 1.0}, "new_user_share"),
    ({"session_gap_minutes": 1}, "session_gap_minutes"),
    ({"mean_session_views": 0.5}, "mean_session_views"),
])
def test_invalid_config_is_rejected(options, message):
    with pytest.raises(ValueError, match=message):
        SyntheticConfig(**options)


_SCALE_SCRIPT = """
import json, resource, time
from recstack.preprocessing.datasets.synthetic import SyntheticConfig, generate_synthetic
began = time.perf_counter()
ds = generate_synthetic(SyntheticConfig(n_events=2_000_000, n_items=200_000))
seconds = time.perf_counter() - began
peak_rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"seconds": seconds, "peak_rss_mib": peak_rss_mib,
                  "events": ds.events.height, "items": ds.items.height,
                  "items_with_events": ds.events["item_id"].n_unique()}))
"""


@pytest.mark.slow
def test_two_million_events_fit_in_modest_memory():
    """Runs in its own process so the peak RSS is the generator's alone."""
    result = subprocess.run([sys.executable, "-c", _SCALE_SCRIPT], capture_output=True, text=True, check=True)
    stats = json.loads(result.stdout.strip().splitlines()[-1])
    print(f"\n2M events / 200k items: {stats['seconds']:.2f} s, peak RSS {stats['peak_rss_mib']:.0f} MiB")
    assert abs(stats["events"] / 2_000_000 - 1) < 0.15
    assert stats["items"] == 200_000
    assert stats["items_with_events"] > 100_000
    assert stats["peak_rss_mib"] < 2_048


def test_item_dependent_funnel_follows_each_items_conversion_shift():
    config = SyntheticConfig(n_events=40_000, seed=5, conversion_spread=1.5, price_sensitivity=1.0)
    events = generate_synthetic(config).events
    shift = synthetic_conversion(config)
    per_item = (events.group_by("item_id").agg((pl.col("event_type") == "view").sum().alias("views"),
                                               (pl.col("event_type") == "purchase").sum().alias("purchases"))
                .filter(pl.col("views") >= 20).join(shift, on="item_id"))
    rate = per_item["purchases"] / per_item["views"]
    assert np.corrcoef(rate.to_numpy(), per_item["conversion_shift"].to_numpy())[0, 1] > 0.5
    assert (synthetic_conversion(SyntheticConfig(n_events=10_000, seed=5))["conversion_shift"] == 0).all()


def test_item_dependent_funnel_is_off_by_default():
    assert SyntheticConfig().conversion_spread == SyntheticConfig().price_sensitivity == 0.0
    with pytest.raises(ValueError, match="conversion_spread"):
        SyntheticConfig(conversion_spread=-1.0)
