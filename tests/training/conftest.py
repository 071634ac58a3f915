from pathlib import Path

import pytest
from recstack.preprocessing.datasets import load_dataset
from recstack.preprocessing.pipeline import preprocess
from recstack.training.data import PreparedData, load_prepared


@pytest.fixture(scope="session")
def prepared(tmp_path_factory) -> PreparedData:
    """A small synthetic shop, preprocessed with the default workflow (leave-one-out)."""
    folder: Path = tmp_path_factory.mktemp("prepared")
    preprocess(load_dataset("synthetic", n_events=15_000, seed=3), folder, progress=False)
    return load_prepared(folder)
