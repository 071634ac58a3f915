"""The versions journal: every retraining round, its data, metrics and decision, one JSON line each.

Layout (under ``build/versions`` by default)::

    journal.jsonl            one entry per round (appended; only a line a crash cut short is ever removed)
    .lock                    held (flock) by the round in progress: one round at a time per build folder
    0002/data/               the round's prepared data (preprocessing/README.md layout)
    0002/models/             its trained models and ONNX exports (training/README.md layout)

An entry holds ``version``, ``at``, ``mode`` (``initial``, ``incremental`` or ``full``), ``parent`` (the version
it was retrained from), ``data_dir``, ``models_dir``, ``data_cutoff`` (its newest event), ``new_events``,
``new_items``, ``first_accepted`` / ``last_accepted`` (when its first and last new events reached the facade's
stream), ``preprocess_seconds``, ``train_seconds`` (fitting, tests and exports) and ``fit_seconds`` (the fitting
alone, per model), ``gate`` (metric, users, both versions' metrics, reason), ``decision`` (``initial``,
``published``, ``canary`` or ``refused``), ``repository_version`` (the Triton repository version that serves it),
``withdrawn_canary`` (a canary its publication replaced) and ``freshness_s`` (seconds from its first and last new
events reaching the stream to its publication). ``recstack promote`` and ``recstack rollback`` add a line each
(decision ``promoted`` or ``rolled back``) with the repository version that serves after them and its journal
``version`` (None when the journal does not know it).
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

VERSIONS_NAME = "versions"  # folder under the build folder
JOURNAL_NAME = "journal.jsonl"
SERVED = ("initial", "published", "canary")  # decisions after which a repository version serves the entry


class RoundInProgress(RuntimeError):
    """Another process is running a retraining round on the same journal."""


@dataclass(frozen=True)
class VersionsJournal:
    root: Path  # build/versions

    @property
    def path(self) -> Path:
        return self.root / JOURNAL_NAME

    def entries(self) -> list[dict]:
        """Every entry, oldest first; a last line cut short by a crash while it was written is not one."""
        if not self.path.exists():
            return []
        text = self.path.read_text()
        lines = [line for line in text.splitlines() if line.strip()]
        if lines and not text.endswith("\n"):
            lines.pop()
        return [json.loads(line) for line in lines]

    def append(self, entry: dict) -> dict:
        """Add ``entry`` durably: a crash leaves the journal with or without the whole line."""
        self.root.mkdir(parents=True, exist_ok=True)
        if self.path.exists():  # a line a crash cut short was never an entry: it goes before the next one
            text = self.path.read_bytes()
            with self.path.open("r+b") as f:
                f.truncate(text.rfind(b"\n") + 1)
        with self.path.open("a") as f:
            f.write(json.dumps(entry, default=str) + "\n")
            f.flush()
            os.fsync(f.fileno())
        return entry

    @contextmanager
    def round(self) -> Iterator[None]:
        """Hold the journal for one round: a second ``recstack retrain`` or ``loop`` on the same build folder
        would pick the same version number and delete the first one's folder as a crashed round's."""
        self.root.mkdir(parents=True, exist_ok=True)
        with (self.root / ".lock").open("w") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise RoundInProgress(f"another retraining round holds {self.root}: wait for it to end") from None
            yield  # the lock goes with the file's closing, also when the process dies

    def next_version(self) -> int:
        return max((e["version"] for e in self.entries() if e["version"] is not None), default=0) + 1

    def folder(self, version: int) -> Path:
        return self.root / f"{version:04d}"

    def served_by(self, repository_version: int) -> dict | None:
        """The newest entry that the repository version serves, or None when the journal does not know it."""
        for entry in reversed(self.entries()):
            if entry.get("repository_version") == repository_version and entry["decision"] in SERVED:
                return entry
        return None
