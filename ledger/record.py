"""One ``city.alerts`` message as the ledger keeps it: parsed, checked against the contract,
and reduced to the fields its tables index.

Pure: no database, no Kafka. The consumer, ``cityorder ledger import`` and ``cityorder report
--alerts`` all read messages through :func:`parse`, so a message the ledger refuses is refused
the same way everywhere.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import orjson
from pydantic import ValidationError

from models.outputs import Alert
from models.timestamps import parse_timestamp_ms


@dataclass(frozen=True, slots=True)
class Transition:
    """One alert message. Times are UTC epoch milliseconds; ``message`` is the message as
    received (emitted_at included); ``content_hash`` covers everything but ``emitted_at``,
    which a worker that re-sends a transition after a crash stamps anew."""

    alert_id: str
    version: int
    transition: str
    status: str
    level: int
    rule_id: str
    category: str
    case_code: str | None
    severity: str
    grid_id: str
    district: str | None
    responsible_unit: str | None
    address: str | None
    lat: float
    lon: float
    hotspot: bool
    assignee: str | None
    actor: str | None
    opened_at: int
    deadline: int | None
    deferred_until: int | None
    at: int
    content_hash: str
    message: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Unreadable:
    """A record the ledger cannot use: ``reason`` says why, in one line."""

    reason_code: str   # not_json | bad_shape
    reason: str


def content_hash(message: dict[str, Any]) -> str:
    body = {k: v for k, v in message.items() if k != "emitted_at"}
    return hashlib.sha256(orjson.dumps(body, option=orjson.OPT_SORT_KEYS)).hexdigest()


def _ms(value: str | None) -> int | None:
    return None if value is None else parse_timestamp_ms(value)


def parse(raw: bytes) -> Transition | Unreadable:
    """The message in ``raw``, or why it cannot be used (never raises)."""
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError as e:
        return Unreadable("not_json", f"not JSON: {e}")
    if not isinstance(obj, dict):
        return Unreadable("bad_shape", f"expected a JSON object, got {type(obj).__name__}")
    try:
        msg = Alert.model_validate(obj)
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "message"
        return Unreadable("bad_shape", f"{where}: {first['msg']} ({e.error_count()} problem(s))")
    return Transition(
        alert_id=msg.alert_id, version=msg.version, transition=msg.transition, status=msg.status,
        level=msg.level, rule_id=msg.rule_id, category=msg.category, case_code=msg.case_code,
        severity=msg.severity, grid_id=msg.grid_id, district=msg.district,
        responsible_unit=msg.responsible_unit,
        address=msg.address,
        lat=msg.location.lat, lon=msg.location.lon, hotspot=msg.hotspot, assignee=msg.assignee,
        actor=msg.actor, opened_at=parse_timestamp_ms(msg.opened_at), deadline=_ms(msg.deadline),
        deferred_until=_ms(msg.deferred_until), at=parse_timestamp_ms(msg.at),
        content_hash=content_hash(obj), message=obj)
