"""Publishing a trained version: a new version of every model of the repository, built from prepared data and
trained models (:func:`recstack.ensemble.build.build_repository`), then loaded by a running Triton without a
restart, as the default or as a canary for a share of users; :func:`promote` makes the canary the default and
:func:`rollback` returns to the previous default. ``recstack retrain`` / ``recstack loop`` publish the candidates
that pass the quality gate this way; ``recstack publish``, ``promote`` and ``rollback`` are the command lines.
How the versions are routed and switched: :mod:`recstack.ensemble.serving`.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from recstack.ensemble.build import REPOSITORY_FILE, build_repository
from recstack.ensemble.config import ServingConfig
from recstack.ensemble.server import model_control
from recstack.ensemble.serving import SERVING_FILE, ServingError, ServingState, read_state, switch


def publish(data_dir: str | Path, models_dir: str | Path, repository: str | Path, config: ServingConfig,
            triton_url: str | None = None, new_items: str | Path | None = None, rules: str | Path | None = None,
            verbose: bool = True, canary: float | None = None) -> dict:
    """Add a repository version built from ``data_dir`` and ``models_dir``, as the default or, with ``canary``,
    for that share of users beside the default; with ``triton_url`` that server loads it (requests in flight
    finish on the old version). Returns the build's report (``serving``: the new serving state)."""
    return build_repository(data_dir, models_dir, repository, config, rules, verbose=verbose, new_items=new_items,
                            canary=canary, triton_url=triton_url)


def serving_state(repository: str | Path) -> dict:
    """``{"default": version, "canary": version or None, "canary_share": share, "previous": [versions]}``: the
    repository version serving requests that name no version, the canary beside it, and the rollback targets."""
    repository = Path(repository)
    if not (repository / SERVING_FILE).exists():  # built before serving states were recorded: the newest serves
        return ServingState(json.loads((repository / REPOSITORY_FILE).read_text())["version"]).to_json()
    return read_state(repository).to_json()


def _move(repository: str | Path, triton_url: str | None, step) -> dict:
    repository = Path(repository)
    old = read_state(repository)
    new = step(old)
    report = json.loads((repository / REPOSITORY_FILE).read_text())
    if "config_values" not in report:
        raise ServingError(f"{repository} was built before promote and rollback existed: publish a version first")
    start = time.perf_counter()
    switch(repository, report["config_values"], old, new, **(model_control(triton_url) if triton_url else {}))
    return {**new.to_json(), "from": old.to_json(), "seconds": round(time.perf_counter() - start, 3)}


def promote(repository: str | Path, triton_url: str | None = None) -> dict:
    """Make the canary the default (the old default stays loaded as the rollback target); returns the new state,
    the old one (``from``) and the switch's ``seconds``."""
    return _move(repository, triton_url, ServingState.promoted)


def rollback(repository: str | Path, triton_url: str | None = None) -> dict:
    """Withdraw the canary, or without one, make the previous default serve again; returns what :func:`promote`
    does."""
    return _move(repository, triton_url, ServingState.rolled_back)
