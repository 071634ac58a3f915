"""The prepared-data layout: the folder ``recstack preprocess`` writes and every later stage reads.

Layout of a prepared folder (every table is parquet; ids are workflow indices: 0 = padding, 1 = OOV)::

    manifest.json              dataset, fingerprint, configs, engine, counts, vocabulary sizes,
                               dropped rows, cut-offs and the schema of every file below
    workflow/                  the fitted workflow: workflow.json + vocab_<column>.parquet
    events_train.parquet       encoded events (user_idx, item_idx, event_code, weight, time features,
    events_valid.parquet         session_id, session_position), sorted by user and time
    events_test.parquet
    sequences_train.parquet    per user: item_seq (last max_sequence_length steps), timestamps, length
    eval_valid.parquet         per user: history (every step before the targets) and targets
    eval_test.parquet            (test history = train + valid)
    items.parquet              item tower features for every item index
    item_stats.parquet         popularity overall and recent, per event type, first/last seen
    cooccurrence.parquet       kind (also_viewed | bought_together), item_a, item_b, count
    extras/<name>.parquet      source-specific tables (e.g. Diginetica's published test prefixes)

:class:`PreparedLayout` names these paths once; :class:`Manifest` is ``manifest.json`` as a typed record.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

Split = Literal["train", "valid", "test"]
MANIFEST_VERSION = 1
MANIFEST_NAME = "manifest.json"


@dataclass(frozen=True)
class PreparedLayout:
    """The paths of one prepared dataset folder.

    Examples
    --------
    >>> layout = PreparedLayout(Path("build/data/shop"))
    >>> layout.eval_test.name, layout.events("valid").name, layout.vocabulary("category").name
    ('eval_test.parquet', 'events_valid.parquet', 'vocab_category.parquet')
    """

    root: Path

    def __post_init__(self):
        object.__setattr__(self, "root", Path(self.root))

    @property
    def manifest(self) -> Path:
        return self.root / MANIFEST_NAME

    @property
    def workflow(self) -> Path:
        return self.root / "workflow"

    def vocabulary(self, column: str) -> Path:
        return self.workflow / f"vocab_{column}.parquet"

    def events(self, split: Split) -> Path:
        return self.root / f"events_{split}.parquet"

    @property
    def sequences_train(self) -> Path:
        return self.root / "sequences_train.parquet"

    @property
    def eval_valid(self) -> Path:
        return self.root / "eval_valid.parquet"

    @property
    def eval_test(self) -> Path:
        return self.root / "eval_test.parquet"

    @property
    def items(self) -> Path:
        return self.root / "items.parquet"

    @property
    def item_stats(self) -> Path:
        return self.root / "item_stats.parquet"

    @property
    def cooccurrence(self) -> Path:
        return self.root / "cooccurrence.parquet"

    def extra(self, name: str) -> Path:
        return self.root / "extras" / f"{name}.parquet"

    def exists(self) -> bool:
        return self.manifest.exists()

    @classmethod
    def find(cls, root: Path) -> list[PreparedLayout]:
        """Every prepared dataset folder under ``root`` (model exports have manifests too, but no workflow)."""
        return [cls(m.parent) for m in sorted(Path(root).rglob(MANIFEST_NAME)) if (m.parent / "workflow").is_dir()]

    def read_manifest(self) -> Manifest:
        """The folder's manifest; a clear error when the folder holds no prepared dataset."""
        if not self.exists():
            raise FileNotFoundError(f"{self.manifest}: not a preprocessed dataset folder (run `recstack preprocess`)")
        return Manifest.from_json(json.loads(self.manifest.read_text()))


@dataclass(frozen=True)
class Manifest:
    """What a preprocessing run wrote, from what, with which settings (``manifest.json``).

    Examples
    --------
    >>> m = Manifest(dataset="shop", fingerprint="ab12", engine="cpu", vocabulary_sizes={"item_id": 7})
    >>> Manifest.from_json(m.to_json()) == m, m.n_items
    (True, 7)
    """

    dataset: str
    fingerprint: str
    engine: str
    manifest_version: int = MANIFEST_VERSION
    created_at: str = ""
    has_timestamps: bool = True
    polars_version: str = ""
    workflow: dict = field(default_factory=dict)  # the WorkflowConfig, as JSON
    split: dict = field(default_factory=dict)  # the SplitConfig and the cut-offs it produced
    counts: dict[str, int] = field(default_factory=dict)
    vocabulary_sizes: dict[str, int] = field(default_factory=dict)
    dropped: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    files: dict[str, dict] = field(default_factory=dict)  # file name -> rows and schema

    @property
    def n_items(self) -> int:
        """Rows of an item table: indices ``0 .. n_items - 1`` (0 = padding, 1 = OOV)."""
        return self.vocabulary_sizes["item_id"]

    @property
    def n_users(self) -> int:
        return self.vocabulary_sizes["user_id"]

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> Manifest:
        if data.get("manifest_version", MANIFEST_VERSION) != MANIFEST_VERSION:
            raise ValueError(f"manifest version {data['manifest_version']} is not {MANIFEST_VERSION}: preprocess the "
                             "dataset again with this version of recstack")
        return cls(**data)
