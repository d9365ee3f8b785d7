"""Schedules and the city calendar: local time, days, midnight, daylight saving."""

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rules.schedule import CityCalendar, Schedule, ScheduleError

SHANGHAI = CityCalendar(
    ZoneInfo("Asia/Shanghai"),
    holidays=frozenset({date(2026, 10, 1), date(2026, 10, 2), date(2026, 10, 5)}),
    workdays=frozenset({date(2026, 9, 27), date(2026, 10, 10)}),  # a Sunday and a Saturday
)
NEW_YORK = CityCalendar(ZoneInfo("America/New_York"))


def at(text: str) -> int:
    """Epoch milliseconds of an RFC 3339 time with its offset."""
    return int(datetime.fromisoformat(text).timestamp() * 1000)


# -- the calendar -----------------------------------------------------------------------------


def test_workdays_follow_holidays_and_swapped_days() -> None:
    assert SHANGHAI.is_workday(date(2026, 9, 30))  # Wednesday
    assert not SHANGHAI.is_workday(date(2026, 10, 1))  # Thursday, holiday
    assert not SHANGHAI.is_workday(date(2026, 10, 3))  # Saturday
    assert SHANGHAI.is_workday(date(2026, 10, 10))  # Saturday worked (调休)
    assert SHANGHAI.is_workday(date(2026, 9, 27))  # Sunday worked (调休)
    assert not SHANGHAI.is_workday(date(2026, 10, 11))  # an ordinary Sunday


def test_local_day_reads_the_city_wall_clock_whatever_the_input_offset() -> None:
    # 15:30Z is 23:30 in Shanghai, still Friday 20 November.
    assert SHANGHAI.local_day(at("2026-11-20T15:30:00.250Z")) == (date(2026, 11, 20), 84_600_250)
    # 16:00Z is Shanghai midnight: the next day at 0 ms.
    assert SHANGHAI.local_day(at("2026-11-20T16:00:00Z")) == (date(2026, 11, 21), 0)
    assert SHANGHAI.local_day(at("2026-11-20T17:00:00-07:00")) == (date(2026, 11, 21), 28_800_000)


def test_local_day_before_1970() -> None:
    assert SHANGHAI.local_day(-1) == (date(1970, 1, 1), 28_799_999)


def test_format_is_rfc3339_in_the_city_offset_with_milliseconds() -> None:
    assert SHANGHAI.format(at("2026-11-22T00:15:03.12Z")) == "2026-11-22T08:15:03.120+08:00"
    assert SHANGHAI.format(at("2026-11-22T15:59:59.999Z")) == "2026-11-22T23:59:59.999+08:00"
    assert SHANGHAI.format(at("2026-11-22T16:00:00Z")) == "2026-11-23T00:00:00.000+08:00"
    assert NEW_YORK.format(at("2026-07-01T12:00:00.007Z")) == "2026-07-01T08:00:00.007-04:00"
    assert NEW_YORK.format(at("2026-12-01T12:00:00Z")) == "2026-12-01T07:00:00.000-05:00"
    assert CityCalendar(ZoneInfo("UTC")).format(0) == "1970-01-01T00:00:00.000+00:00"
    assert CityCalendar(ZoneInfo("Asia/Kolkata")).format(0) == "1970-01-01T05:30:00.000+05:30"


def test_local_day_and_format_across_a_daylight_saving_change() -> None:
    # New York springs forward at 2026-03-08 02:00 EST = 07:00Z.
    before, after = at("2026-03-08T06:59:59.999Z"), at("2026-03-08T07:00:00Z")
    assert NEW_YORK.local_day(before) == (date(2026, 3, 8), 7_199_999)
    assert NEW_YORK.local_day(after) == (date(2026, 3, 8), 10_800_000)
    assert NEW_YORK.format(before) == "2026-03-08T01:59:59.999-05:00"
    assert NEW_YORK.format(after) == "2026-03-08T03:00:00.000-04:00"


def test_calendars_compare_by_content_not_cache() -> None:
    a = CityCalendar(ZoneInfo("Asia/Shanghai"))
    b = CityCalendar(ZoneInfo("Asia/Shanghai"))
    a.format(0)
    assert a == b
    assert hash(a) == hash(b)


# -- parsing ----------------------------------------------------------------------------------


def test_parse_windows_and_days() -> None:
    s = Schedule.parse({"hours": ["07:00-09:00", "17:00-19:30"], "days": "workdays"})
    assert s == Schedule(((420, 540), (1020, 1170)), ("workdays",))
    assert Schedule.parse({"hours": "22:00-06:00", "days": ["fri"]}) == Schedule(
        ((1320, 360),), ("fri",)
    )
    assert Schedule.parse({"hours": "18:00-24:00"}).windows == ((1080, 1440),)
    assert Schedule.parse({"days": ["sat", "sun"]}) == Schedule(((0, 0),), ("sat", "sun"))
    assert Schedule.parse({"hours": "08:00-18:00"}).days is None


