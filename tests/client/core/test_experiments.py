import json
from collections import Counter

import pytest
from recstack.client.core.experiments import Experiment, Experiments, Variant, bucket, team_draft


def test_assignment_is_sticky_and_follows_the_weights():
    experiments = Experiments([Experiment("e1", (Variant("a", 3.0), Variant("b", 1.0)))])
    counts = Counter(experiments.assign(f"user{i}").variant.name for i in range(4000))
    assert 0.72 < counts["a"] / 4000 < 0.78
    assert all(experiments.assign(f"user{i}").variant == experiments.assign(f"user{i}").variant for i in range(50))


def test_traffic_share_and_independent_experiments():
    experiments = Experiments([Experiment("small", (Variant("x"),), traffic=0.2),
                               Experiment("rest", (Variant("y"), Variant("z")))])
    counts = Counter(experiments.assign(f"u{i}").experiment.id for i in range(5000))
    assert 0.17 < counts["small"] / 5000 < 0.23 and counts["rest"] == 5000 - counts["small"]
    assert bucket("u1", "a") != bucket("u1", "b")


def test_team_draft_interleaving_takes_turns_and_credits_teams():
    a, b = ["a1", "a2", "a3", "s"], ["s", "b1", "b2", "b3"]
    merged = team_draft(a, b, 6, seed=1)
    items = [item for item, _ in merged]
    assert len(items) == len(set(items)) == 6
    teams = Counter(team for _, team in merged)
    assert abs(teams[0] - teams[1]) <= 1
    for item, team in merged:
        assert item in (a if team == 0 else b)
    # Each team's picks keep its own order.
    for team, source in ((0, a), (1, b)):
        picked = [item for item, t in merged if t == team]
        assert picked == sorted(picked, key=source.index)
    assert team_draft(a, b, 6, seed=1) == merged
    assert len(team_draft(["x"], ["y", "z", "w"], 4, seed=3)) == 4


def test_experiment_files_are_validated(tmp_path):
    path = tmp_path / "experiments.json"
    path.write_text(json.dumps({"experiments": [{"id": "e", "interleave": True, "variants": [{"name": "a"}]}]}))
    with pytest.raises(ValueError, match="exactly two variants"):
        Experiments.load(path)
    for bad in ({"id": "e", "variants": []}, {"id": "e", "variants": [{"name": "a", "source": "oracle"}]},
                {"id": "e", "traffic": 0, "variants": [{"name": "a"}]}):
        path.write_text(json.dumps({"experiments": [bad]}))
        with pytest.raises(ValueError):
            Experiments.load(path)
    assert Experiments.load(None).assign("u") is None


def test_a_canary_takes_its_share_beside_an_equal_control_and_follows_the_serving_file(tmp_path):
    serving = tmp_path / "serving.json"
    experiments = Experiments.load(None, serving, refresh_s=0.0)
    assert experiments.assign("u1") is None  # no serving state: nothing to route
    serving.write_text(json.dumps({"default": 2, "canary": 3, "canary_share": 0.1, "previous": [1]}))
    counts = Counter(a.variant.name if a else None for a in map(experiments.assign, (f"u{i}" for i in range(5000))))
    assert 0.08 < counts["r3"] / 5000 < 0.12 and 0.08 < counts["r2"] / 5000 < 0.12
    canary = next(experiments.assign(f"u{i}") for i in range(5000)
                  if experiments.assign(f"u{i}") and experiments.assign(f"u{i}").variant.name == "r3")
    assert canary.experiment.id == "canary-r3"
    assert (canary.variant.model, canary.variant.version) == ("recommend_canary", 3)
    serving.write_text(json.dumps({"default": 3, "canary": None, "canary_share": 0.0, "previous": [1, 2]}))
    assert experiments.assign("u1") is None  # promoted: read again without a restart


def test_a_variant_carries_objective_weights_from_the_file(tmp_path):
    from recstack.ensemble.config import ObjectiveWeights

    path = tmp_path / "experiments.json"
    path.write_text(json.dumps({"experiments": [{"id": "relevance-vs-revenue", "variants": [
        {"name": "relevance"}, {"name": "revenue", "objectives": {"revenue": 0.05, "purchase": 0.3}}]}]}))
    relevance, revenue = Experiments.load(path).experiments[0].variants
    assert relevance.objectives is None and revenue.objectives == ObjectiveWeights(purchase=0.3, revenue=0.05)
    for bad in ({"name": "a", "objectives": {"revenue": -1}}, {"name": "a", "objectives": {"margin": 1}},
                {"name": "a", "source": "popular", "objectives": {"revenue": 1}}):
        path.write_text(json.dumps({"experiments": [{"id": "e", "variants": [bad]}]}))
        with pytest.raises((ValueError, TypeError)):
            Experiments.load(path)
