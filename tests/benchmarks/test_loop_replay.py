import json

from recstack.cli import main


def test_smoke_replay_compares_the_strategies_period_by_period(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("RECSTACK_BUILD_DIR", str(tmp_path / "build"))
    monkeypatch.setenv("RECSTACK_DATA_DIR", str(tmp_path / "no-shared-data"))
    monkeypatch.setenv("RECSTACK_SYNTHETIC_EVENTS", "12000")
    for key, value in {"RECSTACK_SASREC__HIDDEN": "16", "RECSTACK_SASREC__BLOCKS": "1",
                       "RECSTACK_SASREC__MAX_LENGTH": "20", "RECSTACK_TWO_TOWER__CUTS_PER_USER": "2"}.items():
        monkeypatch.setenv(key, value)
    results = tmp_path / "results"
    assert main(["bench", "loop", "--datasets", "synthetic", "ml-100k", "--days", "2", "--train-minutes", "0.02",
                 "--results-dir", str(results)]) == 0
    report = json.loads((results / "loop_replay.json").read_text())
    assert "ml-100k" in report["skipped"]  # absent shared data is skipped, not an error
    (synthetic,) = report["datasets"]
    rows = {(r["period"], r["strategy"]): r for r in synthetic["rows"]}
    assert set(rows) == {(p, s) for p in (0, 1) for s in ("frozen", "incremental", "full")}
    # The first period judges the initial version everywhere; then each updated strategy serves its update.
    assert len({rows[0, s]["ndcg@10"] for s in ("frozen", "incremental", "full")}) == 1
    assert [rows[1, s]["serving_version"] for s in ("frozen", "incremental", "full")] == [1, 2, 2]
    for strategy in ("incremental", "full"):
        update = rows[0, strategy]
        assert update["decision"] == "published" and 0 < update["freshness_s"] < 600
        assert 0 <= update["update_fit_seconds"] <= update["update_train_seconds"]
    summary = synthetic["summary"]
    assert set(summary["incremental_vs_full"]) == {"ndcg@10", "fit_seconds", "train_seconds"}
    assert (results / "loop_replay.png").stat().st_size > 10_000
    assert "| synthetic | incremental |" in capsys.readouterr().out


def test_every_step_of_the_period_is_judged_from_everything_before_it():
    from datetime import datetime, timedelta

    import polars as pl
    from recstack.benchmarks.loop_replay import period_steps

    t0 = datetime(2026, 1, 1)

    def frame(rows):
        return pl.DataFrame([{"user_id": u, "item_id": i, "timestamp": t0 + timedelta(hours=h)} for u, i, h in rows])

    before = frame([("a", "x", 1), ("a", "y", 2), ("b", "x", 3), ("c", "z", 4)])
    # a: y right after y is no step, z then z (a view, then a cart) one; b's first event is ranked from before
    period = frame([("a", "y", 30), ("a", "z", 31), ("a", "z", 32), ("a", "x", 33), ("b", "y", 30), ("d", "q", 30)])
    steps = period_steps(before, period, collapse_repeats=True).sort("user_id", pl.col("history").list.len())
    assert steps.to_dicts() == [
        {"user_id": "a", "item_id": "z", "history": ["x", "y"]},
        {"user_id": "a", "item_id": "x", "history": ["x", "y", "z"]},
        {"user_id": "b", "item_id": "y", "history": ["x"]}]  # d's first event has nothing to be ranked from
    assert period_steps(before, period, collapse_repeats=False)["item_id"].to_list().count("z") == 2
