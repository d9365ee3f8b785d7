"""Fuzzing in the suite (issue 13, item 6): valid, boundary and mutated messages of every input
topic, ticks and malformed replay lines, through decode -> ingest -> engines as
``cityorder replay`` runs them (``rules.replay.Replay``), in both clock modes, on one partition
and on the worker's four. Every line must have exactly one outcome the generator allowed it
(accepted, ignored, late, duplicate, or a dead letter with a contract reason code), nothing but
``ReplayFileError`` (for a line the format forbids) may escape, ``internal_error`` never
happens, and the summary adds up after every line (tests/fuzz/check.py).

A short, derandomised run (about 10 s): ``CITYORDER_FUZZ_EXAMPLES=300`` searches deeper (about
5 min), and ``python -m bench.fuzz`` runs a million lines.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from models.timestamps import MAX_TIMESTAMP_MS
from tests.fuzz.check import PACKS, Session, describe, run
from tests.fuzz.messages import (
    CAMERA,
    MALFORMED,
    SENSOR,
    TAKEN,
    TOPICS,
    Gen,
    Line,
    Msg,
    rfc3339,
)
from tests.fuzz.strategies import (
    HypothesisDraw,
    camera_messages,
    feedback_messages,
    generator,
    lines,
    report_messages,
    sensor_messages,
    sessions,
)

EXAMPLES = int(os.environ.get("CITYORDER_FUZZ_EXAMPLES", "15"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.large_base_example],
                print_blob=False)


def _line_of(gen: Gen, family: str | None, topic: str | None) -> st.SearchStrategy[Line]:
    """The session's next line as one strategy, so a failing example prints one draw a line."""

    @st.composite
    def next_line(draw: Callable[[st.SearchStrategy[Any]], Any]) -> Line:
        gen.d = HypothesisDraw(draw)
        return gen.line(family, topic)

    return next_line()


def _drive(data: st.DataObject, clock: str, partitions: int, family: str | None,
           topic: str | None, max_lines: int, pack: str = "default") -> Session:
    """Generate and feed lines one at a time (feedback can then name the alerts opened so far),
    then end the replay, sometimes with ``--until``."""
    gen = data.draw(st.composite(lambda draw: generator(draw, clock))(), label="session")
    session = Session(clock, partitions, alert_ids=gen.tl.alert_ids, pack=pack)
    n = data.draw(st.integers(1, max_lines), label="lines")
    for _ in range(n):
        targeted = family is None or data.draw(st.booleans(), label="targeted")
        line = data.draw(_line_of(gen, family if targeted else "valid",
                                  topic if targeted else None))
        session.feed(line)
        if session.broken:
            break
    else:
        until = data.draw(st.sampled_from([None, "after", "end"]), label="until")
        session.finish({None: None, "after": gen.tl.now + 3_600_000,
                        "end": MAX_TIMESTAMP_MS - 1}[until])
    if session.failures:
        first = session.failures[0]
        pytest.fail(describe(session.lines[: first.lineno], first, clock, partitions, pack=pack))
    return session


@pytest.mark.parametrize("topic", TOPICS)
@pytest.mark.parametrize("family", ["valid", "boundary", "mutated"])
@FUZZ
@given(data=st.data(), clock=st.sampled_from(["event", "wall"]), partitions=st.sampled_from([4, 1]))
def test_topic(family: str, topic: str, data: st.DataObject, clock: str, partitions: int) -> None:
    _drive(data, clock, partitions, family, topic, max_lines=10)


@pytest.mark.parametrize("pack", PACKS)
@pytest.mark.parametrize("clock", ["event", "wall"])
@settings(FUZZ, max_examples=EXAMPLES * 2)
@given(data=st.data(), partitions=st.sampled_from([4, 1]))
def test_mixed_sessions(clock: str, pack: str, data: st.DataObject, partitions: int) -> None:
    """Every family at once, ticks and malformed lines included, in longer sessions; with the
    default pack, and with tests/fuzz/extreme.yaml beside it (every duration at a limit)."""
    _drive(data, clock, partitions, None, None, max_lines=40, pack=pack)


@FUZZ
@given(session=sessions(family="mutated"))
def test_sessions_strategy(session: tuple[str, list[Line]]) -> None:
    """The whole-file strategy (generated before the replay runs) gives the same checks."""
    clock, generated = session
    s = run(generated, clock)
    assert not s.failures, describe(s.lines, s.failures[0], clock, 4)


@FUZZ
@given(cam=camera_messages(), sensor=sensor_messages(), report=report_messages(),
       fb=feedback_messages())
def test_topic_strategies_are_valid(cam: Msg, sensor: Msg, report: Msg, fb: Msg) -> None:
    """The per-topic strategies give messages the models accept as they are."""
    from models.decode import TOPIC_SOURCES, BadInput, decode
    for msg in (cam, sensor, report, fb):
        result = decode(TOPIC_SOURCES[msg.topic], orjson.dumps(msg.obj))
        assert not isinstance(result, BadInput), (msg.obj, result)


