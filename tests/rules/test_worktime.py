"""Working time (ASSESSMENT.md, Working time): ``wt_add``, ``wt_between``, the ``wh``/``wd``
units in packs, ``work_hours`` in the map, and deadlines that pause while a case is deferred."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rules.citymap import CityMap, MapError
from rules.durations import Span, parse_span
from rules.pack import check_work_day
from rules.schedule import CityCalendar
from rules.worktime import day_length_ms, parse_work_hours, wt_add, wt_between
from tests.rules.harness import POLICIES, RULES, Harness, T, city_geojson, load_pack

CST = ZoneInfo("Asia/Shanghai")
H = 3_600_000
CAL = CityCalendar(CST, holidays=frozenset({date(2026, 10, 1)}),
                   workdays=frozenset({date(2026, 10, 10)}))


def at(text: str, tz: ZoneInfo = CST) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=tz).timestamp() * 1000)


def local(ms: int, tz: ZoneInfo = CST) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).astimezone(tz).strftime("%a %Y-%m-%d %H:%M")


# -- ASSESSMENT.md's examples (default hours; Monday 2026-11-23 a working day) ----------------

@pytest.mark.parametrize(("opened", "span", "due"), [
    ("2026-11-23 10:00", "4wh", "Mon 2026-11-23 16:00"),
    ("2026-11-23 10:00", "1wd", "Tue 2026-11-24 10:00"),
    ("2026-11-27 16:00", "4wh", "Mon 2026-11-30 11:00"),   # 1.5 h Friday, 2.5 h Monday
    ("2026-11-28 09:00", "2wh", "Mon 2026-11-30 10:30"),   # opened on a Saturday
    ("2026-11-23 12:30", "1wh", "Mon 2026-11-23 15:00"),   # opened at lunch
    ("2026-11-23 11:30", "1wh", "Mon 2026-11-23 14:30"),   # half before lunch, half after
    ("2026-11-23 10:00", "2wh", "Mon 2026-11-23 12:00"),   # ends exactly at a window's end
    ("2026-11-23 17:30", "0.5wh", "Tue 2026-11-24 09:00"),  # opened at the day's end
    ("2026-11-23 10:00", "0wh", "Mon 2026-11-23 10:00"),   # wt_add(t, 0) = t
])
def test_assessment_examples(opened: str, span: str, due: str) -> None:
    s = parse_span(span)
    assert local(wt_add(CAL, at(opened), s.ms(day_length_ms(CAL))) or 0) == due


def test_holidays_and_swapped_workdays() -> None:
    # 2026-10-01 (Thursday) is a holiday; Saturday 2026-10-10 is worked (调休).
    assert local(wt_add(CAL, at("2026-09-30 17:00"), 1 * H) or 0) == "Fri 2026-10-02 09:00"
    assert local(wt_add(CAL, at("2026-10-09 17:00"), 1 * H) or 0) == "Sat 2026-10-10 09:00"
    assert wt_between(CAL, at("2026-10-01 00:00"), at("2026-10-02 00:00")) == 0
    assert wt_between(CAL, at("2026-10-10 00:00"), at("2026-10-11 00:00")) == 7 * H


def test_working_time_between_two_instants() -> None:
    assert wt_between(CAL, at("2026-11-27 16:00"), at("2026-11-30 11:00")) == 4 * H
    assert wt_between(CAL, at("2026-11-23 12:00"), at("2026-11-23 14:00")) == 0   # lunch
    assert wt_between(CAL, at("2026-11-23 14:00"), at("2026-11-23 12:00")) == 0   # backwards
    assert wt_between(CAL, at("2026-11-23 00:00"), at("2026-11-30 00:00")) == 35 * H


def test_a_day_with_a_clock_change_counts_real_elapsed_time() -> None:
    berlin = ZoneInfo("Europe/Berlin")
    # A window of 01:00-04:00, across the change. 2026-03-29 (a Sunday): 02:00 jumps to 03:00,
    # so the window holds 2 h of real time; 2026-10-25: 03:00 falls back to 02:00, so it holds
    # 4 h. Both are Sundays: the calendar swaps them in as workdays.
    cal = CityCalendar(berlin, workdays=frozenset({date(2026, 3, 29), date(2026, 10, 25)}),
                       work_hours=((60, 240),))
    spring = at("2026-03-29 00:00", berlin)
    autumn = at("2026-10-25 00:00", berlin)
    assert wt_between(cal, spring, spring + 24 * H) == 2 * H
    assert wt_between(cal, autumn, autumn + 25 * H) == 4 * H
    assert wt_add(cal, spring, 2 * H) == at("2026-03-29 04:00", berlin)


# -- the property: monotone, and exactly D of working time in [t, wt_add(t, D)) --------------

ZONES = ("Asia/Shanghai", "Europe/Berlin", "America/New_York", "Australia/Lord_Howe")
T0 = at("2026-01-01 00:00")


@st.composite
def calendars(draw: st.DrawFn) -> CityCalendar:
    zone = ZoneInfo(draw(st.sampled_from(ZONES)))
    days = st.dates(date(2025, 12, 1), date(2027, 6, 30))
    holidays = draw(st.frozensets(days, max_size=20))
    workdays = draw(st.frozensets(days, max_size=5)) - holidays
    cuts = sorted(draw(st.sets(st.integers(0, 1440), min_size=2, max_size=6)))
    windows = tuple((a, b) for a, b in zip(cuts[::2], cuts[1::2], strict=False))
    return CityCalendar(zone, holidays, workdays, windows)


@settings(max_examples=200, deadline=None)
@given(cal=calendars(), t=st.integers(T0, T0 + 365 * 24 * H), dt=st.integers(0, 30 * 24 * H),
       d=st.integers(0, 200 * H), dd=st.integers(0, 50 * H))
def test_wt_add_is_monotone_and_exact(cal: CityCalendar, t: int, dt: int, d: int, dd: int) -> None:
    x = wt_add(cal, t, d)
    assert x is not None and x >= t
    assert wt_between(cal, t, x) == d
    if d > 0:   # the smallest such instant: a millisecond earlier is short
        assert wt_between(cal, t, x - 1) == d - 1
    later = wt_add(cal, t + dt, d)
    longer = wt_add(cal, t, d + dd)
    assert later is not None and later >= x
    assert longer is not None and longer >= x


# -- the map and the pack ----------------------------------------------------------------------

@pytest.mark.parametrize(("value", "fragment"), [
    ([], "is not a list of windows"),
    ("08:30-12:00", "is not a list of windows"),
    (["8:30-12:00"], "is not a window"),
    (["12:00-08:30"], "ends before it starts"),
    (["08:30-12:00", "11:00-17:30"], "starts before the window before it ends"),
    (["08:30-24:30"], "is not a time of day"),
])
def test_bad_work_hours_are_refused_with_one_line(value: object, fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment) as err:
        parse_work_hours(value)
    assert "\n" not in str(err.value) and "08:30-12:00" in str(err.value)
    geo = city_geojson()
    geo["city"]["work_hours"] = value
    with pytest.raises(MapError, match=r"city\.work_hours") as map_err:
        CityMap.from_geojson(geo, "m.geojson")
    assert fragment in str(map_err.value)


def test_work_hours_reach_the_calendar() -> None:
    geo = city_geojson()
    geo["city"]["work_hours"] = ["09:00-12:00", "13:00-18:00", "19:00-24:00"]
    cal = CityMap.from_geojson(geo, "m.geojson").calendar
    assert cal.work_hours == ((540, 720), (780, 1080), (1140, 1440))
    assert day_length_ms(cal) == 13 * H
    assert day_length_ms(CityMap.from_geojson(city_geojson(), "m").calendar) == 7 * H


def test_spans() -> None:
    assert parse_span("1.5wh") == Span(15, "wh") and Span(15, "wh").ms(0) == 5_400_000
    assert parse_span("2wd").ms(7 * H) == 14 * H and str(parse_span("2wd")) == "2wd"
    assert parse_span("90s") == Span(90_000) and not parse_span("90s").working
    for bad in ("1.5h", "1.25wh", "4 wh", "wh"):
        with pytest.raises(ValueError):
            parse_span(bad)


WORKING_POLICIES = POLICIES.replace("""\
      - {level: 2, after: 15m, unless: acknowledged, notify: [district_duty]}
      - {level: 3, after: 60m, unless: resolved, notify: [district_leader]}
    deadline: 2h""", """\
      - {level: 2, after: 1wh, unless: acknowledged, notify: [district_duty]}
      - {level: 3, after: 1wd, unless: resolved, notify: [district_leader]}
    deadline: 4wh""")


def test_a_rule_deadline_overrides_its_policy(tmp_path: Path) -> None:
    assert WORKING_POLICIES != POLICIES
    pack = load_pack(tmp_path, WORKING_POLICIES + """
