"""Produce replay-file lines (RULES.md) to Kafka: the demo city, a recording, or a load test.

Each line becomes one record on its topic with its key; a ``tick`` line becomes an empty
record with the ``cityorder-tick`` header on every partition of every input topic (an
event-mode worker ticks to the least tick over all source partitions, so the tick must reach
them all, after the input before it). The input ends with such a tick at the last input's
time + ``reorder_window`` unless it ends with one already, so an event-mode worker applies
everything and fires the timers due by then (CONTRACTS.md, Time).

Pacing: ``rate`` (records per second) or ``speedup`` (event time runs that many times faster
than the wall clock), or neither: as fast as the broker takes them. Record timestamps are the
moment of sending (the arrival a wall-mode worker sees), or, with ``keep_arrival``, a line's
own ``arrival`` (to re-send a recording with its original timing). With ``strict_order``
(the default) they also come after every record already in the input topics: at full speed
stamps run ahead of the wall clock (one millisecond a record), and a second run started soon
after a first would otherwise stamp its records before the first run's last ones, and a
worker would merge the two runs into one another.

Progress markers: every thousand records or 50 ms (every second while idle), an empty record
with the ``cityorder-progress`` header goes to every source partition, stamped after all sent
before it. An ``event``-mode worker merges the source partitions by stamp and must know when a
partition that brings nothing new is complete: the marker says so. They are not replay lines
and are not recorded.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError

from models.timestamps import format_timestamp_ms, parse_input_timestamp_ms
from rules.replay import parse_line
from streams.partitioned import PROGRESS_HEADER, TICK_HEADER
from streams.settings import INPUT_TOPICS, Settings
from streams.topics import start_client

IN_FLIGHT = 2_000
#: Progress markers: after this many records, or this long after the last record...
MARK_EVERY, MARK_INTERVAL_S = 1_000, 0.05
#: ... and this often while nothing is sent.
IDLE_MARK_INTERVAL_S = 1.0

log = logging.getLogger(__name__)


@dataclass(slots=True)
class SimStats:
    sent: int = 0
    ticks: int = 0
    failed: int = 0
    last_time: int | None = None
    by_topic: dict[str, int] = field(default_factory=dict)


def line_time(obj: dict[str, Any]) -> int | None:
    """A replay line's time on the event timeline: a tick's, else its value's observed_at/at;
    None if it has none, or one outside the input range (such a message is sent as it is, to
    become a dead letter, and paces nothing: a reading dated 0001-01-01 stopped a simulation
    with OverflowError, one dated 9999 would have made it wait for ever)."""
    try:
        if "tick" in obj:
            return parse_input_timestamp_ms(obj["tick"])
        value = obj.get("value")
        if isinstance(value, dict):
            text = value.get("observed_at") or value.get("at")
            return parse_input_timestamp_ms(text) if isinstance(text, str) else None
    except ValueError:
        return None
    return None


class Pacer:
    """Sleeps so that records go out at ``rate`` per second or at ``speedup`` × event time."""

    def __init__(self, rate: float | None, speedup: float | None) -> None:
        self.rate = rate
        self.speedup = speedup
        self.start = time.monotonic()
        self.first_t: int | None = None
        self.n = 0

    def delay(self, t: int | None) -> float:
        """Seconds until the next record (event time ``t``) is due; the caller counts it sent
        (``n += 1``) once it goes."""
        if self.rate:
            due = self.start + (self.n + 1) / self.rate
        elif self.speedup and t is not None:
            if self.first_t is None:
                self.first_t = t
            due = self.start + (t - self.first_t) / 1000 / self.speedup
        else:
            return 0.0
        return due - time.monotonic()


async def simulate(settings: Settings, lines: Iterable[dict[str, Any]], *, rate: float | None = None,
                   speedup: float | None = None, duration_s: float | None = None,
                   keep_arrival: bool = False, strict_order: bool = True, end_tick: bool = True,
                   reorder_window_ms: int = 5_000,
                   on_sent: Callable[[SimStats], None] | None = None,
                   record: Callable[[dict[str, Any]], None] | None = None) -> SimStats:
    """Send ``lines``; returns what was sent. ``on_sent`` is called about once a second.

    ``strict_order`` gives every record a timestamp one millisecond or more after the previous
    one: a worker merges source partitions by timestamp, and records sent within one
    millisecond could otherwise be merged in another order than the lines (at full speed a
    millisecond holds seconds of event time). Off for load tests at a fixed rate in wall
    mode, where stamps must stay on the wall clock."""
    producer = AIOKafkaProducer(**settings.producer_kwargs(), client_id="cityorder-simulate",
                                acks="all", linger_ms=5, max_batch_size=512 * 1024,
                                max_request_size=settings.max_record_bytes)
    await start_client(producer, settings)
    stats = SimStats()
    pacer = Pacer(rate, speedup)
    marks = _Marks(producer, settings)
    pending: list[asyncio.Future[Any]] = []
    started = last_report = time.monotonic()
    ended_with_tick = False
    last_stamp = await newest_stamp(settings) if strict_order and not keep_arrival else 0

    def next_stamp(arrival: int | None = None) -> int:
        """The next record's timestamp: the moment of sending (or the line's own arrival),
        after every stamp before it when ``strict_order`` (ticks and marks always: they
        promise something about what was sent before them)."""
        nonlocal last_stamp
        if keep_arrival:
            stamp = arrival if arrival is not None else last_stamp + 1
        else:
            stamp = int(time.time() * 1000)
        if strict_order or arrival is None:
            stamp = max(stamp, last_stamp + 1)
        last_stamp = max(last_stamp, stamp)
        return stamp

    try:
        for obj in lines:
            if duration_s is not None and time.monotonic() - started >= duration_s:
                break
            t = line_time(obj)
            while (delay := pacer.delay(t)) > 0.001:
                await asyncio.sleep(min(delay, MARK_INTERVAL_S))
                if marks.due():
                    pending += await marks.send(next_stamp())
            pacer.n += 1
            if "tick" in obj:
                if t is None:   # a replay refuses it as a malformed line: not sent, counted
                    stats.failed += 1
                    log.warning("simulate: tick %r is not a time in the input range; not sent",
                                obj["tick"])
                    continue
                pending += await _send_tick(producer, settings, t, next_stamp())
                marks.sent()
                stats.ticks += 1
                ended_with_tick = True
            else:
                msg = parse_line(orjson.dumps(obj))
                assert msg.topic is not None
                try:
                    pending.append(await producer.send(
                        settings.topic(msg.topic), msg.payload, key=msg.key.encode() if msg.key else None,
                        timestamp_ms=next_stamp(msg.arrival)))
                except KafkaError as e:
                    # refused before it left (e.g. larger than the producer may send): the
                    # rest still goes out, and the count says what did not
                    stats.failed += 1
                    log.warning("simulate: %s %s not sent: %s", msg.topic, msg.key, e)
                    continue
                stats.sent += 1
                stats.by_topic[msg.topic] = stats.by_topic.get(msg.topic, 0) + 1
                ended_with_tick = False
                marks.count()
            if t is not None:
                stats.last_time = t if stats.last_time is None else max(stats.last_time, t)
            if record is not None:
                record(obj)
            if marks.due():
                pending += await marks.send(next_stamp())
            if len(pending) >= IN_FLIGHT:
                await _settle(pending, stats)
            if on_sent is not None and time.monotonic() - last_report >= 1.0:
                on_sent(stats)
                last_report = time.monotonic()
        await _settle(pending, stats)
        if end_tick and not ended_with_tick and stats.last_time is not None:
            tick = {"tick": format_timestamp_ms(stats.last_time + reorder_window_ms, UTC)}
            await _settle(await _send_tick(producer, settings, stats.last_time + reorder_window_ms,
                                           next_stamp()), stats)
            stats.ticks += 1
            if record is not None:
                record(tick)
    finally:
        await producer.stop()
    if on_sent is not None:
        on_sent(stats)
    return stats


async def _settle(pending: list[asyncio.Future[Any]], stats: SimStats) -> None:
    """Wait for the records in flight; one the broker refused is counted in ``stats.failed``
    and logged, and the rest goes on (before, the first refusal stopped the whole run)."""
    results = await asyncio.gather(*pending, return_exceptions=True)
    pending.clear()
    errors = [r for r in results if isinstance(r, BaseException)]
    if errors:
        stats.failed += len(errors)
        log.warning("simulate: %d records refused by the broker (first: %r)", len(errors), errors[0])


class _Marks:
    """Progress markers (``PROGRESS_HEADER``): an empty record on every source partition,
    stamped after everything sent before it, every ``MARK_EVERY`` records or
    ``MARK_INTERVAL_S`` seconds. An ``event``-mode worker merges source partitions by stamp;
    a partition that has nothing new holds the others back until a record or a marker on it
    says it is complete up to there. Without them a worker took a partition that a fetch found
    at its end as complete, while this producer's next batch for it was still on its way."""

    def __init__(self, producer: AIOKafkaProducer, settings: Settings) -> None:
        self.producer = producer
        self.settings = settings
        self.since = 0
        self.last = time.monotonic()

    def count(self) -> None:
        self.since += 1

    def sent(self) -> None:
        """A tick went to every partition: it marks progress as well as a marker does."""
        self.since = 0
        self.last = time.monotonic()

    def due(self) -> bool:
        quiet = time.monotonic() - self.last
        return self.since >= MARK_EVERY or (self.since > 0 and quiet >= MARK_INTERVAL_S) \
            or quiet >= IDLE_MARK_INTERVAL_S

    async def send(self, stamp: int) -> list[asyncio.Future[Any]]:
        self.sent()
        return await _send_to_all(self.producer, self.settings, [(PROGRESS_HEADER, b"")], stamp)


