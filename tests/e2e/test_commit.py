"""``streams.topics.commit_offsets``: a commit whose caller is cancelled (Ctrl-C, a service
stopping) is finished before the consumer stops, so nothing prints a traceback at exit and what
was consumed stays committed. With aiokafka's own ``consumer.commit`` this test fails with the
"Task exception was never retrieved" ``cityorder dev`` printed on Ctrl-C."""

from __future__ import annotations

import asyncio
import gc
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from streams.settings import Settings
from streams.topics import commit_offsets


async def _consumer(settings: Settings, tp: TopicPartition, group: str) -> AIOKafkaConsumer:
    """A consumer of the group with ``tp`` assigned (no group join: quick)."""
    consumer = AIOKafkaConsumer(**settings.aiokafka_kwargs(), group_id=group,
                                enable_auto_commit=False, auto_offset_reset="earliest")
    await consumer.start()
    consumer.assign([tp])
    return consumer


@pytest.mark.parametrize("round_", range(1, 5))
async def test_a_cancelled_commit_is_finished_before_the_consumer_stops(
        settings: Settings, round_: int) -> None:
    topic, group = f"{settings.topic_prefix}commits", f"{settings.topic_prefix}committer-{round_}"
    producer = AIOKafkaProducer(**settings.aiokafka_kwargs())
    await producer.start()
    try:
        for i in range(3):
            await producer.send_and_wait(topic, f"record {i}".encode(), partition=0)
    finally:
        await producer.stop()
    tp = TopicPartition(topic, 0)
    consumer = await _consumer(settings, tp, group)
    got: list[Any] = []
    while len(got) < 3:
        got += (await consumer.getmany(timeout_ms=1000)).get(tp, [])

    loop = asyncio.get_running_loop()
    unhandled: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda _, context: unhandled.append(context))
    try:
        caller = asyncio.create_task(commit_offsets(consumer, {tp: 3}))
        for _ in range(round_):          # cancel at different points of the request (not
            # before it starts: a task cancelled before it runs commits nothing)
            await asyncio.sleep(0)
        caller.cancel()
        with pytest.raises(asyncio.CancelledError):
            await caller
        await consumer.stop()            # as a service's ``finally`` does next
        await asyncio.sleep(0.2)
        gc.collect()                     # an exception never retrieved is reported here
        assert unhandled == []
    finally:
        loop.set_exception_handler(None)

    again = await _consumer(settings, tp, group)
    try:
        assert await again.committed(tp) == 3
    finally:
        await again.stop()
