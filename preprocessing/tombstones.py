"""Users who asked to be forgotten: kept as SHA-256 digests of their ids (the list itself names nobody), applied
by every build that reads raw logs, so a deleted user never comes back from old data; and their rows taken out of
prepared datasets already written.

Examples
--------
>>> from pathlib import Path
>>> path = Path(TOMBSTONES_NAME)
>>> add_tombstones(path, ["u1", "u2"])
2
>>> sorted(forgotten(["u1", "u3"], read_tombstones(path)))
['u1']
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from pathlib import Path

import polars as pl
from recstack.preprocessing.layout import PreparedLayout
from recstack.preprocessing.watch import FileWatch

TOMBSTONES_NAME = "tombstones.txt"  # in the build folder


def digest(user_id: str) -> str:
    return hashlib.sha256(f"recstack-user:{user_id}".encode()).hexdigest()


def read_tombstones(path: str | Path | None) -> frozenset[str]:
    if path is None or not Path(path).exists():
        return frozenset()
    return frozenset(line.strip() for line in Path(path).read_text().splitlines() if line.strip())


def add_tombstones(path: str | Path, user_ids: Iterable[str]) -> int:
    """Append the users' digests (durably: fsynced); returns how many were new."""
    path = Path(path)
    known = read_tombstones(path)
    new = sorted({digest(u) for u in user_ids} - known)
    if new:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a") as out:
            out.write("".join(f"{d}\n" for d in new))
            out.flush()
            os.fsync(out.fileno())
    return len(new)


def forgotten(user_ids: Iterable[str], tombstones: frozenset[str]) -> set[str]:
    """Those of ``user_ids`` whose digest is in ``tombstones``."""
    return {u for u in user_ids if digest(u) in tombstones} if tombstones else set()


class TombstoneWatch:
    """The tombstone list as a long-running process sees it (:class:`~recstack.preprocessing.watch.FileWatch`),
    so a user deleted through one facade process is unknown to all of them within ``refresh_s``."""

    def __init__(self, path: str | Path | None, refresh_s: float = 2.0):
        self.watch = FileWatch(path, read_tombstones, frozenset(), refresh_s)

    def __contains__(self, user_id: str) -> bool:
        digests = self.watch.value()
        return bool(digests) and digest(user_id) in digests


def rewrite_without(path: Path, keep: pl.Expr) -> int:
    """Rewrite a parquet file with only the rows ``keep`` selects (atomically); returns the rows removed."""
    table = pl.read_parquet(path)
    kept = table.filter(keep)
    removed = table.height - kept.height
    if removed:
        tmp = path.with_name(f".{path.name}.tmp")
        kept.write_parquet(tmp)
        os.replace(tmp, path)
    return removed


def forget_prepared(root: str | Path, user_ids: list[str]) -> int:
    """Take the users out of a prepared dataset folder: every table keyed by their raw id or their index, and
    their raw ids out of the user vocabulary (so no index can be traced back to them). Returns the rows removed
    or blanked."""
    layout = PreparedLayout(root)
    vocabulary = layout.vocabulary("user_id")
    indices: list[int] = []
    if vocabulary.exists():
        indices = pl.read_parquet(vocabulary).filter(pl.col("raw").is_in(user_ids))["index"].to_list()
    removed = 0
    for path in sorted(layout.root.rglob("*.parquet")):
        columns = pl.read_parquet_schema(path)
        if "user_id" in columns and columns["user_id"] == pl.String:
            removed += rewrite_without(path, ~pl.col("user_id").is_in(user_ids))
        elif "user_idx" in columns and indices:
            removed += rewrite_without(path, ~pl.col("user_idx").is_in(indices))
        elif path == vocabulary:
            removed += _blank(path, pl.col("raw").is_in(user_ids))
    return removed


def _blank(vocabulary: Path, gone: pl.Expr) -> int:
    """Blank the raw ids ``gone`` selects in a vocabulary file, keeping their rows: the index stays taken, so a
    later extension never hands a forgotten user's index (and its trained embedding row) to someone else."""
    table = pl.read_parquet(vocabulary)
    hit = table.select(gone.sum()).item()
    if hit:
        tmp = vocabulary.with_name(f".{vocabulary.name}.tmp")
        table.with_columns(pl.when(gone).then(None).otherwise(pl.col("raw")).alias("raw"),
                           pl.when(gone).then(0).otherwise(pl.col("count")).cast(table["count"].dtype)
                           .alias("count")).write_parquet(tmp)
        os.replace(tmp, vocabulary)
    return hit
