"""The Faust app: the evaluate agent with its state table, the ingest loop, the web endpoints.

One internal record per batch and grid partition reaches the ``evaluate`` agent; it feeds the
partition's engine (``PartitionEvaluator``) and produces the transitions and dead letters.
Every checkpoint interval (``CITYORDER_CHECKPOINT_INTERVAL``) per partition, once that output
is acknowledged, it writes what changed to the ``state`` table (a changelog topic makes it
survive the worker) and only then acknowledges the records, so Faust commits no offset a
checkpoint does not cover. A worker that
gets a partition (start, restart, rebalance) recovers the table first, loads the partition's
engine from it on the partition's first record, and applies again what came after the
checkpoint (the same output again, which consumers de-duplicate). A record that arrives past
a gap is not applied: Faust drops what it fetched during a rebalance and seeks back only to a
committed offset, so a partition whose last owner died before its first checkpoint would
otherwise go on from wherever the dropped fetch ended; the partition is fetched again from
the first record it lacks.

Faust needs four adjustments for this broker and this workload, made in the transport
classes below rather than by patching Faust:

- the fetch wait is 50 ms instead of Faust's fixed 1,500 ms: Tansu answers a fetch only
  after about half its wait even when records are there (measured: 1,500 ms put ~1.3 s of
  latency on every record; 100 ms adds 25 ms on average, up to 52), Kafka answers at once;
- "the end of a partition" for table recovery is read with :func:`true_end_offsets`: Tansu's
  ``ListOffsets`` reports the last batch's base offset + 1, and a recovery that stops there
  loses the end of the changelog; its beginning, with :func:`log_start_offsets`: Tansu's
  earliest offset is the batch stored first, which is not always the lowest;
- after a rebalance, internal partitions without a committed offset are fetched again from
  their beginning (Faust drops what it fetched meanwhile and seeks back to committed offsets
  only);
- topics are never declared by Faust (``topic_allow_declare=False``): ``ensure_topics`` creates
  them with the configured partitions before the worker starts.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping
from typing import Any, TypeVar, cast

import faust
import orjson
from aiokafka.client import AIOKafkaClient
from aiokafka.errors import IllegalStateError, KafkaError
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP
from mode.supervisors import CrashingSupervisor

from models.outputs import dead_letter
from models.vocabulary import ALERTS_TOPIC, DEADLETTER_TOPIC
from rules import faults
from rules.citymap import CityMap
from rules.pack import RuleSet
from rules.timers import timer_key
from streams.codec import Batch, decode
from streams.ingest_loop import FETCH_WAIT_MS, IngestLoop, wall_ms
from streams.metrics import CONTENT_TYPE, EngineCollector, Metrics, StateCollector, scrape
from streams.partitioned import (
    Cut,
    Outgoing,
    PartFault,
    PartitionEvaluator,
    Quarantine,
    Step,
    part_key,
    source_keys,
)
from streams.settings import INTERNAL_TOPIC, Settings
from streams.statelog import Record, encode_journal
from streams.topics import log_start_offsets, true_end_offsets
from streams.tuning import WorkerCollector

log = logging.getLogger(__name__)
T = TypeVar("T")

STATE_TABLE = "state"
#: How often owned partitions not yet loaded are looked for (after an assignment).
LOAD_OWNED_INTERVAL_S = 0.2
#: Seconds after which a partition still past a gap is sought back to it again.
REWIND_RETRY_S = 1.0
#: How long a checkpoint's serialisation or write runs on the event loop before it lets
#: evaluation go on (one record's pickle or send may run past it: ~3 ms at most) ...
SLICE_S = 0.005
#: ... and how long it then rests, so that it takes at most a quarter of the loop. A busy
#: partition's checkpoint at 5,000 events/s is ~0.7 s of pickling and sending (12 MB); run
#: back to back, its slices left evaluation too little of the loop and of the machine: the
#: alerts' latency tail was that checkpoint (p99 234 ms, 108–176 ms resting; bench/README.md).
#: Not while something waits for the writes (a rebalance, a load: :meth:`Runtime._hurrying`).
REST_S = 3 * SLICE_S
#: Inputs applied and timers fired (~40 µs each) between two yields of the event loop in a
#: long evaluation: one internal record whose progress lets thousands of held inputs through
#: was one call, and the loop's lag up to 1–2.5 s while draining (bench/README.md, session 16).
RUN_STEPS = 128
#: How often the event loop's lag is sampled.
LOOP_PROBE_S = 0.1
#: The producer's batch per partition (Kafka's default is 16 KB). A send that finds its
#: partition's batch full waits for it to be acknowledged: a busy partition's checkpoint, 4,300
#: state records of ~3.4 KB, waited ~900 times and took 6 s to write, 0.6 s with this.
PRODUCER_BATCH_BYTES = 512 * 1024
#: How often the garbage collector runs (streams.tuning.WorkerCollector).
GC_INTERVAL_S = 0.25
#: How often, and how patiently, /readyz asks a broker for metadata.
PROBE_INTERVAL_S, PROBE_TIMEOUT_S = 2.0, 3.0


def _attempt(call: Callable[[], Step | None]) -> Step | PartFault | None:
    """The call's step, or the :class:`PartFault` it raised, returned outside the handler: a
    later fault's traceback is then its own."""
    try:
        return call()
    except PartFault as fault:
        return fault


