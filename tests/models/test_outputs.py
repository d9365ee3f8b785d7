"""Alert and DeadLetter: the contract's examples validate, and what the contract forbids fails."""

import base64
import copy
from typing import Any, get_args

import orjson
import pytest
from pydantic import ValidationError

from models import (
    CAMERA_LABELS,
    DEADLETTER_PAYLOAD_BYTES,
    FEEDBACK_ACTIONS,
    REASON_CODES,
    REPORT_SOURCES,
    SENSOR_CATEGORIES,
    SENSOR_STATE_KINDS,
    SENSOR_VALUE_KINDS,
    Alert,
    CameraEvidence,
    DeadLetter,
    FeedbackAction,
    ReasonCode,
    ReportEvidence,
    ReportSource,
    SensorEvidence,
    deadletter_payload,
)

ALERT: dict[str, Any] = {
    "alert_id": "a-JY-0312-3f9c0e51d2a4b7c81e09",
    "version": 3,
    "transition": "escalated",
    "status": "open",
    "level": 2,
    "notify": ["district_duty"],
    "rule_id": "street-vending.main-road",
    "category": "street_vendor",
    "case_code": "05-04",
    "description": "主干道流动摊贩占道经营",
    "severity": "major",
    "grid_id": "JY-0312",
    "district": "简城街道",
    "responsible_unit": "简城街道城管中队",
    "zones": ["main-road-dongdajie"],
    "location": {"lat": 30.3921, "lon": 104.5462},
    "address": None,
    "first_seen": "2026-11-22T08:05:01.000+08:00",
    "last_seen": "2026-11-22T08:16:40.000+08:00",
    "opened_at": "2026-11-22T08:15:02.000+08:00",
    "deadline": "2026-11-22T10:15:02.000+08:00",
    "occurrences": 14,
    "hotspot": False,
    "assignee": None,
    "deferred_until": None,
    "actor": None,
    "note": None,
    "photos": None,
    "evidence": [
        {
            "event_id": "cam-0012-000081723",
            "source": "camera",
            "kind": "street_vendor",
            "observed_at": "2026-11-22T08:16:40.000+08:00",
            "camera_id": "cam-0012",
            "track_id": "t-881",
            "confidence": 0.91,
            "snapshot_url": "https://evidence.example/cam-0012/81723.jpg",
        }
    ],
    "at": "2026-11-22T08:30:02.000+08:00",
    "emitted_at": "2026-11-22T08:30:07.551+08:00",
}
SENSOR_EVIDENCE = {
    "event_id": "pk-00931-5521",
    "source": "sensor",
    "kind": "parking_occupancy",
    "observed_at": "2026-11-22T08:15:00.000+08:00",
    "sensor_id": "pk-00931",
    "state": "occupied",
    "value": None,
}
REPORT_EVIDENCE = {
    "event_id": "rep-2026-000123",
    "source": "report",
    "kind": "street_vendor",
    "observed_at": "2026-11-22T08:20:00.000+08:00",
    "reporter_id": "insp-042",
    "address": "东大街 12 号",
    "photos": ["https://evidence.example/r/123.jpg"],
}
DEADLETTER: dict[str, Any] = {
    "topic": "city.events.camera",
    "partition": 3,
    "offset": 1881,
    "key": "cam-0012",
    "event_id": "cam-0012-000081799",
    "reason_code": "naive_timestamp",
    "reason": "observed_at: timestamp has no UTC offset",
    "payload": '{"event_id": ...}',
    "payload_encoding": "utf-8",
    "truncated": False,
    "received_at": "2026-11-22T08:15:04.002+08:00",
}


def alert(**overrides: Any) -> dict[str, Any]:
    message = copy.deepcopy(ALERT)
    message.update(overrides)
    return message


def alert_error(message: dict[str, Any]) -> tuple[str, tuple[int | str, ...]]:
    with pytest.raises(ValidationError) as caught:
        Alert.model_validate_json(orjson.dumps(message))
    first = caught.value.errors()[0]
    return first["type"], first["loc"]


