"""Preprocessing on a Dask cluster (``recstack preprocess --dataset events --events PATH --engine dask``, with
``--workers N`` or ``--scheduler tcp://HOST:PORT``): partitioned parquet logs (the event log's
``date=YYYY-MM-DD/part-*.parquet``, or any folder of parquet files) are read a partition at a time and never
whole; the outputs equal :func:`~recstack.preprocessing.pipeline.preprocess`'s on the same files.

The data-sized work is Dask dataframe work over partitions, and each partition runs the polars pipeline's own
functions, so the engines cannot drift apart:

1. every parquet file (or run of its row groups) is one partition, read and validated by
   :func:`~recstack.preprocessing.schema.validate_events` and numbered by its rows' place in the input (the order
   that breaks ties of equal timestamps); the event log is deduplicated on ``event_id``;
2. the fitting aggregates (value counts of users and items, first and last timestamps, the row hashes of the
   fingerprint) are Dask reductions; the vocabularies, small, are fitted from them on the client;
3. the users are cut into chunks of about ``chunk_events`` events along the user index, as
   :mod:`~recstack.preprocessing.streaming` cuts them; a Dask shuffle (``set_index`` on the chunk number) puts
   each chunk's events in one partition, and a task per partition encodes, splits and turns it into sequences,
   evaluation sets and co-occurrence pair counts with :func:`~recstack.preprocessing.streaming.stage_chunk`,
   writing its parts; its session ids, numbered from 0, are moved on past the chunks before it when the parts
   are joined;
4. the client joins the parts and ranks the neighbours as the streaming path does
   (:func:`~recstack.preprocessing.streaming.assemble`).

With ``gpu`` the partitions are cuDF frames on ``dask-cuda`` workers (``dataframe.backend = "cudf"``) and each
partition's polars plans run on cudf-polars: the same code. Workers write their parts under the output folder,
so they must see it (one machine, or a shared filesystem), as batch scoring's workers do.
"""

from __future__ import annotations

import importlib.util
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from itertools import accumulate
from pathlib import Path

import dask
import dask.dataframe as dd
import pandas as pd
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
from recstack.preprocessing.config import SplitConfig, WorkflowConfig
from recstack.preprocessing.datasets.events_files import read_items_file
from recstack.preprocessing.layout import Manifest, PreparedLayout
from recstack.preprocessing.pipeline import fingerprint_of, row_hashes
from recstack.preprocessing.schema import (
    EVENT_COLUMNS,
    EVENT_TYPES,
    REQUIRED_EVENT_COLUMNS,
    InputError,
    validate_events,
)
from recstack.preprocessing.splits import SPLITS, check_temporal_split, cutoff_record, temporal_cutoffs
from recstack.preprocessing.streaming import (
    CHUNK_EVENTS,
    assemble,
    chunked_configs,
    fresh_staging,
    part_name,
    stage_chunk,
    user_chunks,
    write_manifest,
)
from recstack.preprocessing.tombstones import forgotten
from recstack.preprocessing.workflow import Workflow
from tqdm.auto import tqdm

from recstack.cluster import dask_client
from recstack.devices import Device, gpu_count, resolve

DASK = "dask"
STAGING = ".dask"  # the chunks' parts, under the output folder; removed at the end
PARTITION_ROWS = 1_000_000  # row groups of one file are read together up to about this many rows
ROW = "_row"  # an event's place in the input
CHUNK = "_chunk"  # the chunk of users an event belongs to


@dataclass(frozen=True)
class Segment:
    """Row groups of one parquet file, whose first row is ``first_row`` of the input and ``file_row`` of the file."""

    path: str
    row_groups: tuple[int, ...]
    first_row: int
    file_row: int = 0


Piece = tuple[Segment, ...]  # one partition of the input: consecutive segments (small files share one)


