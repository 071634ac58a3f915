"""End-to-end preprocessing of one dataset into the prepared-data layout the training stage reads
(:mod:`recstack.preprocessing.layout`: the folder, its files and ``manifest.json``)."""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import polars as pl
from recstack.preprocessing.config import SplitConfig, WorkflowConfig
from recstack.preprocessing.engine import Engine, EngineName, collect, resolve_engine
from recstack.preprocessing.item_stats import cooccurrence, item_popularity
from recstack.preprocessing.layout import Manifest, PreparedLayout
from recstack.preprocessing.schema import InputError, RawDataset
from recstack.preprocessing.sequences import evaluation_set, user_sequences
from recstack.preprocessing.splits import (
    SPLITS,
    by_split,
    check_temporal_split,
    cutoff_record,
    leave_one_out,
    temporal_cutoffs,
    temporal_parts,
)
from recstack.preprocessing.tombstones import forgotten
from recstack.preprocessing.vocabulary import OOV
from recstack.preprocessing.workflow import Workflow
from tqdm.auto import tqdm


def dataset_fingerprint(dataset: RawDataset) -> str:
    """Content hash of the input (order-insensitive row hashes), stable for identical data."""
    frames = [dataset.events] + ([] if dataset.items is None else [dataset.items])
    return fingerprint(dataset.name, [frame.lazy() for frame in frames])


def row_hashes(frame: pl.DataFrame) -> tuple[int, int]:
    """(rows, sum of the row hashes) of one batch of a table: what :func:`fingerprint_of` adds up."""
    return frame.height, int(frame.hash_rows(seed=0).cast(pl.UInt64).sum())


def fingerprint_of(name: str, tables: list[tuple[list[str], list[tuple[int, int]]]]) -> str:
    """:func:`dataset_fingerprint` from each table's column names and the :func:`row_hashes` of its batches (the
    sum of row hashes, modulo 2**64 as polars' own sum wraps, does not depend on the batches), wherever they were
    computed."""
    digest = hashlib.sha256(name.encode())
    for names, batches in tables:
        digest.update(f"{sum(rows for rows, _ in batches)}:{names}".encode())
        digest.update(str(sum(total for _, total in batches) % 2**64).encode())
    return digest.hexdigest()[:16]


def fingerprint(name: str, frames: list[pl.LazyFrame]) -> str:
    """:func:`dataset_fingerprint` of lazy tables, hashed a batch at a time."""
    return fingerprint_of(name, [(frame.collect_schema().names(),
                                  [row_hashes(batch) for batch in frame.collect_batches(engine="streaming")])
                                 for frame in frames])


def _drop_oov_items(events: pl.DataFrame, split: str, dropped: dict[str, int]) -> pl.DataFrame:
    """Remove (and count, adding to the chunks before) events on out-of-vocabulary items: no model can learn or
    recommend them.

    Events of OOV users stay: they share the OOV user index, and their sequences are kept apart by
    the raw ``user_id``.
    """
    oov = pl.col("item_idx") == OOV
    key = f"{split}_events_on_oov_items"
    dropped[key] = dropped.get(key, 0) + int(events.select(oov.sum()).item())
    return events.filter(~oov)


def _encoded(wf: Workflow, events: pl.DataFrame, label: str, dropped: dict[str, int],
             sessions: dict[str, int]) -> pl.DataFrame:
    """``events`` encoded without OOV items, their sessions numbered on from ``sessions[label]`` (those of the
    chunks of users before, which the streaming pipeline encodes one after the other)."""
    encoded = wf.transform(events)
    first = sessions.get(label, 0)
    sessions[label] = first + int(encoded["session_id"].max() or 0)
    if first:
        encoded = encoded.with_columns(pl.col("session_id") + pl.lit(first, pl.UInt32))
    return _drop_oov_items(encoded, label, dropped)


