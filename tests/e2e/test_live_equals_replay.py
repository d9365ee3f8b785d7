"""Live equals replay: what workers give for input produced while they run is what
``cityorder replay --partitions N`` gives for the recording of that input, whatever the
producing speed and however many workers.

Each test starts the workers first and produces afterwards, so every fetch races the producer:
partitions are found at their end while the producer's next batch for them is on its way.
Before progress markers (``cityorder-progress``) a worker took such a partition as complete
and merged the others past it, and its output differed from the replay by hundreds of versions
over the demo day. The recording is what ``simulate --record`` writes, so it holds exactly
what was sent, in the order it was stamped.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from models.timestamps import format_timestamp_ms, parse_timestamp_ms
from rules.demo.city import GEOJSON_PATH as DEMO_CITY
from rules.pack import DEFAULT_PACK
from streams.ingest_loop import IDLE_GRACE_S
from streams.settings import INPUT_TOPICS, Settings
from streams.simulate import line_time, simulate
from streams.topics import default_topics, ensure_topics, true_end_offsets
from tests.demo_day import day_lines
from tests.e2e.workers import Worker, assert_same, read_topic, replay_of, without_emitted_at

pytestmark = pytest.mark.timeout(300)

#: The paced runs send a slice of the day: at 600x the whole day would take 2.4 minutes.
SLICE_HOURS = (7, 9)


@pytest.fixture(scope="module")
def demo_day() -> list[dict[str, Any]]:
    return day_lines()


def day_slice(lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The lines of the morning rush (feedback to alerts opened earlier becomes dead letters,
    the same in the replay); the closing tick is added by ``simulate``."""
    first = line_time(lines[0]) or 0
    start, end = (first + h * 3_600_000 for h in SLICE_HOURS)
    return [line for line in lines if "tick" not in line and start <= (line_time(line) or start) < end]


def start_workers(settings: Settings, tmp_path: Path, count: int) -> list[Worker]:
    asyncio.run(ensure_topics(settings, default_topics(settings)))
    workers = [Worker(settings, tmp_path / f"worker-{i}.log", clock="event", session_timeout_ms=3000)
               for i in range(count)]
    deadline = time.monotonic() + 60
    for w in workers:
        w.wait_ready()
    while count > 1 and time.monotonic() < deadline:   # both own partitions: the rebalance is over
        states = [w.readyz() or {} for w in workers]
        if all(st.get("ready") and st.get("owned") for st in states):
            break
        time.sleep(0.2)
    return workers


def produce_recorded(settings: Settings, lines: list[dict[str, Any]], **pace: Any) -> list[dict[str, Any]]:
    recorded: list[dict[str, Any]] = []
    asyncio.run(simulate(settings, lines, record=recorded.append, **pace))
    return recorded


def live_and_replay(settings: Settings, tmp_path: Path, lines: list[dict[str, Any]], workers: int,
                    **pace: Any) -> tuple[dict[Any, Any], dict[Any, Any], list[Worker]]:
    running = start_workers(settings, tmp_path, workers)
    try:
        recorded = produce_recorded(settings, lines, **pace)
        expected, _ = replay_of(recorded, DEMO_CITY, [DEFAULT_PACK], partitions=settings.partitions)
        want = without_emitted_at(expected)
        alerts = read_topic(settings, "city.alerts", timeout=150,
                            done=lambda got: len(without_emitted_at(got)) >= len(want))
        for w in running:
            assert w.proc.poll() is None, w.tail()
    finally:
        for w in running:
            w.stop()
    return without_emitted_at(alerts), want, running


@pytest.mark.parametrize("workers", [1, 2])
def test_the_demo_day_at_full_speed_equals_its_replay(settings: Settings, tmp_path: Path,
                                                      demo_day: list[dict[str, Any]], workers: int) -> None:
    got, want, running = live_and_replay(settings, tmp_path, demo_day, workers)
    assert_same(got, want, *running)


@pytest.mark.parametrize("workers", [1, 2])
def test_the_morning_at_600x_equals_its_replay(settings: Settings, tmp_path: Path,
                                               demo_day: list[dict[str, Any]], workers: int) -> None:
    got, want, running = live_and_replay(settings, tmp_path, day_slice(demo_day), workers, speedup=600)
    assert_same(got, want, *running)


def test_the_morning_paced_at_a_fixed_rate_equals_its_replay(settings: Settings, tmp_path: Path,
                                                             demo_day: list[dict[str, Any]]) -> None:
    got, want, running = live_and_replay(settings, tmp_path, day_slice(demo_day), 1, rate=3000)
    assert_same(got, want, *running)


def test_late_input_is_classified_per_partition_as_the_replay_does(settings: Settings,
                                                                    tmp_path: Path) -> None:
    """cam-0001 (grid JY-0501, partition 0 of 4) says it is alive at 10:10, then manhole
    mh-0001 (JY-0402, partition 3) reports ``open`` at 10:00. Each partition has its own
    clock (CONTRACTS.md, Time): the manhole's partition has seen nothing later, so its input
    is on time and opens an alert, in the worker and in the replay alike; a one-engine replay
    used to count it late and open nothing."""
    assert settings.partitions == 4
    lines = [
        {"topic": "city.events.camera", "key": "cam-0001",
         "value": {"event_id": "hb-1", "camera_id": "cam-0001",
                   "observed_at": "2026-11-20T10:10:00.000+08:00", "detections": []}},
        {"topic": "city.events.sensor", "key": "mh-0001",
         "value": {"event_id": "mh-1", "sensor_id": "mh-0001", "kind": "manhole_cover",
                   "observed_at": "2026-11-20T10:00:00.000+08:00", "state": "open"}},
    ]
    got, want, workers = live_and_replay(settings, tmp_path, lines, 1)
    assert_same(got, want, *workers)
    opened = [m for m in want.values() if m["rule_id"] == "manhole.open" and m["transition"] == "opened"]
    assert len(opened) == 1 and opened[0]["at"] == "2026-11-20T10:00:00.000+08:00"


