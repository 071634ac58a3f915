import json

import pytest
from recstack.benchmarks.serving_latency import STAGES, TARGETS, check_targets, compare, headline_table, saturated

from recstack.cli import main

pytestmark = pytest.mark.triton


def point(mode, load, p50, p99, qps, errors=0):
    key = "concurrency" if mode == "closed" else "offered_rps"
    return {"mode": mode, key: load, "p50_ms": p50, "p99_ms": p99, "qps": qps, "errors": errors, "requests": 100}


def test_saturation_is_errors_falling_behind_or_timing_out():
    assert not saturated(point("open", 100, 5, 10, 99), timeout_s=2)
    assert saturated(point("open", 100, 5, 10, 80), timeout_s=2)
    assert saturated(point("open", 100, 5, 10, 99, errors=5), timeout_s=2)
    assert saturated(point("open", 100, 5, 1500, 99), timeout_s=2)


def test_targets_read_the_facade_at_one_million_items():
    facade = [point("open", 200, 8, 18, 199), point("open", 300, 10, 45, 299), point("open", 400, 90, 900, 310)]
    index = {"recall": 0.97, "ms_per_query": 1.5}
    results = [{"n_items": 1_000_002, "candidates": 1000, "index": index, "targets": {"facade": {"points": facade}}}]
    met = {t["target"]: (t["met"], t["measured"]) for t in check_targets(results)}
    assert met["facade p99 <= 20 ms at 200 req/s"] == (True, 18)
    assert met[">= 300 req/s sustained with p99 <= 50 ms"] == (True, 300)
    assert met["FAISS recall@1000 >= 0.95 within 2 ms/query (batch 1)"][0]
    assert check_targets([{**results[0], "n_items": 10_002}]) == []


def test_headline_rows_show_the_highest_rate_sustained_under_50_ms():
    points = [point("closed", 1, 5, 7, 180), point("closed", 4, 9, 15, 400), point("open", 100, 6, 9, 100),
              point("open", 200, 8, 45, 199), point("open", 300, 60, 400, 250, errors=3)]
    results = [{"n_items": 10_002, "candidates": 200, "targets": {"triton-grpc": {"points": points}}}]
    row = headline_table(results).splitlines()[-1]
    assert row == "| 10,002 | 200 | triton-grpc | 5.0 / 7.0 | 400 | 9.0 | 45.0 | 400.0 (3 err.) | 200/s |"


def test_comparison_is_triton_over_in_process():
    targets = {"facade": {"points": [point("closed", 1, 10, 20, 100)]},
               "facade-in-process": {"points": [point("closed", 1, 5, 10, 200)]}}
    comparison = compare(targets)
    assert comparison["triton_over_in_process"] == [{"mode": "closed", "load": 1, "p50_ratio": 2.0,
                                                     "p99_ratio": 2.0}]
    assert comparison["max_qps_ratio"] == 0.5


def test_smoke_run_measures_every_target_and_writes_json_and_plots(tmp_path):
    out = tmp_path / "results"
    assert main(["bench", "serving", "--smoke", "--work", str(tmp_path / "work"), "--out", str(out), "--quiet"]) == 0
    payload = json.loads((out / "serving_latency.json").read_text())
    (result,) = payload["results"]
    assert result["n_items"] == 3002 and result["candidates"] == 100
    assert set(result["targets"]) == set(TARGETS)
    for target, entry in result["targets"].items():
        loads = [(p["mode"], p.get("concurrency") or p.get("offered_rps")) for p in entry["points"]]
        assert loads == [("closed", 1), ("closed", 2), ("open", 20)], target
        for p in entry["points"]:
            assert p["errors"] == 0 and p["requests"] > 0 and 0 < p["p50_ms"] <= p["p99_ms"] <= p["max_ms"]
            assert p["client_cores"] > 0 and p["server_cores"] > 0
    assert set(result["targets"]["triton-grpc"]["stages"]) == set(STAGES)
    assert "stages" not in result["targets"]["facade-in-process"]
    assert result["comparison"]["max_qps_ratio"] > 0
    assert payload["machine"]["cores"] >= 1
    for png in ("serving_latency.png", "serving_stages.png"):
        assert (out / png).stat().st_size > 0
