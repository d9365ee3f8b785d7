"""The embedded broker and topic creation, against a real Tansu process.

Besides checking our code, these tests pin down three properties of Tansu 0.6.0 that the runtime
is designed around, so that a broker upgrade that changes them fails here first:

- ListOffsets(latest), i.e. ``end_offsets``, answers the *base offset of the last record batch
  + 1*: with batching producers it falls short of what is consumable, so "read up to the end"
  must use the high watermark of a fetch response (``consumer.highwater(tp)``) instead.
- Records keep the producer's timestamp (CreateTime); ``message.timestamp.type=LogAppendTime``
  is accepted, stored and reported, but not applied.
- Metadata requests that name a missing topic create it with the broker's default count (4),
  so topics must be created (with :func:`ensure_topics`) before any client asks for them.
- ``max.message.bytes`` is stored and reported, but no record size limit is enforced: a record
  above it is stored and fetched (even by a consumer whose ``max_partition_fetch_bytes`` is
  smaller). So on Tansu the topic setting changes nothing; on Kafka (1 MB by default) it is
  what lets an oversized input record reach a worker to be dead-lettered. A DescribeConfigs
  request that names the keys it wants makes Tansu drop the connection: ask for all of them.

Also here, because they are about what a worker asks of its broker: a worker starts without a
false alarm about it, and an oversized record goes from ``cityorder simulate`` through the
broker to a ``too_large`` dead letter.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.structs import ConsumerRecord
from faust.types import TP

import streams.broker as broker_module
from streams.broker import BrokerError, EmbeddedBroker, free_port
from streams.settings import INPUT_TOPICS, MAX_RECORD_BYTES, Settings
from streams.simulate import simulate
from streams.topics import (
    MAX_MESSAGE_BYTES,
    Mismatch,
    TopicMismatch,
    TopicsError,
    default_topics,
    ensure_topics,
    log_start_offsets,
    true_end_offsets,
)
from tests.e2e.workers import Worker, read_topic

CREATE_TIME = 0  # Kafka's timestamp type codes: 0 CreateTime, 1 LogAppendTime
linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux-only")


def consumer(settings: Settings) -> AIOKafkaConsumer:
    """A group-less consumer: a short fetch wait, because Tansu holds a fetch for all of it."""
    return AIOKafkaConsumer(**settings.aiokafka_kwargs(), enable_auto_commit=False,
                            auto_offset_reset="earliest", fetch_max_wait_ms=100)


async def read_all(c: AIOKafkaConsumer, expected: int, timeout: float = 30.0) -> list[ConsumerRecord]:
    records: list[ConsumerRecord] = []
    deadline = time.monotonic() + timeout
    while len(records) < expected and time.monotonic() < deadline:
        for batch in (await c.getmany(timeout_ms=500, max_records=5000)).values():
            records.extend(batch)
    return records


def dead(pid: int) -> bool:
    """True once ``pid`` has exited (a zombie waiting for a reaper counts as exited)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return True
    return "\nState:\tZ" in status


