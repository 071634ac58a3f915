import json

from recstack.cli import main


def test_smoke_run_compares_the_batching_modes_and_the_rank_stage(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("RECSTACK_BUILD_DIR", str(tmp_path / "build"))
    monkeypatch.setenv("RECSTACK_DATA_DIR", str(tmp_path / "no-shared-data"))
    for key, value in {"RECSTACK_SASREC__HIDDEN": "16", "RECSTACK_SASREC__BLOCKS": "1",
                       "RECSTACK_SASREC__MAX_LENGTH": "30", "RECSTACK_TRAIN__PRECISION": "fp32",
                       "RECSTACK_TRAIN__BATCH_SIZE": "16"}.items():
        monkeypatch.setenv(key, value)
    results = tmp_path / "results"
    assert main(["bench", "training", "--datasets", "synthetic", "beauty", "--max-batches", "2", "--warmup", "1",
                 "--eval-users", "50", "--repeats", "2", "--synthetic-events", "5000",
                 "--results-dir", str(results)]) == 0
    report = json.loads((results / "training_throughput.json").read_text())
    assert "beauty" in report["skipped"]  # absent shared data is skipped, not an error
    rows = {r["mode"]: r for r in report["training"] if r["dataset"] == "synthetic"}
    assert set(rows) == {"padded", "length-aware", "length-aware / padded"}
    padded, aware = rows["padded"], rows["length-aware"]
    assert padded["batches_per_epoch"] == aware["batches_per_epoch"] and aware["batches_timed"] == 2
    assert aware["padding_share"] < padded["padding_share"]  # cut batches carry less padding
    assert all(r["tokens_per_second"] > 0 and r["epoch_seconds"] > 0 and r["eval"]["users"] == 50
               for r in (padded, aware))
    assert rows["length-aware / padded"]["epoch_speedup"] > 0
    rank = {(r["batch"], r["last_block"]): r for r in report["rank"]}
    assert set(rank) == {(b, m) for b in (1, 64) for m in ("every position", "last only")}
    assert all(r["max_abs_diff"] <= 1e-4 and r["ms_per_call"] > 0 for r in rank.values())
    assert (results / "training_throughput.png").stat().st_size > 10_000
    assert "length-aware / padded" in capsys.readouterr().out
