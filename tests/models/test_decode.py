"""decode: bytes of each source topic to a model or to the contract's reason for bad input."""

import doctest
import importlib
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from models import (
    MAX_MESSAGE_BYTES,
    TOPIC_SOURCES,
    BadInput,
    CameraEvent,
    Feedback,
    ReportEvent,
    SensorEvent,
    Source,
    decode,
)

# 2026-11-22T08:15:03.120+08:00
OBSERVED_MS = 1_795_306_503_120


def camera(**overrides: Any) -> dict[str, Any]:
    """The contract's camera example, with top-level fields replaced."""
    message: dict[str, Any] = {
        "event_id": "cam-0012-000081723",
        "camera_id": "cam-0012",
        "observed_at": "2026-11-22T08:15:03.120+08:00",
        "snapshot_url": "https://evidence.example/cam-0012/81723.jpg",
        "detections": [detection()],
    }
    message.update(overrides)
    return message


def detection(**overrides: Any) -> dict[str, Any]:
    item: dict[str, Any] = {
        "label": "street_vendor",
        "track_id": "t-881",
        "confidence": 0.91,
        "bbox": [0.41, 0.52, 0.10, 0.22],
        "location": {"lat": 30.3921, "lon": 104.5462},
    }
    item.update(overrides)
    return item


def sensor(**overrides: Any) -> dict[str, Any]:
    message: dict[str, Any] = {
        "event_id": "pk-00931-5521",
        "sensor_id": "pk-00931",
        "kind": "parking_occupancy",
        "observed_at": "2026-11-22T08:15:00+08:00",
        "state": "occupied",
        "location": {"lat": 30.3919, "lon": 104.5470},
    }
    message.update(overrides)
    return message


def report(**overrides: Any) -> dict[str, Any]:
    message: dict[str, Any] = {
        "event_id": "rep-2026-000123",
        "source": "inspector",
        "reporter_id": "insp-042",
        "category": "street_vendor",
        "observed_at": "2026-11-22T08:20:00+08:00",
        "location": {"lat": 30.3921, "lon": 104.5462},
        "address": "东大街 12 号",
        "description": "三轮车占道卖水果",
        "photos": ["https://evidence.example/r/123.jpg"],
    }
    message.update(overrides)
    return message


def feedback(**overrides: Any) -> dict[str, Any]:
    message: dict[str, Any] = {
        "event_id": "fb-77812",
        "alert_id": "a-JY-0312-3f9c0e51d2a4b7c81e09",
        "action": "acknowledge",
        "actor": "duty-officer-7",
        "at": "2026-11-22T08:31:00+08:00",
        "note": "已派单",
    }
    message.update(overrides)
    return message


def encode(message: object) -> bytes:
    """Compact UTF-8 JSON, as the replay file sends it (stdlib: integers of any size)."""
    return json.dumps(message, ensure_ascii=False, separators=(",", ":")).encode()


def bad(source: Source, message: object) -> BadInput:
    raw = message if isinstance(message, bytes) else encode(message)
    result = decode(source, raw)
    assert isinstance(result, BadInput), result
    return result


# --- the contract's examples -------------------------------------------------------------


def test_camera_example_decodes_to_exact_values() -> None:
    event = decode(Source.CAMERA, encode(camera()))
    assert isinstance(event, CameraEvent)
    assert event.event_id == "cam-0012-000081723"
    assert event.camera_id == "cam-0012"
    assert event.observed_at == OBSERVED_MS
    assert event.snapshot_url == "https://evidence.example/cam-0012/81723.jpg"
    (item,) = event.detections
    assert item.label == "street_vendor"
    assert item.track_id == "t-881"
    assert item.confidence == 0.91
    assert item.bbox == (0.41, 0.52, 0.10, 0.22)
    assert item.location is not None
    assert (item.location.lat, item.location.lon) == (30.3921, 104.5462)
    assert item.ignored_reason is None


def test_sensor_example_decodes() -> None:
    event = decode(Source.SENSOR, encode(sensor()))
    assert isinstance(event, SensorEvent)
    assert (event.sensor_id, event.kind, event.state, event.value) == (
        "pk-00931",
        "parking_occupancy",
        "occupied",
        None,
    )
    assert event.observed_at == 1_795_306_500_000
    assert event.ignored_reason is None