def wait_dead(pid: int, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while not dead(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


# -- the broker process -------------------------------------------------------------------------

def test_session_broker_answers_on_loopback(broker: EmbeddedBroker) -> None:
    assert broker.running
    assert broker.url == f"kafka://127.0.0.1:{broker.port}"
    assert broker.bootstrap == f"127.0.0.1:{broker.port}"
    assert broker.startup_seconds is not None
    print(f"\nembedded broker ready in {broker.startup_seconds * 1000:.1f} ms (pid {broker.pid})")


def test_stop_leaves_no_process_and_start_returns_on_the_same_port() -> None:
    b = EmbeddedBroker()
    try:
        b.start()
        pid, port = b.pid, b.port
        assert pid is not None
        b.stop()
        assert dead(pid) and not b.running
        b.stop()  # idempotent
        b.start()  # a broker that "goes away and returns" keeps its address for its clients
        assert b.port == port and b.pid != pid and b.running
    finally:
        b.cleanup()
    assert not b.running


async def test_async_context_manager_starts_and_stops() -> None:
    async with EmbeddedBroker() as b:
        pid = b.pid
        settings = Settings.from_env({}, brokers=b.url)
        assert await ensure_topics(settings, {"a": 1}) == ["a"]
    assert pid is not None and dead(pid)


def test_a_port_lost_to_another_broker_is_detected_and_another_is_used(
        broker: EmbeddedBroker, monkeypatch: pytest.MonkeyPatch) -> None:
    """The session broker holds the first port offered: the new broker's probe reaches the
    session broker, sees a foreign cluster id, and the new broker moves on once its own bind
    fails, instead of declaring itself ready on someone else's port."""
    offered = iter([broker.port])
    monkeypatch.setattr(broker_module, "free_port",
                        lambda host="127.0.0.1": next(offered, None) or free_port(host))
    with EmbeddedBroker() as b:
        assert b.port != broker.port and b.running


def test_a_fixed_port_in_use_is_a_clear_error(broker: EmbeddedBroker, tmp_path: Path) -> None:
    b = EmbeddedBroker(port=broker.port, log_dir=tmp_path)
    with pytest.raises(BrokerError, match=f"port {broker.port} is already in use"):
        b.start()
    assert not b.running


def test_refuses_a_non_loopback_address() -> None:
    with pytest.raises(ValueError, match="loopback"):
        EmbeddedBroker(host="0.0.0.0")


SPAWN_AND = """
import pathlib, sys, time
from streams.broker import EmbeddedBroker
b = EmbeddedBroker(log_dir=pathlib.Path(sys.argv[2])).start()
print(b.pid, flush=True)
if sys.argv[1] == "hang":
    time.sleep(60)
"""


def _spawn_parent(mode: str, log_dir: Path) -> tuple[subprocess.Popen[str], int]:
    """A Python parent that starts a broker, then hangs (to be killed) or exits without stopping it."""
    p = subprocess.Popen([sys.executable, "-c", SPAWN_AND, mode, str(log_dir)], stdout=subprocess.PIPE,
                         text=True, cwd=Path(__file__).resolve().parents[2])
    assert p.stdout is not None
    return p, int(p.stdout.readline())


@linux_only
def test_broker_dies_with_a_sigkilled_parent(tmp_path: Path) -> None:
    parent, pid = _spawn_parent("hang", tmp_path)
    try:
        parent.kill()
        parent.wait()
        assert wait_dead(pid), "the broker outlived its SIGKILLed parent"
    finally:
        if not dead(pid):
            os.kill(pid, 9)


@linux_only
def test_broker_is_stopped_when_the_parent_exits_without_stopping_it(tmp_path: Path) -> None:
    parent, pid = _spawn_parent("exit", tmp_path)
    try:
        assert parent.wait(10) == 0
        assert wait_dead(pid), "atexit did not stop the broker"
    finally:
        if not dead(pid):
            os.kill(pid, 9)


# -- producing and consuming --------------------------------------------------------------------

async def test_10000_messages_round_trip_with_the_producers_timestamps(settings: Settings) -> None:
    topic, n = settings.topic("city.events.camera"), 10_000
    await ensure_topics(settings, {topic: 4})
    base_ms = int(time.time() * 1000) - 3_600_000  # an hour ago: clearly not the broker's clock
    producer = AIOKafkaProducer(**settings.aiokafka_kwargs(), linger_ms=5)
    await producer.start()
    try:
        futures = [await producer.send(topic, b"%d" % i, key=b"cam-%d" % (i % 100), timestamp_ms=base_ms + i)
                   for i in range(n)]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()

    c = consumer(settings)
    await c.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(4)]
        c.assign(tps)
        records = await read_all(c, n)
        end_offsets = await c.end_offsets(tps)
        highwaters = {tp: c.highwater(tp) for tp in tps}
    finally:
        await c.stop()

    assert len(records) == n
    assert sorted(int(r.value) for r in records) == list(range(n))
    assert all(r.timestamp == base_ms + int(r.value) and r.timestamp_type == CREATE_TIME for r in records)
    by_partition: dict[int, list[ConsumerRecord]] = {}
    for r in records:
        by_partition.setdefault(r.partition, []).append(r)
    assert sorted(by_partition) == [0, 1, 2, 3]
    for part in by_partition.values():
        assert [r.offset for r in part] == list(range(len(part)))
    partitions_of_key: dict[bytes | None, set[int]] = {}
    for r in records:
        partitions_of_key.setdefault(r.key, set()).add(r.partition)
    assert all(len(parts) == 1 for parts in partitions_of_key.values())  # a key stays on one partition
    # The fetch responses' high watermarks are exact; ListOffsets is not (see the next test).
    assert sum(highwaters.values()) == n
    assert sum(end_offsets.values()) <= n
    assert await true_end_offsets(settings, tps) == highwaters
    print(f"\nend_offsets say {sum(end_offsets.values())} records, {n} consumable; "
          f"per partition {[end_offsets[tp] for tp in tps]} vs {[highwaters[tp] for tp in tps]}")


async def send_one_batch(producer: AIOKafkaProducer, topic: str, partition: int, n: int) -> None:
    """``n`` records in one record batch (what Tansu's ListOffsets counts as one)."""
    batch = producer.create_batch()
    for i in range(n):
        batch.append(key=None, value=b"%d" % i, timestamp=None)
    await (await producer.send_batch(batch, topic, partition=partition))


async def test_end_offsets_count_the_last_batch_as_one_record(settings: Settings) -> None:
    """Tansu's ListOffsets(latest) is the last batch's base offset + 1, so a multi-record last
    batch makes ``end_offsets`` short by (batch size - 1); the fetch high watermark is right."""
    topic = settings.topic("city.alerts")
    await ensure_topics(settings, {topic: 1})
    tp = TopicPartition(topic, 0)
    producer = AIOKafkaProducer(**settings.aiokafka_kwargs())
    c = consumer(settings)
    await producer.start()
    await c.start()
    try:
        await send_one_batch(producer, topic, 0, 5)
        assert await c.end_offsets([tp]) == {tp: 1}  # five records readable, "end" says one
        faust_tp = TP(topic, 0)
        assert await true_end_offsets(settings, [faust_tp]) == {faust_tp: 5}

        c.assign([tp])
        assert len(await read_all(c, 5, timeout=5)) == 5
        assert c.highwater(tp) == 5

        await producer.send_and_wait(topic, b"single", partition=0)
        assert await c.end_offsets([tp]) == {tp: 6}  # a one-record last batch: exact again
    finally:
        await producer.stop()
        await c.stop()


async def test_log_append_time_is_accepted_but_not_applied(settings: Settings) -> None:
    topic = settings.topic("city.events.sensor")
    configs = {"message.timestamp.type": "LogAppendTime", "cleanup.policy": "compact"}
    await ensure_topics(settings, {topic: 1}, configs={topic: configs})
    admin = AIOKafkaAdminClient(**settings.aiokafka_kwargs())
    await admin.start()
    try:
        [response] = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)])
    finally:
        await admin.close()
    [(error, _, _, _, entries)] = response.resources
    # an input topic: cityorder's record size limit comes with the configuration asked for
    assert error == 0
    assert {e[0]: e[1] for e in entries} == {**configs, MAX_MESSAGE_BYTES: str(MAX_RECORD_BYTES)}

    producer = AIOKafkaProducer(**settings.aiokafka_kwargs())
    await producer.start()
    try:
        await producer.send_and_wait(topic, b"x", key=b"k", timestamp_ms=1_000)
    finally:
        await producer.stop()
    c = consumer(settings)
    await c.start()
    try:
        c.assign([TopicPartition(topic, 0)])
        [record] = await read_all(c, 1, timeout=5)
    finally:
        await c.stop()
    assert (record.timestamp, record.timestamp_type) == (1_000, CREATE_TIME)


