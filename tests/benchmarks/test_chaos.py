import json

import pytest
from recstack.benchmarks.chaos import main

from recstack.settings import Settings

pytestmark = [pytest.mark.slow, pytest.mark.triton, pytest.mark.redis]


def test_a_short_chaos_run_answers_every_read_and_loses_no_acknowledged_event(tmp_path):
    out = tmp_path / "out"
    assert main(["--rate", "20", "--cycle", "45", "--slow-clients", "50", "--items", "500", "--fuzz-examples", "50",
                 "--work", str(tmp_path / "work"), "--out", str(out)], Settings(build_dir=tmp_path)) == 0
    payload = json.loads((out / "chaos.json").read_text())
    summary = payload["summary"]
    assert summary["transport_errors"] == 0
    # The only 5xx allowed: events refused while Redis was down ("nothing was recorded": the sender retries).
    assert set(summary["server_errors_by_kind"]) <= {"event 503"}
    assert summary["acknowledged_events"] > 100 and summary["acknowledged_events_missing"] == 0
    assert summary["events_never_acknowledged"] == 0  # the refused ones were taken once Redis was back
    assert [r["dependency"] for r in summary["recovery"]] == ["triton", "redis"]
    assert all(r["recovery_s"] is not None for r in summary["recovery"])
    assert 0 < summary["degraded_share"] < 1
    assert summary["slow_clients"]["connections"] > 50  # dropped by the head deadline, and back again
    (fuzzed,) = payload["schemathesis"]  # the schema pass beside the load: no 5xx, every answer as declared
    assert fuzzed["cases"] > 0 and fuzzed["server_errors_5xx"] == 0 and fuzzed["failures"] == []
    assert len(payload["per_second"]) == 45 and (out / "chaos.png").stat().st_size > 0
