"""The serving state: its transitions, what each model loads, the file, and the order of a switch (the real
server's side: tests/ensemble/test_publish.py)."""

import json

import pytest
from recstack.ensemble.build import MODELS
from recstack.ensemble.serving import (
    CANARY_ENSEMBLE,
    SERVING_FILE,
    ServingError,
    ServingState,
    read_state,
    switch,
    write_state,
)

from recstack.cli import main
from recstack.versions import VersionsJournal

VALUES = {"max_batch_size": 8, "kind": "KIND_CPU", "instances": 1, "queue_delay_us": 100, "onnx_threads": 1,
          "dim": 4, "candidates": 10}


def test_publish_promote_and_rollback_move_the_default_and_keep_rollback_targets():
    state = ServingState(1).published(2)
    assert state == ServingState(2, previous=(1,))
    canary = state.published(3, canary=0.1)
    assert (canary.default, canary.canary, canary.canary_share) == (2, 3, 0.1)
    assert canary.loaded("rank") == [1, 2, 3] and canary.loaded("similar") == [1, 2]  # the canary only in the funnel
    assert canary.protected == {1, 2, 3}
    assert canary.rolled_back() == state  # a canary is withdrawn first
    promoted = canary.promoted()
    assert promoted == ServingState(3, previous=(1, 2)) and promoted.loaded("rank") == [2, 3]
    assert promoted.protected == {2, 3}  # older rollback targets last while keep_versions keeps them
    assert promoted.rolled_back() == ServingState(2, previous=(1,))
    with pytest.raises(ServingError, match="no previous version"):
        promoted.pruned({2, 3}).rolled_back().rolled_back()
    with pytest.raises(ServingError, match="no canary to promote"):
        promoted.promoted()
    with pytest.raises(ValueError, match="within"):
        ServingState(1, canary=2, canary_share=1.0)


def test_the_state_file_is_replaced_whole(tmp_path):
    with pytest.raises(ServingError, match="build-repo"):
        read_state(tmp_path)
    state = ServingState(4, canary=5, canary_share=0.25, previous=(3,))
    write_state(tmp_path, state)
    assert read_state(tmp_path) == state
    assert json.loads((tmp_path / SERVING_FILE).read_text()) == {"default": 4, "canary": 5, "canary_share": 0.25,
                                                                 "previous": [3]}
    assert [p.name for p in tmp_path.iterdir()] == [SERVING_FILE]  # no temporary file left behind


def test_a_switch_loads_new_versions_before_the_ensembles_and_drops_old_ones_after(tmp_path):
    for model in ("query_encoder", "retrieve", "rank", "rerank", "similar", "trending", "recommend"):
        (tmp_path / model).mkdir()
    old = ServingState(2, previous=(1,))
    switch(tmp_path, VALUES, None, old)
    calls = []
    load, unload = (lambda m: calls.append(("load", m))), (lambda m: calls.append(("unload", m)))
    canary = old.published(3, canary=0.2)
    switch(tmp_path, VALUES, old, canary, load, unload)
    assert calls == [("load", m) for m in ("query_encoder", "retrieve", "rank", "rerank")] + [("load", CANARY_ENSEMBLE)]
    assert "model_version: 3" in (tmp_path / CANARY_ENSEMBLE / "config.pbtxt").read_text()
    assert "versions: [ 1, 2, 3 ]" in (tmp_path / "rank" / "config.pbtxt").read_text()
    calls.clear()
    switch(tmp_path, VALUES, canary, canary.promoted(), load, unload)
    # similar and trending load version 3, the ensemble switches, the canary's goes, version 1 is dropped last.
    assert calls == [("load", "similar"), ("load", "trending"), ("load", "recommend"), ("unload", CANARY_ENSEMBLE),
                     *[("load", m) for m in ("query_encoder", "retrieve", "rank", "rerank", "similar", "trending")]]
    recommend = (tmp_path / "recommend" / "config.pbtxt").read_text()
    assert "versions: [ 3 ]" in recommend and recommend.count("model_version: 3") == 4
    assert not (tmp_path / CANARY_ENSEMBLE).exists() and read_state(tmp_path) == canary.promoted()


def test_commands_explain_what_cannot_be_done(tmp_path, capsys):
    repository = tmp_path / "repo"
    repository.mkdir()
    (repository / "repository.json").write_text(json.dumps({"version": 1, "config_values": VALUES}))
    write_state(repository, ServingState(1))
    assert main(["promote", "--repository", str(repository)]) == 1
    assert "no canary to promote" in capsys.readouterr().err
    assert main(["rollback", "--repository", str(repository)]) == 1
    assert "no previous version" in capsys.readouterr().err
    assert main(["rollback", "--repository", str(tmp_path / "none")]) == 1
    assert "build-repo" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["publish", "--canary", "1.5"])
    assert "within (0, 1)" in capsys.readouterr().err


def test_a_rollback_is_recorded_in_the_versions_journal(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("RECSTACK_BUILD_DIR", str(tmp_path))
    repository = tmp_path / "model_repository"
    repository.mkdir()
    (repository / "repository.json").write_text(json.dumps({"version": 2, "config_values": VALUES}))
    write_state(repository, ServingState(2, previous=(1,)))
    for model in MODELS:
        for version in (1, 2):
            (repository / model / str(version)).mkdir(parents=True)
        (repository / model / "config.pbtxt").write_text("")
    journal = VersionsJournal(tmp_path / "versions")
    journal.append({"version": 1, "decision": "initial", "repository_version": 1})
    journal.append({"version": 2, "decision": "published", "repository_version": 2})
    assert main(["rollback"]) == 0
    assert "version 1 serves by default" in capsys.readouterr().out
    last = journal.entries()[-1]
    assert last["decision"] == "rolled back" and last["repository_version"] == 1 and last["version"] == 1
    assert journal.next_version() == 3
