"""``cityorder webhooks``: every receiver reads ``city.alerts`` in its own consumer group and
POSTs the transitions its matchers want, one request per transition (no batching).

Nothing lost: a receiver's offsets are committed only up to the first transition not yet
finished (delivered, dead-lettered, or not wanted), so a crash or a restart sends again what
was after it, with the same ``Idempotency-Key``. One alert's transitions go one after another,
in version order; different alerts go at once, up to ``concurrency`` requests.

The bounded queue is ``max_in_flight`` records read and not yet committable. At the bound the
consumer pauses its partitions (it keeps polling, so it stays in its group) and the rest waits
in Kafka: a receiver that is down for an hour gets everything once it is back, as long as
``city.alerts`` keeps it (its retention) and ``retry.give_up_after`` (24 h) has not run out.

Partitions newly assigned are paused until their starting offsets are known (a new receiver
starts where ``start`` says), so no record is read before there is somewhere to count it. A
receiver whose loop fails is logged and started again; the others go on.
The delivery rules themselves are in :mod:`webhooks.delivery`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, get_args

import aiohttp
import orjson
from aiohttp import web
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import KafkaError

from models import cap
from models.common import ALERT_ID_PATTERN
from models.outputs import Transition as TransitionName
from models.outputs import deadletter_payload
from models.vocabulary import ALERTS_TOPIC
from streams.settings import Settings
from streams.topics import (
    commit_offsets,
    ensure_topics,
    log_start_offsets,
    read_topic_configs,
    start_when_reachable,
    true_end_offsets,
)
from streams.web import metrics_app
from webhooks.config import Receiver, Receivers
from webhooks.delivery import (
    ATTEMPT_HEADER,
    CONTENT_TYPES,
    IDEMPOTENCY_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    Progress,
    Result,
    backoff_ms,
    give_up,
    idempotency_key,
    result_of,
    retry_after_ms,
    signature,
)
from webhooks.matchers import matches
from webhooks.metrics import WebhookMetrics

log = logging.getLogger(__name__)

FETCH_MAX_RECORDS = 500
COMMIT_INTERVAL_S = 1.0
#: At the in-flight bound, how often the paused consumer still polls (to stay in its group).
POLL_WHEN_FULL_S = 1.0
RETRY_KAFKA_S = 2.0
#: How long shutting down waits for the last commit.
FINAL_COMMIT_S = 5.0
#: After a receiver's loop failed, the wait before it starts again.
RESTART_S = 5.0
#: How much of a refusing answer's body a dead letter keeps, for whoever reads it.
BODY_EXCERPT = 300
USER_AGENT = "cityorder-webhooks"
RETENTION_MS = "retention.ms"
#: Where what a receiver never takes is written (``webhooks resend`` reads it back).
DEAD_TOPIC = "city.webhooks.deadletter"
#: What rendering an alert message in a receiver's format raises when the message will not go.
RENDER_ERRORS = (KeyError, TypeError, ValueError, AttributeError)
_ALERT_ID = re.compile(ALERT_ID_PATTERN)
_TRANSITIONS = frozenset(get_args(TransitionName))


@dataclass(slots=True)
class Transition:
    """One record read for one receiver, until it is finished."""

    tp: TopicPartition
    offset: int
    raw: bytes
    alert_id: str | None
    version: int | None
    transition: str | None
    body: bytes | None
    """What is sent; None if it cannot be (it becomes a dead letter)."""
    problem: str | None
    """Why it cannot be sent, if it cannot."""
    read_at: float = field(default_factory=time.monotonic)


@dataclass(slots=True)
class Answer:
    result: Result
    status: int | None
    detail: str
    retry_after_ms: int | None = None


@dataclass(slots=True)
class Chain:
    """One alert's transitions waiting for this receiver, delivered in order by one task."""

    queue: deque[Transition]
    task: asyncio.Task[None] | None = None


ChainKey = tuple[TopicPartition, str]


