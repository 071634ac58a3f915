import json

import pytest

from recstack.cli import main

pytestmark = pytest.mark.triton


def test_smoke_run_scores_every_user_in_both_modes(tmp_path):
    out = tmp_path / "results"
    assert main(["bench", "scoring", "--smoke", "--work", str(tmp_path / "work"), "--out", str(out), "--quiet"]) == 0
    (result,) = json.loads((out / "batch_scoring.json").read_text())["results"]
    assert set(result["modes"]) == {"in-process", "triton"}
    for summary in result["modes"].values():
        assert summary["scored_now"] == result["n_users"] > 0 and summary["users_per_second"] > 0
        assert summary["rows"] == 50 * result["n_users"] and summary["peak_memory_gib"] > 0
    assert result["identical_lists_first_chunk"] and result["max_score_difference"] < 1e-4
    assert (out / "batch_scoring.png").stat().st_size > 0
