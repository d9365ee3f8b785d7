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
own ``arrival`` (to re-send a recording with its original timing).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer

from models.timestamps import format_timestamp_ms, parse_timestamp_ms
from rules.replay import parse_line
from streams.partitioned import TICK_HEADER
from streams.settings import INPUT_TOPICS, Settings

IN_FLIGHT = 2_000


@dataclass(slots=True)
class SimStats:
    sent: int = 0
    ticks: int = 0
    last_time: int | None = None
    by_topic: dict[str, int] = field(default_factory=dict)


def line_time(obj: dict[str, Any]) -> int | None:
    """A replay line's time on the event timeline: a tick's, else its value's observed_at/at."""
    try:
        if "tick" in obj:
            return parse_timestamp_ms(obj["tick"])
        value = obj.get("value")
        if isinstance(value, dict):
            text = value.get("observed_at") or value.get("at")
            return parse_timestamp_ms(text) if isinstance(text, str) else None
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

    async def wait(self, t: int | None) -> None:
        self.n += 1
        if self.rate:
            due = self.start + self.n / self.rate
        elif self.speedup and t is not None:
            if self.first_t is None:
                self.first_t = t
            due = self.start + (t - self.first_t) / 1000 / self.speedup
        else:
            return
        delay = due - time.monotonic()
        if delay > 0.001:
            await asyncio.sleep(delay)


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
    producer = AIOKafkaProducer(**settings.aiokafka_kwargs(), client_id="cityorder-simulate",
                                acks="all", linger_ms=5, max_batch_size=512 * 1024,
                                max_request_size=settings.max_record_bytes)
    await producer.start()
    stats = SimStats()
    pacer = Pacer(rate, speedup)
    pending: list[asyncio.Future[Any]] = []
    started = last_report = time.monotonic()
    ended_with_tick = False
    last_stamp = 0
    try:
        for obj in lines:
            if duration_s is not None and time.monotonic() - started >= duration_s:
                break
            t = line_time(obj)
            await pacer.wait(t)
            if "tick" in obj:
                assert t is not None
                last_stamp = max(int(time.time() * 1000), last_stamp + 1)
                pending += await _send_tick(producer, settings, t, last_stamp)
                stats.ticks += 1
                ended_with_tick = True
            else:
                msg = parse_line(orjson.dumps(obj))
                assert msg.topic is not None
                stamp = msg.arrival if keep_arrival and msg.arrival is not None else int(time.time() * 1000)
                if strict_order:
                    stamp = last_stamp = max(stamp, last_stamp + 1)
                pending.append(await producer.send(
                    settings.topic(msg.topic), msg.payload, key=msg.key.encode() if msg.key else None,
                    timestamp_ms=stamp))
                stats.sent += 1
                stats.by_topic[msg.topic] = stats.by_topic.get(msg.topic, 0) + 1
                ended_with_tick = False
            if t is not None:
                stats.last_time = t if stats.last_time is None else max(stats.last_time, t)
            if record is not None:
                record(obj)
            if len(pending) >= IN_FLIGHT:
                await asyncio.gather(*pending)
                pending.clear()
            if on_sent is not None and time.monotonic() - last_report >= 1.0:
                on_sent(stats)
                last_report = time.monotonic()
        await asyncio.gather(*pending)
        pending.clear()
        if end_tick and not ended_with_tick and stats.last_time is not None:
            tick = {"tick": format_timestamp_ms(stats.last_time + reorder_window_ms, UTC)}
            last_stamp = max(int(time.time() * 1000), last_stamp + 1)
            await asyncio.gather(*await _send_tick(producer, settings, stats.last_time + reorder_window_ms,
                                                   last_stamp))
            stats.ticks += 1
            if record is not None:
                record(tick)
    finally:
        await producer.stop()
    if on_sent is not None:
        on_sent(stats)
    return stats


async def _send_tick(producer: AIOKafkaProducer, settings: Settings, t: int,
                     stamp: int) -> list[asyncio.Future[Any]]:
    """``stamp``: the records' timestamp, never before the input sent ahead of the tick (a
    worker applies the tick once the input that arrived before it is applied)."""
    header = [(TICK_HEADER, format_timestamp_ms(t, UTC).encode())]
    futures = []
    for name in INPUT_TOPICS:
        topic = settings.topic(name)
        for partition in sorted(await producer.partitions_for(topic)):
            futures.append(await producer.send(topic, b"", partition=partition, headers=header,
                                               timestamp_ms=stamp))
    return futures


def read_lines(path: Any) -> Iterator[dict[str, Any]]:
    """Lines of a replay file as objects (blank lines skipped)."""
    with open(path, "rb") as f:
        for text in f:
            if text.strip():
                yield orjson.loads(text)
