"""The fitted preprocessing workflow: fit on training data, save, reload, apply to new data.

Like an NVTabular ``Workflow``, the spec (:class:`~recstack.preprocessing.config.WorkflowConfig`) says what to
compute, :meth:`Workflow.fit` learns the statistics that need data (vocabularies, price buckets,
the reference time) and :meth:`Workflow.transform` applies them to any events. The spec knows
nothing about the engine: transforms are polars lazy plans run by :mod:`recstack.preprocessing.engine`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import polars as pl
from recstack.preprocessing.config import WorkflowConfig
from recstack.preprocessing.engine import collect
from recstack.preprocessing.schema import EVENT_TYPES
from recstack.preprocessing.sequences import group_starts, rank_in_group
from recstack.preprocessing.vocabulary import OOV, PAD, Vocabulary, value_counts

FORMAT_VERSION = 1
VOCABULARIES = ("user_id", "item_id", "category", "brand", "title_token")


def title_tokens(expr: pl.Expr) -> pl.Expr:
    """Lower-case alphanumeric words of a title."""
    return expr.str.to_lowercase().str.extract_all(r"[a-z0-9]+")


@dataclass
class Workflow:
    """Fit/transform preprocessing of interaction logs and item metadata.

    Examples
    --------
    >>> from recstack.preprocessing.datasets import load_dataset
    >>> data = load_dataset("synthetic", n_events=10_000, seed=0)
    >>> wf = Workflow(WorkflowConfig()).fit(data.events, data.items)
    >>> encoded = wf.transform(data.events)
    >>> {"user_idx", "item_idx", "session_id", "weight"} <= set(encoded.columns)
    True
    """

    config: WorkflowConfig
    vocabularies: dict[str, Vocabulary] | None = None
    price_edges: list[float] | None = None
    start_time: datetime | None = None
    reference_time: datetime | None = None
    engine: str = "cpu"

    @property
    def is_fitted(self) -> bool:
        return self.vocabularies is not None

    def _require_fitted(self) -> None:
        if not self.is_fitted:
            raise RuntimeError("the workflow is not fitted: call fit() or Workflow.load() first")

    def fit(self, events: pl.DataFrame | pl.LazyFrame, items: pl.DataFrame | None = None) -> Workflow:
        """Learn vocabularies, price buckets and the time range from fitting data.

        Items listed in ``items`` always get an id, even without events (cold start). The events are only
        aggregated, on the workflow's engine: with ``streaming`` a lazy scan may be larger than memory.
        """
        plan = events.lazy()
        span = plan.select(pl.col("timestamp").min().alias("first"), pl.col("timestamp").max().alias("last"))
        first, last = collect(span, self.engine).row(0)
        return self.fit_counts(collect(value_counts(plan, "user_id"), self.engine),
                               collect(value_counts(plan, "item_id"), self.engine), first, last, items)

    def fit_counts(self, user_counts: pl.DataFrame, item_counts: pl.DataFrame, first: datetime, last: datetime,
                   items: pl.DataFrame | None = None) -> Workflow:
        """:meth:`fit` from the events' :func:`~recstack.preprocessing.vocabulary.value_counts` of ``user_id``
        and ``item_id`` and their first and last timestamps."""
        if user_counts.height == 0:
            raise ValueError("cannot fit the workflow on zero events")
        cfg = self.config
        catalog = None if items is None else items["item_id"]
        vocabs = {
            "user_id": Vocabulary.from_counts("user_id", user_counts, cfg.min_user_count),
            "item_id": Vocabulary.from_counts("item_id", item_counts, cfg.min_item_count, always_keep=catalog),
        }
        empty = pl.Series([], dtype=pl.String)
        has_items = items is not None
        vocabs["category"] = Vocabulary.fit("category", items["category"] if has_items else empty)
        vocabs["brand"] = Vocabulary.fit("brand", items["brand"] if has_items else empty)
        tokens = (items.select(title_tokens(pl.col("title")).explode())["title"] if has_items else empty)
        vocabs["title_token"] = Vocabulary.fit("title_token", tokens, cfg.min_token_count)
        self.vocabularies = vocabs
        self.price_edges = self._fit_price_edges(items)
        self.start_time = first
        self.reference_time = last
        return self

    def extend(self, events: pl.DataFrame, items: pl.DataFrame | None = None) -> Workflow:
        """A copy fitted incrementally on ``events`` (old and new): every known user, item, category, brand and
        title token keeps its index and new ones are appended (:meth:`Vocabulary.extend`), so models trained on
        this workflow grow their tables instead of starting over. The time origin and price buckets stay; the
        reference time moves to the newest event.

        Examples
        --------
        >>> from recstack.preprocessing.datasets import load_dataset
        >>> data = load_dataset("synthetic", n_events=10_000, seed=0)
        >>> old = Workflow(WorkflowConfig()).fit(data.events.head(5_000), data.items)
        >>> new = old.extend(data.events, data.items)
        >>> def moved(name):  # known values whose index changed
        ...     a, b = (w.vocabularies[name].table.select("raw", "index") for w in (old, new))
        ...     return a.join(b, on="raw").filter(pl.col("index") != pl.col("index_right")).height
        >>> moved("user_id"), moved("item_id"), new.vocabularies["user_id"].size > old.vocabularies["user_id"].size
        (0, 0, True)
        """
        self._require_fitted()
        cfg, old = self.config, self.vocabularies
        has_items = items is not None
        empty = pl.Series([], dtype=pl.String)
        vocabs = {
            "user_id": old["user_id"].extend(events["user_id"], cfg.min_user_count),
            "item_id": old["item_id"].extend(events["item_id"], cfg.min_item_count,
                                             always_keep=items["item_id"] if has_items else None),
            "category": old["category"].extend(items["category"] if has_items else empty),
            "brand": old["brand"].extend(items["brand"] if has_items else empty),
            "title_token": old["title_token"].extend(
                items.select(title_tokens(pl.col("title")).explode())["title"] if has_items else empty,
                cfg.min_token_count),
        }
        return Workflow(cfg, vocabs, self.price_edges, self.start_time,
                        max(self.reference_time, events["timestamp"].max()), self.engine)

    def _fit_price_edges(self, items: pl.DataFrame | None) -> list[float]:
        if items is None or items["price"].null_count() == items.height:
            return []
        prices = items["price"].drop_nulls()
        qs = [i / self.config.price_buckets for i in range(1, self.config.price_buckets)]
        return sorted({float(prices.quantile(q, "linear")) for q in qs})

    # -- transform --------------------------------------------------------------------------------
    def transform_plan(self, events: pl.LazyFrame | pl.DataFrame) -> pl.LazyFrame:
        """Lazy plan: ids encoded, event weights, time features and sessions, sorted by user and time."""
        self._require_fitted()
        cfg = self.config
        plan = events.lazy().with_row_index("_order")
        plan = self.vocabularies["user_id"].encode_plan(plan, "user_id", "user_idx")
        plan = self.vocabularies["item_id"].encode_plan(plan, "item_id", "item_idx")
        type_weight = pl.col("event_type").replace_strict(cfg.event_weights, return_dtype=pl.Float32)
        new_user = group_starts("user_id")
        new_session = new_user | (pl.col("timestamp").diff() > pl.duration(seconds=cfg.session_gap_minutes * 60))
        return (
            # user_id breaks ties because users unknown to the workflow share the OOV user_idx.
            plan.sort(["user_idx", "user_id", "timestamp", "_order"])
            .with_columns(
                pl.col("event_type").replace_strict(
                    {t: i for i, t in enumerate(EVENT_TYPES)}, return_dtype=pl.UInt8).alias("event_code"),
                (pl.col("weight") * type_weight).alias("weight"),
                pl.col("timestamp").dt.hour().cast(pl.UInt8).alias("hour"),
                pl.col("timestamp").dt.weekday().cast(pl.UInt8).alias("weekday"),
                ((pl.col("timestamp") - pl.lit(self.start_time)).dt.total_seconds() / 86_400)
                .cast(pl.Float32).alias("day"),
                new_session.alias("_new_session"),
            )
            # Each user's events are contiguous, so a cumulative sum of "new session" flags numbers
            # sessions globally.
            .with_columns(pl.col("_new_session").cum_sum().cast(pl.UInt32).alias("session_id"),
                          rank_in_group(pl.col("_new_session")).alias("session_position"))
            .drop("_new_session", "_order")
        )

    def transform(self, events: pl.LazyFrame | pl.DataFrame) -> pl.DataFrame:
        """Encode events (see :meth:`transform_plan`) on the workflow's engine."""
        return collect(self.transform_plan(events), self.engine)

    def item_features(self, items: pl.DataFrame | None) -> pl.DataFrame:
        """The item tower's feature table: one row per item index (PAD and OOV rows included).

        Columns: ``item_idx, item_id, category_idx, brand_idx, price_bucket, title_tokens, created_at,
        age_days`` (age at the reference time; null when unknown). Missing metadata gives ``PAD`` (0).
        """
        self._require_fitted()
        vocab = self.vocabularies["item_id"].table.select(
            pl.col("index").alias("item_idx"), pl.col("raw").alias("item_id"))
        specials = pl.DataFrame({"item_idx": [PAD, OOV], "item_id": [None, None]},
                                schema={"item_idx": pl.UInt32, "item_id": pl.String})
        frame = pl.concat([specials, vocab]).lazy()
        if items is not None:
            frame = frame.join(items.lazy(), on="item_id", how="left", maintain_order="left")
        else:
            frame = frame.with_columns(
                pl.lit(None, pl.String).alias("category"), pl.lit(None, pl.String).alias("brand"),
                pl.lit(None, pl.String).alias("title"), pl.lit(None, pl.Float64).alias("price"),
                pl.lit(None, pl.Datetime("us")).alias("created_at"))
        return self._encode_items(frame)

    def encode_new_items(self, items: pl.DataFrame, first_index: int) -> pl.DataFrame:
        """Feature rows, like :meth:`item_features`, for items added to the catalog after fitting: they get
        indices from ``first_index`` on, in the order given, and unknown categories, brands or title tokens read
        as OOV. ``items`` holds ``item_id`` and any of ``category, brand, title, price, created_at``.
        """
        self._require_fitted()
        frame = items.with_row_index("item_idx", offset=first_index).with_columns(pl.col("item_idx").cast(pl.UInt32))
        for column, dtype in (("category", pl.String), ("brand", pl.String), ("title", pl.String),
                              ("price", pl.Float64), ("created_at", pl.Datetime("us"))):
            frame = frame.with_columns((pl.col(column) if column in frame.columns else pl.lit(None)).cast(dtype)
                                       .alias(column))
        return self._encode_items(frame.lazy())

    def _encode_items(self, frame: pl.LazyFrame) -> pl.DataFrame:
        for column in ("category", "brand"):
            frame = self.vocabularies[column].encode_plan(frame, column, f"{column}_idx").with_columns(
                pl.when(pl.col(column).is_null()).then(PAD).otherwise(pl.col(f"{column}_idx"))
                .cast(pl.UInt32).alias(f"{column}_idx"))
        token_vocab = self.vocabularies["title_token"]
        tokens = (frame.select("item_idx", title_tokens(pl.col("title")).list.head(self.config.title_max_tokens)
                               .alias("token")).explode("token").drop_nulls("token"))
        tokens = (token_vocab.encode_plan(tokens, "token", "token_idx")
                  .group_by("item_idx", maintain_order=True).agg(pl.col("token_idx").alias("title_tokens")))
        # Bucket b (from 1) holds prices with b - 1 edges at or below them.
        edges = pl.lit(pl.Series(self.price_edges or [float("inf")], dtype=pl.Float64))
        bucket = edges.search_sorted(pl.col("price"), side="right").cast(pl.UInt8) + 1
        frame = (frame.join(tokens, on="item_idx", how="left", maintain_order="left")
                 .with_columns(
                     pl.col("title_tokens").fill_null(pl.lit([], pl.List(pl.UInt32))),
                     pl.when(pl.col("price").is_null()).then(PAD).otherwise(bucket).cast(pl.UInt8)
                     .alias("price_bucket"),
                     ((pl.lit(self.reference_time) - pl.col("created_at")).dt.total_seconds() / 86_400)
                     .cast(pl.Float32).alias("age_days"),
                 ))
        return collect(frame.select("item_idx", "item_id", "category_idx", "brand_idx", "price_bucket",
                                    "title_tokens", "title", "price", "created_at", "age_days"),
                       self.engine).sort("item_idx")

    # -- persistence ------------------------------------------------------------------------------
    def save(self, folder: Path) -> Path:
        """Write ``workflow.json`` and one parquet file per vocabulary into ``folder``."""
        self._require_fitted()
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        for vocab in self.vocabularies.values():
            vocab.save(folder)
        state = {
            "format_version": FORMAT_VERSION,
            "config": self.config.to_json(),
            "price_edges": self.price_edges,
            "start_time": self.start_time.isoformat(),
            "reference_time": self.reference_time.isoformat(),
            "vocabulary_sizes": {name: v.size for name, v in self.vocabularies.items()},
        }
        (folder / "workflow.json").write_text(json.dumps(state, indent=2))
        return folder

    @classmethod
    def load(cls, folder: Path, engine: str = "cpu") -> Workflow:
        folder = Path(folder)
        path = folder / "workflow.json"
        if not path.exists():
            raise FileNotFoundError(f"{path}: no saved workflow here (run `recstack preprocess` first)")
        state = json.loads(path.read_text())
        if state.get("format_version") != FORMAT_VERSION:
            raise ValueError(f"{path}: workflow format {state.get('format_version')} is not {FORMAT_VERSION}; "
                             "preprocess the data again")
        return cls(
            config=WorkflowConfig(**state["config"]),
            vocabularies={name: Vocabulary.load(folder, name) for name in VOCABULARIES},
            price_edges=state["price_edges"],
            start_time=datetime.fromisoformat(state["start_time"]),
            reference_time=datetime.fromisoformat(state["reference_time"]),
            engine=engine,
        )