def parquet_files(events_path: Path) -> list[Path]:
    """The parquet files of an events path: the file itself, or every ``*.parquet`` under a folder (hidden ones,
    such as the event log's half-written parts, left out), in path order."""
    events_path = Path(events_path)
    if not events_path.exists():
        raise InputError(f"{events_path}: file or folder not found")
    if events_path.is_dir():
        files = sorted(p for p in events_path.rglob("*.parquet")
                       if not any(part.startswith(".") for part in p.relative_to(events_path).parts))
        if not files:
            raise InputError(f"{events_path}: no parquet files in this folder")
        return files
    if events_path.suffix.lower() != ".parquet":
        raise InputError(f"{events_path}: the dask engine reads parquet files or folders of them; for "
                         f"{events_path.suffix!r} use the polars engine (drop --engine dask)")
    return [events_path]


def pieces(files: list[Path], partition_rows: int = PARTITION_ROWS) -> list[Piece]:
    """Partitions of about ``partition_rows`` rows, in input order: whole row groups, of one file or of several
    small ones (the event log writes many); checks that every file has the required columns and that there is at
    least one row, from the files' metadata alone."""
    found: list[Piece] = []
    piece: list[Segment] = []
    first_row = piece_rows = 0
    for path in files:
        try:
            meta = pq.ParquetFile(path)
        except (pa.ArrowInvalid, OSError) as exc:
            raise InputError(f"{path}: cannot be read as parquet: {exc}") from exc
        missing = [c for c in REQUIRED_EVENT_COLUMNS if c not in meta.schema_arrow.names]
        if missing:
            raise InputError(f"{path}: missing column(s) {missing}; found {meta.schema_arrow.names} (required: "
                             f"{list(REQUIRED_EVENT_COLUMNS)}, optional: weight)")
        groups: list[int] = []
        rows = file_row = 0
        for g in range(meta.num_row_groups):
            groups.append(g)
            rows += meta.metadata.row_group(g).num_rows
            if piece_rows + rows >= partition_rows or g == meta.num_row_groups - 1:
                piece.append(Segment(str(path), tuple(groups), first_row, file_row))
                first_row += rows
                file_row += rows
                piece_rows += rows
                groups, rows = [], 0
            if piece_rows >= partition_rows:
                found.append(tuple(piece))
                piece, piece_rows = [], 0
    if piece:
        found.append(tuple(piece))
    if first_row == 0:
        raise InputError(f"{files[0].parent if len(files) > 1 else files[0]}: no events (the files are empty)")
    return found


def _schema(logged: bool) -> dict[str, pl.DataType]:
    return {**EVENT_COLUMNS, **({"event_id": pl.String()} if logged else {}), ROW: pl.Int64()}


def to_backend(frame: pl.DataFrame, gpu: bool):
    """A polars frame as a partition of the backend: cuDF on a GPU, pandas (Arrow-backed, so types survive the
    round trip) otherwise."""
    if gpu:
        import cudf

        return cudf.DataFrame.from_arrow(frame.to_arrow())
    return frame.to_pandas(use_pyarrow_extension_array=True)


def to_polars(part, schema: dict[str, pl.DataType]) -> pl.DataFrame:
    """A backend partition (or series of counts, reset to a frame) as polars, with ``schema``'s columns and types."""
    table = part.to_arrow() if hasattr(part, "to_arrow") else pa.Table.from_pandas(part, preserve_index=False)
    frame = pl.from_arrow(table)
    return frame.select([pl.col(name).cast(dtype) for name, dtype in schema.items()])


def _read_segment(segment: Segment, folder: bool) -> pl.DataFrame:
    """The validated events of one segment, with ``_row`` (and ``event_id`` where the file has it)."""
    raw = pl.from_arrow(pq.ParquetFile(segment.path).read_row_groups(list(segment.row_groups)))
    raw = raw.with_columns((pl.int_range(pl.len(), dtype=pl.Int64) + segment.first_row).alias(ROW))
    if folder:
        raw = raw.filter(pl.col("event_type").is_in(EVENT_TYPES))
    if raw.height == 0:
        return pl.DataFrame(schema={**EVENT_COLUMNS, ROW: pl.Int64()})
    events = validate_events(raw.drop(ROW, "event_id", strict=False),
                             f"{segment.path} (the rows from {segment.file_row + 1:,})", "parquet")
    return events.with_columns(raw.select(c for c in ("event_id", ROW) if c in raw.columns))


