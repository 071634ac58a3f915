"""The generic events schema every loader produces, and strict validation of user-supplied logs.

Events (one row per interaction)

============ ========================= =====================================================
column       type                      meaning
============ ========================= =====================================================
user_id      string                    raw user id (any string; integers are read as text)
item_id      string                    raw item id
event_type   string                    one of ``EVENT_TYPES``
timestamp    datetime (or unix seconds, ISO-8601 text)
weight       float, optional           e.g. the rating value; multiplies the event-type weight
============ ========================= =====================================================

Items (optional, one row per item): ``item_id`` (required, unique), ``category``, ``brand``,
``title`` (strings), ``price`` (float), ``created_at`` (datetime).

Internally ids are strings and timestamps are ``pl.Datetime("us")``.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

EVENT_TYPES: tuple[str, ...] = ("view", "click", "add_to_cart", "purchase", "rating")

EVENT_COLUMNS: dict[str, pl.DataType] = {
    "user_id": pl.String(),
    "item_id": pl.String(),
    "event_type": pl.String(),
    "timestamp": pl.Datetime("us"),
    "weight": pl.Float32(),
}
REQUIRED_EVENT_COLUMNS = ("user_id", "item_id", "event_type", "timestamp")

ITEM_COLUMNS: dict[str, pl.DataType] = {
    "item_id": pl.String(),
    "category": pl.String(),
    "brand": pl.String(),
    "title": pl.String(),
    "price": pl.Float64(),
    "created_at": pl.Datetime("us"),
}
REQUIRED_ITEM_COLUMNS = ("item_id",)

# Unix times above this are taken as milliseconds (1e11 s is the year 5138).
_MILLISECONDS_THRESHOLD = 100_000_000_000


class InputError(ValueError):
    """Bad input data; the message names the source, column and row where it can."""


@dataclass
class RawDataset:
    """Interactions and optional item metadata in the generic schema.

    Attributes
    ----------
    name : str
        Short dataset name, e.g. ``"ml-1m"``.
    events : pl.DataFrame
        Columns of ``EVENT_COLUMNS`` (``weight`` is always present, 1.0 where the source has none).
    items : pl.DataFrame or None
        Columns of ``ITEM_COLUMNS`` (absent metadata is null).
    has_timestamps : bool
        False for order-only sources (the SASRec-style files): their timestamps are synthetic,
        one second apart in file order, so a temporal split or session gaps mean nothing there.
    extras : dict of str to pl.DataFrame
        Source-specific tables, e.g. Diginetica's published ``test_prefixes``.
    """

    name: str
    events: pl.DataFrame
    items: pl.DataFrame | None = None
    has_timestamps: bool = True
    extras: dict[str, pl.DataFrame] = field(default_factory=dict)

    def summary(self) -> dict[str, int]:
        return {
            "events": self.events.height,
            "users": self.events["user_id"].n_unique(),
            "items_with_events": self.events["item_id"].n_unique(),
            "catalog_items": 0 if self.items is None else self.items.height,
        }


def row_label(row_index: int, source_kind: str) -> str:
    """Human position of a 0-based data row: a CSV line (header is line 1) or a parquet row."""
    return f"line {row_index + 2}" if source_kind == "csv" else f"row {row_index + 1}"


def _check_columns(df: pl.DataFrame, required: tuple[str, ...], known: dict, source: str) -> None:
    missing = [c for c in required if c not in df.columns]
    if missing:
        hints = []
        for col in missing:
            close = difflib.get_close_matches(col, df.columns, n=1, cutoff=0.6)
            hints.append(f"'{col}'" + (f" (did you mean '{close[0]}'?)" if close else ""))
        raise InputError(
            f"{source}: missing required column(s) {', '.join(hints)}; found columns {df.columns}"
        )
    unknown = [c for c in df.columns if c not in known]
    if unknown:
        hints = []
        for col in unknown:
            close = difflib.get_close_matches(col, list(known), n=1, cutoff=0.6)
            hints.append(f"'{col}'" + (f" (did you mean '{close[0]}'?)" if close else ""))
        raise InputError(f"{source}: unknown column(s) {', '.join(hints)}; allowed: {list(known)}")


def _first_bad(df: pl.DataFrame, bad: pl.Series) -> int:
    return int(bad.arg_true()[0])


def cast_strict(df: pl.DataFrame, column: str, dtype: pl.DataType, source: str, kind: str,
                 expected: str) -> pl.Series:
    """Cast a column, raising an InputError at the first value that does not convert."""
    original = df[column]
    try:
        cast = original.cast(dtype, strict=False)
    except pl.exceptions.InvalidOperationError as exc:
        raise InputError(f"{source}: column '{column}' of type {original.dtype} cannot hold {expected}") from exc
    bad = cast.is_null() & original.is_not_null()
    if original.dtype == pl.String:
        bad = bad & (original.str.strip_chars() != "")
    if bad.any():
        i = _first_bad(df, bad)
        raise InputError(
            f"{source}: column '{column}', {row_label(i, kind)}: {original[i]!r} is not {expected} "
            f"({int(bad.sum())} bad value(s) in all)"
        )
    return cast


_NAIVE_FORMATS = ("%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%d %H:%M", "%Y-%m-%d")
_OFFSET_FORMAT = "%Y-%m-%d %H:%M:%S%.f%z"
# Unix times must fall in 1970..2200 (in seconds) to be taken as timestamps.
_MAX_UNIX_SECONDS = 7_258_118_400


def _parse_iso(text: pl.Series) -> pl.Series:
    """ISO-8601 text to naive datetimes (offsets converted to UTC); null where nothing fits.

    Formats are tried one by one, not guessed from the first value, so a column may mix them.
    """
    normal = text.str.replace(r"^(\d{4}-\d{2}-\d{2})T", "${1} ").str.replace(r"Z$", "+00:00")
    candidates = [normal.str.strptime(pl.Datetime("us"), fmt, strict=False) for fmt in _NAIVE_FORMATS]
    with_offset = normal.str.strptime(pl.Datetime("us", "UTC"), _OFFSET_FORMAT, strict=False)
    candidates.append(with_offset.dt.replace_time_zone(None))
    return pl.select(pl.coalesce(candidates)).to_series()


def _unix_to_datetime(values: pl.Series) -> pl.Series:
    """Unix seconds, or milliseconds when too large for seconds; null outside 1970..2200 or not finite."""
    seconds = pl.when(values.abs() > _MILLISECONDS_THRESHOLD).then(values / 1_000).otherwise(values)
    valid = pl.lit(values).is_finite() & (seconds >= 0) & (seconds <= _MAX_UNIX_SECONDS)
    micros = pl.when(valid).then((seconds * 1_000_000).round(0)).cast(pl.Int64, strict=False)
    return pl.select(micros.cast(pl.Datetime("us"))).to_series()


def parse_timestamps(df: pl.DataFrame, column: str, source: str, kind: str) -> pl.Series:
    """Datetimes from datetime, date, unix seconds/milliseconds or ISO-8601 text.

    Raises
    ------
    InputError
        At the first non-empty value that is not a timestamp, naming the column and row.
    """
    s = df[column]
    if s.dtype == pl.Datetime:
        if s.dtype.time_zone:
            s = s.dt.convert_time_zone("UTC").dt.replace_time_zone(None)
        return s.cast(pl.Datetime("us"))
    if s.dtype == pl.Date:
        return s.cast(pl.Datetime("us"))
    if s.dtype.is_numeric():
        present = s.is_not_null()
        out = _unix_to_datetime(s.cast(pl.Float64))
    elif s.dtype == pl.String:
        text = s.str.strip_chars()
        present = text.is_not_null() & (text != "")
        numeric = text.cast(pl.Float64, strict=False)
        out = pl.select(pl.coalesce(_unix_to_datetime(numeric), _parse_iso(text))).to_series()
    else:
        raise InputError(f"{source}: column '{column}' has type {s.dtype}; expected a datetime or unix time")
    bad = out.is_null() & present
    if bad.any():
        i = _first_bad(df, bad)
        raise InputError(
            f"{source}: column '{column}', {row_label(i, kind)}: timestamp {s[i]!r} does not parse "
            f"(expected ISO-8601 like 2024-05-01T12:30:00, or unix seconds/milliseconds from 1970 on; "
            f"{int(bad.sum())} bad value(s) in all)"
        )
    return out.alias(column)


def _reject_non_finite(values: pl.Series, column: str, source: str, kind: str) -> None:
    bad = ~values.is_finite()
    if bad.any():
        i = int(bad.arg_true()[0])
        raise InputError(f"{source}: column '{column}', {row_label(i, kind)}: {values[i]!r} is not a finite number")


def reject_empty(df: pl.DataFrame, columns, source: str, kind: str) -> None:
    for col in columns:
        s = df[col]
        empty = s.is_null()
        if s.dtype == pl.String:
            empty = empty | (s.str.strip_chars() == "")
        if empty.any():
            i = _first_bad(df, empty)
            raise InputError(
                f"{source}: column '{col}', {row_label(i, kind)}: value is empty ({int(empty.sum())} empty in all)"
            )


def validate_events(df: pl.DataFrame, source: str, kind: str = "parquet",
                    event_types: tuple[str, ...] = EVENT_TYPES) -> pl.DataFrame:
    """Check and type a user-supplied events table.

    Parameters
    ----------
    df : pl.DataFrame
        Raw table (CSV read as text, or parquet with its own types).
    source : str
        Name used in error messages, usually the file path.
    kind : {"csv", "parquet"}
        How row positions are reported: CSV lines (header = line 1) or parquet rows.
    event_types : tuple of str
        The accepted ``event_type`` values.

    Returns
    -------
    pl.DataFrame
        Columns ``user_id, item_id, event_type, timestamp, weight`` with the schema's types.

    Raises
    ------
    InputError
        On an empty table, a missing/misspelled column, an empty id, an unknown event type,
        a timestamp that does not parse or a non-numeric weight.

    Examples
    --------
    >>> raw = pl.DataFrame({"user_id": ["u1"], "item_id": ["i9"], "event_type": ["view"],
    ...                     "timestamp": ["2024-05-01T12:00:00"]})
    >>> validate_events(raw, "example").columns
    ['user_id', 'item_id', 'event_type', 'timestamp', 'weight']
    """
    if df.height == 0:
        raise InputError(f"{source}: no events (the table is empty)")
    _check_columns(df, REQUIRED_EVENT_COLUMNS, EVENT_COLUMNS, source)
    ids = df.select(pl.col("user_id", "item_id", "event_type").cast(pl.String))
    reject_empty(ids, ("user_id", "item_id", "event_type"), source, kind)
    event_type = ids["event_type"].str.strip_chars().str.to_lowercase()
    unknown = ~event_type.is_in(list(event_types))
    if unknown.any():
        i = _first_bad(df, unknown)
        others = sorted(set(event_type.filter(unknown).unique().to_list()))[:5]
        raise InputError(
            f"{source}: column 'event_type', {row_label(i, kind)}: unknown event type {df['event_type'][i]!r} "
            f"(unknown values: {others}; allowed: {list(event_types)})"
        )
    reject_empty(df, ("timestamp",), source, kind)
    timestamp = parse_timestamps(df, "timestamp", source, kind)
    if "weight" in df.columns:
        weight = cast_strict(df, "weight", pl.Float32(), source, kind, "a number").fill_null(1.0)
        _reject_non_finite(weight, "weight", source, kind)
    else:
        weight = pl.Series("weight", [1.0] * df.height, dtype=pl.Float32)
    return pl.DataFrame({
        "user_id": ids["user_id"].str.strip_chars(),
        "item_id": ids["item_id"].str.strip_chars(),
        "event_type": event_type,
        "timestamp": timestamp,
        "weight": weight,
    })


def validate_items(df: pl.DataFrame, source: str, kind: str = "parquet") -> pl.DataFrame:
    """Check and type an items table; every column of ``ITEM_COLUMNS`` is present afterwards.

    Raises
    ------
    InputError
        On an empty table, missing/misspelled columns, empty or duplicate ``item_id``,
        a non-numeric price or an unparsable ``created_at``.
    """
    if df.height == 0:
        raise InputError(f"{source}: no items (the table is empty)")
    _check_columns(df, REQUIRED_ITEM_COLUMNS, ITEM_COLUMNS, source)
    item_id = df["item_id"].cast(pl.String).str.strip_chars()
    reject_empty(pl.DataFrame({"item_id": item_id}), ("item_id",), source, kind)
    dup = item_id.is_duplicated()
    if dup.any():
        first = _first_bad(df, dup)
        rows = dup.arg_true().filter(item_id.filter(dup) == item_id[first]).to_list()[:2]
        raise InputError(
            f"{source}: duplicate item rows: item_id {item_id[first]!r} appears on "
            f"{row_label(rows[0], kind)} and {row_label(rows[1], kind)} ({int(dup.sum())} duplicated rows in all)"
        )
    out = {"item_id": item_id}
    for col in ("category", "brand", "title"):
        out[col] = df[col].cast(pl.String) if col in df.columns else pl.Series(col, [None] * df.height,
                                                                                 dtype=pl.String)
    if "price" in df.columns:
        out["price"] = cast_strict(df, "price", pl.Float64(), source, kind, "a number")
        _reject_non_finite(out["price"].fill_null(0.0), "price", source, kind)
    else:
        out["price"] = pl.Series("price", [None] * df.height, dtype=pl.Float64)
    out["created_at"] = (parse_timestamps(df, "created_at", source, kind) if "created_at" in df.columns
                         else pl.Series("created_at", [None] * df.height, dtype=pl.Datetime("us")))
    return pl.DataFrame(out)


def read_table(path: Path) -> tuple[pl.DataFrame, str]:
    """Read a CSV (all columns as text, so validation can name bad values) or parquet file."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: file not found")
    suffix = path.suffix.lower()
    try:
        if suffix == ".parquet":
            return pl.read_parquet(path), "parquet"
        if suffix in (".csv", ".tsv"):
            sep = "\t" if suffix == ".tsv" else ","
            return pl.read_csv(path, infer_schema=False, separator=sep), "csv"
    except (pl.exceptions.ComputeError, pl.exceptions.NoDataError, OSError) as exc:
        raise InputError(f"{path}: cannot be read as {suffix[1:]}: {exc}") from exc
    raise InputError(f"{path}: unsupported file type {suffix!r} (use .csv, .tsv or .parquet)")