def test_report_example_decodes() -> None:
    event = decode(Source.REPORT, encode(report()))
    assert isinstance(event, ReportEvent)
    assert event.source == "inspector"
    assert event.category == "street_vendor"
    assert event.address == "东大街 12 号"
    assert event.photos == ("https://evidence.example/r/123.jpg",)
    assert event.grid_id is None


def test_feedback_example_decodes() -> None:
    event = decode(Source.FEEDBACK, encode(feedback()))
    assert isinstance(event, Feedback)
    assert event.action == "acknowledge"
    assert event.at == 1_795_307_460_000
    assert event.note == "已派单"
    assert event.until is None
    assert event.grid_id == "JY-0312"


def test_models_are_frozen() -> None:
    event = decode(Source.CAMERA, encode(camera()))
    assert isinstance(event, CameraEvent)
    with pytest.raises(ValueError, match="frozen"):
        event.camera_id = "other"  # type: ignore[misc]


def test_sources_are_ordered_as_the_contract_breaks_ties() -> None:
    assert sorted(Source) == [Source.CAMERA, Source.SENSOR, Source.REPORT, Source.FEEDBACK]
    assert [int(s) for s in Source] == [0, 1, 2, 3]
    assert TOPIC_SOURCES == {
        "city.events.camera": Source.CAMERA,
        "city.events.sensor": Source.SENSOR,
        "city.events.report": Source.REPORT,
        "city.alerts.feedback": Source.FEEDBACK,
    }


# --- one case per reason code decode can give ----------------------------------------------


def test_too_large() -> None:
    assert bad(Source.CAMERA, b" " * (MAX_MESSAGE_BYTES + 1)) == BadInput(
        "too_large", "message is 1048577 bytes, more than 1048576", None
    )


def test_bad_encoding() -> None:
    raw = encode(camera()).replace(b"cam-0012", b"cam-\xff012", 1)
    result = bad(Source.CAMERA, raw)
    assert result.reason_code == "bad_encoding"
    assert result.reason == "not valid UTF-8: byte 0xff at offset 17"
    assert result.event_id is None


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"{",
        b"not json {",
        encode(camera()) + b" x",
        encode(camera()) + b"{}",
        b'{"event_id": "e", }',
        b'{"event_id": "\\ud800"}',
        b"\xef\xbb\xbf" + encode(camera()),
    ],
)
def test_bad_json(raw: bytes) -> None:
    result = bad(Source.CAMERA, raw)
    assert result.reason_code == "bad_json"
    assert result.reason.startswith("not JSON: ")
    assert result.event_id is None


@pytest.mark.parametrize("token", [b"NaN", b"Infinity", b"-Infinity"])
@pytest.mark.parametrize("where", ["confidence", "extra"])
def test_nan_and_infinity_tokens_are_bad_json(token: bytes, where: str) -> None:
    if where == "confidence":
        raw = encode(camera()).replace(b"0.91", token)
    else:
        raw = encode(camera()).replace(b'"snapshot_url"', b'"x":' + token + b',"snapshot_url"')
    assert bad(Source.CAMERA, raw) == BadInput(
        "bad_json", "NaN and Infinity are not JSON numbers", None
    )


def test_nan_and_infinity_inside_strings_are_text() -> None:
    message = camera(event_id="NaN", camera_id='Infinity "NaN"', snapshot_url="-Infinity")
    event = decode(Source.CAMERA, encode(message))
    assert isinstance(event, CameraEvent)
    assert (event.event_id, event.camera_id) == ("NaN", 'Infinity "NaN"')


def test_nan_token_wins_over_a_field_error() -> None:
    raw = encode(camera(camera_id=5)).replace(b'"snapshot_url"', b'"x":NaN,"snapshot_url"')
    assert bad(Source.CAMERA, raw).reason_code == "bad_json"


@pytest.mark.parametrize("document", [[], [camera()], "text", 5, None, True])
def test_json_that_is_not_an_object_is_invalid_field(document: object) -> None:
    assert bad(Source.CAMERA, document) == BadInput(
        "invalid_field", "message must be a JSON object", None
    )


