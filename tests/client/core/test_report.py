import pytest
from recstack.client.core.report import experiment_report, format_report, wilson


def test_wilson_interval():
    low, high = wilson(10, 100)
    assert low == pytest.approx(0.0552, abs=1e-3) and high == pytest.approx(0.1744, abs=1e-3)
    assert wilson(0, 0) == (0.0, 0.0)
    assert wilson(0, 10)[0] == 0.0 and wilson(10, 10)[1] == 1.0


def test_report_counts_clicks_and_purchases_after_exposure_within_the_window():
    exposures = [
        {"experiment_id": "e", "variant": "a", "user_id": "u1", "items": ["i1", "i2"], "at": 1000.0},
        {"experiment_id": "e", "variant": "a", "user_id": "u2", "items": ["i3"], "at": 1000.0},
        {"experiment_id": "e", "variant": "b", "user_id": "u3", "items": ["i1"], "at": 1000.0},
        {"experiment_id": None, "variant": None, "user_id": "u4", "items": ["i1"], "at": 1000.0},
    ]
    events = [
        {"user_id": "u1", "item_id": "i2", "event_type": "click", "timestamp": 1100.0},
        {"user_id": "u1", "item_id": "i2", "event_type": "purchase", "timestamp": 1200.0},
        {"user_id": "u2", "item_id": "i3", "event_type": "click", "timestamp": 500.0},  # before the list
        {"user_id": "u3", "item_id": "i9", "event_type": "click", "timestamp": 1100.0},  # not shown
        {"user_id": "u3", "item_id": "i1", "event_type": "view", "timestamp": 1100.0},  # a view is no click
    ]
    report = experiment_report(exposures, events, window_s=3600)
    rows = {r["variant"]: r for r in report["variants"]}
    assert rows["a"]["lists"] == 2 and rows["a"]["clicked"] == 1 and rows["a"]["converted"] == 1
    assert rows["a"]["ctr"] == 0.5 and rows["b"]["ctr"] == 0.0
    assert set(rows) == {"a", "b"}
    late = experiment_report(exposures, events, window_s=50)
    assert {r["variant"]: r["clicked"] for r in late["variants"]} == {"a": 0, "b": 0}
    assert "| e | a | 2 | 0.500 |" in format_report(report)


def test_interleaving_credits_the_team_that_drew_the_clicks_and_degraded_lists_are_left_out():
    exposures = [
        {"experiment_id": "il", "variant": "interleaved", "user_id": "u1", "items": ["a", "b", "c"],
         "teams": ["model", "popular", "model"], "at": 0.0},
        {"experiment_id": "il", "variant": "interleaved", "user_id": "u2", "items": ["a", "b"],
         "teams": ["popular", "model"], "at": 0.0},
        {"experiment_id": "il", "variant": "interleaved", "user_id": "u3", "items": ["a"], "teams": ["model"],
         "at": 0.0, "degraded": True},
    ]
    events = [{"user_id": "u1", "item_id": "a", "event_type": "click", "timestamp": 1.0},
              {"user_id": "u1", "item_id": "c", "event_type": "click", "timestamp": 2.0},
              {"user_id": "u1", "item_id": "b", "event_type": "click", "timestamp": 3.0},
              {"user_id": "u2", "item_id": "a", "event_type": "purchase", "timestamp": 1.0},
              {"user_id": "u3", "item_id": "a", "event_type": "click", "timestamp": 1.0}]
    report = experiment_report(exposures, events)
    assert report["interleaving_wins"] == {"il": {"model": 1, "popular": 1}}
    assert report["degraded_lists_left_out"] == 1 and report["variants"][0]["lists"] == 2
    assert format_report(report).startswith("interleaving il: impressions won model 1, popular 1")


def test_event_times_without_an_offset_are_utc():
    exposures = [{"experiment_id": "e", "variant": "a", "user_id": "u", "items": ["i"], "at": 1_700_000_000.0}]
    events = [{"user_id": "u", "item_id": "i", "event_type": "click", "timestamp": "2023-11-14T22:13:30"}]
    # 2023-11-14T22:13:30Z is 10 s after the exposure; read as another zone it would fall outside the window.
    assert experiment_report(exposures, events, window_s=60)["variants"][0]["clicked"] == 1