rules:
  - id: own
    category: garbage_pile
    severity: minor
    source: report
    count: {n: 1, within: 1h}
    policy: std
    deadline: 2wd
  - id: inherits
    category: garbage_pile
    severity: minor
    source: report
    count: {n: 1, within: 1h}
    policy: std
""")
    by_id = {r.id: r for r in pack.rules}
    assert by_id["own"].deadline == Span(20, "wd") and by_id["inherits"].deadline == Span(40, "wh")
    # 1wh then 1wd increase with a 7 h working day, not with a 30-minute one.
    assert check_work_day(pack, 7 * H) == []
    assert check_work_day(pack, 30 * 60_000) == [
        "policy std: level 3's after 1wd is not later than level 2's 1wh with the map's working "
        "day of 30m: after must strictly increase"]


def test_levels_may_not_mix_natural_and_working_time(tmp_path: Path) -> None:
    from rules.pack import PackError
    bad = WORKING_POLICIES.replace("after: 1wd", "after: 3h")
    with pytest.raises(PackError, match="mix natural and working time"):
        load_pack(tmp_path, bad + "rules: []\n")


# -- the engine: deadlines in working time, deferred across a weekend, restarted -------------

def _manhole(tmp_path: Path, policies: str = WORKING_POLICIES) -> Harness:
    h = Harness(tmp_path, policies=policies)
    h.focus = "manhole.open"
    return h


def test_a_working_deadline_and_levels_are_absolute_instants(tmp_path: Path) -> None:
    h = _manhole(tmp_path)
    fri_16 = T("16:00:00", "2026-11-27")
    h.sensor(fri_16, "mh-1", "manhole_cover", state="open")
    h.tick(fri_16 + 60_000)
    opened = h.last("opened")
    assert opened["deadline"] == "2026-11-30T11:00:00.000+08:00"       # 1.5 h Fri + 2.5 h Mon
    h.tick(T("16:59:00", "2026-11-27"))
    assert h.kinds() == ["opened"]
    h.tick(T("16:00:30", "2026-11-30"))
    # level 2 at 1wh (Fri 17:00), overdue at 4wh (Mon 11:00), level 3 at 1wd = 7wh: 1.5 h on
    # Friday, 3.5 h on Monday morning, 2 h after lunch.
    assert h.transitions() == [("opened", "2026-11-27T16:00:00.000+08:00"),
                               ("escalated", "2026-11-27T17:00:00.000+08:00"),
                               ("overdue", "2026-11-30T11:00:00.000+08:00"),
                               ("escalated", "2026-11-30T16:00:00.000+08:00")]


def test_a_deferral_across_a_weekend_pauses_working_time(tmp_path: Path) -> None:
    h = _manhole(tmp_path)
    fri_16 = T("16:00:00", "2026-11-27")
    h.sensor(fri_16, "mh-1", "manhole_cover", state="open")
    h.tick(fri_16 + 10_000)
    aid = h.last("opened")["alert_id"]
    # Deferred Fri 16:30 until Mon 09:00: 3.5 h of the 4wh remained (16:30-17:30, Mon 08:30-11:00),
    # so the deadline becomes Mon 09:00 + 3.5 working hours = 09:00-12:00 and 14:00-14:30.
    h.fb(T("16:30:00", "2026-11-27"), aid, "defer", until=T("09:00:00", "2026-11-30"))
    h.tick(T("16:30:10", "2026-11-27"))
    deferred = h.last("deferred")
    assert deferred["deadline"] == "2026-11-30T14:30:00.000+08:00"
    h.tick(T("09:00:10", "2026-11-30"))
    resumed = h.last("resumed")
    assert resumed["at"] == "2026-11-30T09:00:00.000+08:00"
    assert resumed["deadline"] == "2026-11-30T14:30:00.000+08:00"
    h.tick(T("15:00:00", "2026-11-30"))
    overdue = h.last("overdue")
    assert overdue["at"] == "2026-11-30T14:30:00.000+08:00"


def test_a_deferral_ended_early_and_a_deadline_already_due(tmp_path: Path) -> None:
    h = _manhole(tmp_path)
    mon_10 = T("10:00:00", "2026-11-23")
    h.sensor(mon_10, "mh-1", "manhole_cover", state="open")
    h.tick(mon_10 + 10_000)
    aid = h.last("opened")["alert_id"]
    assert h.last()["deadline"] == "2026-11-23T16:00:00.000+08:00"
    # Deferred at 11:00 (3 h left), resolved at 11:30: ends the deferral early, so the deadline
    # is 11:30 + 3 wh = 15:30 (shown on the resolved message).
    h.fb(T("11:00:00", "2026-11-23"), aid, "defer", until=T("09:00:00", "2026-11-24"))
    h.fb(T("11:30:00", "2026-11-23"), aid, "resolve")
    h.tick(T("11:30:10", "2026-11-23"))
    assert h.last("resolved")["deadline"] == "2026-11-23T16:30:00.000+08:00"
    # Reopened after that deadline, overdue fires at once; a defer then never moves it.
    h.fb(T("17:00:00", "2026-11-23"), aid, "reopen")
    h.tick(T("17:00:10", "2026-11-23"))
    after_reopen = h.transitions()[h.kinds().index("reopened"):]
    assert ("overdue", "2026-11-23T17:00:00.000+08:00") in after_reopen
    h.fb(T("17:10:00", "2026-11-23"), aid, "defer", until=T("17:00:00", "2026-11-24"))
    h.tick(T("17:10:10", "2026-11-23"))
    assert h.last("deferred")["deadline"] == "2026-11-23T16:30:00.000+08:00"


def test_on_reopen_restart_counts_the_new_deadline_in_working_time(tmp_path: Path) -> None:
    policies = WORKING_POLICIES.replace("    deadline: 30m\n    on_reopen: restart",
                                        "    deadline: 2wh\n    on_reopen: restart")
    rules = RULES.replace("clear: [ok]}\n    policy: std", "clear: [ok]}\n    policy: restart")
    assert policies != WORKING_POLICIES and rules != RULES
    h = Harness(tmp_path, rules=rules, policies=policies)
    h.focus = "manhole.open"
    h.sensor(T("10:00:00", "2026-11-23"), "mh-1", "manhole_cover", state="open")
    h.tick(T("10:00:10", "2026-11-23"))
    aid = h.last("opened")["alert_id"]
    assert h.last()["deadline"] == "2026-11-23T12:00:00.000+08:00"
    h.fb(T("10:30:00", "2026-11-23"), aid, "resolve")
    h.fb(T("16:00:00", "2026-11-23"), aid, "reopen")
    h.tick(T("16:00:10", "2026-11-23"))
    # 16:00-17:30 on Monday, then 08:30-09:00 on Tuesday.
    assert h.last("reopened")["deadline"] == "2026-11-24T09:00:00.000+08:00"
    h.tick(T("09:00:10", "2026-11-24"))
    assert h.last()["transition"] == "overdue" and h.last()["at"] == "2026-11-24T09:00:00.000+08:00"


def _midnight(d: date) -> int:
    return int(datetime.combine(d, datetime.min.time(), CST).timestamp() * 1000)


def test_a_calendar_with_no_working_day_gives_no_deadline() -> None:
    cal = CityCalendar(CST, holidays=frozenset(date(2026, 1, 1) + timedelta(days=i)
                                               for i in range(4000)))
    assert wt_add(cal, _midnight(date(2026, 1, 1)), H) is None


def test_a_checkpoint_from_before_working_time_restores_to_the_same_dues(tmp_path: Path) -> None:
    """Checkpoints written before this change hold ``shift`` (time spent deferred) instead of
    absolute dues; restoring one must give what the new engine would hold."""
    from rules.engine import _alert_copy, _from_shift

    h = Harness(tmp_path)     # natural time: std has levels at 15m and 60m and a 2h deadline
    h.focus = "manhole.open"
    h.sensor(T("10:00:00"), "mh-1", "manhole_cover", state="open")
    h.tick(T("10:00:10"))
    aid = h.last("opened")["alert_id"]
    alert = next(a for g in h.engine.grids.values() for a in g.alerts.values() if a.id == aid)

    def old_form(shift: int, defer_start: int | None) -> dict[str, object]:
        state = {k: v for k, v in _alert_copy(alert).items()
                 if k not in ("level_dues", "deadline", "defer_left", "deferred_deadline")}
        return {**state, "shift": shift, "restart_base": None, "defer_start": defer_start}

    h.fb(T("10:05:00"), aid, "defer", until=T("11:00:00"))
    h.tick(T("10:05:10"))
    new = _alert_copy(alert)
    converted = _from_shift(old_form(0, T("10:05:00")), alert.rule)
    for key in ("level_dues", "deadline", "defer_left", "deferred_deadline"):
        assert converted[key] == new[key], key
    h.tick(T("11:00:10"))                                   # resumed: dues moved by 55 minutes
    assert h.last()["transition"] == "resumed"
    new = _alert_copy(alert)
    converted = _from_shift(old_form(55 * 60_000, None), alert.rule)
    for key in ("level_dues", "deadline", "defer_left", "deferred_deadline"):
        assert converted[key] == new[key], key