def test_naive_timestamp() -> None:
    result = bad(Source.CAMERA, camera(observed_at="2026-11-22T08:15:03.120"))
    assert result == BadInput(
        "naive_timestamp", "observed_at: timestamp has no UTC offset", "cam-0012-000081723"
    )


def test_bad_coordinate() -> None:
    message = camera(detections=[detection(location={"lat": 90.1, "lon": 104.5})])
    assert bad(Source.CAMERA, message) == BadInput(
        "bad_coordinate", "detections[0].location.lat: must be at most 90", "cam-0012-000081723"
    )


def test_unknown_action() -> None:
    assert bad(Source.FEEDBACK, feedback(action="escalate")) == BadInput(
        "unknown_action",
        "action: must be one of 'acknowledge', 'dispatch', 'resolve', 'verify', 'reject', "
        "'reopen' or 'defer'",
        "fb-77812",
    )


def test_invalid_field() -> None:
    assert bad(Source.CAMERA, camera(detections=[detection(confidence=1.0000001)])) == BadInput(
        "invalid_field", "detections[0].confidence: must be at most 1", "cam-0012-000081723"
    )


# --- boundaries ----------------------------------------------------------------------------


def test_confidence_bounds_are_inclusive() -> None:
    for confidence in (0, 0.0, 1, 1.0):
        event = decode(Source.CAMERA, encode(camera(detections=[detection(confidence=confidence)])))
        assert isinstance(event, CameraEvent)
        assert event.detections[0].confidence == float(confidence)
    low = bad(Source.CAMERA, camera(detections=[detection(confidence=-0.0001)]))
    assert low.reason == "detections[0].confidence: must be at least 0"


@pytest.mark.parametrize("field", ["event_id", "camera_id"])
def test_ids_of_128_characters_pass_and_129_fail(field: str) -> None:
    event = decode(Source.CAMERA, encode(camera(**{field: "x" * 128})))
    assert isinstance(event, CameraEvent)
    assert getattr(event, field) == "x" * 128
    result = bad(Source.CAMERA, camera(**{field: "é" * 129}))
    assert result.reason_code == "invalid_field"
    assert result.reason == f"{field}: must be at most 128 characters"


def test_empty_id_fails() -> None:
    assert bad(Source.CAMERA, camera(camera_id="")).reason == "camera_id: must not be empty"
    track = bad(Source.CAMERA, camera(detections=[detection(track_id="")]))
    assert track.reason == "detections[0].track_id: must not be empty"


def test_256_detections_pass_and_257_fail() -> None:
    event = decode(Source.CAMERA, encode(camera(detections=[detection()] * 256)))
    assert isinstance(event, CameraEvent)
    assert len(event.detections) == 256
    assert bad(Source.CAMERA, camera(detections=[detection()] * 257)) == BadInput(
        "invalid_field", "detections: must have at most 256 items", "cam-0012-000081723"
    )


def test_heartbeat_has_no_detections() -> None:
    event = decode(Source.CAMERA, encode(camera(detections=[])))
    assert isinstance(event, CameraEvent)
    assert event.detections == ()


def _padded_to(size: int) -> bytes:
    raw = encode(camera(pad=""))
    raw = encode(camera(pad="x" * (size - len(raw))))
    assert len(raw) == size
    return raw


def test_exactly_one_mebibyte_is_accepted_and_one_byte_more_is_too_large() -> None:
    assert isinstance(decode(Source.CAMERA, _padded_to(MAX_MESSAGE_BYTES)), CameraEvent)
    assert bad(Source.CAMERA, _padded_to(MAX_MESSAGE_BYTES + 1)).reason_code == "too_large"


@pytest.mark.parametrize(
    ("location", "ok"),
    [
        ({"lat": 90, "lon": 180}, True),
        ({"lat": -90, "lon": -180}, True),
        ({"lat": 0, "lon": 0}, True),
        ({"lat": 90.1, "lon": 0}, False),
        ({"lat": -90.1, "lon": 0}, False),
        ({"lat": 0, "lon": 180.5}, False),
        ({"lat": 0, "lon": -180.5}, False),
    ],
)
def test_coordinate_range(location: dict[str, float], ok: bool) -> None:
    result = decode(Source.CAMERA, encode(camera(detections=[detection(location=location)])))
    if ok:
        assert isinstance(result, CameraEvent)
    else:
        assert isinstance(result, BadInput)
        assert result.reason_code == "bad_coordinate"


