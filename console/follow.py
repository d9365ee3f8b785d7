"""The console's Kafka side: the board fed from the ledger and ``city.alerts``, refusals from
``city.alerts.deadletter``, and actions written to ``city.alerts.feedback``.

No change is lost between the ledger's snapshot and the live stream: the console first reads
where the ledger's consumer group has committed on ``city.alerts`` (the ledger commits only
after its database holds those records), then reads the snapshot from the database, then
follows ``city.alerts`` from those offsets. Messages the snapshot already had are dropped by
version (:meth:`console.board.Board.apply`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from sqlalchemy import select

from console.board import ON_BOARD, Board, Change
from console.deadletters import TAIL, DeadLetters
from ledger.schema import cases
from ledger.store import LedgerStore
from models.vocabulary import ALERTS_TOPIC, DEADLETTER_TOPIC, FEEDBACK_TOPIC
from streams.settings import Settings
from streams.topics import log_start_offsets, topic_partitions, true_end_offsets

log = logging.getLogger(__name__)

TOPIC_WAIT_S = 60.0


def load_snapshot(board: Board, store: LedgerStore) -> int:
    """The cases on the board (active, or resolved and awaiting verification) that the ledger
    holds, into ``board``; how many."""
    with store.engine.connect() as conn:
        rows = conn.execute(select(cases.c.message, cases.c.overdue)
                            .where(cases.c.status.in_(sorted(ON_BOARD)))).all()
    for message, overdue in rows:
        board.load(message if isinstance(message, dict) else orjson.loads(message), bool(overdue))
    return len(rows)


class Follower:
    """Feeds the board until cancelled; ``publish`` gets every change (the SSE fan-out)."""

    def __init__(self, settings: Settings, store: LedgerStore, board: Board,
                 publish: Callable[[Change], None],
                 on_refused: Callable[[dict[str, Any]], Change | None],
                 dead_letters: DeadLetters) -> None:
        self.settings, self.store, self.board = settings, store, board
        self.publish, self.on_refused = publish, on_refused
        self.dead_letters = dead_letters
        self.ready = asyncio.Event()

    async def run(self) -> None:
        s = self.settings
        alerts = AIOKafkaConsumer(**s.aiokafka_kwargs(), group_id=s.ledger_group,
                                  client_id="cityorder-console", enable_auto_commit=False,
                                  fetch_max_wait_ms=100)
        dead = AIOKafkaConsumer(**s.aiokafka_kwargs(), client_id="cityorder-console",
                                enable_auto_commit=False, fetch_max_wait_ms=100)
        await alerts.start()
        await dead.start()
        try:
            await self._position(alerts)
            await self._tail(dead)
            self.ready.set()
            await asyncio.gather(self._alerts(alerts), self._dead(dead))
        finally:
            await alerts.stop()
            await dead.stop()

    async def _position(self, consumer: AIOKafkaConsumer) -> None:
        topic = self.settings.topic(ALERTS_TOPIC)
        waited = 0.0
        # A worker started beside it creates the topics.
        while not (tps := await topic_partitions(consumer, topic)):
            if waited >= TOPIC_WAIT_S:
                raise RuntimeError(f"topic {topic} does not exist after {TOPIC_WAIT_S:g} s: "
                                   "start a worker (it creates the topics) or `cityorder dev`")
            await asyncio.sleep(0.5)
            waited += 0.5
        consumer.assign(tps)
        committed = {tp: await consumer.committed(tp) for tp in tps}
        # A console on another database than the ledger's would show none of the cases
        # opened before now: it stops with why instead (LedgerError).
        await asyncio.to_thread(self.store.check_group_offsets,
                                {tp.partition: o for tp, o in committed.items()},
                                self.settings.ledger_group, topic)
        starts = await log_start_offsets(self.settings, [tp for tp, o in committed.items()
                                                         if o is None])
        n = await asyncio.to_thread(load_snapshot, self.board, self.store)
        for tp in tps:
            consumer.seek(tp, committed[tp] if committed[tp] is not None else starts.get(tp, 0))
        log.info("console: %d open cases from the ledger; following %s", n, topic)

    async def _tail(self, consumer: AIOKafkaConsumer) -> None:
        """The dead letters from the last :data:`TAIL` of each partition on."""
        tps = await topic_partitions(consumer, self.settings.topic(DEADLETTER_TOPIC))
        consumer.assign(tps)
        if not tps:
            return
        ends = await true_end_offsets(self.settings, tps)
        starts = await log_start_offsets(self.settings, tps)
        for tp in tps:
            consumer.seek(tp, max(ends.get(tp, 0) - TAIL, starts.get(tp, 0)))

    async def _alerts(self, consumer: AIOKafkaConsumer) -> None:
        while True:
            batch = await consumer.getmany(timeout_ms=500, max_records=2_000)
            for records in batch.values():
                for r in records:
                    try:
                        message = orjson.loads(r.value)
                        change = self.board.apply(message)
                    except (orjson.JSONDecodeError, KeyError, TypeError):
                        log.warning("console: unreadable city.alerts record at %s/%s", r.partition,
                                    r.offset)
                        continue
                    if change is not None:
                        self.publish(change)

    async def _dead(self, consumer: AIOKafkaConsumer) -> None:
        feedback = self.settings.topic(FEEDBACK_TOPIC)
        while True:
            batch = await consumer.getmany(timeout_ms=500)
            for records in batch.values():
                for r in records:
                    try:
                        letter = orjson.loads(r.value)
                    except orjson.JSONDecodeError:
                        continue
                    if not isinstance(letter, dict):
                        continue
                    self.dead_letters.add(letter)
                    if letter.get("topic") == feedback:
                        change = self.on_refused(letter)
                        if change is not None:
                            self.publish(change)


class Sender:
    """Writes feedback to ``city.alerts.feedback``, keyed by alert id (its partition)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.producer: AIOKafkaProducer | None = None

    async def start(self) -> None:
        self.producer = AIOKafkaProducer(**self.settings.producer_kwargs(), acks="all",
                                         client_id="cityorder-console")
        await self.producer.start()

    async def stop(self) -> None:
        if self.producer is not None:
            await self.producer.stop()

    async def send(self, message: dict[str, Any]) -> None:
        assert self.producer is not None
        await self.producer.send_and_wait(self.settings.topic(FEEDBACK_TOPIC), orjson.dumps(message),
                                          key=message["alert_id"].encode())
