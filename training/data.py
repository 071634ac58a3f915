"""The preprocessed layout as arrays the models train and evaluate on."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import polars as pl
from recstack.preprocessing.layout import Manifest, PreparedLayout
from recstack.preprocessing.schema import EVENT_TYPES
from recstack.preprocessing.sequences import mark_steps
from recstack.preprocessing.vocabulary import OOV
from recstack.training.config import OBJECTIVES

# A step's funnel stage: 1 + its furthest event's position here (1 view ... 4 purchase); 0 unknown (e.g. ratings).
FUNNEL = ("view", *OBJECTIVES)
UNKNOWN_STAGE = 0


@dataclass(frozen=True)
class EvalSet:
    """Users to evaluate: their history (oldest first) and held-out target items."""

    user_idx: np.ndarray
    histories: list[np.ndarray]
    targets: list[np.ndarray]

    def __len__(self) -> int:
        return len(self.user_idx)

    def subset(self, rows: np.ndarray) -> EvalSet:
        return EvalSet(self.user_idx[rows], [self.histories[i] for i in rows], [self.targets[i] for i in rows])

    def by_history_length(self) -> EvalSet:
        """The same users, shortest history first: batches of a sequence model padded to their longest history
        then pad little. Metrics are sums over users, so the order does not change them.

        Examples
        --------
        >>> users = EvalSet(np.array([7, 8]), [np.array([4, 5, 6]), np.array([3])], [np.array([2])] * 2)
        >>> users.by_history_length().user_idx
        array([8, 7])
        """
        return self.subset(np.argsort([len(h) for h in self.histories], kind="stable"))


@dataclass(frozen=True)
class PreparedData:
    """Everything training reads from ``build/data/<dataset>/``.

    Attributes
    ----------
    n_items : int
        Rows of an item embedding table: item indices are ``0 .. n_items - 1`` with 0 = padding and
        1 = out-of-vocabulary, so recommendable items are ``2 .. n_items - 1``.
    train_sequences : list of np.ndarray
        Each training user's steps, oldest first (at most ``max_sequence_length`` of them).
    train_stages : list of np.ndarray or None
        The funnel stage of each of those steps (``FUNNEL``), once :meth:`with_funnel_stages` has read them.
    """

    folder: Path
    manifest: Manifest
    n_items: int
    n_users: int
    train_user_idx: np.ndarray
    train_sequences: list[np.ndarray]
    valid: EvalSet
    test: EvalSet
    items: pl.DataFrame
    item_stats: pl.DataFrame
    train_stages: list[np.ndarray] | None = None

    @property
    def name(self) -> str:
        return self.manifest.dataset

    @property
    def fingerprint(self) -> str:
        return self.manifest.fingerprint

    def train_and_valid_sequences(self) -> list[np.ndarray]:
        """Each training user's sequence followed by their validation targets: the data of the finishing
        epochs (``TrainConfig.finish_epochs``). Test targets stay unseen; users without validation events, and
        users sharing the OOV index, keep their training sequence."""
        targets = {int(u): t for u, t in zip(self.valid.user_idx, self.valid.targets, strict=True) if u > OOV}
        return [np.concatenate([seq, targets[int(u)]]) if int(u) in targets else seq
                for u, seq in zip(self.train_user_idx, self.train_sequences, strict=True)]

    def with_funnel_stages(self) -> PreparedData:
        """The same data with ``train_stages``: per training step, 1 + the position in ``FUNNEL`` of its furthest
        event (a view → click → cart → purchase run on one item is one step), ``UNKNOWN_STAGE`` for event types
        outside the funnel. Read from the training events as the preprocessing cut them into steps; call it on
        the data as loaded, before :meth:`shifted_back` or a warm start's focus (which keep it aligned)."""
        layout = PreparedLayout(self.folder)
        codes = {EVENT_TYPES.index(name): stage for stage, name in enumerate(FUNNEL, start=1)}
        events = pl.scan_parquet(layout.events("train")).select("user_id", "item_idx", "event_code").with_columns(
            pl.col("event_code").replace_strict(codes, default=UNKNOWN_STAGE, return_dtype=pl.Int8).alias("stage"))
        collapse = self.manifest.workflow.get("collapse_repeats", True)
        window = self.manifest.workflow.get("max_sequence_length")
        steps = (mark_steps(events, collapse).group_by("user_id", "step", maintain_order=True)
                 .agg(pl.col("stage").max())
                 .group_by("user_id", maintain_order=True).agg(pl.col("stage").tail(window)))
        users = pl.read_parquet(layout.sequences_train, columns=["user_id"])
        stages = users.join(steps.collect(), on="user_id", how="left", maintain_order="left")
        result = _lists(stages, "stage")
        if len(result) != len(self.train_sequences) or any(
                len(a) != len(b) for a, b in zip(result, self.train_sequences, strict=True)):
            raise ValueError(f"{self.folder}: the training events do not match the training sequences (call "
                             "with_funnel_stages on the data as loaded)")
        return replace(self, train_stages=result)

    def shifted_back(self) -> PreparedData:
        """The same users one event earlier, for choosing settings without ever touching a test target.

        The validation targets become the test targets and each validated user's last training event becomes
        the validation target (training sequences lose it). Settings picked by test metrics on this split were
        picked without the real test split. Users without a validation event keep their training sequence;
        users sharing the OOV index are left out of validation and test (their sequences cannot be told apart).
        The fingerprint changes, so a run on this split never resumes or versions as one on the real split. Item
        statistics and the raw training events (popularity, the baselines' input) still describe the real
        training split: this split is for choosing the sequence models' settings. Leave-one-out splits only.

        Examples
        --------
        >>> data = load_prepared(Path("build/data/synthetic")).shifted_back()  # doctest: +SKIP
        """
        strategy = self.manifest.split.get("strategy")
        if strategy != "leave_one_out":
            raise ValueError(f"shifted_back needs a leave-one-out split; {self.name} has {strategy!r}")
        keep = np.array([u > OOV and len(h) >= 2 for u, h in zip(self.valid.user_idx, self.valid.histories,
                                                                  strict=True)], dtype=bool)
        valid = self.valid.subset(np.flatnonzero(keep))
        validated = {int(u) for u in valid.user_idx}
        fingerprint = hashlib.sha256(f"{self.fingerprint}:shifted_back".encode()).hexdigest()[:16]
        return replace(
            self,
            manifest=replace(self.manifest, fingerprint=fingerprint),
            train_sequences=[seq[:-1] if int(u) in validated and len(seq) >= 2 else seq
                             for u, seq in zip(self.train_user_idx, self.train_sequences, strict=True)],
            train_stages=None if self.train_stages is None else [
                stage[:-1] if int(u) in validated and len(stage) >= 2 else stage
                for u, stage in zip(self.train_user_idx, self.train_stages, strict=True)],
            valid=EvalSet(valid.user_idx, [h[:-1] for h in valid.histories], [h[-1:] for h in valid.histories]),
            test=valid)

    def train_interactions(self) -> tuple[np.ndarray, np.ndarray]:
        """(user row, item index) of every training event, untruncated; user rows are dense from 0.

        Rows come from the raw ``user_id`` so users sharing the OOV index stay apart.
        """
        events = pl.read_parquet(PreparedLayout(self.folder).events("train"), columns=["user_id", "item_idx"])
        rows = events["user_id"].rank("dense").cast(pl.Int64).to_numpy() - 1
        return rows, events["item_idx"].cast(pl.Int64).to_numpy()

    def item_popularity(self) -> np.ndarray:
        """Training interaction counts per item index (0 for padding, OOV and unseen items)."""
        counts = np.zeros(self.n_items, dtype=np.float64)
        counts[self.item_stats["item_idx"].to_numpy()] = self.item_stats["events"].to_numpy()
        return counts


