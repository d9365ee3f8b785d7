"""The order of transitions at one instant (CONTRACTS.md, Output topics and Time)."""

from __future__ import annotations

from pathlib import Path

from tests.rules.harness import POLICIES, RULES, Harness, T, iso
from tests.rules.test_lifecycle import HOT_RULES
from tests.rules.test_operators import frames

LATE_POLICY = POLICIES + """
  late:
    levels:
      - {level: 1, after: 0s, notify: [grid_inspector]}
      - {level: 2, after: 60m, unless: resolved, notify: [district_duty]}
    deadline: 30m
"""
LATE_RULES = RULES.replace("    persist: {duration: 10m, gap: 2m}\n    policy: std",
                           "    persist: {duration: 10m, gap: 2m}\n    policy: late")


def test_reopen_fires_past_levels_before_past_overdue(tmp_path: Path) -> None:
    # Opened 10:10; deadline 10:40 and level 2 at 11:10 both pass while resolved (level 2
    # is `unless: resolved`). Reopen at 11:30: "Levels not yet fired become due again ...
    # firing at once if past" and "an `overdue` not yet fired whose deadline has passed
    # fires at once": both at 11:30. "Transitions caused by one input or one instant are
    # emitted in the order (`at`, cause as in Time, ...)", Time: "levels ascending,
    # `overdue`" -> escalated before overdue.
    h = Harness(tmp_path, rules=LATE_RULES, policies=LATE_POLICY)
    h.focus = "vend.main"
    frames(h, "10:00:00", "10:10:00")
    h.tick(T("10:10:05"))
    aid = h.last("opened")["alert_id"]
    h.fb(T("10:20:00"), aid, "resolve")
    h.fb(T("11:30:00"), aid, "reopen")
    h.finish(T("12:00:00"))
    assert h.transitions() == [
        ("opened", iso(T("10:10:00"))), ("cleared", iso(T("10:12:00"))),
        ("resolved", iso(T("10:20:00"))), ("reopened", iso(T("11:30:00"))),
        ("escalated", iso(T("11:30:00"))), ("overdue", iso(T("11:30:00")))]


def test_inputs_of_an_instant_come_before_its_timers(tmp_path: Path) -> None:
    # Two alerts (tracks a, b) opened 10:10, resolved 10:20, both reopened by feedback at
    # 10:40:00. Level 2 (due 10:25) fires at once on each reopen, `at` 10:40 (progress).
    # Output order at one instant is (`at`, cause, rule_id, subject) and Time puts input
    # before timers ("A timer fires ... after all input of that time"): both `reopened`,
    # then both `escalated` (subject a before b).
    h = Harness(tmp_path)
    h.focus = "vend.main"
    for m in range(0, 11):
        h.cam(T(f"10:{m:02d}:00"), detections=[
            {"label": "street_vendor", "confidence": 0.9, "track_id": "a"},
            {"label": "street_vendor", "confidence": 0.9, "track_id": "b"}])
    h.tick(T("10:10:05"))
    ids = {a["evidence"][0]["track_id"]: a["alert_id"] for a in h.alerts if a["transition"] == "opened"}
    h.fb(T("10:20:00"), ids["a"], "resolve", eid="fb-ra")
    h.fb(T("10:20:00"), ids["b"], "resolve", eid="fb-rb")
    h.fb(T("10:40:00"), ids["a"], "reopen", eid="fb-xa")
    h.fb(T("10:40:00"), ids["b"], "reopen", eid="fb-xb")
    h.finish(T("10:50:00"))
    at_1040 = [(a["transition"], a["alert_id"]) for a in h.alerts if a["at"] == iso(T("10:40:00"))]
    assert at_1040 == [("reopened", ids["a"]), ("reopened", ids["b"]),
                       ("escalated", ids["a"]), ("escalated", ids["b"])]


def test_hotspot_before_this_one_follows_output_order(tmp_path: Path) -> None:
    # Policy hot: hotspot {count: 2, within: 1d}. t0 opens at 10:00. One frame at 11:00
    # holds t2 then t1; both open at 11:00 and are emitted t1, t2 ("(`at`, cause, rule_id,
    # subject)"). Hotspot: "at least `count` alerts ... opened in (t − within, t] before this
    # one": before t1 only t0 (1) -> not hot; before t2: t0, t1 (2) -> hot, level 2.
    # The order of detections inside a message must not decide it.
    h = Harness(tmp_path, rules=HOT_RULES)
    h.focus = "vend.main"
    h.cam(T("10:00:00"), track="t0")
    h.cam(T("11:00:00"), detections=[
        {"label": "street_vendor", "confidence": 0.9, "track_id": "t2"},
        {"label": "street_vendor", "confidence": 0.9, "track_id": "t1"}])
    h.finish()
    opened = [(a["evidence"][0]["track_id"], a["hotspot"], a["level"])
              for a in h.alerts if a["transition"] == "opened" and a["rule_id"] == "vend.main"]
    assert opened == [("t0", False, 1), ("t1", False, 1), ("t2", True, 2)]
