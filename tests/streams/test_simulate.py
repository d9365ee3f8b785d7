"""``cityorder simulate``'s pure parts: the time a line paces by."""

from __future__ import annotations

import pytest

from streams.simulate import line_time


@pytest.mark.parametrize("value", [
    {"observed_at": "0001-01-01T00:00:00.000+23:59"},   # year 0 in UTC: OverflowError before
    {"observed_at": "9999-12-31T20:00:00.000+00:00"},   # would have paced the run for ever
    {"observed_at": "1969-12-31T23:59:59.999Z"},
    {"at": "2100-01-01T00:00:00.000Z"},
    {"observed_at": "not a time"},
    {"observed_at": 5},
])
def test_a_time_outside_the_input_range_paces_nothing(value: dict[str, object]) -> None:
    assert line_time({"topic": "city.events.sensor", "value": value}) is None


def test_times_in_range_and_ticks() -> None:
    assert line_time({"value": {"observed_at": "1970-01-01T00:00:00.000Z"}}) == 0
    assert line_time({"value": {"at": "2099-12-31T23:59:59.999Z"}}) == 4_102_444_799_999
    assert line_time({"tick": "2026-11-20T10:00:00.000+08:00"}) == 1_795_140_000_000
    assert line_time({"tick": "9999-01-01T00:00:00.000Z"}) is None