class _Slices:
    """Long work on the event loop, cut into slices of :data:`SLICE_S`: ``await next()``
    between steps yields the loop once the current slice is used up, for :data:`REST_S`
    unless ``hurry()`` says something waits for the work."""

    def __init__(self, hurry: Callable[[], bool]) -> None:
        self.hurry = hurry
        self.until = time.perf_counter() + SLICE_S

    async def next(self) -> None:
        if time.perf_counter() >= self.until:
            await asyncio.sleep(0 if self.hurry() else REST_S)
            self.until = time.perf_counter() + SLICE_S


class BrokerProbe:
    """Whether a broker answers a metadata request, for ``/readyz``, with a client of its own.

    A broker that stops answering (a network partition, a hung process) fails no request
    before the 40 s request timeout, so without a probe ``/readyz`` would go on saying ready.
    Why its own client: the probe used to borrow ingest's producer, which ingest starts only
    once its consumer has joined its group (~5 s on Tansu). An aiokafka client that has not
    started knows no broker to ask, so every worker start logged ``ERROR Unable to update
    metadata from []`` (aiokafka's) and a warning that no broker answered, and ``/readyz`` said
    ``broker_answers: false`` for a few seconds, all while the broker was fine. This client
    bootstraps on the first probe, and again after a failed bootstrap, so a failure it
    reports is a broker that did not answer, not a client that never asked."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.client: AIOKafkaClient | None = None

    async def answers(self, timeout: float) -> bool:
        try:
            async with asyncio.timeout(timeout):
                if self.client is None:
                    client = AIOKafkaClient(**self.settings.aiokafka_kwargs(),
                                            client_id=f"{self.settings.app_id}-probe")
                    try:
                        await client.bootstrap()
                    except BaseException:
                        await client.close()
                        raise
                    self.client = client
                await self.client.fetch_all_metadata()
        except (TimeoutError, KafkaError, OSError):
            return False
        return True

    async def close(self) -> None:
        if self.client is not None:
            await self.client.close()
            self.client = None


class _ConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        consumer._fetch_max_wait_ms = FETCH_WAIT_MS
        return consumer

    async def _highwaters(self, partitions: list[TP]) -> Mapping[TP, int]:
        settings: Settings = self.app.cityorder_settings  # type: ignore[attr-defined]
        return await true_end_offsets(settings, partitions)

    async def seek_to_committed(self) -> Mapping[TP, int]:
        """Also rewind the internal partitions that have no committed offset.

        Faust drops the records it fetched while a rebalance or a recovery was under way and
        relies on this seek to fetch them again; aiokafka seeks only to committed offsets
        above 0, so a partition whose last owner died before its first checkpoint went on from
        where the dropped fetch ended (in most runs of the two-worker kill test, 7-15 records
        of such a partition were never applied). The evaluator catches any gap left (see
        ``Runtime._rewind``); this avoids one in the common case, while the flow is stopped."""
        committed = await super().seek_to_committed()
        settings: Settings = self.app.cityorder_settings  # type: ignore[attr-defined]
        internal = settings.topic(INTERNAL_TOPIC)
        fresh = [tp for tp, offset in committed.items() if not offset and tp.topic == internal]
        if fresh:
            await self.seek_wait(await log_start_offsets(settings, fresh))
        return committed

    async def earliest_offsets(self, *partitions: TP) -> Mapping[TP, int]:
        """Where table recovery starts reading a changelog partition: its first record, which
        Tansu's ListOffsets (earliest) may place too late (:func:`log_start_offsets`)."""
        settings: Settings = self.app.cityorder_settings  # type: ignore[attr-defined]
        return await log_start_offsets(settings, partitions)


