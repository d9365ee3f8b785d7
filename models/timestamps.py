"""RFC 3339 timestamps at the edge, integer UTC milliseconds inside.

The engine compares, sorts and hashes times millions of times (alert ids hash the episode start
in epoch milliseconds), so an input time becomes one ``int`` at validation and never a
``datetime``. Parsing is a fixed regular expression plus integer arithmetic: ``fromisoformat``
would also accept ISO 8601 forms RFC 3339 forbids (``20261122T0815``, ``+0800``, week dates).

Every input time is also bounded (:data:`MIN_TIMESTAMP_MS`, :data:`MAX_TIMESTAMP_MS`): RFC 3339
spells years 0000-9999, but the engine adds durations to times and writes them back in the
city's offset, and a reading dated 9999-12-31 plus a one-hour ``holds`` is past the last
instant ``datetime`` can write. The range leaves room for every duration a pack may hold.
"""

import re
from datetime import UTC, date, datetime, timedelta, tzinfo
from typing import Annotated, Final

from pydantic import PlainValidator, WithJsonSchema
from pydantic_core import PydanticCustomError

# [0-9] rather than \d: \d also matches other scripts' digits, which int() would then accept.
_RFC3339: Final = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt]([0-9]{2}):([0-9]{2}):([0-9]{2})"
    r"(?:\.([0-9]+))?(?:([Zz])|([+-])([0-9]{2}):([0-9]{2}))?"
)
# What cityorder itself writes: city offset and exactly three fraction digits (CONTRACTS.md).
_OUTPUT: Final = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}(?:Z|[+-][0-9]{2}:[0-9]{2})"
)
OUTPUT_TIMESTAMP_PATTERN: Final = "^" + _OUTPUT.pattern + "$"

MIN_TIMESTAMP_MS: Final = 0
"""The first instant an input may carry: 1970-01-01T00:00:00Z (included)."""
MAX_TIMESTAMP_MS: Final = 4_102_444_800_000
"""The end of the input range: 2100-01-01T00:00:00Z (excluded). Every time cityorder derives
from an input (+ at most a pack's longest duration, 3650 days, and the alert retention) stays
far inside what any UTC offset can write, both ways."""
TIMESTAMP_RANGE: Final = "[1970-01-01T00:00:00Z, 2100-01-01T00:00:00Z)"
""":data:`MIN_TIMESTAMP_MS` .. :data:`MAX_TIMESTAMP_MS` as reasons and docs spell it."""

_EPOCH_ORDINAL: Final = date(1970, 1, 1).toordinal()
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)

# Memo tables for the fast path. Events of one stream share their seconds (first 19 chars)
# and their millisecond-and-offset tails, so after one full parse a timestamp costs two dict
# lookups. Only text that passed the full parse is ever stored, so a hit is as strict as a parse.
_MEMO_LIMIT: Final = 16384
_seconds: dict[str, int] = {}  # "2026-11-22T08:15:03" -> epoch seconds of that wall time in UTC
_tails: dict[str, int] = {}  # ".120+08:00" -> fraction ms minus offset ms


def parse_timestamp_ms(value: object) -> int:
    """UTC epoch milliseconds of an RFC 3339 string that carries an offset.

    Fraction digits beyond the millisecond are truncated, not rounded, so that the same text
    always lands in the same millisecond whatever the producer's precision. Raises
    ``PydanticCustomError`` of type ``naive_timestamp`` (no offset) or ``invalid_timestamp``
    (anything else), which decode maps to reason codes.
    """
    if type(value) is str:
        seconds = _seconds.get(value[:19])
        if seconds is not None:
            tail = value[19:]
            rest = _tails.get(tail)
            if rest is None:
                rest = _finer_tail(tail)
            if rest is not None:
                return seconds * 1000 + rest
    return _parse_slow(value)


def _finer_tail(tail: str) -> int | None:
    """``.123456+08:00`` is ``.123+08:00`` once the extra digits are known to be digits."""
    zone_at = len(tail) - 1 if tail[-1:] in ("Z", "z") else len(tail) - 6
    if zone_at > 4 and tail[0] == ".":
        finer = tail[4:zone_at]
        if finer.isascii() and finer.isdigit():
            return _tails.get(tail[:4] + tail[zone_at:])
    return None


