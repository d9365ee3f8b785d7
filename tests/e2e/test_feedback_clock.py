"""``cityorder feedback`` on the embedded broker: the time it stamps (issue 13, item 3).

The reproducer: against ``cityorder dev`` (an event-clock worker streaming a past demo day),
``cityorder feedback --brokers ... ALERT acknowledge`` stamped the wall clock; the partition's
clock jumped two weeks, the alert escalated and went overdue, and later input was late.

The first tests write ``city.alerts`` and ``cityorder.internal`` by hand (no worker: what
``streams/clock.py`` reads is exactly those records); the last runs a real event-clock worker.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaProducer
from click.testing import CliRunner

from models.decode import Source
from rules.inputs import FeedbackIn, Input
from streams.cli import main
from streams.clock import FeedbackClockError, read_clock
from streams.codec import encode
from streams.partitioned import grid_partition
from streams.settings import INTERNAL_TOPIC, Settings
from streams.simulate import simulate
from streams.topics import default_topics, ensure_topics
from tests.e2e.workers import Worker, read_topic
from tests.rules.harness import T, iso

pytestmark = pytest.mark.timeout(180)

GRID = "JY-0402"                                  # mh-0001's grid in the demo city
ALERT = f"a-{GRID}-0123456789abcdef0123"
DAY = "2026-11-18"


def now_ms() -> int:
    return int(time.time() * 1000)


def alert_message(alert_id: str, at: int, emitted_at: int, version: int = 1,
                  status: str = "open") -> dict[str, Any]:
    grid = alert_id[2:-21]
    return {"alert_id": alert_id, "version": version, "transition": "opened", "status": status,
            "grid_id": grid, "at": iso(at), "emitted_at": iso(emitted_at)}


def sensor_part(t: int, feedback: bool = False) -> Input:
    fb = FeedbackIn(ALERT, "acknowledge", "cli") if feedback else None
    return Input(Source.FEEDBACK if feedback else Source.SENSOR,
                 "city.alerts.feedback" if feedback else "city.events.sensor", f"e-{t}", t, GRID,
                 feedback=fb, arrival=now_ms())


def write(settings: Settings, alerts: list[dict[str, Any]], internal: list[bytes]) -> None:
    """``alerts`` as the worker produces them (keyed by id, partition left to the client);
    ``internal`` to the partition of :data:`GRID`."""

    async def run() -> None:
        await ensure_topics(settings, default_topics(settings))
        producer = AIOKafkaProducer(**settings.aiokafka_kwargs(), acks="all")
        await producer.start()
        try:
            for a in alerts:
                await producer.send_and_wait(settings.topic("city.alerts"), orjson.dumps(a),
                                             key=a["alert_id"].encode())
            partition = grid_partition(GRID, settings.partitions)
            for value in internal:
                await producer.send_and_wait(settings.topic(INTERNAL_TOPIC), value,
                                             partition=partition)
        finally:
            await producer.stop()

    asyncio.run(run())


def a_demo_day_system(settings: Settings) -> None:
    """An event-clock system two weeks back: the alert opened at 10:00, input up to 10:02:00
    on its partition, then a feedback that the worker refused for being at today's date."""
    now = now_ms()
    write(settings,
          [alert_message(ALERT, T("10:00:00", DAY), now - 60_000),
           alert_message("a-OTHER-00000000000000000000", T("10:01:30", DAY), now - 1_000)],
          [encode([sensor_part(T("10:00:00", DAY)), sensor_part(T("10:01:00", DAY))]),
           encode([sensor_part(T("10:02:00", DAY)), sensor_part(T("10:01:50", DAY))]),
           encode([sensor_part(now, feedback=True)]),
           encode(frontier={"city.events.sensor/0": now})])


def test_an_event_clock_is_read_from_the_alerts_partition_tail(settings: Settings) -> None:
    a_demo_day_system(settings)
    clock = asyncio.run(read_clock(settings, ALERT))
    assert (clock.mode, clock.partition, clock.grid_id) == \
        ("event", grid_partition(GRID, settings.partitions), GRID)
    assert clock.clock == T("10:02:00", DAY)
    assert clock.floor == T("10:00:00", DAY)
    assert clock.stamp(now_ms=now_ms(), reorder_window_ms=5_000) == T("10:01:55", DAY)
    assert clock.status == "open"


def test_a_wall_clock_system_is_recognised(settings: Settings) -> None:
    now = now_ms()
    write(settings, [alert_message(ALERT, now - 6_000, now)], [])
    clock = asyncio.run(read_clock(settings, ALERT))
    assert clock.mode == "wall" and clock.clock is None
    assert clock.stamp(now_ms=now + 10, reorder_window_ms=5_000) == now + 10


def test_an_unknown_alert_and_an_empty_system_are_clear_errors(settings: Settings) -> None:
    with pytest.raises(FeedbackClockError, match=r"there is no topic .*city\.alerts.* no worker has run"):
        asyncio.run(read_clock(settings, ALERT))
    a_demo_day_system(settings)
    with pytest.raises(FeedbackClockError,
                       match=r"no alert a-JY-0402-ffffffffffffffffffff in .*city.alerts .*\(2 messages "
                             r"read\): check the id"):
        asyncio.run(read_clock(settings, f"a-{GRID}-ffffffffffffffffffff"))


def cli(settings: Settings, *args: str) -> Any:
    return CliRunner().invoke(main, ["feedback", "--brokers", settings.brokers[0], "--topic-prefix",
                                     settings.topic_prefix, *args], env={"CITYORDER_RULES": None})