class ReceiverLoop:
    def __init__(self, settings: Settings, receiver: Receiver, secret: bytes, sender: str,
                 producer: AIOKafkaProducer, metrics: WebhookMetrics, stamp: Callable[[float], str]) -> None:
        """``stamp``: Unix seconds as the city writes times (dead letters' times)."""
        self.settings, self.receiver, self.secret, self.sender = settings, receiver, secret, sender
        self.producer, self.metrics, self.stamp = producer, metrics, stamp
        self.name = receiver.name
        self.topic = settings.topic(ALERTS_TOPIC)
        self.dead_topic = settings.topic(DEAD_TOPIC)
        self.requests = asyncio.Semaphore(receiver.concurrency)
        self.last_delivery: float | None = None   # monotonic
        metrics.receiver(self.name)
        self._reset()

    def _reset(self) -> None:
        self.progress: dict[TopicPartition, Progress] = {}
        self.chains: dict[ChainKey, Chain] = {}
        self.placing: set[TopicPartition] = set()
        self.pending = 0
        self.paused = False
        self.room = asyncio.Event()
        self.consumer: AIOKafkaConsumer | None = None
        self.session: aiohttp.ClientSession | None = None

    @property
    def group(self) -> str:
        return f"{self.settings.app_id}-webhook-{self.name}"

    async def run_forever(self) -> None:
        """:meth:`run`, started again after a failure (logged), so one receiver's trouble is
        its own: the other receivers of the process go on."""
        while True:
            try:
                await self.run()
            except Exception:
                log.exception("receiver %s: failed; starting again in %.0f s (what was not committed "
                              "is sent again)", self.name, RESTART_S)
                await asyncio.sleep(RESTART_S)

    async def run(self) -> None:
        r = self.receiver
        self._reset()
        consumer = self.consumer = AIOKafkaConsumer(
            **self.settings.aiokafka_kwargs(), group_id=self.group, enable_auto_commit=False,
            auto_offset_reset="earliest", client_id=f"cityorder-webhook-{self.name}",
            session_timeout_ms=self.settings.session_timeout_ms,
            heartbeat_interval_ms=max(self.settings.session_timeout_ms // 3, 100))
        consumer.subscribe([self.topic], listener=_Listener(self))
        committer: asyncio.Task[None] | None = None
        try:
            await start_when_reachable(consumer.start, f"the consumer of receiver {self.name}")
            self.session = session_for(r)
            committer = asyncio.create_task(self._commit_every())
            self.metrics.ready.labels(self.name).set(1)
            log.info("receiver %s: %s -> %s (%s)%s", self.name, self.topic, r.safe_url, r.format,
                     "".join(f" {m}" for m in r.matchers))
            while True:
                if self.pending >= r.max_in_flight:
                    await self._wait_for_room()
                    continue
                self._resume()
                self._take_all(await self._poll(timeout_ms=500, max_records=min(
                    r.max_in_flight - self.pending, FETCH_MAX_RECORDS)))
                await self._backlog()
        finally:
            await self._shut(committer)

    async def _shut(self, committer: asyncio.Task[None] | None) -> None:
        """Stop deliveries, commit what is finished, leave the group; each step on its own so
        one failing does not skip the others."""
        self.metrics.ready.labels(self.name).set(0)
        tasks = [c.task for c in self.chains.values() if c.task is not None]
        tasks += [committer] if committer is not None else []
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._commit(), FINAL_COMMIT_S)
        if self.session is not None:
            with contextlib.suppress(Exception):
                await self.session.close()
        if self.consumer is not None:
            with contextlib.suppress(Exception):
                await self.consumer.stop()

    # -- reading --------------------------------------------------------------------------------

    async def _poll(self, **kwargs: Any) -> dict[TopicPartition, list[Any]]:
        assert self.consumer is not None
        try:
            return dict(await self.consumer.getmany(**kwargs))
        except KafkaError as e:
            log.warning("receiver %s: cannot read (%r); retrying in %.0f s", self.name, e, RETRY_KAFKA_S)
            await asyncio.sleep(RETRY_KAFKA_S)
            return {}

    def _take_all(self, fetched: dict[TopicPartition, list[Any]]) -> None:
        assert self.consumer is not None
        for tp, records in fetched.items():
            if not records:
                continue
            if tp not in self.progress:
                # read before its assignment was set up: read it again once it is
                if tp in self.consumer.assignment():
                    self.consumer.seek(tp, records[0].offset)
                    log.info("receiver %s: partition %d read early; reading it again from %d",
                             self.name, tp.partition, records[0].offset)
                continue
            for rec in records:
                self._take(tp, rec.offset, rec.value or b"")

    def _take(self, tp: TopicPartition, offset: int, raw: bytes) -> None:
        progress = self.progress[tp]
        progress.add(offset)
        self.pending += 1
        self.metrics.in_flight.labels(self.name).set(self.pending)
        try:
            alert, problem = _read(raw)
            if alert is not None and not matches(self.receiver.matchers, alert):
                self.metrics.messages.labels(self.name, "skipped").inc()
                self._release(progress.finish(offset))
                return
            t = self._transition(tp, offset, raw, alert, problem)
        except Exception as e:  # a record no rule here foresaw: a dead letter, not a dead loop
            log.exception("receiver %s: cannot read the record at %s:%d", self.name, tp.partition, offset)
            t = Transition(tp, offset, raw, None, None, None, None, f"cannot be read: {e!r}")
        key = (tp, t.alert_id or f"?{offset}")
        chain = self.chains.get(key)
        if chain is not None:
            chain.queue.append(t)
            return
        chain = self.chains[key] = Chain(deque([t]))
        chain.task = asyncio.create_task(self._deliver_chain(key, chain))

    def _transition(self, tp: TopicPartition, offset: int, raw: bytes, alert: dict[str, Any] | None,
                    problem: str | None) -> Transition:
        if alert is None:
            return Transition(tp, offset, raw, None, None, None, None, problem)
        ids = (alert["alert_id"], alert["version"], alert["transition"])
        try:
            body = body_for(self.receiver, raw, self.sender, alert)
        except RENDER_ERRORS as e:
            return Transition(tp, offset, raw, *ids, None, f"cannot be rendered as CAP: {e!r}")
        return Transition(tp, offset, raw, *ids, body, None)

    async def _wait_for_room(self) -> None:
        """At the bound: pause the partitions and wait until the front moves, polling now and
        then so the consumer stays in its group (a paused poll returns nothing new)."""
        assert self.consumer is not None
        if not self.paused:
            self.consumer.pause(*self.consumer.assignment())
            self.paused = True
            self.metrics.queue_full.labels(self.name).inc()
            log.warning("receiver %s: %d records in flight (max_in_flight): reading paused, the "
                        "rest waits in Kafka", self.name, self.pending)
        self.room.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.room.wait(), POLL_WHEN_FULL_S)
        self._take_all(await self._poll(timeout_ms=0))
        await self._backlog()

    def _resume(self) -> None:
        assert self.consumer is not None
        if self.paused:
            self.consumer.resume(*(self.consumer.assignment() - self.placing))
            self.paused = False
            log.info("receiver %s: reading again", self.name)

    # -- delivering -----------------------------------------------------------------------------

    async def _deliver_chain(self, key: ChainKey, chain: Chain) -> None:
        try:
            while chain.queue:
                t = chain.queue[0]
                try:
                    await self._deliver(t)
                except (asyncio.CancelledError, KafkaError):
                    raise
                except Exception as e:   # a bug must not hold the partition's commit point forever
                    log.exception("receiver %s: cannot send %s version %s", self.name, t.alert_id,
                                  t.version)
                    await self._dead(t, "error", f"cityorder could not send it: {e!r}", 0, None, None)
                chain.queue.popleft()
                self._finished(t)
        finally:
            if self.chains.get(key) is chain:
                del self.chains[key]

    def _finished(self, t: Transition) -> None:
        progress = self.progress.get(t.tp)
        if progress is not None:
            self._release(progress.finish(t.offset))

    def _release(self, n: int) -> None:
        """``n`` records left the front of their partition: room in the bounded queue."""
        self.pending -= n
        self.metrics.in_flight.labels(self.name).set(self.pending)
        if self.pending < self.receiver.max_in_flight:
            self.room.set()

    async def _deliver(self, t: Transition) -> None:
        if t.body is None:
            await self._dead(t, "unreadable", t.problem or "unreadable", 0, None, None)
            return
        retry = self.receiver.retry
        first_mono, first_wall = time.monotonic(), time.time()
        attempt = 0
        while True:
            attempt += 1
            async with self.requests:
                answer = await self._post(t, attempt)
            if answer.result == "delivered":
                self.metrics.messages.labels(self.name, "delivered").inc()
                self.metrics.delivery.labels(self.name).observe(time.monotonic() - t.read_at)
                return
            if answer.result == "rejected":
                await self._dead(t, "rejected", answer.detail, attempt, answer.status, first_wall)
                return
            now = time.monotonic()
            last = None if self.last_delivery is None else self.last_delivery * 1000
            if give_up(retry, attempt, first_mono * 1000, now * 1000, last):
                await self._dead(t, "gave_up", f"after {attempt} attempts, the last: {answer.detail}",
                                 attempt, answer.status, first_wall)
                return
            if attempt == 1 or attempt % 10 == 0:
                log.warning("receiver %s: %s version %s, attempt %d: %s", self.name, t.alert_id,
                            t.version, attempt, answer.detail)
            await asyncio.sleep(backoff_ms(retry, attempt, answer.retry_after_ms) / 1000)

    async def _post(self, t: Transition, attempt: int) -> Answer:
        assert self.session is not None and t.body is not None and t.alert_id and t.version
        started = time.monotonic()
        answer = await post(self.session, self.receiver, self.secret, t.alert_id, t.version, t.body,
                            attempt)
        self.metrics.request.labels(self.name).observe(time.monotonic() - started)
        self.metrics.attempts.labels(self.name, answer.result).inc()
        self.metrics.up.labels(self.name).set(
            1 if answer.result in ("delivered", "rejected", "throttled") else 0)
        if answer.result == "delivered":
            self.last_delivery = time.monotonic()
            self.metrics.last_delivery.labels(self.name).set(time.time())
        return answer

    async def _dead(self, t: Transition, code: str, reason: str, attempts: int, status: int | None,
                    first_wall: float | None) -> None:
        payload, encoding, truncated = deadletter_payload(t.raw)
        record = {"receiver": self.name, "url": self.receiver.safe_url, "topic": t.tp.topic,
                  "partition": t.tp.partition, "offset": t.offset, "alert_id": t.alert_id,
                  "version": t.version, "transition": t.transition, "reason_code": code,
                  "reason": reason, "attempts": attempts, "last_status": status,
                  "first_attempt_at": None if first_wall is None else self.stamp(first_wall),
                  "failed_at": self.stamp(time.time()), "payload": payload,
                  "payload_encoding": encoding, "truncated": truncated}
        value = orjson.dumps(record)
        while True:     # the offset waits for this: keep trying while Kafka refuses
            try:
                await self.producer.send_and_wait(self.dead_topic, value, key=self.name.encode())
                break
            except KafkaError as e:
                log.error("receiver %s: cannot write a dead letter (%r); retrying in %.0f s",
                          self.name, e, RETRY_KAFKA_S)
                await asyncio.sleep(RETRY_KAFKA_S)
        log.error("receiver %s: %s version %s is a dead letter (%s): %s", self.name, t.alert_id,
                  t.version, code, reason)
        self.metrics.messages.labels(self.name, "dead").inc()
        self.metrics.deadletters.labels(self.name, code).inc()

    # -- offsets and partitions -----------------------------------------------------------------

    async def _commit_every(self) -> None:
        while True:
            await asyncio.sleep(COMMIT_INTERVAL_S)
            try:
                await self._commit()
            except KafkaError as e:
                log.warning("receiver %s: commit failed (%r); next try in %.0f s", self.name, e,
                            COMMIT_INTERVAL_S)

    async def _commit(self, partitions: list[TopicPartition] | None = None) -> None:
        if self.consumer is None:
            return
        offsets = {}
        for tp in partitions if partitions is not None else list(self.progress):
            progress = self.progress.get(tp)
            point = progress.to_commit() if progress is not None else None
            if point is not None:
                offsets[tp] = point
        if offsets:
            await commit_offsets(self.consumer, offsets)
            for tp, offset in offsets.items():
                if tp in self.progress:
                    self.progress[tp].done_committing(offset)

    async def _backlog(self) -> None:
        """Records not yet read; a rebalance between two awaits skips this measurement."""
        assert self.consumer is not None
        lag = 0
        try:
            for tp in self.consumer.assignment():
                highwater = self.consumer.highwater(tp)
                if highwater is not None:
                    lag += max(0, highwater - await self.consumer.position(tp))
        except (KafkaError, AssertionError):
            return
        self.metrics.backlog.labels(self.name).set(lag)

    def assigned(self, partitions: set[TopicPartition]) -> None:
        """Partitions given to this receiver: counted and paused at once (before any await),
        then placed by :meth:`_place`, which resumes them."""
        assert self.consumer is not None
        for tp in partitions:
            self.progress[tp] = Progress.empty()
        self.placing |= partitions
        self.consumer.pause(*partitions)
        asyncio.get_running_loop().create_task(self._place(set(partitions)))

    async def _place(self, partitions: set[TopicPartition]) -> None:
        """A new receiver starts where ``start`` says, committed at once, so a crash before its
        first delivery does not move its start; then its partitions are read. Retried until it
        works: until then the partitions stay paused, which stalls nothing but them."""
        assert self.consumer is not None
        consumer = self.consumer
        while True:
            mine = partitions & consumer.assignment()
            try:
                committed = {tp: await consumer.committed(tp) for tp in mine}
                fresh = [tp for tp, offset in committed.items() if offset is None]
                if fresh:
                    where = (await log_start_offsets(self.settings, fresh)
                             if self.receiver.start == "earliest"
                             else await true_end_offsets(self.settings, fresh))
                    fresh = [tp for tp in fresh if tp in consumer.assignment()]
                    for tp in fresh:
                        consumer.seek(tp, where[tp])
                    if fresh:
                        await commit_offsets(consumer, {tp: where[tp] for tp in fresh})
                        log.info("receiver %s: new, starting at the %s of %s", self.name,
                                 self.receiver.start,
                                 ", ".join(f"{tp.partition}@{where[tp]}" for tp in sorted(fresh)))
                break
            except (KafkaError, OSError, AssertionError) as e:
                log.warning("receiver %s: cannot find where to start (%r); retrying in %.0f s",
                            self.name, e, RETRY_KAFKA_S)
                await asyncio.sleep(RETRY_KAFKA_S)
        self.placing -= partitions
        if not self.paused:
            consumer.resume(*(partitions & consumer.assignment()))

    async def revoked(self, partitions: set[TopicPartition]) -> None:
        """Partitions taken away: commit what is finished, and stop their deliveries (the new
        owner sends the rest again, with the same idempotency keys)."""
        try:
            await self._commit([tp for tp in partitions if tp in self.progress])
        except KafkaError as e:
            log.warning("receiver %s: commit on revocation failed (%r)", self.name, e)
        gone = [(k, c) for k, c in self.chains.items() if k[0] in partitions]
        for key, chain in gone:
            if chain.task is not None:
                chain.task.cancel()
            del self.chains[key]
        await asyncio.gather(*(c.task for _, c in gone if c.task), return_exceptions=True)
        self.placing -= partitions
        for tp in partitions:
            progress = self.progress.pop(tp, None)
            if progress is not None:
                self._release(len(progress.order))


