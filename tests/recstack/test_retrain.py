"""What a retraining round starts from: the version the repository serves, known to the journal."""

import json

import pytest
from recstack.ensemble.build import REPOSITORY_FILE
from recstack.ensemble.serving import ServingState, write_state
from recstack.preprocessing.layout import PreparedLayout

from recstack.retrain import RetrainError, serving_entry
from recstack.settings import Settings
from recstack.versions import VersionsJournal


def describe_build(settings: Settings, version: int, data, models, fingerprint: str) -> None:
    settings.model_repository.mkdir(parents=True, exist_ok=True)
    (settings.model_repository / REPOSITORY_FILE).write_text(json.dumps({
        "version": version, "data_dir": str(data), "models_dir": str(models), "dataset_fingerprint": fingerprint}))


def test_the_served_build_becomes_the_initial_version_once(trained_shop, tmp_path):
    data, models = trained_shop
    settings = Settings(build_dir=tmp_path)
    with pytest.raises(RetrainError, match="no model repository"):
        serving_entry(settings, VersionsJournal(settings.versions_dir))
    describe_build(settings, 3, data, models, PreparedLayout(data).read_manifest().fingerprint)
    journal = VersionsJournal(settings.versions_dir)
    entry = serving_entry(settings, journal)
    assert (entry["version"], entry["decision"], entry["repository_version"]) == (1, "initial", 3)
    assert serving_entry(settings, journal) == entry and len(journal.entries()) == 1


def test_a_build_the_journal_cannot_trace_is_refused(trained_shop, tmp_path):
    data, models = trained_shop
    settings = Settings(build_dir=tmp_path)
    # Its data folder was prepared again since: retraining would grow another dataset than the one served.
    describe_build(settings, 4, data, models, "another dataset")
    with pytest.raises(RetrainError, match="prepared again"):
        serving_entry(settings, VersionsJournal(settings.versions_dir))
    # An older version serves (rolled back to, say) that the journal never recorded.
    describe_build(settings, 4, data, models, PreparedLayout(data).read_manifest().fingerprint)
    write_state(settings.model_repository, ServingState(2))
    with pytest.raises(RetrainError, match="does not know"):
        serving_entry(settings, VersionsJournal(settings.versions_dir))
    assert VersionsJournal(settings.versions_dir).entries() == []