def read_piece(piece: Piece, folder: bool, logged: bool, gpu: bool):
    """One partition of the validated events: what :func:`~recstack.preprocessing.datasets.load_events_files`
    reads of these rows (a folder's impressions left out), plus ``event_id`` of the event log and ``_row``."""
    schema = _schema(logged)
    frames = [_read_segment(segment, folder) for segment in piece]
    return to_backend(pl.concat([frame.select(pl.col(c).cast(t) for c, t in schema.items() if c in frame.columns)
                                 for frame in frames if frame.height] or [pl.DataFrame(schema=schema)]), gpu)


def read_events(events_path: Path, gpu: bool = False, partition_rows: int = PARTITION_ROWS) -> dd.DataFrame:
    """The validated events of a parquet file or folder as a Dask dataframe (columns of ``EVENT_COLUMNS`` plus
    ``_row``), deduplicated on ``event_id`` where the files carry it (the event log), as the polars engine reads
    them."""
    events_path = Path(events_path)
    files = parquet_files(events_path)
    logged = all("event_id" in pq.read_schema(path).names for path in files)
    meta = to_backend(pl.DataFrame(schema=_schema(logged)), gpu)
    frame = dd.from_map(read_piece, pieces(files, partition_rows), folder=events_path.is_dir(), logged=logged,
                        gpu=gpu, meta=meta, label="read-events")
    if logged:
        # A batch written twice holds the same events: which copy stays changes nothing but its _row, and the
        # first is kept on the partitions' order.
        frame = frame.drop_duplicates(subset=["event_id"], keep="first").drop(columns="event_id")
    return frame


def _counts(series) -> pl.DataFrame:
    """A Dask ``value_counts`` result as :func:`~recstack.preprocessing.vocabulary.value_counts` gives it."""
    frame = series.rename("count").reset_index()
    frame.columns = ["raw", "count"]
    return to_polars(frame, {"raw": pl.String(), "count": pl.UInt64()})


def _moment(value) -> datetime:
    return pd.Timestamp(value).to_pydatetime()


def _fit_aggregates(events: dd.DataFrame) -> dict:
    # One partition of counts each: they go to the client whole anyway.
    return {"users": events["user_id"].value_counts(split_out=1), "items": events["item_id"].value_counts(split_out=1),
            "first": events["timestamp"].min(), "last": events["timestamp"].max()}


HASHES = {"rows": pl.Int64(), "total": pl.UInt64()}


def _hashes(part, gpu: bool):
    """The :func:`~recstack.preprocessing.pipeline.row_hashes` of a partition, as a one-row partition."""
    rows, total = row_hashes(to_polars(part, EVENT_COLUMNS))
    return to_backend(pl.DataFrame({"rows": [rows], "total": [total % 2**64]}, schema=HASHES), gpu)


def _summary(events: dd.DataFrame, temporal: bool, gpu: bool) -> dict:
    """One pass over the input: the fitting aggregates (and so the distinct items), the fingerprint's row hashes
    and, for a temporal split, the timestamps (exact quantiles need them all: one column, as the streaming path
    holds)."""
    meta = to_backend(pl.DataFrame(schema=HASHES), gpu)
    wanted = {**_fit_aggregates(events), "hashes": events.map_partitions(_hashes, gpu, meta=meta)}
    if temporal:
        wanted["timestamps"] = events["timestamp"]
    (computed,) = dask.compute(wanted)
    computed["hashes"] = to_polars(computed["hashes"], HASHES).rows()
    return computed


