"""Readers of the public datasets' text files; errors name the file, column and line."""

from __future__ import annotations

import io
from datetime import datetime
from pathlib import Path

import polars as pl
from recstack.preprocessing.schema import InputError

# Order-only sources get one synthetic second per line from here on (any fixed origin would do).
SYNTHETIC_START = datetime(2000, 1, 1)
_SYNTHETIC_START_US = int((SYNTHETIC_START - datetime(1970, 1, 1)).total_seconds()) * 1_000_000


def synthetic_timestamps() -> pl.Expr:
    """``SYNTHETIC_START`` plus the 0-based row position in seconds, as ``pl.Datetime("us")``.

    Used by every order-only loader: the file order is the time order, globally and per user.
    """
    return (pl.int_range(pl.len(), dtype=pl.Int64) * 1_000_000 + _SYNTHETIC_START_US).cast(pl.Datetime("us"))


def read_text(path: Path, encoding: str = "utf-8") -> str:
    """Whole file as text; a missing or undecodable file is an :class:`InputError` naming it."""
    data = read_bytes(path, encoding)
    try:
        return data.decode()
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: not {encoding} text: {exc}") from exc


def read_bytes(path: Path, encoding: str = "utf-8") -> bytes:
    """Whole file as UTF-8 bytes (re-encoded from ``encoding``), which is what polars parses."""
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError as exc:
        raise InputError(f"{path}: file not found") from exc
    except OSError as exc:
        raise InputError(f"{path}: cannot be read: {exc}") from exc
    if encoding.lower().replace("-", "") in ("utf8", "ascii"):
        return data
    try:
        return data.decode(encoding).encode()
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: not {encoding} text: {exc}") from exc


def read_columns(path: Path, schema: dict[str, pl.DataType], separator: str,
                 encoding: str = "utf-8") -> pl.DataFrame:
    """A headerless delimited file with exactly the columns of ``schema``; no empty field allowed."""
    try:
        df = pl.read_csv(io.BytesIO(read_bytes(path, encoding)), separator=separator, has_header=False,
                         schema=schema, quote_char=None)
    except pl.exceptions.PolarsError as exc:
        raise InputError(f"{path}: expected {len(schema)} {separator!r}-separated columns "
                         f"{list(schema)} per line: {exc}") from exc
    # Blank lines (u.genre ends with one) read as all-null rows: drop them, keeping true line numbers.
    df = df.with_row_index("line", offset=1).filter(~pl.all_horizontal(pl.col(schema).is_null()))
    if df.height == 0:
        raise InputError(f"{path}: the file is empty")
    for column in schema:
        missing = df[column].is_null()
        if missing.any():
            line = df["line"][int(missing.arg_true()[0])]
            raise InputError(f"{path}: column '{column}', line {line}: value is missing")
    return df.drop("line")


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
