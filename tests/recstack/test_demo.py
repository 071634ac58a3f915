import json

import pytest

from recstack.cli import main

TINY_MODELS = {"RECSTACK_SASREC__HIDDEN": "16", "RECSTACK_SASREC__BLOCKS": "1", "RECSTACK_SASREC__MAX_LENGTH": "10",
               "RECSTACK_TWO_TOWER__DIM": "16", "RECSTACK_TWO_TOWER__HISTORY_LENGTH": "10",
               "RECSTACK_TRAIN__PRECISION": "fp32", "RECSTACK_TRAIN__EPOCHS": "1"}


@pytest.mark.triton
def test_demo_runs_every_stage_and_prints_summaries(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("RECSTACK_BUILD_DIR", str(tmp_path))
    for key, value in TINY_MODELS.items():
        monkeypatch.setenv(key, value)
    assert main(["demo", "--events", "20000", "--train-minutes", "0.1"]) == 0
    out = capsys.readouterr().out
    manifest = json.loads((tmp_path / "data" / "synthetic" / "manifest.json").read_text())
    assert manifest["dataset"] == "synthetic" and manifest["counts"]["test_users"] > 0
    assert "dataset synthetic" in out and "trending items" in out
    assert out.count(" i0") >= 5  # raw item ids, decoded through the saved id maps
    metrics = json.loads((tmp_path / "models" / "synthetic" / "metrics.json").read_text())
    assert {"sasrec", "two_tower", "most_popular"} <= set(metrics["reports"])
    assert "| sasrec |" in out and "| two_tower |" in out
    assert (tmp_path / "models" / "synthetic" / "onnx" / "sasrec" / "ranker.onnx").exists()
    # Served through Triton, then through the facade, with a session that moves the list.
    assert (tmp_path / "model_repository" / "repository.json").exists()
    assert "Triton ready" in out and "-> model sasrec-" in out
    assert "$ curl -s -H 'X-API-Key: rsk_server_" in out and '{"accepted": 4, "rejected": []}' in out
    # The call without a key, and a page asking for a shop user: problem details naming what is needed.
    assert '401 {"type": "about:blank", "title": "Unauthorized", "status": 401, "detail": "an API key is needed' in out
    assert '"status": 403, "detail": "a public key acts for anonymous visitors' in out
    assert out.count('"degraded": false') >= 4 and "5/5" in out
    # It ends with a latency table: both targets, one client and a fixed rate, each with answers.
    table = out[out.index("latency on this machine"):].splitlines()[2:6]
    assert [line[:16].strip() for line in table] == ["Triton gRPC"] * 2 + ["facade → Triton"] * 2
    assert all(float(line.split()[-5]) > 0 for line in table)  # req/s
    assert "storefront: http://127.0.0.1:8080/demo/" in out
