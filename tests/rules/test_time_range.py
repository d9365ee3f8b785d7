"""Every time that can reach an engine is bounded at the edge (issue 13, item 1): the poison
messages that crashed a replay, through the real decode -> ingest -> engine path.

Before the bound, each of these raised ``OverflowError: date value out of range`` somewhere: in
the schedule check of a ``holds`` rule, in the dead letter's ``received_at``, in rendering an
alert or in writing its output."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from models.decode import BadInput, Source
from models.outputs import Alert, DeadLetter
from models.timestamps import MAX_TIMESTAMP_MS, MIN_TIMESTAMP_MS, TIMESTAMP_RANGE
from rules.alerts import alert_id
from rules.engine import DAY_MS
from rules.ingest import Ingest
from rules.replay import ReplayFileError
from rules.schedule import CityCalendar, Schedule
from tests.rules.harness import Harness, T, iso

FAR_FUTURE = "9999-12-31T20:00:00.000+00:00"
FAR_PAST = "0001-01-01T00:00:00.000+23:59"
LAST_MS = MAX_TIMESTAMP_MS - 1


def _reading(h: Harness, observed_at: str, sensor: str = "sl-1", kind: str = "streetlight",
             state: str = "off", eid: str = "r-1") -> None:
    h.send("city.events.sensor", {"event_id": eid, "sensor_id": sensor, "kind": kind,
                                  "observed_at": observed_at, "state": state}, key=sensor)


def _heartbeat(h: Harness, observed_at: str, eid: str = "hb-1") -> None:
    h.send("city.events.camera", {"event_id": eid, "camera_id": "cam-1",
                                  "observed_at": observed_at, "detections": []}, key="cam-1")


def _valid(messages: list[dict[str, Any]], model: Any) -> None:
    for m in messages:
        model.model_validate(m)


def test_a_streetlight_off_in_year_9999_is_a_dead_letter_not_a_crash(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    _reading(h, FAR_FUTURE)
    h.sensor(T("20:00:00"), "sl-1", "streetlight", "off")
    h.finish(T("22:00:00"))
    assert [(d["reason_code"], d["event_id"]) for d in h.dead] == [("future_timestamp", "r-1")]
    assert h.dead[0]["reason"].startswith("observed_at: must be before 2100-01-01T00:00:00Z")
    assert TIMESTAMP_RANGE in h.dead[0]["reason"]
    assert h.kinds("light.out")[0] == "opened"     # the valid reading still works
    _valid(h.dead, DeadLetter)
    _valid(h.alerts, Alert)


def test_a_far_past_first_input_is_a_dead_letter_with_a_writable_received_at(
        tmp_path: Path) -> None:
    h = Harness(tmp_path)
    _reading(h, FAR_PAST, sensor="mh-1", kind="manhole_cover", state="open")
    h.finish()
    assert [d["reason_code"] for d in h.dead] == ["bad_timestamp"]
    assert h.dead[0]["received_at"] == "1970-01-01T08:00:00.000+08:00"   # no clock yet
    assert h.engine.clock is None and h.alerts == []
    _valid(h.dead, DeadLetter)


def test_a_year_9999_heartbeat_then_a_bad_line(tmp_path: Path) -> None:
    """The clock once jumped to 9999 here, and the next dead letter's received_at overflowed."""
    h = Harness(tmp_path)
    _heartbeat(h, FAR_FUTURE)
    h.raw_line({"topic": "city.events.camera", "key": "cam-1", "raw": "not json {"})
    h.finish()
    assert [d["reason_code"] for d in h.dead] == ["future_timestamp", "bad_json"]
    _valid(h.dead, DeadLetter)


@pytest.mark.parametrize(("extra", "code", "field"), [
    ({"at": "2100-01-01T00:00:00Z"}, "future_timestamp", "at"),
    ({"at": "1969-01-01T00:00:00Z"}, "bad_timestamp", "at"),
    ({"action": "defer", "until": FAR_FUTURE}, "future_timestamp", "until"),
])
def test_feedback_times_out_of_range(tmp_path: Path, extra: dict[str, str], code: str,
                                     field: str) -> None:
    h = Harness(tmp_path)
    h.sensor(T("10:00:00"), "mh-1", "manhole_cover", "open")
    h.tick(T("10:00:10"))
    aid = h.last("opened")["alert_id"]
    value = {"event_id": "fb-x", "alert_id": aid, "action": "acknowledge", "actor": "duty-7",
             "at": iso(T("10:01:00")), **extra}
    h.send("city.alerts.feedback", value, key=aid)
    h.finish()
    assert [(d["reason_code"], d["reason"].split(":")[0]) for d in h.dead] == [(code, field)]


@pytest.mark.parametrize("arrival", [-1, MIN_TIMESTAMP_MS - 1, MAX_TIMESTAMP_MS, 10**18])
def test_an_unusable_kafka_timestamp_is_a_bad_timestamp(tmp_path: Path, arrival: int) -> None:
    """Kafka's record timestamp is the arrival; it can be -1 (none) or absurd."""
    h = Harness(tmp_path, clock="wall")
    raw = b'{"event_id":"r-1","sensor_id":"sl-1","kind":"streetlight",' \
          b'"observed_at":"2026-11-18T20:00:00+08:00","state":"off"}'
    for clock in ("event", "wall"):
        out = Ingest(h.city, h.rules, clock=clock)(Source.SENSOR, "city.events.sensor", raw,
                                                    arrival=arrival)
        assert isinstance(out, BadInput)
        assert (out.reason_code, out.event_id) == ("bad_timestamp", "r-1")
        assert out.reason.startswith("arrival: ") and TIMESTAMP_RANGE in out.reason