@pytest.mark.parametrize(
    ("raw", "key", "message"),
    [
        ("07:00-22:00", None, "expected a mapping such as {hours: 07:00-22:00, days: workdays}"
         ", got '07:00-22:00'"),
        ({}, None, "empty schedule: give hours, days or both"),
        ({"hour": "07:00-09:00"}, "hour",
         "unknown key; a schedule has hours (a window or a list of windows) and days"),
        ({"hours": "7:00-9:00"}, "hours", "'7:00-9:00' is not a window: write HH:MM-HH:MM in "
         "local time, such as 07:00-22:00 (start included, end excluded; 22:00-06:00 crosses "
         "midnight, 00:00-00:00 is all day)"),
        ({"hours": "25:00-06:00"}, "hours", "'25:00-06:00' is not a time of day: hours 00-23 "
         "(24:00 only as an end), minutes 00-59"),
        ({"hours": []}, "hours", "expected a window or a list of windows: write HH:MM-HH:MM in "
         "local time, such as 07:00-22:00 (start included, end excluded; 22:00-06:00 crosses "
         "midnight, 00:00-00:00 is all day)"),
        ({"hours": "07:00-09:00", "days": ["friday"]}, "days",
         "'friday' is not a day: write workdays, restdays or a list of mon, tue, wed, thu, fri, "
         "sat, sun"),
        ({"days": []}, "days", "expected days, got []: write workdays, restdays or a list of "
         "mon, tue, wed, thu, fri, sat, sun"),
    ],
)
def test_parse_errors_say_what_is_valid(raw: object, key: str | None, message: str) -> None:
    with pytest.raises(ScheduleError) as err:
        Schedule.parse(raw)
    assert err.value.key == key
    assert err.value.reason == message
    assert isinstance(err.value, ValueError)


# -- is_open ----------------------------------------------------------------------------------

FRIDAY_NIGHT = Schedule.parse({"hours": "22:00-06:00", "days": ["fri"]})


@pytest.mark.parametrize(
    ("when", "open_"),
    [
        ("2026-11-20T21:59:59.999+08:00", False),  # Friday, before the window
        ("2026-11-20T22:00:00+08:00", True),  # start included
        ("2026-11-20T23:30:00+08:00", True),
        ("2026-11-21T05:59:00+08:00", True),  # Saturday morning: Friday's night
        ("2026-11-21T05:59:59.999+08:00", True),
        ("2026-11-21T06:00:00+08:00", False),  # end excluded
        ("2026-11-21T23:00:00+08:00", False),  # Saturday's own night: not a Friday
        ("2026-11-20T05:00:00+08:00", False),  # Friday morning belongs to Thursday's night
        ("2026-11-20T15:30:00Z", True),  # 23:30 Shanghai, given in UTC
    ],
)
def test_overnight_window_belongs_to_the_day_it_opened(when: str, open_: bool) -> None:
    assert FRIDAY_NIGHT.is_open(at(when), SHANGHAI) is open_


def test_start_included_end_excluded() -> None:
    s = Schedule.parse({"hours": "07:00-09:00"})
    assert not s.is_open(at("2026-11-22T06:59:59.999+08:00"), SHANGHAI)
    assert s.is_open(at("2026-11-22T07:00:00+08:00"), SHANGHAI)
    assert s.is_open(at("2026-11-22T08:59:59.999+08:00"), SHANGHAI)
    assert not s.is_open(at("2026-11-22T09:00:00+08:00"), SHANGHAI)


@pytest.mark.parametrize("hours", ["00:00-00:00", "08:00-08:00", "00:00-24:00"])
def test_all_day(hours: str) -> None:
    s = Schedule.parse({"hours": hours})
    for when in ("2026-11-22T00:00:00+08:00", "2026-11-22T08:00:00+08:00",
                 "2026-11-22T23:59:59.999+08:00", "2026-11-22T07:59:59.999+08:00"):
        assert s.is_open(at(when), SHANGHAI)


def test_all_day_only_on_listed_days() -> None:
    s = Schedule.parse({"hours": "00:00-00:00", "days": ["sun"]})
    assert s.is_open(at("2026-11-22T23:59:59.999+08:00"), SHANGHAI)  # Sunday
    assert not s.is_open(at("2026-11-23T00:00:00+08:00"), SHANGHAI)  # Monday


