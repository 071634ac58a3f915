"""Incremental preprocessing: a prepared dataset extended with newer events (the event log) and items, without
moving any known user or item to another index, so the models trained on it can grow instead of starting over
and the facade's item indices stay valid for every published version.

A prepared folder is its own lineage: its ``events_{train,valid,test}.parquet`` hold every event it was built
from (events on items no model knows were dropped there), so the next version reads them back in the generic
schema, adds the log's events it does not hold yet and extends the workflow it was fitted with.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import polars as pl
from recstack.preprocessing.engine import EngineName
from recstack.preprocessing.layout import Manifest, PreparedLayout
from recstack.preprocessing.pipeline import preprocess
from recstack.preprocessing.schema import EVENT_COLUMNS, ITEM_COLUMNS, RawDataset
from recstack.preprocessing.splits import SPLITS
from recstack.preprocessing.tombstones import forgotten
from recstack.preprocessing.workflow import Workflow

# Two events alike in all of these are one event seen twice (the log keeps each once by event_id, but the
# prepared files do not carry that id).
EVENT_KEY = ("user_id", "item_id", "event_type", "timestamp")


def prepared_events(data_dir: str | Path) -> pl.DataFrame:
    """Every event of a prepared folder in the generic events schema (the raw ``weight``: the prepared one
    divided by its event type's weight again)."""
    layout = PreparedLayout(data_dir)
    type_weights = layout.read_manifest().workflow["event_weights"]
    frame = pl.concat([pl.read_parquet(layout.events(split), columns=list(EVENT_COLUMNS)) for split in SPLITS])
    type_weight = pl.col("event_type").replace_strict(type_weights, default=1.0, return_dtype=pl.Float32)
    return frame.with_columns(
        pl.when(type_weight > 0).then(pl.col("weight") / type_weight).otherwise(1.0).cast(pl.Float32)
        .alias("weight"))


def prepared_items(data_dir: str | Path) -> pl.DataFrame:
    """The catalog of a prepared folder in the generic items schema (categories and brands decoded)."""
    layout = PreparedLayout(data_dir)
    items = pl.read_parquet(layout.items).drop_nulls("item_id")
    for column in ("category", "brand"):
        names = pl.read_parquet(layout.vocabulary(column)).select(
            pl.col("index").alias(f"{column}_idx"), pl.col("raw").alias(column))
        items = items.join(names, on=f"{column}_idx", how="left", maintain_order="left")
    return items.select([pl.col(name).cast(dtype) for name, dtype in ITEM_COLUMNS.items()])


def unseen_events(known: pl.DataFrame, log: pl.DataFrame) -> pl.DataFrame:
    """The events of ``log`` that ``known`` does not hold, in the generic schema, each once (a client that sent
    an event again, with its own timestamp, sent one event)."""
    log = log.select([pl.col(name).cast(dtype) for name, dtype in EVENT_COLUMNS.items()])
    return (log.join(known.select(EVENT_KEY).unique(), on=list(EVENT_KEY), how="anti", nulls_equal=True)
            .unique(subset=list(EVENT_KEY), keep="first", maintain_order=True))


@dataclass(frozen=True)
class Extension:
    manifest: Manifest
    new_events: pl.DataFrame  # the events the base folder did not hold
    new_items: int  # items appended to the item vocabulary


def extend_prepared(base_dir: str | Path, log: pl.DataFrame, added_items: pl.DataFrame | None, out: str | Path,
                    engine: EngineName = "auto", progress: bool = False,
                    tombstones: frozenset[str] = frozenset()) -> Extension:
    """Write to ``out`` the prepared layout of ``base_dir``'s events plus those of ``log`` it lacks, with the
    catalog plus ``added_items`` (the facade's items added through the API, in the order it numbered them), on
    ``base_dir``'s workflow extended (:meth:`Workflow.extend`): every index of the base stays.

    Examples
    --------
    >>> from recstack.preprocessing.datasets import load_dataset
    >>> data = load_dataset("synthetic", n_events=10_000, seed=0)
    >>> first = data.events.sort("timestamp").head(8_000)
    >>> _ = preprocess(RawDataset("shop", first, data.items), Path("build/doctest/v1"), progress=False)
    >>> ext = extend_prepared("build/doctest/v1", data.events, None, "build/doctest/v2")
    >>> ext.new_events.height == data.events.height - 8_000, ext.manifest.counts["raw_events"] == data.events.height
    (True, True)
    """
    base = PreparedLayout(base_dir)
    manifest = base.read_manifest()
    if manifest.split.get("strategy", "leave_one_out") != "leave_one_out":
        raise ValueError(f"{base_dir} was split {manifest.split['strategy']}ly: incremental preprocessing holds out "
                         "each user's newest steps (leave_one_out); prepare the served version with "
                         "--split leave_one_out")
    known = prepared_events(base_dir)
    # A forgotten user's events may still reach the log (sent before, or again after, the deletion): they are
    # never prepared, so they must not count as new in every round.
    gone = forgotten(log["user_id"].unique().to_list(), tombstones)
    new = unseen_events(known, log.filter(~pl.col("user_id").is_in(sorted(gone))) if gone else log)
    items = prepared_items(base_dir)
    if added_items is not None and added_items.height:
        extra = added_items.select([(pl.col(name) if name in added_items.columns else pl.lit(None)).cast(dtype)
                                    .alias(name) for name, dtype in ITEM_COLUMNS.items()])
        items = pl.concat([items, extra.join(items.select("item_id"), on="item_id", how="anti")])
    dataset = RawDataset(manifest.dataset, pl.concat([known, new]), items, manifest.has_timestamps)
    workflow = Workflow.load(base.workflow)
    extended = preprocess(dataset, Path(out), engine=engine, progress=progress, tombstones=tombstones,
                          base=workflow)
    return Extension(extended, new, extended.n_items - manifest.n_items)
