"""RFC 3339 in, UTC epoch milliseconds out; the memoised path must agree with the full parse."""

from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic_core import PydanticCustomError

from models.timestamps import _parse_slow, format_timestamp_ms, parse_timestamp_ms

SHANGHAI = ZoneInfo("Asia/Shanghai")
# 2026-11-22T00:15:03Z
BASE_S = 1_795_306_503


@pytest.mark.parametrize(
    ("text", "expected_ms"),
    [
        ("2026-11-22T08:15:03.120+08:00", BASE_S * 1000 + 120),
        ("2026-11-22T00:15:03.120Z", BASE_S * 1000 + 120),
        ("2026-11-22T00:15:03.120z", BASE_S * 1000 + 120),
        ("2026-11-22t00:15:03Z", BASE_S * 1000),
        ("2026-11-22T08:15:03+08:00", BASE_S * 1000),
        ("2026-11-22T00:15:03.123999Z", BASE_S * 1000 + 123),  # truncated, not rounded
        ("2026-11-22T00:15:03.999999999Z", BASE_S * 1000 + 999),
        ("2026-11-22T00:15:03.1Z", BASE_S * 1000 + 100),
        ("2026-11-22T00:15:03.12Z", BASE_S * 1000 + 120),
        ("2026-11-21T19:45:03.5-04:30", BASE_S * 1000 + 500),
        ("2026-11-22T00:15:03-00:00", BASE_S * 1000),
        ("1970-01-01T00:00:00Z", 0),
        ("1969-12-31T23:59:59.9999Z", -1),
        ("2024-02-29T23:59:59.999+23:59", 1_709_251_199_999 - (23 * 60 + 59) * 60_000),
    ],
)
def test_valid_timestamps_give_utc_epoch_milliseconds(text: str, expected_ms: int) -> None:
    assert parse_timestamp_ms(text) == expected_ms
    assert parse_timestamp_ms(text) == expected_ms  # second call takes the memoised path


@pytest.mark.parametrize(
    ("value", "error_type"),
    [
        ("2026-11-22T08:15:03.120", "naive_timestamp"),
        ("2026-11-22T08:15:03", "naive_timestamp"),
        (1795306503120, "invalid_timestamp"),
        (1795306503.12, "invalid_timestamp"),
        (None, "invalid_timestamp"),
        (True, "invalid_timestamp"),
        ("2026-11-22", "invalid_timestamp"),
        ("2026-11-22 08:15:03Z", "invalid_timestamp"),
        ("2026-11-22T08:15:03+0800", "invalid_timestamp"),
        ("2026-11-22T08:15:03+08", "invalid_timestamp"),
        ("2026-11-22T08:15Z", "invalid_timestamp"),
        ("2026-11-22T08:15:03.Z", "invalid_timestamp"),
        ("2026-11-22T08:15:03Z\n", "invalid_timestamp"),
        ("2026-02-30T08:15:03Z", "invalid_timestamp"),
        ("2026-13-01T08:15:03Z", "invalid_timestamp"),
        ("2026-11-22T24:00:00Z", "invalid_timestamp"),
        ("2026-11-22T23:60:00Z", "invalid_timestamp"),
        ("2026-12-31T23:59:60Z", "invalid_timestamp"),
        ("2026-11-22T08:15:03+24:00", "invalid_timestamp"),
        ("2026-11-22T08:15:03+08:60", "invalid_timestamp"),
        ("０２０２６-11-22T08:15:03Z", "invalid_timestamp"),
        ("2026-11-22T08:15:03.12٣Z", "invalid_timestamp"),
        ("0000-01-01T00:00:00Z", "invalid_timestamp"),
        # Garbage after the first three fraction digits, with the seconds and tail memoised:
        ("2026-11-22T08:15:03.120x+08:00", "invalid_timestamp"),
        ("2026-11-22T08:15:03.1204-+08:00", "invalid_timestamp"),
        ("2026-11-22T08:15:03.120 Z", "invalid_timestamp"),
        ("2026-11-22T08:15:03.120٣+08:00", "invalid_timestamp"),
    ],
)
def test_bad_timestamps_raise_typed_errors(value: object, error_type: str) -> None:
    parse_timestamp_ms("2026-11-22T08:15:03.120+08:00")  # warm the memo tables
    parse_timestamp_ms("2026-11-22T08:15:03.120Z")
    with pytest.raises(PydanticCustomError) as caught:
        parse_timestamp_ms(value)
    assert caught.value.type == error_type


