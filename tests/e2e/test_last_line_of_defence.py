"""No input stops a worker (issue 13, item 1), against live workers on both clocks.

The poison messages that used to stop a worker for good (a streetlight reading in year 9999,
a camera heartbeat in 9999 followed by a bad line, an offset of +23:59 on year 1) are refused
at the edge. Behind the edge, the last line of defence: a worker whose engine has a planted
bug (``tests.e2e.faulty_worker``: it raises after applying inputs with a ``poison-`` event id,
state already changed) dead-letters those inputs as ``internal_error`` with their source
record's coordinates, logs the traceback once, rebuilds the partition without them and goes
on; in event mode its alerts and dead letters are exactly those of ``cityorder replay`` with
the same bug planted.
"""

from __future__ import annotations

import re
import time
from datetime import timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from models.timestamps import format_timestamp_ms
from rules.demo.city import GEOJSON_PATH as DEMO_CITY
from rules.engine import Engine
from rules.pack import DEFAULT_PACK
from rules.timers import FIRE
from streams.settings import INTERNAL_TOPIC, Settings
from streams.simulate import line_time
from tests.demo_day import day_lines
from tests.e2e.faulty_worker import POISON, TIMER_RULE, plant, plant_timer
from tests.e2e.test_worker import produce, source_record
from tests.e2e.workers import Worker, assert_same, read_topic, replay_of, without_emitted_at
from tests.scrape import series

pytestmark = pytest.mark.timeout(240)

CST = timezone(timedelta(hours=8))

EDGE_POISON: list[dict[str, Any]] = [
    {"topic": "city.events.sensor", "key": "sl-0014",
     "value": {"event_id": "far-1", "sensor_id": "sl-0014", "kind": "streetlight",
               "observed_at": "9999-12-31T20:00:00.000+00:00", "state": "off"}},
    {"topic": "city.events.camera", "key": "cam-0001",
     "value": {"event_id": "far-2", "camera_id": "cam-0001",
               "observed_at": "9999-12-31T20:00:00.000+00:00", "detections": []}},
    {"topic": "city.events.camera", "key": "cam-0001", "raw": "{not json"},
    {"topic": "city.events.sensor", "key": "mh-0001",
     "value": {"event_id": "past-1", "sensor_id": "mh-0001", "kind": "manhole_cover",
               "observed_at": "0001-01-01T00:00:00.000+23:59", "state": "open"}},
]
EDGE_REASONS = {("future_timestamp", "far-1"), ("future_timestamp", "far-2"),
                ("bad_json", None), ("bad_timestamp", "past-1")}


@pytest.fixture(scope="module")
def lines() -> list[dict[str, Any]]:
    """07:00-07:40 of the demo day with the edge poison early on and three planted faults: copies
    of camera detections (a second earlier than the original, so they move no clock) whose
    application raises."""
    day = day_lines()
    first = line_time(day[0]) or 0
    start, end = first + 7 * 3_600_000, first + 7 * 3_600_000 + 40 * 60_000
    morning = [x for x in day if "tick" not in x and start <= (line_time(x) or start) < end]
    out: list[dict[str, Any]] = []
    planted = 0
    for n, line in enumerate(morning):
        out.append(line)
        if n == 50:
            out += EDGE_POISON
        value = line.get("value") or {}
        if planted < 3 and n > 200 * (planted + 1) and line["topic"] == "city.events.camera" \
                and value.get("detections"):
            planted += 1
            stamp = (line_time(line) or 0) - 1_000
            out.append({**line, "value": {**value, "event_id": f"{POISON}{planted}",
                                          "observed_at": format_timestamp_ms(stamp, CST)}})
    assert planted == 3
    return out


