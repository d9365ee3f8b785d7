"""The worker end to end on the embedded broker: real processes, real topics, SIGKILL.

Each test produces input with ``simulate`` (the code behind ``cityorder simulate``), runs
``cityorder worker`` processes and reads ``city.alerts`` and the dead-letter topic back.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from rules.demo.city import GEOJSON_PATH as DEMO_CITY
from streams.broker import EmbeddedBroker
from streams.settings import Settings
from streams.simulate import simulate
from streams.topics import default_topics, ensure_topics
from tests.demo_day import day_lines, day_replay
from tests.e2e.workers import (
    Worker,
    assert_same,
    frontier_breaches,
    metric_total,
    read_topic,
    without_emitted_at,
)
from tests.promtool import check_metrics
from tests.scrape import series

pytestmark = pytest.mark.timeout(240)

#: How long the outage test freezes the broker: four session timeouts (3 s), and more than twice
#: the ~5 s /readyz takes to say so (a probe every 2 s that gives up after 3).
OUTAGE_S = 12.0


@pytest.fixture(scope="module")
def demo_day() -> list[dict[str, Any]]:
    return day_lines()


@pytest.fixture(scope="module")
def expected() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """What ``cityorder replay`` gives for the demo day: (alerts, dead letters)."""
    return day_replay()


def produce(settings: Settings, lines: list[dict[str, Any]], **kwargs: Any) -> None:
    async def run() -> None:
        await ensure_topics(settings, default_topics(settings))
        await simulate(settings, lines, **kwargs)

    asyncio.run(run())


def all_versions(expected_alerts: list[dict[str, Any]]) -> Any:
    want = len(without_emitted_at(expected_alerts))
    return lambda got: len(without_emitted_at(got)) >= want


def source_record(settings: Settings, topic: str, partition: int, offset: int) -> bytes:
    async def run() -> bytes:
        consumer = AIOKafkaConsumer(**settings.aiokafka_kwargs(), enable_auto_commit=False)
        await consumer.start()
        try:
            tp = TopicPartition(topic, partition)
            consumer.assign([tp])
            consumer.seek(tp, offset)
            batch = await consumer.getmany(tp, timeout_ms=5000, max_records=1)
            return bytes(batch[tp][0].value)
        finally:
            await consumer.stop()

    return asyncio.run(run())


def test_city_alerts_equal_the_replay_of_the_same_input(settings: Settings, tmp_path: Path,
                                                        demo_day: list[dict[str, Any]],
                                                        expected: Any) -> None:
    produce(settings, demo_day)
    worker = Worker(settings, tmp_path / "worker.log", clock="event", session_timeout_ms=3000)
    try:
        worker.wait_ready()
        alerts = read_topic(settings, "city.alerts", done=all_versions(expected[0]))
        dead = read_topic(settings, "city.alerts.deadletter", done=lambda d: len(d) >= len(expected[1]),
                          quiet_s=0.5)
        metrics = worker.metrics()
    finally:
        worker.stop()
    check_metrics(metrics)                # after a demo day: every labelled series is there
    assert 'cityorder_clock_mode{clock="event"} 1.0' in metrics   # CityorderEventClockStalled leaves it out
    assert_same(without_emitted_at(alerts), without_emitted_at(expected[0]))
    assert all(a["emitted_at"] >= "2026-11-23" for a in alerts)   # stamped when sent, not replayed
    # Malformed input: every reason of the replay, each pointing at the real source record.
    assert Counter((d["reason_code"], d["event_id"]) for d in dead) == \
        Counter((d["reason_code"], d["event_id"]) for d in expected[1])
    assert {d["reason_code"] for d in dead} >= {"bad_json", "bad_encoding", "naive_timestamp",
                                                "invalid_field", "outside_map", "bad_coordinate",
                                                "unregistered_device"}
    for d in [d for d in dead if d["topic"] != settings.topic("city.alerts.feedback")][:5]:
        raw = source_record(settings, d["topic"], d["partition"], d["offset"])
        assert d["payload"] == raw[:65536].decode("utf-8", "replace") or d["payload_encoding"] == "base64"
    # The worker's counters are the topic's contents, and its case gauge the replay's end state.
    assert series(metrics, "cityorder_deadletters_total", "reason_code", "topic") == \
        Counter((d["reason_code"], d["topic"]) for d in dead)
    assert series(metrics, "cityorder_alert_transitions_total", "transition", "rule_id", "category",
                  "severity") == Counter((a["transition"], a["rule_id"], a["category"], a["severity"])
                                         for a in without_emitted_at(alerts).values())
    opened = open_cases(alerts)
    assert opened
    assert series(metrics, "cityorder_open_cases", "district", "category", "level", "status") == opened
    acknowledged = Counter((a["category"],) for a in without_emitted_at(alerts).values()
                           if a["transition"] == "acknowledged")
    assert series(metrics, "cityorder_case_acknowledge_seconds_count", "category") == acknowledged
    # Exact after a restart: the gauge is read from the recovered state, not counted again.
    # Ready means every owned partition's engine is loaded (partitions_loaded), idle or not.
    again = Worker(settings, tmp_path / "worker2.log", clock="event", session_timeout_ms=3000)
    try:
        state = again.wait_ready()
        assert state["partitions_loaded"] and state["loaded"] == state["owned"] == [0, 1, 2, 3]
        assert series(again.metrics(), "cityorder_open_cases", "district", "category", "level",
                      "status") == opened
    finally:
        again.stop()


def open_cases(alerts: list[dict[str, Any]]) -> Counter[tuple[str, ...]]:
    """Cases not ended at the end of the topic, as the worker's gauge labels them."""
    last: dict[str, dict[str, Any]] = {}
    for a in alerts:
        if a["version"] >= last.get(a["alert_id"], {"version": 0})["version"]:
            last[a["alert_id"]] = a
    return Counter((a["district"], a["category"], str(a["level"]), a["status"]) for a in last.values()
                   if a["status"] not in ("closed", "rejected"))