def test_naive_timestamp_message_names_the_rule() -> None:
    with pytest.raises(PydanticCustomError) as caught:
        parse_timestamp_ms("2026-11-22T08:15:03")
    assert caught.value.message() == "timestamp has no UTC offset"


def _reference_ms(dt: datetime, fraction: str) -> int:
    whole = dt.replace(microsecond=0)
    return (whole - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(milliseconds=1) + int(
        fraction[:3].ljust(3, "0") or "0"
    )


@given(
    instant=st.datetimes(
        min_value=datetime(1900, 1, 1), max_value=datetime(2200, 1, 1), timezones=st.none()
    ),
    fraction=st.text(alphabet="0123456789", max_size=9),
    offset_minutes=st.integers(min_value=-(23 * 60 + 59), max_value=23 * 60 + 59),
    zulu=st.booleans(),
)
def test_parse_matches_a_datetime_reference(
    instant: datetime, fraction: str, offset_minutes: int, zulu: bool
) -> None:
    if zulu:
        offset_minutes = 0
    tz = timezone(timedelta(minutes=offset_minutes))
    local = instant.replace(microsecond=0, tzinfo=tz)
    sign = "-" if offset_minutes < 0 else "+"
    hours, minutes = divmod(abs(offset_minutes), 60)
    zone = "Z" if zulu else f"{sign}{hours:02d}:{minutes:02d}"
    text = local.strftime("%Y-%m-%dT%H:%M:%S") + (f".{fraction}" if fraction else "") + zone
    expected = _reference_ms(local, fraction)
    assert parse_timestamp_ms(text) == expected  # may fill the memo
    assert parse_timestamp_ms(text) == expected  # memo hit
    assert _parse_slow(text) == expected


_MUTATION_ALPHABET = "0123456789-:.TtZz+ \n٣x"


@settings(max_examples=1000)
@given(
    seed=st.sampled_from(
        [
            "2026-11-22T08:15:03.120+08:00",
            "2026-11-22T08:15:03Z",
            "2026-11-22T08:15:03.123456-05:30",
        ]
    ),
    position=st.integers(min_value=0, max_value=40),
    insert=st.text(alphabet=_MUTATION_ALPHABET, max_size=3),
    delete=st.integers(min_value=0, max_value=3),
)
def test_memoised_path_agrees_with_full_parse_on_mutated_text(
    seed: str, position: int, insert: str, delete: int
) -> None:
    parse_timestamp_ms(seed)  # the memo now holds the seed's second and tail
    text = seed[:position] + insert + seed[position + delete :]
    try:
        expected: object = _parse_slow(text)
    except PydanticCustomError as error:
        expected = error.type
    try:
        got: object = parse_timestamp_ms(text)
    except PydanticCustomError as error:
        got = error.type
    assert got == expected


@pytest.mark.parametrize(
    ("ms", "tz", "expected"),
    [
        (BASE_S * 1000 + 120, SHANGHAI, "2026-11-22T08:15:03.120+08:00"),
        (BASE_S * 1000 + 7, UTC, "2026-11-22T00:15:03.007+00:00"),
        (-1, UTC, "1969-12-31T23:59:59.999+00:00"),
        (0, ZoneInfo("America/New_York"), "1969-12-31T19:00:00.000-05:00"),
    ],
)
def test_format_writes_city_offset_and_milliseconds(ms: int, tz: ZoneInfo, expected: str) -> None:
    assert format_timestamp_ms(ms, tz) == expected


@given(ms=st.integers(min_value=-(10**12), max_value=10**13))
def test_format_then_parse_round_trips(ms: int) -> None:
    assert parse_timestamp_ms(format_timestamp_ms(ms, SHANGHAI)) == ms