def test_overflowing_coordinate_is_infinite_hence_bad_coordinate() -> None:
    raw = encode(camera()).replace(b"30.3921", b"1e400")
    assert bad(Source.CAMERA, raw) == BadInput(
        "bad_coordinate",
        "detections[0].location.lat: must be a finite number",
        "cam-0012-000081723",
    )


@pytest.mark.parametrize("lat", ["30.39", True, None, [30.39]])
def test_coordinate_of_wrong_type_is_invalid_field(lat: object) -> None:
    message = sensor(location={"lat": lat, "lon": 104.5})
    result = bad(Source.SENSOR, message)
    assert result.reason_code == "invalid_field"
    assert result.reason.startswith("location.lat: ")


def test_missing_coordinate_is_invalid_field() -> None:
    assert bad(Source.SENSOR, sensor(location={"lat": 30.0})) == BadInput(
        "invalid_field", "location.lon: is required", "pk-00931-5521"
    )


@pytest.mark.parametrize(
    ("confidence", "reason"),
    [
        ("0.9", "detections[0].confidence: must be a number"),
        (True, "detections[0].confidence: must be a number"),
        (None, "detections[0].confidence: must be a number"),
    ],
)
def test_no_lax_coercion_of_numbers(confidence: object, reason: str) -> None:
    result = bad(Source.CAMERA, camera(detections=[detection(confidence=confidence)]))
    assert (result.reason_code, result.reason) == ("invalid_field", reason)


def test_integers_are_fine_where_numbers_are_expected() -> None:
    event = decode(Source.CAMERA, encode(camera(detections=[detection(bbox=[0, 0, 1, 1])])))
    assert isinstance(event, CameraEvent)
    assert event.detections[0].bbox == (0.0, 0.0, 1.0, 1.0)
    assert all(type(x) is float for x in event.detections[0].bbox or ())


@pytest.mark.parametrize(
    ("bbox", "reason"),
    [
        ([0.1, 0.2, 0.3], "detections[0].bbox: has too few items"),
        ([0.1, 0.2, 0.3, 0.4, 0.5], "detections[0].bbox: must have at most 4 items"),
        ([0.1, 0.2, 1.5, 0.4], "detections[0].bbox[2]: must be at most 1"),
        ([0.1, -0.2, 0.5, 0.4], "detections[0].bbox[1]: must be at least 0"),
        ({"x": 0.1}, "detections[0].bbox: must be an array"),
    ],
)
def test_bbox(bbox: object, reason: str) -> None:
    result = bad(Source.CAMERA, camera(detections=[detection(bbox=bbox)]))
    assert (result.reason_code, result.reason) == ("invalid_field", reason)


def test_optional_detection_fields_may_be_absent_or_null() -> None:
    minimal = {"label": "debris", "confidence": 0.5}
    nulls = {**minimal, "track_id": None, "bbox": None, "location": None}
    for item in (minimal, nulls):
        event = decode(Source.CAMERA, encode(camera(detections=[item], snapshot_url=None)))
        assert isinstance(event, CameraEvent)
        got = event.detections[0]
        assert (got.track_id, got.bbox, got.location) == (None, None, None)


def test_one_invalid_detection_makes_the_whole_message_bad() -> None:
    message = camera(detections=[detection(), detection(), detection(confidence=2)])
    assert bad(Source.CAMERA, message).reason == "detections[2].confidence: must be at most 1"


# --- timestamps through decode -------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "ms"),
    [
        ("2026-11-22T00:15:03.120Z", OBSERVED_MS),
        ("2026-11-22T08:15:03.120+08:00", OBSERVED_MS),
        ("2026-11-22T08:15:03.120999+08:00", OBSERVED_MS),
        ("2026-11-22T08:15:03.123999+08:00", OBSERVED_MS + 3),
        ("2026-11-22T08:15:03+08:00", OBSERVED_MS - 120),
    ],
)
def test_timestamps_become_utc_milliseconds(text: str, ms: int) -> None:
    event = decode(Source.CAMERA, encode(camera(observed_at=text)))
    assert isinstance(event, CameraEvent)
    assert event.observed_at == ms