VENDOR_PACK = """
reorder_window: 1s
policies:
  fast:
    levels:
      - {level: 1, after: 0s, notify: [grid_inspector]}
      - {level: 2, after: 4s, unless: acknowledged, notify: [district_duty]}
    deadline: 7s
rules:
  - id: test.vendor
    category: street_vendor
    severity: minor
    description: 测试摊贩
    source: camera
    match: {labels: [street_vendor]}
    persist: {duration: 0s, gap: 1m}
    policy: fast
"""


def now_text(offset_ms: int = 0) -> str:
    return datetime.fromtimestamp(time.time() + offset_ms / 1000, UTC).isoformat(timespec="milliseconds")


def camera_line(event_id: str) -> dict[str, Any]:
    return {"topic": "city.events.camera", "key": "cam-0001",
            "value": {"event_id": event_id, "camera_id": "cam-0001", "observed_at": now_text(),
                      "detections": [{"label": "street_vendor", "track_id": "t-1", "confidence": 0.9}]}}


def feedback_line(alert_id: str, action: str, event_id: str) -> dict[str, Any]:
    return {"topic": "city.alerts.feedback", "key": alert_id,
            "value": {"event_id": event_id, "alert_id": alert_id, "action": action, "actor": "officer-1",
                      "at": now_text()}}


