import json
import os
import subprocess
import sys

from recstack.cli import main

SMALL = {"RECSTACK_TWO_TOWER__DIM": "16", "RECSTACK_TWO_TOWER__HISTORY_LENGTH": "10",
         "RECSTACK_SASREC__HIDDEN": "32", "RECSTACK_SASREC__BLOCKS": "1", "RECSTACK_SASREC__MAX_LENGTH": "20",
         "RECSTACK_TRAIN__PRECISION": "fp32", "RECSTACK_TRAIN__VALIDATE_EVERY": "1",
         "RECSTACK_TRAIN__BATCH_SIZE": "64"}


def test_train_writes_metrics_and_an_accuracy_table_with_baselines(prepared, tmp_path, monkeypatch, capsys):
    for key, value in SMALL.items():
        monkeypatch.setenv(key, value)
    code = main(["train", "--data", str(prepared.folder), "--models", "sasrec,two_tower,baselines", "--epochs", "2",
                 "--out", str(tmp_path), "--quiet", "--sampled"])
    assert code == 0
    summary = json.loads((tmp_path / "metrics.json").read_text())
    assert set(summary["reports"]) == {"sasrec", "two_tower", "most_popular", "item_knn", "ease", "als", "bpr"}
    assert "recall@500" in summary["reports"]["two_tower"]["test"]
    assert summary["reports"]["sasrec"]["epochs"] == 2
    parity = summary["reports"]["sasrec"]["onnx_parity"]
    assert all(graph["max_abs_diff"] <= 1e-4 for graph in parity.values())
    manifest = json.loads((tmp_path / "onnx" / "sasrec" / "manifest.json").read_text())
    assert manifest["model_version"] == summary["reports"]["sasrec"]["version"]
    assert (tmp_path / "onnx" / "sasrec" / "ranker.onnx").exists()
    for name in ("query_tower.onnx", "item_tower.onnx", "item_embeddings.npy", "manifest.json"):
        assert (tmp_path / "onnx" / "two_tower" / name).exists(), name
    table = (tmp_path / "accuracy.md").read_text()
    assert "| sasrec |" in table and "| ease |" in table and "sampled100_ndcg@10" in table
    assert "written to" in capsys.readouterr().out


def test_unknown_model_is_a_clear_error(prepared, capsys):
    assert main(["train", "--data", str(prepared.folder), "--models", "sasrek"]) == 2
    assert "sasrek" in capsys.readouterr().err


def test_missing_dataset_folder_says_what_to_run(tmp_path, capsys):
    assert main(["train", "--data", str(tmp_path / "nothing")]) == 2
    assert "recstack preprocess" in capsys.readouterr().err


def test_two_process_distributed_training_on_cpu(prepared, tmp_path):
    env = {**os.environ, **SMALL, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "recstack", "train", "--data", str(prepared.folder), "--models", "sasrec,two_tower", "--epochs", "2",
           "--out", str(tmp_path), "--quiet", "--no-export"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads((tmp_path / "metrics.json").read_text())
    assert summary["world_size"] == 2
    report = summary["reports"]["sasrec"]
    sequences = sum(1 for s in prepared.train_sequences if len(s) >= 2)
    batches = -(-sequences // 64)
    # each process ran every other batch of the epoch's shuffled order, the same number each
    assert report["history"][0]["batches"] == batches // 2
    assert report["test"]["ndcg@10"] > 0
    assert (tmp_path / "sasrec" / "checkpoint_best.pt").exists()
    assert summary["reports"]["two_tower"]["world_size"] == 2