def _parse_slow(value: object) -> int:
    """The full parse; it also fills the memo tables so the next similar timestamp is cheap."""
    if type(value) is not str:
        raise PydanticCustomError("invalid_timestamp", "must be an RFC 3339 timestamp string")
    m = _RFC3339.fullmatch(value)
    if m is None:
        raise PydanticCustomError(
            "invalid_timestamp", "not an RFC 3339 timestamp (YYYY-MM-DDTHH:MM:SS[.fff]+HH:MM)"
        )
    year, month, day, hh, mi, ss, frac, zulu, sign, oh, om = m.groups()
    if not zulu and not sign:
        raise PydanticCustomError("naive_timestamp", "timestamp has no UTC offset")
    hour, minute, second = int(hh), int(mi), int(ss)
    if hour > 23 or minute > 59 or second > 59:
        raise PydanticCustomError("invalid_timestamp", "not a valid time of day")
    try:
        days = date(int(year), int(month), int(day)).toordinal() - _EPOCH_ORDINAL
    except ValueError:
        raise PydanticCustomError("invalid_timestamp", "not a valid calendar date") from None
    offset = 0
    if sign:
        off_h, off_m = int(oh), int(om)
        if off_h > 23 or off_m > 59:
            raise PydanticCustomError("invalid_timestamp", "not a valid UTC offset")
        offset = (off_h * 60 + off_m) * 60_000 * (1 if sign == "+" else -1)
    seconds = ((days * 24 + hour) * 60 + minute) * 60 + second
    rest = (int(frac[:3].ljust(3, "0")) if frac else 0) - offset
    if len(_seconds) >= _MEMO_LIMIT:
        _seconds.clear()
    if len(_tails) >= _MEMO_LIMIT:
        _tails.clear()
    _seconds[value[:19]] = seconds
    _tails[("." + frac[:3] if frac else "") + (zulu or value[-6:])] = rest
    return seconds * 1000 + rest


def in_range(ms: int) -> bool:
    """Whether ``ms`` lies in the contract's input range (:data:`TIMESTAMP_RANGE`)."""
    return MIN_TIMESTAMP_MS <= ms < MAX_TIMESTAMP_MS


def check_range(ms: int) -> int:
    """``ms`` if it lies in the input range; else ``PydanticCustomError`` (a ``ValueError``)
    of type ``future_timestamp`` (at or after the end) or ``bad_timestamp`` (before the start),
    the reason codes decode reports them with."""
    if MIN_TIMESTAMP_MS <= ms < MAX_TIMESTAMP_MS:
        return ms
    if ms >= MAX_TIMESTAMP_MS:
        raise PydanticCustomError(
            "future_timestamp",
            f"must be before 2100-01-01T00:00:00Z (times must lie in {TIMESTAMP_RANGE})",
        )
    raise PydanticCustomError(
        "bad_timestamp",
        f"must not be before 1970-01-01T00:00:00Z (times must lie in {TIMESTAMP_RANGE})",
    )


def parse_input_timestamp_ms(value: object) -> int:
    """:func:`parse_timestamp_ms` of an input time, which must also lie in the input range."""
    ms = parse_timestamp_ms(value)
    if MIN_TIMESTAMP_MS <= ms < MAX_TIMESTAMP_MS:
        return ms
    return check_range(ms)


def format_timestamp_ms(ms: int, tz: tzinfo) -> str:
    """The contract's output spelling of ``ms``: local time of ``tz``, milliseconds, offset.

    Built from an integer timedelta so no float rounding ever moves a time by a millisecond.
    """
    local = (_EPOCH + timedelta(milliseconds=ms)).astimezone(tz)
    return local.isoformat(timespec="milliseconds")


def _check_output_timestamp(value: object) -> str:
    """Output times stay strings (what consumers read) but must be real instants."""
    if type(value) is not str or _OUTPUT.fullmatch(value) is None:
        raise PydanticCustomError(
            "invalid_timestamp",
            "must be an RFC 3339 timestamp with milliseconds and an offset",
        )
    parse_timestamp_ms(value)
    return value


Timestamp = Annotated[
    int,
    PlainValidator(parse_input_timestamp_ms),
    WithJsonSchema({
        "type": "string",
        "format": "date-time",
        "description": f"RFC 3339 with a UTC offset, in {TIMESTAMP_RANGE}",
    }),
]
"""An input time: RFC 3339 with an offset on the wire, in :data:`TIMESTAMP_RANGE`, UTC epoch
milliseconds in the model."""

OutputTimestamp = Annotated[
    str,
    PlainValidator(_check_output_timestamp),
    WithJsonSchema({"type": "string", "format": "date-time", "pattern": OUTPUT_TIMESTAMP_PATTERN}),
]
"""An output time exactly as emitted, e.g. ``2026-11-22T08:15:03.120+08:00``."""
