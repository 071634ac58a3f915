"""Preprocessing of event files larger than memory, on polars' streaming engine (``recstack preprocess --dataset
events --streaming``); the outputs equal :func:`~recstack.preprocessing.pipeline.preprocess`'s on the same files.

Polars' streaming engine aggregates and sinks larger-than-memory scans, but (polars 2.1) neither its sort nor the
cumulative sums and shifts that number sessions and steps run out of core: they hold the whole table. So the
events are processed one chunk of whole users at a time, which is all those operations need:

1. the events are read and validated a batch at a time into parquet parts under ``.streaming/`` (CSV is parsed
   once);
2. the vocabularies, the time range and (temporal split) the cut-offs are fitted from streamed aggregations
   (value counts, min / max / quantiles);
3. the users are cut into chunks of about ``chunk_events`` events along the user index, the order of every
   output table; each chunk is read by a streamed filter, encoded, split and turned into sequences, evaluation
   sets and co-occurrence pair counts by the in-memory pipeline's own functions, its session ids numbered on
   from the chunk before, and written as parts;
4. each output table is its parts sunk into one file, in chunk order; item statistics and the top co-occurring
   neighbours are streamed aggregations of those files.

What is held in memory at once: one chunk (its events and the tables made from them), the vocabularies (one row
per user, item, category, brand and title token), the per-user event counts, the items table, the set of
event ids when reading the event log's folder, and the timestamp column for quantile cut-offs.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import polars as pl
from recstack.preprocessing.config import SplitConfig, WorkflowConfig
from recstack.preprocessing.datasets.events_files import read_items_file, validated_event_batches
from recstack.preprocessing.engine import STREAMING, collect
from recstack.preprocessing.item_stats import COOCCURRENCE_KINDS, item_popularity, pair_counts, top_neighbours
from recstack.preprocessing.layout import Manifest, PreparedLayout
from recstack.preprocessing.pipeline import encode_and_split, fingerprint, user_tables
from recstack.preprocessing.splits import SPLITS, check_temporal_split, cutoff_record, temporal_cutoffs
from recstack.preprocessing.tombstones import forgotten
from recstack.preprocessing.vocabulary import OOV, Vocabulary, value_counts
from recstack.preprocessing.workflow import Workflow
from tqdm.auto import tqdm

CHUNK_EVENTS = 2_000_000  # events per chunk of users: ~1 GB of peak memory with the default workflow
STAGING = ".streaming"  # parts written while preprocessing, under the output folder; removed at the end
PAIRS = "pairs"  # the staged co-occurrence pair counts


def stage_events(events_path: Path, folder: Path) -> pl.LazyFrame:
    """Validate the events a batch at a time into parquet parts under ``folder``; a scan of them."""
    folder.mkdir(parents=True)
    for i, batch in enumerate(validated_event_batches(events_path)):
        batch.write_parquet(folder / f"{i:06d}.parquet")
    return pl.scan_parquet(sorted(folder.glob("*.parquet")))


def user_chunks(users: Vocabulary, user_counts: pl.DataFrame, chunk_events: int) -> list[pl.Series]:
    """The raw user ids of each chunk, in user index order: about ``chunk_events`` events a chunk, never
    splitting one index (the users out of the vocabulary share the OOV index, so they share a chunk)."""
    indexed = user_counts.join(users.table.select("raw", "index"), on="raw", how="left").with_columns(
        pl.col("index").fill_null(OOV))
    per_index = (indexed.group_by("index").agg(pl.col("count").sum()).sort("index")
                 .with_columns(((pl.col("count").cum_sum() - pl.col("count")) // chunk_events).alias("chunk")))
    chunked = indexed.join(per_index.select("index", "chunk"), on="index").sort("chunk")
    return [frame["raw"] for frame in chunked.partition_by("chunk", maintain_order=True)]


def item_ranges(pairs: pl.LazyFrame, chunk_rows: int) -> list[tuple[int, int]]:
    """(first, last) ``item_a`` of consecutive ranges holding about ``chunk_rows`` co-occurrence pair rows each:
    the pair counts of every item at once can outgrow the events, so neighbours are ranked a range at a time."""
    per_item = (collect(pairs.group_by("item_a").agg(pl.len().alias("rows")), STREAMING).sort("item_a")
                .with_columns(((pl.col("rows").cum_sum() - pl.col("rows")) // chunk_rows).alias("chunk")))
    ranges = per_item.group_by("chunk").agg(pl.col("item_a").min().alias("first"),
                                            pl.col("item_a").max().alias("last")).sort("chunk")
    return list(ranges.select("first", "last").iter_rows())


def chunked_configs(chunk_events: int, workflow: WorkflowConfig | None,
                    split: SplitConfig | None) -> tuple[WorkflowConfig, SplitConfig]:
    """The configs of a run by chunks of users (defaults for None), once ``chunk_events`` is checked."""
    if chunk_events < 1:
        raise ValueError(f"chunk_events must be at least 1; got {chunk_events}")
    return workflow or WorkflowConfig(), split or SplitConfig()


def fresh_staging(output_dir: Path, name: str) -> tuple[PreparedLayout, Path]:
    """The output folder's layout (folder created) and an empty staging folder ``name`` under it for the chunks'
    parts (a run cut short leaves its parts behind; they are removed here)."""
    layout = PreparedLayout(output_dir)
    staging = layout.root / name
    shutil.rmtree(staging, ignore_errors=True)
    layout.root.mkdir(parents=True, exist_ok=True)
    return layout, staging


def part_name(chunk: int) -> str:
    """The file name of a chunk's part of a staged table: parts sort in chunk order."""
    return f"{chunk:06d}.parquet"