async def _send_tick(producer: AIOKafkaProducer, settings: Settings, t: int,
                     stamp: int) -> list[asyncio.Future[Any]]:
    """``stamp``: the records' timestamp, never before the input sent ahead of the tick (a
    worker applies the tick once the input that arrived before it is applied)."""
    header = [(TICK_HEADER, format_timestamp_ms(t, UTC).encode())]
    return await _send_to_all(producer, settings, header, stamp)


async def _send_to_all(producer: AIOKafkaProducer, settings: Settings, headers: list[tuple[str, bytes]],
                       stamp: int) -> list[asyncio.Future[Any]]:
    """An empty record with ``headers`` on every partition of every input topic."""
    futures = []
    for name in INPUT_TOPICS:
        topic = settings.topic(name)
        for partition in sorted(await producer.partitions_for(topic)):
            futures.append(await producer.send(topic, b"", partition=partition, headers=headers,
                                               timestamp_ms=stamp))
    return futures


async def newest_stamp(settings: Settings, timeout_s: float = 10.0) -> int:
    """The newest timestamp among the last records of the input topics' partitions (0 when
    they are empty or do not exist yet)."""
    consumer = AIOKafkaConsumer(**settings.aiokafka_kwargs(), enable_auto_commit=False,
                                client_id="cityorder-simulate")
    await start_client(consumer, settings)
    try:
        await consumer.topics()          # metadata of every topic: partitions_for_topic reads it
        tps = [TopicPartition(settings.topic(name), p) for name in INPUT_TOPICS
               for p in sorted(consumer.partitions_for_topic(settings.topic(name)) or ())]
        if not tps:
            return 0
        consumer.assign(tps)
        ends = await consumer.end_offsets(tps)
        wanted = {tp for tp, end in ends.items() if end > 0}
        for tp in wanted:
            consumer.seek(tp, ends[tp] - 1)
        newest = 0
        deadline = time.monotonic() + timeout_s
        while wanted and time.monotonic() < deadline:
            batch = await consumer.getmany(*wanted, timeout_ms=200)
            for tp, records in batch.items():
                newest = max([newest, *(r.timestamp for r in records)])
                wanted.discard(tp)
        if wanted:
            raise KafkaError(f"could not read the last record of {sorted(map(str, wanted))} "
                             f"within {timeout_s:.0f} s")
        return newest
    finally:
        await consumer.stop()


def read_lines(path: Any) -> Iterator[dict[str, Any]]:
    """Lines of a replay file as objects (blank lines skipped)."""
    with open(path, "rb") as f:
        for text in f:
            if text.strip():
                yield orjson.loads(text)
