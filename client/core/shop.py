"""What the facade knows of the shop from the prepared dataset: raw ids ↔ item indices, titles and categories,
each known user's history, and popularity for the fallback lists."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl
from recstack.preprocessing.layout import PreparedLayout
from recstack.preprocessing.vocabulary import FIRST_INDEX


@dataclass
class Shop:
    """Loaded once at start-up (:meth:`load`)."""

    item_ids: list[str | None]  # by item index
    titles: list[str]
    categories: list[str]
    index_of_item: dict[str, int]
    histories: dict[str, np.ndarray]  # user id -> item indices, oldest first
    trained_users: set[str]  # users with training events (the rest of histories are in validation or test only)
    trained_events: np.ndarray  # training events per item index (0: never seen); items added since lie past it
    popular: np.ndarray  # every item index, most popular first (recent, event-type weighted)
    age_days: np.ndarray  # by item index; NaN when unknown
    event_weights: dict[str, float]

    @classmethod
    def load(cls, data_dir: str | Path, ingest_file: str | Path | None = None) -> Shop:
        """Read a prepared dataset folder (:mod:`recstack.preprocessing.pipeline` layout), plus the items added since
        through the API (``ingest_file``)."""
        layout = PreparedLayout(data_dir)
        if not layout.exists():
            raise FileNotFoundError(f"no prepared dataset in {data_dir}: run `recstack preprocess` first")
        items = pl.read_parquet(layout.items).sort("item_idx")
        names = pl.read_parquet(layout.vocabulary("category"))
        items = items.join(names.select(pl.col("index").alias("category_idx"), pl.col("raw").alias("category")),
                           on="category_idx", how="left", maintain_order="left")
        item_ids = items["item_id"].to_list()
        titles = [t or i or "" for t, i in zip(items["title"].to_list() if "title" in items.columns
                                               else item_ids, item_ids, strict=True)]
        histories: dict[str, np.ndarray] = {}
        train = pl.read_parquet(layout.sequences_train, columns=["user_id", "item_seq"])
        for user, seq in train.iter_rows():
            histories[user] = np.asarray(seq, dtype=np.int64)
        trained_users = set(histories)
        # The evaluation rows hold the whole known sequence: history plus the held-out items.
        full = pl.read_parquet(layout.eval_test, columns=["user_id", "history", "targets"])
        for user, history, targets in full.iter_rows():
            histories[user] = np.asarray(list(history) + list(targets), dtype=np.int64)
        stats = pl.read_parquet(layout.item_stats, columns=["item_idx", "recent_popularity", "events"])
        trained_events = np.zeros(max(items.height, stats["item_idx"].max() + 1 if stats.height else 0))
        trained_events[stats["item_idx"].to_numpy()] = stats["events"].to_numpy()
        # Every catalog item, so a category never runs dry: popular ones first, never-seen ones last.
        popular = (items.select("item_idx").filter(pl.col("item_idx") >= FIRST_INDEX)
                   .join(stats, on="item_idx", how="left").fill_null(0)
                   .sort(["recent_popularity", "events", "item_idx"], descending=[True, True, False]))
        shop = cls(item_ids=item_ids, titles=titles, categories=[c or "" for c in items["category"].to_list()],
                   index_of_item={item: i for i, item in enumerate(item_ids) if item is not None},
                   histories=histories, trained_users=trained_users, trained_events=trained_events,
                   popular=popular["item_idx"].to_numpy().astype(np.int64),
                   age_days=(items["age_days"].cast(pl.Float64).fill_null(np.nan).to_numpy()
                             if "age_days" in items.columns else np.full(items.height, np.nan)),
                   event_weights=dict(layout.read_manifest().workflow["event_weights"]))
        if ingest_file is not None and Path(ingest_file).exists():
            from recstack.ensemble.new_items import read_new_items

            added = read_new_items(ingest_file).filter(~pl.col("item_id").is_in(list(shop.index_of_item)))
            shop.add_items(added.to_dicts())
        return shop

    def add_items(self, rows: list[dict]) -> list[int]:
        """Items added after the dataset (``item_id`` and optional ``title``, ``category``): they take the next
        indices, in order (the order ``build-repo --new-items`` assigns), and count as brand new."""
        indices = []
        for row in rows:
            index = len(self.item_ids)
            self.item_ids.append(row["item_id"])
            self.titles.append(row.get("title") or row["item_id"])
            self.categories.append(row.get("category") or "")
            self.index_of_item[row["item_id"]] = index
            indices.append(index)
        self.popular = np.concatenate([self.popular, np.asarray(indices, dtype=np.int64)])
        self.age_days = np.concatenate([self.age_days, np.zeros(len(indices))])
        return indices

    def forget(self, user_ids: list[str]) -> int:
        """Drop the users' known histories from memory; returns how many were known."""
        for user in user_ids:
            self.trained_users.discard(user)
        return sum(self.histories.pop(user, None) is not None for user in user_ids)

    def new_items(self, freshness_days: float) -> list[int]:
        """Items created within ``freshness_days`` of the dataset's end, newest first."""
        fresh = np.flatnonzero(self.age_days <= freshness_days)
        fresh = fresh[np.argsort(self.age_days[fresh], kind="stable")]
        return [int(i) for i in fresh if self.item_ids[i] is not None]

    @property
    def category_names(self) -> set[str]:
        return set(self.categories) - {""}

    def item_index(self, item_id: str) -> int | None:
        return self.index_of_item.get(item_id)

    def popular_items(self, limit: int, category: str = "", skip: set[int] = frozenset()) -> list[int]:
        chosen = []
        for item in self.popular:
            item = int(item)
            if item in skip or (category and self.categories[item] != category):
                continue
            chosen.append(item)
            if len(chosen) == limit:
                break
        return chosen
