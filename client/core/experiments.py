"""A/B experiments: sticky assignment by hash(user, experiment), variants, and team-draft interleaving.

The experiments file (``RECSTACK_FACADE__EXPERIMENTS_FILE``) is JSON::

    {"experiments": [{"id": "model-vs-popular", "traffic": 1.0,
                      "variants": [{"name": "control", "weight": 0.5},
                                   {"name": "popular", "weight": 0.5, "source": "popular"}],
                      "interleave": false}]}

A variant's ``source`` is ``model`` (the Triton ensemble named by ``model``, default ``recommend``, at the model
``version`` when one is named) or ``popular``. A model variant may weigh the ranker's objective heads
(:class:`~recstack.ensemble.config.ObjectiveWeights`, sent with each of its requests), so a shop can test relevance
against expected revenue::

    {"experiments": [{"id": "relevance-vs-revenue",
                      "variants": [{"name": "relevance"},
                                   {"name": "revenue", "objectives": {"revenue": 0.05}}]}]}
 With ``"interleave": true`` (exactly two variants) every user of the
experiment gets one list merged from both by team draft, each item credited to the variant that contributed it.

While a canary version serves (``recstack publish --canary SHARE``), the model repository's ``serving.json`` says so
and the canary experiment comes first (:func:`canary_experiment`): ``SHARE`` of users get the canary version, as
many get the default as a control, and the experiment report compares the two. The file is read again when it
changes (:class:`~recstack.preprocessing.watch.FileWatch`, looked at every ``keys_refresh_s``), so a publish,
promote or rollback reaches every facade process within seconds, without a restart.
"""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import dataclass
from pathlib import Path

from recstack.ensemble.config import ObjectiveWeights
from recstack.ensemble.serving import CANARY_ENSEMBLE, DEFAULT_ENSEMBLE
from recstack.preprocessing.watch import FileWatch


@dataclass(frozen=True)
class Variant:
    name: str
    weight: float = 1.0
    source: str = "model"  # "model" or "popular"
    model: str = "recommend"
    version: int | None = None  # the model version its requests name; None: the server's choice
    objectives: ObjectiveWeights | None = None  # how its re-rank weighs the objective heads; None: as built

    @classmethod
    def from_json(cls, raw: dict) -> Variant:
        """A variant of the experiments file; ``objectives`` is an object of :class:`ObjectiveWeights`' fields."""
        weights = raw.get("objectives")
        return cls(**{**raw, "objectives": None if weights is None else ObjectiveWeights(**weights)})


@dataclass(frozen=True)
class Experiment:
    id: str
    variants: tuple[Variant, ...]
    traffic: float = 1.0
    interleave: bool = False

    def __post_init__(self):
        if not self.variants:
            raise ValueError(f"experiment {self.id!r} has no variants")
        if not 0 < self.traffic <= 1:
            raise ValueError(f"experiment {self.id!r}: traffic must be within (0, 1]")
        if any(v.weight <= 0 for v in self.variants) or len({v.name for v in self.variants}) != len(self.variants):
            raise ValueError(f"experiment {self.id!r}: variant weights must be positive and names unique")
        if any(v.source not in ("model", "popular") for v in self.variants):
            raise ValueError(f"experiment {self.id!r}: a variant's source is 'model' or 'popular'")
        if any(v.source == "popular" and v.objectives is not None for v in self.variants):
            raise ValueError(f"experiment {self.id!r}: objective weights need a model variant, not 'popular'")
        if self.interleave and len(self.variants) != 2:
            raise ValueError(f"experiment {self.id!r}: interleaving needs exactly two variants")


def canary_experiment(state: dict) -> Experiment | None:
    """The experiment of a serving state (``serving.json``) with a canary: the canary's share of users on the
    canary ensemble (naming its version, so a newer canary is never counted under this one's name), the same
    share on the default as the control; None without a canary."""
    canary, share = state.get("canary"), state.get("canary_share", 0.0)
    if canary is None:
        return None
    traffic = min(1.0, 2 * share)
    return Experiment(f"canary-r{canary}", (Variant(f"r{state['default']}", traffic - share, model=DEFAULT_ENSEMBLE),
                                            Variant(f"r{canary}", share, model=CANARY_ENSEMBLE, version=canary)),
                      traffic)


