"""Your own logs: an events file (and optionally an items file) already in the generic schema."""

from __future__ import annotations

from pathlib import Path

import polars as pl
from recstack.preprocessing.lake import read_lake_events
from recstack.preprocessing.schema import EVENT_TYPES, RawDataset, read_table, validate_events, validate_items


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
    items = None
    if items_path is not None:
        raw_items, items_kind = read_table(Path(items_path))
        items = validate_items(raw_items, str(items_path), items_kind)
    return RawDataset(name=events_path.stem, events=events, items=items, has_timestamps=True)