def _lists(frame: pl.DataFrame, column: str) -> list[np.ndarray]:
    """A list column as one int64 array per row, without a Python object per element."""
    offsets = np.concatenate([[0], np.cumsum(frame[column].list.len().to_numpy().astype(np.int64))])
    flat = frame[column].explode().drop_nulls().to_numpy().astype(np.int64)
    return [flat[offsets[i]:offsets[i + 1]] for i in range(frame.height)]


def _eval_set(frame: pl.DataFrame) -> EvalSet:
    return EvalSet(frame["user_idx"].to_numpy().astype(np.int64), _lists(frame, "history"), _lists(frame, "targets"))


def load_prepared(folder: Path) -> PreparedData:
    """Read a preprocessed dataset folder.

    Examples
    --------
    >>> data = load_prepared(Path("build/data/synthetic"))  # doctest: +SKIP
    >>> data.n_items, len(data.test)  # doctest: +SKIP
    (5002, 6916)
    """
    layout = PreparedLayout(folder)
    manifest = layout.read_manifest()
    sequences = pl.read_parquet(layout.sequences_train)
    return PreparedData(
        folder=layout.root,
        manifest=manifest,
        n_items=manifest.n_items,
        n_users=manifest.n_users,
        train_user_idx=sequences["user_idx"].to_numpy().astype(np.int64),
        train_sequences=_lists(sequences, "item_seq"),
        valid=_eval_set(pl.read_parquet(layout.eval_valid)),
        test=_eval_set(pl.read_parquet(layout.eval_test)),
        items=pl.read_parquet(layout.items),
        item_stats=pl.read_parquet(layout.item_stats),
    )


def pad_left(sequences: list[np.ndarray], length: int) -> np.ndarray:
    """The last ``length`` items of each sequence, right-aligned in a zero-padded int64 matrix."""
    out = np.zeros((len(sequences), length), dtype=np.int64)
    for row, seq in enumerate(sequences):
        tail = seq[-length:]
        if len(tail):
            out[row, length - len(tail):] = tail
    return out


__all__ = ["EvalSet", "PreparedData", "load_prepared", "pad_left"]
