"""The output topics: ``city.alerts`` and ``city.alerts.deadletter`` (the contract's),
``city.audit`` and ``city.webhooks.deadletter`` (cityorder's own).

These models check what cityorder itself emits (tests and the producer validate every message
against them) and publish its JSON Schema. Every field is required, even when null, because
the contract promises consumers that every field is always present; times are kept as the
exact strings sent, since consumers compare them as text and two runs must agree byte for byte.
"""

import base64
from typing import Annotated, Any, Final, Literal

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
    """The input message's event_id."""
    source: Literal["camera"]
    """The input topic it came from: camera (city.events.camera)."""
    kind: NonEmpty
    """The detection's label (heartbeat for a silent rule's last heartbeat)."""
    observed_at: OutputTimestamp
    """The input's observed_at."""
    camera_id: Id
    """The camera."""
    track_id: Id | None
    """The tracker's id of the object, if it had one."""
    confidence: Fraction | None
    """The detector's confidence, 0 to 1 (null for a heartbeat)."""
    snapshot_url: str | None
    """The link to the frame, if the camera sent one."""


class SensorEvidence(BaseModel):
    """A sensor reading behind an alert, with the state or value the rule looked at."""

    model_config = STRICT_FROZEN

    event_id: Id
    """The input message's event_id."""
    source: Literal["sensor"]
    """The input topic it came from: sensor (city.events.sensor)."""
    kind: NonEmpty
    """The sensor kind."""
    observed_at: OutputTimestamp
    """The input's observed_at."""
    sensor_id: Id
    """The sensor."""
    state: str | None
    """The state the rule looked at (state kinds); null for a value kind."""
    value: Annotated[float, Field(allow_inf_nan=False)] | None
    """The value the rule looked at, in the kind's unit (value kinds); null for a state kind."""


class ReportEvidence(BaseModel):
    """A report behind an alert; the verifier needs who reported it, where, and the photos."""

    model_config = STRICT_FROZEN

    event_id: Id
    """The input message's event_id."""
    source: Literal["report"]
    """The input topic it came from: report (city.events.report)."""
    kind: NonEmpty
    """The report's category."""
    observed_at: OutputTimestamp
    """The input's observed_at."""
    reporter_id: Id | None
    """Who reported, if known."""
    address: Address | None
    """The report's free-text address."""
    photos: OutputPhotos | None
    """The report's photo URLs."""


Evidence = Annotated[
    CameraEvidence | SensorEvidence | ReportEvidence, Field(discriminator="source")
]


