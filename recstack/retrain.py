"""One retraining round: the serving version extended with the event log's new events, trained (warm-started, or
from scratch with ``full``), judged by the quality gate, then published or refused, and recorded in the versions
journal (:mod:`recstack.versions`). ``recstack retrain`` and ``recstack loop`` run it: :func:`retrain`, then
:func:`gate`, then :func:`decide`."""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import polars as pl

from recstack.ensemble.build import REPOSITORY_FILE
from recstack.ensemble.new_items import read_new_items
from recstack.ensemble.publish import publish, serving_state
from recstack.preprocessing.incremental import EVENT_KEY, extend_prepared
from recstack.preprocessing.lake import LAKE_NAME, EventLake
from recstack.preprocessing.layout import PreparedLayout
from recstack.preprocessing.schema import EVENT_TYPES
from recstack.preprocessing.tombstones import read_tombstones
from recstack.preprocessing.vocabulary import OOV, Vocabulary
from recstack.settings import Settings
from recstack.training.data import load_prepared
from recstack.training.gate import GateResult, judge
from recstack.training.train_models import RECIPES, train_models
from recstack.training.warm_start import serving_checkpoint
from recstack.versions import VersionsJournal

NEURAL_MODELS = tuple(RECIPES)


class RetrainError(RuntimeError):
    """Retraining cannot start: what is served is unknown or incomplete."""


@dataclass
class Candidate:
    """A retrained version waiting for its decision: its journal entry (written once decided), the serving
    version it grew from, and the users whose new events it learned."""

    entry: dict
    serving: dict
    recent_users: np.ndarray
    gate: GateResult | None = None


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def serving_entry(settings: Settings, journal: VersionsJournal) -> dict:
    """The journal entry of the version Triton serves by default; the first time, the repository's own build
    becomes the journal's initial entry."""
    repository = settings.model_repository
    if not (repository / REPOSITORY_FILE).exists():
        raise RetrainError(f"no model repository at {repository}: build and serve one first (`recstack demo`, or "
                           "`recstack build-repo`)")
    default = serving_state(repository)["default"]
    entry = journal.served_by(default)
    if entry is not None:
        return entry
    report = json.loads((repository / REPOSITORY_FILE).read_text())
    if report["version"] != default:
        raise RetrainError(f"repository version {default} serves, but the journal {journal.path} does not know "
                           f"which data and models it was built from (only version {report['version']} is "
                           "described): publish a version with `recstack publish` first")
    fingerprint = PreparedLayout(report["data_dir"]).read_manifest().fingerprint
    if fingerprint != report["dataset_fingerprint"]:
        raise RetrainError(f"{report['data_dir']} was prepared again since repository version {default} was built "
                           "from it: retraining would grow another dataset than the one served; rebuild the "
                           "repository from it (`recstack build-repo --reload`) first")
    return journal.append({
        "version": journal.next_version(), "at": now(), "mode": "initial", "parent": None,
        "data_dir": report["data_dir"], "models_dir": report["models_dir"],
        "data_cutoff": _cutoff(report["data_dir"]), "decision": "initial", "repository_version": default,
        "reason": "the version served when retraining began"})


def _cutoff(data_dir: str | Path) -> str:
    state = json.loads((PreparedLayout(data_dir).workflow / "workflow.json").read_text())
    return state["reference_time"]


def recent_user_indices(data_dir: Path, new_events: pl.DataFrame) -> np.ndarray:
    """Indices of the users the new events belong to (the OOV bucket left out)."""
    users = Vocabulary.load(PreparedLayout(data_dir).workflow, "user_id").encode(new_events["user_id"].unique())
    return np.unique(users.to_numpy().astype(np.int64)[users.to_numpy() > OOV])


def new_event_times(lake: EventLake, log: pl.DataFrame, new_events: pl.DataFrame) -> pl.Series:
    """When each of ``new_events`` reached the facade's stream (null where the log cannot tell)."""
    ids = log.join(new_events.select(EVENT_KEY), on=list(EVENT_KEY), how="semi", nulls_equal=True)
    return ids.select("event_id").join(lake.accepted_at(), on="event_id", how="left")["accepted_at"]


