"""Ingest: source topics in, batches of engine parts (and progress) out to ``cityorder.internal``.

Why a plain aiokafka consumer and not a Faust agent: Faust spends ~140 µs on every message it
hands an agent (``stream.take`` included), which caps a worker at ~7k messages/s, while a
``getmany`` consumer decodes ~250k/s on the same machine. So ingest fetches batches itself
(in its own consumer group, ``<app id>-ingest``, so more workers share the source partitions),
and Faust handles one internal record per batch and grid partition in the evaluate agent.

Delivery: offsets are committed only after the internal records of everything before them
are acknowledged, so a crash re-ingests at most the last uncommitted stretch (the engine
ignores the re-sent parts as duplicates; dead letters may repeat: the dead-letter topic is
at-least-once). A broker that goes away makes a produce fail: the loop reports not-ready,
backs off and retries the same records, never skipping input.

Progress (see ``streams.partitioned``): per source partition it owns, ingest reports its
*frontier*, the arrival up to which that partition's input is in the internal log — what the
merge has released, or the time of the last fetch for a partition read to its end — on the
last record of each batch for an internal partition, and every tick interval in a record of
its own to every internal partition (every 200 ms when other workers' ingests own some
source partitions: their input waits in the evaluators for this report). In ``event`` mode
that record also carries the newest producer tick (a record with the ``cityorder-tick``
header) per source partition. A worker given a partition fetches its last ingested record
again (``look_back``), not to ingest it but to know its stamp and tick as its last owner did.

Flow control: a partition is paused while ingest holds more than ``MAX_HELD`` of its records
(it is ahead of this worker's slowest partition), and every partition not read to its end
while more than ``MAX_AHEAD`` of the records this worker has written lie beyond the least
frontier of all workers (as this worker's evaluators last read it): the evaluators hold those
until the slower workers catch up, and they must not fill their memory with a backlog.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from operator import attrgetter
from typing import Any, TypeVar

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.abc import ConsumerRebalanceListener
from aiokafka.errors import KafkaError

from models.timestamps import in_range, parse_timestamp_ms
from models.vocabulary import DEADLETTER_TOPIC
from rules.citymap import CityMap
from rules.ingest import Ingest
from rules.pack import RuleSet
from streams.codec import encode
from streams.merge import ArrivalMerge
from streams.metrics import Metrics
from streams.partitioned import (
    PROGRESS_HEADER,
    TICK_HEADER,
    IngestBatcher,
    SourceRecord,
    least,
    source_key,
    source_keys,
)
from streams.settings import INPUT_TOPICS, INTERNAL_TOPIC, Settings
from streams.topics import TopicsError, commit_offsets, log_start_offsets

log = logging.getLogger(__name__)

FETCH_MAX_RECORDS = 5_000
#: The most records ingested between two yields of the event loop (~40 ms of decoding and
#: locating): a release after a pause holds many fetches (80k when a worker starts on a
#: backlog), and ingested in one go it held evaluation, heartbeats and /metrics for 1.5 s.
WRITE_CHUNK = 2_000
#: Tansu answers a fetch only after about half its wait: each hop costs up to this / 2. The
#: Faust consumer of the internal topic (streams.app) waits as long.
FETCH_WAIT_MS = 50
#: Records held per partition before it is paused (it is ahead of the slowest partition).
MAX_HELD = 20_000
#: Records written beyond the least frontier of all workers before fetching pauses. It is
#: measured against the frontiers as this worker's evaluators last read them, which trail by
#: their own backlog: at 10,000 two workers draining a backlog waited on each other's reports
#: (runtime benchmark, session 17: 12,156 against 14,196 events/s, medians of six, with no
#: more input held and no more memory at 100,000). At most ~110 MB of held input a worker
#: (a camera part decoded from the internal topic: ~1.1 KB).
MAX_AHEAD = 100_000
#: How often progress is written when other workers' ingests own some source partitions.
SHARED_PROGRESS_MS = 200
MAX_BACKOFF_S = 5.0
#: ``event`` mode: how long a partition read to its end must bring nothing before it stops
#: holding back the others. A producer that marks its progress (``cityorder simulate``) never
#: leaves one idle that long while it runs; this is for the others (a ``cityorder feedback``
#: after a simulation ended), which would otherwise wait for input that never comes.
IDLE_GRACE_S = 5.0
#: How long a worker may ingest with no view of the others' progress (it evaluates no
#: partition: more workers than partitions, or a rebalance) before it warns, and how often.
BLIND_WARN_S = 60.0
BLIND_REWARN_S = 600.0

V = TypeVar("V")


def wall_ms() -> int:
    return int(time.time() * 1000)


class _Revoke(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, loop: IngestLoop) -> None:
        self.loop = loop

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        await self.loop.commit(set(revoked))
        for tp in revoked:
            self.loop.frontier.pop(tp, None)
            self.loop.ticks.pop(tp, None)
            self.loop.acked.pop(tp, None)
            self.loop.committed.pop(tp, None)
            self.loop.last_fetched.pop(tp, None)
            self.loop.known_below.pop(tp, None)
            self.loop.merge.drop(tp)

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        log.info("ingest: assigned %s", sorted(f"{tp.topic}/{tp.partition}" for tp in assigned))
        await self.loop.look_back(assigned)


class IngestLoop:
    """One worker's ingest. ``run()`` until cancelled; ``healthy`` says whether the last
    fetch-and-write went through (for ``/readyz``)."""

    def __init__(self, settings: Settings, city: CityMap, rules: RuleSet, metrics: Metrics,
                 now: Callable[[], int] = wall_ms,
                 view: Callable[[], Mapping[str, int]] = dict) -> None:
        """``view``: every source partition's frontier as this worker's evaluators last read
        it (empty when it evaluates no partition: then no limit on how far ahead it runs)."""
        self.settings = settings
        self.metrics = metrics
        self.now = now
        self.contract = {settings.topic(t): t for t in INPUT_TOPICS}
        self.internal = settings.topic(INTERNAL_TOPIC)
        self.batcher = IngestBatcher(city, rules, clock=settings.clock, partitions=settings.partitions,
                                     topic_names=self.contract, now=now)
        self.view = view
        self.sources = source_keys(settings.partitions)
        self.merge: ArrivalMerge[TopicPartition, SourceRecord] = ArrivalMerge(_stamp, _order)
        self.frontier: dict[TopicPartition, int] = {}
        self.ticks: dict[TopicPartition, tuple[int, int]] = {}   # newest tick: (time, its record's stamp)
        self.released_max = 0
        self.written: deque[tuple[int, int]] = deque()   # (frontier of a write, records written by then)
        self.written_total = 0
        self.acked: dict[TopicPartition, int] = {}       # next offset whose input is not yet written
        self.committed: dict[TopicPartition, int] = {}
        self.last_fetched: dict[TopicPartition, float] = {}   # monotonic time of its last record
        self.last_stamp: dict[TopicPartition, int] = {}      # Kafka timestamp of its last record
        self.known_below: dict[TopicPartition, int] = {}  # committed offset at assignment (look_back)
        self.looking_back: set[TopicPartition] = set()    # paused by look_back until sought
        self.blind_since: float | None = None   # since when it ingests with no view (MAX_AHEAD off)
        self.blind_warned = -math.inf
        self.healthy = False
        self.consumer: AIOKafkaConsumer | None = None
        self.producer: AIOKafkaProducer | None = None

    @property
    def ingest(self) -> Ingest:
        return self.batcher.ingest

    async def run(self) -> None:
        s = self.settings
        session = s.session_timeout_ms
        self.consumer = AIOKafkaConsumer(
            **s.aiokafka_kwargs(), group_id=s.ingest_group, client_id=s.ingest_group,
            enable_auto_commit=False, auto_offset_reset="earliest", fetch_max_wait_ms=FETCH_WAIT_MS,
            session_timeout_ms=session, heartbeat_interval_ms=max(session // 3, 100),
            max_poll_interval_ms=300_000, max_partition_fetch_bytes=1024 * 1024)
        self.consumer.subscribe(list(self.contract), listener=_Revoke(self))
        self.producer = AIOKafkaProducer(**s.producer_kwargs(), client_id=s.ingest_group,
                                         acks="all", linger_ms=1, max_batch_size=1024 * 1024,
                                         max_request_size=s.max_record_bytes)
        await self._retry(self.consumer.start, "starting the consumer")
        await self._retry(self.producer.start, "starting the producer")
        self.healthy = True
        last_progress = 0.0
        linger = s.ingest_linger_ms / 1000
        lingering_since: float | None = None   # the last write, while keeping up
        try:
            while True:
                if lingering_since is not None:
                    await asyncio.sleep(lingering_since + linger - time.monotonic())
                fetched = await self.consumer.getmany(timeout_ms=FETCH_WAIT_MS, max_records=FETCH_MAX_RECORDS)
                for tp, fetched_recs in fetched.items():
                    self.last_fetched[tp] = time.monotonic()
                    self.last_stamp[tp] = fetched_recs[-1].timestamp
                    recs = self._known(tp, fetched_recs)
                    if not recs:
                        continue
                    self.metrics.input_records.labels(self.contract[tp.topic]).inc(len(recs))
                    topic, partition = tp
                    self.merge.add(tp, [SourceRecord(topic, partition, r.offset, r.key, r.value, r.timestamp,
                                                     tuple(r.headers or ())) for r in recs])
                at_end = self._at_end()
                free = self._free(at_end)
                limit = self.merge.limit(self.consumer.assignment(), free)
                released = self.merge.release(limit) if limit is not None else []
                if released:
                    self.released_max = max(self.released_max, max(r.timestamp for r in released))
                self._advance_frontier(limit, free)
                if released:
                    await self._write(released, self._by_source(self.frontier))
                full = sum(map(len, fetched.values())) >= FETCH_MAX_RECORDS
                lingering_since = time.monotonic() if linger and released and not full else None
                self._flow_control(at_end)
                shared = len(self.consumer.assignment()) < len(self.sources)
                interval = min(s.tick_interval_ms, SHARED_PROGRESS_MS) if shared else s.tick_interval_ms
                if time.monotonic() - last_progress >= interval / 1000:
                    await self._write_progress()
                    await self.commit(None)
                    last_progress = time.monotonic()
        finally:
            await self.stop()

    async def stop(self) -> None:
        self.healthy = False
        if self.consumer is not None:
            try:
                await self.commit(None)
            except Exception:
                log.warning("ingest: final commit failed; the last stretch will be ingested again")
            await self.consumer.stop()
            self.consumer = None
        if self.producer is not None:
            await self.producer.stop()
            self.producer = None

    async def _retry(self, attempt: Callable[[], Awaitable[None]], what: str,
                     on_failure: Callable[[], None] = lambda: None) -> None:
        """Run ``attempt`` until it succeeds, backing off from 0.2 s to 5 s between failures:
        a broker that goes away makes ingest wait, never skip or crash."""
        delay = 0.2
        while True:
            try:
                await attempt()
                return
            except KafkaError as e:
                on_failure()
                log.warning("ingest: %s failed on %s (%s); retrying in %.1f s",
                            what, ", ".join(self.settings.brokers), e, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, MAX_BACKOFF_S)

    async def look_back(self, assigned: list[TopicPartition]) -> None:
        """Fetch each newly assigned partition's last ingested record again (the one before its
        committed offset), to learn what its previous owner knew about it and did not write
        down: that record's stamp and, if it is one, its tick.

        A partition read to its end reports its frontier only after ``IDLE_GRACE_S`` without
        records, and then up to the newest stamp released (:meth:`_advance_frontier`). An owner
        stopped within that grace, after committing, left a successor that fetches nothing,
        knows no stamp and reports a frontier short of the input's closing tick for ever:
        the tick never took effect, nor anything due after the last input. Not ingested again
        (:meth:`_known`): its parts are in the internal log already.

        A partition never committed is read from its first record (:func:`log_start_offsets`,
        not the consumer's ``earliest`` reset: on Tansu that can skip the first records)."""
        assert self.consumer is not None
        # Paused until sought: the fetcher starts on new partitions while this awaits, and what
        # it returned before a seek would be ingested twice (dead letters repeated).
        self.consumer.pause(*assigned)
        self.looking_back.update(assigned)
        fresh = []
        try:
            for tp in assigned:
                committed = await self.consumer.committed(tp)
                if committed:
                    self.known_below[tp] = committed
                    self.consumer.seek(tp, committed - 1)
                else:
                    fresh.append(tp)
            for tp, start in (await log_start_offsets(self.settings, fresh)).items():
                self.consumer.seek(tp, start)
        except (KafkaError, TopicsError) as e:
            log.warning("ingest: looking back at the assigned partitions failed (%s); going on from "
                        "their committed offsets", e)
        finally:
            self.looking_back.difference_update(assigned)
            self.consumer.resume(*(set(assigned) & self.consumer.assignment()))

    def _known(self, tp: TopicPartition, recs: list[Any]) -> list[Any]:
        """Records fetched again by :meth:`look_back` update the released stamp and the tick
        and are not ingested again; the rest are returned."""
        below = self.known_below.get(tp)
        if below is None:
            return recs
        for r in recs:
            if r.offset >= below:
                break
            self.released_max = max(self.released_max, r.timestamp)
            tick = _tick_header(r.headers)
            if tick is not None and self.settings.clock == "event":
                self.ticks[tp] = max((tick, r.timestamp), self.ticks.get(tp, (tick, r.timestamp)))
        else:
            return []
        del self.known_below[tp]
        return [r for r in recs if r.offset >= below]

    async def _write(self, released: list[SourceRecord], frontier: dict[str, int]) -> None:
        """Ingest released records, write their parts (with ``frontier``), the producers'
        ticks among them and their dead letters, then advance the offsets and ticks of their
        partitions (once everything is acknowledged).

        A tick travels in the same write as the input around it, to every internal partition
        (``IngestBatcher``), so that no evaluator sees a frontier past a tick it has not been
        told of. Where one source partition brings two ticks in one batch, the batch is cut
        before the second: a record carries one tick per source; and after every
        :data:`WRITE_CHUNK` records, yielding the loop in between. Each chunk carries the
        frontier that holds once it is written (:meth:`_chunk_frontiers`). Progress markers
        (``PROGRESS_HEADER``) have done their work in the merge and are not written."""
        started = time.perf_counter()
        event_mode = self.settings.clock == "event"
        chunks: list[tuple[list[SourceRecord], dict[str, tuple[int, int]]]] = [([], {})]
        starts = [0]    # where each chunk starts in ``released``
        ticks: dict[TopicPartition, tuple[int, int]] = {}
        nexts: dict[tuple[str, int], int] = {}
        newest: int | None = None
        for at, r in enumerate(released):
            nexts[(r.topic, r.partition)] = r.offset + 1   # TopicPartition's key: made below, once
            if r.headers:
                if _has_header(r.headers, PROGRESS_HEADER):
                    continue
                tick = _tick_header(r.headers)
                if tick is not None:
                    if event_mode:
                        tp = TopicPartition(r.topic, r.partition)
                        source = source_key(self.contract[tp.topic], tp.partition)
                        if source in chunks[-1][1]:
                            chunks.append(([], {}))
                            starts.append(at)
                        chunks[-1][1][source] = (tick, r.timestamp)
                        ticks[tp] = max((tick, r.timestamp), ticks.get(tp, (tick, r.timestamp)))
                    else:
                        self.ingest.ignored[("tick", "wall mode")] += 1
                    continue
            if len(chunks[-1][0]) >= WRITE_CHUNK:
                chunks.append(([], {}))
                starts.append(at)
            chunks[-1][0].append(r)
            if newest is None or r.timestamp > newest:
                newest = r.timestamp
        frontiers = self._chunk_frontiers(released, starts, frontier)
        sends: list[tuple[str, str | None, bytes, int | None]] = []
        for i, (records, chunk_ticks) in enumerate(chunks):
            if i:
                await asyncio.sleep(0)
            result = self.batcher(records, frontiers[i], chunk_ticks or None)
            sends += [(self.internal, None, value, p) for p, values in result.records.items()
                      for value in values]
            for dead in result.dead:
                self.metrics.dead(dead)
            sends += [(self.settings.topic(DEADLETTER_TOPIC), d["key"], orjson.dumps(d), None)
                      for d in result.dead]
        await self._produce(sends, "ingest")
        for (topic, partition), nxt in nexts.items():
            tp = TopicPartition(topic, partition)
            held = self.merge.first_offset(tp)
            self.acked[tp] = held if held is not None else nxt
        for tp, t in ticks.items():
            self.ticks[tp] = max(t, self.ticks.get(tp, t))
        self.written_total += sum(len(records) for records, _ in chunks)
        if frontier:
            self.written.append((min(frontier.values()), self.written_total))
        self.metrics.ingest_batch.observe(time.perf_counter() - started)
        if newest is not None:
            self.metrics.ingest_delay.observe(max(0, self.now() - newest) / 1000)

    def _chunk_frontiers(self, released: list[SourceRecord], starts: list[int],
                         frontier: dict[str, int]) -> list[dict[str, int] | None]:
        """The frontier each chunk of a write carries: the write's own on the last, and on
        each one before it what already holds once it is in the log, a source partition's
        frontier at most one less than the oldest arrival it still has in the chunks after
        (a stream's stamps may go back). Each chunk's parts can then be applied as it comes,
        rather than all held until the last one (80,000 in a worker's first write on a
        backlog, and another worker's evaluators waiting for the whole of it)."""
        frontiers: list[dict[str, int] | None] = [None] * len(starts)
        frontiers[-1] = frontier or None
        if not frontier:
            return frontiers
        sources: dict[tuple[str, int], str] = {}
        oldest: dict[str, int] = {}   # by source: the oldest arrival in the chunks after this one
        end = len(released)
        for i in range(len(starts) - 1, 0, -1):
            for r in released[starts[i]:end]:
                source = sources.get((r.topic, r.partition))
                if source is None:
                    source = sources[(r.topic, r.partition)] = source_key(self.contract[r.topic], r.partition)
                if r.timestamp < oldest.get(source, r.timestamp + 1):
                    oldest[source] = r.timestamp
            end = starts[i]
            frontiers[i - 1] = {s: min(t, oldest[s] - 1) if s in oldest else t for s, t in frontier.items()}
        return frontiers

    def _free(self, at_end: set[TopicPartition]) -> set[TopicPartition]:
        """The partitions read to their end that hold nothing back: in ``wall`` mode all of
        them (what they bring later arrives later: the broker stamps it, or its producer does
        on the same clock); in ``event`` mode only those that have brought nothing for
        ``IDLE_GRACE_S``. A fetch that finds a partition at its end says nothing about a
        producer's batch for it still on its way, stamped before what another partition
        already brought; at full speed that is the rule, not the exception. The producer's
        own progress markers (and its records) are what moves such a partition on.

        A paused partition is never free: it is not fetched, so its end is the one its last
        fetch saw and its quiet is ours, not its producer's. Counted free, a partition paused
        for holding too much while its producer was still writing would let the others run
        on, and its next records would reach the engines late. Its quiet starts again when it
        is resumed."""
        if self.settings.clock == "wall":
            return at_end
        assert self.consumer is not None
        now = time.monotonic()
        paused = self.consumer.paused()
        return {tp for tp in at_end
                if tp not in paused and now - self.last_fetched.setdefault(tp, now) >= IDLE_GRACE_S}

    def _at_end(self) -> set[TopicPartition]:
        """Partitions whose every record has been fetched, by the last fetch's high watermark."""
        assert self.consumer is not None
        at_end = set()
        for tp in self.consumer.assignment():
            highwater = self.consumer.highwater(tp)
            position = _known_position(self.consumer, tp)
            if highwater is None or position is None:
                continue
            behind = max(highwater - position, 0) + self.merge.held(tp)
            labels = (self.contract[tp.topic], str(tp.partition))
            self.metrics.ingest_lag.labels(*labels).set(behind)
            stamp = self.last_stamp.get(tp)
            self.metrics.ingest_lag_seconds.labels(*labels).set(
                max(self.now() - stamp, 0) / 1000 if behind and stamp is not None else 0)
            if position >= highwater:
                at_end.add(tp)
        return at_end

    def _advance_frontier(self, limit: float | None, free: set[TopicPartition]) -> None:
        """Move each owned partition's frontier after a release up to ``limit``.

        A partition not read to its end, or holding records, has everything before ``limit``
        released (it has fetched up to it, and what it holds is newer; its next record may
        have the same stamp). A free partition (:meth:`_free`) with nothing held constrains
        nothing, as in the merge: whatever it brings next is merged after what has been
        released anywhere, so it is complete up to the newest record released from any
        partition, this worker's or (as its evaluators read them) another's. In ``wall``
        mode also up to the time of that fetch: anything it brings later arrives later. Not
        in ``event`` mode: a simulation or backtest may stamp its records with times long
        past, so the wall clock says nothing about them (and a worker that evaluates no
        partition, and so has no view of the others, holds them back while its own source
        partitions bring nothing)."""
        assert self.consumer is not None
        idle = max(self.released_max, max(self.view().values(), default=0))
        by_poll = self.settings.clock == "wall"
        for tp in self.consumer.assignment():
            t: float | None = None
            if tp in free and not self.merge.held(tp):
                t = idle
                polled = self.consumer.last_poll_timestamp(tp) if by_poll else None
                if polled:
                    t = max(t, min(polled, self.now()))
            elif limit is not None and limit != math.inf:
                t = limit - 1
            if t is not None and t > self.frontier.get(tp, -1):
                self.frontier[tp] = int(t)

    def _by_source(self, progress: Mapping[TopicPartition, V]) -> dict[str, V]:
        """Per-partition progress by source name (what progress records carry)."""
        return {source_key(self.contract[tp.topic], tp.partition): v for tp, v in progress.items()}

    def _lowest(self, view: Mapping[str, int]) -> float | None:
        """The least frontier of all source partitions, this worker's own as it knows them and
        the others' as its evaluators last read them (``view``); None while one is unknown."""
        known = dict(view)
        for source, t in self._by_source(self.frontier).items():
            known[source] = max(t, known.get(source, t))
        return least(known, self.sources)

    def _flow_control(self, at_end: set[TopicPartition]) -> None:
        """Pause what runs too far ahead (see the module's docstring)."""
        assert self.consumer is not None
        view = self.view()
        lowest = self._lowest(view)
        if lowest is None:
            self.written.clear()     # nothing to measure against (yet): no limit
        self._warn_if_blind(time.monotonic(), seeing=bool(view))
        while self.written and self.written[0][0] <= lowest:  # type: ignore[operator]
            self.written.popleft()
        ahead = self.written_total - self.written[0][1] if self.written else 0
        paused = self.consumer.paused()
        for tp in self.consumer.assignment():
            if self.merge.held(tp) > MAX_HELD or (ahead > MAX_AHEAD and tp not in at_end):
                if tp not in paused:
                    self.consumer.pause(tp)
            elif tp in paused and tp not in self.looking_back:
                self.consumer.resume(tp)
                self.last_fetched[tp] = time.monotonic()   # quiet from now on (see _free)

    def _warn_if_blind(self, now_s: float, seeing: bool) -> None:
        """Warn when this worker has ingested for :data:`BLIND_WARN_S` while evaluating no
        partition (``seeing``: its evaluators read the others' progress): nothing then holds
        its ingest back to the slower workers (``MAX_AHEAD`` is measured against what its
        evaluators read), and the evaluators elsewhere hold what it writes ahead of them in
        memory."""
        assert self.consumer is not None
        if seeing or not self.consumer.assignment():
            self.blind_since = None
            return
        if self.blind_since is None:
            self.blind_since = now_s
        if now_s - self.blind_since >= BLIND_WARN_S and now_s - self.blind_warned >= BLIND_REWARN_S:
            self.blind_warned = now_s
            log.warning("ingest: this worker has ingested %d source partitions for %.0f s while it "
                        "evaluates no partition, so its ingest is not held back to the slower "
                        "workers; run no more workers than partitions (deploy/README.md, Scaling)",
                        len(self.consumer.assignment()), now_s - self.blind_since)

    async def _write_progress(self) -> None:
        assert self.consumer is not None
        owned = self.consumer.assignment()
        frontier = self._by_source({tp: t for tp, t in self.frontier.items() if tp in owned})
        ticks = self._by_source({tp: t for tp, t in self.ticks.items() if tp in owned})
        if not frontier and not ticks:
            return
        record = encode(frontier=frontier, ticks=ticks)
        await self._produce([(self.internal, None, record, p) for p in range(self.settings.partitions)],
                            "progress")

    async def commit(self, only: set[TopicPartition] | None) -> None:
        if self.consumer is None:
            return
        offsets = {tp: off for tp, off in self.acked.items()
                   if (only is None or tp in only) and self.committed.get(tp) != off
                   and tp in self.consumer.assignment()}
        if not offsets:
            return
        try:
            await commit_offsets(self.consumer, offsets)
            self.committed.update(offsets)
        except KafkaError as e:
            log.warning("ingest: commit failed (%s); those records may be ingested again", e)

    async def _produce(self, sends: list[tuple[str, str | None, bytes, int | None]], stage: str) -> None:
        """Send all, wait for every acknowledgement; on failure retry the whole list with backoff.

        Retrying everything may duplicate records that did go through: internal duplicates are
        ignored by the engine, duplicated dead letters are allowed (at-least-once)."""
        producer = self.producer
        assert producer is not None

        async def attempt() -> None:
            futures = [await producer.send(topic, value, partition=partition,
                                           key=key.encode() if key else None)
                       for topic, key, value, partition in sends]
            await asyncio.gather(*futures)

        def failed() -> None:
            self.healthy = False
            self.metrics.producer_errors.labels(stage).inc()

        await self._retry(attempt, f"writing {stage} records", failed)
        self.healthy = True


def _known_position(consumer: AIOKafkaConsumer, tp: TopicPartition) -> int | None:
    state = consumer._subscription.subscription.assignment.state_value(tp) \
        if consumer._subscription.subscription is not None else None
    return None if state is None or not state.has_valid_position else state.position


_stamp = attrgetter("timestamp")
_order = attrgetter("timestamp", "topic", "partition")


def _has_header(headers: Any, wanted: str) -> bool:
    return any(name == wanted for name, _ in headers)


def _tick_header(headers: Any) -> int | None:
    """The tick a record's header carries; None if none, or one that is not a time in the input
    range (such a record is then ingested as the empty input it is: a dead letter, so a tick in
    year 9999 moves no clock)."""
    for name, value in headers or ():
        if name == TICK_HEADER:
            try:
                t = parse_timestamp_ms(bytes(value).decode("utf-8"))
            except (ValueError, UnicodeDecodeError):
                return None
            return t if in_range(t) else None
    return None


