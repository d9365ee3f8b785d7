"""``cityorder webhooks resend``: a receiver's dead letters, sent again once it is fixed.

The dead letters are read from ``city.webhooks.deadletter``, all of it up to where it ends when
the command starts, and only those of the one receiver named. Each transition goes once (the
latest dead letter of an ``(alert_id, version)``): one alert's transitions in version order,
alerts in id order. They are posted as ``run`` posts them, to the receivers file's URL with its
secret and format and the same ``Idempotency-Key``, once each. A transition that is not
delivered is reported, and its alert's later ones are held back, so that a receiver never gets
an alert's versions out of order.

Nothing is written: the dead letters stay where they are. A second resend sends again what the
first delivered, and the ``Idempotency-Key`` makes that harmless.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer

from streams.settings import Settings
from streams.topics import log_start_offsets, start_client, topic_partitions, true_end_offsets
from webhooks.config import Receiver
from webhooks.service import DEAD_TOPIC, RENDER_ERRORS, body_for, post, session_for


@dataclass(frozen=True, slots=True)
class Pending:
    """One transition to send again."""

    alert_id: str
    version: int
    transition: str | None
    payload: bytes
    """The ``city.alerts`` record, as the dead letter kept it."""

    @property
    def key(self) -> str:
        return f"{self.alert_id}:{self.version}"


def plan(dead: Iterable[dict[str, Any]], receiver: str,
         alerts: frozenset[str] = frozenset()) -> tuple[list[Pending], list[str]]:
    """What to send again to ``receiver`` (only ``alerts``' if any are named), in the order to
    send it, and why the rest of its dead letters cannot be sent."""
    chosen: dict[tuple[str, int], Pending] = {}
    problems: list[str] = []
    for d in dead:
        if d.get("receiver") != receiver or (alerts and d.get("alert_id") not in alerts):
            continue
        alert_id, version = d.get("alert_id"), d.get("version")
        where = f"{d.get('topic')} partition {d.get('partition')} offset {d.get('offset')}"
        if not isinstance(alert_id, str) or not isinstance(version, int):
            problems.append(f"{where}: not an alert message ({d.get('reason_code')}): nothing to send")
        elif (d.get("payload_encoding") != "utf-8" or d.get("truncated")
              or not isinstance(d.get("payload"), str)):
            problems.append(f"{alert_id}:{version}: the dead letter does not hold the whole message; "
                            f"it is at {where}")
        else:
            chosen[(alert_id, version)] = Pending(alert_id, version, d.get("transition"),
                                                  d["payload"].encode("utf-8"))
    return [chosen[k] for k in sorted(chosen)], problems


async def read_dead_letters(settings: Settings) -> tuple[list[dict[str, Any]], list[str]]:
    """Every dead letter on the topic up to its end now (none if the topic does not exist), and
    the records that are not dead letters (what they are, where)."""
    topic = settings.topic(DEAD_TOPIC)
    consumer = AIOKafkaConsumer(**settings.aiokafka_kwargs(), enable_auto_commit=False,
                                auto_offset_reset="earliest", client_id="cityorder-webhooks-resend")
    await start_client(consumer, settings)
    try:
        tps = await topic_partitions(consumer, topic)
        ends = await true_end_offsets(settings, tps)
        # not seek_to_beginning: on Tansu it can start past the lowest offset (log_start_offsets)
        starts = await log_start_offsets(settings, tps)
        tps = [tp for tp in tps if starts[tp] < ends[tp]]
        consumer.assign(tps)
        for tp in tps:
            consumer.seek(tp, starts[tp])
        dead: list[dict[str, Any]] = []
        unreadable: list[str] = []
        left = set(tps)
        while left:
            for tp, records in (await consumer.getmany(*left, timeout_ms=1000)).items():
                for r in records:
                    if r.offset >= ends[tp]:
                        break
                    try:
                        value = orjson.loads(r.value or b"")
                    except orjson.JSONDecodeError:
                        value = None
                    if isinstance(value, dict):
                        dead.append(value)
                    else:
                        unreadable.append(f"{topic} partition {tp.partition} offset {r.offset}: "
                                          "not a dead letter (not a JSON object)")
            left = {tp for tp in left if await consumer.position(tp) < ends[tp]}
        return dead, unreadable
    finally:
        await consumer.stop()


async def resend(settings: Settings, receiver: Receiver, secret: bytes, sender: str, *,
                 alerts: frozenset[str] = frozenset(), dry_run: bool = False,
                 echo: Callable[[str], None] = print) -> bool:
    """Send ``receiver``'s dead letters again (see the module); True if every one was
    delivered (with ``dry_run``: if every one could be sent)."""
    dead, unreadable = await read_dead_letters(settings)
    todo, problems = plan(dead, receiver.name, alerts)
    for line in [*unreadable, *problems]:
        echo(f"cannot send  {line}")
    if dry_run:
        for t in todo:
            echo(f"would send   {t.key} {t.transition}")
        echo(f"{len(todo)} to send to {receiver.name} ({receiver.safe_url}), {len(problems)} that cannot be")
        return not problems
    delivered, held = 0, set()
    async with session_for(receiver) as session:
        for t in todo:
            if t.alert_id in held:
                echo(f"held back    {t.key} {t.transition}: an earlier version was not delivered")
                continue
            try:
                body = body_for(receiver, t.payload, sender)
            except RENDER_ERRORS as e:   # orjson.JSONDecodeError is a ValueError
                echo(f"not sent     {t.key} {t.transition}: cannot be rendered as {receiver.format}: {e!r}")
                held.add(t.alert_id)
                continue
            answer = await post(session, receiver, secret, t.alert_id, t.version, body, attempt=1)
            if answer.result == "delivered":
                delivered += 1
                echo(f"delivered    {t.key} {t.transition}")
            else:
                held.add(t.alert_id)
                echo(f"not taken    {t.key} {t.transition}: {answer.detail}")
    echo(f"{delivered} of {len(todo)} delivered to {receiver.name} ({receiver.safe_url}); "
         f"{len(problems)} dead letters cannot be sent")
    return delivered == len(todo) and not problems
