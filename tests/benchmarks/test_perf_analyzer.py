import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from recstack.benchmarks.perf_analyzer import (
    PerfAnalyzerError,
    format_table,
    install,
    max_length,
    parse_csv,
    parse_server_stats,
    run,
    write_input_data,
)
from recstack.ensemble.funnel import request_arrays

from recstack.cli import main

# Header and rows as perf_analyzer 2.51 writes them with --percentile=99 --verbose-csv (and --collect-metrics on
# a CPU host: empty GPU cells).
CLOSED_LOOP_CSV = """\
Concurrency,Inferences/Second,Client Send,Network+Server Send/Recv,Server Queue,Server Compute Input,\
Server Compute Infer,Server Compute Output,Client Recv,p50 latency,p90 latency,p95 latency,p99 latency,\
request/response,response wait
1,49.9866,6,4488,2,76,8277,422,5,12216,17027,20829,27797,11,13232
4,125.295,9,6012,3,80,9120,430,6,30110,52004,77924,104993,14,30507
"""
OPEN_LOOP_CSV = """\
Request Rate,Inferences/Second,Client Send,Network+Server Send/Recv,Server Queue,Server Compute Input,\
Server Compute Infer,Server Compute Output,Client Recv,p50 latency,p90 latency,p95 latency,p99 latency,\
request/response,response wait,Avg GPU Utilization,Avg GPU Power Usage,Max GPU Memory Usage,Total GPU Memory
30,29.7563,11,7300,3,113,8058,452,5,15810,19358,20140,23285,16,15889,,,,
"""
SUMMARY = """\
Request concurrency: 2
  Server: 
    Inference count: 100
    Avg request latency: 18415 usec (overhead 0 usec + queue 1347 usec + compute 17163 usec)

  Composing models: 
  query_encoder, version: 1
      Inference count: 100
      Avg request latency: 1204 usec (overhead 3 usec + queue 296 usec + compute input 23 usec + compute infer \
801 usec + compute output 80 usec)

  rank, version: 1
      Inference count: 100
      Avg request latency: 7021 usec (overhead 3 usec + queue 308 usec + compute input 17 usec + compute infer \
6590 usec + compute output 103 usec)
"""


def test_csv_rows_give_the_load_points_with_latencies_in_ms():
    first, second = parse_csv(CLOSED_LOOP_CSV)
    assert first["concurrency"] == 1 and second["concurrency"] == 4 and "request_rate" not in first
    assert first["throughput"] == pytest.approx(49.9866)
    assert (first["p50_ms"], first["p90_ms"], first["p95_ms"], first["p99_ms"]) == pytest.approx(
        (12.216, 17.027, 20.829, 27.797))
    assert first["server_compute_infer_ms"] == pytest.approx(8.277) and first["client_wait_ms"] == pytest.approx(
        13.232)


def test_csv_of_an_open_loop_gives_the_offered_rate_and_skips_empty_gpu_cells():
    (row,) = parse_csv(OPEN_LOOP_CSV)
    assert row["request_rate"] == 30.0 and row["throughput"] == pytest.approx(29.7563)
    assert row["p99_ms"] == pytest.approx(23.285) and not any("gpu" in key.lower() for key in row)


def test_a_file_that_is_not_a_report_is_refused():
    with pytest.raises(ValueError, match="not a perf_analyzer CSV"):
        parse_csv("a,b\n1,2\n")


def test_server_summary_gives_the_ensemble_and_each_stage():
    stats = parse_server_stats(SUMMARY)
    assert set(stats) == {"recommend", "query_encoder", "rank"}
    assert stats["recommend"] == pytest.approx({"latency_ms": 18.415, "queue_ms": 1.347, "compute_ms": 17.163})
    assert stats["rank"] == pytest.approx({"latency_ms": 7.021, "queue_ms": 0.308, "compute_ms": 6.71})


def test_input_data_holds_one_request_per_user_as_the_clients_build_it(tmp_path):
    histories, exclude = [[5, 6, 7, 8], [9], [3, 4]], [[1], [], [2, 11]]
    path = write_input_data(histories, tmp_path / "input.json", seq_len=3, limit=7, exclude=exclude)
    entries = json.loads(path.read_text())["data"]
    assert len(entries) == len(histories)
    for entry, history, excluded in zip(entries, histories, exclude, strict=True):
        seq, blocked, _ = request_arrays([history], [excluded], 7, 3)
        assert entry["item_seq"] == {"content": seq[0].tolist(), "shape": [seq.shape[1]]}
        assert entry["exclude"] == {"content": blocked[0].tolist(), "shape": [blocked.shape[1]]}
        assert entry["limit"] == {"content": [7], "shape": [1]}
    assert entries[0]["item_seq"]["content"][-3:] == [6, 7, 8] and entries[0]["exclude"]["content"] == [1, 5]


