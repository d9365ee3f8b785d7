"""The two output topics, ``city.alerts`` and ``city.alerts.deadletter``.

These models check what cityorder itself emits (tests and the producer validate every message
against them) and publish its JSON Schema. Every field is required, even when null, because
the contract promises consumers that every field is always present; times are kept as the
exact strings sent, since consumers compare them as text and two runs must agree byte for byte.
"""

import base64
from typing import Annotated, Final, Literal

from pydantic import BaseModel, Field, Strict, StringConstraints

from models.common import (
    STRICT_FROZEN,
    Address,
    AlertId,
    Fraction,
    GridId,
    Id,
    Location,
    Photos,
    Text,
)
from models.timestamps import OutputTimestamp
from models.vocabulary import ReasonCode

Transition = Literal[
    "opened",
    "updated",
    "escalated",
    "overdue",
    "cleared",
    "acknowledged",
    "dispatched",
    "resolved",
    "closed",
    "rejected",
    "reopened",
    "deferred",
    "resumed",
]
Status = Literal["open", "acknowledged", "dispatched", "deferred", "resolved", "closed", "rejected"]
Severity = Literal["minor", "major", "critical"]

NonEmpty = Annotated[str, StringConstraints(min_length=1)]

# Arrays of outputs accept a list or a tuple when the engine validates a dict it built; from
# JSON they are arrays either way, and their items stay strict.
_ANY_SEQUENCE: Final = Strict(False)
OutputPhotos = Annotated[Photos, _ANY_SEQUENCE]
Names = Annotated[tuple[NonEmpty, ...], _ANY_SEQUENCE]

DEADLETTER_PAYLOAD_BYTES: Final = 65_536
"""The dead-letter payload keeps the first 64 KiB of the raw bytes: enough to diagnose a
producer, small enough that a flood of 1 MiB garbage does not become a flood of 1 MiB records."""


class CameraEvidence(BaseModel):
    """A detection (or, for a ``silent`` rule, the camera's last message) behind an alert."""

    model_config = STRICT_FROZEN

    event_id: Id
    source: Literal["camera"]
    kind: NonEmpty
    observed_at: OutputTimestamp
    camera_id: Id
    track_id: Id | None
    confidence: Fraction | None
    snapshot_url: str | None


class SensorEvidence(BaseModel):
    """A sensor reading behind an alert, with the state or value the rule looked at."""

    model_config = STRICT_FROZEN

    event_id: Id
    source: Literal["sensor"]
    kind: NonEmpty
    observed_at: OutputTimestamp
    sensor_id: Id
    state: str | None
    value: Annotated[float, Field(allow_inf_nan=False)] | None


class ReportEvidence(BaseModel):
    """A report behind an alert; the verifier needs who reported it, where, and the photos."""

    model_config = STRICT_FROZEN

    event_id: Id
    source: Literal["report"]
    kind: NonEmpty
    observed_at: OutputTimestamp
    reporter_id: Id | None
    address: Address | None
    photos: OutputPhotos | None


Evidence = Annotated[
    CameraEvidence | SensorEvidence | ReportEvidence, Field(discriminator="source")
]


class Alert(BaseModel):
    """One transition of one alert; ``(alert_id, version)`` is unique and consumers
    de-duplicate on it."""

    model_config = STRICT_FROZEN

    alert_id: AlertId
    version: Annotated[int, Field(ge=1)]
    transition: Transition
    status: Status
    level: Annotated[int, Field(ge=1)]
    notify: Names
    rule_id: NonEmpty
    category: NonEmpty
    case_code: str | None
    description: str | None
    severity: Severity
    grid_id: GridId
    district: str | None
    responsible_unit: str | None
    zones: Names
    location: Location
    address: Address | None
    first_seen: OutputTimestamp
    last_seen: OutputTimestamp
    opened_at: OutputTimestamp
    deadline: OutputTimestamp | None
    occurrences: Annotated[int, Field(ge=1)]
    hotspot: bool
    assignee: Id | None
    deferred_until: OutputTimestamp | None
    actor: Id | None
    note: Text | None
    photos: OutputPhotos | None
    evidence: Annotated[tuple[Evidence, ...], Field(min_length=1, max_length=10), _ANY_SEQUENCE]
    at: OutputTimestamp
    emitted_at: OutputTimestamp


class DeadLetter(BaseModel):
    """Input that could not be used, with enough of it to find and fix the producer."""

    model_config = STRICT_FROZEN

    topic: NonEmpty
    partition: Annotated[int, Field(ge=0)] | None
    offset: Annotated[int, Field(ge=0)] | None
    key: str | None
    event_id: Id | None
    reason_code: ReasonCode
    reason: str
    payload: Annotated[str, StringConstraints(max_length=(DEADLETTER_PAYLOAD_BYTES + 2) // 3 * 4)]
    payload_encoding: Literal["utf-8", "base64"]
    truncated: bool
    received_at: OutputTimestamp


def deadletter_payload(raw: bytes) -> tuple[str, Literal["utf-8", "base64"], bool]:
    """``(payload, payload_encoding, truncated)`` for a dead letter of ``raw``.

    Text when the bytes are UTF-8 (readable in any console), base64 otherwise; cut to the first
    64 KiB, backing off to a character boundary so the cut itself never makes text invalid.
    """
    truncated = len(raw) > DEADLETTER_PAYLOAD_BYTES
    head = raw[:DEADLETTER_PAYLOAD_BYTES] if truncated else raw
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return base64.b64encode(head).decode("ascii"), "base64", truncated
    end = len(head)
    if truncated:
        # Back off over continuation bytes (10xxxxxx) to the start of the cut character.
        while end > 0 and (raw[end] & 0xC0) == 0x80:
            end -= 1
    return head[:end].decode("utf-8"), "utf-8", truncated
