"""Feedback on an event clock (issue 13, item 3): a human action stamped far ahead of the
partition's event clock is refused as ``future_timestamp`` and moves nothing.

The reproducer: ``cityorder feedback`` used to stamp the wall clock into a ``cityorder dev``
system whose clock was the demo day's, two weeks earlier; the feedback moved the partition's
clock by two weeks, every pending level and deadline fired, and every input after it was late.
"""

from __future__ import annotations

from pathlib import Path

from rules.engine import FEEDBACK_AHEAD_MS, format_span
from tests.rules.harness import Harness, T, iso

DAY_MS = 86_400_000


def opened_manhole(tmp_path: Path, clock: str = "event") -> tuple[Harness, str]:
    """An open manhole alert opened at 10:00:00; the event clock is then at 10:00:10."""
    h = Harness(tmp_path, clock=clock)
    h.focus = "manhole.open"
    h.sensor(T("10:00:00"), "mh-1", "manhole_cover", state="open")
    h.sensor(T("10:00:10"), "sl-1", "streetlight", state="on")
    assert h.kinds() == ["opened"]
    return h, h.last("opened")["alert_id"]


def test_feedback_two_weeks_ahead_is_refused_and_moves_no_clock(tmp_path: Path) -> None:
    h, aid = opened_manhole(tmp_path)
    clock, progress = h.engine.clock, h.engine.progress
    h.fb(T("10:00:10") + 14 * DAY_MS, aid, "acknowledge", eid="fb-now")
    assert [(d["reason_code"], d["event_id"]) for d in h.dead] == [("future_timestamp", "fb-now")]
    reason = h.dead[0]["reason"]
    assert reason.startswith("at: 14d ahead of its partition's event clock")
    assert iso(T("10:00:10")) in reason
    assert (h.engine.clock, h.engine.progress) == (clock, progress)
    # input after it is on time, and nothing fires but what the demo day itself makes due
    h.sensor(T("10:00:20"), "sl-1", "streetlight", state="on")
    assert not h.engine.stats.late
    h.finish()
    assert h.kinds() == ["opened"]
    assert h.engine.stats.rejected == {"future_timestamp": 1}


def test_the_bound_is_a_day_ahead_of_the_event_clock(tmp_path: Path) -> None:
    h, aid = opened_manhole(tmp_path)
    h.fb(T("10:00:10.001", "2026-11-19"), aid, "acknowledge", eid="fb-late-by-1ms")
    assert [d["event_id"] for d in h.dead] == ["fb-late-by-1ms"]
    assert "at: 1d 0.001s ahead" in h.dead[0]["reason"]
    assert "at most 1d ahead" in h.dead[0]["reason"]
    h.fb(T("10:00:10", "2026-11-19"), aid, "acknowledge", eid="fb-on-the-bound")
    h.finish()
    assert [d["event_id"] for d in h.dead] == ["fb-late-by-1ms"]
    assert h.kinds() == ["opened", "escalated", "escalated", "overdue", "acknowledged"]


def test_feedback_that_drives_a_quiet_partition_is_applied(tmp_path: Path) -> None:
    """Feedback ahead of the clock by less than the bound is input like any other: in a
    recording with nothing else on the partition it is what moves time (an hour here)."""
    h, aid = opened_manhole(tmp_path)
    h.fb(T("11:10:00"), aid, "acknowledge")
    h.finish()
    assert h.dead == []
    assert h.transitions() == [("opened", iso(T("10:00:00"))), ("escalated", iso(T("10:15:00"))),
                               ("escalated", iso(T("11:00:00"))),
                               ("acknowledged", iso(T("11:10:00")))]


def test_feedback_stamped_with_the_progress_is_applied_at_once(tmp_path: Path) -> None:
    """What ``cityorder feedback`` stamps in an event-clock system (streams/clock.py): the
    partition's progress, the clock minus the reorder window. Applied when fed, with no other
    input needed: after a simulation's last input nothing else would ever move the clock."""
    h, aid = opened_manhole(tmp_path)
    progress = h.engine.clock - h.engine.reorder
    h.fb(progress, aid, "acknowledge")
    assert h.transitions()[-1] == ("acknowledged", iso(progress))


def test_feedback_behind_the_clock_is_never_refused(tmp_path: Path) -> None:
    h, aid = opened_manhole(tmp_path)
    h.fb(T("09:00:00"), aid, "acknowledge")
    assert h.dead == []
    assert h.kinds() == ["opened", "acknowledged"]


def test_wall_mode_keeps_its_own_rule(tmp_path: Path) -> None:
    """In ``wall`` mode the clock is arrivals, and ingest refuses input 5 minutes ahead of its
    arrival; the event-clock bound does not apply (feedback 4 minutes ahead of the newest
    arrival waits for the wall clock, as before)."""
    h = Harness(tmp_path, clock="wall")
    h.focus = "manhole.open"
    h.send("city.events.sensor", {"event_id": "e1", "sensor_id": "mh-1", "kind": "manhole_cover",
                                  "observed_at": iso(T("10:00:00")), "state": "open"},
           arrival=T("10:00:00"))
    h.tick(T("10:00:06"))
    aid = h.last("opened")["alert_id"]
    h.send("city.alerts.feedback", {"event_id": "fb-1", "alert_id": aid, "action": "acknowledge",
                                    "actor": "duty-7", "at": iso(T("10:04:00"))},
           key=aid, arrival=T("10:00:06"))
    h.tick(T("10:04:05"))
    assert h.dead == []
    assert h.transitions() == [("opened", iso(T("10:00:00"))), ("acknowledged", iso(T("10:04:00")))]


def test_feedback_before_any_input_has_no_clock_to_be_ahead_of(tmp_path: Path) -> None:
    """A fresh engine has no clock: the feedback is held, and rejected as ``unknown_alert``
    once progress passes it (no alert can exist in an engine that has seen nothing)."""
    h = Harness(tmp_path)
    h.fb(T("10:00:00"), "a-G-1-0123456789abcdef0123", "acknowledge", eid="fb-x")
    h.finish()
    assert [(d["reason_code"], d["event_id"]) for d in h.dead] == [("unknown_alert", "fb-x")]


def test_format_span() -> None:
    assert FEEDBACK_AHEAD_MS == DAY_MS
    assert format_span(14 * DAY_MS + 3_600_000 + 61_001) == "14d 1h 1m 1.001s"
    assert format_span(300_001) == "5m 0.001s"
    assert format_span(999) == "0.999s"
    assert format_span(2 * DAY_MS) == "2d"
