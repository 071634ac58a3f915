"""Small hand-written event logs whose every split and statistic can be worked out by hand."""

from __future__ import annotations

from datetime import datetime, timedelta

import polars as pl

T0 = datetime(2024, 3, 1, 9, 0)


def events(rows: list[tuple[str, str, str, float]]) -> pl.DataFrame:
    """Rows of (user, item, event_type, minutes after T0) in the generic schema."""
    return pl.DataFrame({
        "user_id": [r[0] for r in rows],
        "item_id": [r[1] for r in rows],
        "event_type": [r[2] for r in rows],
        "timestamp": [T0 + timedelta(minutes=r[3]) for r in rows],
        "weight": pl.Series([1.0] * len(rows), dtype=pl.Float32),
    })


def items(rows: list[tuple[str, str, str, float | None, str]]) -> pl.DataFrame:
    """Rows of (item, category, brand, price, title)."""
    return pl.DataFrame({
        "item_id": [r[0] for r in rows],
        "category": [r[1] for r in rows],
        "brand": [r[2] for r in rows],
        "title": [r[4] for r in rows],
        "price": pl.Series([r[3] for r in rows], dtype=pl.Float64),
        "created_at": pl.Series([T0 - timedelta(days=10)] * len(rows), dtype=pl.Datetime("us")),
    })


# Alice: a funnel on "shoe" (one step when repeats collapse), then hat, then sock, then a new session.
# Bob: two steps only (stays entirely in train under leave-one-out). Carol: three steps.
SHOP = events([
    ("alice", "shoe", "view", 0), ("alice", "shoe", "add_to_cart", 1), ("alice", "shoe", "purchase", 2),
    ("alice", "hat", "view", 5), ("alice", "sock", "view", 6),
    ("alice", "belt", "view", 200), ("alice", "hat", "purchase", 201),
    ("bob", "hat", "view", 10), ("bob", "shoe", "click", 11),
    ("carol", "sock", "view", 20), ("carol", "hat", "add_to_cart", 21), ("carol", "shoe", "add_to_cart", 22),
])
CATALOG = items([
    ("shoe", "footwear", "acme", 50.0, "Acme Running Shoe"),
    ("hat", "headwear", "acme", 20.0, "Acme Sun Hat"),
    ("sock", "footwear", "knit", 5.0, "Knit Running Sock"),
    ("belt", "accessories", "knit", 30.0, "Knit Leather Belt"),
    ("scarf", "accessories", "knit", None, "Knit Wool Scarf"),  # in the catalog, never interacted with
])