def test_contract_alert_example_validates_and_round_trips() -> None:
    parsed = Alert.model_validate_json(orjson.dumps(ALERT))
    assert parsed.version == 3
    assert parsed.evidence[0] == CameraEvidence.model_validate(ALERT["evidence"][0])
    assert orjson.loads(parsed.model_dump_json()) == ALERT


def test_alert_from_a_python_dict_accepts_lists_or_tuples() -> None:
    as_tuples = alert(notify=("district_duty",), zones=(), evidence=tuple(ALERT["evidence"]))
    assert Alert.model_validate(as_tuples).zones == ()
    assert Alert.model_validate(ALERT) == Alert.model_validate_json(orjson.dumps(ALERT))


@pytest.mark.parametrize("field", list(ALERT))
def test_every_alert_field_is_required_even_when_null(field: str) -> None:
    message = alert()
    del message[field]
    assert alert_error(message) == ("missing", (field,))


@pytest.mark.parametrize(
    "field",
    [
        "case_code",
        "address",
        "deadline",
        "assignee",
        "deferred_until",
        "actor",
        "note",
        "photos",
        "description",
        "district",
        "responsible_unit",
    ],
)
def test_nullable_alert_fields(field: str) -> None:
    assert getattr(Alert.model_validate(alert(**{field: None})), field) is None


@pytest.mark.parametrize(
    ("field", "value", "error"),
    [
        ("version", 0, "greater_than_equal"),
        ("version", "3", "int_type"),
        ("version", 3.0, "int_type"),
        ("level", 0, "greater_than_equal"),
        ("occurrences", 0, "greater_than_equal"),
        ("transition", "closed-ish", "literal_error"),
        ("status", "escalated", "literal_error"),
        ("severity", "minor ", "literal_error"),
        ("alert_id", "a-JY-0312-3f9c0e51d2a4b7c81e0", "string_pattern_mismatch"),
        ("grid_id", "JY 0312", "string_pattern_mismatch"),
        ("location", None, "model_type"),
        ("hotspot", 0, "bool_type"),
        ("at", "2026-11-22T08:30:02+08:00", "invalid_timestamp"),
        ("at", "2026-11-22T08:30:02.000", "invalid_timestamp"),
        ("at", "2026-11-22T08:30:02.0000+08:00", "invalid_timestamp"),
        ("deadline", "2026-02-30T10:15:02.000+08:00", "invalid_timestamp"),
        ("emitted_at", 1795307407551, "invalid_timestamp"),
        ("evidence", [], "too_short"),
        ("evidence", ALERT["evidence"] * 11, "too_long"),
        ("photos", ["p"] * 17, "too_long"),
        ("notify", [""], "string_too_short"),
    ],
)
def test_alert_rejects(field: str, value: object, error: str) -> None:
    assert alert_error(alert(**{field: value}))[0] == error


@pytest.mark.parametrize(
    "transition",
    [
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
    ],
)
def test_every_transition_of_the_contract(transition: str) -> None:
    assert Alert.model_validate(alert(transition=transition)).transition == transition


def test_ten_evidence_items_of_every_source() -> None:
    items = [SENSOR_EVIDENCE, REPORT_EVIDENCE] * 4 + ALERT["evidence"] * 2
    parsed = Alert.model_validate(alert(evidence=items))
    assert [type(item) for item in parsed.evidence[:3]] == [
        SensorEvidence,
        ReportEvidence,
        SensorEvidence,
    ]
    assert isinstance(parsed.evidence[9], CameraEvidence)


def test_evidence_source_must_be_known() -> None:
    item = {**SENSOR_EVIDENCE, "source": "drone"}
    assert alert_error(alert(evidence=[item])) == ("union_tag_invalid", ("evidence", 0))