def _stage_partition(part, number: int, wf: Workflow, cutoffs: tuple[datetime, datetime] | None, staging: Path,
                     engine: str) -> tuple[int, dict[str, int], dict[str, int]]:
    """:func:`~recstack.preprocessing.streaming.stage_chunk` of one chunk's partition, its events back in input
    order; returns the chunk's number, dropped events and last session id of each split label."""
    chunk = to_polars(part, {**EVENT_COLUMNS, ROW: pl.Int64()}).sort(ROW).drop(ROW)
    dropped: dict[str, int] = {}
    sessions: dict[str, int] = {}
    if chunk.height:
        stage_chunk(wf, chunk, cutoffs, staging, number, dropped, sessions, engine)
    return number, dropped, sessions


def session_offsets(sessions: dict[int, dict[str, int]], temporal: bool) -> dict[str, dict[str, int]]:
    """Per events table, what to add to each chunk's part's session ids: the sessions of the chunks before it (of
    the table's split, or of all events for leave-one-out, whose splits share one numbering).

    Examples
    --------
    >>> session_offsets({0: {"all": 3}, 1: {"all": 2}, 2: {"all": 4}}, temporal=False)["events_test.parquet"]
    {'000000.parquet': 0, '000001.parquet': 3, '000002.parquet': 5}
    """
    layout = PreparedLayout(Path())
    numbers = sorted(sessions)
    offsets = {}
    for name in SPLITS:
        label = name if temporal else "all"
        before = accumulate((sessions[n].get(label, 0) for n in numbers[:-1]), initial=0)
        offsets[layout.events(name).name] = {part_name(n): first for n, first in zip(numbers, before, strict=True)}
    return offsets


def dask_gpu_available() -> bool:
    """True when dask-cudf and dask-cuda are installed and a CUDA GPU is visible."""
    return all(importlib.util.find_spec(m) is not None for m in ("dask_cudf", "dask_cuda")) and gpu_count() > 0


def resolve_dask_device(device: Device = "auto") -> bool:
    """Whether the dask engine runs on cuDF: ``auto`` when a GPU and dask-cudf are there, ``gpu`` requires them."""
    try:
        return resolve(device, available=device != "cpu" and dask_gpu_available()) == "gpu"
    except RuntimeError as exc:
        raise RuntimeError(f"{exc}: the dask engine on the GPU needs dask-cudf, dask-cuda and a CUDA GPU (install "
                           "recstack[gpu] on a GPU host)") from exc


def _completed(futures: list, progress: bool) -> Iterator:
    from distributed import as_completed

    with tqdm(total=len(futures), desc="chunks of users", disable=not progress, leave=False) as bar:
        for future in as_completed(futures):
            bar.update(1)
            yield future.result()


