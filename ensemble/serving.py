"""Which repository versions serve, and how a running Triton switches between them without failing a request.

``serving.json`` in the repository records the state::

    {"default": 3, "canary": 4, "canary_share": 0.1, "previous": [1, 2]}

Triton answers a request that names no version from the highest loaded version, and an ensemble's steps pick
their models' versions once, in its one ``config.pbtxt``. So a version is routed by ensembles pinned to it:
``recommend`` runs the default version's models (every step names that version) and ``recommend_canary``, present
while a canary is, runs the canary's. The models load exactly the versions something needs (``specific`` version
policies): the funnel's models the default, the canary and the previous default (an instant rollback); ``similar``
and ``trending``, which the canary's share never reaches, the default and the previous one. The canary is the newest
version, so ``rank`` asked directly without a version answers from it while a canary runs: a caller that must
get the default names it (``TritonRecommender.rank(..., version=)``); the facade's ``/rank`` does not yet.

:func:`switch` moves a server from one state to the next in three steps, each version loaded before anything
stops using the old one: the models load what both states need, the ensembles are pinned anew (the switch: one
ensemble load, well under a second), then the models drop what only the old state needed.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from recstack.ensemble.specs import MODELS, RECOMMEND, models, render_config

SERVING_FILE = "serving.json"
DEFAULT_ENSEMBLE = RECOMMEND.name
CANARY_ENSEMBLE = f"{RECOMMEND.name}_canary"
FUNNEL_MODELS = tuple(step.model for step in RECOMMEND.steps)
SERVED_MODELS = tuple(name for name, spec in MODELS.items() if spec.platform != "ensemble")


class ServingError(RuntimeError):
    """The switch asked for does not exist: no canary to promote, no previous version to return to."""


@dataclass(frozen=True)
class ServingState:
    default: int
    canary: int | None = None
    canary_share: float = 0.0
    previous: tuple[int, ...] = field(default=())  # earlier defaults, the latest last: what rollback returns to

    def __post_init__(self):
        if self.canary is None and self.canary_share:
            raise ValueError("a canary share without a canary version")
        if self.canary is not None and not 0 < self.canary_share < 1:
            raise ValueError(f"the canary's share of users must be within (0, 1); got {self.canary_share}")

    def to_json(self) -> dict:
        return {**asdict(self), "previous": list(self.previous)}

    @classmethod
    def from_json(cls, raw: dict) -> ServingState:
        return cls(raw["default"], raw.get("canary"), raw.get("canary_share", 0.0), tuple(raw.get("previous", ())))

    # -- transitions ---------------------------------------------------------------------------------------------

    def published(self, version: int, canary: float | None = None) -> ServingState:
        """A new version as the canary for a share of users (replacing any canary), or as the default."""
        if canary is not None:
            return replace(self, canary=version, canary_share=canary)
        return ServingState(version, previous=(*self.previous, self.default))

    def promoted(self) -> ServingState:
        if self.canary is None:
            raise ServingError(f"no canary to promote: version {self.default} serves everyone "
                               "(publish one with `recstack publish --canary SHARE`)")
        return ServingState(self.canary, previous=(*self.previous, self.default))

    def rolled_back(self) -> ServingState:
        """Without a canary: the previous default serves again. With one: the canary is withdrawn (the default
        serves everyone again, as before it was published)."""
        if self.canary is not None:
            return replace(self, canary=None, canary_share=0.0)
        if not self.previous:
            raise ServingError(f"no previous version to roll back to: version {self.default} is the first one "
                               "kept in this repository")
        return ServingState(self.previous[-1], previous=self.previous[:-1])

    def pruned(self, on_disk: set[int]) -> ServingState:
        """Rollback targets whose files were deleted are forgotten."""
        return replace(self, previous=tuple(v for v in self.previous if v in on_disk))

    # -- what each model loads -----------------------------------------------------------------------------------

    @property
    def protected(self) -> set[int]:
        """Versions pruning must keep: served, or the version rollback returns to. Older rollback targets last as
        long as ``keep_versions`` keeps them."""
        return {self.default, *self.previous[-1:]} | ({self.canary} if self.canary is not None else set())

    def loaded(self, model: str) -> list[int]:
        """The versions ``model`` (not an ensemble) loads."""
        return sorted(self.needed(model) | set(self.previous[-1:]))

    def needed(self, model: str) -> set[int]:
        """The versions ``model`` must load to answer the ensembles of this state."""
        canary = {self.canary} if self.canary is not None and model in FUNNEL_MODELS else set()
        return {self.default} | canary


def initial_state(repository: Path, versions_on_disk: list[int]) -> ServingState | None:
    """The recorded state, or for a repository built before states were recorded, its newest version."""
    path = repository / SERVING_FILE
    if path.exists():
        return ServingState.from_json(json.loads(path.read_text()))
    return ServingState(max(versions_on_disk)) if versions_on_disk else None


def read_state(repository: str | Path) -> ServingState:
    path = Path(repository) / SERVING_FILE
    if not path.exists():
        raise ServingError(f"{path} is missing: build the repository with `recstack build-repo` first")
    return ServingState.from_json(json.loads(path.read_text()))


def write_state(repository: Path, state: ServingState) -> None:
    """Atomically (a reader sees the old state or the new one, never half a file)."""
    tmp = repository / f".{SERVING_FILE}.tmp"
    tmp.write_text(json.dumps(state.to_json(), indent=2) + "\n")
    os.replace(tmp, repository / SERVING_FILE)


# -- configs and the switch ------------------------------------------------------------------------------------

def model_config(model: str, values: dict, versions: list[int]) -> str:
    """``values["objectives"]``: the ranker has objective heads (:func:`recstack.ensemble.specs.models`)."""
    return render_config(models(values.get("objectives", False))[model], values, versions=versions)


def ensemble_config(name: str, values: dict, version: int) -> str:
    """An ensemble serving repository version ``version``: its own version of that number, every step pinned."""
    return render_config(models(values.get("objectives", False))[RECOMMEND.name], values, versions=[version],
                         step_version=version, name=name)


def _write(repository: Path, model: str, text: str) -> bool:
    """Write a config; whether it changed (a model is loaded again only then)."""
    path = repository / model / "config.pbtxt"
    if path.exists() and path.read_text() == text:
        return False
    path.write_text(text)
    return True


def _set_canary_ensemble(repository: Path, values: dict, version: int) -> bool:
    folder = repository / CANARY_ENSEMBLE
    for old in folder.iterdir() if folder.is_dir() else ():
        if old.is_dir() and old.name != str(version):
            shutil.rmtree(old)
    (folder / str(version)).mkdir(parents=True, exist_ok=True)
    return _write(repository, CANARY_ENSEMBLE, ensemble_config(CANARY_ENSEMBLE, values, version))


Load = Callable[[str], None]


def switch(repository: Path, values: dict, old: ServingState | None, new: ServingState,
           load: Load | None = None, unload: Load | None = None) -> None:
    """Write the configs of ``new`` and record it; with ``load``/``unload`` (a running server's model control),
    move the server there in the order that keeps every request answerable (see the module's doc)."""
    if old is not None and load is not None:
        for model in SERVED_MODELS:  # 1. load what the new ensembles need, keep what the old ones use
            if _write(repository, model, model_config(model, values,
                                                      sorted(set(old.loaded(model)) | new.needed(model)))):
                load(model)
    if _write(repository, DEFAULT_ENSEMBLE, ensemble_config(DEFAULT_ENSEMBLE, values, new.default)) and load:
        load(DEFAULT_ENSEMBLE)  # 2. the switch
    if new.canary is not None:
        if _set_canary_ensemble(repository, values, new.canary) and load:
            load(CANARY_ENSEMBLE)
    elif (repository / CANARY_ENSEMBLE).is_dir():
        if unload:  # before its models drop the canary version; requests in flight finish first
            unload(CANARY_ENSEMBLE)
        shutil.rmtree(repository / CANARY_ENSEMBLE)
    for model in SERVED_MODELS:  # 3. drop what only the old state needed
        if _write(repository, model, model_config(model, values, new.loaded(model))) and load:
            load(model)
    write_state(repository, new)