def test_a_second_simulation_stamps_after_the_first(settings: Settings) -> None:
    """At full speed stamps run ahead of the wall clock (a millisecond a record). A second run
    started at once used to stamp its records from the wall clock, before the first run's
    last ones, and an event-clock worker merged the two runs into one another (the kill test
    produced its day in two halves so, and thousands of inputs came out late)."""
    asyncio.run(ensure_topics(settings, default_topics(settings)))
    cam = {"topic": "city.events.camera", "key": "cam-0001",
           "value": {"event_id": "", "camera_id": "cam-0001",
                     "observed_at": "2026-11-20T10:00:00.000+08:00", "detections": []}}
    runs = [[{**cam, "value": {**cam["value"], "event_id": f"r{run}-{i}"}} for i in range(3_000)]
            for run in range(2)]
    for lines in runs:
        asyncio.run(simulate(settings, lines, end_tick=False))
    stamps = {m["event_id"]: m["__ts"] for m in read_stamped(settings, "city.events.camera", 6_000)}
    first_end = max(stamps[f"r0-{i}"] for i in range(3_000))
    second_start = min(stamps[f"r1-{i}"] for i in range(3_000))
    assert first_end > time.time() * 1000 - 1_000, "the first run's stamps ran ahead of the clock"
    assert second_start > first_end


def read_stamped(settings: Settings, name: str, count: int) -> list[dict[str, Any]]:
    """``count`` messages of a topic, each with its record timestamp as ``__ts``."""

    async def run() -> list[dict[str, Any]]:
        consumer = AIOKafkaConsumer(settings.topic(name), **settings.aiokafka_kwargs(),
                                    auto_offset_reset="earliest", enable_auto_commit=False)
        await consumer.start()
        out: list[dict[str, Any]] = []
        deadline = time.monotonic() + 30
        try:
            while len(out) < count and time.monotonic() < deadline:
                for records in (await consumer.getmany(timeout_ms=200)).values():
                    out += [{**orjson.loads(r.value), "__ts": r.timestamp} for r in records if r.value]
        finally:
            await consumer.stop()
        return out

    return asyncio.run(run())


def test_a_worker_stopped_as_the_input_ends_leaves_the_last_tick_to_its_successor(
        settings: Settings, tmp_path: Path, demo_day: list[dict[str, Any]]) -> None:
    """A source partition read to its end reports its frontier only after it has been idle for
    ``IDLE_GRACE_S``, and then up to the newest stamp its ingest has released: the input's
    closing tick, which takes effect once every frontier has passed its stamp. A worker stopped
    within that grace (the random kill test's seed 1 did; a deploy after a backtest would) has
    committed its input, so the next owner of those partitions fetched nothing, knew no stamp,
    and reported a frontier short of the tick for ever: every transition due after the last
    input was never made. The next owner now fetches the last ingested record again to learn
    it. Here the input ends with a tick 30 minutes after its last line, so many are due then."""
    lines = day_slice(demo_day)
    end = max(line_time(line) or 0 for line in lines) + 30 * 60_000
    lines.append({"tick": format_timestamp_ms(end, UTC)})
    first = start_workers(settings, tmp_path, 1)[0]
    successor: Worker | None = None
    try:
        recorded = produce_recorded(settings, lines)
        waited = ingest_committed_everything(settings)
        first.kill()
        assert waited < IDLE_GRACE_S - 1, f"the ingest committed the end after {waited:.1f} s: too late"
        successor = Worker(settings, tmp_path / "successor.log", clock="event", session_timeout_ms=3000)
        expected, _ = replay_of(recorded, DEMO_CITY, [DEFAULT_PACK], partitions=settings.partitions)
        want = without_emitted_at(expected)
        alerts = read_topic(settings, "city.alerts", timeout=60,
                            done=lambda got: len(without_emitted_at(got)) >= len(want))
    finally:
        first.stop()
        if successor is not None:
            successor.stop()
    after = [m for m in want.values() if parse_timestamp_ms(m["at"]) > end - 30 * 60_000]
    assert len(after) > 20, "the closing tick should be due for many transitions"
    assert_same(without_emitted_at(alerts), want, first, successor)


def ingest_committed_everything(settings: Settings, timeout: float = 30.0) -> float:
    """Wait until the ingest group's committed offsets reach the end of every input partition;
    the seconds since the input was last written to."""

    async def run() -> float:
        # assigned, not subscribed: it reads the group's offsets without joining the group
        consumer = AIOKafkaConsumer(**settings.aiokafka_kwargs(), group_id=settings.ingest_group,
                                    enable_auto_commit=False)
        await consumer.start()
        started = time.monotonic()
        try:
            inputs = [TopicPartition(settings.topic(t), p) for t in INPUT_TOPICS
                      for p in range(settings.partitions)]
            consumer.assign(inputs)
            ends = await true_end_offsets(settings, inputs)   # end_offsets reads short on Tansu
            while time.monotonic() - started < timeout:
                committed = [await consumer.committed(tp) for tp in inputs]
                if all(c is not None and c >= ends[tp] for tp, c in zip(inputs, committed, strict=True)):
                    return time.monotonic() - started
                await asyncio.sleep(0.05)
            raise AssertionError(f"the ingest did not commit the input's end in {timeout:.0f} s")
        finally:
            await consumer.stop()

    return asyncio.run(run())