def body_for(receiver: Receiver, raw: bytes, sender: str, alert: dict[str, Any] | None = None) -> bytes:
    """What a receiver is sent of one ``city.alerts`` record: the record itself, or (format
    ``cap``) its CAP rendering, from ``alert`` if the record is already parsed. Raises one of
    :data:`RENDER_ERRORS` when the record cannot be rendered."""
    if receiver.format != "cap":
        return raw
    return cap.render(alert if alert is not None else orjson.loads(raw), sender)


def session_for(receiver: Receiver) -> aiohttp.ClientSession:
    """The HTTP session of one receiver: its concurrency, its timeout, its format's type."""
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=receiver.concurrency),
        timeout=aiohttp.ClientTimeout(total=receiver.timeout / 1000),
        headers={"User-Agent": USER_AGENT, "Content-Type": CONTENT_TYPES[receiver.format]})


async def post(session: aiohttp.ClientSession, receiver: Receiver, secret: bytes, alert_id: str,
               version: int, body: bytes, attempt: int) -> Answer:
    """One signed request of one transition, and what its answer means (``webhooks resend``
    sends its transitions with it too)."""
    stamp = int(time.time())
    headers = {IDEMPOTENCY_HEADER: idempotency_key(alert_id, version), TIMESTAMP_HEADER: str(stamp),
               SIGNATURE_HEADER: signature(secret, stamp, body), ATTEMPT_HEADER: str(attempt)}
    try:
        async with session.post(receiver.url, data=body, headers=headers, allow_redirects=False) as resp:
            excerpt = (await resp.content.read(BODY_EXCERPT)).decode("utf-8", "replace")
            return Answer(result_of(resp.status), resp.status, f"HTTP {resp.status}: {excerpt}".rstrip(": "),
                          retry_after_ms(resp.headers.get("Retry-After")))
    except TimeoutError:
        return Answer("timeout", None, f"no answer within {receiver.timeout / 1000:g} s")
    except (aiohttp.ClientError, OSError) as e:
        return Answer("connection", None, f"{type(e).__name__}: {e}")


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, loop: ReceiverLoop) -> None:
        self.loop = loop

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        await self.loop.revoked(set(revoked))

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        self.loop.assigned(set(assigned))


