"""Case merging (merge_radius, a joined subject feeding its alert) and feedback duplicates
(CONTRACTS.md, Cases and Time)."""

from __future__ import annotations

import hashlib
import pickle
from pathlib import Path

from rules.engine import DAY_MS, Engine, restore, snapshot
from tests.rules.harness import RULES, Harness, T, iso
from tests.rules.test_operators import frames

MERGE_RULES = RULES.replace("    persist: {duration: 10m, gap: 2m}\n    policy: std",
                            "    persist: {duration: 10m, gap: 2m}\n    merge_radius: 20m\n    policy: std")

PARKING_RULES = RULES + """
  - id: parking.overstay
    category: parking_overstay
    severity: minor
    source: sensor
    match: {kinds: [parking_occupancy]}
    holds: {duration: 0s, trigger: [occupied], clear: [free]}
    merge_radius: 20m
    policy: std
"""

NEAR = (30.005 + 0.00005, 104.005)   # ~5.5 m from the vendor t1


def joined_case(h: Harness) -> tuple[Harness, str]:
    """t1 opens A at 10:10; t2, near, first matches at 10:11 and joins A; A is resolved at
    10:15 (feedback fb-resolve) while t2's episode goes on."""
    h.focus = "vend.main"
    frames(h, "10:00:00", "10:10:00")
    h.tick(T("10:10:05"))
    aid = h.last("opened")["alert_id"]
    frames(h, "10:11:00", "10:14:00", track="t2", loc=NEAR)
    h.fb(T("10:15:00"), aid, "resolve", eid="fb-resolve")
    return h, aid


def test_joined_subject_keeps_feeding_its_resolved_alert(tmp_path: Path) -> None:
    # t1 opens A at 10:10; t2 (~5.5 m away) first matches at 10:11 and is joined to A:
    # "The joined subjects then feed that alert". A is resolved at 10:15 while t2's episode
    # continues to 10:25: "A resolved alert whose episode continues still gets `updated`";
    # only "the subject's next episode opens a new alert" -> no second alert, A updated.
    h, aid = joined_case(Harness(tmp_path, rules=MERGE_RULES))
    frames(h, "10:16:00", "10:25:00", track="t2", loc=NEAR)
    h.finish(T("10:40:00"))
    assert h.kinds().count("opened") == 1
    assert {a["alert_id"] for a in h.alerts if a["rule_id"] == "vend.main"} == {aid}
    upd = [a["at"] for a in h.alerts if a["transition"] == "updated" and a["status"] == "resolved"]
    assert upd == [iso(T(f"10:{m}:00")) for m in range(16, 26)]


def test_merge_radius_joins_sensor_subjects_too(tmp_path: Path) -> None:
    # "`merge_radius` r ... joins a subject, at its first match, to the nearest active alert
    # of the same rule and grid whose opening location is within r metres". pk-1 (registered,
    # 30.005/104.013, G-2) opens at 10:00; pk-9 ~5.5 m away first triggers at 10:05 -> it
    # joins pk-1's alert (one alert, updated at 10:05 with 2 occurrences).
    h = Harness(tmp_path, rules=PARKING_RULES)
    h.focus = "parking.overstay"
    h.sensor(T("10:00:00"), "pk-1", "parking_occupancy", state="occupied", eid="p1")
    h.send("city.events.sensor", {"event_id": "p9", "sensor_id": "pk-9", "kind": "parking_occupancy",
                                  "observed_at": iso(T("10:05:00")), "state": "occupied",
                                  "location": {"lat": 30.005 + 0.00005, "lon": 104.013}})
    h.finish(T("10:10:00"))
    assert h.transitions() == [("opened", iso(T("10:00:00"))), ("updated", iso(T("10:05:00")))]
    assert h.last("updated")["occurrences"] == 2


