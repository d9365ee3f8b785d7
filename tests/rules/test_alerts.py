"""rules.alerts on its own: the lifecycle table against the contract's, ids, severities,
whom to notify, and what a deferral does to pending levels and the deadline (natural time;
working time is tests/rules/test_worktime.py's)."""

from __future__ import annotations

import re

import pytest

from models.common import ALERT_ID_PATTERN
from rules.alerts import ACTIVE, FINAL, LIFECYCLE, Alert, alert_id, raise_severity
from rules.citymap import CityMap
from rules.demo.city import GEOJSON_PATH
from rules.evidence import Evidence
from rules.inputs import FeedbackIn
from rules.pack import DEFAULT_PACK, load_rules

MIN = 60_000
T0 = 1_763_769_600_000   # 2025-11-22T08:00:00+08:00

#: CONTRACTS.md, Feedback: action -> (statuses it applies to, status it leads to), as written there.
CONTRACT = {
    "acknowledge": ({"open"}, "acknowledged"),
    "dispatch": ({"open", "acknowledged", "dispatched"}, "dispatched"),
    "resolve": ({"open", "acknowledged", "dispatched", "deferred"}, "resolved"),
    "verify": ({"resolved"}, "closed"),
    "reject": ({"open", "acknowledged", "dispatched", "deferred"}, "rejected"),
    "reopen": ({"resolved", "closed"}, "open"),
    "defer": ({"open", "acknowledged", "dispatched", "deferred"}, "deferred"),
}


def test_the_lifecycle_table_is_the_contracts() -> None:
    assert {a: (set(froms), to) for a, (froms, to, _) in LIFECYCLE.items()} == CONTRACT
    assert {t for _, _, t in LIFECYCLE.values()} == {"acknowledged", "dispatched", "resolved", "closed",
                                                     "rejected", "reopened", "deferred"}
    assert not ACTIVE & FINAL
    assert all(not froms & FINAL for a, (froms, _, _) in LIFECYCLE.items() if a != "reopen")


def test_an_alert_id_is_derived_and_has_the_contracts_shape() -> None:
    one = alert_id("JY-0312", "street-vending.main-road", "track:t-881", T0)
    assert one == alert_id("JY-0312", "street-vending.main-road", "track:t-881", T0)
    assert re.fullmatch(ALERT_ID_PATTERN, one) and one.startswith("a-JY-0312-")
    others = {alert_id("JY-0312", "other-rule", "track:t-881", T0),
              alert_id("JY-0312", "street-vending.main-road", "track:t-882", T0),
              alert_id("JY-0312", "street-vending.main-road", "track:t-881", T0 + 1)}
    assert one not in others and len(others) == 3


def test_severity_rises_one_step_and_stops_at_critical() -> None:
    assert [raise_severity(s) for s in ("minor", "major", "critical")] == ["major", "critical", "critical"]


@pytest.fixture(scope="module")
def city() -> CityMap:
    return CityMap.load(GEOJSON_PATH)


def bbq(city: CityMap) -> Alert:
    """bbq.outdoor: levels at 0, 15 min (unless acknowledged) and 60 min (unless resolved), a
    deadline of 2 h, all in natural time."""
    rule = next(r for r in load_rules([DEFAULT_PACK]).rules if r.id == "bbq.outdoor")
    return Alert("a-JY-0312-00000000000000000000", "JY-0312", rule, "s", T0, T0, Evidence(), city.calendar)


def test_whom_an_opening_and_an_escalation_notify(city: CityMap) -> None:
    a = bbq(city)
    assert a.notify("opened") == ["grid_inspector"]
    a.level = 3
    assert a.notify("opened") == ["grid_inspector", "district_duty", "district_leader"]
    assert a.notify("escalated") == ["district_leader"]
    assert a.notify("acknowledged") == ["district_leader"]


