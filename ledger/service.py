"""``cityorder ledger``: follow ``city.alerts`` into the ledger database.

Delivery: offsets are committed to Kafka only after the database transaction holding their
rows has committed (:meth:`ledger.store.LedgerStore.apply`). A ledger killed in between reads
those records again and the store finds them already there (a redelivery: nothing changes),
so a kill at any moment loses nothing and duplicates nothing.

A database that goes away makes ``/readyz`` say so; the same batch is retried with backoff
until it commits, and nothing is read past it meanwhile. A record the ledger cannot read is
kept in the ``unreadable`` table with its offset and reason, logged and counted, and the
ledger goes on.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from aiohttp import web
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.abc import ConsumerRebalanceListener
from aiokafka.errors import CommitFailedError, IllegalStateError, KafkaError
from prometheus_client import Counter, Gauge, Histogram

from ledger.store import Applied, LedgerError, LedgerStore, safe_url
from models.vocabulary import ALERTS_TOPIC
from streams.metrics import component_registry
from streams.settings import Settings
from streams.topics import commit_offsets, log_start_offsets, topic_partitions
from streams.web import metrics_app, serve_beside

log = logging.getLogger(__name__)

BATCH = 2_000
FETCH_WAIT_MS = 500
MAX_BACKOFF_S = 10.0
LAG_EVERY_S = 5.0


class LedgerMetrics:
    def __init__(self) -> None:
        r = self.registry = component_registry("ledger")
        self.records = Counter("cityorder_ledger_records", "city.alerts records the ledger read, by "
                               "outcome (inserted, redelivered, conflict, unreadable).",
                               ["outcome"], registry=r)
        self.conflicts = Counter("cityorder_ledger_conflicts", "A second copy of an (alert_id, "
                                 "version) with other content: kept apart, never applied.",
                                 registry=r)
        self.unreadable = Counter("cityorder_ledger_unreadable", "Records the ledger could not read, "
                                  "by reason code.", ["reason_code"], registry=r)
        self.db_errors = Counter("cityorder_ledger_database_errors", "Failed database transactions "
                                 "(each retried until it commits).", registry=r)
        self.batch = Histogram("cityorder_ledger_batch_seconds", "Time to apply one batch in one "
                               "database transaction.", registry=r,
                               buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
        self.lag_records = Gauge("cityorder_ledger_lag_records", "city.alerts records not yet in "
                                 "the ledger.", registry=r)
        self.lag_seconds = Gauge("cityorder_ledger_lag_seconds", "Wall clock minus the Kafka "
                                 "timestamp of the newest record applied (0 when caught up).",
                                 registry=r)
        self.ready = Gauge("cityorder_ledger_ready", "1 when the ledger can write its database and "
                           "reads city.alerts.", registry=r)


class _Assign(ConsumerRebalanceListener):  # type: ignore[misc]
    """A partition the ledger never committed on is read from its first record (a fresh ledger
    reads the whole history), found by fetching, not by ListOffsets (streams.topics)."""

    def __init__(self, service: LedgerService) -> None:
        self.service = service

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        return None

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        service = self.service
        consumer = service.consumer
        assert consumer is not None
        committed = {tp: await consumer.committed(tp) for tp in assigned}
        try:
            await asyncio.to_thread(service.store.check_group_offsets,
                                    {tp.partition: o for tp, o in committed.items()},
                                    service.settings.ledger_group, service.topic)
        except LedgerError as e:   # raised by run(): aiokafka only logs a listener's errors
            service.refused = e
            return
        fresh = [tp for tp, offset in committed.items() if offset is None]
        if fresh:
            starts = await log_start_offsets(service.settings, fresh)
            for tp in fresh:
                consumer.seek(tp, starts.get(tp, 0))


class LedgerService:
    def __init__(self, settings: Settings, store: LedgerStore) -> None:
        self.settings = settings
        self.store = store
        self.topic = settings.topic(ALERTS_TOPIC)
        self.metrics = LedgerMetrics()
        self.consumer: AIOKafkaConsumer | None = None
        self.db_ok = True
        self.started = False
        self.applied_total = 0
        #: Why this database must not be written (LedgerStore.check_group_offsets), found when
        #: partitions were assigned; run() stops on it before applying anything.
        self.refused: LedgerError | None = None

    async def run(self) -> None:
        s = self.settings
        self.consumer = AIOKafkaConsumer(
            **s.aiokafka_kwargs(), group_id=s.ledger_group, client_id=s.ledger_group,
            enable_auto_commit=False, auto_offset_reset="earliest", fetch_max_wait_ms=FETCH_WAIT_MS,
            session_timeout_ms=s.session_timeout_ms,
            heartbeat_interval_ms=max(s.session_timeout_ms // 3, 100))
        self.consumer.subscribe([self.topic], listener=_Assign(self))
        await self.consumer.start()
        self.started = True
        self.metrics.ready.set(1)
        log.info("ledger: reading %s into %s", self.topic, safe_url(self.store.url))
        lag_at = 0.0
        try:
            while True:
                fetched = await self.consumer.getmany(timeout_ms=FETCH_WAIT_MS, max_records=BATCH)
                if self.refused is not None:
                    raise self.refused
                records = [r for recs in fetched.values() for r in recs]
                if records:
                    await self._apply(records)
                    await self._commit({tp: recs[-1].offset + 1 for tp, recs in fetched.items() if recs})
                    newest = max(r.timestamp for r in records)
                    self.metrics.lag_seconds.set(max(0.0, time.time() - newest / 1000))
                if time.monotonic() - lag_at >= LAG_EVERY_S:
                    lag_at = time.monotonic()
                    await self._measure_lag(caught_up=not records)
        finally:
            self.metrics.ready.set(0)
            await self.consumer.stop()

    async def _commit(self, offsets: dict[TopicPartition, int]) -> None:
        """Commit after the rows are in. A commit the group refuses (a rebalance, or a database
        outage longer than the poll interval) is logged, not fatal: those records are read
        again and found already there."""
        assert self.consumer is not None
        try:
            await commit_offsets(self.consumer, offsets)
        except (CommitFailedError, IllegalStateError, KafkaError) as e:
            log.warning("ledger: offsets not committed (%s: %s); the records will be read again "
                        "and change nothing", type(e).__name__, e)

    async def _apply(self, records: list[Any]) -> Applied:
        batch = [(r.value or b"", r.partition, r.offset) for r in records]
        backoff = 0.5
        while True:
            started = time.perf_counter()
            try:
                applied = await asyncio.to_thread(self.store.apply, batch)
            except Exception as e:   # any driver error: the batch is retried, never skipped
                self.metrics.db_errors.inc()
                if self.db_ok:
                    log.error("ledger: the database refused a batch of %d (%s: %s); retrying",
                              len(batch), type(e).__name__, e)
                self.db_ok = False
                self.metrics.ready.set(0)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF_S)
                continue
            break
        if not self.db_ok:
            log.info("ledger: the database answers again")
        self.db_ok = True
        self.metrics.ready.set(1)
        self.metrics.batch.observe(time.perf_counter() - started)
        m = self.metrics
        m.records.labels("inserted").inc(applied.inserted)
        m.records.labels("redelivered").inc(applied.redelivered)
        m.records.labels("conflict").inc(len(applied.conflicts))
        m.records.labels("unreadable").inc(len(applied.unreadable))
        for alert_id, version, partition, offset in applied.conflicts:
            m.conflicts.inc()
            log.warning("ledger: %s version %d at partition %s offset %s differs from the copy "
                        "already kept; kept apart in conflicts, not applied", alert_id, version,
                        partition, offset)
        for partition, offset, bad in applied.unreadable:
            m.unreadable.labels(bad.reason_code).inc()
            log.warning("ledger: unreadable record at partition %s offset %s (%s): %s; kept in "
                        "unreadable", partition, offset, bad.reason_code, bad.reason)
        self.applied_total += len(batch)
        return applied

    async def _measure_lag(self, caught_up: bool) -> None:
        consumer = self.consumer
        assert consumer is not None
        lag = 0
        # The high watermark every fetch answer carries, as ingest reads it: exact on Tansu too,
        # and no probe consumer to start every few seconds.
        for tp in consumer.assignment():
            highwater = consumer.highwater(tp)
            if highwater is None:   # not fetched yet
                continue
            lag += max(0, highwater - await consumer.position(tp))
        self.metrics.lag_records.set(lag)
        if caught_up and lag == 0:
            self.metrics.lag_seconds.set(0)

    # -- web ----------------------------------------------------------------------------------

    def web_app(self) -> web.Application:
        app = metrics_app(self.metrics.registry)
        app.router.add_get("/readyz", self._readyz)
        return app

    async def _readyz(self, _request: web.Request) -> web.Response:
        ready = self.started and self.db_ok
        body = {"ready": ready, "database": self.db_ok, "consuming": self.started,
                "applied": self.applied_total}
        return web.json_response(body, status=200 if ready else 503)


async def check_database(settings: Settings, store: LedgerStore) -> None:
    """For what reads the ledger's database beside it (the Open311 adapter): refuse
    (:class:`LedgerError`) one the ledger's consumer group has not been writing
    (:meth:`LedgerStore.check_group_offsets`), reading the group's offsets without joining it."""
    topic = settings.topic(ALERTS_TOPIC)
    consumer = AIOKafkaConsumer(**settings.aiokafka_kwargs(), group_id=settings.ledger_group,
                                client_id=f"{settings.ledger_group}-check", enable_auto_commit=False)
    await consumer.start()
    try:
        committed = {tp.partition: await consumer.committed(tp)
                     for tp in await topic_partitions(consumer, topic)}
    finally:
        await consumer.stop()
    await asyncio.to_thread(store.check_group_offsets, committed, settings.ledger_group, topic)


async def serve(settings: Settings, store: LedgerStore, port: int) -> None:
    """Run the ledger and its web server until cancelled."""
    service = LedgerService(settings, store)

    async def run() -> None:   # said once the pages are served
        log.info("ledger: /metrics, /healthz, /readyz on port %d", port)
        await service.run()

    await serve_beside(run, service.web_app(), port)
