import json

import pytest
from recstack.benchmarks.events_durability import main

from recstack.settings import Settings

pytestmark = pytest.mark.redis


def test_smoke_run_compares_the_policies_side_by_side_and_loses_nothing_to_a_kill(tmp_path):
    out = tmp_path / "out"
    assert main(["--rounds", "2", "--seconds", "0.3", "--batches", "1", "5", "--writers", "2", "--work",
                 str(tmp_path / "work"), "--out", str(out)], Settings(build_dir=tmp_path)) == 0
    payload = json.loads((out / "events_durability.json").read_text())
    assert [(r["batch"], r["writers"]) for r in payload["summary"]] == [(1, 1), (1, 2), (5, 1), (5, 2)]
    assert all(r["ratio_p50_ms"] > 0 and r["always_events_per_s"] > 0 for r in payload["summary"])
    assert {p["round"] for p in payload["points"]} == {0, 1}
    assert payload["acknowledged"]["always"] > 0 and payload["missing_after_sigkill"] == {"always": 0, "everysec": 0}
    assert (out / "events_durability.png").stat().st_size > 0
