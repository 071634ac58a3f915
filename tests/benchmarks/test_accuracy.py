import json

import pytest

from recstack.cli import main


def tiny_ranker(tmp_path, monkeypatch, **settings: str) -> None:
    """A build folder under ``tmp_path`` and a ranker small enough to train in seconds, plus ``settings``."""
    monkeypatch.setenv("RECSTACK_BUILD_DIR", str(tmp_path / "build"))
    for key, value in {"SASREC__HIDDEN": "16", "SASREC__BLOCKS": "1", "SASREC__MAX_LENGTH": "10", **settings}.items():
        monkeypatch.setenv(f"RECSTACK_{key}", value)


def test_smoke_run_writes_the_side_by_side_table(tmp_path, monkeypatch):
    tiny_ranker(tmp_path, monkeypatch, TRAIN__PRECISION="fp32")
    results = tmp_path / "results"
    assert main(["bench", "accuracy", "--datasets", "synthetic", "--epochs", "1", "--synthetic-events", "5000",
                 "--results-dir", str(results)]) == 0
    report = json.loads((results / "accuracy.json").read_text())
    reports = report["datasets"]["synthetic"]["reports"]
    assert {"sasrec", "most_popular", "item_knn", "ease", "als", "bpr"} <= set(reports)
    assert all("ndcg@10" in r["test"] and "sampled100_ndcg@10" in r["test"] for r in reports.values())
    table = (results / "accuracy.md").read_text()
    assert "### synthetic" in table and "| most_popular |" in table and "2 cores" in table


def test_variants_of_the_ranker_train_side_by_side_with_their_time_to_quality(tmp_path, monkeypatch):
    tiny_ranker(tmp_path, monkeypatch, TRAIN__VALIDATE_EVERY="1")
    results = tmp_path / "results"
    assert main(["bench", "accuracy", "--datasets", "synthetic", "--models", "sasrec", "--epochs", "2",
                 "--synthetic-events", "5000", "--variants", "loss=full,precision=fp32",
                 "loss=sampled,negatives=64,precision=fp32", "--name", "loss_choice",
                 "--results-dir", str(results)]) == 0
    report = json.loads((results / "loss_choice.json").read_text())["datasets"]["synthetic"]
    quality = report["time_to_quality"]
    assert set(quality) == {"sasrec[loss=full,precision=fp32]", "sasrec[loss=sampled,negatives=64,precision=fp32]"}
    assert [q["loss"] for q in quality.values()] == ["full", "sampled"]  # what was trained is recorded
    for label, q in quality.items():
        curve = report["reports"][label]["history"]
        assert q["epochs"] == len(curve) == 2 and q["precision"] == "float32"
        assert q["best_valid_ndcg@10"] == max(r["valid_ndcg@10"] for r in curve)
        reached = next(r["seconds"] for r in curve if r["valid_ndcg@10"] >= 0.95 * q["best_valid_ndcg@10"])
        assert q["minutes_to_95"] == round(reached / 60, 2)
    assert (results / "loss_choice_curves.png").stat().st_size > 10_000
    assert "minutes to 95 %" in (results / "loss_choice.md").read_text()


def test_a_mistyped_variant_is_refused_before_any_training(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("RECSTACK_BUILD_DIR", str(tmp_path / "build"))
    with pytest.raises(SystemExit) as exit_:
        main(["bench", "accuracy", "--datasets", "synthetic", "--variants", "loss=ful", "--results-dir",
              str(tmp_path / "results")])
    assert exit_.value.code == 2 and "loss" in capsys.readouterr().err
    assert not (tmp_path / "build" / "bench").exists()
