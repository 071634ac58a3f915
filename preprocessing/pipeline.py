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
from recstack.preprocessing.engine import EngineName, collect, resolve_engine
from recstack.preprocessing.item_stats import cooccurrence, item_popularity
from recstack.preprocessing.layout import Manifest, PreparedLayout
from recstack.preprocessing.schema import InputError, RawDataset
from recstack.preprocessing.sequences import evaluation_set, user_sequences
from recstack.preprocessing.splits import SPLITS, by_split, leave_one_out, temporal_split
from recstack.preprocessing.tombstones import forgotten
from recstack.preprocessing.vocabulary import OOV
from recstack.preprocessing.workflow import Workflow
from tqdm.auto import tqdm


def dataset_fingerprint(dataset: RawDataset) -> str:
    """Content hash of the input (order-insensitive row hashes), stable for identical data."""
    digest = hashlib.sha256(dataset.name.encode())
    for frame in (dataset.events, dataset.items):
        if frame is not None:
            digest.update(f"{frame.height}:{frame.columns}".encode())
            digest.update(str(int(frame.hash_rows(seed=0).cast(pl.UInt64).sum())).encode())
    return digest.hexdigest()[:16]


def _drop_oov_items(events: pl.DataFrame, split: str, dropped: dict[str, int]) -> pl.DataFrame:
    """Remove (and count) events on out-of-vocabulary items: no model can learn or recommend them.

    Events of OOV users stay: they share the OOV user index, and their sequences are kept apart by
    the raw ``user_id``.
    """
    oov = pl.col("item_idx") == OOV
    dropped[f"{split}_events_on_oov_items"] = int(events.select(oov.sum()).item())
    return events.filter(~oov)


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
    cutoffs: dict = {}

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
            encoded = _drop_oov_items(wf.transform(dataset.events), "all", dropped)
            step("fit + transform")
            marked = collect(leave_one_out(encoded.lazy(), workflow.collapse_repeats), engine_name)
            parts = by_split(marked)
            # Train + valid in the original (user, time) order: the test histories.
            history = marked.filter(pl.col("split") != "test").drop("split")
        else:
            raw_parts, cutoffs = temporal_split(dataset.events, split)
            wf = fitted(raw_parts["train"])
            step("fit")
            parts = {name: _drop_oov_items(wf.transform(frame), name, dropped) for name, frame in raw_parts.items()}
            history = pl.concat([parts["train"], parts["valid"]]).sort(["user_idx", "user_id", "timestamp"],
                                                                       maintain_order=True)
        for name in SPLITS:
            files[layout.events(name).name] = parts[name]
        step("split")

        train = parts["train"].lazy()
        cfg = workflow
        files[layout.sequences_train.name] = collect(
            user_sequences(train, cfg.collapse_repeats, cfg.max_sequence_length), engine_name)
        files[layout.eval_valid.name] = collect(
            evaluation_set(train, parts["valid"].lazy(), cfg.collapse_repeats), engine_name)
        files[layout.eval_test.name] = collect(
            evaluation_set(history.lazy(), parts["test"].lazy(), cfg.collapse_repeats), engine_name)
        step("sequences")

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
        split={**split.to_json(), **cutoffs},
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