@FUZZ
@given(line=lines(family="malformed"))
def test_malformed_lines_change_nothing(line: Line) -> None:
    s = run([line])
    assert not s.failures, describe(s.lines, s.failures[0], "event", 4)
    assert s.malformed == 1 and s.replay.summary.lines == 0


# -- the poison messages, through the same checks (the fuzzer's finds: test_found.py) --

def _line(topic: str, value: dict[str, Any], expect: frozenset[str] | None,
          arrival: str | None = None) -> Line:
    line: dict[str, Any] = {"topic": topic, "key": None, "value": value}
    if arrival is not None:
        line["arrival"] = arrival
    return Line(orjson.dumps(line), "given", topic, expect)


def _tick(t: str) -> Line:
    return Line(orjson.dumps({"tick": t}), "tick", None, None)


NOON = "2026-11-23T12:00:00.000+08:00"


def _sl(t: str, state: str = "off", n: int = 1) -> dict[str, Any]:
    return {"event_id": f"sl-{n}", "sensor_id": "sl-0001", "kind": "streetlight",
            "observed_at": t, "state": state}


def _hb(t: str, n: int = 1) -> dict[str, Any]:
    return {"event_id": f"hb-{n}", "camera_id": "cam-0001", "observed_at": t, "detections": []}


FAR = "9999-12-31T20:00:00.000+00:00"
PAST = "0001-01-01T00:00:00.000+23:59"
POISON: dict[str, list[Line]] = {
    "streetlight off at year 9999": [
        _line(SENSOR, _sl(FAR), frozenset({"future_timestamp"})),
        _line(SENSOR, _sl(NOON, n=2), TAKEN)],
    "heartbeat at 9999, then a bad line": [
        _line(CAMERA, _hb(FAR), frozenset({"future_timestamp"})),
        _line(CAMERA, {"event_id": "x"}, frozenset({"invalid_field"}))],
    "year 1 (+23:59) as the first input": [
        _line(CAMERA, _hb(PAST), frozenset({"bad_timestamp"})), _line(CAMERA, _hb(NOON, 2), TAKEN)],
    "last instant of the range, then a holds timer past it": [
        _line(SENSOR, _sl("2099-12-31T23:59:59.999Z"), TAKEN),
        _tick("2099-12-31T23:59:59.999Z")],
    "first instant of the range": [
        _line(SENSOR, _sl("1970-01-01T00:00:00.000Z"), TAKEN), _line(CAMERA, _hb(NOON), TAKEN)],
    "lone surrogate in raw": [
        Line(b'{"topic":"city.events.camera","key":null,"raw":"{\\"event_id\\":\\"\\ud800\\"}"}',
             "given", CAMERA, None),
        _line(CAMERA, _hb(NOON), TAKEN)],
    "lone surrogate in a key": [
        Line(b'{"topic":"city.events.camera","key":"\\udfff","raw":"not json"}', "given", CAMERA,
             frozenset({"bad_json"}))],
    "arrival far in the future (wall)": [
        _line(CAMERA, _hb(NOON), frozenset({"bad_timestamp"}), arrival=FAR),
        _line(CAMERA, _hb(NOON, 2), TAKEN, arrival=NOON)],
}


@pytest.mark.parametrize("clock", ["event", "wall"])
@pytest.mark.parametrize("name", list(POISON))
def test_poison(name: str, clock: str) -> None:
    given_lines = POISON[name]
    if clock == "wall":   # every line needs an arrival: noon of the test day where it has none
        given_lines = [_with_arrival(line) for line in given_lines]
    s = run(given_lines, clock)
    assert not s.failures, describe(s.lines, s.failures[0], clock, 4)


def _with_arrival(line: Line) -> Line:
    if line.family == "tick" or line.expect is MALFORMED:
        return line
    obj = orjson.loads(line.text) if b"\\ud" not in line.text else None
    if obj is None or "arrival" in obj:
        return line
    obj["arrival"] = NOON
    expect = line.expect
    if expect is not None and expect & TAKEN and (b"2099-" in line.text or b"2100-" in line.text):
        expect = frozenset({"future_timestamp"})
    return Line(orjson.dumps(obj), line.family, line.topic, expect)


def test_rfc3339_round_trip() -> None:
    from models.timestamps import parse_timestamp_ms
    for ms in (0, 1, 999, 1_763_770_503_120, 4_102_444_799_999):
        for offset in (480, 0, -1439, 1439, 345):
            for digits in (0, 3, 6, 9):
                text = rfc3339(ms, offset, digits)
                assert parse_timestamp_ms(text) == ms - (ms % 1000 if digits == 0 else 0), text
