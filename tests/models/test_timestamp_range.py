"""Input times are bounded at the edge (models/timestamps.py): what lies outside the contract's
range is a dead letter, ``bad_timestamp`` before it and ``future_timestamp`` at or after its
end, with a reason naming the field and the range; what lies inside can be written back in any
offset even with every duration a pack may hold added to it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic_core import PydanticCustomError

from models.decode import BadInput, Source, decode
from models.timestamps import (
    MAX_TIMESTAMP_MS,
    MIN_TIMESTAMP_MS,
    TIMESTAMP_RANGE,
    check_range,
    format_timestamp_ms,
    in_range,
    parse_input_timestamp_ms,
    parse_timestamp_ms,
)

DAY_MS = 86_400_000
LONGEST_DURATION_MS = 3650 * DAY_MS    # the pack loader's cap on any duration
RETENTION_MS = 30 * DAY_MS


def test_the_range_is_1970_to_2100() -> None:
    assert parse_timestamp_ms("1970-01-01T00:00:00Z") == MIN_TIMESTAMP_MS
    assert parse_timestamp_ms("2100-01-01T00:00:00Z") == MAX_TIMESTAMP_MS
    assert TIMESTAMP_RANGE == "[1970-01-01T00:00:00Z, 2100-01-01T00:00:00Z)"


@pytest.mark.parametrize(("text", "code"), [
    ("9999-12-31T20:00:00.000+00:00", "future_timestamp"),    # the streetlight
    ("2100-01-01T00:00:00.000Z", "future_timestamp"),          # the end is excluded
    ("2100-01-01T08:00:00.000+08:00", "future_timestamp"),
    ("0001-01-01T00:00:00.000+23:59", "bad_timestamp"),        # the first input
    ("1969-12-31T23:59:59.999Z", "bad_timestamp"),
    ("1970-01-01T07:59:59.999+08:00", "bad_timestamp"),
])
def test_outside_the_range_is_refused_with_its_reason_code(text: str, code: str) -> None:
    with pytest.raises(PydanticCustomError) as caught:
        parse_input_timestamp_ms(text)
    assert caught.value.type == code
    assert TIMESTAMP_RANGE in str(caught.value)


@pytest.mark.parametrize("text", ["1970-01-01T00:00:00.000Z", "1970-01-01T08:00:00+08:00",
                                  "2099-12-31T23:59:59.999Z", "2100-01-01T07:59:59.999+08:00"])
def test_the_first_and_last_instants_are_inside(text: str) -> None:
    assert in_range(parse_input_timestamp_ms(text))


def test_check_range_is_a_value_error_for_callers_outside_pydantic() -> None:
    assert check_range(MAX_TIMESTAMP_MS - 1) == MAX_TIMESTAMP_MS - 1
    with pytest.raises(ValueError, match="must be before 2100"):
        check_range(MAX_TIMESTAMP_MS)
    with pytest.raises(ValueError, match="must not be before 1970"):
        check_range(-1)


def _sensor(observed_at: str) -> bytes:
    return orjson.dumps({"event_id": "sl-1-1", "sensor_id": "sl-1", "kind": "streetlight",
                         "observed_at": observed_at, "state": "off"})


def test_decode_dead_letters_a_time_outside_the_range_naming_the_field() -> None:
    out = decode(Source.SENSOR, _sensor("9999-12-31T20:00:00.000+00:00"))
    assert isinstance(out, BadInput)
    assert (out.reason_code, out.event_id) == ("future_timestamp", "sl-1-1")
    assert out.reason.startswith("observed_at: must be before 2100-01-01T00:00:00Z")
    assert TIMESTAMP_RANGE in out.reason
    out = decode(Source.SENSOR, _sensor("0001-01-01T00:00:00.000+23:59"))
    assert isinstance(out, BadInput) and out.reason_code == "bad_timestamp"
    assert out.reason.startswith("observed_at: must not be before 1970")


@pytest.mark.parametrize(("field", "value", "code"), [
    ("at", "2100-01-01T00:00:00Z", "future_timestamp"),
    ("at", "1900-01-01T00:00:00Z", "bad_timestamp"),
    ("until", "9999-12-31T23:59:59Z", "future_timestamp"),
])
def test_feedback_at_and_until_are_bounded(field: str, value: str, code: str) -> None:
    message = {"event_id": "fb-1", "alert_id": "a-G-1-0123456789abcdef0123", "action": "defer",
               "actor": "duty-7", "at": "2026-11-18T10:00:00+08:00",
               "until": "2026-11-18T12:00:00+08:00", field: value}
    out = decode(Source.FEEDBACK, orjson.dumps(message))
    assert isinstance(out, BadInput)
    assert out.reason_code == code and out.reason.startswith(f"{field}: ")


OFFSETS = [timezone(timedelta(hours=h, minutes=m)) for h, m in ((14, 0), (-12, 0), (23, 59),
                                                                (-23, -59), (0, 0), (8, 0))]


@given(st.integers(MIN_TIMESTAMP_MS, MAX_TIMESTAMP_MS - 1), st.sampled_from(OFFSETS))
def test_every_time_in_range_plus_any_pack_duration_can_be_written(ms: int, tz: timezone) -> None:
    """What the range is for: an input time, and every time derived from it (a deadline or a
    timer a pack's longest duration and the retention later), has a spelling in any offset."""
    for t in (ms, ms + LONGEST_DURATION_MS + RETENTION_MS):
        text = format_timestamp_ms(t, tz)
        assert parse_timestamp_ms(text) == t
    assert datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=ms) < \
        datetime(2100, 1, 1, tzinfo=UTC)
