from datetime import datetime

import polars as pl
import pytest
from recstack.preprocessing.config import SplitConfig, WorkflowConfig
from recstack.preprocessing.splits import by_split, leave_one_out, temporal_split
from recstack.preprocessing.workflow import Workflow

from tests.preprocessing.helpers import SHOP, T0, events


def _loo(log: pl.DataFrame, collapse: bool = True) -> dict[str, pl.DataFrame]:
    encoded = Workflow(WorkflowConfig()).fit(log).transform(log)
    return by_split(leave_one_out(encoded.lazy(), collapse).collect())


def _items_of(frame: pl.DataFrame, user: str) -> list[str]:
    return frame.filter(pl.col("user_id") == user)["item_id"].to_list()


def test_leave_one_out_last_step_is_test_second_last_is_valid():
    parts = _loo(SHOP)
    # alice's steps: shoe (3 funnel events) hat sock belt hat
    assert _items_of(parts["test"], "alice") == ["hat"]
    assert _items_of(parts["valid"], "alice") == ["belt"]
    assert _items_of(parts["train"], "alice") == ["shoe", "shoe", "shoe", "hat", "sock"]
    assert _items_of(parts["test"], "carol") == ["shoe"] and _items_of(parts["valid"], "carol") == ["hat"]


def test_users_with_fewer_than_three_steps_stay_in_train():
    parts = _loo(SHOP)
    assert _items_of(parts["train"], "bob") == ["hat", "shoe"]
    assert "bob" not in parts["test"]["user_id"].to_list() + parts["valid"]["user_id"].to_list()


def test_without_collapsing_every_event_is_a_step():
    log = events([("u", "a", "view", 0), ("u", "a", "purchase", 1), ("u", "b", "view", 2), ("u", "b", "click", 3)])
    collapsed, plain = _loo(log, True), _loo(log, False)
    assert collapsed["test"].height == 0  # only two steps: a, b
    assert _items_of(plain["test"], "u") == ["b"] and _items_of(plain["valid"], "u") == ["b"]


def test_leave_one_out_keeps_every_event_exactly_once():
    parts = _loo(SHOP)
    assert sum(p.height for p in parts.values()) == SHOP.height


def test_temporal_split_by_explicit_cutoff_and_reproducible():
    config = SplitConfig(strategy="temporal", test_start=datetime(2024, 3, 1, 9, 20), valid_fraction=0.5)
    parts, cutoffs = temporal_split(SHOP, config)
    assert (parts["test"]["timestamp"] >= config.test_start).all()
    assert (parts["train"]["timestamp"] < datetime.fromisoformat(cutoffs["valid_start"])).all()
    assert datetime.fromisoformat(cutoffs["valid_start"]) == T0 + (config.test_start - T0) / 2
    assert sum(p.height for p in parts.values()) == SHOP.height
    again, _ = temporal_split(SHOP.reverse(), config)
    for name in parts:
        assert parts[name].sort("timestamp", "user_id").equals(again[name].sort("timestamp", "user_id"))


def test_temporal_split_by_quantile():
    parts, _ = temporal_split(SHOP, SplitConfig(strategy="temporal", test_fraction=0.25, valid_fraction=0.25))
    assert parts["test"]["timestamp"].min() > parts["valid"]["timestamp"].max()
    assert parts["valid"]["timestamp"].min() > parts["train"]["timestamp"].max()
    assert parts["test"].height == 4  # nearest quantile: the 9th of 12 timestamps onwards


def test_temporal_split_rejects_a_cutoff_before_the_data():
    with pytest.raises(ValueError, match="not after the first event"):
        temporal_split(SHOP, SplitConfig(strategy="temporal", test_start=datetime(2020, 1, 1)))


def test_split_config_rejects_fractions_that_leave_no_train():
    with pytest.raises(ValueError, match="below 1"):
        SplitConfig(strategy="temporal", test_fraction=0.6, valid_fraction=0.5)
