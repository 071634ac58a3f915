"""The one typed settings object: paths, engine and stage hyper-parameters.

Built once, by the command line (:func:`recstack.cli.main`), which passes the parts down to the stages; library
code never reads the environment itself. Every field can be set by an environment variable with the
``RECSTACK_`` prefix (nested fields with ``__``), e.g. ``RECSTACK_DATA_DIR=/data/shared``, ``RECSTACK_ENGINE=cpu`` or
``RECSTACK_WORKFLOW__MIN_ITEM_COUNT=5``; command-line options override them.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from recstack.client.core.config import FacadeConfig
from recstack.ensemble.config import ServingConfig
from recstack.preprocessing.config import SplitConfig, WorkflowConfig
from recstack.preprocessing.engine import EngineName
from recstack.preprocessing.tombstones import TOMBSTONES_NAME
from recstack.training.config import GateConfig, RetrainConfig, SASRecConfig, TrainConfig, TwoTowerConfig
from recstack.versions import VERSIONS_NAME

REPO_ROOT = Path(__file__).resolve().parents[1]


class Settings(BaseSettings):
    """recstack settings.

    Examples
    --------
    >>> Settings(build_dir=Path("/tmp/rs")).data_output("synthetic")
    PosixPath('/tmp/rs/data/synthetic')
    """

    model_config = SettingsConfigDict(env_prefix="RECSTACK_", env_nested_delimiter="__", extra="ignore")

    data_dir: Path = Field(REPO_ROOT.parent / "shared" / "data",
                           description="folder holding the public datasets (ml-1m-sasrec/, ml-100k/, ...)")
    build_dir: Path = Field(REPO_ROOT / "build", description="every generated artifact goes below here")
    engine: EngineName = "auto"
    seed: int = 42
    synthetic_events: int = Field(200_000, gt=0, description="size of the default synthetic dataset")
    workflow: WorkflowConfig = Field(default_factory=WorkflowConfig)
    split: SplitConfig = Field(default_factory=SplitConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    sasrec: SASRecConfig = Field(default_factory=SASRecConfig)
    two_tower: TwoTowerConfig = Field(default_factory=TwoTowerConfig)
    retrain: RetrainConfig = Field(default_factory=RetrainConfig)
    gate: GateConfig = Field(default_factory=GateConfig)
    serving: ServingConfig = Field(default_factory=ServingConfig)
    facade: FacadeConfig = Field(default_factory=FacadeConfig)

    def facade_config(self) -> FacadeConfig:
        """The facade's settings with the paths it leaves unset filled in from ``build_dir``.

        Examples
        --------
        >>> Settings(build_dir=Path("/tmp/rs")).facade_config().ingest_file
        PosixPath('/tmp/rs/ingest/new_items.jsonl')
        """
        facade = self.facade
        return replace(facade, data=facade.data or self.data_output("synthetic"),
                       repository=facade.repository or self.model_repository,
                       ingest_file=facade.ingest_file or self.build_dir / "ingest" / "new_items.jsonl",
                       keys_file=facade.keys_file or self.build_dir / "keys.json",
                       build_dir=facade.build_dir or self.build_dir)

    def data_output(self, dataset: str) -> Path:
        """Folder of a preprocessed dataset (the layout of :mod:`recstack.preprocessing.pipeline`)."""
        return self.build_dir / "data" / dataset

    def models_output(self, dataset: str) -> Path:
        """Folder of the trained models, metrics and ONNX files of a dataset."""
        return self.build_dir / "models" / dataset

    @property
    def tombstones_file(self) -> Path:
        """Digests of the users who asked to be forgotten (``recstack forget``); every build applies it."""
        return self.build_dir / TOMBSTONES_NAME

    @property
    def model_repository(self) -> Path:
        """The built Triton model repository (``recstack build-repo``)."""
        return self.build_dir / "model_repository"

    @property
    def versions_dir(self) -> Path:
        """The retrained versions and their journal (:mod:`recstack.versions`)."""
        return self.build_dir / VERSIONS_NAME

    def raw_output(self, dataset: str) -> Path:
        """Folder of generated raw data in the generic events schema."""
        return self.build_dir / "raw" / dataset
