"""Amazon Beauty as preprocessed by S3-Rec/ICLRec: one chronological sequence per line, order only."""

from __future__ import annotations

from pathlib import Path

import polars as pl
from recstack.preprocessing.datasets.text_files import read_sequences, synthetic_timestamps
from recstack.preprocessing.schema import EVENT_COLUMNS, InputError, RawDataset


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