class Alert(BaseModel):
    """One transition of one alert; ``(alert_id, version)`` is unique and consumers
    de-duplicate on it."""

    model_config = STRICT_FROZEN

    alert_id: AlertId
    """The case: a- + grid id + - + 20 hex digits, derived from rule, subject and episode start
    (the same input gives the same id in a replay and after a restart). Also the record key."""
    version: Annotated[int, Field(ge=1)]
    """This transition's place in the alert's history, from 1. (alert_id, version) is unique:
    de-duplicate on it, and take the highest version as the current state."""
    transition: Transition
    """What happened: opened, updated, escalated (up a level), overdue (past the deadline),
    cleared, acknowledged, dispatched, resolved, closed (verified), rejected, reopened,
    deferred, resumed (a deferral ended)."""
    status: Status
    """The status after it: open, acknowledged, dispatched, deferred, resolved (awaiting
    verification), closed or rejected."""
    level: Annotated[int, Field(ge=1)]
    """The escalation level now, from 1."""
    notify: Names
    """Roles to tell: on opened, every role of levels 1 up to the opening level; on escalated,
    the new level's roles; otherwise the current level's."""
    rule_id: NonEmpty
    """The rule that opened the alert."""
    category: NonEmpty
    """The rule's category, e.g. street_vendor."""
    case_code: str | None
    """The rule's 事部件 code (GB/T 30428.2), for 立案 in the city's case system."""
    description: str | None
    """The rule's description, e.g. 主干道流动摊贩占道经营."""
    severity: Severity
    """minor, major or critical: the rule's, one step higher if the alert opened in a key area
    or key period. Fixed at opening."""
    grid_id: GridId
    """The grid (万米单元网格). Fixed at opening."""
    district: str | None
    """The grid's district (街道), from the city map. Fixed at opening."""
    responsible_unit: str | None
    """The grid's responsible unit (e.g. a 城管中队), from the city map. Fixed at opening."""
    zones: Names
    """Every zone containing location that existed then (a scheduled zone only while open)."""
    location: Location
    """That of the latest attributed event that has one (WGS 84); else the grid's
    representative point."""
    address: Address | None
    """That of the latest attributed event that has one (reports)."""
    first_seen: OutputTimestamp
    """observed_at of the first attributed event."""
    last_seen: OutputTimestamp
    """observed_at of the latest attributed event."""
    opened_at: OutputTimestamp
    """When the alert opened; never changes, not even on reopen."""
    deadline: OutputTimestamp | None
    """The current 处置时限 (deadline to handle it), null if the rule has none; while deferred,
    the deadline as it will be if the deferral lasts until deferred_until."""
    occurrences: Annotated[int, Field(ge=1)]
    """Distinct events attributed to the alert."""
    hotspot: bool
    """True if the alert opened at a raised level as a 高发点位 (hotspot)."""
    assignee: Id | None
    """The current assignee, from dispatch."""
    deferred_until: OutputTimestamp | None
    """While deferred: when the deferral ends; otherwise null."""
    actor: Id | None
    """The actor of the feedback that caused this transition; null for the engine's own."""
    note: Text | None
    """The note of the feedback that caused this transition."""
    photos: OutputPhotos | None
    """The photo URLs of the feedback that caused this transition."""
    evidence: Annotated[tuple[Evidence, ...], Field(min_length=1, max_length=10), _ANY_SEQUENCE]
    """The first attributed event and the latest nine, newest first by (observed_at,
    event_id)."""
    at: OutputTimestamp
    """When the transition happened on the engine's timeline (its progress)."""
    emitted_at: OutputTimestamp
    """When the message was produced (wall clock): the only field that differs between runs."""