def test_wall_clock_escalates_without_input_and_feedback_round_trips(settings: Settings,
                                                                     tmp_path: Path) -> None:
    pack = tmp_path / "vendor.yaml"
    pack.write_text(VENDOR_PACK)
    worker = Worker(settings, tmp_path / "worker.log", clock="wall", rules=(pack,), session_timeout_ms=3000,
                    tick_interval_ms=200)
    try:
        worker.wait_ready()
        produce(settings, [camera_line("e-1")], end_tick=False)
        sent = time.time()
        # No more input: level 2 (after 4 s) and overdue (7 s) come from the wall clock alone.
        alerts = read_topic(settings, "city.alerts", timeout=30, quiet_s=0.5,
                            done=lambda got: {"opened", "escalated", "overdue"} <= {a["transition"]
                                                                                   for a in got})
        assert [a["transition"] for a in alerts][:3] == ["opened", "escalated", "overdue"], alerts
        assert time.time() - sent < 20
        opened, escalated, overdue = alerts[:3]
        assert escalated["level"] == 2 and escalated["notify"] == ["district_duty"]
        at = lambda a: datetime.fromisoformat(a["at"]).timestamp()  # noqa: E731
        assert at(escalated) - at(opened) == pytest.approx(4.0, abs=0.01)
        assert at(overdue) - at(opened) == pytest.approx(7.0, abs=0.01)

        alert_id = opened["alert_id"]
        produce(settings, [feedback_line(alert_id, "acknowledge", "fb-1"),
                           feedback_line(alert_id, "acknowledge", "fb-2"),    # illegal: already acknowledged
                           feedback_line(alert_id, "acknowledge", "fb-1")],   # redelivery: ignored
                end_tick=False)
        alerts = read_topic(settings, "city.alerts", timeout=30, quiet_s=1.0,
                            done=lambda got: any(a["transition"] == "acknowledged" for a in got))
        acked = [a for a in alerts if a["transition"] == "acknowledged"]
        assert len(acked) == 1 and acked[0]["actor"] == "officer-1" and acked[0]["status"] == "acknowledged"
        assert acked[0]["version"] == max(a["version"] for a in alerts if a["alert_id"] == alert_id)
        dead = read_topic(settings, "city.alerts.deadletter", timeout=30, quiet_s=0.5, done=lambda d: bool(d))
        assert [(d["event_id"], d["reason_code"]) for d in dead] == [("fb-2", "illegal_transition")]
        assert dead[0]["topic"] == settings.topic("city.alerts.feedback") and dead[0]["key"] == alert_id
    finally:
        worker.stop()


def test_sigkill_loses_no_transition_and_changes_no_version(settings: Settings, tmp_path: Path,
                                                            demo_day: list[dict[str, Any]],
                                                            expected: Any) -> None:
    """Kill -9 while input is being processed, twice, with more input arriving in between."""
    half = len(demo_day) // 2
    log = tmp_path / "workers.log"
    overrides: dict[str, Any] = {"clock": "event", "session_timeout_ms": 3000}
    produce(settings, demo_day[:half], end_tick=False)
    workers = [Worker(settings, log, **overrides)]
    try:
        workers[0].wait_ready()
        time.sleep(1.5)
        workers[0].kill()
        produce(settings, demo_day[half:])
        workers.append(Worker(settings, log, **overrides))
        workers[1].wait_ready()
        time.sleep(1.5)
        workers[1].kill()
        workers.append(Worker(settings, log, **overrides))
        workers[2].wait_ready()
        alerts = read_topic(settings, "city.alerts", done=all_versions(expected[0]), timeout=120)
        metrics = workers[2].metrics()
        late = metric_total(workers[2], "cityorder_late_inputs_total")
    finally:
        for w in workers:       # a failed wait must not leave a worker running
            w.stop()
    breaches = frontier_breaches(settings)
    assert not breaches, f"{len(breaches)} parts behind their frontier, e.g. {breaches[:3]}"
    got = without_emitted_at(alerts)           # raises if a version came with two contents
    assert_same(got, without_emitted_at(expected[0]), *workers)
    assert late == 0, "re-read input is redelivered, not late"
    for alert_id in {a for a, _ in got}:
        versions = sorted(v for a, v in got if a == alert_id)
        assert versions == list(range(1, len(versions) + 1)), f"{alert_id}: gap in {versions}"
    assert len(alerts) >= len(got)           # redelivery is allowed, loss is not
    assert "cityorder_ready 1.0" in metrics


def two_event_workers(settings: Settings, tmp_path: Path) -> tuple[Worker, Worker]:
    """Workers A and B in one group, event clock, joining in ~1 s (logs a.log, b.log)."""
    a, b = (Worker(settings, tmp_path / f"{name}.log", clock="event", session_timeout_ms=3000)
            for name in "ab")
    return a, b


