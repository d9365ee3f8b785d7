"""Idle state dropped without losing a count, and the end of a replay (CONTRACTS.md, Time)."""

from __future__ import annotations

from pathlib import Path

from tests.rules.harness import Harness, T, iso


def test_idle_drop_never_loses_a_count_that_late_input_completes(tmp_path: Path) -> None:
    # Semantics ("These define the correct output"): count "Fires at the input that makes N
    # distinct matching events with `observed_at` in (t − W, t]"; Time: input within the
    # allowed lateness of the clock "is applied at once with `at` = progress. It counts with
    # its own `observed_at`". r1, r2 at 10:00; a tick moves the clock to 11:00:05 (progress
    # 11:00:00); r3 at 10:59:05 is exactly 60 s behind the clock: applied, and
    # (09:59:05, 10:59:05] holds r1, r2, r3 -> opens at 11:00:00. The engine dropped the
    # idle count subject at 11:00:00 (W = 1h after its last input), losing r1 and r2.
    h = Harness(tmp_path)
    h.focus = "report.repeat"
    h.report(T("10:00:00"), eid="r1")
    h.report(T("10:00:00"), eid="r2")
    h.tick(T("11:00:05"))
    h.report(T("10:59:05"), eid="r3")
    h.finish()
    assert h.engine.stats.late == {}
    opened = h.last("opened")
    assert opened["at"] == iso(T("11:00:00"))
    assert opened["occurrences"] == 3 and opened["first_seen"] == iso(T("10:00:00"))


def test_end_of_replay_counts_an_ignored_last_input(tmp_path: Path) -> None:
    # "End of a replay: the clock moves to the last input's time ... + reorder_window, so
    # ... the timers due up to that time fire". The last input is a report of an unknown
    # category (consumed, "ignored and counted by value") at 10:15:00, so level 2 of the
    # manhole alert (due 10:15:00) fires, as it does when that last input is a camera frame
    # with an unknown label (which the engine already treats as input).
    h = Harness(tmp_path)
    h.sensor(T("10:00:00"), "mh-1", "manhole_cover", state="open")
    h.report(T("10:15:00"), category="unicorns")
    h.finish()
    assert h.transitions("manhole.open") == [("opened", iso(T("10:00:00"))),
                                             ("escalated", iso(T("10:15:00")))]
    h2 = Harness(tmp_path)
    h2.sensor(T("10:00:00"), "mh-1", "manhole_cover", state="open")
    h2.cam(T("10:15:00"), cam="cam-2", label="unicorn")
    h2.finish()
    assert h2.transitions("manhole.open") == [("opened", iso(T("10:00:00"))),
                                              ("escalated", iso(T("10:15:00")))]