@pytest.mark.parametrize(
    ("value", "code", "reason"),
    [
        ("2026-11-22T08:15:03", "naive_timestamp", "observed_at: timestamp has no UTC offset"),
        (1795306503120, "invalid_field", "observed_at: must be an RFC 3339 timestamp string"),
        (None, "invalid_field", "observed_at: must be an RFC 3339 timestamp string"),
        (
            "yesterday",
            "invalid_field",
            "observed_at: not an RFC 3339 timestamp (YYYY-MM-DDTHH:MM:SS[.fff]+HH:MM)",
        ),
        ("2026-02-30T08:15:03Z", "invalid_field", "observed_at: not a valid calendar date"),
    ],
)
def test_bad_timestamps(value: object, code: str, reason: str) -> None:
    result = bad(Source.CAMERA, camera(observed_at=value))
    assert (result.reason_code, result.reason) == (code, reason)


def test_missing_timestamp_is_invalid_field() -> None:
    message = camera()
    del message["observed_at"]
    assert bad(Source.CAMERA, message).reason == "observed_at: is required"


# --- extra fields, unknown vocabulary -------------------------------------------------------


def test_unknown_extra_fields_are_ignored_at_every_level() -> None:
    message = camera(
        firmware="3.2",
        detections=[detection(colour="red", location={"lat": 30.3921, "lon": 104.5462, "alt": 4})],
    )
    event = decode(Source.CAMERA, encode(message))
    assert event == decode(Source.CAMERA, encode(camera()))
    assert isinstance(event, CameraEvent)
    assert not hasattr(event, "firmware")


def test_unknown_camera_label_is_accepted_and_flagged() -> None:
    event = decode(Source.CAMERA, encode(camera(detections=[detection(label="unicorn")])))
    assert isinstance(event, CameraEvent)
    assert event.detections[0].label == "unicorn"
    assert event.detections[0].ignored_reason == ("camera_label", "unicorn")


def test_unknown_sensor_kind_is_accepted_and_flagged() -> None:
    message = sensor(kind="humidity", state=5, value="x")
    event = decode(Source.SENSOR, encode(message))
    assert isinstance(event, SensorEvent)
    assert (event.kind, event.state, event.value) == ("humidity", None, None)
    assert event.ignored_reason == ("sensor_kind", "humidity")
    numeric = decode(Source.SENSOR, encode(sensor(kind="humidity", state="damp", value=55)))
    assert isinstance(numeric, SensorEvent)
    assert (numeric.state, numeric.value) == ("damp", 55.0)


def test_unknown_state_of_a_known_kind_is_accepted_and_flagged() -> None:
    event = decode(Source.SENSOR, encode(sensor(kind="streetlight", state="blinking")))
    assert isinstance(event, SensorEvent)
    assert event.state == "blinking"
    assert event.ignored_reason == ("sensor_state", "blinking")


@pytest.mark.parametrize(
    ("kind", "state"),
    [
        ("parking_occupancy", "occupied"),
        ("parking_occupancy", "free"),
        ("manhole_cover", "ok"),
        ("manhole_cover", "tilted"),
        ("manhole_cover", "open"),
        ("streetlight", "on"),
        ("streetlight", "off"),
        ("streetlight", "fault"),
    ],
)
def test_known_states_are_not_ignored(kind: str, state: str) -> None:
    event = decode(Source.SENSOR, encode(sensor(kind=kind, state=state)))
    assert isinstance(event, SensorEvent)
    assert event.ignored_reason is None


def test_state_kind_needs_a_string_state_and_ignores_value() -> None:
    missing = sensor()
    del missing["state"]
    assert bad(Source.SENSOR, missing) == BadInput(
        "invalid_field", "state: must be a string for kind parking_occupancy", "pk-00931-5521"
    )
    assert bad(Source.SENSOR, sensor(state=1)).reason_code == "invalid_field"
    assert bad(Source.SENSOR, sensor(state=None)).reason_code == "invalid_field"
    event = decode(Source.SENSOR, encode(sensor(value="garbage")))
    assert isinstance(event, SensorEvent)
    assert event.value is None


