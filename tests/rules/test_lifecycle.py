"""Alert lifecycle: feedback state machine, escalation, deadline, defer, reopen, hotspots,
``updated`` spacing, cooldown, merge radius."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.rules.harness import RULES, Harness, T, iso
from tests.rules.test_operators import frames

OPENED = "10:10:00"


def opened_vendor(tmp_path: Path, rules: str = RULES) -> tuple[Harness, str]:
    """A vendor alert opened at 10:10:00 (episode 10:00-10:10, ends 10:12)."""
    h = Harness(tmp_path, rules=rules)
    h.focus = "vend.main"
    frames(h, "10:00:00", "10:10:00")
    h.tick(T("10:10:05"))
    return h, h.last("opened")["alert_id"]


def test_escalates_when_nobody_acts_then_goes_overdue(tmp_path: Path) -> None:
    h, _ = opened_vendor(tmp_path)
    h.finish(T("13:00:00"))
    assert h.transitions() == [
        ("opened", iso(T("10:10:00"))), ("cleared", iso(T("10:12:00"))),
        ("escalated", iso(T("10:25:00"))), ("escalated", iso(T("11:10:00"))),
        ("overdue", iso(T("12:10:00")))]
    esc = [a for a in h.alerts if a["transition"] == "escalated" and a["rule_id"] == "vend.main"]
    assert [(a["level"], a["notify"]) for a in esc] == [(2, ["district_duty"]), (3, ["district_leader"])]
    assert [a["version"] for a in h.alerts if a["rule_id"] == "vend.main"] == [1, 2, 3, 4, 5]


def test_acknowledge_cancels_the_level_that_names_it(tmp_path: Path) -> None:
    h, aid = opened_vendor(tmp_path)
    h.fb(T("10:15:00"), aid, "acknowledge", note="已派单")
    h.finish(T("13:00:00"))
    assert h.kinds() == ["opened", "cleared", "acknowledged", "escalated", "overdue"]
    ack = h.last("acknowledged")
    assert ack["status"] == "acknowledged" and ack["actor"] == "duty-7" and ack["note"] == "已派单"
    assert ack["at"] == iso(T("10:15:00"))
    assert h.last("escalated")["level"] == 3  # level 2 skipped, level 3 unless resolved fires


def test_resolve_stops_levels_and_deadline_verify_closes(tmp_path: Path) -> None:
    h, aid = opened_vendor(tmp_path)
    h.fb(T("10:20:00"), aid, "dispatch", assignee="team-3")
    h.fb(T("10:40:00"), aid, "resolve", photos=["https://evidence.example/done.jpg"])
    h.fb(T("11:00:00"), aid, "verify")
    h.finish(T("13:00:00"))
    assert h.kinds() == ["opened", "cleared", "dispatched", "resolved", "closed"]
    assert h.last("dispatched")["assignee"] == "team-3"
    assert h.last("resolved")["photos"] == ["https://evidence.example/done.jpg"]
    assert h.last("closed")["status"] == "closed" and h.last("closed")["photos"] is None


LEGAL = {
    "open": {"acknowledge", "dispatch", "resolve", "reject", "defer"},
    "acknowledged": {"dispatch", "resolve", "reject", "defer"},
    "dispatched": {"dispatch", "resolve", "reject", "defer"},
    "deferred": {"resolve", "reject", "defer"},
    "resolved": {"verify", "reopen"},
    "closed": {"reopen"},
    "rejected": set(),
}
REACH = {
    "open": [], "acknowledged": ["acknowledge"], "dispatched": ["dispatch"],
    "deferred": ["defer"], "resolved": ["resolve"], "closed": ["resolve", "verify"],
    "rejected": ["reject"],
}


@pytest.mark.parametrize("status", sorted(LEGAL))
@pytest.mark.parametrize("action", ["acknowledge", "dispatch", "resolve", "verify", "reject",
                                    "reopen", "defer"])
def test_feedback_state_machine(tmp_path: Path, status: str, action: str) -> None:
    h, aid = opened_vendor(tmp_path)
    t = T("10:11:00")
    for step in REACH[status]:
        extra = {"until": iso(T("16:00:00"))} if step == "defer" else {}
        h.fb(t, aid, step, **extra)
        t += 1000
    h.tick(t + 5000)
    t += 5000
    assert h.last()["status"] == status
    before = len(h.alerts)
    extra = {"until": iso(T("17:00:00"))} if action == "defer" else {}
    h.fb(t, aid, action, eid="the-one", **extra)
    h.tick(t + 5000)
    if action in LEGAL[status]:
        assert h.dead == []
        assert h.alerts[before]["transition"] == {
            "acknowledge": "acknowledged", "dispatch": "dispatched", "resolve": "resolved",
            "verify": "closed", "reject": "rejected", "reopen": "reopened", "defer": "deferred",
        }[action]
    else:
        assert len(h.alerts) == before
        assert [(d["reason_code"], d["event_id"]) for d in h.dead] == [("illegal_transition", "the-one")]
        assert status in h.dead[0]["reason"]


def test_redelivered_feedback_is_a_duplicate_not_an_illegal_transition(tmp_path: Path) -> None:
    h, aid = opened_vendor(tmp_path)
    h.fb(T("10:11:00"), aid, "acknowledge", eid="fb-1")
    h.fb(T("10:11:00"), aid, "acknowledge", eid="fb-1")
    h.fb(T("10:11:30"), aid, "acknowledge", eid="fb-1")
    h.tick(T("10:12:00"))
    assert h.kinds().count("acknowledged") == 1
    h.fb(T("10:12:00"), aid, "acknowledge", eid="fb-1")   # again, long after it was applied
    h.finish()
    assert h.kinds().count("acknowledged") == 1
    assert h.dead == []
    assert h.engine.stats.duplicates["city.alerts.feedback"] == 3


def test_feedback_for_an_alert_that_never_opens_is_rejected_after_the_lateness(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    h.fb(T("10:00:00"), "a-G-1-0123456789abcdef0123", "acknowledge", eid="fb-x")
    h.tick(T("10:01:04.999"))
    assert h.dead == []  # watermark 10:00:59.999: still held
    h.tick(T("10:01:05"))
    assert [(d["reason_code"], d["event_id"]) for d in h.dead] == [("unknown_alert", "fb-x")]


def test_feedback_that_arrives_before_its_alert_is_applied_when_it_opens(tmp_path: Path) -> None:
    _, aid = opened_vendor(tmp_path)
    h2 = Harness(tmp_path)
    h2.focus = "vend.main"
    frames(h2, "10:00:00", "10:09:00")
    h2.fb(T("10:09:30"), aid, "acknowledge")   # the alert opens at 10:10:00
    frames(h2, "10:10:00", "10:10:00")
    h2.finish()
    assert h2.transitions() == [("opened", iso(T("10:10:00"))), ("acknowledged", iso(T("10:10:00")))]
    assert h2.dead == []


def test_unknown_grid_in_alert_id_is_unknown_alert(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    h.fb(T("10:00:00"), "a-NOPE-0123456789abcdef0123", "acknowledge")
    assert [d["reason_code"] for d in h.dead] == ["unknown_alert"]


def test_defer_stops_levels_and_deadline_and_shifts_them(tmp_path: Path) -> None:
    h, aid = opened_vendor(tmp_path)
    h.fb(T("10:12:00"), aid, "defer", until=iso(T("11:12:00")))
    h.finish(T("14:00:00"))
    assert h.transitions() == [
        ("opened", iso(T("10:10:00"))), ("deferred", iso(T("10:12:00"))),
        ("cleared", iso(T("10:12:00"))),
        ("resumed", iso(T("11:12:00"))), ("escalated", iso(T("11:25:00"))),
        ("escalated", iso(T("12:10:00"))), ("overdue", iso(T("13:10:00")))]
    deferred = h.last("deferred")
    assert deferred["deadline"] == iso(T("13:10:00"))
    assert deferred["deferred_until"] == iso(T("11:12:00"))
    resumed = h.last("resumed")
    assert resumed["status"] == "open" and resumed["deferred_until"] is None
    assert resumed["deadline"] == iso(T("13:10:00"))


def test_resolve_during_deferral_shifts_by_the_time_actually_deferred(tmp_path: Path) -> None:
    h, aid = opened_vendor(tmp_path)
    h.fb(T("10:12:00"), aid, "defer", until=iso(T("11:12:00")))
    h.fb(T("10:22:00"), aid, "resolve")
    h.finish(T("14:00:00"))
    assert h.last("resolved")["deadline"] == iso(T("12:20:00"))
    # level 2 (unless acknowledged) and 3 (unless resolved) are both blocked once resolved
    assert h.kinds() == ["opened", "deferred", "cleared", "resolved"]


def test_reopen_fires_levels_past_due_at_once_and_keeps_the_deadline(tmp_path: Path) -> None:
    h, aid = opened_vendor(tmp_path)
    h.fb(T("10:20:00"), aid, "resolve")
    h.fb(T("10:40:00"), aid, "reopen", note="返工")
    h.finish(T("13:00:00"))
    assert h.transitions() == [
        ("opened", iso(T("10:10:00"))), ("cleared", iso(T("10:12:00"))),
        ("resolved", iso(T("10:20:00"))), ("reopened", iso(T("10:40:00"))),
        ("escalated", iso(T("10:40:00"))), ("escalated", iso(T("11:10:00"))),
        ("overdue", iso(T("12:10:00")))]
    assert h.last("reopened")["status"] == "open"
    assert h.last("reopened")["opened_at"] == iso(T("10:10:00"))


RESTART_RULES = RULES.replace("""    persist: {duration: 10m, gap: 2m}
    policy: std""", """    persist: {duration: 10m, gap: 2m}
    policy: restart""")


def test_reopen_with_restart_sets_a_new_deadline(tmp_path: Path) -> None:
    h, aid = opened_vendor(tmp_path, RESTART_RULES)
    h.fb(T("10:11:00"), aid, "acknowledge")
    h.fb(T("10:20:00"), aid, "resolve")
    h.fb(T("11:00:00"), aid, "reopen")
    h.finish(T("13:00:00"))
    assert h.last("reopened")["deadline"] == iso(T("11:30:00"))
    assert ("overdue", iso(T("11:30:00"))) in h.transitions()


def test_reopen_is_illegal_while_a_newer_alert_of_the_case_is_active(tmp_path: Path) -> None:
    h, aid = opened_vendor(tmp_path)
    h.fb(T("10:11:00"), aid, "resolve")
    frames(h, "10:20:00", "10:30:00")        # a new episode of the same subject: a new alert
    h.fb(T("10:31:00"), aid, "reopen", eid="fb-reopen")
    h.finish()
    assert h.kinds().count("opened") == 2
    assert [(d["reason_code"], d["event_id"]) for d in h.dead] == [("illegal_transition", "fb-reopen")]


def test_updated_waits_60s_after_the_previous_message(tmp_path: Path) -> None:
    h, _ = opened_vendor(tmp_path)
    h.cam(T("10:10:30"))
    h.cam(T("10:10:50"))
    h.finish(T("10:12:00"))
    upd = h.last("updated")
    assert upd["at"] == iso(T("10:11:00"))
    assert upd["occurrences"] == 13 and upd["last_seen"] == iso(T("10:10:50"))
    assert h.kinds().count("updated") == 1


def test_another_transition_carries_pending_changes(tmp_path: Path) -> None:
    h, aid = opened_vendor(tmp_path)
    h.cam(T("10:10:30"))
    h.fb(T("10:10:40"), aid, "acknowledge")
    h.finish(T("10:13:00"))
    assert h.kinds() == ["opened", "acknowledged", "cleared"]
    assert h.last("acknowledged")["occurrences"] == 12


def test_resolved_alert_still_gets_updated_while_its_episode_continues(tmp_path: Path) -> None:
    h, aid = opened_vendor(tmp_path)
    h.fb(T("10:10:10"), aid, "resolve")
    frames(h, "10:11:00", "10:13:00")
    h.fb(T("10:13:30"), aid, "verify")
    frames(h, "10:14:00", "10:15:00")
    h.finish()
    # frames at 10:11, 10:12, 10:13 each give one update, 60 s after the previous message
    assert h.transitions() == [
        ("opened", iso(T("10:10:00"))), ("resolved", iso(T("10:10:10"))),
        ("updated", iso(T("10:11:10"))), ("updated", iso(T("10:12:10"))),
        ("updated", iso(T("10:13:10"))), ("closed", iso(T("10:13:30")))]
    assert {a["status"] for a in h.alerts if a["transition"] == "updated"} == {"resolved"}


def test_cooldown_delays_a_new_alert_to_the_first_observation_after_it(tmp_path: Path) -> None:
    rules = RULES.replace("    persist: {duration: 10m, gap: 2m}\n    policy: std",
                          "    persist: {duration: 10m, gap: 2m}\n    cooldown: 30m\n    policy: std")
    h, aid = opened_vendor(tmp_path, rules)
    h.fb(T("10:11:00"), aid, "resolve")
    frames(h, "10:20:00", "10:45:00", every_s=120)
    h.finish()
    opened = [a for a in h.alerts if a["transition"] == "opened" and a["rule_id"] == "vend.main"]
    assert len(opened) == 2
    assert opened[1]["at"] == iso(T("10:42:00"))  # cooldown ends 10:41, first frame after: 10:42
    assert opened[1]["first_seen"] == iso(T("10:20:00"))


def test_merge_radius_joins_a_nearby_subject_to_the_alert(tmp_path: Path) -> None:
    rules = RULES.replace("    persist: {duration: 10m, gap: 2m}\n    policy: std",
                          "    persist: {duration: 10m, gap: 2m}\n    merge_radius: 20m\n    policy: std")
    h, aid = opened_vendor(tmp_path, rules)
    near = (30.005 + 0.00005, 104.005)       # ~5.5 m away
    frames(h, "10:11:00", "10:25:00", track="t2", loc=near)
    h.finish(T("10:40:00"))
    assert h.kinds().count("opened") == 1
    # t1 stops at 10:10 (ends 10:12) but t2 keeps the alert observed until 10:27
    cleared = [a["at"] for a in h.alerts if a["transition"] == "cleared"]
    assert cleared == [iso(T("10:27:00"))]
    assert h.last("cleared")["alert_id"] == aid


HOT_RULES = RULES.replace("    persist: {duration: 10m, gap: 2m}\n    policy: std",
                          "    persist: {duration: 0s, gap: 1m}\n    policy: hot")


def test_hotspot_opens_at_a_raised_level(tmp_path: Path) -> None:
    h = Harness(tmp_path, rules=HOT_RULES)
    h.focus = "vend.main"
    for i, hm in enumerate(("10:00:00", "11:00:00", "12:00:00")):
        h.cam(T(hm), track=f"t{i}")
    h.finish()
    opened = [a for a in h.alerts if a["transition"] == "opened" and a["rule_id"] == "vend.main"]
    assert [(a["level"], a["hotspot"]) for a in opened] == [(1, False), (1, False), (2, True)]
    assert opened[2]["notify"] == ["grid_inspector", "district_duty"]


def test_rejected_alerts_do_not_count_for_hotspots(tmp_path: Path) -> None:
    h = Harness(tmp_path, rules=HOT_RULES)
    h.focus = "vend.main"
    h.cam(T("10:00:00"), track="t0")
    h.tick(T("10:00:06"))
    h.fb(T("10:01:00"), h.last("opened")["alert_id"], "reject")
    h.cam(T("11:00:00"), track="t1")
    h.cam(T("12:00:00"), track="t2")
    h.finish()
    opened = [a for a in h.alerts if a["transition"] == "opened" and a["rule_id"] == "vend.main"]
    assert [a["hotspot"] for a in opened] == [False, False, False]


KEY_RULES = RULES + """
  - id: vend.school
    category: street_vendor
    severity: major
    source: camera
    match: {labels: [street_vendor]}
    inside: [school]
    key_periods: [{hours: "07:00-09:00", days: workdays}]
    persist: {duration: 0s, gap: 1m}
    policy: std
"""


@pytest.mark.parametrize(("hms", "day", "severity"), [
    ("10:00:00", "2026-11-18", "critical"),   # key zone (school) only
    ("08:00:00", "2026-11-18", "critical"),   # key zone and key period: raised once
])
def test_key_area_and_period_raise_severity_once(tmp_path: Path, hms: str, day: str,
                                                 severity: str) -> None:
    h = Harness(tmp_path, rules=KEY_RULES)
    h.cam(T(hms, day), loc=(30.001, 104.008))
    h.finish()
    assert h.last("opened")["severity"] == severity


def test_key_period_alone_raises_severity(tmp_path: Path) -> None:
    rules = KEY_RULES.replace("inside: [school]", "inside: [main_road]")
    h = Harness(tmp_path, rules=rules)
    h.cam(T("08:00:00"), track="a", loc=(30.005, 104.005))
    h.cam(T("10:00:00"), track="b", loc=(30.005, 104.005))
    h.cam(T("08:00:00", "2026-11-21"), track="c", loc=(30.005, 104.005))  # a Saturday
    h.finish()
    sev = [a["severity"] for a in h.alerts if a["transition"] == "opened" and a["rule_id"] == "vend.school"]
    assert sev == ["critical", "major", "major"]