def encode_and_split(wf: Workflow, events: pl.DataFrame, cutoffs: tuple[datetime, datetime] | None, engine: Engine,
                     dropped: dict[str, int], sessions: dict[str, int]) -> tuple[dict[str, pl.DataFrame], pl.DataFrame]:
    """The encoded events of each split and those of the test histories (train + valid, by user and time), from
    the events of whole users: every user's events, or one chunk of users' at a time.

    ``cutoffs`` (valid_start, test_start) for a temporal split, None for leave-one-out.
    """
    if cutoffs is None:
        encoded = _encoded(wf, events, "all", dropped, sessions)
        marked = collect(leave_one_out(encoded.lazy(), wf.config.collapse_repeats), engine)
        # Train + valid in the original (user, time) order: the test histories.
        return by_split(marked), marked.filter(pl.col("split") != "test").drop("split")
    parts = {name: _encoded(wf, frame, name, dropped, sessions)
             for name, frame in temporal_parts(events, *cutoffs).items()}
    history = pl.concat([parts["train"], parts["valid"]]).sort(["user_idx", "user_id", "timestamp"],
                                                                maintain_order=True)
    return parts, history


def user_tables(parts: dict[str, pl.DataFrame], history: pl.DataFrame, layout: PreparedLayout,
                config: WorkflowConfig, engine: Engine) -> dict[str, pl.DataFrame]:
    """The per-user tables (training sequences, evaluation sets) by file name, of the users of ``parts``."""
    train = parts["train"].lazy()
    collapse = config.collapse_repeats
    return {
        layout.sequences_train.name: collect(user_sequences(train, collapse, config.max_sequence_length), engine),
        layout.eval_valid.name: collect(evaluation_set(train, parts["valid"].lazy(), collapse), engine),
        layout.eval_test.name: collect(evaluation_set(history.lazy(), parts["test"].lazy(), collapse), engine),
    }


def _schema(frame: pl.DataFrame) -> dict[str, str]:
    return {name: str(dtype) for name, dtype in frame.schema.items()}