class DeadLetter(BaseModel):
    """Input that could not be used, with enough of it to find and fix the producer."""

    model_config = STRICT_FROZEN

    topic: NonEmpty
    """The topic the bad record came from, with its prefix."""
    partition: Annotated[int, Field(ge=0)] | None
    """Its partition in that topic (a replay writes 0)."""
    offset: Annotated[int, Field(ge=0)] | None
    """Its offset in that partition (a replay writes the line number minus one)."""
    key: str | None
    """The source record's key, decoded as UTF-8 with replacement characters."""
    event_id: Id | None
    """The message's event_id, if it could be read as a valid id."""
    reason_code: ReasonCode
    """Why it could not be used: docs/contracts.md section 7 explains each code and its usual
    causes."""
    reason: str
    """For people: field path and what is wrong, e.g. observed_at: timestamp has no UTC
    offset."""
    payload: Annotated[str, StringConstraints(max_length=(DEADLETTER_PAYLOAD_BYTES + 2) // 3 * 4)]
    """The raw bytes, as text if they are UTF-8, else base64: only the first 64 KiB, cut at a
    character boundary."""
    payload_encoding: Literal["utf-8", "base64"]
    """How to read payload."""
    truncated: bool
    """True if payload was cut to 64 KiB."""
    received_at: OutputTimestamp
    """When cityorder met it: a worker's wall clock."""


class AuditRecord(BaseModel):
    """One line of the console's audit trail (``city.audit``): who did what to which case,
    also kept in the ledger's ``audit`` table, which is the record; the topic is its copy."""

    model_config = STRICT_FROZEN

    at: OutputTimestamp
    """When (the console's wall clock)."""
    actor: Annotated[str, StringConstraints(max_length=64)] | None
    """The console user, or for a failed sign-in the name that was tried; null if none."""
    role: Literal["viewer", "operator", "supervisor", "admin"] | None
    """The user's role then; null for a sign-in that failed or was denied."""
    action: NonEmpty
    """sign_in, sign_out, note, or a lifecycle action (acknowledge, dispatch, defer, resolve,
    verify, reject, reopen)."""
    alert_id: AlertId | None
    """The case acted on; null for sign-in and sign-out."""
    address: Annotated[str, StringConstraints(max_length=64)] | None
    """The client's network address."""
    result: Literal["ok", "denied", "failed", "sent", "refused"]
    """ok; denied (sign-in rate limited, or a role that may not); failed (wrong password, or
    the action could not be sent); sent (to city.alerts.feedback); refused (the engine's dead
    letter for it)."""
    detail: dict[str, object] | None
    """More about it: the note, the feedback's event_id, the engine's reason_code and reason."""


class WebhookDeadLetter(BaseModel):
    """An alert transition a webhook receiver never took (``city.webhooks.deadletter``), kept
    with the message so it can be sent again by hand once the receiver is fixed."""

    model_config = STRICT_FROZEN

    receiver: NonEmpty
    """The receiver's name in the receivers file."""
    url: NonEmpty
    """Where it was sent, without the query (which may hold a token)."""
    topic: NonEmpty
    """The topic the message came from (city.alerts, with its prefix)."""
    partition: Annotated[int, Field(ge=0)]
    """Its partition there."""
    offset: Annotated[int, Field(ge=0)]
    """Its offset there."""
    alert_id: AlertId | None
    """The alert; null if the message could not be read."""
    version: Annotated[int, Field(ge=1)] | None
    """The transition's version; null if the message could not be read."""
    transition: Transition | None
    """The transition; null if the message could not be read."""
    reason_code: Literal["rejected", "gave_up", "unreadable", "error"]
    """rejected: the receiver answered with a status that another try would not change (4xx
    other than 408, 425 and 429; or a redirect); gave_up: it failed the message `attempts` times
    while accepting others, or failed everything for `give_up_after`; unreadable: the record is
    not an alert message; error: cityorder itself failed to send it (a bug: reason has the
    error)."""
    reason: str
    """For people: the last answer (status and the start of its body) or error."""
    attempts: Annotated[int, Field(ge=0)]
    """Requests made (0 for an unreadable record)."""
    last_status: Annotated[int, Field(ge=100, le=599)] | None
    """The HTTP status of the last answer; null after a timeout or a connection error."""
    first_attempt_at: OutputTimestamp | None
    """When the first request was made (wall clock); null if none was."""
    failed_at: OutputTimestamp
    """When it was given up (wall clock)."""
    payload: Annotated[str, StringConstraints(max_length=(DEADLETTER_PAYLOAD_BYTES + 2) // 3 * 4)]
    """The city.alerts record as it was read (JSON text), first 64 KiB; base64 if not UTF-8."""
    payload_encoding: Literal["utf-8", "base64"]
    """How to read payload."""
    truncated: bool
    """True if payload was cut to 64 KiB."""


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


def dead_letter(*, topic: str, partition: int | None, offset: int | None, key: str | None,
                event_id: str | None, reason_code: str, reason: str, payload: bytes,
                received_at: str) -> dict[str, Any]:
    """The ``city.alerts.deadletter`` message of ``payload`` (the raw bytes), as every writer
    of dead letters builds it: the replay, the worker, the adapters."""
    text, encoding, truncated = deadletter_payload(payload)
    return {"topic": topic, "partition": partition, "offset": offset, "key": key,
            "event_id": event_id, "reason_code": reason_code, "reason": reason, "payload": text,
            "payload_encoding": encoding, "truncated": truncated, "received_at": received_at}