@pytest.mark.parametrize(
    ("kind", "value", "stored"),
    [
        ("noise", 0, 0.0),
        ("noise", 130.5, 130.5),
        ("bin_fill", 0, 0.0),
        ("bin_fill", 1, 1.0),
        ("bin_fill", 0.85, 0.85),
        ("water_level", 0.0, 0.0),
        ("water_level", 10**6, 1e6),
    ],
)
def test_value_kinds_accept_in_range_numbers_and_ignore_state(
    kind: str, value: float, stored: float
) -> None:
    event = decode(Source.SENSOR, encode(sensor(kind=kind, value=value, state=["anything"])))
    assert isinstance(event, SensorEvent)
    assert event.value == stored
    assert type(event.value) is float
    assert event.state is None
    assert event.ignored_reason is None


@pytest.mark.parametrize(
    ("kind", "value", "reason"),
    [
        ("noise", -0.1, "value: must be at least 0 for kind noise"),
        ("water_level", -1, "value: must be at least 0 for kind water_level"),
        ("bin_fill", 1.01, "value: must be at most 1 for kind bin_fill"),
        ("bin_fill", -0.01, "value: must be at least 0 for kind bin_fill"),
        ("noise", "70", "value: must be a finite number for kind noise"),
        ("noise", True, "value: must be a finite number for kind noise"),
        ("noise", None, "value: must be a finite number for kind noise"),
        ("noise", [70], "value: must be a finite number for kind noise"),
    ],
)
def test_value_kinds_reject_bad_values(kind: str, value: object, reason: str) -> None:
    result = bad(Source.SENSOR, sensor(kind=kind, value=value))
    assert result == BadInput("invalid_field", reason, "pk-00931-5521")


def test_value_kind_without_value_is_invalid_field() -> None:
    assert bad(Source.SENSOR, sensor(kind="bin_fill")).reason == (
        "value: must be a finite number for kind bin_fill"
    )


def test_infinite_value_is_invalid_field() -> None:
    raw = encode(sensor(kind="noise", value=1)).replace(b'"value":1', b'"value":1e400')
    assert bad(Source.SENSOR, raw).reason == "value: must be a finite number for kind noise"


def test_sensor_location_is_optional() -> None:
    message = sensor()
    del message["location"]
    event = decode(Source.SENSOR, encode(message))
    assert isinstance(event, SensorEvent)
    assert event.location is None


# --- reports ---------------------------------------------------------------------------------


@pytest.mark.parametrize("source", ["inspector", "hotline", "app", "supervisor"])
def test_report_sources(source: str) -> None:
    assert isinstance(decode(Source.REPORT, encode(report(source=source))), ReportEvent)


def test_other_report_source_is_invalid_field() -> None:
    assert bad(Source.REPORT, report(source="police")) == BadInput(
        "invalid_field",
        "source: must be one of 'inspector', 'hotline', 'app' or 'supervisor'",
        "rep-2026-000123",
    )


def test_any_non_empty_category_is_accepted() -> None:
    event = decode(Source.REPORT, encode(report(category="broken_bench")))
    assert isinstance(event, ReportEvent)
    assert event.category == "broken_bench"
    assert bad(Source.REPORT, report(category="")).reason == "category: must not be empty"


def test_report_needs_a_location_or_a_grid() -> None:
    nowhere = report()
    del nowhere["location"]
    assert bad(Source.REPORT, nowhere) == BadInput(
        "invalid_field", "grid_id: required when location is absent", "rep-2026-000123"
    )
    grid_only = decode(Source.REPORT, encode({**nowhere, "grid_id": "JY-0312"}))
    assert isinstance(grid_only, ReportEvent)
    assert (grid_only.location, grid_only.grid_id) == (None, "JY-0312")
    both = decode(Source.REPORT, encode(report(grid_id="JY-0312")))
    assert isinstance(both, ReportEvent)
    assert both.location is not None
    assert both.grid_id == "JY-0312"