# -- ensure_topics ------------------------------------------------------------------------------

async def topic_partitions(settings: Settings) -> dict[str, int]:
    admin = AIOKafkaAdminClient(**settings.aiokafka_kwargs())
    await admin.start()
    try:
        return {t["topic"]: len(t["partitions"]) for t in await admin.describe_topics()
                if t["topic"].startswith(settings.topic_prefix)}
    finally:
        await admin.close()


async def test_ensure_topics_creates_every_topic_with_the_configured_partitions(settings: Settings) -> None:
    wanted = default_topics(settings)
    assert len(wanted) == 9 and set(wanted.values()) == {settings.partitions}
    assert sorted(await ensure_topics(settings, wanted)) == sorted(wanted)
    assert await topic_partitions(settings) == wanted
    assert await ensure_topics(settings, wanted) == []  # idempotent: a restart creates nothing


async def test_ensure_topics_names_a_topic_with_another_partition_count(settings: Settings) -> None:
    alerts, internal = settings.topic("city.alerts"), settings.topic("cityorder.internal")
    await ensure_topics(settings, {alerts: 2})
    with pytest.raises(TopicMismatch) as e:
        await ensure_topics(settings, {internal: 4, alerts: 4})
    assert e.value.mismatches == [Mismatch(alerts, found=2, wanted=4)]
    message = str(e.value)
    assert f"topic {alerts!r} has 2 partitions but cityorder wants 4" in message
    assert "CITYORDER_PARTITIONS=2" in message and "recreate" in message
    # the missing topic of the same call was still created, with the wanted count
    assert await topic_partitions(settings) == {alerts: 2, internal: 4}