def test_evidence_of_a_heartbeat_may_lack_track_and_confidence() -> None:
    item = {**ALERT["evidence"][0], "kind": "camera_offline", "track_id": None, "confidence": None}
    assert Alert.model_validate(alert(evidence=[item])).evidence[0].kind == "camera_offline"


def test_deadletter_example_validates() -> None:
    parsed = DeadLetter.model_validate_json(orjson.dumps(DEADLETTER))
    assert orjson.loads(parsed.model_dump_json()) == DEADLETTER


@pytest.mark.parametrize("code", sorted(REASON_CODES))
def test_deadletter_takes_every_reason_code(code: str) -> None:
    assert DeadLetter.model_validate({**DEADLETTER, "reason_code": code}).reason_code == code


def test_deadletter_rejects_an_unknown_reason_code_and_encoding() -> None:
    with pytest.raises(ValidationError):
        DeadLetter.model_validate({**DEADLETTER, "reason_code": "oops"})
    with pytest.raises(ValidationError):
        DeadLetter.model_validate({**DEADLETTER, "payload_encoding": "latin-1"})


def test_deadletter_unknowns_are_null() -> None:
    unknown = {**DEADLETTER, "key": None, "event_id": None, "partition": None, "offset": None}
    assert DeadLetter.model_validate(unknown).key is None


def test_payload_of_utf8_bytes_is_text() -> None:
    assert deadletter_payload("东大街 {".encode()) == ("东大街 {", "utf-8", False)


def test_payload_of_other_bytes_is_base64() -> None:
    assert deadletter_payload(b"\xff\xfe\x00") == ("//4A", "base64", False)


def test_payload_of_exactly_64_kib_is_whole() -> None:
    raw = b"x" * DEADLETTER_PAYLOAD_BYTES
    assert deadletter_payload(raw) == ("x" * DEADLETTER_PAYLOAD_BYTES, "utf-8", False)


def test_long_payload_is_cut_at_a_character_boundary() -> None:
    # "东" is 3 bytes; the one starting at 65,535 straddles the 64 KiB cut and is left out.
    raw = b"x" * (DEADLETTER_PAYLOAD_BYTES - 1) + "东".encode() + b"tail"
    payload, encoding, truncated = deadletter_payload(raw)
    assert (encoding, truncated) == ("utf-8", True)
    assert payload == "x" * (DEADLETTER_PAYLOAD_BYTES - 1)
    DeadLetter.model_validate({**DEADLETTER, "payload": payload, "truncated": truncated})


def test_long_binary_payload_is_cut_to_64_kib_then_base64() -> None:
    raw = b"\xff" * (DEADLETTER_PAYLOAD_BYTES + 10)
    payload, encoding, truncated = deadletter_payload(raw)
    assert (encoding, truncated) == ("base64", True)
    assert base64.b64decode(payload) == b"\xff" * DEADLETTER_PAYLOAD_BYTES
    DeadLetter.model_validate({**DEADLETTER, "payload": payload, "payload_encoding": encoding})


def test_vocabularies_match_the_contract() -> None:
    assert len(CAMERA_LABELS) == 13
    assert "hanging_laundry" in CAMERA_LABELS
    assert dict(SENSOR_STATE_KINDS) == {
        "parking_occupancy": {"occupied", "free"},
        "manhole_cover": {"ok", "tilted", "open"},
        "streetlight": {"on", "off", "fault"},
    }
    assert dict(SENSOR_VALUE_KINDS) == {
        "noise": (0, None),
        "bin_fill": (0, 1),
        "water_level": (0, None),
    }
    assert len(SENSOR_CATEGORIES) == 8
    assert set(get_args(ReportSource)) == REPORT_SOURCES
    assert set(get_args(FeedbackAction)) == FEEDBACK_ACTIONS
    assert set(get_args(ReasonCode)) == REASON_CODES
    # the contract's 12, bad_timestamp (a time before the range) and internal_error (a fault)
    assert len(REASON_CODES) == 14
