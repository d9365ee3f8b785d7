"""Evidence, occurrences and `updated` against CONTRACTS.md, Output topics / Cases."""

from __future__ import annotations

from pathlib import Path

from tests.rules.harness import Harness, T, iso


def _two_trackless_vendors(h: Harness) -> None:
    """One frame a minute, 10:00..10:10, each with two track-less vendors on the main road:
    both detections have the same subject `label:street_vendor/main-road-1`."""
    for m in range(0, 11):
        h.cam(T(f"10:{m:02d}:00"), track=None, eid=f"f{m:02d}", detections=[
            {"label": "street_vendor", "confidence": 0.9},
            {"label": "street_vendor", "confidence": 0.8}])


def test_evidence_lists_each_event_once(tmp_path: Path) -> None:
    # CONTRACTS "occurrences: distinct matching events attributed to the alert ...
    # evidence: the first of them and the latest nine, at most 10, newest first by
    # (observed_at, event_id)". Two detections of one frame are one event.
    h = Harness(tmp_path)
    h.focus = "vend.main"
    _two_trackless_vendors(h)
    h.finish(T("10:20:00"))
    opened = h.last("opened")
    assert opened["occurrences"] == 11
    assert [e["event_id"] for e in opened["evidence"]] == \
        ["f10", "f09", "f08", "f07", "f06", "f05", "f04", "f03", "f02", "f00"]


def test_second_detection_of_the_opening_frame_is_no_update(tmp_path: Path) -> None:
    # CONTRACTS "`updated` carries new evidence": the second detection of the frame that
    # opened the alert is the same event (event f10), so there is nothing new to carry.
    h = Harness(tmp_path)
    h.focus = "vend.main"
    _two_trackless_vendors(h)
    h.finish(T("10:20:00"))
    assert h.transitions() == [("opened", iso(T("10:10:00"))), ("cleared", iso(T("10:12:00")))]


def test_count_refiring_does_not_recount_attributed_events(tmp_path: Path) -> None:
    # CONTRACTS "occurrences: distinct matching events attributed to the alert"; "While an
    # alert ... is active, its new matches and new episodes update it".
    # r1..r3 open the alert at 10:20; the window drops below 3 at 11:00 (cleared); r4 at
    # 11:05 makes a new episode (r2, r3, r4 in (10:05, 11:05]) that updates the alert.
    # Distinct events attributed: r1, r2, r3, r4 -> 4, evidence newest first.
    h = Harness(tmp_path)
    h.focus = "report.repeat"
    for hms, eid in (("10:00:00", "r1"), ("10:10:00", "r2"), ("10:20:00", "r3"),
                     ("11:05:00", "r4")):
        h.report(T(hms), eid=eid)
    h.finish(T("11:30:00"))
    assert [t for t in h.transitions() if t[0] != "escalated"] == [
        ("opened", iso(T("10:20:00"))), ("cleared", iso(T("11:00:00"))),
        ("updated", iso(T("11:05:00"))), ("cleared", iso(T("11:10:00")))]
    upd = h.last("updated")
    assert upd["occurrences"] == 4
    assert [e["event_id"] for e in upd["evidence"]] == ["r4", "r3", "r2", "r1"]
