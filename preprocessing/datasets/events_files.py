"""Your own logs: an events file (and optionally an items file) already in the generic schema."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import polars as pl
from recstack.preprocessing.lake import PART_GLOB, read_lake_events
from recstack.preprocessing.schema import (
    EVENT_TYPES,
    InputError,
    RawDataset,
    read_table,
    validate_events,
    validate_items,
)


def load_events_files(events_path: Path, items_path: Path | None = None) -> RawDataset:
    """Read and strictly validate user-supplied events and item metadata.

    Parameters
    ----------
    events_path : Path
        ``.csv``, ``.tsv`` or ``.parquet`` (or a folder of ``date=*/part-*.parquet``, the event log of
        :mod:`recstack.preprocessing.lake`) with columns ``user_id, item_id, event_type, timestamp`` and
        optionally ``weight`` (see :mod:`recstack.preprocessing.schema`).
    items_path : Path, optional
        Same file types, column ``item_id`` (unique) and optionally ``category, brand, title, price,
        created_at``. Events may reference items absent from it: those items simply have no metadata.

    Returns
    -------
    RawDataset
        Named after the events file's stem, ``has_timestamps=True``.

    Raises
    ------
    InputError
        Whatever :func:`~recstack.preprocessing.schema.validate_events` or
        :func:`~recstack.preprocessing.schema.validate_items` find, naming the file, column and line or row.

    Examples
    --------
    >>> _ = Path("shop.csv").write_text("user_id,item_id,timestamp,event_type\\n"
    ...                                 "u1,i1,2024-05-01T10:00:00,view\\nu1,i2,2024-05-01T10:01:00,purchase\\n")
    >>> ds = load_events_files(Path("shop.csv"))
    >>> ds.name, ds.events.height
    ('shop', 2)
    """
    events_path = Path(events_path)
    if events_path.is_dir():  # the event log recstack ingest writes (deduplicated on the facade's event ids)
        # Impressions (what a page showed) stay in the log, but are not interactions the models learn from.
        logged = read_lake_events(events_path).filter(pl.col("event_type").is_in(EVENT_TYPES))
        raw_events, kind = logged.drop("event_id", strict=False), "parquet"
    else:
        raw_events, kind = read_table(events_path)
    events = validate_events(raw_events, str(events_path), kind)
    return RawDataset(name=events_path.stem, events=events, items=read_items_file(items_path), has_timestamps=True)


def read_items_file(items_path: Path | None) -> pl.DataFrame | None:
    """The validated items table of ``items_path`` (None without one)."""
    if items_path is None:
        return None
    raw_items, kind = read_table(Path(items_path))
    return validate_items(raw_items, str(items_path), kind)


def validated_event_batches(events_path: Path) -> Iterator[pl.DataFrame]:
    """The events of :func:`load_events_files`, read and validated a batch at a time by polars' streaming engine,
    so a file larger than memory can be checked and normalised. An error names the file, the batch's first
    data row and the column and line or row within the batch."""
    events_path = Path(events_path)
    if events_path.is_dir():
        # The event log's duplicates are dropped here too: that keeps one set of event ids in memory.
        scan = (pl.scan_parquet(events_path / PART_GLOB, hive_partitioning=False)
                .unique(subset="event_id", keep="first", maintain_order=True)
                .filter(pl.col("event_type").is_in(EVENT_TYPES)).drop("event_id"))
        kind = "parquet"
    elif not events_path.exists():
        raise InputError(f"{events_path}: file not found")
    elif events_path.suffix.lower() == ".parquet":
        scan, kind = pl.scan_parquet(events_path), "parquet"
    elif events_path.suffix.lower() in (".csv", ".tsv"):
        separator = "\t" if events_path.suffix.lower() == ".tsv" else ","
        scan, kind = pl.scan_csv(events_path, infer_schema=False, separator=separator), "csv"
    else:
        raise InputError(f"{events_path}: unsupported file type {events_path.suffix!r} (use .csv, .tsv or .parquet)")
    first_row = 0
    try:
        for batch in scan.collect_batches(engine="streaming"):
            yield validate_events(batch, f"{events_path} (the batch from data row {first_row + 1:,})", kind)
            first_row += batch.height
    except (pl.exceptions.ComputeError, pl.exceptions.NoDataError, OSError) as exc:
        raise InputError(f"{events_path}: cannot be read as {kind}: {exc}") from exc
    if first_row == 0:
        raise InputError(f"{events_path}: no events (the table is empty)")