class _Consumer(faust_aiokafka.Consumer):
    def _new_consumer_thread(self) -> faust_aiokafka.AIOKafkaConsumerThread:
        return _ConsumerThread(self, loop=self.loop, beacon=self.beacon)


class _Transport(faust_aiokafka.Transport):
    Consumer = _Consumer


class CityApp(faust.App):
    """A Faust app that uses the adjusted transport and carries the worker's settings."""

    cityorder_settings: Settings

    def _new_transport(self) -> Any:
        return _Transport(self.conf.broker_consumer, self)


class Runtime:
    """Everything one worker runs; ``app`` is what ``faust.Worker`` starts."""

    def __init__(self, settings: Settings, city: CityMap, rules: RuleSet, *,
                 on_alert: Callable[[dict[str, Any]], None] | None = None) -> None:
        self.settings = settings
        self.city = city
        self.rules = rules
        self.on_alert = on_alert
        self.metrics = Metrics()
        self.metrics.clock.labels(settings.clock).set(1)
        self.evaluators: dict[int, PartitionEvaluator] = {}
        self._unsent: dict[int, list[asyncio.Future[Any]]] = {}  # per partition: output not yet acked
        self._unacked: dict[int, list[tuple[Any, Any]]] = {}  # per partition: (stream, event)
        self._checkpointed_at: dict[int, float] = {}
        self._settling: dict[int, asyncio.Future[None]] = {}  # per partition: the last checkpoint
        self._rewound: dict[int, tuple[int, float]] = {}  # per partition: last seek back (offset, when)
        self._quarantine: dict[int, Quarantine] = {}  # per partition: what raised (see _isolate)
        self.failure: BaseException | None = None  # a checkpoint or output the broker refused
        self._interval = settings.checkpoint_interval_ms / 1000
        self._lock = asyncio.Lock()  # a checkpoint never runs in the middle of a record
        self._yielded_s = 0.0       # of the record being evaluated: time other work had the loop
        self._waiting = 0  # how many wait for checkpoints in flight (they rest no more)
        self._collector = WorkerCollector()
        #: None until the first probe has answered either way: a worker reports nothing about
        #: its broker before it has asked.
        self.broker_answers: bool | None = None
        self.probe = BrokerProbe(settings)
        self.sources = source_keys(settings.partitions)
        self.ingest = IngestLoop(settings, city, rules, self.metrics, view=self._frontier_view)
        def evaluators() -> list[PartitionEvaluator]:
            return list(self.evaluators.values())
        self.metrics.registry.register(EngineCollector(evaluators, lambda: self.ingest.ingest))
        self.metrics.registry.register(StateCollector(evaluators))
        session_s = settings.session_timeout_ms / 1000
        self.app = app = CityApp(
            settings.app_id, broker=list(settings.brokers), broker_credentials=settings.faust_credentials(),
            store=settings.faust_store, datadir=str(settings.state_dir),
            web_port=settings.web_port, web_bind="0.0.0.0", web_enabled=True,
            topic_partitions=settings.partitions, topic_replication_factor=settings.replication_factor,
            topic_allow_declare=False, topic_disable_leader=True,
            broker_session_timeout=session_s, broker_heartbeat_interval=max(session_s / 3, 0.1),
            broker_request_timeout=max(40.0, session_s + 5), broker_commit_interval=0.5,
            consumer_auto_offset_reset="earliest", producer_acks=-1, producer_linger=0.001,
            producer_compression_type=settings.compression_type, producer_max_batch_size=PRODUCER_BATCH_BYTES,
            stream_wait_empty=False, autodiscover=False, table_standby_replicas=0)
        app.cityorder_settings = settings
        self.internal_topic = app.topic(settings.topic(INTERNAL_TOPIC), key_type=bytes, value_type=bytes,
                                        key_serializer="raw", value_serializer="raw",
                                        partitions=settings.partitions)
        # bytes in, bytes out: Faust derives the "raw" codec from the types (not from a schema).
        self.table = app.Table(STATE_TABLE, partitions=settings.partitions, key_type=bytes, value_type=bytes)
        # A record that cannot be applied and written stops the worker (never skipped: the
        # default supervisor would restart the agent past it, its state and alerts lost).
        app.agent(self.internal_topic, name="evaluate",
                  supervisor_strategy=CrashingSupervisor)(self._evaluate)
        app.timer(self._interval / 2)(self._checkpoint_idle)
        app.timer(GC_INTERVAL_S)(self._collect_garbage)
        app.task(self._watch_broker)
        app.task(self._watch_loop)
        app.task(self._run_ingest)
        app.timer(LOAD_OWNED_INTERVAL_S)(self._load_owned)
        app.on_partitions_revoked.connect(self._on_revoked)
        app.page("/healthz")(self._healthz)
        app.page("/readyz")(self._readyz)
        app.page("/metrics")(self._metrics)

    @property
    def changelog_topic(self) -> str:
        return cast(str, self.table.changelog_topic.get_topic_name())

    # -- evaluate ------------------------------------------------------------------------------

    async def _evaluate(self, stream: Any) -> None:
        # Records are acknowledged (their offsets let through to Faust's commit) only once a
        # checkpoint covers them: a worker that dies is given them again by the broker.
        manual = stream.noack()
        async for event in manual.events():
            msg = event.message
            started = time.perf_counter()
            self._yielded_s = 0.0
            self.metrics.evaluate_delay.observe(max(0.0, time.time() - msg.timestamp))
            async with self._lock:
                if not await self._apply(msg.tp, msg.offset, event.value):
                    continue
                self._unacked.setdefault(msg.partition, []).append((manual, event))
                if time.monotonic() - self._checkpointed_at.get(msg.partition, 0.0) >= self._interval:
                    await self._checkpoint(msg.partition)
            self.metrics.evaluate_batch.observe(time.perf_counter() - started - self._yielded_s)

    async def _apply(self, tp: TP, offset: int, value: bytes) -> bool:
        """Apply one record; False for a stale one, left unacknowledged for its redelivery."""
        if self.failure is not None:
            raise self.failure
        partition = tp.partition
        # A record fetched before a rebalance can still reach the agent after it: of a
        # partition this worker no longer owns, or ahead of where the broker now redelivers
        # from. Applied, it would make output the partition's owner does not make.
        if tp not in self.app.consumer.assignment():
            log.warning("partition %d: record %d arrived after the partition was revoked; "
                        "left for its owner", partition, offset)
            self.metrics.stale_records.inc()
            return False
        ev = self.evaluators.get(partition)
        if ev is None:
            ev = await self._load(partition)
            log.info("partition %d: first record after loading: offset %d", partition, offset)
        if ev.ahead(offset):
            await self._rewind(tp, ev, offset)
            if ev.ahead(offset):
                self.metrics.stale_records.inc()
                return False
        try:
            batch = decode(value)
        except ValueError as e:
            if ev.process(offset, Batch()) is not None:   # applied as nothing: offsets stay contiguous
                dead = dead_letter(topic=self.settings.topic(INTERNAL_TOPIC), partition=partition,
                                   offset=offset, key=None, event_id=None, reason_code="invalid_field",
                                   reason=str(e), payload=value,
                                   received_at=self.city.calendar.format(wall_ms()))
                await self._send(partition, [Outgoing(DEADLETTER_TOPIC, None, orjson.dumps(dead))])
                self.metrics.dead(dead)
            return True
        step = _attempt(lambda: ev.process(offset, batch))
        if step is None:
            return True
        self.metrics.internal_records.labels("parts" if batch.parts else "progress").inc()
        while not isinstance(step, PartFault):
            for a in step.alerts:
                self.metrics.transition(a)
            for d in step.dead:
                self.metrics.dead(d)
            await self._send(partition, step.messages)
            if not ev.unfinished:
                return True
            # A record whose progress lets thousands of held inputs through is a long run: in
            # slices of RUN_STEPS, the loop's other work (ingest, fetching, /metrics) between.
            await self._give_way()
            step = _attempt(ev.resume)
        return await self._isolate(tp, offset, value, step)

    async def _isolate(self, tp: TP, offset: int, value: bytes, fault: PartFault) -> bool:
        """The last line of defence: the engine raised while applying input. That input's source
        record becomes a dead letter ``internal_error`` (its topic, partition and offset, the
        exception's type and message), counted like any dead letter; the traceback is logged
        once; the input is quarantined and the partition's evaluator rebuilt from its last
        checkpoint (the one in flight written first), which applies the records since again
        without it, so the state is as if it had never come. Their output is produced again,
        identical but for ``emitted_at`` (consumers de-duplicate on ``(alert_id, version)``).
        A fault while firing a timer is the timer's, not an input's: the timer is quarantined
        (the engine skips it from then on) and the internal record, applied again without it,
        is dead-lettered as the fault's place (with the record as payload); the same in
        ``cityorder replay``, which skips the timer and dead-letters no line. A fault in a tick
        with neither on the stack skips that record's ticks.

        Each partition isolates its own part: a message split over grids of two partitions
        whose both parts raise is dead-lettered by each (``cityorder replay`` dead-letters the
        line once and rolls back all its parts, also the parts that did not raise)."""
        partition = tp.partition
        quarantine = self._quarantine.setdefault(partition, Quarantine())
        part, now = fault.part, self.city.calendar.format(wall_ms())
        if part is not None:
            why = f"{fault} (raised while applying it: a bug in cityorder; it was left out and the " \
                  "partition's state is as before it)"
            known = part_key(part) in quarantine.inputs
            quarantine.inputs[part_key(part)] = part
            dead = dead_letter(topic=self.settings.topic(part.topic), partition=part.partition,
                               offset=part.offset, key=part.key, event_id=part.event_id,
                               reason_code="internal_error", reason=why, payload=part.raw or b"",
                               received_at=now)
            where = f"{part.topic} partition {part.partition} offset {part.offset} ({part.event_id})"
        else:
            timer = fault.timer
            if timer is not None:
                key = timer_key(timer)
                known = key in quarantine.timers
                quarantine.timers.add(key)
                what = faults.timer_name(timer, self.city.calendar.format)
                reason = f"{fault} (raised while firing {what}: a bug in cityorder; the timer " \
                         "is skipped from now on and this record applied again without it)"
            else:
                known = offset in quarantine.ticks
                quarantine.ticks.add(offset)
                what, reason = "timers", f"{why}; firing timers: the record's ticks are skipped"
            dead = dead_letter(topic=self.settings.topic(INTERNAL_TOPIC), partition=partition,
                               offset=offset, key=None, event_id=None, reason_code="internal_error",
                               reason=reason, payload=value, received_at=now)
            where = f"{what} at internal partition {partition} offset {offset}"
        if known:
            log.error("partition %d: %s raised again (%s)", partition, where, fault)
        else:
            log.error("partition %d: internal error applying %s; dead-lettered as internal_error, "
                      "rebuilding the partition from its checkpoint without it", partition, where,
                      exc_info=fault.error)
        await self._send(partition, [Outgoing(DEADLETTER_TOPIC, dead["key"], orjson.dumps(dead))])
        self.metrics.dead(dead)
        settling = self._settling.get(partition)
        if settling is not None:
            with self._hurrying():
                await asyncio.wait([settling])    # its failure, if any, is _settled's to report
        self._unacked.pop(partition, None)        # applied by the evaluator given up: redelivered
        del self.evaluators[partition]
        ev = await self._load(partition)
        if not ev.ahead(offset):
            return await self._apply(tp, offset, value)
        self._rewound.pop(partition, None)        # seek now, even if one was made a moment ago
        await self._rewind(tp, ev, offset)
        return False

    async def _rewind(self, tp: TP, ev: PartitionEvaluator, offset: int) -> None:
        """Fetch the partition again from its first record not applied.

        Records past the gap keep arriving for a while (fetched before the seek); they are not
        applied nor acknowledged and come again after it. The seek is repeated if the gap is
        still there a second later: records the fetcher had in hand when it was made can move
        Faust's read offset past the refetched ones, which it then drops. On a repeat the log
        start is checked too: records gone to retention are skipped, loudly, as there is
        nothing to fetch. A broker that does not answer leaves it to the next repeat."""
        want = ev.applied + 1
        last = self._rewound.get(tp.partition)
        if last is not None and last[0] == want and time.monotonic() - last[1] < REWIND_RETRY_S:
            return
        self._rewound[tp.partition] = (want, time.monotonic())
        try:
            if last is not None and last[0] == want:
                start = (await log_start_offsets(self.settings, [tp]))[tp]
                if start > want:
                    log.error("partition %d: records %d to %d are gone (retention) and were never "
                              "applied; going on from %d", tp.partition, want, start - 1, start)
                    ev.starts_at(start)
                    want = start
            if offset > want:
                log.warning("partition %d: record %d arrived before %d; fetching again from %d",
                            tp.partition, offset, want, want)
                # in the consumer's thread: Consumer.seek from this one races its fetcher
                await self.app.consumer.seek_wait({tp: want})
        except (KafkaError, IllegalStateError, TimeoutError) as e:
            log.warning("partition %d: fetching again from %d failed (%r); retrying in %.0f s",
                        tp.partition, want, e, REWIND_RETRY_S)

    async def _checkpoint(self, partition: int) -> None:
        """Take the partition's changed state now (a cut: copies, not yet serialised, taken a
        step at a time with the event loop's other work between, the lock held: no record is
        applied meanwhile); in the background, serialise it a slice at a time, write it once
        the output it follows is acknowledged (a checkpoint on the changelog is what the next
        owner trusts), then acknowledge the records it covers. Evaluation goes on meanwhile;
        the partition's next checkpoint is written after this one."""
        previous = self._settling.get(partition)
        if previous is not None:
            if not previous.done():
                return          # one in flight at a time: the next record tries again
            previous.result()   # a failed one raises: the agent's supervisor stops the worker
        ev = self.evaluators.get(partition)
        cut = await self._stepped(ev.taking()) if ev is not None else None
        unsent = self._unsent.pop(partition, [])
        events = self._unacked.pop(partition, [])
        self._checkpointed_at[partition] = time.monotonic()
        task = asyncio.ensure_future(self._settle(partition, previous, unsent, cut, events))
        task.add_done_callback(self._settled)
        self._settling[partition] = task

    async def _stepped(self, steps: Generator[None, None, T]) -> T:
        """What a stepped generator returns (``rules.engine.run_steps``), giving the event loop
        to other work between its steps."""
        while True:
            try:
                next(steps)
            except StopIteration as done:
                return done.value  # type: ignore[no-any-return]
            await self._give_way()

    async def _give_way(self) -> None:
        """Let the loop's other work run, in the middle of a record's evaluation; the time it
        takes is not the record's (``cityorder_evaluate_batch_seconds``)."""
        paused = time.perf_counter()
        await asyncio.sleep(0)
        self._yielded_s += time.perf_counter() - paused

    @contextlib.contextmanager
    def _hurrying(self) -> Iterator[None]:
        """While in it, state writes do not rest between slices (:data:`REST_S`): checkpoints
        in flight that a rebalance or a fault's rebuild waits for, and a load's repairs."""
        self._waiting += 1
        try:
            yield
        finally:
            self._waiting -= 1

    def _hurried(self) -> bool:
        return self._waiting > 0

    async def _settle(self, partition: int, previous: asyncio.Future[None] | None,
                      unsent: list[asyncio.Future[Any]], cut: Cut | None,
                      events: list[tuple[Any, Any]]) -> None:
        started = time.perf_counter()
        records: list[Record] = []
        if cut is not None:
            # A busy partition's cut is ~300 ms of pickling and compressing: in slices, and
            # the compression (zlib lets go of the GIL) in a thread, so alerts are not held up.
            changes: dict[str, bytes | None] = {}
            slices = _Slices(self._hurried)
            for key, value in cut.changes():
                changes[key] = value
                await slices.next()
            journal = await asyncio.to_thread(encode_journal, cut.offset, changes)
        if previous is not None:
            await previous      # only the commit and the writes depend on the one before
        if cut is not None:
            records = cut.commit(changes, journal)
        for f in unsent:
            await f
        for f in await self._write(partition, records):
            await f
        for manual, event in events:
            await manual.ack(event)
        self.metrics.checkpoint.observe(time.perf_counter() - started)
        self.metrics.checkpoint_last.set_to_current_time()

    def _settled(self, task: asyncio.Future[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            self.metrics.checkpoint_failures.inc()
        if not task.cancelled() and task.exception() is not None and self.failure is None:
            self.failure = task.exception()
            log.critical("a checkpoint or output was not acknowledged (%r): stopping at the next "
                         "record; nothing after the last checkpoint is committed", self.failure)

    async def _watch_loop(self) -> None:
        """Sample how late the event loop wakes a sleeper (``cityorder_event_loop_lag_seconds``)."""
        loop = asyncio.get_running_loop()
        while True:
            slept = loop.time()
            await asyncio.sleep(LOOP_PROBE_S)
            self.metrics.loop_lag.observe(max(0.0, loop.time() - slept - LOOP_PROBE_S))

    async def _watch_broker(self) -> None:
        """Probe at once when the app has started (a timer's first run would come only after
        its interval), then every :data:`PROBE_INTERVAL_S`."""
        try:
            while True:
                self._broker_answered(await self.probe.answers(PROBE_TIMEOUT_S))
                await asyncio.sleep(PROBE_INTERVAL_S)
        finally:
            await self.probe.close()

    def _broker_answered(self, answers: bool) -> None:
        """Log a change of the probe's answer (none for the first success: nothing changed)."""
        if answers and self.broker_answers is False:
            log.info("the broker answers again")
        elif not answers and self.broker_answers is not False:
            log.warning("no broker answered a metadata request in %.0f s (%s): not ready; "
                        "requests wait and are retried", PROBE_TIMEOUT_S,
                        ", ".join(self.settings.brokers))
        self.broker_answers = answers

    async def _collect_garbage(self) -> None:
        done = self._collector.step(time.monotonic())
        self.metrics.gc_pause.labels(done.kind).observe(done.seconds)
        if done.kind == "full":
            log.info("garbage collection: full, %.0f ms, %d unreachable objects freed, %d objects live",
                     done.seconds * 1000, done.freed, done.live)

    async def _checkpoint_idle(self) -> None:
        """Checkpoint partitions no record has arrived at since their last checkpoint."""
        if self.failure is not None:
            return
        async with self._lock:
            now = time.monotonic()
            for partition in list(self._unacked):
                if now - self._checkpointed_at.get(partition, 0.0) >= self._interval:
                    await self._checkpoint(partition)

    async def _load_owned(self) -> None:
        """Load the engine of every internal partition this worker owns once the tables are
        recovered, without waiting for the partition's first record: the case gauges and
        readiness (``partitions_loaded``) then speak for every partition it owns, idle or not."""
        if self.failure is not None or not self._settled_assignment() or \
                set(self._owned()) <= set(self.evaluators):
            return
        async with self._lock:
            if not self._settled_assignment():
                return
            for partition in self._owned():
                if partition not in self.evaluators:
                    await self._load(partition)

    def _settled_assignment(self) -> bool:
        app = self.app
        return app.tables.recovery.completed.is_set() and not app.in_recovery and not app.rebalancing

    def _owned(self) -> list[int]:
        internal = self.settings.topic(INTERNAL_TOPIC)
        return sorted(tp.partition for tp in self.app.assignor.assigned_actives() if tp.topic == internal)

    async def _load(self, partition: int) -> PartitionEvaluator:
        """Build a partition's engine from the recovered table."""
        ev = PartitionEvaluator(self.city, self.rules, clock=self.settings.clock, partition=partition,
                                now=wall_ms, topic_of=self.settings.topic, sources=self.sources,
                                quarantine=self._quarantine.setdefault(partition, Quarantine()),
                                run_budget=RUN_STEPS)
        prefix = f"{partition}\x1f".encode()
        records = {k.decode(): v for k, v in self.table.items() if k.startswith(prefix)}
        repairs = ev.restore(records)
        if repairs:
            log.info("partition %d: finishing an interrupted checkpoint (%d records)",
                     partition, len(repairs))
            with self._hurrying():   # the partition waits for these writes: no rests
                for f in await self._write(partition, repairs):
                    await f
        self.evaluators[partition] = ev
        # Partitions loaded together would checkpoint together: spread the work over the
        # interval.
        self._checkpointed_at[partition] = time.monotonic() - \
            self._interval * partition / self.settings.partitions
        log.info("partition %d: loaded (checkpoint at offset %d)", partition, ev.checkpointed)
        return ev

    async def _write(self, partition: int, records: Iterable[Record]) -> list[asyncio.Future[Any]]:
        """Write state records, in order, to the table's store and its changelog partition;
        return the producer's futures.

        The same as ``table[key] = value`` without Faust's per-key buffer and callback
        (~100 µs a key). The last record's offset is kept in the store, as Faust does, so a
        RocksDB store resumes recovery from there."""
        store = self.table.data
        producer = self.app.producer
        topic = self.changelog_topic
        futures = []
        slices = _Slices(self._hurried)   # thousands of records: each send ~30 µs, rarely waits
        for key, value in records:
            await slices.next()
            k = key.encode()
            if value is None:
                store.pop(k, None)
            else:
                store[k] = value
            futures.append(await producer.send(topic, k, value, partition, None, None))
        if futures:
            tp = TP(topic, partition)
            futures[-1].add_done_callback(lambda f: f.exception() is None and store.set_persisted_offset(
                tp, f.result().offset))
        return futures

    async def _send(self, partition: int, messages: list[Outgoing]) -> None:
        """Produce now; the acknowledgements are awaited by the partition's next checkpoint
        (its own: another partition's checkpoint may be written before they come)."""
        if not messages:
            return
        stamp = b',"emitted_at":"' + self.city.calendar.format(wall_ms()).encode() + b'"}'
        producer = self.app.producer
        unsent = self._unsent.setdefault(partition, [])
        for m in messages:
            value = m.value[:-1] + stamp if m.topic == ALERTS_TOPIC else m.value
            unsent.append(await producer.send(self.settings.topic(m.topic),
                                              m.key.encode() if m.key is not None else None,
                                              value, None, None, None))
        if self.on_alert is not None:
            for m in messages:
                if m.topic == ALERTS_TOPIC:
                    self.on_alert(orjson.loads(m.value))

    async def _on_revoked(self, app: Any, revoked: set[TP], **_: Any) -> None:
        """Let go of revoked partitions cleanly: after the record being applied (the lock) and
        with their checkpoints in flight written, so that whoever loads a partition next (this
        worker again, after an eager rebalance, or another) reads a whole checkpoint and no
        write of the old evaluator lands after it. Records since the last checkpoint stay
        unacknowledged: the next owner is given them again."""
        internal = self.settings.topic(INTERNAL_TOPIC)
        self.metrics.rebalances.inc()
        async with self._lock:
            settling = []
            for tp in revoked:
                if tp.topic == internal:
                    ev = self.evaluators.pop(tp.partition, None)
                    if ev is not None:
                        log.info("partition %d: revoked (applied up to %d, checkpoint at %d)",
                                 tp.partition, ev.applied, ev.checkpointed)
                    self._unacked.pop(tp.partition, None)
                    self._rewound.pop(tp.partition, None)
                    self._unsent.pop(tp.partition, None)   # the next owner produces it again
                    task = self._settling.pop(tp.partition, None)
                    if task is not None and not task.done():
                        settling.append(task)
            if settling:
                # a failure is reported by _settled; the wait is bounded so that a broker
                # that does not answer cannot hold the rebalance past the session timeout
                with self._hurrying():
                    _, late = await asyncio.wait(settling, timeout=self.settings.session_timeout_ms / 2000)
                if late and self.failure is None:
                    self.failure = TimeoutError("a checkpoint of a revoked partition was not written "
                                                "in time; its writes could land after the next load")
                    log.critical("%s: stopping at the next record", self.failure)

    # -- ingest --------------------------------------------------------------------------------

    def _frontier_view(self) -> dict[str, int]:
        """Every source partition's frontier as this worker's evaluators have read it."""
        view: dict[str, int] = {}
        for ev in self.evaluators.values():
            for source, t in ev.frontier.items():
                view[source] = max(t, view.get(source, t))
        return view

    async def _run_ingest(self) -> None:
        try:
            await self.ingest.run()
        except KafkaError:
            log.exception("ingest stopped")
            raise

    # -- web -----------------------------------------------------------------------------------

    def ready(self) -> tuple[bool, dict[str, Any]]:
        app = self.app
        recovery = app.tables.recovery
        checks = {
            "tables_recovered": recovery.completed.is_set() and not app.in_recovery,
            "not_rebalancing": not app.rebalancing,
            "partitions_loaded": set(self._owned()) <= set(self.evaluators),
            "ingest_writing": self.ingest.healthy,
            "broker_answers": self.broker_answers,      # None: not asked yet
            "checkpoints_written": self.failure is None,
        }
        ok = all(value is True for value in checks.values())
        self.metrics.ready.set(1 if ok else 0)
        return ok, checks

    # Faust calls a page handler given as a bound method with the request only.

    async def _healthz(self, request: Any) -> Any:
        return self.app.web.json({"ok": True})

    async def _readyz(self, request: Any) -> Any:
        ok, checks = self.ready()
        return self.app.web.json({"ready": ok, **checks, "owned": self._owned(),
                                  "loaded": sorted(self.evaluators)}, status=200 if ok else 503)

    async def _metrics(self, request: Any) -> Any:
        self.ready()
        self.metrics.partitions_owned.set(len(self.evaluators))
        return self.app.web.bytes(scrape(self.metrics.registry, request.query),
                                  content_type=CONTENT_TYPE)