async def test_ensure_topics_creates_concurrently_without_conflict(settings: Settings) -> None:
    wanted = default_topics(settings)
    created = await asyncio.gather(*(ensure_topics(settings, wanted) for _ in range(3)))
    assert sorted(name for names in created for name in names) == sorted(wanted)  # each created once
    assert await topic_partitions(settings) == wanted


async def test_true_end_offsets_of_empty_partitions_are_zero(settings: Settings) -> None:
    topic = settings.topic("city.alerts.deadletter")
    await ensure_topics(settings, {topic: 2})
    tps = [TopicPartition(topic, 0), TopicPartition(topic, 1)]
    assert await true_end_offsets(settings, tps) == dict.fromkeys(tps, 0)


async def test_log_start_is_the_first_record_on_this_broker_too(settings: Settings) -> None:
    """What an evaluator that finds a gap goes back to: Tansu's ListOffsets(latest) is off
    (above), ListOffsets(earliest) must not be, or real records would be skipped."""
    topic = settings.topic("city.alerts")
    await ensure_topics(settings, {topic: 2})
    tps = [TP(topic, 0), TP(topic, 1)]
    assert await log_start_offsets(settings, tps) == dict.fromkeys(tps, 0)
    # none asked (Faust asks for its standby partitions' so): an empty answer, no CancelledError
    assert await log_start_offsets(settings, []) == {} == await true_end_offsets(settings, [])
    producer = AIOKafkaProducer(**settings.aiokafka_kwargs())
    await producer.start()
    try:
        await send_one_batch(producer, topic, 1, 5)
        await producer.send_and_wait(topic, b"more", partition=1)
    finally:
        await producer.stop()
    assert await log_start_offsets(settings, tps) == dict.fromkeys(tps, 0)


async def test_log_start_is_the_first_record_when_producers_race(settings: Settings) -> None:
    """Tansu answers ListOffsets(earliest) with the batch stored first, by time, and batches of
    producers writing at once are stored out of offset order: it named offset 30 for a partition
    whose records start at 0 (the first of the runs below, on a fresh broker, twice of twice),
    and in a random kill run a worker took an internal partition's first two records for
    deleted. ``log_start_offsets`` fetches from 0 instead: it must say 0 every time."""
    misread = 0
    for n in range(10):
        topic = settings.topic("city.alerts") + f"-race{n}"
        await ensure_topics(settings, {topic: 1})
        producers = [AIOKafkaProducer(**settings.aiokafka_kwargs(), linger_ms=0) for _ in range(4)]
        for p in producers:
            await p.start()
        try:
            await asyncio.gather(*[await p.send(topic, b"x" * 100, partition=0)
                                   for _ in range(30) for p in producers])
        finally:
            for p in producers:
                await p.stop()
        tp = TopicPartition(topic, 0)
        probe = AIOKafkaConsumer(**settings.aiokafka_kwargs())
        await probe.start()
        try:
            misread += (await probe.beginning_offsets([tp]))[tp] != 0
        finally:
            await probe.stop()
        assert await log_start_offsets(settings, [tp]) == {tp: 0}, f"round {n}"
    print(f"Tansu's ListOffsets(earliest) was wrong in {misread} of 10 rounds")


async def test_ensure_topics_gives_up_on_an_unreachable_broker() -> None:
    settings = Settings.from_env({}, brokers=f"127.0.0.1:{free_port()}")
    started = time.monotonic()
    with pytest.raises(TopicsError, match="cannot reach the brokers"):
        await ensure_topics(settings, {"a": 1}, connect_timeout=1.0)
    assert time.monotonic() - started < 10


async def topic_configs(settings: Settings, names: list[str]) -> dict[str, dict[str, str]]:
    """Every configuration entry the broker reports for ``names``."""
    admin = AIOKafkaAdminClient(**settings.aiokafka_kwargs())
    await admin.start()
    try:
        responses = await admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, name) for name in names])
    finally:
        await admin.close()
    return {name: {e[0]: e[1] for e in entries}
            for response in responses for _, _, _, name, entries in response.resources}


