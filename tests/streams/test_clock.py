"""streams/clock.py without a broker: the clock mode an alert message shows, the event clock the
internal log shows, what is stamped and what is refused (issue 13, item 3).

Times are explicit epoch milliseconds of a demo day in +08:00 (``T``); "now" is two weeks
later, as it was when ``cityorder feedback`` stamped the wall clock into ``cityorder dev``.
"""

from __future__ import annotations

from datetime import timedelta, timezone

import orjson
import pytest

from models.decode import Source
from rules.inputs import FeedbackIn, Input
from streams.clock import (
    WALL_SKEW_MS,
    AlertMessage,
    FeedbackClockError,
    PartitionClock,
    event_clock_of,
    grid_of,
    mode_of,
)
from streams.codec import Batch, decode, encode
from tests.rules.harness import T

CST = timezone(timedelta(hours=8))
NOW = T("10:00:00", "2026-12-04")
DAY = 86_400_000


def part(t: int, feedback: bool = False) -> Input:
    fb = FeedbackIn("a-JY-0109-000e7b52bf486f18fc76", "acknowledge", "cli") if feedback else None
    return Input(Source.FEEDBACK if feedback else Source.SENSOR,
                 "city.alerts.feedback" if feedback else "city.events.sensor",
                 f"e-{t}", t, "JY-0109", feedback=fb, arrival=NOW)


def clock(mode: str = "event", event_clock: int | None = T("10:00:00"),
          floor: int = T("09:59:00")) -> PartitionClock:
    return PartitionClock("a-JY-0109-000e7b52bf486f18fc76", "JY-0109", 2, mode,  # type: ignore[arg-type]
                          event_clock, floor, "open", CST)


# -- the alert id ----------------------------------------------------------------------------

def test_the_grid_is_read_from_the_alert_id() -> None:
    assert grid_of("a-JY-0109-000e7b52bf486f18fc76") == "JY-0109"
    assert grid_of("a-G.1_x-0123456789abcdef0123") == "G.1_x"


@pytest.mark.parametrize("bad", ["", "JY-0109", "a-JY-0109-000E7B52BF486F18FC76",
                                 "a-JY-0109-000e7b52bf486f18fc7", "a--000e7b52bf486f18fc76",
                                 "a-JY 0109-000e7b52bf486f18fc76"])
def test_a_malformed_alert_id_is_an_error_that_shows_the_form(bad: str) -> None:
    with pytest.raises(FeedbackClockError, match="is not an alert id: an alert id is 'a-'"):
        grid_of(bad)


# -- the clock mode --------------------------------------------------------------------------

def test_a_timeline_on_the_wall_clock_is_wall_mode() -> None:
    assert mode_of(NOW - 5_000, NOW) == "wall"                       # the reorder window
    assert mode_of(NOW - WALL_SKEW_MS, NOW) == "wall"
    assert mode_of(NOW + 2_000, NOW) == "wall"                       # a producer's clock ahead


def test_a_timeline_elsewhere_is_event_mode() -> None:
    assert mode_of(T("23:59:00", "2026-11-20"), NOW) == "event"      # the demo day, 2 weeks back
    assert mode_of(NOW - WALL_SKEW_MS - 1, NOW) == "event"
    assert mode_of(NOW + DAY, NOW) == "event"                        # a simulated day ahead


def test_an_alert_message_is_read_with_its_offset() -> None:
    msg = AlertMessage.parse(orjson.dumps({
        "alert_id": "a-JY-0109-000e7b52bf486f18fc76", "grid_id": "JY-0109", "version": 3,
        "status": "open", "at": "2026-11-20T10:00:00.000+08:00",
        "emitted_at": "2026-12-04T10:00:05.000+08:00"}))
    assert msg is not None
    assert (msg.at, msg.emitted_at, msg.version, msg.status) == \
        (T("10:00:00", "2026-11-20"), T("10:00:05", "2026-12-04"), 3, "open")
    assert msg.tz.utcoffset(None) == timedelta(hours=8)
    assert AlertMessage.parse(b"not json") is None
    assert AlertMessage.parse(orjson.dumps({"alert_id": "a"})) is None


# -- the partition's event clock from the internal log ---------------------------------------

SOURCES = ["city.events.camera/0", "city.events.sensor/0"]


def test_the_event_clock_is_the_newest_input_time_feedback_left_out() -> None:
    batches = [decode(encode([part(T("10:00:00")), part(T("10:00:07"))])),
               decode(encode([part(T("10:00:03"))])),
               # refused (future_timestamp) in the engine: it moved no clock
               decode(encode([part(T("10:00:00", "2026-12-04"), feedback=True)]))]
    assert event_clock_of(batches, SOURCES) == T("10:00:07")


