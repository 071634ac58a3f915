import json

import pytest

from benchmarks.serving_latency import latency_stats, main

pytestmark = pytest.mark.triton


def test_latency_stats_are_percentiles_of_the_timings():
    stats = latency_stats([0.001] * 98 + [0.010, 0.020])
    assert stats["requests"] == 100 and stats["p50_ms"] == pytest.approx(1.0)
    assert stats["max_ms"] == pytest.approx(20.0) and stats["p99_ms"] > 9.0
    assert stats["qps"] == pytest.approx(100 / 0.128)


def test_smoke_run_writes_json_and_plot(tmp_path):
    out = tmp_path / "results"
    assert main(["--items", "2000", "--candidates", "100", "--requests", "5", "--warmup", "1",
                 "--work", str(tmp_path / "work"), "--out", str(out), "--quiet"]) == 0
    payload = json.loads((out / "serving_latency.json").read_text())
    (result,) = payload["results"]
    assert result["n_items"] == 2002 and result["candidates"] == 100
    for mode in ("in_process", "http", "grpc"):
        assert result[mode]["requests"] == 5 and 0 < result[mode]["p50_ms"] <= result[mode]["max_ms"]
    assert set(result["grpc"]["stages_ms"]) == {"query_encoder", "retrieve", "rank", "rerank"}
    assert payload["machine"]["cores"] >= 1
    assert (out / "serving_latency.png").stat().st_size > 0
