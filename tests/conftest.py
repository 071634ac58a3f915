"""Shared fixtures: the licensed datasets folder (read in place, never copied) and small synthetic data."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def shared_data_dir() -> Path:
    return Path(os.environ.get("RECSTACK_DATA_DIR", REPO.parent / "shared" / "data")).resolve()


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The public datasets folder; tests using it skip with the reason when it is absent."""
    path = shared_data_dir()
    if not path.is_dir():
        pytest.skip(f"licensed datasets not found at {path} (set RECSTACK_DATA_DIR to the shared/data folder)")
    return path


def pytest_collection_modifyitems(config, items):
    """GPU tests skip cleanly on machines without CUDA and cudf-polars."""
    from preprocessing.engine import gpu_available

    if gpu_available():
        return
    skip = pytest.mark.skip(reason="no CUDA GPU with cudf-polars on this machine")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