def bucket(user_id: str, salt: str) -> float:
    """A stable number in [0, 1) for a user within one experiment (independent across experiments)."""
    digest = hashlib.sha256(f"{salt}:{user_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


@dataclass(frozen=True)
class Assignment:
    experiment: Experiment
    variant: Variant | None  # None when the experiment interleaves its two variants


class Experiments:
    """
    Examples
    --------
    >>> exp = Experiments([Experiment("e1", (Variant("a"), Variant("b")))])
    >>> exp.assign("u42").variant.name == exp.assign("u42").variant.name  # sticky
    True
    """

    def __init__(self, experiments: list[Experiment] | None = None,
                 serving: FileWatch[Experiment | None] | None = None):
        self.experiments = list(experiments or [])
        self.serving = serving
        ids = [e.id for e in self.experiments]
        if len(set(ids)) != len(ids):
            raise ValueError(f"experiment ids must be unique: {ids}")

    @classmethod
    def load(cls, path: str | Path | None, serving_file: str | Path | None = None,
             refresh_s: float = 2.0) -> Experiments:
        """The experiments file's experiments (none without one), after the canary of ``serving_file`` (read
        again when it changes, looked at every ``refresh_s``)."""
        serving = FileWatch(serving_file, lambda p: canary_experiment(json.loads(p.read_text())), None,
                            refresh_s) if serving_file is not None else None
        if path is None:
            return cls(serving=serving)
        raw = json.loads(Path(path).read_text())
        return cls([Experiment(e["id"], tuple(Variant.from_json(v) for v in e["variants"]), e.get("traffic", 1.0),
                               e.get("interleave", False)) for e in raw.get("experiments", [])], serving)

    def assign(self, user_id: str) -> Assignment | None:
        """The first experiment whose traffic share includes the user, and the user's variant in it."""
        canary = self.serving.value() if self.serving else None
        for experiment in ([canary] if canary else []) + self.experiments:
            if bucket(user_id, f"traffic:{experiment.id}") >= experiment.traffic:
                continue
            if experiment.interleave:
                return Assignment(experiment, None)
            point = bucket(user_id, experiment.id) * sum(v.weight for v in experiment.variants)
            for variant in experiment.variants:
                point -= variant.weight
                if point < 0:
                    return Assignment(experiment, variant)
            return Assignment(experiment, experiment.variants[-1])
        return None


def team_draft(a: list, b: list, limit: int, seed: int) -> list[tuple[object, int]]:
    """Team-draft interleaving (Radlinski et al., 2008): each round a coin decides which list picks first, and
    each picks its best item not taken yet. Returns ``(item, team)`` with team 0 for ``a``, 1 for ``b``."""
    rng = random.Random(seed)
    lists, position, picks = (a, b), [0, 0], [0, 0]
    merged: list[tuple[object, int]] = []
    taken: set = set()

    def next_of(team: int):
        while position[team] < len(lists[team]) and lists[team][position[team]] in taken:
            position[team] += 1
        return lists[team][position[team]] if position[team] < len(lists[team]) else None

    while len(merged) < limit:
        # The team with fewer picks goes next; a coin decides ties.
        team = rng.randrange(2) if picks[0] == picks[1] else int(picks[1] < picks[0])
        item = next_of(team)
        if item is None:
            team = 1 - team
            item = next_of(team)
            if item is None:
                break
        merged.append((item, team))
        taken.add(item)
        picks[team] += 1
    return merged


def interleave(a: list, b: list, team_names: list[str], limit: int, seed: int) -> tuple[list, list[str]]:
    """Two variants' lists of recommendations (anything with an ``item_id``) merged by :func:`team_draft`:
    the merged list and, per item, the name of the variant that contributed it."""
    by_id = {i.item_id: i for i in b} | {i.item_id: i for i in a}
    merged = team_draft([i.item_id for i in a], [i.item_id for i in b], limit, seed)
    return [by_id[item] for item, _ in merged], [team_names[team] for _, team in merged]
