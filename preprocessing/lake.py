"""The event log: every event the facade accepted, as date-partitioned parquet in the generic events schema.

Layout (under ``build/lake`` by default)::

    events/date=YYYY-MM-DD/part-<first stream id>.parquet

Each row is an event of :data:`~recstack.preprocessing.schema.EVENT_COLUMNS` plus ``event_id``, the id the facade
gave it. A part is written to a temporary name, flushed to disk and renamed, so a part either exists whole or not
at all; it is named after the first stream entry of its batch, so a batch written again after a crash replaces
itself. :meth:`EventLake.events` reads the log deduplicated on ``event_id``, so an event written twice (a batch
re-read with other boundaries) still counts once. ``recstack preprocess --dataset events
--events build/lake/events`` reads it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import polars as pl
from recstack.preprocessing.schema import EVENT_COLUMNS

LAKE_NAME = "lake"  # the event log's folder under the build folder
LAKE_EVENT_COLUMNS: dict[str, pl.DataType] = {**EVENT_COLUMNS, "event_id": pl.String()}
PART_GLOB = "date=*/part-*.parquet"


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomically(frame: pl.DataFrame, path: Path) -> None:
    """``path`` holds all of ``frame`` or stays as it was, also across a power loss."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    frame.write_parquet(tmp)
    with tmp.open("rb+") as f:
        os.fsync(f.fileno())
    tmp.replace(path)
    _fsync_dir(path.parent)


@dataclass(frozen=True)
class EventLake:
    root: Path  # build/lake

    @property
    def events_dir(self) -> Path:
        return self.root / "events"

    def parts(self) -> list[Path]:
        return sorted(self.events_dir.glob(PART_GLOB))

    def write(self, rows: list[dict], batch_name: str) -> list[Path]:
        """Append ``rows`` (the lake's columns, ``timestamp`` as ISO-8601 text with its offset; ``weight``
        optional) as one part per UTC date; returns the parts written."""
        frame = pl.DataFrame([{**row, "weight": row.get("weight", 1.0)} for row in rows])
        frame = frame.with_columns(
            pl.col("timestamp").str.to_datetime(time_unit="us", time_zone="UTC").dt.replace_time_zone(None),
        ).select([pl.col(name).cast(dtype) for name, dtype in LAKE_EVENT_COLUMNS.items()])
        written = []
        for (date,), part in frame.group_by(pl.col("timestamp").dt.date(), maintain_order=True):
            path = self.events_dir / f"date={date.isoformat()}" / f"part-{batch_name}.parquet"
            write_atomically(part, path)
            written.append(path)
        return written

    def events(self) -> pl.DataFrame:
        """Every event once (the first copy of each ``event_id``), in the generic schema plus ``event_id``."""
        parts = self.parts()
        if not parts:
            return pl.DataFrame(schema=LAKE_EVENT_COLUMNS)
        return read_lake_events(self.events_dir)

    def accepted_at(self) -> pl.DataFrame:
        """``event_id`` → ``accepted_at``, when the first event of the event's batch reached the facade's stream
        (the milliseconds of the stream id its part is named after, Redis' clock; null for parts not named after
        one): how fresh a model trained on the event is."""
        if not self.parts():
            return pl.DataFrame(schema={"event_id": pl.String(), "accepted_at": pl.Datetime("ms")})
        frame = pl.scan_parquet(self.events_dir / PART_GLOB, hive_partitioning=False,
                                include_file_paths="part").select("event_id", "part").collect()
        millis = pl.col("part").str.extract(r"part-(\d+)-\d+\.parquet$").cast(pl.Int64)
        return frame.select("event_id", millis.cast(pl.Datetime("ms")).alias("accepted_at"))

    def forget(self, user_ids: list[str]) -> int:
        """Rewrite every part without ``user_ids``' events; returns the rows removed."""
        removed = 0
        for path in self.parts():
            frame = pl.read_parquet(path)
            kept = frame.filter(~pl.col("user_id").is_in(user_ids))
            if kept.height < frame.height:
                removed += frame.height - kept.height
                if kept.height:
                    write_atomically(kept, path)
                else:
                    path.unlink()
        return removed


def read_lake_events(folder: Path) -> pl.DataFrame:
    """A folder of ``date=*/part-*.parquet`` event parts, deduplicated on ``event_id`` where parts carry it."""
    frame = pl.scan_parquet(Path(folder) / PART_GLOB, hive_partitioning=False).collect()
    if "event_id" in frame.columns:
        frame = frame.unique(subset="event_id", keep="first", maintain_order=True)
    return frame
