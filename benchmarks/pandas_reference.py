"""Plain-pandas reimplementation of the leave-one-out preprocessing, kept only as a benchmark baseline.

The production pipeline is :func:`recstack.preprocessing.pipeline.preprocess`, written as polars lazy plans
(which also run on cuDF). This module redoes the same transformations with pandas and numpy so
that a benchmark can compare throughput side by side on identical work. It is not used by training
or serving, and it only covers what the comparison needs:

* the ``leave_one_out`` split (vocabularies are fitted on all events);
* the tables ``events_{train,valid,test}``, ``sequences_train``, ``eval_{valid,test}``,
  ``item_stats`` and ``cooccurrence`` of the documented layout, with the same file names;
* no item features, no saved workflow and no manifest.

Semantics follow the polars modules step by step (:mod:`recstack.preprocessing.vocabulary`,
:meth:`recstack.preprocessing.workflow.Workflow.transform_plan`, :mod:`recstack.preprocessing.splits`,
:mod:`recstack.preprocessing.sequences`, :mod:`recstack.preprocessing.item_stats`), and
``tests/benchmarks/test_pandas_reference.py`` checks that both write equal tables. The code is
vectorised, idiomatic pandas (sorts, ``shift`` / ``cumsum`` over contiguous groups, ``groupby``
aggregations), the baseline a competent pandas user would write, not a strawman: rows sorted by
user and time make every user and session a contiguous block, so group boundaries come from
comparing a row with the previous one instead of from hashing.

Examples
--------
>>> from pathlib import Path
>>> from recstack.preprocessing.config import WorkflowConfig
>>> counts = preprocess_pandas(events.to_pandas(), None, WorkflowConfig(), Path("build/pandas"))  # doctest: +SKIP
>>> sorted(counts)  # doctest: +SKIP
['cooccurrence_pairs', 'test_events', 'test_users', 'train_events', 'train_users', 'valid_events', 'valid_users']
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from recstack.preprocessing.config import WorkflowConfig
from recstack.preprocessing.item_stats import BASKET_EVENTS
from recstack.preprocessing.schema import EVENT_TYPES
from recstack.preprocessing.splits import SPLITS
from recstack.preprocessing.vocabulary import FIRST_INDEX, OOV

EVENT_COLUMNS = ("user_id", "item_id", "event_type", "timestamp", "weight")

# Parquet types of the list columns, as polars writes them (pandas would infer int64 / ns lists).
_ITEM_LIST = pa.list_(pa.uint32())
_TIME_LIST = pa.list_(pa.timestamp("us"))


# -- vocabularies and encoding --------------------------------------------------------------------
def fit_vocabulary(values: pd.Series, min_count: int = 1, always_keep: pd.Series | None = None) -> pd.Index:
    """Raw values in index order (position ``p`` has index ``p + FIRST_INDEX``).

    Most frequent first, ties by raw value; values seen fewer than ``min_count`` times are left out
    unless listed in ``always_keep`` (those keep their own count, 0 without events).
    """
    counts = values.dropna().astype(str).value_counts()
    kept = counts[counts >= min_count]
    if always_keep is not None:
        extra = pd.Index(always_keep.dropna().astype(str).unique()).difference(kept.index)
        kept = pd.concat([kept, counts.reindex(extra, fill_value=0)])
    table = pd.DataFrame({"raw": kept.index.astype(str), "count": kept.to_numpy()})
    table = table.sort_values(["count", "raw"], ascending=[False, True])
    return pd.Index(table["raw"])


def encode(vocabulary: pd.Index, values: pd.Series) -> np.ndarray:
    """Indices of ``values`` (UInt32); unknown values get ``OOV``."""
    positions = vocabulary.get_indexer(values.astype(str))
    return np.where(positions < 0, OOV, positions + FIRST_INDEX).astype(np.uint32)


def _starts(keys: pd.Series) -> pd.Series:
    """True where a row opens a new run of equal ``keys`` (the first row always does)."""
    start = keys.ne(keys.shift())
    if len(start):
        start.iloc[0] = True
    return start


def _group_ids(keys: pd.Series) -> pd.Series:
    """0, 1, 2, ... numbering the contiguous runs of equal ``keys``."""
    return (_starts(keys).cumsum() - 1).rename("_group")


def transform(events: pd.DataFrame, users: pd.Index, items: pd.Index, config: WorkflowConfig,
              start_time: pd.Timestamp) -> pd.DataFrame:
    """Encoded events sorted by user and time, as ``Workflow.transform`` returns them."""
    df = events.loc[:, list(EVENT_COLUMNS)].copy()
    df["user_id"] = df["user_id"].astype(str)
    df["item_id"] = df["item_id"].astype(str)
    df["timestamp"] = df["timestamp"].astype("datetime64[us]")
    df["_order"] = np.arange(len(df))
    df["user_idx"] = encode(users, df["user_id"])
    df["item_idx"] = encode(items, df["item_id"])
    # user_id breaks ties because users unknown to the vocabulary share the OOV user_idx.
    df = df.sort_values(["user_idx", "user_id", "timestamp", "_order"]).reset_index(drop=True)

    codes = pd.Series(range(len(EVENT_TYPES)), index=list(EVENT_TYPES), dtype=np.uint8)
    type_weights = pd.Series(config.event_weights, dtype=np.float32)
    event_code = df["event_type"].map(codes)
    if event_code.isna().any():
        unknown = sorted(set(df.loc[event_code.isna(), "event_type"]))
        raise ValueError(f"unknown event types {unknown}; allowed: {list(EVENT_TYPES)}")
    df["event_code"] = event_code.astype(np.uint8)
    df["weight"] = df["weight"].astype(np.float32) * df["event_type"].map(type_weights).astype(np.float32)
    ts = df["timestamp"]
    df["hour"] = ts.dt.hour.astype(np.uint8)
    df["weekday"] = (ts.dt.dayofweek + 1).astype(np.uint8)  # 1 = Monday ... 7 = Sunday
    # Whole seconds (truncated) since the first event, in days, like polars' dt.total_seconds().
    seconds = (ts - start_time) // pd.Timedelta(seconds=1)
    df["day"] = (seconds / 86_400).astype(np.float32)

    new_user = _starts(df["user_id"])
    gap = ts.diff()
    new_session = new_user | (gap > pd.Timedelta(minutes=config.session_gap_minutes))
    df["session_id"] = new_session.cumsum().astype(np.uint32)
    df["session_position"] = df.groupby("session_id", sort=False).cumcount().astype(np.uint32)
    return df.drop(columns="_order")


# -- split and sequences --------------------------------------------------------------------------
def mark_steps(frame: pd.DataFrame, collapse_repeats: bool, by: str = "user_id") -> tuple[pd.Series, pd.Series]:
    """(step_start, step) of rows sorted by ``by`` then time; steps count from 0 within ``by``."""
    group_start = _starts(frame[by])
    group = group_start.cumsum().rename("_group")
    start = (group_start | frame["item_idx"].ne(frame["item_idx"].shift())) if collapse_repeats else \
        pd.Series(True, index=frame.index)
    step = start.astype(np.int64).groupby(group, sort=False).cumsum() - 1
    return start, step


def leave_one_out(encoded: pd.DataFrame, collapse_repeats: bool) -> dict[str, pd.DataFrame]:
    """Per user: last step → test, second-last → valid, the rest → train (fewer than 3 steps: train)."""
    _, step = mark_steps(encoded, collapse_repeats)
    last = step.groupby(_group_ids(encoded["user_id"]), sort=False).transform("max")
    long_enough = last >= 2
    role = np.select([long_enough & (step == last), long_enough & (step == last - 1)], ["test", "valid"], "train")
    return {name: encoded[role == name] for name in SPLITS}


def _blocks(values: pd.Series, starts: np.ndarray) -> list[np.ndarray]:
    """``values`` cut into its contiguous groups (``starts``: position of each group's first row).

    Slicing a sorted column is the fast way to build per-group lists; ``groupby().agg(list)`` boxes
    every element (a ``Timestamp`` per timestamp) and runs a Python call per group.
    """
    return np.split(values.to_numpy(), starts[1:])


def user_sequences(events: pd.DataFrame, collapse_repeats: bool, max_length: int | None) -> pd.DataFrame:
    """Per user: ``item_seq`` and ``timestamps`` of the last ``max_length`` steps (all when None),
    ``length`` (all steps)."""
    start, _ = mark_steps(events, collapse_repeats)
    steps = events.loc[start, ["user_idx", "user_id", "item_idx", "timestamp"]]
    by_user = steps.groupby(_group_ids(steps["user_id"]), sort=False)
    length = by_user.size()
    recent = steps if max_length is None else steps[by_user.cumcount(ascending=False) < max_length]
    firsts = np.flatnonzero(_starts(recent["user_id"]).to_numpy())
    # Rows follow the events, already sorted by (user_idx, user_id).
    return pd.DataFrame({
        "user_idx": recent["user_idx"].to_numpy()[firsts],
        "user_id": recent["user_id"].to_numpy()[firsts],
        "item_seq": _blocks(recent["item_idx"], firsts),
        "timestamps": _blocks(recent["timestamp"], firsts),
        "length": length.to_numpy(np.uint32),
    })


def evaluation_set(history: pd.DataFrame, targets: pd.DataFrame, collapse_repeats: bool) -> pd.DataFrame:
    """Per user with targets: ``history`` (every step before them) and ``targets`` (distinct, first seen)."""
    # Target events are sorted by user and time already: keeping the first row of each
    # (user, item) gives the distinct items in first-seen order.
    first_seen = targets.drop_duplicates(["user_id", "item_idx"])
    firsts = np.flatnonzero(_starts(first_seen["user_id"]).to_numpy())
    target_lists = pd.DataFrame({
        "user_idx": first_seen["user_idx"].to_numpy()[firsts],
        "user_id": first_seen["user_id"].to_numpy()[firsts],
        "targets": _blocks(first_seen["item_idx"], firsts),
    })
    histories = user_sequences(history, collapse_repeats, None)[["user_id", "item_seq"]]
    out = target_lists.merge(histories.rename(columns={"item_seq": "history"}), on="user_id", how="left")
    no_history = np.empty(0, dtype=np.uint32)  # users new in the target period
    out["history"] = [h if isinstance(h, np.ndarray) else no_history for h in out["history"]]
    return out.sort_values(["user_idx", "user_id"])[["user_idx", "user_id", "history", "targets"]]


# -- item statistics ------------------------------------------------------------------------------
def item_popularity(train: pd.DataFrame, reference_time: pd.Timestamp, recent_days: float) -> pd.DataFrame:
    """Per item with events: counts per event type, distinct users, summed weight, overall and recent."""
    recent = train["timestamp"] > reference_time - pd.Timedelta(timedelta(days=recent_days))
    frame = train[["item_idx", "user_idx", "weight", "timestamp"]].assign(
        _recent=recent, _recent_weight=train["weight"].where(recent, np.float32(0)))
    stats = frame.groupby("item_idx").agg(
        events=("item_idx", "size"),
        users=("user_idx", "nunique"),
        popularity=("weight", "sum"),
        recent_events=("_recent", "sum"),
        recent_popularity=("_recent_weight", "sum"),
        first_seen=("timestamp", "min"),
        last_seen=("timestamp", "max"),
    )
    per_type = (train.groupby(["item_idx", "event_code"]).size().unstack(fill_value=0)
                .reindex(columns=range(len(EVENT_TYPES)), fill_value=0))
    per_type.columns = [f"{name}_count" for name in EVENT_TYPES]
    stats = stats.join(per_type)
    counts = ["events", "users", "recent_events", *per_type.columns]
    stats[counts] = stats[counts].astype(np.uint32)
    stats[["popularity", "recent_popularity"]] = stats[["popularity", "recent_popularity"]].astype(np.float32)
    order = ["events", "users", "popularity", "recent_events", "recent_popularity", *per_type.columns,
             "first_seen", "last_seen"]
    return stats[order].reset_index()


def _windowed_pairs(steps: pd.DataFrame, window: int) -> pd.DataFrame:
    """(item_a, item_b) of two rows of a session at most ``window`` apart, both directions.

    Sessions are contiguous blocks of rows, so shifting by 1..window and checking that the session
    is the same pairs a row with its next ``window`` rows in linear time.
    """
    item = steps["item_idx"]
    session = steps["session_id"]
    forward = []
    for offset in range(1, window + 1):
        nxt = item.shift(-offset)
        keep = session.shift(-offset).eq(session) & nxt.ne(item)
        forward.append(pd.DataFrame({"item_a": item[keep].to_numpy(),
                                     "item_b": nxt[keep].to_numpy().astype(np.uint32)}))
    pairs = pd.concat(forward, ignore_index=True)
    backward = pairs.rename(columns={"item_a": "item_b", "item_b": "item_a"})
    return pd.concat([pairs, backward[["item_a", "item_b"]]], ignore_index=True)


def _top_k(pairs: pd.DataFrame, kind: str, top_k: int) -> pd.DataFrame:
    counts = pairs.groupby(["item_a", "item_b"]).size().rename("count").reset_index()
    ranked = counts.sort_values(["item_a", "count", "item_b"], ascending=[True, False, True])
    top = ranked.groupby("item_a", sort=False).head(top_k)
    return pd.DataFrame({"kind": kind, "item_a": top["item_a"].to_numpy(np.uint32),
                         "item_b": top["item_b"].to_numpy(np.uint32), "count": top["count"].to_numpy(np.uint32)})


def cooccurrence(train: pd.DataFrame, window: int, top_k: int) -> pd.DataFrame:
    """``also_viewed`` over steps of a session (repeats collapsed), ``bought_together`` over the
    distinct carted or purchased items of a session; top ``top_k`` neighbours per item and kind."""
    start, _ = mark_steps(train, True, by="session_id")
    viewed = train.loc[start, ["session_id", "item_idx"]]
    basket_codes = [EVENT_TYPES.index(t) for t in BASKET_EVENTS]
    basket = (train.loc[train["event_code"].isin(basket_codes), ["session_id", "item_idx"]]
              .drop_duplicates(["session_id", "item_idx"]))
    return pd.concat([
        _top_k(_windowed_pairs(viewed, window), "also_viewed", top_k),
        _top_k(_windowed_pairs(basket, window), "bought_together", top_k),
    ], ignore_index=True)


# -- the whole path -------------------------------------------------------------------------------
def _write(frame: pd.DataFrame, path: Path, list_types: dict[str, pa.DataType] | None = None) -> None:
    """Write a table as parquet; ``list_types``: arrow types of the columns holding numpy arrays."""
    list_types = list_types or {}
    table = pa.Table.from_pandas(frame.drop(columns=list(list_types)), preserve_index=False)
    for name, dtype in list_types.items():
        arrays = frame[name].tolist()
        offsets = np.zeros(len(arrays) + 1, dtype=np.int32)
        np.cumsum([len(a) for a in arrays], out=offsets[1:])
        values = np.concatenate(arrays) if arrays else np.empty(0)
        column = pa.ListArray.from_arrays(pa.array(offsets), pa.array(values, type=dtype.value_type))
        table = table.append_column(name, column)
    pq.write_table(table.select(list(frame.columns)), path)


def preprocess_pandas(events: pd.DataFrame, items: pd.DataFrame | None, config: WorkflowConfig,
                      output_dir: Path) -> dict[str, int]:
    """Leave-one-out preprocessing in pandas; writes the event, sequence and statistics tables.

    Parameters
    ----------
    events : pd.DataFrame
        Columns ``user_id, item_id, event_type, timestamp, weight`` of the generic schema
        (e.g. ``RawDataset.events.to_pandas()``); timestamps are used at microsecond resolution.
    items : pd.DataFrame or None
        Catalog with an ``item_id`` column: listed items always get an index.
    config : WorkflowConfig
        The same configuration the polars pipeline gets.
    output_dir : Path
        Created if missing; gets the parquet files of the polars layout (no items/workflow files).

    Returns
    -------
    dict of str to int
        ``{train,valid,test}_events``, ``{train,valid,test}_users`` and ``cooccurrence_pairs``.
    """
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    if len(events) == 0:
        raise ValueError("cannot fit the workflow on zero events")
    users = fit_vocabulary(events["user_id"], config.min_user_count)
    item_vocab = fit_vocabulary(events["item_id"], config.min_item_count,
                                always_keep=None if items is None else items["item_id"])
    timestamps = events["timestamp"].astype("datetime64[us]")
    start_time, reference_time = timestamps.min(), timestamps.max()

    encoded = transform(events, users, item_vocab, config, start_time)
    encoded = encoded[encoded["item_idx"] != OOV]
    parts = {name: frame.reset_index(drop=True) for name, frame in
             leave_one_out(encoded, config.collapse_repeats).items()}
    train, valid, test = (parts[name] for name in SPLITS)
    history = pd.concat([train, valid]).sort_values(["user_idx", "user_id", "timestamp"], kind="stable")
    tables = {
        "sequences_train": user_sequences(train, config.collapse_repeats, config.max_sequence_length),
        "eval_valid": evaluation_set(train, valid, config.collapse_repeats),
        "eval_test": evaluation_set(history.reset_index(drop=True), test, config.collapse_repeats),
        "item_stats": item_popularity(train, reference_time, config.recent_days),
        "cooccurrence": cooccurrence(train, config.cooccurrence_window, config.cooccurrence_top_k),
    }

    for name, frame in parts.items():
        _write(frame, output_dir / f"events_{name}.parquet")
    _write(tables["sequences_train"], output_dir / "sequences_train.parquet",
           {"item_seq": _ITEM_LIST, "timestamps": _TIME_LIST})
    for name in ("eval_valid", "eval_test"):
        _write(tables[name], output_dir / f"{name}.parquet", {"history": _ITEM_LIST, "targets": _ITEM_LIST})
    _write(tables["item_stats"], output_dir / "item_stats.parquet")
    _write(tables["cooccurrence"], output_dir / "cooccurrence.parquet")
    return {
        **{f"{name}_events": len(frame) for name, frame in parts.items()},
        "train_users": len(tables["sequences_train"]),
        "valid_users": len(tables["eval_valid"]),
        "test_users": len(tables["eval_test"]),
        "cooccurrence_pairs": len(tables["cooccurrence"]),
    }
