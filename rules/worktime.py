"""Working time (工作时, 工作日): deadlines that pause outside office hours.

Published 立案结案标准 give 处置时限 per category in working hours or days ("exposed garbage
4 工作时"), paused on weekends, holidays and lunch breaks. The city map's ``work_hours`` says
when a working day is worked (ASSESSMENT.md, Working time); the calendar says which days are
worked. This module turns that into instants: :func:`wt_add` (a deadline) and
:func:`wt_between` (what remains of one when a case is deferred).

Everything is integer UTC milliseconds, as in the engine. Working time is real elapsed time:
on a day whose clock jumps, an hour the clock skips is not worked and an hour it repeats is
worked twice, which is what the people on duty live through.

>>> from zoneinfo import ZoneInfo
>>> from rules.schedule import CityCalendar
>>> cal = CityCalendar(ZoneInfo("Asia/Shanghai"))
>>> fri_16 = 1_795_766_400_000   # Friday 2026-11-27 16:00 +08:00
>>> cal.format(wt_add(cal, fri_16, 4 * 3_600_000))   # 1.5 h on Friday, 2.5 h on Monday
'2026-11-30T11:00:00.000+08:00'
"""

from __future__ import annotations

import re
from datetime import date, timedelta
from functools import lru_cache
from itertools import pairwise

from rules.schedule import DAY_MS, MINUTE_MS, CityCalendar

HOUR_MS = 3_600_000
#: Every window lies within its local date, so the instants of one date lie within this much
#: of its midnight read as UTC (UTC offsets are within ±14 h).
_OFFSET_BOUND_MS = 18 * HOUR_MS
_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
_ONE_DAY = timedelta(days=1)
#: A search that meets no working instant for this many days in a row gives up: the calendar
#: lists every day as a holiday, or the time lies beyond the dates it can write.
MAX_IDLE_DAYS = 3660
_WINDOW = re.compile(r"^(\d{2}):(\d{2})-(\d{2}):(\d{2})$")
WORK_HOURS_HELP = ('write a non-empty list of ascending, non-overlapping windows "HH:MM-HH:MM" '
                   'within one day (24:00 only as an end), such as ["08:30-12:00", "14:00-17:30"]')


def parse_work_hours(raw: object) -> tuple[tuple[int, int], ...]:
    """``["08:30-12:00", "14:00-17:30"]`` as minutes from local midnight; ValueError with one
    line naming what is wrong and what is valid."""
    if not isinstance(raw, list) or not raw:
        raise ValueError(f"{raw!r} is not a list of windows: {WORK_HOURS_HELP}")
    windows: list[tuple[int, int]] = []
    for item in raw:
        m = _WINDOW.match(item.strip()) if isinstance(item, str) else None
        if m is None:
            raise ValueError(f"{item!r} is not a window: {WORK_HOURS_HELP}")
        h1, m1, h2, m2 = (int(g) for g in m.groups())
        if h1 > 23 or m1 > 59 or h2 > 24 or m2 > 59 or (h2 == 24 and m2):
            raise ValueError(f"{item!r} is not a time of day: hours 00-23 (24:00 only as an end), "
                             f"minutes 00-59; {WORK_HOURS_HELP}")
        start, end = h1 * 60 + m1, h2 * 60 + m2
        if start >= end:
            raise ValueError(f"{item!r} ends before it starts; {WORK_HOURS_HELP}")
        if windows and start < windows[-1][1]:
            raise ValueError(f"{item!r} starts before the window before it ends; {WORK_HOURS_HELP}")
        windows.append((start, end))
    return tuple(windows)


def day_length_ms(cal: CityCalendar) -> int:
    """The nominal length of one working day: what ``1wd`` means."""
    return sum(end - start for start, end in cal.work_hours) * MINUTE_MS


@lru_cache(maxsize=4096)
def working_intervals(cal: CityCalendar, d: date) -> tuple[tuple[int, int], ...]:
    """The instants of local date ``d`` whose local time lies in a window, as ascending
    ``[start, end)`` UTC intervals; none on a day that is not worked."""
    if not cal.is_workday(d):
        return ()
    midnight = (d.toordinal() - _EPOCH_ORDINAL) * DAY_MS   # local midnight read as UTC
    lo, hi = midnight - _OFFSET_BOUND_MS, midnight + DAY_MS + _OFFSET_BOUND_MS
    cuts = [lo, *cal.transitions(lo, hi), hi]
    out: list[tuple[int, int]] = []
    for a, b in pairwise(cuts):
        off = cal.offset_ms(a)   # constant on [a, b)
        for start, end in cal.work_hours:
            x0 = max(a, midnight + start * MINUTE_MS - off)
            x1 = min(b, midnight + end * MINUTE_MS - off)
            if x0 < x1:
                if out and out[-1][1] == x0:
                    out[-1] = (out[-1][0], x1)
                else:
                    out.append((x0, x1))
    out.sort()
    return tuple(out)


def wt_add(cal: CityCalendar, t: int, d: int) -> int | None:
    """The smallest instant x ≥ t such that the working time in ``[t, x)`` is ``d`` ms (so a
    deadline that completes at 12:00 is due at 12:00, not after lunch). None when no such
    instant can be found (beyond the calendar's dates, or no working day for ten years)."""
    if d <= 0:
        return t
    try:
        day = cal.local_day(t)[0] - _ONE_DAY
    except (OverflowError, ValueError):
        return None
    idle = 0
    while idle <= MAX_IDLE_DAYS:
        try:
            intervals = working_intervals(cal, day)
            day += _ONE_DAY
        except OverflowError:
            return None
        idle = 0 if intervals else idle + 1
        for start, end in intervals:
            if end <= t:
                continue
            start = max(start, t)
            if d <= end - start:
                return start + d
            d -= end - start
    return None


def wt_between(cal: CityCalendar, a: int, b: int) -> int:
    """The working time in ``[a, b)``, in ms (0 when b ≤ a)."""
    if b <= a:
        return 0
    day = cal.local_day(a)[0] - _ONE_DAY
    last = cal.local_day(b)[0] + _ONE_DAY
    total = 0
    while day <= last:
        for start, end in working_intervals(cal, day):
            lo, hi = max(start, a), min(end, b)
            if lo < hi:
                total += hi - lo
        day += _ONE_DAY
    return total
