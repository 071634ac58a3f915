import json

from recstack.cli import main


def test_smoke_run_writes_json_and_plot_with_ratios(tmp_path, capsys):
    results = tmp_path / "results"
    assert main(["bench", "preprocessing", "--sizes", "5000", "--results-dir", str(results),
                 "--cache", str(tmp_path / "cache")]) == 0
    report = json.loads((results / "preprocessing_throughput.json").read_text())
    assert report["machine"]["cores"] >= 1 and "summary" in report["machine"]
    measured = [r for r in report["results"] if "seconds" in r]
    assert {r["implementation"] for r in measured} == {"polars", "polars-streaming", "pandas", "dask-1", "dask-2"}
    assert all(r["events_per_second"] > 0 and r["peak_rss_mb"] > 0 for r in measured)
    # A Dask run's memory is its cluster's too: more processes than the one running the client.
    peak = {r["implementation"]: r["peak_rss_mb"] for r in measured}
    assert peak["dask-2"] > peak["polars"]
    for label in ("pandas / polars", "polars-streaming / polars", "dask-1 / polars", "dask-2 / polars"):
        ratio = next(r for r in report["results"] if r["implementation"] == label)
        assert ratio["seconds_ratio"] > 0 and ratio["memory_ratio"] > 0
    assert (results / "preprocessing_throughput.png").stat().st_size > 10_000
    assert "pandas / polars" in capsys.readouterr().out
