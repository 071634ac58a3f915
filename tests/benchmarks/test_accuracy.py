import json

from recstack.cli import main


def test_smoke_run_writes_the_side_by_side_table(tmp_path, monkeypatch):
    monkeypatch.setenv("RECSTACK_BUILD_DIR", str(tmp_path / "build"))
    for key, value in {"RECSTACK_SASREC__HIDDEN": "16", "RECSTACK_SASREC__BLOCKS": "1",
                       "RECSTACK_SASREC__MAX_LENGTH": "10", "RECSTACK_TRAIN__PRECISION": "fp32"}.items():
        monkeypatch.setenv(key, value)
    results = tmp_path / "results"
    assert main(["bench", "accuracy", "--datasets", "synthetic", "--epochs", "1", "--synthetic-events", "5000",
                 "--results-dir", str(results)]) == 0
    report = json.loads((results / "accuracy.json").read_text())
    reports = report["datasets"]["synthetic"]["reports"]
    assert {"sasrec", "most_popular", "item_knn", "ease", "als", "bpr"} <= set(reports)
    assert all("ndcg@10" in r["test"] and "sampled100_ndcg@10" in r["test"] for r in reports.values())
    table = (results / "accuracy.md").read_text()
    assert "### synthetic" in table and "| most_popular |" in table and "2 cores" in table
