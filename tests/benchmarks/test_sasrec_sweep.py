import json

import pytest

from benchmarks.sasrec_sweep import main
from preprocessing.datasets import load_dataset
from preprocessing.pipeline import preprocess


@pytest.fixture
def tiny_settings(tmp_path, monkeypatch):
    monkeypatch.setenv("RECSTACK_BUILD_DIR", str(tmp_path / "build"))
    for key, value in {"RECSTACK_SASREC__HIDDEN": "16", "RECSTACK_SASREC__BLOCKS": "1",
                       "RECSTACK_SASREC__MAX_LENGTH": "10", "RECSTACK_TRAIN__PRECISION": "fp32",
                       "RECSTACK_TRAIN__EPOCHS": "2", "RECSTACK_TRAIN__VALIDATE_EVERY": "1"}.items():
        monkeypatch.setenv(key, value)


def test_sweep_trains_each_variant_in_its_own_process_and_reports_every_finish_count(tmp_path, tiny_settings):
    data = tmp_path / "prepared"
    preprocess(load_dataset("synthetic", n_events=4000, seed=5), data, progress=False)
    results = tmp_path / "results"
    variants = {"defaults": {}, "lr 1e-2": {"lr": 0.01}}
    assert main(["--data", str(data), "--variants", json.dumps(variants), "--finish-epochs", "1", "2",
                 "--jobs", "2", "--device", "cpu", "--results-dir", str(results), "--stem", "s"]) == 0
    records = [json.loads(line) for line in (results / "s.jsonl").read_text().splitlines()]
    assert sorted((r["name"], r["finish"]) for r in records) == [("defaults", 1), ("defaults", 2),
                                                                 ("lr 1e-2", 1), ("lr 1e-2", 2)]
    for name in variants:
        runs = [r for r in records if r["name"] == name]
        # Both finish counts start from the same fit: the best checkpoint is tested once, alike.
        assert runs[0]["test_best"] == runs[1]["test_best"] and runs[0]["epochs"] == runs[1]["epochs"] == 2
        assert all(r["split"] == "shifted" and 0 < r["test"]["ndcg@10"] <= 1 for r in runs)
    summary = json.loads((results / "s.json").read_text())
    assert summary["machine"]["cores"] >= 1 and len(summary["records"]) == 4
    assert "| defaults | shifted |" in (results / "s.md").read_text() and (results / "s.png").stat().st_size > 0
    (results / "s.png").unlink()
    assert main(["--report", str(results / "s.jsonl"), "--title", "again"]) == 0
    assert (results / "s.png").exists() and (results / "s.md").read_text().startswith("again")


def test_sweep_without_a_prepared_dataset_says_what_to_run(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["--data", str(tmp_path)])
    assert "recstack preprocess" in capsys.readouterr().err