def test_the_cli_stamps_the_event_clock_and_refuses_the_wall_clock(settings: Settings) -> None:
    a_demo_day_system(settings)
    result = cli(settings, ALERT, "acknowledge")
    assert result.exit_code == 0, result.output
    partition = grid_partition(GRID, settings.partitions)
    assert f"at 2026-11-18T10:01:55.000+08:00 (event clock of partition {partition}; " \
           "the alert was open)" in result.output

    wall = datetime.now(UTC).isoformat(timespec="milliseconds")
    refused = cli(settings, ALERT, "resolve", "--at", wall)
    assert refused.exit_code == 1
    assert f"ahead of the event clock of partition {partition} (grid {GRID})" in refused.output
    assert "Leave out --at" in refused.output

    sent = read_topic(settings, "city.alerts.feedback", done=lambda got: bool(got), quiet_s=0.5,
                      timeout=20)
    assert [(m["action"], m["at"]) for m in sent] == \
        [("acknowledge", "2026-11-18T10:01:55.000+08:00")]


def test_the_cli_names_what_is_wrong(settings: Settings) -> None:
    result = cli(settings, "JY-0402", "acknowledge")
    assert result.exit_code == 1 and "is not an alert id" in result.output
    result = cli(settings, ALERT, "acknowledge")
    assert result.exit_code == 1 and "no worker has run there" in result.output


def readings(sensor: str, state: str, first: str, last: str) -> list[dict[str, Any]]:
    """A manhole cover's readings, one a minute from ``first`` to ``last`` (on :data:`DAY`)."""
    out = []
    t, end = T(first, DAY), T(last, DAY)
    while t <= end:
        out.append({"topic": "city.events.sensor", "key": sensor,
                    "value": {"event_id": f"{sensor}-{t}", "sensor_id": sensor,
                              "kind": "manhole_cover", "observed_at": iso(t), "state": state}})
        t += 60_000
    return out


def late_inputs(metrics: str) -> float:
    return sum(float(line.rsplit(" ", 1)[1]) for line in metrics.splitlines()
               if line.startswith("cityorder_late_inputs_total"))


def test_feedback_against_an_event_clock_worker_moves_no_clock(settings: Settings,
                                                              tmp_path: Path) -> None:
    """The reproducer, end to end: ``cityorder feedback --brokers B ALERT acknowledge``, no
    other flag, against an event-clock worker on a day two weeks back. The acknowledgement is
    applied at that day's time, at once, and nothing escalates (level 2 is 10 min after the
    opening unless acknowledged, the deadline 30 min); a feedback stamped with today's date,
    as the command used to, is a dead letter and moves no clock either."""

    def produce(lines: list[dict[str, Any]], end_tick: bool = True) -> None:
        async def run() -> None:
            await ensure_topics(settings, default_topics(settings))
            await simulate(settings, lines, end_tick=end_tick)

        asyncio.run(run())

    worker = Worker(settings, tmp_path / "worker.log", clock="event", session_timeout_ms=3000)
    try:
        worker.wait_ready()
        produce(readings("mh-0001", "open", "10:00:00", "10:02:00"))
        opened = read_topic(settings, "city.alerts", timeout=60, quiet_s=0.5,
                            done=lambda got: any(a["rule_id"] == "manhole.open" for a in got))
        alert_id = next(a["alert_id"] for a in opened if a["rule_id"] == "manhole.open")

        result = cli(settings, alert_id, "acknowledge")
        assert result.exit_code == 0, result.output
        assert "event clock of partition" in result.output

        def acknowledged(got: list[dict[str, Any]]) -> bool:
            return any(a["alert_id"] == alert_id and a["transition"] == "acknowledged" for a in got)

        alerts = read_topic(settings, "city.alerts", timeout=60, quiet_s=1.0, done=acknowledged)
        mine = [a for a in alerts if a["alert_id"] == alert_id and a["transition"] != "updated"]
        assert [a["transition"] for a in mine] == ["opened", "acknowledged"], worker.tail()
        assert iso(T("10:02:00", DAY)) <= mine[-1]["at"] <= iso(T("10:02:05", DAY))

        # What the command used to send: today's date. Refused; the clock stays on the day, so
        # the input after it is on time (no end tick: a simulator's would be at today's date).
        wall_feedback = {"topic": "city.alerts.feedback", "key": alert_id,
                         "value": {"event_id": "fb-wall", "alert_id": alert_id, "action": "resolve",
                                   "actor": "cli", "at": datetime.now(UTC).isoformat()}}
        produce([wall_feedback, *readings("mh-0002", "ok", "10:03:00", "10:04:00")], end_tick=False)
        dead = read_topic(settings, "city.alerts.deadletter", timeout=60, quiet_s=0.5,
                          done=lambda got: any(d["event_id"] == "fb-wall" for d in got))
        assert [(d["event_id"], d["reason_code"]) for d in dead] == [("fb-wall", "future_timestamp")]
        assert "ahead of its partition's event clock (2026-11-18T10:02:0" in dead[0]["reason"]
        alerts = read_topic(settings, "city.alerts", timeout=10, quiet_s=2.0, done=lambda got: True)
        assert [a["transition"] for a in alerts
                if a["alert_id"] == alert_id and a["transition"] != "updated"] == \
            ["opened", "acknowledged"]
        assert not [a for a in alerts if a["transition"] in ("escalated", "overdue")]
        assert late_inputs(worker.metrics()) == 0
    finally:
        worker.stop()