def test_a_bad_location_is_reported_as_such_not_as_a_missing_place() -> None:
    message = report(location={"lat": 91, "lon": 0})
    assert bad(Source.REPORT, message).reason_code == "bad_coordinate"


@pytest.mark.parametrize(
    ("grid_id", "ok"),
    [
        ("JY-0312", True),
        ("a.b_c-D9", True),
        ("g" * 64, True),
        ("g" * 65, False),
        ("", False),
        ("JY 0312", False),
        ("JY/0312", False),
        ("简阳-1", False),
    ],
)
def test_grid_id_pattern(grid_id: str, ok: bool) -> None:
    result = decode(Source.REPORT, encode(report(location=None, grid_id=grid_id)))
    assert isinstance(result, ReportEvent) is ok
    if not ok:
        assert isinstance(result, BadInput)
        assert result.reason_code == "invalid_field"
        assert result.reason == "grid_id: must match ^[A-Za-z0-9._-]{1,64}$"


@pytest.mark.parametrize(
    ("field", "good", "too_long", "reason"),
    [
        ("address", "址" * 512, "址" * 513, "address: must be at most 512 characters"),
        ("description", "d" * 4000, "d" * 4001, "description: must be at most 4000 characters"),
        ("photos", ["p"] * 16, ["p"] * 17, "photos: must have at most 16 items"),
    ],
)
def test_report_text_bounds(field: str, good: object, too_long: object, reason: str) -> None:
    assert isinstance(decode(Source.REPORT, encode(report(**{field: good}))), ReportEvent)
    assert bad(Source.REPORT, report(**{field: too_long})).reason == reason


def test_report_photos_must_be_strings() -> None:
    assert bad(Source.REPORT, report(photos=[1])).reason == "photos[0]: must be a string"


# --- feedback ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "action", ["acknowledge", "dispatch", "resolve", "verify", "reject", "reopen"]
)
def test_every_action_but_defer_needs_no_until(action: str) -> None:
    event = decode(Source.FEEDBACK, encode(feedback(action=action)))
    assert isinstance(event, Feedback)
    assert event.action == action


def test_defer_needs_until_later_than_at() -> None:
    ok = decode(
        Source.FEEDBACK, encode(feedback(action="defer", until="2026-11-22T08:31:00.001+08:00"))
    )
    assert isinstance(ok, Feedback)
    assert ok.until == ok.at + 1
    assert bad(Source.FEEDBACK, feedback(action="defer")) == BadInput(
        "invalid_field", "until: required for action defer", "fb-77812"
    )
    same = feedback(action="defer", until="2026-11-22T00:31:00Z")  # the same instant as at
    assert bad(Source.FEEDBACK, same) == BadInput(
        "invalid_field", "until: must be later than at", "fb-77812"
    )
    earlier = feedback(action="defer", until="2026-11-22T08:30:59.999+08:00")
    assert bad(Source.FEEDBACK, earlier).reason == "until: must be later than at"


def test_naive_until_is_naive_timestamp() -> None:
    result = bad(Source.FEEDBACK, feedback(action="defer", until="2026-11-22T09:00:00"))
    assert (result.reason_code, result.reason) == (
        "naive_timestamp",
        "until: timestamp has no UTC offset",
    )


@pytest.mark.parametrize("action", [5, None, ["defer"]])
def test_action_that_is_not_a_string_is_invalid_field(action: object) -> None:
    assert bad(Source.FEEDBACK, feedback(action=action)).reason_code == "invalid_field"


def test_action_is_case_sensitive() -> None:
    assert bad(Source.FEEDBACK, feedback(action="Acknowledge")).reason_code == "unknown_action"


@pytest.mark.parametrize(
    "alert_id",
    [
        "a-JY-0312-3F9C0E51D2A4B7C81E09",
        "a-JY-0312-3f9c0e51d2a4b7c81e0",
        "JY-0312-3f9c0e51d2a4b7c81e09",
        "a--3f9c0e51d2a4b7c81e09",
        "a-" + "g" * 65 + "-3f9c0e51d2a4b7c81e09",
    ],
)
def test_malformed_alert_id_is_invalid_field(alert_id: str) -> None:
    result = bad(Source.FEEDBACK, feedback(alert_id=alert_id))
    assert result.reason_code == "invalid_field"
    assert result.reason.startswith("alert_id: must match ")


