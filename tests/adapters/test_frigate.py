"""Frigate ``frigate/events`` (the recorded new, update and end of one car, samples/README.md):
confirmed objects become placed detections, an object's end a heartbeat, and anything else a
rejection with the contract's reason code, never an exception."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.frigate import Frigate
from adapters.placing import Placer
from models.decode import BadInput
from models.inputs import CameraEvent
from tests.adapters.test_deepstream import CITY, metres, truth

SAMPLES = Path(__file__).parent / "samples"


def events() -> list[dict[str, Any]]:
    """The samples, on the calibrated demo camera (Frigate's camera name is the map's id)."""
    out = []
    for line in (SAMPLES / "frigate_events.jsonl").read_text(encoding="utf-8").splitlines():
        event = json.loads(line)
        for side in ("before", "after"):
            event[side]["camera"] = "cam-0012"
        out.append(event)
    return out


def convert(message: dict[str, Any] | bytes, **kw: Any) -> dict[str, Any] | BadInput:
    raw = message if isinstance(message, bytes) else orjson.dumps(message)
    return Frigate(Placer(CITY), **kw)(raw)


def test_a_tracked_car_is_placed_then_ends_in_a_heartbeat() -> None:
    new, update, end = (convert(e, snapshot_base="http://frigate:5000/") for e in events())
    for event in (new, update, end):
        assert isinstance(event, dict)
        CameraEvent.model_validate_json(orjson.dumps(event))
    assert isinstance(new, dict) and isinstance(update, dict) and isinstance(end, dict)
    assert new["event_id"] == "frigate-1795306497.483512-q7h2xk-1795306498.884107"
    assert new["observed_at"] == "2026-11-22T00:14:58.884+00:00"
    (d,) = new["detections"]
    assert (d["label"], d["track_id"], d["confidence"]) == (
        "parked_car", "1795306497.483512-q7h2xk", 0.8203125)
    assert metres((d["location"]["lat"], d["location"]["lon"]), truth((648 + 872) / 2, 486)) < 0.05
    assert new["snapshot_url"] == "http://frigate:5000/api/events/1795306497.483512-q7h2xk/snapshot.jpg"
    assert update["detections"][0]["confidence"] == 0.8125
    assert end["event_id"] == "frigate-1795306497.483512-q7h2xk-end"
    assert end["detections"] == [] and "snapshot_url" not in end


def test_an_object_frigate_has_not_confirmed_is_only_a_sign_of_life() -> None:
    new = events()[0]
    new["after"]["false_positive"] = True
    event = convert(new)
    assert isinstance(event, dict) and event["detections"] == []


@pytest.mark.parametrize(("change", "code", "reason"), [
    (lambda e: b"{", "bad_json", "not JSON"),
    (lambda e: {k: v for k, v in e.items() if k != "after"}, "invalid_field", "after: Field required"),
    (lambda e: e | {"type": "moved"}, "invalid_field", "type"),
    (lambda e: e | {"after": e["after"] | {"box": [1, 2, 3]}}, "invalid_field", "after.box"),
    (lambda e: e | {"after": e["after"] | {"frame_time": 1e300}}, "bad_timestamp", "frame_time"),
    (lambda e: e | {"after": e["after"] | {"frame_time": 4.2e9}}, "future_timestamp", "observed_at"),
    (lambda e: e | {"after": e["after"] | {"camera": "garage"}}, "unregistered_device",
     "not in the city map"),
    (lambda e: e | {"after": e["after"] | {"camera": "cam-0001"}}, "unregistered_device", "no calibration"),
    (lambda e: e | {"after": e["after"] | {"score": 1.5}}, "invalid_field", "confidence"),
])
def test_what_cannot_be_converted_is_rejected_with_a_reason(change: Any, code: str, reason: str) -> None:
    result = convert(change(events()[0]))
    assert isinstance(result, BadInput), result
    assert result.reason_code == code and reason in result.reason, result


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.sampled_from(["type", "before", "after"]),
                       st.one_of(st.sampled_from(["new", "update", "end"]), st.integers(-(2**63), 2**63 - 1),
                                 st.none(),
                                 st.dictionaries(st.sampled_from(["id", "camera", "frame_time", "label",
                                                                  "score", "box", "false_positive"]),
                                                 st.one_of(st.text(), st.floats(allow_nan=False),
                                                           st.lists(st.integers(-10, 3000), max_size=5),
                                                           st.booleans())))))
def test_garbage_never_raises(doc: dict[str, Any]) -> None:
    result = convert(doc)
    assert isinstance(result, BadInput) or CameraEvent.model_validate_json(orjson.dumps(result))
