"""MovieLens loaders: ML-1M as preprocessed by SASRec (order only) and the raw ML-100K files.

Both return the generic schema of :mod:`recstack.preprocessing.schema`. ML-1M's ``ml-1m.txt`` has no ratings or
times, only the per-user chronological order, so its timestamps are synthetic (see
:func:`synthetic_timestamps`); ML-100K has real ratings and unix times.
"""

from __future__ import annotations

import io
from pathlib import Path

import polars as pl
from recstack.preprocessing.datasets.text_files import read_bytes, read_columns, read_text, synthetic_timestamps
from recstack.preprocessing.schema import EVENT_COLUMNS, ITEM_COLUMNS, InputError, RawDataset


def _events(df: pl.DataFrame, event_type: str, timestamp: pl.Expr, weight: pl.Expr) -> pl.DataFrame:
    """Select ``user_id``/``item_id`` plus the given columns in the order and types of ``EVENT_COLUMNS``."""
    return df.select(
        pl.col("user_id"), pl.col("item_id"), pl.lit(event_type).alias("event_type"),
        timestamp.alias("timestamp"), weight.alias("weight"),
    ).cast(EVENT_COLUMNS)


def _items(df: pl.DataFrame) -> pl.DataFrame:
    """Fill the absent ``ITEM_COLUMNS`` with nulls and order/type them as the schema says."""
    return df.select(
        [pl.col(c) if c in df.columns else pl.lit(None).alias(c) for c in ITEM_COLUMNS]
    ).cast(ITEM_COLUMNS)


def load_ml_1m_sasrec(folder: Path) -> RawDataset:
    """MovieLens-1M in the SASRec preprocessing, with titles and genres joined from ``movies.dat``.

    Parameters
    ----------
    folder : Path
        The ``ml-1m-sasrec`` folder: ``ml-1m.txt`` (``"user item"`` lines, grouped by user, chronological
        within a user), ``sas_to_original_items.txt`` (``"sas_id movie_id"``) and ``movies.dat``
        (``"MovieID::Title::Genre|Genre"``, latin-1).

    Returns
    -------
    RawDataset
        ``name="ml-1m"``; ids are the SASRec ids as text; every event is a ``"rating"`` of weight 1;
        timestamps are synthetic (``has_timestamps=False``). The items table has one row per SASRec item
        (3,416): ``title``, ``category`` = first genre, ``created_at`` = 1 January of the release year.
    """
    folder = Path(folder)
    pairs = read_columns(folder / "ml-1m.txt", {"user_id": pl.String(), "item_id": pl.String()}, " ")
    events = _events(pairs, "rating", synthetic_timestamps(), pl.lit(1.0))
    return RawDataset(name="ml-1m", events=events, items=_ml_1m_items(folder), has_timestamps=False)


def _ml_1m_items(folder: Path) -> pl.DataFrame:
    mapping = read_columns(folder / "sas_to_original_items.txt",
                           {"item_id": pl.String(), "movie_id": pl.String()}, " ")
    lines = pl.Series("line", read_text(folder / "movies.dat", "latin-1").splitlines())
    movies = (
        lines.filter(lines.str.strip_chars() != "")
        .str.split_exact("::", 2).struct.rename_fields(["movie_id", "title", "genres"]).struct.unnest()
    )
    year = pl.col("title").str.extract(r"\((\d{4})\)\s*$", 1).cast(pl.Int32)
    # A left join keeps every SASRec item, with null metadata should a movie be missing from movies.dat.
    items = mapping.join(movies, on="movie_id", how="left", maintain_order="left").with_columns(
        category=pl.col("genres").str.split("|").list.first(),
        created_at=pl.datetime(year, 1, 1),
    )
    return _items(items)


def load_ml_100k(folder: Path) -> RawDataset:
    """Raw MovieLens-100K: explicit ratings with real unix timestamps, plus the movie catalog.

    Parameters
    ----------
    folder : Path
        The ``ml-100k`` folder: ``u.data`` (tab-separated ``user item rating unix_ts``), ``u.item``
        (``|``-separated, latin-1: id, title, release date, video release date, URL, 19 genre flags) and
        ``u.genre`` (``name|index``).

    Returns
    -------
    RawDataset
        ``name="ml-100k"``, events in file order with ``weight`` = the rating (1..5) and
        ``has_timestamps=True``; items with ``title``, ``category`` = the first flagged genre and
        ``created_at`` = the release date (null where the file has none).
    """
    folder = Path(folder)
    ratings = read_columns(folder / "u.data", {"user_id": pl.String(), "item_id": pl.String(),
                                               "rating": pl.Float32(), "unix_ts": pl.Int64()}, "\t")
    events = _events(ratings, "rating", pl.from_epoch("unix_ts", time_unit="s"), pl.col("rating"))
    return RawDataset(name="ml-100k", events=events, items=_ml_100k_items(folder), has_timestamps=True)


def _ml_100k_items(folder: Path) -> pl.DataFrame:
    genre_rows = read_columns(folder / "u.genre", {"name": pl.String(), "index": pl.Int32()}, "|")
    genres = genre_rows.sort("index")["name"].to_list()
    flags = [f"genre_{i}" for i in range(len(genres))]
    columns = ["item_id", "title", "release", "video_release", "url", *flags]
    path = folder / "u.item"
    try:
        raw = pl.read_csv(io.BytesIO(read_bytes(path, "latin-1")), separator="|", has_header=False,
                          quote_char=None, schema=dict.fromkeys(columns, pl.String()))
    except pl.exceptions.PolarsError as exc:
        raise InputError(f"{path}: expected {len(columns)} '|'-separated fields per line "
                         f"({len(genres)} genre flags, as in u.genre): {exc}") from exc
    release = pl.col("release").str.strip_chars()
    items = raw.with_columns(
        category=pl.coalesce([pl.when(pl.col(f) == "1").then(pl.lit(g)) for f, g in zip(flags, genres,
                                                                                           strict=True)]),
        created_at=release.str.to_date("%d-%b-%Y", strict=False),
        release=release,
    )
    bad = items["created_at"].is_null() & items["release"].is_not_null() & (items["release"] != "")
    if bad.any():
        i = int(bad.arg_true()[0])
        raise InputError(f"{path}: release date, line {i + 1}: {items['release'][i]!r} "
                         "is not a date like 01-Jan-1995")
    return _items(items)
