"""Bytes from a source topic to a validated event, or to the reason it is bad input.

This is the hot path of the whole system: every consumed message passes here once. The
success path is one pydantic-core ``validate_json`` call (parse and validate in Rust) plus two
``memchr`` scans; everything that explains a failure runs only after a failure.

>>> from models.decode import Source, decode
>>> decode(Source.SENSOR, b'{"event_id": "e1"}').reason
'sensor_id: is required'
"""

import re
from dataclasses import dataclass
from enum import IntEnum
from typing import Final

from pydantic import ValidationError
from pydantic_core import from_json

from models.inputs import CameraEvent, Feedback, ReportEvent, SensorEvent
from models.reasons import reason_code_of, reason_of
from models.vocabulary import MAX_MESSAGE_BYTES

Event = CameraEvent | SensorEvent | ReportEvent | Feedback


class Source(IntEnum):
    """Where an input came from; the order is the contract's tie-break order at equal times."""

    CAMERA = 0
    SENSOR = 1
    REPORT = 2
    FEEDBACK = 3


TOPIC_SOURCES: Final[dict[str, Source]] = {
    "city.events.camera": Source.CAMERA,
    "city.events.sensor": Source.SENSOR,
    "city.events.report": Source.REPORT,
    "city.alerts.feedback": Source.FEEDBACK,
}
"""Default topic names (a deployment may prefix them) to the source they carry."""


@dataclass(frozen=True, slots=True)
class BadInput:
    """Why a message cannot be used: what the dead-letter record needs besides the raw bytes.

    ``event_id`` is the message's own when it is a valid id even though another field is bad,
    so a producer can find the message it sent; None when it is unknown.
    """

    reason_code: str
    reason: str
    event_id: str | None


_VALIDATE: Final = (
    CameraEvent.__pydantic_validator__.validate_json,
    SensorEvent.__pydantic_validator__.validate_json,
    ReportEvent.__pydantic_validator__.validate_json,
    Feedback.__pydantic_validator__.validate_json,
)
_N, _I = ord("N"), ord("I")
_NONFINITE: Final = BadInput("bad_json", "NaN and Infinity are not JSON numbers", None)
# A JSON string in bytes that are already known to be valid JSON (escapes included).
_JSON_STRING: Final = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)


def decode(source: Source, raw: bytes) -> Event | BadInput:
    """Validate one message of ``source``; never raises, whatever the bytes.

    Reason codes: ``too_large`` (over 1 MiB, not parsed at all), ``bad_encoding``,
    ``bad_json`` (including ``NaN``/``Infinity``), ``invalid_field``, ``naive_timestamp``,
    ``bad_timestamp`` and ``future_timestamp`` (a time before, or at or after, the contract's
    range: models/timestamps.py), ``bad_coordinate``, ``unknown_action``. With several bad
    fields the first one pydantic reports (field order, depth first) decides, so the same
    bytes always give the same reason.
    """
    try:
        if type(raw) is not bytes:
            raw = bytes(raw)
        if len(raw) > MAX_MESSAGE_BYTES:
            return BadInput(
                "too_large", f"message is {len(raw)} bytes, more than {MAX_MESSAGE_BYTES}", None
            )
        try:
            event: Event = _VALIDATE[source](raw)
        except ValidationError as error:
            return _explain(raw, error)
        # pydantic-core's parser accepts NaN and Infinity tokens; strict JSON does not. Both
        # tokens contain an N or an I, and one memchr for each rules out nearly every message.
        if (_N in raw or _I in raw) and _has_nonfinite_token(raw):
            return _NONFINITE
        return event
    except Exception as error:  # the contract: decode never raises
        return BadInput("invalid_field", f"message could not be validated: {error!r}", None)


def _has_nonfinite_token(raw: bytes) -> bool:
    """Whether valid-but-for-NaN JSON has a ``NaN``/``Infinity`` token outside its strings."""
    if _N not in raw and _I not in raw:
        return False
    if b"NaN" not in raw and b"Infinity" not in raw:
        return False
    bare = _JSON_STRING.sub(b'""', raw)
    return b"NaN" in bare or b"Infinity" in bare


def _explain(raw: bytes, error: ValidationError) -> BadInput:
    first = error.errors(include_url=False)[0]
    if first["type"] == "json_invalid":
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError as bad:
            return BadInput(
                "bad_encoding",
                f"not valid UTF-8: byte 0x{raw[bad.start]:02x} at offset {bad.start}",
                None,
            )
        detail = str(first.get("ctx", {}).get("error", first["msg"]))
        return BadInput("bad_json", f"not JSON: {detail}", None)
    if _has_nonfinite_token(raw):
        return _NONFINITE
    if first["type"] == "model_type" and not first["loc"]:
        return BadInput("invalid_field", "message must be a JSON object", None)
    return BadInput(reason_code_of(first), reason_of(first), _event_id_of(raw))


def _event_id_of(raw: bytes) -> str | None:
    """The message's ``event_id`` if it is a valid id, for a message that failed elsewhere."""
    try:
        document = from_json(raw)
    except ValueError:
        return None
    if isinstance(document, dict):
        event_id = document.get("event_id")
        if type(event_id) is str and 1 <= len(event_id) <= 128:
            return event_id
    return None
