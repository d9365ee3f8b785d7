"""DeepStream ``nvmsgconv`` messages (recorded samples of both schemas, samples/README.md) become
contract camera messages placed where the calibrated camera sees them; anything else becomes a
rejection with the contract's reason code, never an exception."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.deepstream import DeepStream
from adapters.placing import Placer
from models.decode import BadInput
from models.inputs import CameraEvent
from rules.calibration import M_PER_DEG
from rules.citymap import CityMap
from rules.demo.city import GEOJSON_PATH
from tests.pinhole import calibrated_city, ground_of, position

SAMPLES = Path(__file__).parent / "samples"
CITY, CAMERA = calibrated_city()
CAM = CITY.cameras["cam-0012"]


def convert(message: dict[str, Any] | bytes, **kw: Any) -> dict[str, Any] | BadInput:
    raw = message if isinstance(message, bytes) else orjson.dumps(message)
    return DeepStream(Placer(CITY), **kw)(raw)


def sample(name: str) -> dict[str, Any]:
    return dict(json.loads((SAMPLES / name).read_text(encoding="utf-8")))


def metres(a: tuple[float, float], b: tuple[float, float]) -> float:
    return math.hypot((a[1] - b[1]) * M_PER_DEG * math.cos(math.radians(a[0])), (a[0] - b[0]) * M_PER_DEG)


def truth(u: float, v: float) -> tuple[float, float]:
    """Where the camera model says pixel (u, v) is."""
    return position(CAM.lat, CAM.lon, *ground_of(CAMERA, u, v))


def test_the_full_schema_becomes_one_placed_detection() -> None:
    event = convert(sample("deepstream_full.json"))
    assert isinstance(event, dict)
    CameraEvent.model_validate_json(orjson.dumps(event))
    assert (event["event_id"], event["camera_id"], event["observed_at"]) == (
        "6f1c2a7e-3b9d-4e52-9a0f-8d41c7b2e915", "cam-0012", "2026-11-22T00:15:03.120Z")
    (d,) = event["detections"]
    assert (d["label"], d["track_id"], d["confidence"]) == ("parked_car", "4627", 0.84375)
    assert d["bbox"] == pytest.approx([1184 / 1920, 612 / 1080, 403 / 1920, 252 / 1080])
    at = (d["location"]["lat"], d["location"]["lon"])
    assert metres(at, truth((1184 + 1587) / 2, 864)) < 0.05      # the car's bottom centre
    assert CITY.locate(*at) is not None


def test_the_minimal_schema_becomes_a_detection_per_object() -> None:
    event = convert(sample("deepstream_minimal.json"), confidence=0.7)
    assert isinstance(event, dict)
    CameraEvent.model_validate_json(orjson.dumps(event))
    assert event["event_id"] == "ds-cam-0012-2026-11-22T00:15:03.120Z-48213"
    got = [(d["label"], d["track_id"], d["confidence"]) for d in event["detections"]]
    # DeepStream 6: the confidence ends an attribute list; an object without one has none
    assert got == [("person", "3318", 0.912109), ("parked_car", "4627", 0.84375),
                   ("parked_ebike", "3321", 0.7)]
    person = event["detections"][0]["location"]
    assert metres((person["lat"], person["lon"]), truth((402.75 + 497.25) / 2, 702)) < 0.05


def test_deepstream_9_objects_end_their_empty_attributes_with_the_confidence() -> None:
    message = sample("deepstream_minimal.json") | {"objects": [
        "18446744073709551615|900|500|1000|760|car|#|||||||0.962743",
        "77|900|500|1000|760|Vehicle|#|sedan|toyota||white|||0.5|#|0.1|0.2|",
    ]}
    event = convert(message)
    assert isinstance(event, dict)
    assert [(d["label"], d["track_id"], d["confidence"]) for d in event["detections"]] == [
        ("parked_car", None, 0.962743), ("parked_car", "77", 0.5)]


def test_labels_can_be_mapped_per_deployment_and_others_pass_lowercased() -> None:
    message = sample("deepstream_minimal.json")
    event = DeepStream(Placer(CITY, {"Person": "street_vendor"}))(orjson.dumps(message))
    assert isinstance(event, dict)
    assert [d["label"] for d in event["detections"]] == ["street_vendor", "parked_car", "parked_ebike"]
    full = sample("deepstream_full.json")
    full["object"] = {k: v for k, v in full["object"].items() if k != "vehicle"} | {"Garbage Pile": {}}
    event = convert(full)
    assert isinstance(event, dict) and event["detections"][0]["label"] == "garbage_pile"


@pytest.mark.parametrize(("raw", "code", "reason"), [
    (b"not json", "bad_json", "not JSON"),
    ("摊贩".encode("gbk"), "bad_encoding", "UTF-8"),
    (b"[1, 2]", "invalid_field", "JSON object"),
    (b'{"objects": []}', "invalid_field", "id: Field required"),
    (orjson.dumps(sample("deepstream_full.json") | {"object": {"id": "1"}}), "invalid_field", "object.bbox"),
    (orjson.dumps(sample("deepstream_minimal.json") | {"objects": ["1|2|3|4"]}), "invalid_field",
     "objects[0]: expected id|left|top|right|bottom|label"),
    (orjson.dumps(sample("deepstream_minimal.json") | {"objects": ["1|a|3|4|5|car"]}), "invalid_field",
     "not a number"),
    (orjson.dumps(sample("deepstream_minimal.json") | {"objects": ["1|30|30|10|10|car"]}), "invalid_field",
     "empty or inverted"),
    (orjson.dumps(sample("deepstream_minimal.json") | {"sensorId": "cam-9999"}), "unregistered_device",
     "not in the city map"),
    (orjson.dumps(sample("deepstream_minimal.json") | {"sensorId": "cam-0001"}), "unregistered_device",
     "no calibration"),
    (orjson.dumps(sample("deepstream_minimal.json") | {"@timestamp": "2026-11-22T00:15:03"}),
     "naive_timestamp", "offset"),
    (orjson.dumps(sample("deepstream_minimal.json") | {"objects": ["1|900|-400|1000|-300|car"]}),
     "bad_coordinate", "horizon"),
    (b'{"x": "' + b"a" * 1_048_577 + b'"}', "too_large", "more than"),
])
def test_what_cannot_be_converted_is_rejected_with_a_reason(raw: bytes, code: str, reason: str) -> None:
    result = convert(raw)
    assert isinstance(result, BadInput), result
    assert result.reason_code == code and reason in result.reason, result


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=5),
    max_leaves=20)


@settings(max_examples=300, deadline=None)
@given(st.one_of(
    st.binary(max_size=200),
    json_values.map(orjson.dumps),
    st.dictionaries(st.sampled_from(["version", "id", "@timestamp", "sensorId", "objects", "messageid",
                                     "sensor", "object"]), json_values).map(orjson.dumps),
))
def test_garbage_never_raises(raw: bytes) -> None:
    result = convert(raw)
    assert isinstance(result, BadInput) or CameraEvent.model_validate_json(orjson.dumps(result))


def test_the_calibration_example_in_the_docs_loads() -> None:
    """docs/adapters.md's example, as written, in the demo map."""
    text = (Path(__file__).resolve().parents[2] / "docs" / "adapters.md").read_text(encoding="utf-8")
    example = json.loads(text.split("```json\n", 1)[1].split("```", 1)[0])
    geo = orjson.loads(GEOJSON_PATH.read_bytes())
    geo["features"] = [f for f in geo["features"] if f["properties"].get("id") != "cam-0012"] + [example]
    cal = CityMap.from_geojson(geo, "docs/adapters.md").cameras["cam-0012"].calibration
    assert cal is not None and cal.rms_error_m < 0.05
    at = cal.foot(1184, 612, 1587, 864)
    assert at is not None and metres(at, truth((1184 + 1587) / 2, 864)) < 0.05