class Webhooks:
    """Every receiver of a receivers file, in one process, with one producer for dead letters."""

    def __init__(self, settings: Settings, config: Receivers, secrets: dict[str, bytes],
                 stamp: Callable[[float], str]) -> None:
        self.settings, self.config, self.secrets, self.stamp = settings, config, secrets, stamp
        self.metrics = WebhookMetrics()

    async def run(self) -> None:
        s = self.settings
        alerts = s.topic(ALERTS_TOPIC)
        await ensure_topics(s, {alerts: s.partitions, s.topic(DEAD_TOPIC): s.partitions})
        configs = await read_topic_configs(s, [alerts])
        for line in retention_warnings(alerts, configs.get(alerts, {}), self.config.receivers):
            log.warning("%s", line)
        producer = AIOKafkaProducer(**s.producer_kwargs(), acks="all", linger_ms=5)
        await start_when_reachable(producer.start, "the producer")
        loops = [ReceiverLoop(s, r, self.secrets[r.name], self.config.sender, producer, self.metrics,
                              self.stamp) for r in self.config.receivers]
        try:
            await asyncio.gather(*(loop.run_forever() for loop in loops))
        finally:
            await producer.stop()

    def web_app(self) -> web.Application:
        return metrics_app(self.metrics.registry)


def retention_warnings(topic: str, configs: Mapping[str, str], receivers: Iterable[Receiver]) -> list[str]:
    """One line per receiver that would go on retrying a transition after Kafka deleted it:
    ``give_up_after`` longer than the topic's ``retention.ms``. Such a receiver, down for
    longer than the retention, loses what was deleted before it came back, without a dead
    letter (docs/webhooks.md, section 7). Nothing when the broker does not say (or keeps
    records for ever: -1)."""
    value = configs.get(RETENTION_MS, "")
    if not value.isdigit():
        return []
    kept = int(value)
    return [f"receiver {r.name} retries for up to {r.retry.give_up_after / 3_600_000:g} h (give_up_after), "
            f"but {topic} keeps records for {kept / 3_600_000:g} h ({RETENTION_MS}): down for longer, it "
            f"loses what Kafka deletes meanwhile, with no dead letter. Raise it with: kafka-configs.sh "
            f"--alter --entity-type topics --entity-name {topic} --add-config "
            f"{RETENTION_MS}={r.retry.give_up_after}"
            for r in receivers if r.retry.give_up_after > kept]


def _read(raw: bytes) -> tuple[dict[str, Any] | None, str | None]:
    """The alert message of a record, or why it is not one."""
    try:
        alert = orjson.loads(raw)
    except orjson.JSONDecodeError as e:
        return None, f"not JSON: {e}"
    if not isinstance(alert, dict):
        return None, "not an alert message: not a JSON object"
    alert_id, version, transition = (alert.get(k) for k in ("alert_id", "version", "transition"))
    if not (isinstance(alert_id, str) and _ALERT_ID.match(alert_id) and type(version) is int
            and version >= 1 and transition in _TRANSITIONS):
        return None, "not an alert message: no valid alert_id, version and transition"
    return alert, None
