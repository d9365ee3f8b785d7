"""The I/O of a camera adapter: read a platform's messages, write ``city.events.camera``, and
make every message that cannot be converted a dead letter with its reason, counted.

At least once, nothing lost: a batch's source offsets are committed only after every record it
produced (camera messages and dead letters) has been acknowledged by the broker; a crash in
between converts the batch again, and the worker recognises the repeats by their ``event_id``.
The converters are pure (``adapters.deepstream``); this module is the loop around them.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

import orjson
from aiohttp import web
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from prometheus_client import Counter, Gauge, Histogram

from models.decode import BadInput
from models.outputs import dead_letter
from streams.metrics import component_registry
from streams.settings import Settings
from streams.topics import commit_offsets, default_configs, ensure_topics, start_when_reachable
from streams.web import metrics_app

log = logging.getLogger(__name__)

FETCH_MAX_RECORDS = 2_000
#: A converter: a source record's value to a ``city.events.camera`` message, or why not.
Convert = Callable[[bytes], dict[str, Any] | BadInput]


class AdapterMetrics:
    def __init__(self, adapter: str) -> None:
        r = self.registry = component_registry(f"adapter-{adapter}")
        self.messages = Counter("cityorder_adapter_messages", "Source messages by outcome: converted "
                                "(written to city.events.camera) or dead (a dead letter).",
                                ["adapter", "outcome"], registry=r)
        self.deadletters = Counter("cityorder_adapter_deadletters", "Dead letters the adapter wrote, "
                                   "by reason.", ["adapter", "reason_code"], registry=r)
        self.lag = Gauge("cityorder_adapter_lag_records", "Source records not yet read.", ["adapter"],
                         registry=r)
        self.batch = Histogram("cityorder_adapter_batch_seconds", "Time to convert, write and commit "
                               "one fetched batch.", ["adapter"], registry=r)
        self.ready = Gauge("cityorder_adapter_ready", "1 while the adapter reaches its broker "
                           "(over MQTT: once its subscription is acknowledged).", ["adapter"],
                           registry=r)


class Router:
    """What one source record becomes, counted: a camera message, or a dead letter that names
    where the record was."""

    def __init__(self, settings: Settings, adapter: str, convert: Convert, stamp: Callable[[], str]) -> None:
        """``stamp``: the wall clock as the city writes times, for dead letters' received_at."""
        self.adapter, self.convert, self.stamp = adapter, convert, stamp
        self.metrics = AdapterMetrics(adapter)
        self.camera_topic = settings.topic("city.events.camera")
        self.dead_topic = settings.topic("city.alerts.deadletter")

    def route(self, topic: str, partition: int | None, offset: int | None, key: bytes | None,
              value: bytes) -> tuple[str, bytes | None, bytes]:
        """(topic, key, value) to produce for one source record."""
        result = self.convert(value)
        m = self.metrics
        if isinstance(result, BadInput):
            m.messages.labels(self.adapter, "dead").inc()
            m.deadletters.labels(self.adapter, result.reason_code).inc()
            text_key = key.decode("utf-8", "replace") if key is not None else None
            dead = dead_letter(topic=topic, partition=partition, offset=offset, key=text_key,
                               event_id=result.event_id, reason_code=result.reason_code,
                               reason=result.reason, payload=value, received_at=self.stamp())
            return self.dead_topic, key, orjson.dumps(dead)
        m.messages.labels(self.adapter, "converted").inc()
        return self.camera_topic, result["camera_id"].encode(), orjson.dumps(result)

    async def producer(self, settings: Settings) -> AIOKafkaProducer:
        """A started producer, the topics it writes created as a worker would (so an adapter
        may start first)."""
        mine = {self.camera_topic: settings.partitions, self.dead_topic: settings.partitions}
        await ensure_topics(settings, mine, configs=default_configs(settings))
        producer = AIOKafkaProducer(**settings.producer_kwargs(), acks="all", linger_ms=5,
                                    max_request_size=settings.max_record_bytes)
        await start_when_reachable(producer.start, "the producer")
        return producer

    def web_app(self) -> web.Application:
        return metrics_app(self.metrics.registry)


class KafkaBridge:
    """A platform that publishes to Kafka (DeepStream's ``nvmsgbroker``): its topics in, camera
    messages out, one consumer group per adapter."""

    def __init__(self, settings: Settings, router: Router, topics: list[str]) -> None:
        self.settings, self.router, self.topics = settings, router, topics
        self.adapter, self.metrics = router.adapter, router.metrics

    async def run(self) -> None:
        s = self.settings
        consumer = AIOKafkaConsumer(*self.topics, **s.aiokafka_kwargs(), enable_auto_commit=False,
                                    group_id=f"{s.app_id}-adapter-{self.adapter}",
                                    auto_offset_reset="earliest")
        producer = await self.router.producer(s)
        await start_when_reachable(consumer.start, "the consumer")
        self.metrics.ready.labels(self.adapter).set(1)
        log.info("adapter %s: %s -> %s", self.adapter, ", ".join(self.topics), self.router.camera_topic)
        try:
            while True:
                fetched = await consumer.getmany(timeout_ms=500, max_records=FETCH_MAX_RECORDS)
                if not fetched:
                    await self._lag(consumer)
                    continue
                started = time.perf_counter()
                acks = []
                for tp, recs in fetched.items():
                    for r in recs:
                        topic, key, value = self.router.route(tp.topic, tp.partition, r.offset, r.key,
                                                              r.value or b"")
                        acks.append(await producer.send(topic, value, key=key))
                await asyncio.gather(*acks)       # everything acknowledged, then the offsets
                await commit_offsets(consumer)
                self.metrics.batch.labels(self.adapter).observe(time.perf_counter() - started)
                await self._lag(consumer)
        finally:
            self.metrics.ready.labels(self.adapter).set(0)
            await consumer.stop()
            await producer.stop()

    async def _lag(self, consumer: AIOKafkaConsumer) -> None:
        lag = 0
        for tp in consumer.assignment():
            highwater = consumer.highwater(tp)
            if highwater is not None:
                lag += max(0, highwater - await consumer.position(tp))
        self.metrics.lag.labels(self.adapter).set(lag)

    def web_app(self) -> web.Application:
        return self.router.web_app()