@pytest.mark.parametrize("clock", ["event", "wall"])
def test_a_replay_line_with_an_arrival_out_of_range_is_a_dead_letter(tmp_path: Path,
                                                                     clock: str) -> None:
    """As a live worker dead-letters such a Kafka timestamp, so that a recording of it
    replays the same; the dead letter's received_at is the replay's clock instead."""
    h = Harness(tmp_path, clock=clock)
    h.send("city.events.sensor", {"event_id": "ok-1", "sensor_id": "mh-1", "kind": "manhole_cover",
                                  "observed_at": iso(T("10:00:00")), "state": "ok"},
           arrival=T("10:00:00"))
    h.raw_line({"topic": "city.events.sensor", "key": "sl-1", "arrival": FAR_FUTURE,
                "value": {"event_id": "r-1", "sensor_id": "sl-1", "kind": "streetlight",
                          "observed_at": iso(T("10:00:01")), "state": "off"}})
    h.finish()
    assert [(d["reason_code"], d["event_id"]) for d in h.dead] == [("bad_timestamp", "r-1")]
    assert h.dead[0]["received_at"] == iso(T("10:00:00"))
    assert h.replay.summary.dead == {"bad_timestamp": 1}


def test_a_tick_out_of_range_is_a_replay_file_error_that_changes_nothing(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    h.sensor(T("10:00:00"), "mh-1", "manhole_cover", "open")
    before = (h.engine.clock, h.replay.summary.lines)
    for tick in (FAR_FUTURE, FAR_PAST):
        with pytest.raises(ReplayFileError, match="'tick': must"):
            h.tick_text(tick)
    assert (h.engine.clock, h.replay.summary.lines) == before


def test_until_out_of_range_is_refused(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    with pytest.raises(ValueError, match="2100"):
        h.finish(MAX_TIMESTAMP_MS)


def test_an_input_at_the_last_instant_renders_and_its_timers_do_not_overflow(
        tmp_path: Path) -> None:
    """2099-12-31T23:59:59.999Z: the alert's deadline (2 h) and escalations (15, 60 min), the
    streetlight's scheduled ``holds`` (1 h, then the next 19:00-06:00 opening), the retention
    (30 d) after it is resolved and closed all lie past 2100, and all are fine."""
    h = Harness(tmp_path)
    last = iso(LAST_MS)
    assert last == "2100-01-01T07:59:59.999+08:00"
    _reading(h, last, sensor="mh-1", kind="manhole_cover", state="open", eid="mh-last")
    _reading(h, last, sensor="sl-1", kind="streetlight", state="off", eid="sl-last")
    h.finish(LAST_MS)
    opened = h.last("opened")
    assert (opened["opened_at"], opened["deadline"]) == (last, "2100-01-01T09:59:59.999+08:00")
    aid = opened["alert_id"]
    assert aid == alert_id("G-1", "manhole.open", "dev:mh-1", LAST_MS)
    h2 = Harness(tmp_path)
    _reading(h2, last, sensor="mh-1", kind="manhole_cover", state="open", eid="mh-last")
    for action in ("resolve", "verify"):
        h2.send("city.alerts.feedback", {"event_id": f"fb-{action}", "alert_id": aid,
                                         "action": action, "actor": "duty-7", "at": last},
                key=aid)
    h2.finish()
    assert [a["transition"] for a in h2.alerts] == ["opened", "resolved", "closed"]
    assert h.dead == h2.dead == []
    _valid(h.alerts + h2.alerts, Alert)


def test_a_timer_due_past_year_9999_never_fires_and_never_crashes(tmp_path: Path) -> None:
    """No clock gets there (input times end in 2100), so such a timer only has to be harmless:
    an engine with a retention of ~300,000 years holds a closed alert, and a schedule asked for
    its next opening past what a calendar can write answers None (never) instead of raising."""
    h = Harness(tmp_path, alert_retention_ms=10**16)
    last = iso(LAST_MS)
    _reading(h, last, sensor="mh-1", kind="manhole_cover", state="open", eid="mh-last")
    aid = alert_id("G-1", "manhole.open", "dev:mh-1", LAST_MS)
    for action in ("resolve", "verify"):
        h.send("city.alerts.feedback", {"event_id": f"fb-{action}", "alert_id": aid,
                                        "action": action, "actor": "duty-7", "at": last}, key=aid)
    h.finish()
    assert h.kinds() == ["opened", "resolved", "closed"]
    assert aid in h.engine.grids["G-1"].alerts     # kept: its retention ends in no writable year
    night = Schedule.parse({"hours": "19:00-06:00"})
    cal = CityCalendar()
    assert night.next_open(LAST_MS + 3650 * DAY_MS, cal) is not None
    for far in (10**16, 253_402_300_800_000 - 1, -(10**15)):    # ~year 318857, 9999-12-31, -29719
        assert night.next_open(far, cal) is None