async def test_input_and_internal_topics_take_records_above_the_contracts_limit(settings: Settings) -> None:
    """On a Kafka with its 1 MB default a record over the contract's 1 MiB would be refused to
    its producer and never become a ``too_large`` dead letter."""
    await ensure_topics(settings, default_topics(settings))
    wide = [settings.topic(t) for t in (*INPUT_TOPICS, "cityorder.internal")]
    outputs = [settings.topic(t) for t in ("city.alerts", "city.alerts.deadletter")]
    configs = await topic_configs(settings, wide + outputs)
    assert {name: configs[name].get(MAX_MESSAGE_BYTES) for name in wide} == \
        dict.fromkeys(wide, str(4 * 1024 * 1024))
    assert all(MAX_MESSAGE_BYTES not in configs[name] for name in outputs)   # the broker's default


async def test_an_existing_topic_with_a_smaller_record_limit_is_named(
        settings: Settings, caplog: pytest.LogCaptureFixture) -> None:
    """A topic created before this limit (or by hand) keeps its configuration: the operator is
    told what it costs and how to raise it."""
    sensor, camera = settings.topic("city.events.sensor"), settings.topic("city.events.camera")
    await ensure_topics(settings, {sensor: 1, camera: 1}, configs={sensor: {MAX_MESSAGE_BYTES: "1048588"}})
    with caplog.at_level(logging.WARNING, logger="streams.topics"):
        assert await ensure_topics(settings, {sensor: 1, camera: 1}) == []
    [warning] = [r.getMessage() for r in caplog.records if r.name == "streams.topics"]
    assert f"topic {sensor!r} takes records of at most 1,048,588 bytes" in warning
    assert f"--entity-name {sensor} --add-config max.message.bytes={MAX_RECORD_BYTES}" in warning


# -- what a worker asks of its broker -----------------------------------------------------------

def test_a_worker_starts_without_a_false_alarm_about_its_broker(settings: Settings, tmp_path: Path) -> None:
    """Every start used to log aiokafka's ``ERROR Unable to update metadata from []`` and "no
    broker answered" (the probe asked ingest's producer before ingest had started it), and
    ``/readyz`` said ``broker_answers: false`` for seconds while the broker was fine."""
    worker = Worker(settings, tmp_path / "worker.log")
    states: list[dict[str, Any]] = []
    try:
        ready_at = None
        deadline = time.monotonic() + 60
        while ready_at is None or time.monotonic() < ready_at + 5:   # two probes after ready
            assert time.monotonic() < deadline, worker.tail()
            assert worker.proc.poll() is None, worker.tail()
            state = worker.readyz()
            if state is not None:
                states.append(state)
                if state["ready"] and ready_at is None:
                    ready_at = time.monotonic()
            time.sleep(0.1)
    finally:
        worker.stop()
    log = worker.log_path.read_text(errors="replace")
    assert "[ERROR]" not in log and "[CRITICAL]" not in log, log
    assert "no broker answered" not in log, log
    assert all(s["broker_answers"] is not False for s in states), [s for s in states if not s["ready"]]
    first = next(i for i, s in enumerate(states) if s["ready"])
    assert all(s["ready"] for s in states[first:]), states[first:]


def test_an_oversized_record_from_simulate_becomes_a_too_large_dead_letter(settings: Settings,
                                                                         tmp_path: Path) -> None:
    """2.1 MB on an input topic: ``cityorder simulate`` sends it (its producer refused anything
    over 1 MB, and nothing after it went out), the broker takes it, the worker's ingest reads it
    and dead-letters it as ``too_large`` with its first 64 KiB; the record after it follows."""
    worker = Worker(settings, tmp_path / "worker.log")   # creates the topics, as in production
    try:
        worker.wait_ready()
        big = "x" * 2_100_000
        lines = [{"topic": "city.events.camera", "key": "cam-big", "raw": big},
                 {"topic": "city.events.camera", "key": "cam-big", "raw": "not json"}]
        stats = asyncio.run(simulate(settings, lines))
        assert stats.sent == 2
        dead = read_topic(settings, "city.alerts.deadletter", done=lambda m: len(m) >= 2, timeout=60,
                          quiet_s=1.0)
    finally:
        worker.stop()
    by_reason = {d["reason_code"]: d for d in dead}
    assert set(by_reason) == {"too_large", "bad_json"}, dead
    too_large = by_reason["too_large"]
    assert too_large["topic"] == settings.topic("city.events.camera") and too_large["key"] == "cam-big"
    assert too_large["truncated"] is True and len(too_large["payload"]) == 64 * 1024
    assert re.search(r"message is 2100000 bytes", too_large["reason"]), too_large["reason"]
    assert by_reason["bad_json"]["offset"] == too_large["offset"] + 1