def test_two_workers_share_partitions_and_one_takes_over(settings: Settings, tmp_path: Path,
                                                         demo_day: list[dict[str, Any]],
                                                         expected: Any) -> None:
    """A is killed while the two drain the day; B takes over A's partitions (from A's last
    checkpoint and committed offsets, redoing what came after) and the result is the replay."""
    produce(settings, demo_day)
    a, b = two_event_workers(settings, tmp_path)
    try:
        a.wait_ready()
        b.wait_ready()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            pa, pb = a.readyz() or {}, b.readyz() or {}
            if pa.get("ready") and pb.get("ready") and pa.get("owned") and pb.get("owned") and \
                    metric_total(a, "cityorder_alert_transitions_total") > 0:
                break
            time.sleep(0.1)
        assert set(pa["owned"]) | set(pb["owned"]) == set(range(settings.partitions))
        assert not set(pa["owned"]) & set(pb["owned"])
        a.kill()
        deadline = time.monotonic() + 40
        while time.monotonic() < deadline and len((b.readyz() or {}).get("owned", [])) < settings.partitions:
            time.sleep(0.3)
        assert (b.readyz() or {}).get("owned") == list(range(settings.partitions)), b.tail()
        alerts = read_topic(settings, "city.alerts", done=all_versions(expected[0]), timeout=120)
    finally:
        a.stop()
        b.stop()
    got = without_emitted_at(alerts)           # raises if a version came with two contents
    assert_same(got, without_emitted_at(expected[0]), a, b)


def test_two_workers_draining_one_backlog_give_the_replay(settings: Settings, tmp_path: Path,
                                                          demo_day: list[dict[str, Any]],
                                                          expected: Any) -> None:
    """Two ingests catch up one backlog at their own speeds, with a rebalance in the middle
    (A starts alone, B joins): every partition still applies its input in one arrival order,
    so the result is the replay's, and no input is counted late."""
    produce(settings, demo_day)
    a, b = two_event_workers(settings, tmp_path)
    try:
        a.wait_ready()
        b.wait_ready()
        alerts = read_topic(settings, "city.alerts", done=all_versions(expected[0]), timeout=120)
        owned = [(w.readyz() or {}).get("owned") for w in (a, b)]
        late = [metric_total(w, "cityorder_late_inputs_total") for w in (a, b)]
    finally:
        a.stop()
        b.stop()
    assert_same(without_emitted_at(alerts), without_emitted_at(expected[0]), a, b)
    assert all(owned), f"both workers evaluate: {owned}"
    assert late == [0.0, 0.0]


def test_a_broker_that_stops_answering_does_not_stop_the_worker(tmp_path: Path,
                                                                demo_day: list[dict[str, Any]],
                                                                expected: Any) -> None:
    """The broker frozen mid-day (SIGSTOP: connections stay open, nothing is answered), then
    thawed: the worker stays up, says it is not ready while it cannot reach the broker, and
    goes on where it was: city.alerts equal the replay."""
    with EmbeddedBroker(log_dir=tmp_path / "broker") as broker:
        settings = Settings.from_env({}, brokers=broker.url, topic_prefix="outage.", store="memory",
                                     city=DEMO_CITY, state_dir=tmp_path / "state", checkpoint_interval="1s")
        produce(settings, demo_day)
        worker = Worker(settings, tmp_path / "worker.log", clock="event", session_timeout_ms=3000)
        try:
            worker.wait_ready()
            deadline = time.monotonic() + 60
            while metric_total(worker, "cityorder_alert_transitions_total") < 20:
                assert time.monotonic() < deadline, worker.tail()
                time.sleep(0.1)
            os.kill(broker.pid or 0, signal.SIGSTOP)
            states = []
            try:
                for _ in range(int(OUTAGE_S / 0.5)):
                    time.sleep(0.5)
                    states.append(worker.readyz())
                    assert worker.proc.poll() is None, worker.tail()
            finally:
                os.kill(broker.pid or 0, signal.SIGCONT)
            assert any(st is not None and not st["ready"] and not st["broker_answers"] for st in states), \
                states
            worker.wait_ready(timeout=30)
            alerts = read_topic(settings, "city.alerts", done=all_versions(expected[0]), timeout=120)
            assert worker.proc.poll() is None, worker.tail()
        finally:
            worker.stop()
    assert_same(without_emitted_at(alerts), without_emitted_at(expected[0]), worker)
