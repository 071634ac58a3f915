import json

import pytest
import torch
from recstack.preprocessing.datasets import load_dataset
from recstack.preprocessing.pipeline import preprocess
from recstack.training.config import SASRecConfig

from recstack.cli import main


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
    variants = {"defaults": {}, "lr 1e-2": {"lr": 0.01}, "broken": {"hidden": 15}}  # 15 is not divisible by 2 heads
    argv = ["--data", str(data), "--variants", json.dumps(variants), "--finish-epochs", "1", "2", "--jobs", "2",
            "--device", "cpu", "--results-dir", str(results), "--stem", "s"]
    assert main(["bench", "sweep", *argv]) == 1  # the broken variant fails; the others are measured all the same
    records = [json.loads(line) for line in (results / "s.jsonl").read_text().splitlines()]
    assert sorted((r["name"], r["finish"]) for r in records) == [("defaults", 1), ("defaults", 2),
                                                                 ("lr 1e-2", 1), ("lr 1e-2", 2)]
    for name in ("defaults", "lr 1e-2"):
        first, second = sorted((r for r in records if r["name"] == name), key=lambda r: r["finish"])
        # The second count resumes the same fit instead of training again.
        assert not first["resumed"] and second["resumed"] and first["test_best"] == second["test_best"]
        assert first["epochs"] == second["epochs"] == 2
        assert all(r["split"] == "shifted" and 0 < r["test"]["ndcg@10"] <= 1 for r in (first, second))
    work = tmp_path / "build" / "bench" / "sweep" / "prepared" / "s"
    used_lr = {folder: torch.load(work / folder / "checkpoint_last.pt", weights_only=False)
               ["optimizer"]["param_groups"][0]["lr"] for folder in ("shifted-defaults", "shifted-lr_1e-2")}
    assert used_lr == {"shifted-defaults": SASRecConfig().lr, "shifted-lr_1e-2": 0.01}
    summary = json.loads((results / "s.json").read_text())
    assert summary["machine"]["cores"] >= 1 and len(summary["records"]) == 4 and summary["failed"] == [
        "broken on shifted"]
    assert "| defaults | shifted |" in (results / "s.md").read_text() and (results / "s.png").stat().st_size > 0
    # Run again: what the journal holds is not measured again.
    assert main(["bench", "sweep", *argv[:3], json.dumps({"defaults": {}}), *argv[4:]]) == 0
    assert len((results / "s.jsonl").read_text().splitlines()) == 4
    (results / "s.png").unlink()
    assert main(["bench", "sweep", "--report", str(results / "s.jsonl"), "--title", "again"]) == 0
    assert (results / "s.png").exists() and (results / "s.md").read_text().startswith("again")


def test_sweep_without_a_prepared_dataset_says_what_to_run(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["bench", "sweep", "--data", str(tmp_path)])
    assert "recstack preprocess" in capsys.readouterr().err


def test_report_of_a_missing_journal_is_a_clear_error(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["bench", "sweep", "--report", str(tmp_path / "none.jsonl")])
    assert "missing or empty" in capsys.readouterr().err