def stage_chunk(wf: Workflow, chunk: pl.DataFrame, cutoffs: tuple[datetime, datetime] | None, staging: Path,
                number: int, dropped: dict[str, int], sessions: dict[str, int], engine: str = "cpu") -> None:
    """Encode and split one chunk of whole users' events and write its part of every per-user table and its
    co-occurrence pair counts under ``staging``, by the in-memory pipeline's own functions. Session ids are numbered
    on from ``sessions`` (by split label), which this updates, as it adds to ``dropped``."""
    layout = PreparedLayout(staging)
    parts, history = encode_and_split(wf, chunk, cutoffs, engine, dropped, sessions)
    tables = {**{layout.events(name).name: parts[name] for name in SPLITS},
              **user_tables(parts, history, layout, wf.config, engine),
              PAIRS: collect(pair_counts(parts["train"].lazy(), wf.config.cooccurrence_window), engine)}
    for name, frame in tables.items():
        (staging / name).mkdir(parents=True, exist_ok=True)
        frame.write_parquet(staging / name / part_name(number))


def _sink_parts(folder: Path, path: Path, session_offsets: dict[str, int] | None) -> None:
    """The parts of ``folder``, in chunk order, into one file at ``path``; ``session_offsets`` (part name → number)
    are added to the parts' session ids, numbered from 0 in each part when chunks ran apart."""
    parts = sorted(folder.glob("*.parquet"))
    if session_offsets is None:
        pl.scan_parquet(parts).sink_parquet(path)
        return
    pl.concat([pl.scan_parquet(part).with_columns(pl.col("session_id") + pl.lit(session_offsets[part.name],
                                                                                 pl.UInt32))
               for part in parts]).sink_parquet(path)


def assemble(layout: PreparedLayout, staging: Path, wf: Workflow, items: pl.DataFrame | None, chunk_rows: int,
             session_offsets: dict[str, dict[str, int]] | None = None) -> dict[str, dict]:
    """Write every table of the layout from the chunks' parts under ``staging`` (:func:`stage_chunk`) and the
    fitted workflow; return the file records of the manifest. Item statistics and the top co-occurring neighbours
    are streamed aggregations, the neighbours ranked a range of about ``chunk_rows`` pair rows at a time.
    ``session_offsets``: per events table name, what to add to each part's session ids (None: numbered on already).
    """
    config = wf.config
    written = [*(layout.events(name) for name in SPLITS), layout.sequences_train, layout.eval_valid, layout.eval_test]
    for path in written:
        _sink_parts(staging / path.name, path, None if session_offsets is None else session_offsets.get(path.name))
    train = pl.scan_parquet(layout.events("train"))
    wf.item_features(items).write_parquet(layout.items)
    collect(item_popularity(train, wf.reference_time, config.recent_days), STREAMING).write_parquet(layout.item_stats)
    pairs = pl.scan_parquet(sorted((staging / PAIRS).glob("*.parquet")))
    top = staging / "top_neighbours"
    top.mkdir()
    # Without any pair, one empty range still writes the file with its schema.
    for i, (first, last) in enumerate(item_ranges(pairs, chunk_rows) or [(0, 0)]):
        # All of an item's pairs, from every chunk of users, are in its range: their sums are whole.
        best = collect(top_neighbours(pairs.filter(pl.col("item_a").is_between(first, last)),
                                      config.cooccurrence_top_k), STREAMING)
        for k, kind in enumerate(COOCCURRENCE_KINDS):  # the file lists one kind after the other
            best.filter(pl.col("kind") == kind).write_parquet(top / f"{k}-{i:06d}.parquet")
    pl.scan_parquet(sorted(top.glob("*.parquet"))).sink_parquet(layout.cooccurrence)
    wf.save(layout.workflow)
    return {path.name: _file_record(path) for path in (*written, layout.items, layout.item_stats, layout.cooccurrence)}


