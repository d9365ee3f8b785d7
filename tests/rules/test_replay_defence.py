"""The replay's last line of defence and odd input (issue 13, items 1 and 4): a lone surrogate
is a dead letter, and an exception while applying a line dead-letters that line
(``internal_error``), logs its traceback once, and the replay goes on with the engines as they
were before it: its output equals a replay without that line."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import orjson
import pytest

import rules.replay
from rules.engine import Engine
from rules.ingest import Ingest
from rules.replay import Replay, Summary
from rules.timers import LEVEL, Timer, timer_key
from tests.rules.harness import Harness, T, iso

POISON = "cam-1-poison"


def balanced(s: Summary) -> bool:
    return s.accepted + s.ignored + s.late + s.duplicates + s.dead_letters == s.lines - s.ticks


# -- lone surrogates --------------------------------------------------------------------------

def test_a_lone_surrogate_in_raw_is_a_bad_encoding_dead_letter(tmp_path: Path) -> None:
    h = Harness(tmp_path, feed=False)
    lines = [b'{"topic": "city.events.camera", "key": null, "raw": "\\ud800"}',
             b'{"topic": "city.events.sensor", "key": "sl-\\udfff", "value": {"event_id": '
             b'"\\ud83d", "sensor_id": "sl-1", "kind": "streetlight", "observed_at": '
             b'"2026-11-18T20:00:00+08:00", "state": "off"}}']
    for n, line in enumerate(lines, 1):
        h.replay.line(line, n)
    h.sensor(T("20:00:01"), "mh-1", "manhole_cover", "open")    # and the replay goes on
    h.replay.line(h.lines[-1], 3)
    h.finish()
    assert [(d["reason_code"], d["payload_encoding"], d["key"]) for d in h.dead] == [
        ("bad_encoding", "base64", None),
        ("bad_encoding", "base64", "sl-\ufffd\ufffd\ufffd")]   # as a worker decodes the key
    assert h.dead[0]["payload"] == "7aCA"          # the bytes \ud800 stands for: ED A0 80
    for d in h.dead:
        orjson.dumps(d)                            # writable, as the command line writes it
    assert h.replay.summary.dead_letters == 2 and balanced(h.replay.summary)


# -- faults -------------------------------------------------------------------------------------

def _story(tmp_path: Path) -> list[bytes]:
    """A vendor on the main road (frames every minute, one of them the poison), a manhole
    opened and acknowledged, and a camera split over both grids."""
    h = Harness(tmp_path, feed=False)
    for i in range(14):
        h.cam(T(f"10:{i:02d}:00"), eid=POISON if i == 4 else None)
    h.sensor(T("10:03:00"), "mh-1", "manhole_cover", "open")
    h.cam(T("10:14:30"), detections=[
        {"label": "street_vendor", "track_id": "x", "confidence": 0.9,
         "location": {"lat": 30.005, "lon": 104.015}}])
    h.tick(T("10:20:00"))
    return h.lines


def _run(tmp_path: Path, lines: list[bytes], partitions: int,
         skip: int | None = None) -> tuple[list[dict[str, Any]], list[dict[str, Any]], Replay]:
    h = Harness(tmp_path, feed=False, partitions=partitions)
    alerts: list[dict[str, Any]] = []
    dead: list[dict[str, Any]] = []
    rp = Replay(h.city, h.rules, on_alert=alerts.append, on_dead=dead.append,
                partitions=partitions)
    for n, line in enumerate(lines, 1):
        if n != skip:
            rp.line(line, n)
            assert balanced(rp.summary)
    rp.finish(T("12:00:00"))
    assert balanced(rp.summary)
    return alerts, dead, rp


def _poison_line(lines: list[bytes]) -> int:
    return next(n for n, line in enumerate(lines, 1) if POISON.encode() in line)


def _raise_for(event_id: str) -> Any:
    def boom(self: Any, *args: Any) -> None:
        inp = next(a for a in args if getattr(a, "event_id", None) is not None)
        if inp.event_id == event_id:
            raise ZeroDivisionError(f"injected for {event_id}")
        return original(self, *args)
    return boom


original: Any = None


@pytest.mark.parametrize("method", ["_apply", "_observation", "feed"])
@pytest.mark.parametrize("partitions", [1, 4])
@pytest.mark.parametrize("cut_every", [2_000, 2])
def test_a_fault_dead_letters_its_line_and_the_rest_is_a_replay_without_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
        method: str, partitions: int, cut_every: int) -> None:
    """``feed`` fails in the poison's own line; ``_apply`` and ``_observation`` a few lines
    later, when the watermark reaches it in the reorder buffer (with cuts every 2 calls, from
    a restored engine that has it in its buffer)."""
    global original
    lines = _story(tmp_path)
    n = _poison_line(lines)
    want_alerts, want_dead, _ = _run(tmp_path, lines, partitions, skip=n)
    assert [a["transition"] for a in want_alerts][:1] == ["opened"]
    monkeypatch.setattr(rules.replay, "CUT_EVERY", cut_every)
    original = getattr(Engine, method)
    monkeypatch.setattr(Engine, method, _raise_for(POISON))
    with caplog.at_level(logging.ERROR, logger="rules.replay"):
        alerts, dead, rp = _run(tmp_path, lines, partitions)
    assert alerts == want_alerts
    faults = [d for d in dead if d["reason_code"] == "internal_error"]
    assert [d for d in dead if d["reason_code"] != "internal_error"] == want_dead
    assert [(d["topic"], d["partition"], d["offset"], d["key"], d["event_id"], d["reason"])
            for d in faults] == [("city.events.camera", 0, n - 1, "cam-1", POISON,
                                  f"ZeroDivisionError: injected for {POISON}")]
    assert orjson.loads(faults[0]["payload"])["event_id"] == POISON
    assert rp.summary.dead == {"internal_error": 1} and rp.summary.faults == 1
    records = [r for r in caplog.records if r.name == "rules.replay"]
    assert len(records) == 1 and records[0].exc_info is not None
    assert "ZeroDivisionError" in records[0].getMessage()


def _escalations(tmp_path: Path, lines: list[bytes]) -> list[Timer]:
    """The timers that escalate the vendor's alert to levels 2 and 3, as a clean replay fires
    them."""
    fired: list[Timer] = []
    original_fire = Engine._fire

    def spy(self: Engine, timer: Timer) -> None:
        fired.append(timer)
        original_fire(self, timer)

    Engine._fire = spy  # type: ignore[method-assign]
    try:
        _run(tmp_path, lines, 1)
    finally:
        Engine._fire = original_fire  # type: ignore[method-assign]
    return [next(t for t in fired if t.rule_id == "vend.main" and t.rank == LEVEL and t.level == n)
            for n in (2, 3)]


@pytest.mark.parametrize("partitions", [1, 4])
@pytest.mark.parametrize("cut_every", [2_000, 2])
def test_a_fault_in_a_timer_skips_that_timer_and_dead_letters_no_line(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
        partitions: int, cut_every: int) -> None:
    """A timer that raises is the timer's fault, not the fault of the line whose time made it
    due: no line is dead-lettered, and the output is a replay that never fires that timer.
    (It once blamed the line, then every later line, as the timer met each one again.) Two
    such timers: the engine rebuilt for the second still skips the first."""
    lines = [line for line in _story(tmp_path) if POISON.encode() not in line]
    clean, clean_dead, _ = _run(tmp_path, lines, partitions)
    bad = {timer_key(t) for t in _escalations(tmp_path, lines)}
    h = Harness(tmp_path, feed=False, partitions=partitions)
    oracle: list[dict[str, Any]] = []
    rp = Replay(h.city, h.rules, on_alert=oracle.append, on_dead=lambda d: None,
                partitions=partitions)
    for e in rp.engines:
        e.skip_timers.update(bad)                  # never fired, by construction
    for n, line in enumerate(lines, 1):
        rp.line(line, n)
    rp.finish(T("12:00:00"))
    original_fire = Engine._fire

    def boom(self: Engine, timer: Timer) -> None:
        if timer_key(timer) in bad:
            raise ZeroDivisionError("injected in a timer")
        original_fire(self, timer)

    monkeypatch.setattr(rules.replay, "CUT_EVERY", cut_every)
    monkeypatch.setattr(Engine, "_fire", boom)
    with caplog.at_level(logging.ERROR, logger="rules.replay"):
        got, dead, rp = _run(tmp_path, lines, partitions)
    assert got == oracle and dead == clean_dead
    assert got != clean                               # the skipped escalation shows
    assert [a for a in got if a["rule_id"] != "vend.main"] == \
        [a for a in clean if a["rule_id"] != "vend.main"]
    assert rp.summary.faults == 2 and "internal_error" not in rp.summary.dead
    records = [r for r in caplog.records if r.name == "rules.replay"]
    assert len(records) == 2 and all(r.exc_info is not None for r in records)
    assert all("vend.main" in r.getMessage() for r in records)


def test_a_fault_in_held_feedback_is_withdrawn(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """Feedback for an alert that opens a little later waits (held); applying it when the
    alert opens fails: the feedback is dead-lettered, the alert stays as if it never came."""
    global original
    h = Harness(tmp_path, feed=False)
    h.sensor(T("10:00:00"), "mh-1", "manhole_cover", "open")
    h.tick(T("10:00:10"))
    lines = list(h.lines)
    probe = Harness(tmp_path)
    for n, line in enumerate(lines, 1):
        probe.replay.line(line, n)
    aid = probe.last("opened")["alert_id"]
    h2 = Harness(tmp_path, feed=False)
    h2.fb(T("09:59:59"), aid, "acknowledge", eid="fb-poison")   # before the opening: held
    h2.sensor(T("10:00:00"), "mh-1", "manhole_cover", "open")
    h2.tick(T("10:20:00"))
    want, _, _ = _run(tmp_path, h2.lines, 4, skip=1)
    original = Engine._feedback
    monkeypatch.setattr(Engine, "_feedback", _raise_for("fb-poison"))
    got, dead, rp = _run(tmp_path, h2.lines, 4)
    assert got == want and "acknowledged" not in [a["transition"] for a in got]
    assert [(d["reason_code"], d["event_id"]) for d in dead] == [("internal_error", "fb-poison")]
    assert rp.summary.accepted == 1 and rp.summary.dead_letters == 1


def test_a_fault_in_ingest_is_a_dead_letter(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(self: Ingest, msg: Any, base: Any) -> Any:
        raise KeyError("no such grid")
    monkeypatch.setattr(Ingest, "_sensor", boom)
    h = Harness(tmp_path)
    h.sensor(T("10:00:00"), "mh-1", "manhole_cover", "open")
    h.cam(T("10:00:01"), detections=[])
    h.finish()
    assert [(d["reason_code"], d["event_id"], d["reason"]) for d in h.dead] == [
        ("internal_error", None, "KeyError: 'no such grid'")]
    assert h.replay.summary.ignored == 1 and balanced(h.replay.summary)


def test_a_callers_own_engine_is_the_callers_to_defend(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """``engine=`` hands the replay an engine the caller reads and snapshots: the replay keeps
    no rollback state of it, so the fault surfaces."""
    global original
    original = Engine.feed
    monkeypatch.setattr(Engine, "feed", _raise_for("boom"))
    h = Harness(tmp_path, engine=Engine(Harness(tmp_path).city, Harness(tmp_path).rules))
    with pytest.raises(ZeroDivisionError):
        h.cam(T("10:00:00"), eid="boom")


def test_received_at_of_a_dead_letter_is_the_newest_clock(tmp_path: Path) -> None:
    h = Harness(tmp_path, partitions=4)
    h.cam(T("10:00:00"), detections=[], cam="cam-2")
    h.sensor(T("09:00:00"), "mh-1", "manhole_cover", "ok")
    h.raw_line({"topic": "city.events.report", "key": None, "raw": "nope"})
    assert h.dead[-1]["received_at"] == iso(T("10:00:00"))


@pytest.mark.parametrize("depth", [300, 1000, 1023])
def test_a_value_orjson_cannot_write_back_is_sent_or_refused(tmp_path: Path, depth: int) -> None:
    """orjson reads 1,024 levels but writes 255: deeper values are written by the standard
    library, and one too deep for it too is a malformed line (found by the fuzzer)."""
    h = Harness(tmp_path, partitions=4)
    line = b'{"topic": "city.events.report", "key": null, "value": ' + b"[" * depth + \
        b"]" * depth + b"}"
    try:
        h.replay.line(line, 1)
    except rules.replay.ReplayFileError as e:
        assert "nested too deeply" in str(e) and h.replay.summary.lines == 0
    else:
        assert h.replay.summary.dead_letters == 1 and balanced(h.replay.summary)


@pytest.mark.parametrize("number", ["18446744073709551616", "-9223372036854775809",
                                    "123456789012345678901234567890", "1234567890123456789"])
def test_a_value_keeps_an_integer_beyond_64_bits(number: str) -> None:
    """orjson reads such an integer as a float: the bytes sent would be another number than
    the line's (found by the fuzzer)."""
    payload = b'{"event_id":"e-1","n":' + number.encode() + b"}"
    line = b'{"topic":"city.events.sensor","key":null,"value":' + payload + b"}"
    assert rules.replay.parse_line(line).payload == payload
    assert rules.replay.parse_line(line.decode()).payload == payload
