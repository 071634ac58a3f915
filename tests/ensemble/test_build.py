import json
import shutil

import pytest
from recstack.ensemble.build import MODELS, BuildError, build_repository, versions
from recstack.ensemble.config import ServingConfig

from recstack.cli import main


def test_repository_layout(model_repository):
    report = json.loads((model_repository / "repository.json").read_text())
    assert report["version"] == 1 and report["instance_kind"] == "KIND_CPU"
    assert report["index"]["kind"] == "flat" and report["index"]["recall"] == report["index"]["recall_at_100"] == 1.0
    assert report["model_version"].startswith("sasrec-") and report["model_version"].endswith("/r1")
    for model in MODELS:
        config = (model_repository / model / "config.pbtxt").read_text()
        assert "${" not in config and f'name: "{model}"' in config
        assert versions(model_repository / model) == [1]
    assert (model_repository / "query_encoder" / "1" / "model.onnx").exists()
    assert (model_repository / "rank" / "1" / "model.onnx").exists()
    assert (model_repository / "retrieve" / "1" / "items.faiss").exists()
    assert (model_repository / "rerank" / "1" / "model.py").exists()
    assert "dims: [ 500 ]" in (model_repository / "retrieve" / "config.pbtxt").read_text()


def test_rebuilding_adds_versions_and_prunes_old_ones(trained_shop, tmp_path):
    data, models = trained_shop
    out = tmp_path / "repo"
    config = ServingConfig(keep_versions=2, device="gpu")
    for expected in (1, 2, 3):
        assert build_repository(data, models, out, config, verbose=False)["version"] == expected
    assert all(versions(out / model) == [2, 3] for model in MODELS)
    # One setting turns every instance group to the GPU; the ensemble has none.
    for model in MODELS:
        config_text = (out / model / "config.pbtxt").read_text()
        assert ("KIND_GPU" in config_text) == (model != "recommend") and "KIND_CPU" not in config_text
    assert build_repository(data, models, out, clean=True, verbose=False)["version"] == 1


def test_missing_or_mismatched_inputs_are_explained(trained_shop, tmp_path):
    data, models = trained_shop
    with pytest.raises(BuildError, match="recstack preprocess"):
        build_repository(tmp_path / "nothing", models, tmp_path / "repo", verbose=False)
    with pytest.raises(BuildError, match="recstack train --models two_tower"):
        build_repository(data, tmp_path / "no-models", tmp_path / "repo", verbose=False)
    other = tmp_path / "other-data"
    shutil.copytree(data, other)
    manifest = json.loads((other / "manifest.json").read_text())
    (other / "manifest.json").write_text(json.dumps({**manifest, "fingerprint": "0123456789abcdef"}))
    with pytest.raises(BuildError, match="do not belong|retrain"):
        build_repository(other, models, tmp_path / "repo", verbose=False)


def test_cli_reports_errors_without_a_traceback(tmp_path, capsys):
    assert main(["build-repo", "--data", str(tmp_path), "--out", str(tmp_path / "repo")]) == 1
    assert "recstack preprocess" in capsys.readouterr().err


def test_serving_config_is_validated():
    with pytest.raises(ValueError, match="keep_versions"):
        ServingConfig(keep_versions=0)
    with pytest.raises(ValueError, match="positive"):
        ServingConfig(instances=0)


def test_a_ranker_with_heads_is_not_built_beside_versions_without(tmp_path):
    import json

    from recstack.ensemble.build import REPOSITORY_FILE, BuildError, check_same_heads

    check_same_heads(tmp_path, True)  # nothing built yet
    (tmp_path / "rank" / "1").mkdir(parents=True)
    (tmp_path / REPOSITORY_FILE).write_text(json.dumps({"config_values": {"dim": 8}}))  # built before heads existed
    check_same_heads(tmp_path, False)
    with pytest.raises(BuildError, match="objective heads.*--clean"):
        check_same_heads(tmp_path, True)
