"""Categorical id encoding with a frequency threshold, an OOV bucket and a stable way back to raw ids."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import polars as pl

PAD = 0  # padding in sequences and "no value" in feature columns
OOV = 1  # out of vocabulary: below the threshold at fit time, or never seen
FIRST_INDEX = 2


def value_counts(plan: pl.LazyFrame, column: str) -> pl.LazyFrame:
    """``raw`` (the non-null values of ``column`` as text) and ``count``: what a vocabulary is fitted from."""
    return (plan.select(pl.col(column).cast(pl.String).alias("raw")).drop_nulls()
            .group_by("raw").agg(pl.len().cast(pl.UInt64).alias("count")))


@dataclass(frozen=True)
class Vocabulary:
    """Raw value ↔ index table, most frequent first (ties by raw value, so fits are reproducible).

    Attributes
    ----------
    name : str
        The encoded column, e.g. ``"item_id"``.
    table : pl.DataFrame
        Columns ``index`` (UInt32, from 2), ``raw`` (String) and ``count`` (fitting frequency).

    Examples
    --------
    >>> v = Vocabulary.fit("item_id", pl.Series(["b", "a", "b", "c"]), min_count=2)
    >>> v.encode(pl.Series(["b", "a", "zzz"])).to_list()
    [2, 1, 1]
    >>> v.decode(pl.Series([2])).to_list()
    ['b']
    """

    name: str
    table: pl.DataFrame

    @classmethod
    def fit(cls, name: str, values: pl.Series, min_count: int = 1,
            always_keep: pl.Series | None = None) -> Vocabulary:
        """Count values; keep those seen ``min_count`` times or listed in ``always_keep``."""
        counts = value_counts(pl.LazyFrame({"raw": values}), "raw").collect()
        return cls.from_counts(name, counts, min_count, always_keep)

    @classmethod
    def from_counts(cls, name: str, counts: pl.DataFrame, min_count: int = 1,
                    always_keep: pl.Series | None = None) -> Vocabulary:
        """:meth:`fit` from the counts of :func:`value_counts`, so a table too large for memory is only ever
        aggregated (by the streaming engine), never held."""
        kept = counts.filter(pl.col("count") >= min_count)
        if always_keep is not None:
            extra = pl.DataFrame({"raw": always_keep.drop_nulls().cast(pl.String).unique()})
            kept = pl.concat([
                kept,
                extra.join(kept, on="raw", how="anti").join(counts, on="raw", how="left")
                .with_columns(pl.col("count").fill_null(0)),
            ])
        table = kept.sort(["count", "raw"], descending=[True, False]).with_row_index(
            "index", offset=FIRST_INDEX).with_columns(pl.col("index").cast(pl.UInt32))
        return cls(name, table.select("index", "raw", "count"))

    def extend(self, values: pl.Series, min_count: int = 1, always_keep: pl.Series | None = None) -> Vocabulary:
        """This vocabulary plus the new values of ``values``, the fitting data now (seen ``min_count`` times, or
        listed in ``always_keep``) appended after it: known values keep their index, so a model trained on this
        vocabulary reads the extended one unchanged. ``always_keep`` values come first, in the order given (the
        order the facade numbered items added through the API), then the others, most frequent first. Counts
        become those of ``values`` where it holds the value.

        Examples
        --------
        >>> v = Vocabulary.fit("item_id", pl.Series(["a", "b", "b"]))
        >>> w = v.extend(pl.Series(["c", "a", "d", "d"]), always_keep=pl.Series(["z"]))
        >>> w.table.select("index", "raw").rows()
        [(2, 'b'), (3, 'a'), (4, 'z'), (5, 'd'), (6, 'c')]
        """
        counts = value_counts(pl.LazyFrame({"raw": values}), "raw").collect()
        new = counts.join(self.table.select("raw"), on="raw", how="anti")
        first = pl.DataFrame(schema={"raw": pl.String, "count": pl.UInt64})
        if always_keep is not None:
            listed = (pl.DataFrame({"raw": always_keep.drop_nulls().cast(pl.String)}).unique(maintain_order=True)
                      .join(self.table.select("raw"), on="raw", how="anti"))
            first = listed.join(counts, on="raw", how="left").with_columns(pl.col("count").fill_null(0))
        rest = (new.join(first.select("raw"), on="raw", how="anti").filter(pl.col("count") >= min_count)
                .sort(["count", "raw"], descending=[True, False]))
        added = pl.concat([first, rest]).with_row_index("index", offset=self.size).with_columns(
            pl.col("index").cast(pl.UInt32))
        known = self.table.join(counts.rename({"count": "new_count"}), on="raw", how="left").select(
            "index", "raw", pl.coalesce("new_count", "count").alias("count"))
        return Vocabulary(self.name, pl.concat([known, added.select("index", "raw", "count")]))

    @property
    def size(self) -> int:
        """Embedding table size: past the largest index (``recstack forget`` removes a user's row and leaves its
        index unused), PAD and OOV included."""
        largest = self.table["index"].max()
        return FIRST_INDEX if largest is None else int(largest) + 1

    def encode_plan(self, plan: pl.LazyFrame, column: str, out: str) -> pl.LazyFrame:
        """Add ``out`` = index of ``column`` to a lazy plan (a join, so it also runs on cuDF)."""
        mapping = self.table.lazy().select(pl.col("raw").alias(column), pl.col("index").alias(out))
        return (plan.with_columns(pl.col(column).cast(pl.String))
                .join(mapping, on=column, how="left", maintain_order="left")
                .with_columns(pl.col(out).fill_null(OOV)))

    def encode(self, values: pl.Series) -> pl.Series:
        frame = self.encode_plan(pl.LazyFrame({"raw_value": values}), "raw_value", "index").collect()
        return frame["index"].alias(values.name)

    def decode(self, indices: pl.Series) -> pl.Series:
        """Raw values of indices; PAD, OOV and unknown indices give null."""
        frame = (pl.LazyFrame({"index": indices.cast(pl.UInt32)})
                 .join(self.table.lazy().select("index", "raw"), on="index", how="left", maintain_order="left")
                 .collect())
        return frame["raw"].alias(indices.name)

    def save(self, folder: Path) -> Path:
        path = Path(folder) / f"vocab_{self.name}.parquet"
        self.table.write_parquet(path)
        return path

    @classmethod
    def load(cls, folder: Path, name: str) -> Vocabulary:
        return cls(name, pl.read_parquet(Path(folder) / f"vocab_{name}.parquet"))
