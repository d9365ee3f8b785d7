"""From a camera platform's pixel boxes to the contract's camera message: the part every camera
adapter shares. The camera must be in the city map with a calibration (``rules.calibration``);
each box is placed where its bottom centre touches the ground, and its label is mapped to the
contract's labels.

Pure: the adapters' I/O (``adapters.bridge``) calls it. A message that cannot be placed is a
:class:`models.decode.BadInput`, the same rejection the worker's own decoding gives, which the
bridge turns into a dead letter.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

import orjson
from pydantic import ValidationError

from models.decode import BadInput, Source, decode
from models.vocabulary import MAX_MESSAGE_BYTES
from rules.citymap import CityMap

#: Platform labels (lowercased) to the contract's, for the usual COCO-style detectors. A label
#: not here is passed on lowercased: the engine ignores and counts one that no rule pack
#: declares, so a city's own detector classes reach its own rules (``labels`` in a pack).
DEFAULT_LABELS: Final[Mapping[str, str]] = {
    "car": "parked_car", "vehicle": "parked_car", "suv": "parked_car", "sedan": "parked_car",
    "van": "parked_car", "truck": "heavy_truck", "bus": "heavy_truck",
    "bicycle": "parked_ebike", "motorcycle": "parked_ebike", "motorbike": "parked_ebike",
    "twowheeler": "parked_ebike", "dog": "stray_dog",
}


@dataclass(frozen=True, slots=True)
class PixelBox:
    """One object as a platform reports it: pixels from the frame's top left corner."""

    label: str
    confidence: float
    left: float
    top: float
    right: float
    bottom: float
    track_id: str | None = None


class Placer:
    """Places pixel boxes of calibrated cameras; ``labels`` overrides :data:`DEFAULT_LABELS`."""

    def __init__(self, city: CityMap, labels: Mapping[str, str] | None = None) -> None:
        self.city = city
        self.labels = {**DEFAULT_LABELS, **{k.lower(): v for k, v in (labels or {}).items()}}

    def label(self, raw: str) -> str:
        low = raw.strip().lower()
        return self.labels.get(low, low.replace(" ", "_"))

    def camera_event(self, camera_id: str, event_id: str, observed_at: str, boxes: Iterable[PixelBox],
                     snapshot_url: str | None = None) -> dict[str, Any] | BadInput:
        """The ``city.events.camera`` message, or why there is none."""
        device = self.city.cameras.get(camera_id)
        if device is None:
            return BadInput("unregistered_device", f"camera {camera_id!r} is not in the city map: "
                            "register it, with its calibration (docs/adapters.md)", event_id)
        cal = device.calibration
        if cal is None:
            return BadInput("unregistered_device", f"camera {camera_id!r} has no calibration in the "
                            "city map, so its pixel boxes cannot be placed: add "
                            "properties.calibration (docs/adapters.md)", event_id)
        detections = []
        for i, b in enumerate(boxes):
            if not 0 <= b.confidence <= 1:
                return BadInput("invalid_field", f"objects[{i}].confidence: must be from 0 to 1, "
                                f"got {b.confidence}", event_id)
            if not (b.right > b.left and b.bottom > b.top):
                return BadInput("invalid_field", f"objects[{i}]: box ({b.left}, {b.top}, {b.right}, "
                                f"{b.bottom}) is empty or inverted", event_id)
            foot = cal.foot(b.left, b.top, b.right, b.bottom)
            if foot is None:
                return BadInput("bad_coordinate", f"objects[{i}]: the box's bottom ({b.bottom} px) is "
                                f"above camera {camera_id!r}'s horizon: no ground position", event_id)
            detections.append({
                "label": self.label(b.label), "track_id": b.track_id, "confidence": b.confidence,
                "bbox": list(cal.box(b.left, b.top, b.right, b.bottom)),
                "location": {"lat": round(foot[0], 7), "lon": round(foot[1], 7)},
            })
        event: dict[str, Any] = {"event_id": event_id, "camera_id": camera_id, "observed_at": observed_at,
                                 "detections": detections}
        if snapshot_url is not None:
            event["snapshot_url"] = snapshot_url
        return event


def parse_object(raw: bytes) -> dict[str, Any] | BadInput:
    """A platform message's JSON object, or why it is not one, with the contract's reasons."""
    if len(raw) > MAX_MESSAGE_BYTES:
        return BadInput("too_large", f"message is {len(raw)} bytes, more than {MAX_MESSAGE_BYTES}", None)
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError as e:
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError as bad:
            return BadInput("bad_encoding", f"not valid UTF-8: byte at offset {bad.start}", None)
        return BadInput("bad_json", f"not JSON: {e}", None)
    if not isinstance(doc, dict):
        return BadInput("invalid_field", "message must be a JSON object", None)
    return doc


def not_a(error: ValidationError, what: str, event_id: str | None) -> BadInput:
    """``invalid_field`` for a message that is not ``what`` (a platform's format), naming the
    first field pydantic found wrong."""
    first = error.errors(include_url=False)[0]
    path = ".".join(str(p) for p in first["loc"]) or "message"
    return BadInput("invalid_field", f"{path}: {first['msg']} ({what})", event_id)


def worker_check(event: dict[str, Any] | BadInput) -> dict[str, Any] | BadInput:
    """``event`` if the worker would accept it, else the worker's own reason: refused here, where
    the source record is known, and never by the worker."""
    if isinstance(event, BadInput):
        return event
    checked = decode(Source.CAMERA, orjson.dumps(event))
    return checked if isinstance(checked, BadInput) else event