def preprocess(dataset: RawDataset, output_dir: Path, workflow: WorkflowConfig | None = None,
               split: SplitConfig | None = None, engine: EngineName = "auto", progress: bool = True,
               tombstones: frozenset[str] = frozenset(), base: Workflow | None = None) -> Manifest:
    """Split, fit the workflow, transform and write every table of the layout; return the manifest.

    Parameters
    ----------
    dataset : RawDataset
        Input in the generic schema (see :mod:`recstack.preprocessing.datasets`).
    output_dir : Path
        Created if missing; existing files of the layout are replaced.
    workflow, split : WorkflowConfig, SplitConfig
        Defaults when omitted.
    engine : {"auto", "cpu", "gpu"}
        ``auto`` runs the plans on cuDF when a GPU and cudf-polars are present.
    tombstones : frozenset of str
        Digests of users who asked to be forgotten (:mod:`recstack.preprocessing.tombstones`): their events are
        dropped before anything is computed from them.
    base : Workflow, optional
        A fitted workflow to extend rather than fit anew (:meth:`Workflow.extend`, incremental retraining): known
        users and items keep their indices. Its config replaces ``workflow``.

    Examples
    --------
    >>> from recstack.preprocessing.datasets import load_dataset
    >>> manifest = preprocess(load_dataset("synthetic", n_events=10_000), Path("build/data/tiny"),
    ...                       progress=False)
    >>> manifest.counts["test_users"] > 0
    True
    """
    workflow = base.config if base is not None else workflow or WorkflowConfig()
    split = split or SplitConfig()
    if split.strategy == "temporal" and not dataset.has_timestamps:
        raise InputError(f"dataset {dataset.name!r} has no real timestamps (only an order), so a temporal "
                         "split means nothing; use the leave_one_out split")
    engine_name = resolve_engine(engine)
    layout = PreparedLayout(output_dir)
    layout.root.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    dropped: dict[str, int] = {}
    gone = forgotten(dataset.events["user_id"].unique().to_list(), tombstones)
    if gone:
        dataset = replace(dataset, events=dataset.events.filter(~pl.col("user_id").is_in(sorted(gone))))
        dropped["forgotten_users"] = len(gone)
    files: dict[str, pl.DataFrame] = {}
    cutoff_text: dict = {}

    with tqdm(total=6, desc=f"preprocess {dataset.name}", disable=not progress, unit="step") as bar:
        def step(label: str) -> None:
            bar.set_postfix_str(f"{label} done")
            bar.update(1)

        def fitted(events: pl.DataFrame) -> Workflow:
            if base is None:
                return Workflow(workflow, engine=engine_name).fit(events, dataset.items)
            return replace(base.extend(events, dataset.items), engine=engine_name)

        if split.strategy == "leave_one_out":
            # Leave-one-out holds out interactions, not time: every item and user is known, as in
            # the papers' protocol; popularity statistics still come from train only.
            wf = fitted(dataset.events)
            cutoffs = None
        else:
            cutoffs = temporal_cutoffs(dataset.events, split)
            raw_parts = temporal_parts(dataset.events, *cutoffs)
            check_temporal_split(raw_parts["train"].height, raw_parts["test"].height, *cutoffs)
            cutoff_text = cutoff_record(*cutoffs)
            wf = fitted(raw_parts["train"])
        step("fit")
        parts, history = encode_and_split(wf, dataset.events, cutoffs, engine_name, dropped, {})
        for name in SPLITS:
            files[layout.events(name).name] = parts[name]
        step("split")

        cfg = workflow
        files.update(user_tables(parts, history, layout, cfg, engine_name))
        step("sequences")

        train = parts["train"].lazy()
        files[layout.items.name] = wf.item_features(dataset.items)
        files[layout.item_stats.name] = collect(
            item_popularity(train, wf.reference_time, cfg.recent_days), engine_name)
        step("item features + popularity")
        files[layout.cooccurrence.name] = collect(
            cooccurrence(train, cfg.cooccurrence_window, cfg.cooccurrence_top_k), engine_name)
        step("co-occurrence")

        for name, frame in files.items():
            frame.write_parquet(layout.root / name)
        for name, frame in dataset.extras.items():
            layout.extra(name).parent.mkdir(exist_ok=True)
            frame.write_parquet(layout.extra(name))
        wf.save(layout.workflow)
        step("write")

    manifest = Manifest(
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
        dataset=dataset.name,
        has_timestamps=dataset.has_timestamps,
        fingerprint=dataset_fingerprint(dataset),
        engine=engine_name,
        polars_version=pl.__version__,
        workflow=workflow.to_json(),
        split={**split.to_json(), **cutoff_text},
        counts={
            "raw_events": dataset.events.height,
            "raw_users": dataset.events["user_id"].n_unique(),
            "raw_items": dataset.events["item_id"].n_unique(),
            "catalog_items": 0 if dataset.items is None else dataset.items.height,
            **{f"{name}_events": parts[name].height for name in SPLITS},
            "train_users": files[layout.sequences_train.name].height,
            "valid_users": files[layout.eval_valid.name].height,
            "test_users": files[layout.eval_test.name].height,
            "cooccurrence_pairs": files[layout.cooccurrence.name].height,
        },
        vocabulary_sizes={name: v.size for name, v in wf.vocabularies.items()},
        dropped=dropped,
        seconds=round(time.perf_counter() - started, 3),
        files={name: {"rows": frame.height, "schema": _schema(frame)} for name, frame in files.items()},
    )
    layout.manifest.write_text(json.dumps(manifest.to_json(), indent=2))
    return manifest


def format_summary(manifest: Manifest) -> str:
    """A short human summary of a preprocessing run."""
    c = manifest.counts
    v = manifest.vocabulary_sizes
    dropped = {k: n for k, n in manifest.dropped.items() if n}
    lines = [
        f"dataset {manifest.dataset} (fingerprint {manifest.fingerprint}, engine {manifest.engine}, "
        f"{manifest.seconds:.1f} s)",
        f"  raw: {c['raw_events']:,} events, {c['raw_users']:,} users, {c['raw_items']:,} items with events, "
        f"{c['catalog_items']:,} catalog items",
        f"  split {manifest.split['strategy']}: train {c['train_events']:,} / valid {c['valid_events']:,} / "
        f"test {c['test_events']:,} events; {c['valid_users']:,} valid users, {c['test_users']:,} test users",
        "  vocabularies: " + ", ".join(f"{name} {size:,}" for name, size in v.items()),
        f"  co-occurrence pairs: {c['cooccurrence_pairs']:,}",
        "  dropped: " + (", ".join(f"{k} {n:,}" for k, n in dropped.items()) if dropped else "nothing"),
    ]
    return "\n".join(lines)
