"""DIGINETICA (CIKM Cup 2016) click sessions: the SR-GNN split (order only) and the raw CSV format.

Sessions carry no user identity, so each session is a "user" (``"s<id>"``) in the generic schema.
"""

from __future__ import annotations

import difflib
from pathlib import Path

import polars as pl
from recstack.preprocessing.datasets.text_files import read_sequences, read_text, synthetic_timestamps
from recstack.preprocessing.schema import EVENT_COLUMNS, InputError, RawDataset, cast_strict, reject_empty, row_label

RAW_COLUMNS = ("session_id", "user_id", "item_id", "timeframe", "eventdate")
_REQUIRED_RAW_COLUMNS = ("session_id", "item_id", "timeframe", "eventdate")


def load_diginetica(folder: Path) -> RawDataset:
    """The SR-GNN/GCE-GNN split of DIGINETICA from its text versions.

    Parameters
    ----------
    folder : Path
        The ``diginetica-srgnn`` folder: ``train_sessions.txt`` (one training session per line,
        space-separated item ids) and ``test_prefixes.tsv`` (``"<prefix item ids>\\t<next item>"``).

    Returns
    -------
    RawDataset
        ``name="diginetica"``; the training clicks as ``"view"`` events of weight 1, user ``"s<n>"`` for
        the session on line ``n``; timestamps synthetic, one second apart in file order
        (``has_timestamps=False``). ``extras["test_prefixes"]`` holds the published test set with columns
        ``prefix`` (List(String)) and ``target`` (String), in file order.
    """
    folder = Path(folder)
    events = (
        read_sequences(folder / "train_sessions.txt")
        .select(user_id=pl.format("s{}", pl.col("line")), item_id=pl.col("tokens"))
        .explode("item_id")
        .select(
            "user_id", "item_id", event_type=pl.lit("view"), timestamp=synthetic_timestamps(),
            weight=pl.lit(1.0),
        )
        .cast(EVENT_COLUMNS)
    )
    prefixes = _read_test_prefixes(folder / "test_prefixes.tsv")
    return RawDataset(name="diginetica", events=events, items=None, has_timestamps=False,
                      extras={"test_prefixes": prefixes})


def _read_test_prefixes(path: Path) -> pl.DataFrame:
    lines = pl.Series("text", read_text(path).splitlines())
    df = (
        pl.DataFrame(lines).with_row_index("line", offset=1)
        .filter(pl.col("text").str.strip_chars() != "")
        .with_columns(fields=pl.col("text").str.split("\t"))
        .with_columns(
            prefix=pl.col("fields").list.first().str.extract_all(r"\S+"),
            target=pl.col("fields").list.get(1, null_on_oob=True).str.strip_chars(),
        )
    )
    bad = (
        (pl.col("fields").list.len() != 2) | (pl.col("prefix").list.len() == 0)
        | (pl.col("target").fill_null("").str.contains(r"^$|\s"))
    )
    wrong = df.filter(bad)
    if wrong.height:
        raise InputError(f"{path}: line {wrong['line'][0]}: expected "
                         f"'<space-separated item ids>\\t<next item>', got {wrong['text'][0]!r}")
    if df.height == 0:
        raise InputError(f"{path}: the file is empty")
    return df.select("prefix", "target")


def load_diginetica_raw(csv_path: Path) -> RawDataset:
    """Sessions in the raw CIKM Cup 2016 ``train-item-views.csv`` format.

    Parameters
    ----------
    csv_path : Path
        ``;``-separated file with header ``session_id;user_id;item_id;timeframe;eventdate``: ``timeframe``
        is milliseconds since the start of ``eventdate`` (``YYYY-MM-DD``). ``user_id`` (mostly ``NA``) is
        not used.

    Returns
    -------
    RawDataset
        ``name="diginetica-raw"``; one ``"view"`` event of weight 1 per row, in file order (which is not
        chronological within a session), user ``"s<session_id>"``, real timestamps.

    Raises
    ------
    InputError
        On a missing file, an empty file, a missing column (with the closest name found) or an empty or
        unparsable value (naming the column and line).
    """
    source = str(csv_path)
    if not Path(csv_path).is_file():
        raise InputError(f"{source}: file not found")
    try:
        df = pl.read_csv(csv_path, separator=";", infer_schema=False)
    except (pl.exceptions.PolarsError, OSError) as exc:
        raise InputError(f"{source}: cannot be read as ';'-separated CSV: {exc}") from exc
    if df.height == 0:
        raise InputError(f"{source}: no rows (the file is empty)")
    missing = [c for c in _REQUIRED_RAW_COLUMNS if c not in df.columns]
    if missing:
        hints = []
        for column in missing:
            close = difflib.get_close_matches(column, df.columns, n=1)
            hints.append(f"'{column}'" + (f" (did you mean '{close[0]}'?)" if close else ""))
        raise InputError(f"{source}: missing required column(s) {', '.join(hints)}; "
                         f"found columns {df.columns} (expected {';'.join(RAW_COLUMNS)})")
    reject_empty(df, _REQUIRED_RAW_COLUMNS, source, "csv")
    millis = cast_strict(df, "timeframe", pl.Int64(), source, "csv", "an integer (milliseconds)")
    text = df["eventdate"].str.strip_chars()
    day = text.str.to_date("%Y-%m-%d", strict=False)
    if day.is_null().any():
        i = int(day.is_null().arg_true()[0])
        raise InputError(f"{source}: column 'eventdate', {row_label(i, 'csv')}: {df['eventdate'][i]!r} is not a "
                         f"date like 2016-05-09 ({day.null_count()} bad value(s) in all)")
    parsed = pl.DataFrame({"session": df["session_id"], "item_id": df["item_id"], "day": day, "ms": millis})
    events = parsed.select(
        user_id="s" + pl.col("session").str.strip_chars(),
        item_id=pl.col("item_id").str.strip_chars(),
        event_type=pl.lit("view"),
        timestamp=pl.col("day").cast(pl.Datetime("us")) + pl.duration(milliseconds=pl.col("ms")),
        weight=pl.lit(1.0),
    )
    return RawDataset(name="diginetica-raw", events=events.cast(EVENT_COLUMNS), has_timestamps=True)
