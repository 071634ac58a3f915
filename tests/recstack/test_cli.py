import json
import subprocess
import sys

import pytest

from recstack.cli import main
from recstack.settings import Settings


def test_help_lists_every_stage(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for command in ("demo", "data", "preprocess", "bench"):
        assert command in out


def test_unknown_command_fails_with_usage(capsys):
    assert main(["trian"]) == 2
    assert "unknown command 'trian'" in capsys.readouterr().err


@pytest.mark.parametrize("streaming", [[], ["--streaming", "--chunk-events", "25"]], ids=["in_memory", "streaming"])
def test_preprocess_own_logs_end_to_end(streaming, tmp_path, capsys):
    events = tmp_path / "events.csv"
    rows = ["user_id,item_id,event_type,timestamp"]
    rows += [f"u{u},i{(u * 7 + k) % 13},view,2024-05-0{1 + k % 5}T10:{k:02d}:00" for u in range(20) for k in range(6)]
    events.write_text("\n".join(rows) + "\n")
    out = tmp_path / "out"
    code = main(["preprocess", "--dataset", "events", "--events", str(events), "--out", str(out), "--quiet",
                 "--split", "temporal", *streaming])
    assert code == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["dataset"] == "events" and manifest["split"]["strategy"] == "temporal"
    assert manifest["counts"]["raw_events"] == 120
    assert (manifest["engine"] == "streaming") == bool(streaming)
    assert "written to" in capsys.readouterr().out


def test_preprocess_parquet_logs_on_dask_workers(tmp_path, capsys):
    pytest.importorskip("distributed", reason="the dask engine needs recstack[dask]")
    import polars as pl
    from recstack.preprocessing.datasets import SyntheticConfig, generate_synthetic

    events = generate_synthetic(SyntheticConfig(n_events=3_000, seed=1)).events
    folder = tmp_path / "logs"
    folder.mkdir()
    for i, part in enumerate(events.with_columns(pl.col("timestamp").cast(pl.String)).iter_slices(1_000)):
        part.write_parquet(folder / f"part-{i}.parquet")  # timestamps as text, as an exporter may write them
    out = tmp_path / "out"
    assert main(["preprocess", "--dataset", "events", "--events", str(folder), "--out", str(out), "--quiet",
                 "--engine", "dask", "--workers", "1", "--device", "cpu"]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["engine"] == "dask" and manifest["counts"]["raw_events"] == events.height
    assert "written to" in capsys.readouterr().out
    assert main(["preprocess", "--dataset", "synthetic", "--engine", "dask"]) == 2
    assert "--engine dask reads your own parquet files" in capsys.readouterr().err
    assert main(["preprocess", "--dataset", "synthetic", "--workers", "2"]) == 2  # not silently on one machine
    assert "--workers and --scheduler are for --engine dask" in capsys.readouterr().err
    assert main(["preprocess", "--dataset", "events", "--events", str(tmp_path / "none"), "--engine", "dask"]) == 2
    assert "none: file or folder not found" in capsys.readouterr().err


def test_streaming_needs_event_files(capsys):
    assert main(["preprocess", "--dataset", "synthetic", "--streaming"]) == 2
    assert "--dataset events --events" in capsys.readouterr().err


def test_bad_input_exits_2_with_the_file_column_and_line(tmp_path, capsys):
    events = tmp_path / "events.csv"
    events.write_text("user_id,item_id,event_type,timestamp\nu1,i1,view,2024-05-01\nu1,i2,purchse,2024-05-02\n")
    assert main(["preprocess", "--dataset", "events", "--events", str(events), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "events.csv" in err and "event_type" in err and "line 3" in err and "purchse" in err


def test_python_dash_m_recstack_runs_the_console_script(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "recstack", "--help"], capture_output=True, text=True, timeout=60,
                          cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "usage: recstack <command>" in proc.stdout


def test_the_install_adds_one_top_level_package(tmp_path):
    """Outside the checkout, the stages are reachable as recstack.<stage> only: nothing named ``training`` or
    ``client`` lands in site-packages to collide with other projects."""
    code = ("import importlib.util as u, json; print(json.dumps({n: u.find_spec(n) is not None for n in "
            "('recstack', 'recstack.training', 'recstack.client.api', 'preprocessing', 'training', 'ensemble', "
            "'client', 'benchmarks')}))")
    found = json.loads(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                                      cwd=tmp_path).stdout)
    assert found == {"recstack": True, "recstack.training": True, "recstack.client.api": True,
                     "preprocessing": False, "training": False, "ensemble": False, "client": False,
                     "benchmarks": False}


def test_bad_settings_in_the_environment_are_refused_with_their_name(monkeypatch, capsys):
    monkeypatch.setenv("RECSTACK_TRAIN__BATCH_SIZE", "0")
    assert main(["train", "--help"]) == 2
    assert "batch_size" in capsys.readouterr().err


def test_settings_come_from_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("RECSTACK_BUILD_DIR", str(tmp_path))
    monkeypatch.setenv("RECSTACK_WORKFLOW__MIN_ITEM_COUNT", "4")
    monkeypatch.setenv("RECSTACK_SPLIT__STRATEGY", "temporal")
    settings = Settings()
    assert settings.workflow.min_item_count == 4 and settings.split.strategy == "temporal"
    assert settings.data_output("ml-1m") == tmp_path / "data" / "ml-1m"
