"""Follow ``city.alerts`` and show each transition on one line, for people at a terminal.

``cityorder tail`` and ``cityorder dev`` print alerts with :func:`describe`; ``--json`` prints
the messages as they are, for piping into ``jq``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer

from streams.settings import Settings
from streams.topics import start_client

#: Transitions a duty officer cares about at a glance (``updated`` is mostly new evidence).
NOTEWORTHY = frozenset({"opened", "escalated", "overdue", "cleared", "acknowledged", "dispatched",
                        "resolved", "closed", "rejected", "reopened", "deferred", "resumed"})


def describe(alert: dict[str, Any]) -> str:
    """One line: time, transition, level, severity, rule, grid, alert id, occurrences, who is told.

    ``08:15:02 opened       L1 major    street-vending.main-road  JY-0312  a-JY-0312-…  14×  → district_duty``
    """
    at = str(alert.get("at", ""))
    clock = at[11:19] if len(at) >= 19 else at
    notify = ", ".join(alert.get("notify") or [])
    extra = []
    if alert.get("hotspot"):
        extra.append("hotspot")
    if alert.get("assignee"):
        extra.append(f"assignee {alert['assignee']}")
    if alert.get("actor"):
        extra.append(f"by {alert['actor']}")
    return (f"{clock} {alert.get('transition', '?'):<12} L{alert.get('level', '?')} "
            f"{alert.get('severity', '?'):<8} {alert.get('rule_id', '?'):<28} {alert.get('grid_id', '?'):<8} "
            f"{alert.get('alert_id', '?')}  {alert.get('occurrences', 0)}×"
            + (f"  → {notify}" if notify else "") + (f"  ({'; '.join(extra)})" if extra else ""))


async def follow(settings: Settings, show: Callable[[dict[str, Any]], None], *, from_beginning: bool,
                 idle_exit_s: float | None = None) -> int:
    """Call ``show`` for every alert message until cancelled (or idle for ``idle_exit_s``)."""
    consumer = AIOKafkaConsumer(settings.topic("city.alerts"), **settings.aiokafka_kwargs(),
                                client_id="cityorder-tail", enable_auto_commit=False,
                                auto_offset_reset="earliest" if from_beginning else "latest",
                                fetch_max_wait_ms=100)
    await start_client(consumer, settings)
    n = 0
    last = time.monotonic()
    try:
        while idle_exit_s is None or time.monotonic() - last < idle_exit_s:
            batch = await consumer.getmany(timeout_ms=200)
            for records in batch.values():
                for r in records:
                    try:
                        show(orjson.loads(r.value))
                    except orjson.JSONDecodeError:
                        show({"transition": "unreadable", "alert_id": repr(r.value[:80])})
                    n += 1
                    last = time.monotonic()
    finally:
        await consumer.stop()
    return n