def preprocess_dask(events_path: Path, items_path: Path | None, output_dir: Path,
                    workflow: WorkflowConfig | None = None, split: SplitConfig | None = None,
                    workers: int | None = None, scheduler: str | None = None, device: Device = "auto",
                    progress: bool = True, tombstones: frozenset[str] = frozenset(),
                    chunk_events: int = CHUNK_EVENTS, partition_rows: int = PARTITION_ROWS) -> Manifest:
    """:func:`~recstack.preprocessing.pipeline.preprocess` of a parquet events file or folder (and an optional items
    file) on the Dask cluster at ``scheduler``, or on a local one of ``workers`` processes.

    Examples
    --------
    >>> from recstack.preprocessing.datasets import load_dataset
    >>> data = load_dataset("synthetic", n_events=10_000, seed=0)
    >>> data.events.write_parquet("shop.parquet", row_group_size=2_000)
    >>> manifest = preprocess_dask(Path("shop.parquet"), None, Path("build/doctest/dask"), workers=1,
    ...                            device="cpu", progress=False, chunk_events=3_000)
    >>> manifest.engine, manifest.counts["raw_events"] == data.events.height
    ('dask', True)
    """
    workflow, split = chunked_configs(chunk_events, workflow, split)
    events_path = Path(events_path)
    gpu = resolve_dask_device(device)
    engine = "gpu" if gpu else "cpu"
    temporal = split.strategy == "temporal"
    layout, staging = fresh_staging(output_dir, STAGING)
    started = time.perf_counter()
    backend = {"dataframe.backend": "cudf" if gpu else "pandas"}
    try:
        with dask.config.set(backend), dask_client(workers, scheduler, gpu=gpu) as client, \
                tqdm(total=5, desc=f"preprocess {events_path.stem} (dask)", disable=not progress, unit="step") as bar:
            events = read_events(events_path, gpu, partition_rows)
            items = read_items_file(items_path)
            summary = _summary(events, temporal, gpu)
            user_counts = _counts(summary["users"])
            dropped: dict[str, int] = {}
            gone = forgotten(user_counts["raw"].to_list(), tombstones)
            if gone:
                events = events[~events["user_id"].isin(sorted(gone))]
                summary = _summary(events, temporal, gpu)
                user_counts = _counts(summary["users"])
                dropped["forgotten_users"] = len(gone)
            if user_counts.height == 0:
                raise InputError(f"{events_path}: no events left to preprocess")
            bar.update(1)

            cutoffs, cutoff_text, fitting = None, {}, summary
            if temporal:
                timestamps = pl.DataFrame({"timestamp": to_polars(summary["timestamps"].to_frame(),
                                                                  {"timestamp": EVENT_COLUMNS["timestamp"]})})
                cutoffs = temporal_cutoffs(timestamps, split)
                ts = timestamps["timestamp"]
                check_temporal_split(int((ts < cutoffs[0]).sum()), int((ts >= cutoffs[1]).sum()), *cutoffs)
                cutoff_text = cutoff_record(*cutoffs)
                (fitting,) = dask.compute(_fit_aggregates(events[events["timestamp"] < cutoffs[0]]))
            wf = Workflow(workflow, engine=engine).fit_counts(
                _counts(fitting["users"]), _counts(fitting["items"]), _moment(fitting["first"]),
                _moment(fitting["last"]), items)
            bar.update(1)

            chunks = user_chunks(wf.vocabularies["user_id"], user_counts, chunk_events)
            chunk_of = pl.concat([pl.DataFrame({"user_id": users, CHUNK: pl.Series([i] * len(users), dtype=pl.Int64)})
                                  for i, users in enumerate(chunks)])
            by_chunk = (events.merge(to_backend(chunk_of, gpu), on="user_id", how="inner")
                        .set_index(CHUNK, divisions=list(range(len(chunks) + 1))))
            shared = dask.delayed(wf, pure=True)
            tasks = [dask.delayed(_stage_partition)(part, i, shared, cutoffs, staging, engine)
                     for i, part in enumerate(by_chunk.to_delayed())]
            sessions: dict[int, dict[str, int]] = {}
            for number, chunk_dropped, chunk_sessions in _completed(client.compute(tasks), progress):
                sessions[number] = chunk_sessions
                for key, n in chunk_dropped.items():
                    dropped[key] = dropped.get(key, 0) + n
            bar.update(1)

            files = assemble(layout, staging, wf, items, chunk_events, session_offsets(sessions, temporal))
            bar.update(1)
            tables = [(list(EVENT_COLUMNS), summary["hashes"])]
            if items is not None:
                tables.append((items.columns, [row_hashes(items)]))
            manifest = write_manifest(Manifest(
                dataset=events_path.stem,
                fingerprint=fingerprint_of(events_path.stem, tables),
                engine=DASK if not gpu else "dask-cudf",
                split={**split.to_json(), **cutoff_text},
                dropped=dropped,
                seconds=round(time.perf_counter() - started, 3),
                files=files,
            ), layout, wf, user_counts, len(summary["items"]), items)
            bar.update(1)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return manifest
