"""Frigate NVR's ``frigate/events`` MQTT messages to ``city.events.camera``.

Frigate publishes one message each time a tracked object is first seen (``type: new``), changes
(``update``) and leaves (``end``), with the object before and after (``before``/``after``: ``id``,
``camera``, ``frame_time`` in Unix seconds, ``label``, ``score``, ``box`` as ``[x_min, y_min,
x_max, y_max]`` pixels of the detect stream, ``stationary``, ``false_positive``, ``has_snapshot``...;
Frigate 0.13 to 0.15, see tests/adapters/samples/README.md).

- ``new`` and ``update`` of a confirmed object: one detection of ``after``, placed through the
  camera's calibration, its Frigate id as the track id, its current ``score`` as the confidence.
- ``end``, and an object Frigate still counts as a false positive: a heartbeat (no detections):
  the camera is alive, but the object is gone or not confirmed. A persist rule sees the object
  go quiet; nothing is dropped.

Frigate's camera name is the camera id in the city map, and its zones are not used: the city
map's zones are (placed by position).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from adapters.placing import PixelBox, Placer, not_a, parse_object, worker_check
from models.decode import BadInput

_LAX = ConfigDict(extra="ignore", frozen=True)


class _Tracked(BaseModel):
    model_config = _LAX
    id: str = Field(min_length=1, max_length=100)
    camera: str = Field(min_length=1, max_length=128)
    frame_time: float
    label: str = Field(min_length=1)
    score: float
    box: tuple[float, float, float, float]
    false_positive: bool = False
    has_snapshot: bool = False


class _Event(BaseModel):
    model_config = _LAX
    type: Literal["new", "update", "end"]
    after: _Tracked


class Frigate:
    """Converts one ``frigate/events`` message; ``snapshot_base`` (Frigate's URL, e.g.
    ``http://frigate:5000``) makes ``snapshot_url`` a link to the event's snapshot."""

    def __init__(self, placer: Placer, snapshot_base: str | None = None) -> None:
        self.placer = placer
        self.snapshot_base = snapshot_base.rstrip("/") if snapshot_base else None

    def __call__(self, raw: bytes) -> dict[str, Any] | BadInput:
        doc = parse_object(raw)
        if isinstance(doc, BadInput):
            return doc
        try:
            event = _Event.model_validate(doc)
        except ValidationError as e:
            return not_a(e, "a Frigate frigate/events message", None)
        o = event.after
        try:
            observed_at = datetime.fromtimestamp(o.frame_time, UTC).isoformat(timespec="milliseconds")
        except (OverflowError, OSError, ValueError):
            return BadInput("bad_timestamp", f"after.frame_time: {o.frame_time} is not a usable Unix "
                            "time", None)
        gone = event.type == "end" or o.false_positive
        event_id = f"frigate-{o.id}-{'end' if event.type == 'end' else f'{o.frame_time:.6f}'}"
        boxes = [] if gone else [PixelBox(o.label, o.score, *o.box, track_id=o.id)]
        snapshot = (f"{self.snapshot_base}/api/events/{o.id}/snapshot.jpg"
                    if self.snapshot_base and o.has_snapshot and not gone else None)
        return worker_check(self.placer.camera_event(o.camera, event_id, observed_at, boxes,
                                                     snapshot_url=snapshot))