def test_feedback_held_then_applied_is_no_duplicate_after_its_alert_is_gone(
        tmp_path: Path) -> None:
    # "A duplicate is an input whose (topic, event_id) was applied or counted ... (feedback:
    # within the life of its alert)". fb-held waits for the alert (opens 10:10), is applied,
    # the alert is rejected at 10:20 and dropped a day later (alert_retention 1 d). A
    # redelivery of fb-held after that is outside its alert's life: not a duplicate, so
    # (no alert exists) it is held and rejected as `unknown_alert` after the lateness, like
    # any feedback naming a missing alert.
    h = Harness(tmp_path, alert_retention_ms=DAY_MS)
    h.focus = "vend.main"
    digest = hashlib.sha256(f"vend.main\ncam:cam-1/t1\n{T('10:00:00')}".encode()).hexdigest()[:20]
    aid = f"a-G-1-{digest}"
    frames(h, "10:00:00", "10:09:00")
    h.fb(T("10:09:30"), aid, "acknowledge", eid="fb-held")
    frames(h, "10:10:00", "10:10:00")
    h.tick(T("10:10:05"))
    assert h.kinds() == ["opened", "acknowledged"]
    h.fb(T("10:20:00"), aid, "reject", eid="fb-rej")
    h.tick(T("10:20:06", "2026-11-19"))
    assert aid not in h.engine.grids["G-1"].alerts
    h.fb(T("10:21:00", "2026-11-19"), aid, "acknowledge", eid="fb-held")
    h.tick(T("10:23:00", "2026-11-19"))
    assert [(d["reason_code"], d["event_id"]) for d in h.dead] == [("unknown_alert", "fb-held")]


def test_episode_that_fed_an_alert_keeps_feeding_it_after_resolve(tmp_path: Path) -> None:
    # Episode 1 (10:00-10:10) opens A; it ends 10:12 (cleared). Episode 2 starts 10:15 while A
    # is open: "its new matches and new episodes update it and open nothing". A is resolved at
    # 10:27 while episode 2 continues to 10:30: "A resolved alert whose episode continues still
    # gets `updated`"; only "the subject's next episode opens a new alert" (cooldown 0).
    # So: no second alert; A gets `updated` at 10:28, 10:29, 10:30 (60 s spacing).
    h = Harness(tmp_path)
    h.focus = "vend.main"
    frames(h, "10:00:00", "10:10:00")
    h.tick(T("10:10:05"))
    aid = h.last("opened")["alert_id"]
    frames(h, "10:15:00", "10:26:00")
    h.fb(T("10:27:00"), aid, "resolve")
    frames(h, "10:28:00", "10:30:00")
    h.finish(T("10:40:00"))
    assert h.kinds().count("opened") == 1
    after = [(a["transition"], a["at"], a["alert_id"]) for a in h.alerts
             if a["rule_id"] == "vend.main" and a["at"] > iso(T("10:27:00"))]
    assert after == [("updated", iso(T(f"10:{m}:00")), aid) for m in (28, 29, 30)]


def test_a_checkpoint_holding_sets_for_a_case_restores(tmp_path: Path) -> None:
    """Checkpoints written before an alert kept its subjects, observed subjects and feedback
    ids as tuples hold sets: restored, the case goes on as if never stopped."""
    runs = []
    for convert in (False, True):
        h, aid = joined_case(Harness(tmp_path, rules=MERGE_RULES, track_changes=True))
        h.tick(T("10:15:30"))
        records, _ = snapshot(h.engine)
        if convert:
            for key, value in records.items():
                if key[0] == "alert":
                    state = pickle.loads(value)
                    assert state["subjects"] and state["observed"] and state["feedback_ids"]
                    for name in ("subjects", "observed", "feedback_ids"):
                        state[name] = set(state[name])
                    records[key] = pickle.dumps(state)
        fresh = Engine(h.city, h.rules, track_changes=True)
        restore(fresh, records)
        fresh.marks = {}   # the second log numbers its lines from 0 again: not re-reads
        h2 = Harness(tmp_path, rules=MERGE_RULES, engine=fresh)
        h2.fb(T("10:16:00"), aid, "resolve", eid="fb-resolve")   # applied before the checkpoint
        frames(h2, "10:16:00", "10:25:00", track="t2", loc=NEAR)
        h2.fb(T("10:30:00"), aid, "verify")
        h2.finish(T("10:40:00"))
        assert fresh.stats.duplicates["city.alerts.feedback"] == 1
        runs.append(h2.alerts)
    assert runs[0] == runs[1]
    upd = [a["at"] for a in runs[1] if a["transition"] == "updated" and a["status"] == "resolved"]
    assert upd == [iso(T(f"10:{m}:00")) for m in range(16, 26)]
    assert [a["transition"] for a in runs[1] if a["rule_id"] == "vend.main"][-1] == "closed"
