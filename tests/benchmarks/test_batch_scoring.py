import json

import pytest

from recstack.cli import main

pytestmark = pytest.mark.triton


def test_smoke_run_scores_every_user_in_every_mode(tmp_path):
    out = tmp_path / "results"
    assert main(["bench", "scoring", "--smoke", "--work", str(tmp_path / "work"), "--out", str(out), "--quiet"]) == 0
    (result,) = json.loads((out / "batch_scoring.json").read_text())["results"]
    assert set(result["modes"]) == {"batch", "dask", "in-process", "triton", "ranker"} and result["rounds"] == 2
    for mode, summary in result["modes"].items():
        assert summary["scored_now"] == result["n_users"] > 0 and summary["users_per_second"] > 0
        assert summary["peak_memory_gib"] > 0 and (mode == "ranker" or summary["rows"] == 50 * result["n_users"])
    assert set(result["ratios"]) == {"batch_over_in-process", "batch_over_triton", "triton_over_in-process",
                                     "batch_over_ranker", "dask_over_batch", "dask_over_in-process",
                                     "dask_over_triton"}
    assert set(result["stage_ms_per_user"]) == {"query_encoder", "search", "merge", "rank", "rerank"}
    assert all(ms > 0 for ms in result["stage_ms_per_user"].values())
    assert result["target"]["batch_over_in-process"] == 5.0 and isinstance(result["target"]["met"], bool)
    assert result["identical_lists_first_chunk"] and result["max_score_difference"] < 1e-4
    assert (out / "batch_scoring.png").stat().st_size > 0
