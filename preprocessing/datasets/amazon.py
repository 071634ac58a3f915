"""Amazon Beauty as preprocessed by S3-Rec/ICLRec: one chronological sequence per line, order only.

Also home of :func:`read_sequences`, the reader of the one-sequence-per-line text format shared with
Diginetica's SR-GNN files.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from preprocessing.datasets.movielens import read_text, synthetic_timestamps
from preprocessing.schema import EVENT_COLUMNS, InputError, RawDataset


def read_sequences(path: Path) -> pl.DataFrame:
    """Whitespace-separated tokens of each non-blank line.

    Returns
    -------
    pl.DataFrame
        ``line`` (1-based line number in the file, UInt32) and ``tokens`` (List(String)), in file order.

    Raises
    ------
    InputError
        When the file is missing, not UTF-8 text or has no non-blank line.
    """
    lines = pl.Series("tokens", read_text(path).splitlines())
    df = (
        pl.DataFrame(lines).with_row_index("line", offset=1)
        .with_columns(pl.col("tokens").str.extract_all(r"\S+"))
        .filter(pl.col("tokens").list.len() > 0)
    )
    if df.height == 0:
        raise InputError(f"{path}: the file is empty")
    return df


def load_amazon_beauty(folder: Path) -> RawDataset:
    """Amazon Beauty 5-core in the S3-Rec format.

    Parameters
    ----------
    folder : Path
        The ``amazon-beauty-s3rec`` folder holding ``Beauty.txt``: lines ``"user item item ..."``, each the
        chronological item sequence of one user.

    Returns
    -------
    RawDataset
        ``name="beauty"``; every event is a ``"purchase"`` (the source is reviews, i.e. bought items) of
        weight 1; timestamps are synthetic, one second apart in file order (``has_timestamps=False``);
        no item metadata.
    """
    path = Path(folder) / "Beauty.txt"
    sequences = read_sequences(path)
    short = sequences["tokens"].list.len() < 2
    if short.any():
        line = sequences["line"][int(short.arg_true()[0])]
        raise InputError(f"{path}: line {line}: expected a user id followed by at least one item id")
    events = (
        sequences.select(
            user_id=pl.col("tokens").list.first(),
            item_id=pl.col("tokens").list.slice(1),
        )
        .explode("item_id")
        .select(
            "user_id", "item_id", event_type=pl.lit("purchase"), timestamp=synthetic_timestamps(),
            weight=pl.lit(1.0),
        )
        .cast(EVENT_COLUMNS)
    )
    return RawDataset(name="beauty", events=events, items=None, has_timestamps=False)