def test_levels_and_the_deadline_are_fixed_at_opening(city: CityMap) -> None:
    a = bbq(city)
    assert a.level_dues == (T0, T0 + 15 * MIN, T0 + 60 * MIN)
    assert a.deadline == T0 + 120 * MIN and a.overdue_due() == T0 + 120 * MIN
    assert a.level_due(2) == T0 + 15 * MIN
    a.status = "acknowledged"
    assert a.level_blocked(2) and not a.level_blocked(3)     # unless: acknowledged
    a.status = "resolved"
    assert a.level_blocked(3) and a.overdue_due() is None


def test_a_deferral_keeps_what_remained_of_each_pending_item(city: CityMap) -> None:
    a = bbq(city)
    a.level = 2                                   # level 2 fired at 15 min
    a.defer(city.calendar, T0 + 30 * MIN, until=T0 + 200 * MIN)
    assert a.status == "deferred" and a.prev_status == "open"
    assert a.level_due(3) is None and a.overdue_due() is None    # nothing fires while deferred
    # the deadline shown: 90 min remained at 30 min, so 90 min after the deferral's end
    assert a.shown_deadline() == T0 + 290 * MIN
    a.defer(city.calendar, T0 + 40 * MIN, until=T0 + 100 * MIN)  # again: only the end moves
    assert a.shown_deadline() == T0 + 190 * MIN
    a.end_deferral(city.calendar, T0 + 50 * MIN)                 # resumed early
    a.status = "open"
    assert a.level_dues == (T0, T0 + 15 * MIN, T0 + 80 * MIN)    # level 3: 30 min remained
    assert a.deadline == T0 + 140 * MIN and a.shown_deadline() == T0 + 140 * MIN


def test_an_item_already_due_when_deferred_never_moves(city: CityMap) -> None:
    a = bbq(city)
    a.level = 2
    a.defer(city.calendar, T0 + 130 * MIN, until=T0 + 200 * MIN)  # past the deadline and level 3
    a.end_deferral(city.calendar, T0 + 200 * MIN)
    assert a.level_dues[2] == T0 + 60 * MIN and a.deadline == T0 + 120 * MIN


def test_a_reopen_with_restart_gives_a_new_deadline_and_a_new_overdue(city: CityMap) -> None:
    a = bbq(city)
    a.overdue_fired = True
    a.restart_deadline(city.calendar, T0 + 300 * MIN)
    assert a.deadline == T0 + 420 * MIN and not a.overdue_fired


def test_what_each_action_does_and_leaves_to_the_engine(city: CityMap) -> None:
    a = bbq(city)
    cal = city.calendar
    assert a.refusal("verify") == ("action: verify does not apply to an alert that is open "
                                   "(it applies to: resolved)")
    fx = a.act(FeedbackIn(a.id, "dispatch", "duty", assignee="二中队"), T0 + MIN, cal)
    assert (a.status, a.assignee, fx) == ("dispatched", "二中队", ("dispatched", False, False, False, None))
    fx = a.act(FeedbackIn(a.id, "defer", "duty", until=T0 + 60 * MIN), T0 + 2 * MIN, cal)
    assert (a.status, a.prev_status, fx.resume_at) == ("deferred", "dispatched", T0 + 60 * MIN)
    assert not fx.ended
    fx = a.act(FeedbackIn(a.id, "resolve", "inspector"), T0 + 3 * MIN, cal)
    assert (a.status, a.deferred_until, a.ended_at) == ("resolved", None, T0 + 3 * MIN)
    assert (fx.transition, fx.cool_down, fx.ended, fx.reopened) == ("resolved", True, True, False)
    fx = a.act(FeedbackIn(a.id, "verify", "supervisor"), T0 + 4 * MIN, cal)
    assert (fx.transition, fx.cool_down, fx.ended) == ("closed", False, True)
    fx = a.act(FeedbackIn(a.id, "reopen", "supervisor"), T0 + 5 * MIN, cal)
    assert (a.status, a.ended_at, fx.transition) == ("open", None, "reopened")
    assert fx.reopened and not fx.ended
    assert a.refusal("reopen") is not None and a.refusal("reject") is None