def write_manifest(partial: Manifest, layout: PreparedLayout, wf: Workflow, user_counts: pl.DataFrame,
                   raw_items: int, items: pl.DataFrame | None) -> Manifest:
    """``partial`` (the run's own fields: dataset, fingerprint, engine, split, dropped, seconds, files) completed
    with the counts, configs and vocabulary sizes, written as the layout's manifest."""
    files = partial.files
    manifest = replace(
        partial,
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
        has_timestamps=True,
        polars_version=pl.__version__,
        workflow=wf.config.to_json(),
        counts={
            "raw_events": int(user_counts["count"].sum()),
            "raw_users": user_counts.height,
            "raw_items": raw_items,
            "catalog_items": 0 if items is None else items.height,
            **{f"{name}_events": files[layout.events(name).name]["rows"] for name in SPLITS},
            "train_users": files[layout.sequences_train.name]["rows"],
            "valid_users": files[layout.eval_valid.name]["rows"],
            "test_users": files[layout.eval_test.name]["rows"],
            "cooccurrence_pairs": files[layout.cooccurrence.name]["rows"],
        },
        vocabulary_sizes={name: v.size for name, v in wf.vocabularies.items()},
    )
    layout.manifest.write_text(json.dumps(manifest.to_json(), indent=2))
    return manifest


def _file_record(path: Path) -> dict:
    scan = pl.scan_parquet(path)
    return {"rows": scan.select(pl.len()).collect().item(),
            "schema": {name: str(dtype) for name, dtype in scan.collect_schema().items()}}


def preprocess_streaming(events_path: Path, items_path: Path | None, output_dir: Path,
                         workflow: WorkflowConfig | None = None, split: SplitConfig | None = None,
                         progress: bool = True, tombstones: frozenset[str] = frozenset(),
                         chunk_events: int = CHUNK_EVENTS) -> Manifest:
    """:func:`~recstack.preprocessing.pipeline.preprocess` of an events file or the event log's folder (and an
    optional items file), never holding more than one chunk of about ``chunk_events`` events.

    Examples
    --------
    >>> from recstack.preprocessing.datasets import load_dataset
    >>> data = load_dataset("synthetic", n_events=10_000, seed=0)
    >>> data.events.write_parquet("shop.parquet")
    >>> manifest = preprocess_streaming(Path("shop.parquet"), None, Path("build/doctest/streamed"),
    ...                                 progress=False, chunk_events=3_000)
    >>> manifest.engine, manifest.counts["raw_events"] == data.events.height
    ('streaming', True)
    """
    workflow, split = chunked_configs(chunk_events, workflow, split)
    events_path = Path(events_path)
    layout, staging = fresh_staging(output_dir, STAGING)
    started = time.perf_counter()
    try:
        with tqdm(total=5, desc=f"preprocess {events_path.stem} (streaming)", disable=not progress,
                  unit="step") as bar:
            events = stage_events(events_path, staging / "events")
            items = read_items_file(items_path)
            bar.update(1)
            dropped: dict[str, int] = {}
            user_counts = collect(value_counts(events, "user_id"), STREAMING)
            gone = forgotten(user_counts["raw"].to_list(), tombstones)
            if gone:
                events = events.filter(~pl.col("user_id").is_in(sorted(gone)))
                user_counts = user_counts.filter(~pl.col("raw").is_in(sorted(gone)))
                dropped["forgotten_users"] = len(gone)
            cutoffs, cutoff_text, fit_events = None, {}, events
            if split.strategy == "temporal":
                cutoffs = temporal_cutoffs(events, split, STREAMING)
                ts = pl.col("timestamp")
                train_n, test_n = collect(events.select((ts < cutoffs[0]).sum().alias("train"),
                                                        (ts >= cutoffs[1]).sum().alias("test")),
                                          STREAMING).row(0)
                check_temporal_split(train_n, test_n, *cutoffs)
                cutoff_text = cutoff_record(*cutoffs)
                fit_events = events.filter(ts < cutoffs[0])
            wf = Workflow(workflow, engine=STREAMING).fit(fit_events, items)
            bar.update(1)

            sessions: dict[str, int] = {}
            chunks = user_chunks(wf.vocabularies["user_id"], user_counts, chunk_events)
            for i, users in enumerate(tqdm(chunks, desc="chunks of users", disable=not progress, leave=False)):
                chunk = collect(events.filter(pl.col("user_id").is_in(users.implode())), STREAMING)
                stage_chunk(wf, chunk, cutoffs, staging, i, dropped, sessions)
            bar.update(1)

            files = assemble(layout, staging, wf, items, chunk_events)
            bar.update(1)

            raw_items = collect(events.select(pl.col("item_id").n_unique()), STREAMING).item()
            frames = [events] + ([] if items is None else [items.lazy()])
            manifest = write_manifest(Manifest(
                dataset=events_path.stem,
                fingerprint=fingerprint(events_path.stem, frames),
                engine=STREAMING,
                split={**split.to_json(), **cutoff_text},
                dropped=dropped,
                seconds=round(time.perf_counter() - started, 3),
                files=files,
            ), layout, wf, user_counts, raw_items, items)
            bar.update(1)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return manifest