def retrain(settings: Settings, full: bool = False, progress: bool = True,
            say: Callable[[str], None] = print) -> Candidate | None:
    """Build a candidate from the serving version and the event log: prepared data extended (or, with ``full``,
    the same extended data trained from scratch), models trained warm from the serving ones on the users with
    new events plus a replay sample. None when the log holds nothing new (the round is not recorded)."""
    journal = VersionsJournal(settings.versions_dir)
    serving = serving_entry(settings, journal)
    version = journal.next_version()
    folder = journal.folder(version)
    if folder.exists():  # a round that crashed before its decision: start it again
        shutil.rmtree(folder)
    lake = EventLake(settings.build_dir / LAKE_NAME)
    log = lake.events().filter(pl.col("event_type").is_in(EVENT_TYPES))
    ingest_file = settings.facade_config().ingest_file
    added = read_new_items(ingest_file) if ingest_file.exists() else None
    started = time.perf_counter()
    extension = extend_prepared(serving["data_dir"], log, added, folder / "data", engine=settings.engine,
                                progress=progress, tombstones=read_tombstones(settings.tombstones_file))
    if extension.new_events.height == 0 and not full:
        shutil.rmtree(folder)
        say(f"nothing new since version {serving['version']}: no retraining")
        return None
    prepared = time.perf_counter()
    say(f"version {version}: {extension.new_events.height:,} new events, {extension.new_items:,} new items on top "
        f"of version {serving['version']} ({prepared - started:.1f} s)")
    data_dir, models_dir = folder / "data", folder / "models"
    recent = recent_user_indices(data_dir, extension.new_events)
    if len(recent) == 0 and not full:
        shutil.rmtree(folder)
        say(f"version {version}: the new events belong to no user the workflow keeps (below min_user_count): "
            "nothing to learn yet")
        return None
    if full:
        summary = train_models(data_dir, models_dir, NEURAL_MODELS, settings.train, settings.sasrec,
                               settings.two_tower, progress=progress)
    else:
        warm = {name: serving_checkpoint(Path(serving["models_dir"]) / name) for name in NEURAL_MODELS}
        summary = train_models(data_dir, models_dir, NEURAL_MODELS,
                               replace(settings.train, epochs=settings.retrain.epochs,
                                       validate_every=settings.retrain.epochs), settings.sasrec,
                               settings.two_tower, progress=progress, warm_start=warm, recent_users=recent,
                               replay=settings.retrain.replay)
    trained = time.perf_counter()
    accepted = new_event_times(lake, log, extension.new_events).drop_nulls().dt.replace_time_zone("UTC")
    entry = {"version": version, "at": now(), "mode": "full" if full else "incremental",
             "parent": serving["version"], "data_dir": str(data_dir.resolve()), "models_dir": str(models_dir.resolve()),
             "data_cutoff": _cutoff(data_dir), "new_events": extension.new_events.height,
             "new_items": extension.new_items, "recent_users": len(recent),
             "first_accepted": _iso(accepted.min()), "last_accepted": _iso(accepted.max()),
             "preprocess_seconds": round(prepared - started, 1), "train_seconds": round(trained - prepared, 1),
             # the models' fitting alone; train_seconds adds their test, ONNX export and parity checks
             "fit_seconds": {name: report["train_seconds"] for name, report in summary["reports"].items()}}
    return Candidate(entry, serving, recent)


def gate(settings: Settings, candidate: Candidate) -> GateResult:
    """Judge the candidate against the serving version on the held-out window (:func:`training.gate.judge`)."""
    entry, serving = candidate.entry, candidate.serving
    serving_items = PreparedLayout(serving["data_dir"]).read_manifest().n_items
    result = judge(Path(entry["models_dir"]), Path(serving["models_dir"]), serving_items,
                   load_prepared(entry["data_dir"]), candidate.recent_users, settings.sasrec, settings.gate)
    candidate.gate = result
    return result


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


def freshness(entry: dict, published: datetime) -> dict[str, float] | None:
    """Seconds from the round's first and last new events reaching the facade's stream to their model's
    publication."""
    if entry["first_accepted"] is None:
        return None
    return {name: round((published - datetime.fromisoformat(entry[key])).total_seconds(), 1)
            for name, key in (("first_event", "first_accepted"), ("last_event", "last_accepted"))}


def decide(settings: Settings, candidate: Candidate, triton_url: str | None = None, canary: float | None = None,
           say: Callable[[str], None] = print) -> dict:
    """Publish a candidate that passed the gate (as the default, or as a canary for the ``canary`` share of users
    until ``recstack promote``) and record the decision in the journal; a refused one is recorded and the serving
    version stays."""
    if candidate.gate is None:
        raise RetrainError("a candidate is judged by the gate before it is published")
    journal = VersionsJournal(settings.versions_dir)
    entry = {**candidate.entry, "gate": candidate.gate.to_json(), "reason": candidate.gate.reason}
    if not candidate.gate.passed:
        entry.update(decision="refused", repository_version=None, freshness_s=None)
        say(f"version {entry['version']} refused; version {candidate.serving['version']} keeps serving")
        return journal.append(entry)
    ingest_file = settings.facade_config().ingest_file
    withdrawn = serving_state(settings.model_repository)["canary"] if canary is None else None
    report = publish(entry["data_dir"], entry["models_dir"], settings.model_repository, settings.serving,
                     triton_url=triton_url, new_items=ingest_file if ingest_file.exists() else None, verbose=False,
                     canary=canary)
    published = datetime.now(UTC)
    entry.update(decision="canary" if canary else "published", repository_version=report["version"], published_at=now(),
                 freshness_s=freshness(entry, published), withdrawn_canary=withdrawn)
    say(f"version {entry['version']} published as repository version {report['version']}"
        + (f", a canary for {canary:.0%} of users" if canary else "")
        + (f"; canary version {withdrawn} withdrawn" if withdrawn is not None else "")
        + (f"; Triton at {triton_url} serves it" if triton_url else ""))
    return journal.append(entry)
