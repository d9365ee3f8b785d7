"""Local time for a city: its calendar (holidays, 调休 swapped working days) and schedules.

Schedules are written in local wall-clock time (CONTRACTS.md, Matching) while the engine
counts UTC epoch milliseconds, so every check converts an instant to a local date and a
time of day. That conversion sits on the hot path (zone schedules are checked for every
event), hence the per-day caches: a city's UTC offset is constant over almost every day,
and the datetime machinery only runs for the rare day on which it changes.

Example::

    cal = CityCalendar(ZoneInfo("Asia/Shanghai"))
    night = Schedule.parse({"hours": "22:00-06:00", "days": ["fri"]})
    night.is_open(t_ms, cal)
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

DEFAULT_TIME_ZONE = "Asia/Shanghai"
#: ASSESSMENT.md's default working day: 08:30-12:00 and 14:00-17:30, 7 h.
DEFAULT_WORK_HOURS = ((8 * 60 + 30, 12 * 60), (14 * 60, 17 * 60 + 30))
DAY_MS = 86_400_000
MINUTE_MS = 60_000
SEARCH_DAYS = 400

_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
_UTC_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_MS = timedelta(milliseconds=1)
_ONE_DAY = timedelta(days=1)
# Bounded so a long replay over many years cannot grow the caches without limit.
_CACHE_LIMIT = 4096
# Instants whose local date, and the dates a search from them visits, ``datetime`` can
# represent in every UTC offset (years 1-9999). Input times are kept far inside by
# models/timestamps.py; only a due time computed from them could stray out here.
_CALENDAR_START = (date(2, 1, 1).toordinal() - _EPOCH_ORDINAL) * DAY_MS
_CALENDAR_END = (date(9998, 1, 1).toordinal() - _EPOCH_ORDINAL) * DAY_MS

DAY_TOKENS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
CALENDAR_TOKENS = ("workdays", "restdays")
_WINDOW = re.compile(r"^\s*(\d{2}):(\d{2})\s*-\s*(\d{2}):(\d{2})\s*$")
_WINDOW_HELP = (
    "write HH:MM-HH:MM in local time, such as 07:00-22:00 (start included, end excluded; "
    "22:00-06:00 crosses midnight, 00:00-00:00 is all day)"
)
_DAYS_HELP = "write workdays, restdays or a list of mon, tue, wed, thu, fri, sat, sun"


def _default_zone() -> ZoneInfo:
    return ZoneInfo(DEFAULT_TIME_ZONE)


@dataclass(frozen=True)
class CityCalendar:
    """A city's time zone and working-day calendar.

    ``holidays`` are rest days whatever their weekday; ``workdays`` are weekend days
    worked in exchange (调休); ``work_hours`` are the windows of a working day. The caches
    are excluded from equality and hashing: two calendars with the same zone and dates are
    the same calendar.

    >>> cal = CityCalendar(ZoneInfo("Asia/Shanghai"))
    >>> cal.format(0)
    '1970-01-01T08:00:00.000+08:00'
    """

    tz: ZoneInfo = field(default_factory=_default_zone)
    holidays: frozenset[date] = frozenset()
    workdays: frozenset[date] = frozenset()
    #: The windows of a working day, minutes from local midnight (rules/worktime.py).
    work_hours: tuple[tuple[int, int], ...] = DEFAULT_WORK_HOURS
    _offsets: dict[int, int | None] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )
    _dates: dict[int, date] = field(default_factory=dict, init=False, repr=False, compare=False)
    _stamps: dict[tuple[int, int], tuple[str, str]] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    def is_workday(self, d: date) -> bool:
        """A swapped working day wins over the weekday; a holiday is never a workday."""
        if d in self.workdays:
            return True
        return d.weekday() < 5 and d not in self.holidays

    def local_day(self, t_ms: int) -> tuple[date, int]:
        """The local date at ``t_ms`` and the wall-clock milliseconds since its midnight.

        Wall clock, not elapsed time: on a daylight-saving day 03:00 is 3 h × 3 600 000 ms
        whatever the clock did at 02:00, which is how schedules are written.
        """
        try:
            off = self._offsets[t_ms // DAY_MS]
        except KeyError:
            off = self._learn_day(t_ms // DAY_MS)
        if off is None:
            off = self._exact_offset(t_ms)
        n, ms = divmod(t_ms + off, DAY_MS)
        try:
            return self._dates[n], ms
        except KeyError:
            return self._learn_date(n), ms

    def format(self, t_ms: int) -> str:
        """RFC 3339 in the city's offset with milliseconds, as every output timestamp is."""
        off = self.offset_ms(t_ms)
        n, ms = divmod(t_ms + off, DAY_MS)
        try:
            prefix, suffix = self._stamps[n, off]
        except KeyError:
            prefix, suffix = self._learn_stamp(n, off)
        s, milli = divmod(ms, 1000)
        m, s = divmod(s, 60)
        h, m = divmod(m, 60)
        return f"{prefix}{h:02d}:{m:02d}:{s:02d}.{milli:03d}{suffix}"

    def offset_ms(self, t_ms: int) -> int:
        """The city's UTC offset at ``t_ms`` in milliseconds."""
        try:
            off = self._offsets[t_ms // DAY_MS]
        except KeyError:
            off = self._learn_day(t_ms // DAY_MS)
        return self._exact_offset(t_ms) if off is None else off

    def wall_instants(self, d: date, wall_ms: int) -> tuple[int, ...]:
        """The instants at which the local clock first shows ``wall_ms`` on ``d``.

        Usually one; two when the clock falls back over it; in a spring-forward gap, the
        instant the clock jumps past it (the first moment whose wall clock is later).
        """
        target = (d.toordinal() - _EPOCH_ORDINAL) * DAY_MS + wall_ms
        minutes = wall_ms // MINUTE_MS
        found: list[int] = []
        guesses: list[int] = []
        for fold in (0, 1):
            local = datetime.combine(d, time(minutes // 60, minutes % 60, fold=fold), self.tz)
            offset = local.utcoffset()
            assert offset is not None  # a ZoneInfo always knows its offset
            guess = target - offset // _ONE_MS
            guesses.append(guess)
            if guess + self.offset_ms(guess) == target and guess not in found:
                found.append(guess)
        if found:
            return tuple(sorted(found))
        return (self._first_reaching(target, min(guesses), max(guesses)),)

    def transitions(self, lo_ms: int, hi_ms: int) -> Iterator[int]:
        """Instants in [lo_ms, hi_ms) at which the UTC offset changes (at most one a day)."""
        for day in range(lo_ms // DAY_MS, (hi_ms - 1) // DAY_MS + 1):
            try:
                constant = self._offsets[day]
            except KeyError:
                constant = self._learn_day(day)
            if constant is not None:
                continue
            before = self._exact_offset(day * DAY_MS)
            lo, hi = day * DAY_MS, day * DAY_MS + DAY_MS - 1
            while lo < hi:  # the first millisecond whose offset differs from the day's start
                mid = (lo + hi) // 2
                if self._exact_offset(mid) == before:
                    lo = mid + 1
                else:
                    hi = mid
            if lo_ms <= lo < hi_ms:
                yield lo

    def _first_reaching(self, target: int, lo: int, hi: int) -> int:
        """Earliest instant in [lo, hi] whose local wall clock reads ``target`` or later."""
        while lo < hi:
            mid = (lo + hi) // 2
            if mid + self._exact_offset(mid) >= target:
                hi = mid
            else:
                lo = mid + 1
        return lo

    def _exact_offset(self, t_ms: int) -> int:
        local = (_UTC_EPOCH + timedelta(milliseconds=t_ms)).astimezone(self.tz)
        offset = local.utcoffset()
        assert offset is not None  # a ZoneInfo always knows its offset
        return offset // _ONE_MS

    def _learn_day(self, day: int) -> int | None:
        """Cache the offset of one UTC day, or None when it changes during the day."""
        first = self._exact_offset(day * DAY_MS)
        last = self._exact_offset(day * DAY_MS + DAY_MS - 1)
        value = first if first == last else None
        if len(self._offsets) >= _CACHE_LIMIT:
            self._offsets.clear()
        self._offsets[day] = value
        return value

    def _learn_date(self, n: int) -> date:
        if len(self._dates) >= _CACHE_LIMIT:
            self._dates.clear()
        d = self._dates[n] = date.fromordinal(_EPOCH_ORDINAL + n)
        return d

    def _learn_stamp(self, n: int, off: int) -> tuple[str, str]:
        if len(self._stamps) >= _CACHE_LIMIT:
            self._stamps.clear()
        sign = "-" if off < 0 else "+"
        minutes = abs(off) // MINUTE_MS  # RFC 3339 offsets have no seconds
        stamp = (
            f"{date.fromordinal(_EPOCH_ORDINAL + n).isoformat()}T",
            f"{sign}{minutes // 60:02d}:{minutes % 60:02d}",
        )
        self._stamps[n, off] = stamp
        return stamp


class ScheduleError(ValueError):
    """A schedule that cannot be read; ``key`` (hours or days) says which part is wrong."""

    def __init__(self, key: str | None, message: str) -> None:
        super().__init__(f"{key}: {message}" if key else message)
        self.key = key
        self.reason = message


@dataclass(frozen=True)
class Schedule:
    """Opening windows in local time, optionally only on some days.

    ``windows`` are minutes from local midnight, ``[start, end)``; ``end < start``
    crosses midnight and belongs to the day it opened on; ``start == end`` is all day.
    ``days`` is None for every day, else tokens ``mon``…``sun``, ``workdays``,
    ``restdays`` (from the city calendar).

    >>> Schedule.parse({"hours": "22:00-06:00", "days": ["fri"]}).windows
    ((1320, 360),)
    """

    windows: tuple[tuple[int, int], ...]
    days: tuple[str, ...] | None = None
    _spans: tuple[tuple[int, int], ...] = field(init=False, repr=False, compare=False)
    _weekdays: frozenset[int] = field(init=False, repr=False, compare=False)
    _work: bool = field(init=False, repr=False, compare=False)
    _rest: bool = field(init=False, repr=False, compare=False)
    #: The last answer of :meth:`is_open`, ``(calendar, UTC second, open)``, in a box replaced
    #: whole (a thread never reads half of one). An answer holds for a whole UTC second:
    #: zone offsets are whole seconds, so are the instants they change at, and windows and
    #: days begin on whole local minutes.
    _last: list[tuple[CityCalendar | None, int, bool]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        _check_windows(self.windows)
        _check_days(self.days)
        spans = tuple((s * MINUTE_MS, e * MINUTE_MS) for s, e in self.windows)
        days = self.days or ()
        object.__setattr__(self, "_spans", spans)
        object.__setattr__(
            self, "_weekdays", frozenset(DAY_TOKENS.index(t) for t in days if t in DAY_TOKENS)
        )
        object.__setattr__(self, "_work", "workdays" in days)
        object.__setattr__(self, "_rest", "restdays" in days)
        object.__setattr__(self, "_last", [(None, 0, False)])

    @staticmethod
    def parse(raw: object) -> Schedule:
        """Read ``{"hours": "HH:MM-HH:MM" | [..], "days": [..] | "workdays"}``.

        Omitted ``days`` means every day; omitted ``hours`` (with ``days``) means all day.
        """
        if not isinstance(raw, Mapping):
            raise ScheduleError(
                None, f"expected a mapping such as {{hours: 07:00-22:00, days: workdays}}, "
                f"got {raw!r}"
            )
        unknown = sorted(str(k) for k in raw if k not in ("hours", "days"))
        if unknown:
            raise ScheduleError(
                unknown[0], "unknown key; a schedule has hours (a window or a list of "
                "windows) and days"
            )
        if "hours" not in raw and "days" not in raw:
            raise ScheduleError(None, "empty schedule: give hours, days or both")
        windows = _parse_hours(raw["hours"]) if "hours" in raw else ((0, 0),)
        days = _parse_days(raw["days"]) if "days" in raw else None
        return Schedule(windows, days)

    def is_open(self, t_ms: int, cal: CityCalendar) -> bool:
        """Whether ``t_ms`` lies in a window (start included, end excluded). Asked for every
        event a scheduled rule or zone could match, mostly within the second it was last
        asked for: that answer is kept."""
        last, second = self._last[0], t_ms // 1000
        if last[1] == second and last[0] is cal:
            return last[2]
        answer = self._is_open(t_ms, cal)
        self._last[0] = (cal, second, answer)
        return answer

    def _is_open(self, t_ms: int, cal: CityCalendar) -> bool:
        d, ms = cal.local_day(t_ms)
        for start, end in self._spans:
            if start < end:
                if start <= ms < end and self._day_ok(d, cal):
                    return True
            elif start == end or ms >= start:  # all day, or an overnight window's evening
                if self._day_ok(d, cal):
                    return True
            elif ms < end and self._day_ok(d - _ONE_DAY, cal):
                return True
        return False

    def next_open(self, t_ms: int, cal: CityCalendar) -> int | None:
        """The earliest instant at or after ``t_ms`` at which the schedule is open.

        An opening can only happen where the wall clock reaches a window's start or a
        midnight, or where it jumps (daylight saving): those instants are tried in order.
        None when there is none within ``SEARCH_DAYS``, or when ``t_ms`` lies beyond the dates
        a calendar can write: a timer due there never fires, rather than crashing whoever
        asked (no clock gets there: input times end in 2100).
        """
        if not _CALENDAR_START <= t_ms < _CALENDAR_END:
            return None
        if self.is_open(t_ms, cal):
            return t_ms
        first, _ = cal.local_day(t_ms)
        limit = t_ms + SEARCH_DAYS * DAY_MS
        best: int | None = None
        for i in range(-1, SEARCH_DAYS + 1):
            d = first + timedelta(days=i)
            for c in self._openings(d, cal):
                if t_ms < c <= limit and (best is None or c < best) and self.is_open(c, cal):
                    best = c
            if best is not None and cal.local_day(best)[0] < d:
                break  # later days open later still
        return best

    def _openings(self, d: date, cal: CityCalendar) -> Iterator[int]:
        """Instants on local day ``d`` at which the schedule may begin to be open."""
        starts = {0} | {s for s, e in self._spans if s != e}
        for wall in sorted(starts):
            yield from cal.wall_instants(d, wall)
        day_start = cal.wall_instants(d, 0)[0]
        yield from cal.transitions(day_start, day_start + DAY_MS + 2 * 3_600_000)

    def _day_ok(self, d: date, cal: CityCalendar) -> bool:
        if self.days is None or d.weekday() in self._weekdays:
            return True
        if not (self._work or self._rest):
            return False
        workday = cal.is_workday(d)
        return (self._work and workday) or (self._rest and not workday)


def _parse_hours(raw: object) -> tuple[tuple[int, int], ...]:
    items = [raw] if isinstance(raw, str) else raw
    if not isinstance(items, list) or not items:
        raise ScheduleError("hours", f"expected a window or a list of windows: {_WINDOW_HELP}")
    return tuple(_parse_window(item) for item in items)


def _parse_window(raw: object) -> tuple[int, int]:
    m = _WINDOW.match(raw) if isinstance(raw, str) else None
    if m is None:
        raise ScheduleError("hours", f"{raw!r} is not a window: {_WINDOW_HELP}")
    h1, m1, h2, m2 = (int(g) for g in m.groups())
    if h1 > 23 or m1 > 59 or h2 > 24 or m2 > 59 or (h2 == 24 and m2):
        raise ScheduleError(
            "hours", f"{raw!r} is not a time of day: hours 00-23 (24:00 only as an end), "
            "minutes 00-59"
        )
    return h1 * 60 + m1, h2 * 60 + m2


def _parse_days(raw: object) -> tuple[str, ...]:
    items = [raw] if isinstance(raw, str) else raw
    if not isinstance(items, list) or not items:
        raise ScheduleError("days", f"expected days, got {raw!r}: {_DAYS_HELP}")
    for item in items:
        if item not in DAY_TOKENS and item not in CALENDAR_TOKENS:
            raise ScheduleError("days", f"{item!r} is not a day: {_DAYS_HELP}")
    return tuple(dict.fromkeys(items))


def _check_windows(windows: tuple[tuple[int, int], ...]) -> None:
    if not windows:
        raise ScheduleError("hours", f"no window: {_WINDOW_HELP}")
    for start, end in windows:
        if not (0 <= start < 1440 and 0 <= end <= 1440):
            raise ScheduleError(
                "hours", f"window ({start}, {end}) is out of range: minutes from local "
                "midnight, start 0..1439, end 0..1440"
            )


def _check_days(days: tuple[str, ...] | None) -> None:
    if days is None:
        return
    if not days:
        raise ScheduleError("days", f"no day given (omit days for every day): {_DAYS_HELP}")
    for token in days:
        if token not in DAY_TOKENS and token not in CALENDAR_TOKENS:
            raise ScheduleError("days", f"{token!r} is not a day: {_DAYS_HELP}")