def test_ticks_count_once_every_source_sent_one() -> None:
    batches = [decode(encode([part(T("10:00:00"))])),
               Batch(ticks={"city.events.camera/0": (T("10:00:05"), NOW)})]
    assert event_clock_of(batches, SOURCES) == T("10:00:00")
    batches.append(Batch(ticks={"city.events.sensor/0": (T("10:00:04"), NOW)}))
    assert event_clock_of(batches, SOURCES) == T("10:00:04")
    assert event_clock_of([Batch(ticks={s: (T("10:00:05"), NOW) for s in SOURCES})], SOURCES) == \
        T("10:00:05")


def test_a_log_without_input_shows_no_clock() -> None:
    assert event_clock_of([], SOURCES) is None
    assert event_clock_of([Batch(frontier={"city.events.camera/0": NOW})], SOURCES) is None
    assert event_clock_of([decode(encode([part(T("10:00:00"), feedback=True)]))], SOURCES) is None


# -- what is stamped -------------------------------------------------------------------------

def test_event_mode_stamps_the_progress_not_the_wall_clock() -> None:
    c = clock()
    assert c.feedback_at(None, now_ms=NOW, reorder_window_ms=5_000, allowed_lateness_ms=60_000) \
        == T("09:59:55")
    assert c.describe() == "event clock of partition 2"
    assert c.format(T("09:59:55")) == "2026-11-18T09:59:55.000+08:00"


def test_the_floor_holds_when_the_log_shows_less() -> None:
    """The newest ``at`` of the partition's alerts is progress it has reached."""
    assert clock(event_clock=None).stamp(now_ms=NOW, reorder_window_ms=5_000) == T("09:59:00")
    assert clock(event_clock=T("09:59:02")).stamp(now_ms=NOW, reorder_window_ms=5_000) == \
        T("09:59:00")


def test_wall_mode_stamps_now() -> None:
    c = clock("wall", event_clock=None, floor=NOW - 5_000)
    assert c.feedback_at(None, now_ms=NOW, reorder_window_ms=0, allowed_lateness_ms=0) == NOW
    assert c.describe() == "wall clock"


# -- what is refused -------------------------------------------------------------------------

def test_an_at_far_ahead_of_the_event_clock_is_refused_with_what_to_do() -> None:
    c = clock()
    with pytest.raises(FeedbackClockError) as e:
        c.feedback_at(NOW, now_ms=NOW, reorder_window_ms=5_000, allowed_lateness_ms=60_000)
    text = str(e.value)
    assert text.startswith("--at 2026-12-04T10:00:00.000+08:00 is 16d ahead of the event clock "
                           "of partition 2 (grid JY-0109), which is at 2026-11-18T10:00:00.000+08:00")
    assert "Leave out --at to stamp the partition's current time" in text
    assert "no later than 2026-11-18T10:01:00.000+08:00" in text


def test_an_at_within_the_allowed_lateness_or_behind_is_kept() -> None:
    c = clock()
    for at in (T("10:01:00"), T("10:00:00"), T("08:00:00")):
        assert c.feedback_at(at, now_ms=NOW, reorder_window_ms=5_000,
                             allowed_lateness_ms=60_000) == at
    with pytest.raises(FeedbackClockError, match=r"is 1m 0\.001s ahead"):
        c.feedback_at(T("10:01:00.001"), now_ms=NOW, reorder_window_ms=5_000,
                      allowed_lateness_ms=60_000)


def test_wall_mode_refuses_what_ingest_would() -> None:
    c = clock("wall", event_clock=None, floor=NOW)
    assert c.feedback_at(NOW + 300_000, now_ms=NOW, reorder_window_ms=0,
                         allowed_lateness_ms=0) == NOW + 300_000
    with pytest.raises(FeedbackClockError, match=r"is 1h ahead of the wall clock.*future_timestamp"):
        c.feedback_at(NOW + 3_600_000, now_ms=NOW, reorder_window_ms=0, allowed_lateness_ms=0)


def test_a_z_time_is_written_back_in_utc() -> None:
    msg = AlertMessage.parse(orjson.dumps({
        "alert_id": "a-G-1-0123456789abcdef0123", "grid_id": "G-1", "version": 1,
        "status": "open", "at": "1970-01-01T00:00:00.000Z", "emitted_at": "1970-01-01T00:00:00Z"}))
    assert msg is not None and msg.tz.utcoffset(None) == timedelta(0)
    c = PartitionClock("a-G-1-0123456789abcdef0123", "G-1", 0, "event", 0, 0, "open", msg.tz)
    assert c.format(0) == "1970-01-01T00:00:00.000+00:00"