def test_window_ending_at_midnight() -> None:
    s = Schedule.parse({"hours": "18:00-24:00", "days": ["mon"]})
    assert s.is_open(at("2026-11-23T23:59:59.999+08:00"), SHANGHAI)
    assert not s.is_open(at("2026-11-24T00:00:00+08:00"), SHANGHAI)


@pytest.mark.parametrize(
    ("day", "workday"),
    [
        ("2026-09-30", True),  # Wednesday
        ("2026-10-01", False),  # Thursday, national holiday
        ("2026-10-05", False),  # Monday, holiday
        ("2026-10-03", False),  # Saturday
        ("2026-10-10", True),  # Saturday worked (调休)
        ("2026-09-27", True),  # Sunday worked (调休)
    ],
)
def test_workdays_and_restdays_use_the_calendar(day: str, workday: bool) -> None:
    t = at(f"{day}T08:00:00+08:00")
    work = Schedule.parse({"hours": "07:00-09:00", "days": "workdays"})
    rest = Schedule.parse({"hours": "07:00-09:00", "days": ["restdays"]})
    assert work.is_open(t, SHANGHAI) is workday
    assert rest.is_open(t, SHANGHAI) is not workday


def test_overnight_window_on_workdays_uses_the_opening_day() -> None:
    # Friday 9 Oct is a workday: its night runs into Saturday 10 Oct (itself a 调休 workday).
    # Saturday 3 Oct is a rest day, so Friday 2 Oct's (a holiday) night is closed.
    s = Schedule.parse({"hours": "22:00-02:00", "days": "workdays"})
    assert s.is_open(at("2026-10-10T01:00:00+08:00"), SHANGHAI)
    assert not s.is_open(at("2026-10-03T01:00:00+08:00"), SHANGHAI)


def test_weekday_tokens_and_calendar_tokens_combine_as_any_of() -> None:
    s = Schedule.parse({"hours": "10:00-11:00", "days": ["restdays", "wed"]})
    assert s.is_open(at("2026-09-30T10:30:00+08:00"), SHANGHAI)  # Wednesday
    assert s.is_open(at("2026-10-01T10:30:00+08:00"), SHANGHAI)  # holiday
    assert not s.is_open(at("2026-09-29T10:30:00+08:00"), SHANGHAI)  # Tuesday


def test_schedule_in_another_time_zone() -> None:
    s = Schedule.parse({"hours": "09:00-17:00"})
    # 13:30Z is 09:30 in New York (EDT) but 21:30 in Shanghai.
    assert s.is_open(at("2026-07-01T13:30:00Z"), NEW_YORK)
    assert not s.is_open(at("2026-07-01T13:30:00Z"), SHANGHAI)
    assert s.is_open(at("2026-07-01T09:00:00-04:00"), NEW_YORK)
    assert not s.is_open(at("2026-07-01T08:59:59.999-04:00"), NEW_YORK)


# -- next_open --------------------------------------------------------------------------------


def test_next_open_inside_a_window_is_now() -> None:
    t = at("2026-11-20T23:30:00+08:00")
    assert FRIDAY_NIGHT.next_open(t, SHANGHAI) == t


def test_next_open_later_the_same_day() -> None:
    t = at("2026-11-20T12:00:00+08:00")
    assert FRIDAY_NIGHT.next_open(t, SHANGHAI) == at("2026-11-20T22:00:00+08:00")


def test_next_open_across_days() -> None:
    # Closing time on Saturday: the next Friday night is six days later.
    t = at("2026-11-21T06:00:00+08:00")
    assert FRIDAY_NIGHT.next_open(t, SHANGHAI) == at("2026-11-27T22:00:00+08:00")


def test_next_open_skips_the_holiday_week() -> None:
    s = Schedule.parse({"hours": "08:00-18:00", "days": "workdays"})
    # After Wednesday 30 Sep closes, the next workday is ... not 1 or 2 Oct (holidays),
    # not 3/4 Oct (weekend), not 5 Oct (holiday): Tuesday 6 Oct.
    assert s.next_open(at("2026-09-30T18:00:00+08:00"), SHANGHAI) == at(
        "2026-10-06T08:00:00+08:00"
    )
    # The 调休 Saturday is a workday.
    assert s.next_open(at("2026-10-09T18:00:00+08:00"), SHANGHAI) == at(
        "2026-10-10T08:00:00+08:00"
    )


def test_next_open_none_within_400_days() -> None:
    start = date(2026, 1, 1)
    every_day = frozenset(start + timedelta(days=i) for i in range(410))
    cal = CityCalendar(ZoneInfo("Asia/Shanghai"), holidays=every_day)
    s = Schedule.parse({"hours": "08:00-18:00", "days": "workdays"})
    assert s.next_open(at("2026-01-01T00:00:00+08:00"), cal) is None