def test_input_data_needs_histories(tmp_path):
    with pytest.raises(ValueError, match="at least one history"):
        write_input_data([], tmp_path / "input.json", seq_len=3)


TOOLS = Path(__file__).resolve().parents[2] / "build" / "tools"


@pytest.fixture(scope="module")
def perf_analyzer():
    try:
        return install(TOOLS)  # kept between runs: the wheels are downloaded once
    except RuntimeError as exc:
        pytest.skip("perf_analyzer could not be installed (it needs PyPI for tritonclient 2.51.0 and Debian's "
                    f"libb64-0d, which make test installs): {str(exc).splitlines()[0]}")


@pytest.fixture(scope="module")
def input_data(trained_shop, model_repository, tmp_path_factory):
    histories = pl.read_parquet(trained_shop[0] / "eval_test.parquet", columns=["history"]).head(20)
    return write_input_data(histories["history"].to_list(), tmp_path_factory.mktemp("pa") / "input.json",
                            max_length(model_repository))


def test_input_data_fits_the_served_window(input_data, model_repository, trained_shop):
    entries = json.loads(input_data.read_text())["data"]
    histories = pl.read_parquet(trained_shop[0] / "eval_test.parquet", columns=["history"]).head(20)["history"]
    assert len(entries) == 20
    for entry, history in zip(entries, histories.to_list(), strict=True):
        width = len(entry["item_seq"]["content"])
        assert entry["item_seq"]["shape"] == [width] and 1 <= width <= max_length(model_repository)
        assert entry["item_seq"]["content"][-1] == history[-1]
        assert entry["exclude"]["shape"] == [len(entry["exclude"]["content"])]


@pytest.mark.triton
def test_smoke_measurement_of_the_running_ensemble(perf_analyzer, triton_server, input_data, tmp_path):
    results = run(perf_analyzer, triton_server.grpc_url, "grpc", input_data, concurrency=[1], measurement_ms=1000,
                  stability_percentage=100, csv_dir=tmp_path)
    results += run(perf_analyzer, triton_server.http_url, "http", input_data, request_rates=[20], measurement_ms=1000,
                   stability_percentage=100, csv_dir=tmp_path)
    closed, opened = results
    assert (closed["protocol"], closed["concurrency"], closed["request_rate"]) == ("grpc", 1, None)
    assert (opened["protocol"], opened["concurrency"], opened["request_rate"]) == ("http", None, 20.0)
    assert "--async" in opened["command"] and "--measurement-interval=1000" in closed["command"]
    for result in results:
        assert result["throughput"] > 0
        assert 0 < result["p50_ms"] <= result["p90_ms"] <= result["p95_ms"] <= result["p99_ms"]
        assert set(result["server"]) == {"recommend", "query_encoder", "retrieve", "rank", "rerank"}
        assert np.isclose(result["server"]["recommend"]["compute_ms"], result["server_compute_input_ms"]
                          + result["server_compute_infer_ms"] + result["server_compute_output_ms"], rtol=0.05)
    assert sorted(p.name for p in tmp_path.glob("*.csv")) == ["grpc-concurrency-1.csv", "http-request_rate-20.csv"]
    assert "| grpc | concurrency 1 |" in format_table(results)


@pytest.mark.triton
def test_unstable_measurement_is_a_clear_error(perf_analyzer, triton_server, input_data):
    with pytest.raises(PerfAnalyzerError, match="no stable measurement") as failure:
        run(perf_analyzer, triton_server.grpc_url, "grpc", input_data, concurrency=[1], measurement_ms=200,
            stability_percentage=0.001, max_trials=3)
    assert "Failed to obtain stable measurement" in failure.value.output


@pytest.mark.triton
def test_smoke_benchmark_writes_json_plot_and_table(perf_analyzer, model_repository, trained_shop, tmp_path,
                                                    capsys):
    out = tmp_path / "results"
    assert main(["bench", "perf-analyzer", "--repository", str(model_repository), "--data", str(trained_shop[0]),
                 "--users", "20",
                 "--smoke", "--rates", "20", "--work", str(tmp_path / "work"), "--out", str(out), "--quiet"]) == 0
    payload = json.loads((out / "perf_analyzer.json").read_text())
    points = [(r["protocol"], r["concurrency"], r["request_rate"]) for r in payload["results"]]
    assert points == [("grpc", 1, None), ("grpc", None, 20.0), ("http", 1, None), ("http", None, 20.0)]
    assert payload["failures"] == [] and payload["distinct_requests"] == 20
    assert payload["client"].startswith("perf_analyzer 2.51.0 on the same host")
    assert all(r["command"].startswith(str(perf_analyzer)) for r in payload["results"])
    assert (out / "perf_analyzer.png").stat().st_size > 0
    assert capsys.readouterr().out.count("| http |") == 2
