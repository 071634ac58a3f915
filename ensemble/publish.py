"""Publishing a trained version: a new version of every model of the repository, built from prepared data and
trained models (:func:`recstack.ensemble.build.build_repository`), then loaded by a running Triton without a
restart. ``recstack retrain`` / ``recstack loop`` publish the candidates that pass the quality gate this way.

``serving_state`` says which repository version serves by default: the newest one, as the configs' version policy
(``latest: 1``) loads it.
"""

from __future__ import annotations

import json
from pathlib import Path

from recstack.ensemble.build import REPOSITORY_FILE, build_repository
from recstack.ensemble.config import ServingConfig
from recstack.ensemble.server import reload_models


def publish(data_dir: str | Path, models_dir: str | Path, repository: str | Path, config: ServingConfig,
            triton_url: str | None = None, new_items: str | Path | None = None, rules: str | Path | None = None,
            verbose: bool = True) -> dict:
    """Add a repository version built from ``data_dir`` and ``models_dir`` and, with ``triton_url``, make that
    server load it (requests in flight finish on the old version); returns the build's report."""
    report = build_repository(data_dir, models_dir, repository, config, rules, verbose=verbose, new_items=new_items)
    if triton_url:
        reload_models(triton_url)
    return report


def serving_state(repository: str | Path) -> dict:
    """``{"default": version}``: the repository version that serves requests naming no version."""
    report = json.loads((Path(repository) / REPOSITORY_FILE).read_text())
    return {"default": report["version"]}