def test_feedback_grid_comes_from_the_alert_id() -> None:
    event = decode(Source.FEEDBACK, encode(feedback(alert_id="a-A-B.c_1-0123456789abcdef0123")))
    assert isinstance(event, Feedback)
    assert event.grid_id == "A-B.c_1"


def test_feedback_optional_fields() -> None:
    message = feedback(action="dispatch", assignee="team-3", photos=["https://p/1.jpg"], note=None)
    event = decode(Source.FEEDBACK, encode(message))
    assert isinstance(event, Feedback)
    assert (event.assignee, event.photos, event.note) == ("team-3", ("https://p/1.jpg",), None)
    assert bad(Source.FEEDBACK, feedback(note="n" * 4001)).reason == (
        "note: must be at most 4000 characters"
    )


# --- event id recovery, determinism, robustness ---------------------------------------------


def test_event_id_is_recovered_from_a_bad_message() -> None:
    assert bad(Source.SENSOR, sensor(sensor_id=None)).event_id == "pk-00931-5521"


@pytest.mark.parametrize("event_id", [None, 5, "", "x" * 129])
def test_an_invalid_event_id_is_not_recovered(event_id: object) -> None:
    assert bad(Source.SENSOR, sensor(event_id=event_id, sensor_id=None)).event_id is None


def test_the_first_bad_field_in_contract_order_decides() -> None:
    message = camera(camera_id=7, observed_at="2026-11-22T08:15:03", detections="none")
    assert bad(Source.CAMERA, message) == BadInput(
        "invalid_field", "camera_id: must be a string", "cam-0012-000081723"
    )


def test_the_same_message_to_another_source_is_judged_by_that_source() -> None:
    assert bad(Source.SENSOR, camera()).reason == "sensor_id: is required"


def test_bytes_like_input_is_accepted() -> None:
    raw = encode(camera())
    expected = decode(Source.CAMERA, raw)
    assert decode(Source.CAMERA, bytearray(raw)) == expected
    assert decode(Source.CAMERA, memoryview(raw)) == expected  # type: ignore[arg-type]


def test_decode_doctest() -> None:
    # models.decode the attribute is the function; the module is reached through importlib.
    module = importlib.import_module("models.decode")
    assert doctest.testmod(module).failed == 0


_RESULT_TYPES = (CameraEvent, SensorEvent, ReportEvent, Feedback, BadInput)


@settings(max_examples=500)
@given(source=st.sampled_from(Source), raw=st.binary(max_size=512))
def test_decode_never_raises_on_random_bytes(source: Source, raw: bytes) -> None:
    result = decode(source, raw)
    assert isinstance(result, _RESULT_TYPES)
    if isinstance(result, BadInput):
        assert result.reason_code in {"bad_encoding", "bad_json", "invalid_field"}


_json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=12,
)
# A field whose validity depends on another one reports itself, not the field that was changed.
_DEPENDENTS = {"location": ("grid_id",), "kind": ("state", "value"), "action": ("until",)}
_EXAMPLES = {
    Source.CAMERA: camera(),
    Source.SENSOR: sensor(),
    Source.REPORT: report(),
    Source.FEEDBACK: feedback(),
}


@settings(max_examples=500)
@given(source=st.sampled_from(Source), data=st.data())
def test_decode_never_raises_on_mutated_examples(source: Source, data: st.DataObject) -> None:
    message = dict(_EXAMPLES[source])
    key = data.draw(st.sampled_from([*message, "detections", "kind", "until", "grid_id"]))
    message[key] = data.draw(_json_values)
    result = decode(source, encode(message))
    assert isinstance(result, _RESULT_TYPES)
    if isinstance(result, BadInput):
        assert result.reason_code in {
            "invalid_field",
            "naive_timestamp",
            "bad_coordinate",
            "unknown_action",
        }
        assert result.reason.startswith((key, *_DEPENDENTS.get(key, ())))
        valid_id = message.get("event_id")
        if isinstance(valid_id, str) and 1 <= len(valid_id) <= 128:
            assert result.event_id == valid_id