def planted_replay(lines: list[dict[str, Any]], planter: Any = plant, method: str = "_apply"
                   ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The replay with the bug ``planter`` plants in ``Engine.<method>``, put back after."""
    original = planter()
    try:
        return replay_of(lines, DEMO_CITY, [DEFAULT_PACK], partitions=4)
    finally:
        setattr(Engine, method, original)


def run_faulty(settings: Settings, tmp_path: Path, lines: list[dict[str, Any]], clock: str,
               done: Any) -> tuple[list[dict[str, Any]], list[dict[str, Any]], str, Worker]:
    worker = Worker(settings, tmp_path / "worker.log", module="tests.e2e.faulty_worker", clock=clock,
                    session_timeout_ms=3000)
    try:
        worker.wait_ready()
        produce(settings, lines)
        dead = read_topic(settings, "city.alerts.deadletter", timeout=90, quiet_s=1.0,
                          done=lambda d: sum(x["reason_code"] == "internal_error" for x in d) >= 3)
        alerts = read_topic(settings, "city.alerts", timeout=90, done=done)
        assert worker.proc.poll() is None, worker.tail()
        assert (worker.readyz() or {}).get("ready"), worker.tail()
        metrics = worker.metrics()
    finally:
        worker.stop()
    return alerts, dead, metrics, worker


def check_dead_letters(settings: Settings, dead: list[dict[str, Any]], metrics: str, worker: Worker) -> None:
    reasons = {(d["reason_code"], d["event_id"]) for d in dead}
    assert reasons >= EDGE_REASONS
    internal = [d for d in dead if d["reason_code"] == "internal_error"]
    # one per partition that met it: a detection near a grid's edge may be in two grids' parts
    assert {d["event_id"] for d in internal} == {f"{POISON}{n}" for n in (1, 2, 3)}, internal
    for d in internal:
        assert "PlantedFault" in d["reason"]
        assert d["topic"] == settings.topic("city.events.camera")
        assert d["event_id"].encode() in source_record(settings, d["topic"], d["partition"], d["offset"])
    assert series(metrics, "cityorder_deadletters_total", "reason_code")[("internal_error",)] == len(internal)
    log = worker.log_path.read_text(errors="replace")
    assert log.count("raised again") == 0
    faults = re.findall(r"partition (\d+): internal error applying .*?\((poison-\d)\)", log)
    assert len(faults) == len(set(faults)) == len(internal), "once per partition that met it"
    assert log.count("Traceback") == log.count("PlantedFault: planted fault") == len(internal), \
        "each fault's traceback is logged once"


def test_an_event_clock_worker_goes_on_past_poison_and_equals_the_replay(
        settings: Settings, tmp_path: Path, lines: list[dict[str, Any]]) -> None:
    expected, expected_dead = planted_replay(lines)
    want = without_emitted_at(expected)
    planted = {d["event_id"] for d in expected_dead if d["reason_code"] == "internal_error"}
    assert planted == {f"{POISON}{n}" for n in (1, 2, 3)}
    alerts, dead, metrics, worker = run_faulty(
        settings, tmp_path, lines, "event", done=lambda got: len(without_emitted_at(got)) >= len(want))
    assert_same(without_emitted_at(alerts), want, worker)
    assert {(d["reason_code"], d["event_id"]) for d in dead} == \
        {(d["reason_code"], d["event_id"]) for d in expected_dead}
    check_dead_letters(settings, dead, metrics, worker)


def on_the_wall_clock(lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``lines`` moved to the last half minute, two milliseconds apart (a wall-clock worker
    counts the demo day's input late), the edge poison as it is; then a manhole reported open
    now, whose alert shows that the worker went on."""
    base = int(time.time() * 1000) - 30_000
    out = []
    for n, line in enumerate(lines):
        value = line.get("value")
        if isinstance(value, dict) and line not in EDGE_POISON:
            field = "observed_at" if "observed_at" in value else "at"
            value = {**value, field: format_timestamp_ms(base + 2 * n, CST)}
            line = {**{k: v for k, v in line.items() if k != "arrival"}, "value": value}
        out.append(line)
    out.append({"topic": "city.events.sensor", "key": "mh-0001",
                "value": {"event_id": "mh-now", "sensor_id": "mh-0001", "kind": "manhole_cover",
                          "observed_at": format_timestamp_ms(int(time.time() * 1000), CST),
                          "state": "open"}})
    return out


def test_a_wall_clock_worker_goes_on_past_poison(settings: Settings, tmp_path: Path,
                                                 lines: list[dict[str, Any]]) -> None:
    def opened(got: list[dict[str, Any]]) -> bool:
        return any(a["rule_id"] == "manhole.open" and a["transition"] == "opened" for a in got)

    alerts, dead, metrics, worker = run_faulty(settings, tmp_path, on_the_wall_clock(lines), "wall",
                                               done=opened)
    check_dead_letters(settings, dead, metrics, worker)
    assert opened(alerts), worker.tail()


def test_a_timer_that_raises_is_skipped_and_the_worker_equals_the_replay(
        settings: Settings, tmp_path: Path, lines: list[dict[str, Any]]) -> None:
    """A bug in a timer (the heavy truck rule's episode end raises) is the timer's: the worker
    skips that timer from then on and dead-letters no input for it, only its internal record as
    the place of the fault, and gives what ``cityorder replay`` with the same bug gives. (Both
    once blamed the input whose time made the timer due, then every later one.)"""
    clean, clean_dead = replay_of(lines, DEMO_CITY, [DEFAULT_PACK], partitions=4)
    expected, expected_dead = planted_replay(lines, plant_timer, "_fire")
    want = without_emitted_at(expected)
    assert want != without_emitted_at(clean)                  # the skipped episode end shows
    assert {k: a for k, a in want.items() if a["rule_id"] != TIMER_RULE} == \
        {k: a for k, a in without_emitted_at(clean).items() if a["rule_id"] != TIMER_RULE}
    assert expected_dead == clean_dead
    worker = Worker(settings, tmp_path / "worker.log", module="tests.e2e.timer_faulty_worker",
                    clock="event", session_timeout_ms=3000)
    try:
        worker.wait_ready()
        produce(settings, lines)
        alerts = read_topic(settings, "city.alerts", timeout=90,
                            done=lambda got: len(without_emitted_at(got)) >= len(want))
        dead = read_topic(settings, "city.alerts.deadletter", timeout=30, quiet_s=1.0,
                          done=lambda d: len(d) >= len(expected_dead) + 1)
        assert worker.proc.poll() is None, worker.tail()
        assert (worker.readyz() or {}).get("ready"), worker.tail()
    finally:
        worker.stop()
    assert_same(without_emitted_at(alerts), want, worker)
    internal = [d for d in dead if d["topic"] == settings.topic(INTERNAL_TOPIC)]
    assert {(d["reason_code"], d["event_id"]) for d in dead if d not in internal} == \
        {(d["reason_code"], d["event_id"]) for d in expected_dead}
    assert internal, dead
    for d in internal:
        assert d["reason_code"] == "internal_error" and d["event_id"] is None
        assert f"firing the timer of rule {TIMER_RULE}" in d["reason"], d["reason"]
        assert "PlantedFault" in d["reason"]
    log = worker.log_path.read_text(errors="replace")
    assert log.count("raised again") == 0
    assert log.count("Traceback") == log.count("PlantedFault: planted fault") == len(internal), \
        "each timer's traceback is logged once"


def test_a_wall_clock_worker_skips_a_timer_that_raises(
        settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """On the wall clock, timers fire in ticks: the one that raises (a manhole's alert opening)
    is skipped, and neither the reading that made it due nor the next one is blamed."""
    monkeypatch.setenv("FAULTY_TIMER", f"manhole.open,{FIRE},mh-0001")
    now = int(time.time() * 1000)
    lines = [{"topic": "city.events.sensor", "key": sid,
              "value": {"event_id": f"{sid}-now", "sensor_id": sid, "kind": "manhole_cover",
                        "observed_at": format_timestamp_ms(now + n, CST), "state": "open"}}
             for n, sid in enumerate(("mh-0001", "mh-0002"))]

    def opened(got: list[dict[str, Any]]) -> set[str]:
        return {a["evidence"][0].get("sensor_id") for a in got
                if a["rule_id"] == "manhole.open" and a["transition"] == "opened"}

    worker = Worker(settings, tmp_path / "worker.log", module="tests.e2e.timer_faulty_worker",
                    clock="wall", session_timeout_ms=3000)
    try:
        worker.wait_ready()
        produce(settings, lines)
        alerts = read_topic(settings, "city.alerts", timeout=60, quiet_s=1.0,
                            done=lambda got: "mh-0002" in opened(got))
        dead = read_topic(settings, "city.alerts.deadletter", timeout=30, quiet_s=1.0,
                          done=lambda d: len(d) >= 1)
        assert worker.proc.poll() is None, worker.tail()
    finally:
        worker.stop()
    assert opened(alerts) == {"mh-0002"}, worker.tail()
    assert [(d["topic"], d["event_id"]) for d in dead] == [(settings.topic(INTERNAL_TOPIC), None)], dead
    assert "firing the timer of rule manhole.open, subject" in dead[0]["reason"]
    assert "mh-0001" in dead[0]["reason"] and "PlantedFault" in dead[0]["reason"]
