"""The time a human action carries: the timeline of the system that will apply it.

Feedback is input, and its ``at`` is its time (CONTRACTS.md, Time). A live worker runs on the
wall clock (``wall`` mode), so a person's "now" is the wall clock. A simulation, a backtest or
``cityorder dev`` runs on an **event clock**: each partition's clock is the newest input time it
has taken, the demo day's and not today's. ``cityorder feedback`` used to stamp the wall clock
into such a system: the partition's clock jumped two weeks, every level and deadline pending
there fired (~100 false openings, escalations and overdues) and the 2,855 inputs after it were
late. So whatever writes feedback for a person (``cityorder feedback`` today, an ops console
tomorrow) asks this module which time to stamp: :func:`read_clock` finds it out from Kafka,
:meth:`PartitionClock.feedback_at` says what to stamp or why a given time is refused.

>>> clock = await read_clock(settings, "a-JY-0109-000e7b52bf486f18fc76")  # doctest: +SKIP
>>> clock.feedback_at(None, now_ms=now, reorder_window_ms=5_000,
...                   allowed_lateness_ms=60_000)                          # doctest: +SKIP

Everything comes from what is in Kafka, so it works against any running system, ``cityorder
dev`` included, with nothing but ``--brokers``: no setting says which clock a worker runs
(``cityorder dev`` sets it in its own process), and the worker publishes no clock of its own.

**The clock mode: from ``city.alerts``, ``at`` against ``emitted_at``.** Every alert message
carries both the engine's timeline (``at``: its progress when the transition happened) and the
wall clock when it was produced (``emitted_at``). A wall-clock engine's progress trails the
wall clock by its reorder window and the delivery delay, seconds (tens after a restart applies
a checkpoint interval again); an event-clock engine's is wherever its input's times are, days
back for the demo day or a recording. So the newest message on the alert's ``city.alerts``
partition is ``wall`` when the two are within :data:`WALL_SKEW_MS`, ``event`` otherwise. The
rule is the engine's own statement, and where it is wrong it does little harm: a ``wall`` worker
catching up a long backlog looks ``event`` and gets the newest input time of its grids, which
in a live city is about now; an ``event`` system within minutes of today looks ``wall`` and gets
now, which is then about its clock (and the engine refuses anything a day ahead anyway). Reading
``city.alerts`` is needed anyway: it shows that the alert exists (an unknown id is an error
here, not a dead letter later) and its newest ``at`` is a floor for its partition's progress.
Rejected alternatives: the internal log's parts carry their time and arrival too, but a
recording re-sent with its arrivals has both on the same old day, and the worker's settings
(``CITYORDER_CLOCK``) are not where the person typing the command is.

**The partition's event clock: from the tail of its internal partition.** The alert id holds
its grid (``a-GRID-<20 hex>``), and the grid's partition of ``cityorder.internal`` is
:func:`streams.partitioned.grid_partition`. An engine's clock is the newest input time it has
taken, or the newest producer tick that every source partition has sent; the internal records
are exactly its input (:func:`streams.codec.decode`), so the newest window of that partition
that holds parts gives the newest input time, and progress records give the ticks. Feedback
parts are left out: a feedback refused for being ahead (``future_timestamp``) stays in the log
without having moved the clock, and taken in it would make every later stamp as wrong. What is
read is a lower bound of the engine's clock when the new feedback is applied (the engine takes
all of that log before it), so the stamp is never ahead of it.

**What is stamped: the partition's progress**, its event clock minus the reorder window (never
below the newest ``at`` its messages show). Feedback at or before progress is applied as soon as
it is read (CONTRACTS.md: input behind progress is applied at once; feedback is never late).
Stamped with the clock itself it would wait until input moved the watermark past it, which after
a simulation's last input never happens. And since it is not ahead of the clock it moves nothing.

**What is refused.** The engine refuses ``event``-mode feedback more than a day ahead of its
partition's clock (``rules.engine.FEEDBACK_AHEAD_MS``). A person acting now on a running system
has no reason to be ahead of it at all, so a given ``--at`` is refused here already when it is
more than the allowed lateness ahead of the clock read: beyond that it would make input still
to come late. In ``wall`` mode the bound is ingest's: 5 minutes ahead of the wall clock.

**Cost.** Partitions are read backwards from their end in windows growing fourfold: the alert's
``city.alerts`` partition (the one Kafka's default partitioner gives its id; the others only if
it is not there) back to the alert's newest message, and the internal partition back to its
newest input (a window or two while input flows). So the cost grows with the messages since the
alert last changed, not with the topic, and all of it is bounded by :data:`TIMEOUT_S`.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, timedelta, timezone, tzinfo
from typing import Any, Final, Literal

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError
from aiokafka.structs import ConsumerRecord

from models.timestamps import format_timestamp_ms, parse_timestamp_ms
from models.vocabulary import ALERTS_TOPIC
from rules.engine import format_span
from rules.ingest import FUTURE_LIMIT_MS
from streams.codec import Batch, decode
from streams.partitioned import grid_partition, source_keys
from streams.settings import INTERNAL_TOPIC, Settings
from streams.topics import log_start_offsets, quiet_bootstrap, true_end_offsets, unreachable

Mode = Literal["wall", "event"]

ALERT_ID: Final = re.compile(r"a-([A-Za-z0-9._-]{1,64})-[0-9a-f]{20}")
"""CONTRACTS.md, Cases: ``a-`` + grid id + ``-`` + 20 lowercase hex digits."""

WALL_SKEW_MS: Final = 10 * 60_000
"""Most that a wall-clock engine's ``at`` is seen apart from the ``emitted_at`` of the same
message: its reorder window and delivery delay are seconds, a restart re-applies at most a
checkpoint interval (30 s). Ten minutes is far from both that and any simulated day."""

FIRST_WINDOW: Final = 64
"""Records read first from the end of a partition; each further window is four times larger."""
MAX_INTERNAL_RECORDS: Final = 100_000
"""Most records read back from an internal partition to find input parts. The newest record
holds some while input flows; an idle worker writes a small progress record a second, so this
covers a day of idleness, beyond which ``city.alerts`` gives the floor alone."""
TIMEOUT_S: Final = 30.0


class FeedbackClockError(Exception):
    """Why no time can be stamped, in a sentence for the person who asked (what to do included)."""


def grid_of(alert_id: str) -> str:
    """The grid an alert belongs to, read from its id (the contract puts it there so that
    feedback reaches the alert's partition without a lookup)."""
    m = ALERT_ID.fullmatch(alert_id)
    if m is None:
        raise FeedbackClockError(
            f"{alert_id!r} is not an alert id: an alert id is 'a-', the grid id, '-' and 20 "
            "lowercase hex digits, as city.alerts and `cityorder tail` show it "
            "(e.g. a-JY-0109-000e7b52bf486f18fc76)")
    return m.group(1)


def mode_of(at_ms: int, emitted_at_ms: int) -> Mode:
    """The clock mode one alert message shows: ``wall`` if its timeline is the wall clock's."""
    return "wall" if abs(emitted_at_ms - at_ms) <= WALL_SKEW_MS else "event"


def event_clock_of(batches: Iterable[Batch], sources: Sequence[str]) -> int | None:
    """What internal records (of one partition, oldest first) show of its engine's event
    clock: the newest time of their input parts (not feedback: see the module docstring), or
    the newest producer tick if every source partition of ``sources`` has sent one and the
    least of them is later. None if they show neither."""
    newest: int | None = None
    ticks: dict[str, int] = {}
    for batch in batches:
        for part in batch.parts:
            if part.feedback is None and (newest is None or part.time > newest):
                newest = part.time
        for source, (tick, _arrival) in (batch.ticks or {}).items():
            ticks[source] = max(tick, ticks.get(source, tick))
    if sources and all(s in ticks for s in sources):
        least = min(ticks[s] for s in sources)
        newest = least if newest is None else max(newest, least)
    return newest


@dataclass(frozen=True, slots=True)
class AlertMessage:
    """The fields of a ``city.alerts`` message this module reads."""

    alert_id: str
    grid_id: str
    version: int
    status: str
    at: int
    emitted_at: int
    tz: tzinfo

    @classmethod
    def parse(cls, value: bytes | None) -> AlertMessage | None:
        """None for a message that is not a readable alert (this reads, it does not judge)."""
        try:
            obj = orjson.loads(value or b"")
            at_text = obj["at"]
            return cls(str(obj["alert_id"]), str(obj["grid_id"]), int(obj["version"]),
                       str(obj["status"]), parse_timestamp_ms(at_text),
                       parse_timestamp_ms(obj["emitted_at"]), _offset_of(at_text))
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            return None


def _offset_of(text: str) -> tzinfo:
    """The UTC offset an RFC 3339 time is written in: stamps go out in the city's offset."""
    if text.endswith(("Z", "z")):
        return UTC
    sign = -1 if text[-6] == "-" else 1
    return timezone(sign * timedelta(hours=int(text[-5:-3]), minutes=int(text[-2:])))


@dataclass(frozen=True, slots=True)
class PartitionClock:
    """What Kafka shows of the clock of the partition that will apply feedback for one alert.

    ``clock``: ``event`` mode, the partition's event clock as the internal log shows it (a
    lower bound), None if the log shows no input; ``floor``: the newest ``at`` seen of the
    partition's alert messages, which its progress has reached.
    """

    alert_id: str
    grid_id: str
    partition: int
    mode: Mode
    clock: int | None
    floor: int
    status: str
    tz: tzinfo

    def format(self, ms: int) -> str:
        return format_timestamp_ms(ms, self.tz)

    @property
    def reference(self) -> int:
        """The partition's event clock is at least this."""
        return self.floor if self.clock is None else max(self.clock, self.floor)

    def stamp(self, *, now_ms: int, reorder_window_ms: int) -> int:
        """The ``at`` of an action taken now: the wall clock (``wall``), else the partition's
        progress, its clock minus the reorder window (module docstring)."""
        if self.mode == "wall":
            return now_ms
        return max(self.reference - reorder_window_ms, self.floor)

    def check(self, at_ms: int, *, now_ms: int, allowed_lateness_ms: int) -> None:
        """Refuse a given time that the system would refuse, or that would move its clock so
        far that input still to come is late (module docstring)."""
        if self.mode == "wall":
            if at_ms > now_ms + FUTURE_LIMIT_MS:
                raise FeedbackClockError(
                    f"--at {self.format(at_ms)} is {format_span(at_ms - now_ms)} ahead of the wall "
                    f"clock; the worker rejects feedback more than {format_span(FUTURE_LIMIT_MS)} "
                    f"ahead of its arrival (future_timestamp). Leave out --at to stamp now.")
            return
        ref = self.reference
        if at_ms > ref + allowed_lateness_ms:
            raise FeedbackClockError(
                f"--at {self.format(at_ms)} is {format_span(at_ms - ref)} ahead of the event clock "
                f"of partition {self.partition} (grid {self.grid_id}), which is at "
                f"{self.format(ref)} or later. This system runs on an event clock (a "
                f"simulation, a backtest or `cityorder dev`): feedback more than the allowed "
                f"lateness ({format_span(allowed_lateness_ms)}) ahead of it would move the clock "
                f"and make the input still to come late. Leave out --at to stamp the partition's "
                f"current time, or give a time no later than {self.format(ref + allowed_lateness_ms)}.")

    def feedback_at(self, at_ms: int | None, *, now_ms: int, reorder_window_ms: int,
                    allowed_lateness_ms: int) -> int:
        """``at_ms`` if given and acceptable (else :class:`FeedbackClockError`), else
        :meth:`stamp`."""
        if at_ms is None:
            return self.stamp(now_ms=now_ms, reorder_window_ms=reorder_window_ms)
        self.check(at_ms, now_ms=now_ms, allowed_lateness_ms=allowed_lateness_ms)
        return at_ms

    def describe(self) -> str:
        """Which clock, for the person who sent the feedback."""
        if self.mode == "wall":
            return "wall clock"
        return f"event clock of partition {self.partition}"


async def read_clock(settings: Settings, alert_id: str, *,
                     timeout_s: float = TIMEOUT_S) -> PartitionClock:
    """The clock that will apply feedback for ``alert_id``, read from ``city.alerts`` and
    ``cityorder.internal`` (module docstring). :class:`FeedbackClockError` when the id is not
    an alert id, the brokers do not answer, or no such alert was ever produced."""
    grid_id = grid_of(alert_id)
    alerts_topic, internal_topic = settings.topic(ALERTS_TOPIC), settings.topic(INTERNAL_TOPIC)
    brokers = ", ".join(settings.brokers)
    counts = await _partition_counts(settings, [alerts_topic, internal_topic], timeout_s)
    if not counts.get(alerts_topic):
        raise FeedbackClockError(
            f"there is no topic {alerts_topic!r} at {brokers}: no worker has run there with "
            f"this topic prefix ({settings.topic_prefix or 'none'}); check --brokers and "
            f"--topic-prefix")
    consumer = AIOKafkaConsumer(**settings.aiokafka_kwargs(), client_id="cityorder-feedback-clock",
                                enable_auto_commit=False, auto_offset_reset="earliest",
                                fetch_max_wait_ms=100)
    try:
        with quiet_bootstrap():
            await asyncio.wait_for(consumer.start(), timeout_s)
    except (KafkaError, OSError, TimeoutError) as e:
        raise FeedbackClockError(unreachable(settings, e)) from None
    try:
        reader = _Reader(settings, consumer, time.monotonic() + timeout_s)
        found = await reader.find_alert(alerts_topic, counts[alerts_topic], alert_id)
        if found is None:
            raise FeedbackClockError(
                f"no alert {alert_id} in {alerts_topic} at {brokers} ({reader.read:,} messages "
                f"read): check the id (`cityorder tail --from-beginning` lists them) and that "
                f"--brokers and --topic-prefix name the system that produced it")
        latest, newest, floors = found
        partitions = counts.get(internal_topic) or counts[alerts_topic]
        partition = grid_partition(grid_id, partitions)
        mode = mode_of(newest.at, newest.emitted_at)
        floor = max([latest.at] + [m.at for m in floors
                                   if grid_partition(m.grid_id, partitions) == partition])
        clock = None
        if mode == "event" and counts.get(internal_topic):
            batches = await reader.input_tail(TopicPartition(internal_topic, partition))
            clock = event_clock_of(batches, source_keys(partitions))
        return PartitionClock(alert_id, grid_id, partition, mode, clock, floor, latest.status,
                              latest.tz)
    except KafkaError as e:
        raise FeedbackClockError(f"reading {alerts_topic} and {internal_topic} at {brokers} "
                                 f"failed: {e!r}") from None
    finally:
        await consumer.stop()


async def _partition_counts(settings: Settings, names: Sequence[str],
                            timeout_s: float) -> dict[str, int]:
    """Partition counts of those of ``names`` that exist. An all-topics metadata request, as
    ``streams.topics`` makes: asking for a topic by name may create it on some brokers."""
    admin = AIOKafkaAdminClient(**settings.aiokafka_kwargs(), client_id="cityorder-feedback-clock",
                                request_timeout_ms=int(timeout_s * 1000))
    try:
        with quiet_bootstrap():
            await asyncio.wait_for(admin.start(), timeout_s)
        topics: list[dict[str, Any]] = await asyncio.wait_for(admin.describe_topics(), timeout_s)
    except (KafkaError, OSError, TimeoutError) as e:
        raise FeedbackClockError(unreachable(settings, e)) from None
    finally:
        await admin.close()
    return {t["topic"]: len(t["partitions"]) for t in topics
            if t["topic"] in names and t["error_code"] == 0 and t["partitions"]}


class _Reader:
    """Reads partitions from their end backwards, in windows of growing size."""

    def __init__(self, settings: Settings, consumer: AIOKafkaConsumer, deadline: float) -> None:
        self.settings = settings
        self.consumer = consumer
        self.deadline = deadline
        self.read = 0

    async def bounds(self, tps: list[TopicPartition]) -> dict[TopicPartition, tuple[int, int]]:
        """(first offset, end offset) of each partition; both exact on Tansu too."""
        ends = await true_end_offsets(self.settings, tps,
                                      timeout=max(1.0, self.deadline - time.monotonic()))
        starts = await log_start_offsets(self.settings, tps,
                                         timeout=max(1.0, self.deadline - time.monotonic()))
        return {tp: (starts[tp], ends[tp]) for tp in tps}

    async def window(self, tp: TopicPartition, lo: int, hi: int) -> list[ConsumerRecord[Any, Any]]:
        """The records of offsets [lo, hi), in order."""
        consumer = self.consumer
        consumer.assign([tp])
        consumer.seek(tp, lo)
        out: list[ConsumerRecord[Any, Any]] = []
        while await consumer.position(tp) < hi:
            if time.monotonic() > self.deadline:
                raise FeedbackClockError(f"reading {tp.topic} partition {tp.partition} took longer "
                                         f"than {TIMEOUT_S:g} s; the brokers may be overloaded")
            batch = await consumer.getmany(tp, timeout_ms=500)
            records = [r for r in batch.get(tp, []) if lo <= r.offset < hi]
            self.read += len(records)
            out += records
        return out

    async def backwards(self, tp: TopicPartition, first: int, end: int,
                        limit: int | None = None) -> AsyncIterator[list[ConsumerRecord[Any, Any]]]:
        """Windows of ``tp`` from the end back to ``first`` (at most ``limit`` records), newest
        window first, each in offset order."""
        hi, size, taken = end, FIRST_WINDOW, 0
        while hi > first and (limit is None or taken < limit):
            lo = max(first, hi - size)
            yield await self.window(tp, lo, hi)
            taken += hi - lo
            hi, size = lo, size * 4

    async def find_alert(self, topic: str, partitions: int, alert_id: str
                         ) -> tuple[AlertMessage, AlertMessage, list[AlertMessage]] | None:
        """The alert's newest message, the newest message of the partition it is on, and the
        other messages read before it was found; None if no partition holds it. The partition
        Kafka's default partitioner gives its key (``grid_partition`` is that function) first:
        the worker produces alerts keyed by id and leaves the partition to the client."""
        home = grid_partition(alert_id, partitions)
        key = alert_id.encode()
        order = [home] + [p for p in range(partitions) if p != home]
        tps = [TopicPartition(topic, p) for p in order]
        bounds = await self.bounds(tps)
        for tp in tps:
            newest: AlertMessage | None = None
            seen: list[AlertMessage] = []
            async for records in self.backwards(tp, *bounds[tp]):
                for r in reversed(records):
                    if newest is None:
                        newest = AlertMessage.parse(r.value)
                    if r.key == key and (msg := AlertMessage.parse(r.value)) is not None:
                        return msg, newest or msg, seen
                    if len(seen) < FIRST_WINDOW and (msg := AlertMessage.parse(r.value)) is not None:
                        seen.append(msg)
        return None

    async def input_tail(self, tp: TopicPartition) -> list[Batch]:
        """The newest records of an internal partition, oldest first, back to the newest window
        that holds input parts (or :data:`MAX_INTERNAL_RECORDS`); unreadable ones left out."""
        first, end = (await self.bounds([tp]))[tp]
        out: list[Batch] = []
        async for records in self.backwards(tp, first, end, MAX_INTERNAL_RECORDS):
            batches = []
            for r in records:
                try:
                    batches.append(decode(r.value or b""))
                except ValueError:
                    continue
            out = batches + out
            if any(p.feedback is None for b in batches for p in b.parts):
                break
        return out