def test_next_open_with_input_at_another_offset() -> None:
    # 2026-11-20T12:00Z is Friday 20:00 in Shanghai.
    assert FRIDAY_NIGHT.next_open(at("2026-11-20T12:00:00Z"), SHANGHAI) == at(
        "2026-11-20T14:00:00Z"
    )


def test_next_open_in_a_spring_forward_gap_is_the_jump() -> None:
    # 02:30 does not exist on 8 Mar 2026 in New York: the clock goes 01:59:59 -> 03:00.
    s = Schedule.parse({"hours": "02:30-03:30"})
    t = at("2026-03-08T00:00:00-05:00")
    assert s.next_open(t, NEW_YORK) == at("2026-03-08T03:00:00-04:00")


def test_next_open_when_the_clock_falls_back_into_a_window() -> None:
    # 1 Nov 2026, New York: 01:59:59 EDT is followed by 01:00 EST.
    s = Schedule.parse({"hours": "01:00-01:30"})
    t = at("2026-11-01T01:31:00-04:00")
    assert not s.is_open(t, NEW_YORK)
    assert s.next_open(t, NEW_YORK) == at("2026-11-01T01:00:00-05:00")


WINDOW_STARTS = st.integers(min_value=0, max_value=1439)


@st.composite
def schedules(draw: st.DrawFn) -> Schedule:
    windows = tuple(
        (draw(WINDOW_STARTS), draw(st.integers(min_value=0, max_value=1440)))
        for _ in range(draw(st.integers(min_value=1, max_value=3)))
    )
    days = draw(st.none() | st.lists(
        st.sampled_from(["mon", "tue", "wed", "thu", "fri", "sat", "sun", "workdays",
                         "restdays"]), min_size=1, max_size=3, unique=True).map(tuple))
    return Schedule(windows, days)


@settings(max_examples=60, deadline=None)
@given(
    schedule=schedules(),
    t=st.integers(min_value=at("2026-02-20T00:00:00Z"), max_value=at("2026-11-10T00:00:00Z")),
    cal=st.sampled_from([SHANGHAI, NEW_YORK]),
)
def test_next_open_is_the_first_open_minute(schedule: Schedule, t: int, cal: CityCalendar) -> None:
    """Openness only changes on whole minutes (both zones shift by whole hours), so a scan
    minute by minute finds the same first opening."""
    found = schedule.next_open(t, cal)
    assert found is not None  # every schedule here opens within a week or two
    assert schedule.is_open(found, cal)
    if found > t:
        assert not schedule.is_open(t, cal)
        assert not schedule.is_open(found - 1, cal)
        minute = (t // 60_000 + 1) * 60_000
        while minute < found:
            assert not schedule.is_open(minute, cal), cal.format(minute)
            minute += 60_000


LORD_HOWE = CityCalendar(ZoneInfo("Australia/Lord_Howe"))   # daylight saving by half an hour


def test_is_open_answers_as_if_asked_afresh() -> None:
    """``is_open`` keeps its last answer for the rest of that UTC second. Asked on and a
    millisecond, a second and a bit either side of every window's edges and midnights, on days
    the clock changes, in Shanghai's local mean time of 1890 (+08:05:43: local minutes begin
    43 s into UTC ones), alternating calendars and in both directions, it answers as a
    schedule never asked before does."""
    schedules_ = [Schedule.parse({"hours": "22:00-06:00", "days": ["fri"]}),
                  Schedule.parse({"hours": ["07:30-09:15", "01:00-01:30"]}),
                  Schedule.parse({"hours": "02:30-03:30", "days": "workdays"}),
                  Schedule.parse({"days": "restdays"})]
    days = [date(2026, 3, 8), date(2026, 11, 1), date(2026, 4, 5), date(2026, 10, 4),
            date(2026, 9, 30), date(2026, 10, 9), date(1890, 6, 6)]
    cals = [SHANGHAI, NEW_YORK, LORD_HOWE]
    nudges = (-1_001, -1_000, -999, -1, 0, 1, 999, 1_000, 1_001)
    for schedule in schedules_:
        edges = {0, *(m * 60_000 for window in schedule.windows for m in window if m < 1440)}
        instants = sorted({t + n for cal in cals for d in days for wall in edges
                           for t in cal.wall_instants(d, wall) for n in nudges})
        asked = [[(t, cal) for t in order] for cal in cals for order in (instants, instants[::-1])]
        asked.append([(t, cal) for t in instants for cal in cals])
        for t, cal in (pair for run in asked for pair in run):
            fresh = Schedule(schedule.windows, schedule.days)
            assert schedule.is_open(t, cal) == fresh.is_open(t, cal), (cal.tz, cal.format(t))
