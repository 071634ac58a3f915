from datetime import UTC, datetime

import polars as pl
import pytest
from recstack.preprocessing.schema import InputError, validate_events, validate_items


def _raw(**columns):
    base = {"user_id": ["u1", "u2"], "item_id": ["i1", "i2"], "event_type": ["view", "click"],
            "timestamp": ["2024-05-01T12:30:00", "2024-05-01T12:31:00"]}
    return pl.DataFrame({**base, **columns})


def test_one_column_may_mix_iso_forms_offsets_and_unix_times():
    raw = pl.DataFrame({"user_id": ["u"] * 5, "item_id": ["i"] * 5, "event_type": ["view"] * 5,
                        "timestamp": ["2024-05-01T12:30:00", "2024-05-01 12:30:00.250", "2024-05-01T14:30:00+02:00",
                                      "2024-05-01T12:30:00Z", "1714566600"]})
    ts = validate_events(raw, "mixed.csv", "csv")["timestamp"].to_list()
    noon_thirty = datetime(2024, 5, 1, 12, 30)
    assert ts == [noon_thirty, datetime(2024, 5, 1, 12, 30, 0, 250000), noon_thirty, noon_thirty, noon_thirty]


def test_timezone_aware_parquet_datetimes_become_utc():
    aware = pl.Series([datetime(2024, 5, 1, 12, 30, tzinfo=UTC)] * 2).dt.convert_time_zone("Europe/Paris")
    out = validate_events(_raw(timestamp=aware), "x.parquet")
    assert out["timestamp"].to_list() == [datetime(2024, 5, 1, 12, 30)] * 2


@pytest.mark.parametrize("column,value", [("weight", "nan"), ("weight", "inf")])
def test_non_finite_weights_are_rejected_with_the_line(column, value):
    with pytest.raises(InputError, match=rf"column '{column}', line 3: .* not a finite number"):
        validate_events(_raw(weight=["1", value]), "e.csv", "csv")


def test_non_finite_price_is_rejected():
    with pytest.raises(InputError, match="column 'price', row 2"):
        validate_items(pl.DataFrame({"item_id": ["a", "b"], "price": [1.0, float("nan")]}), "items.parquet")


def test_unknown_column_gets_a_suggestion():
    with pytest.raises(InputError, match=r"unknown column\(s\) 'wieght' \(did you mean 'weight'\?\)"):
        validate_events(_raw(wieght=["1", "2"]), "e.csv", "csv")


def test_event_types_are_case_insensitive_and_ids_trimmed():
    out = validate_events(_raw(event_type=[" View", "ADD_TO_CART"], user_id=[" u1 ", "u2"]), "e.csv", "csv")
    assert out["event_type"].to_list() == ["view", "add_to_cart"] and out["user_id"][0] == "u1"


def test_unix_times_before_1970_are_not_timestamps():
    with pytest.raises(InputError, match="line 2: timestamp '-5'"):
        validate_events(_raw(timestamp=["-5", "1714566600"]), "e.csv", "csv")
