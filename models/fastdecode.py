"""The hot path's decoder: msgspec mirrors of the camera model (models.inputs).

Camera messages are nearly all of the input, and pydantic's ``validate_json`` builds a model
and a sub-model per detection at ~3.5 µs a message; msgspec decodes the same bounds into
slotted structs in about a third of that. The pydantic models stay what the contract is
written in: they generate the schemas, and they explain a rejection. So this decoder only
ever says "valid, and here it is" or "ask pydantic": it may refuse what pydantic accepts
(then :func:`models.decode.decode` decides, a little slower) but must never accept what
pydantic refuses, and an accepted message must read the same. tests/models/test_fastdecode.py
checks both on random messages.
"""

from __future__ import annotations

from typing import Annotated, Final

import msgspec
from msgspec import Meta, Struct

from models.timestamps import parse_input_timestamp_ms
from models.vocabulary import MAX_MESSAGE_BYTES

# The bounds of models.common, as msgspec spells them.
Id = Annotated[str, Meta(min_length=1, max_length=128)]
Fraction = Annotated[float, Meta(ge=0, le=1)]
Latitude = Annotated[float, Meta(ge=-90, le=90)]
Longitude = Annotated[float, Meta(ge=-180, le=180)]


class FastLocation(Struct, frozen=True, kw_only=True, gc=False):
    lat: Latitude
    lon: Longitude


class FastDetection(Struct, frozen=True, kw_only=True, gc=False):
    label: str
    track_id: Id | None = None
    confidence: Fraction
    bbox: tuple[Fraction, Fraction, Fraction, Fraction] | None = None
    location: FastLocation | None = None


class FastCamera(Struct, frozen=True, kw_only=True, gc=False):
    """A ``city.events.camera`` message; ``observed_at`` still as text (see :func:`camera`)."""

    event_id: Id
    camera_id: Id
    observed_at: str
    snapshot_url: str | None = None
    detections: Annotated[tuple[FastDetection, ...], Meta(max_length=256)]


_CAMERA: Final = msgspec.json.Decoder(FastCamera)


def camera(raw: bytes) -> tuple[FastCamera, int] | None:
    """A valid camera message and its time in epoch ms, or None: not known to be valid
    (invalid, or valid in a way this decoder does not take, such as a key given twice)."""
    if len(raw) > MAX_MESSAGE_BYTES:
        return None
    try:
        msg = _CAMERA.decode(raw)
        return msg, parse_input_timestamp_ms(msg.observed_at)
    except Exception:   # any refusal, in any form (a ValueError, a UnicodeDecodeError, ...)
        return None
