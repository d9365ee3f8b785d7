"""NVIDIA DeepStream's ``nvmsgconv`` messages (on Kafka, from ``nvmsgbroker``) to
``city.events.camera``. Both of its schemas:

- **full** (``payload-type=0``): one object per message, with ``messageid``, ``@timestamp``,
  ``sensor.id``, and ``object`` holding ``id`` (the tracking id), ``bbox`` (``topleftx``,
  ``toplefty``, ``bottomrightx``, ``bottomrighty`` in pixels) and one class object
  (``vehicle``, ``person``, ``face``...) whose key is the label, with its ``confidence``;
- **minimal** (``payload-type=1``): every object of a frame as a string in ``objects``,
  ``id|left|top|right|bottom|label``, then optional ``#``-led sections: the classifier's
  attributes, which DeepStream 6 ends with the confidence when it has attributes and 8 and 9
  always end with it (an empty attribute list then); 9 adds pose, embedding and 3D sections.
  An untracked object has the id 18446744073709551615 (``UINT64_MAX``).

The full schema names the class by a key of ``object`` (``"vehicle": {...}``, ``"person":
{...}``, or the detector's own label with an empty object, ``"car": {}``), not by a field.

The camera (``sensor.id`` / ``sensorId``) must be in the city map with a calibration; boxes are
placed by ``adapters.placing``. docs/adapters.md has the details and a sample of each.
"""

from __future__ import annotations

from typing import Any, Final

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from adapters.placing import PixelBox, Placer, not_a, parse_object, worker_check
from models.decode import BadInput

#: Keys of the full schema's ``object`` that hold something other than its class.
NOT_CLASSES: Final = frozenset({"location", "coordinate", "pose", "embedding", "signature", "bbox"})
#: The tracking id of an object the tracker did not track.
UNTRACKED: Final = "18446744073709551615"
_LAX = ConfigDict(extra="ignore", frozen=True)


class _Bbox(BaseModel):
    model_config = _LAX
    topleftx: float
    toplefty: float
    bottomrightx: float
    bottomrighty: float


class _Sensor(BaseModel):
    model_config = _LAX
    id: str = Field(min_length=1, max_length=128)


class _Object(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)
    id: str | int | None = None
    bbox: _Bbox
    confidence: float | None = None


class _Full(BaseModel):
    model_config = _LAX
    messageid: str = Field(min_length=1, max_length=128)
    timestamp: str = Field(alias="@timestamp")
    sensor: _Sensor
    object: _Object
    videoPath: str | None = None


class _Minimal(BaseModel):
    model_config = _LAX
    id: str | int
    timestamp: str = Field(alias="@timestamp")
    sensorId: str = Field(min_length=1, max_length=128)
    objects: list[str] = Field(max_length=256)


class DeepStream:
    """Converts one ``nvmsgconv`` message; ``confidence`` is what a minimal-schema object
    without one gets (DeepStream sends only objects above its own detector threshold)."""

    def __init__(self, placer: Placer, confidence: float = 1.0) -> None:
        self.placer = placer
        self.confidence = confidence

    def __call__(self, raw: bytes) -> dict[str, Any] | BadInput:
        doc = parse_object(raw)
        if isinstance(doc, BadInput):
            return doc
        try:
            if "objects" in doc:
                event = self._minimal(_Minimal.model_validate(doc))
            else:
                event = self._full(_Full.model_validate(doc))
        except ValidationError as e:
            return not_a(e, "a DeepStream nvmsgconv message, full or minimal schema", _event_id(doc))
        return worker_check(event)

    def _full(self, m: _Full) -> dict[str, Any] | BadInput:
        o = m.object
        extra = o.model_extra or {}
        label, confidence = "object", o.confidence
        for name, attrs in extra.items():
            if isinstance(attrs, dict) and name not in NOT_CLASSES:
                label = name
                if confidence is None and type(attrs.get("confidence")) in (int, float):
                    confidence = float(attrs["confidence"])
                break
        b = o.bbox
        box = PixelBox(label, self.confidence if confidence is None else confidence, b.topleftx,
                       b.toplefty, b.bottomrightx, b.bottomrighty,
                       None if o.id in (None, "", UNTRACKED) else str(o.id))
        return self.placer.camera_event(m.sensor.id, m.messageid, m.timestamp, [box],
                                        snapshot_url=m.videoPath or None)

    def _minimal(self, m: _Minimal) -> dict[str, Any] | BadInput:
        event_id = f"ds-{m.sensorId}-{m.timestamp}-{m.id}"
        boxes = []
        for i, text in enumerate(m.objects):
            fields = text.split("|")
            if len(fields) < 6:
                return BadInput("invalid_field", f"objects[{i}]: expected id|left|top|right|bottom|label, "
                                f"got {text[:100]!r}", event_id)
            try:
                left, top, right, bottom = (float(x) for x in fields[1:5])
            except ValueError:
                return BadInput("invalid_field", f"objects[{i}]: a box coordinate that is not a "
                                f"number: {text[:100]!r}", event_id)
            track = fields[0] if fields[0] not in ("", UNTRACKED) else None
            confidence = _confidence(fields)
            boxes.append(PixelBox(fields[5], self.confidence if confidence is None else confidence,
                                  left, top, right, bottom, track))
        return self.placer.camera_event(m.sensorId, event_id, m.timestamp, boxes)


def _confidence(fields: list[str]) -> float | None:
    """The confidence that ends the attribute section (the first after ``label``), if any."""
    if len(fields) < 8 or fields[6] != "#":
        return None
    section = fields[7:]
    if "#" in section:
        section = section[:section.index("#")]
    try:
        value = float(section[-1]) if section else None
    except ValueError:       # DeepStream 6 with attributes but no confidence
        return None
    return value if value is not None and 0 <= value <= 1 else None


def _event_id(doc: dict[str, Any]) -> str | None:
    value = doc.get("messageid")
    return value if isinstance(value, str) and 1 <= len(value) <= 128 else None
