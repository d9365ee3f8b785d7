"""The machine-readable contract of every topic: an AsyncAPI 3.0 document,
``schemas/asyncapi.yaml``, generated from the models with the JSON Schemas beside it (written and
checked with them by ``python -m models.schema``).

Channels are the topics (default names; a deployment may prefix them) with their record keys;
operations are cityorder's own view (it receives the inputs and sends the outputs); each
message's payload is its topic's JSON Schema in ``schemas/``, by reference, and its examples
are the ones below, which the suite validates against both the schema and the model.
"""

from __future__ import annotations

from typing import Any, Final

import yaml

ASYNCAPI_VERSION: Final = "3.0.0"
KAFKA_BINDING: Final = "0.5.0"
#: The version of the message contracts (docs/README.md: fields may be added, never changed).
CONTRACT_VERSION: Final = "1"
#: How our schemas are written (JSON Schema 2020-12); AsyncAPI names schema formats by media type.
SCHEMA_FORMAT: Final = "application/schema+json;version=draft-2020-12"


class Topic:
    """How one topic is used: what reads and writes it, its key, and examples of its messages."""

    def __init__(self, name: str, message: str, action: str, key: str, summary: str,
                 examples: list[tuple[str, dict[str, Any]]]) -> None:
        self.name, self.message, self.action, self.key = name, message, action, key
        self.summary, self.examples = summary, examples


_ALERT_EXAMPLE: Final = {
    "alert_id": "a-JY-0312-3f9c0e51d2a4b7c81e09", "version": 3, "transition": "escalated",
    "status": "open", "level": 2, "notify": ["district_duty"],
    "rule_id": "street-vending.main-road", "category": "street_vendor", "case_code": "05-01",
    "description": "主干道流动摊贩占道经营", "severity": "major", "grid_id": "JY-0312",
    "district": "简城街道", "responsible_unit": "简城街道城管中队", "zones": ["main-road-dongdajie"],
    "location": {"lat": 30.3921, "lon": 104.5462}, "address": None,
    "first_seen": "2026-11-22T08:05:01.000+08:00", "last_seen": "2026-11-22T08:16:40.000+08:00",
    "opened_at": "2026-11-22T08:15:02.000+08:00", "deadline": "2026-11-22T10:15:02.000+08:00",
    "occurrences": 14, "hotspot": False, "assignee": None, "deferred_until": None,
    "actor": None, "note": None, "photos": None,
    "evidence": [{"event_id": "cam-0012-000081723", "source": "camera", "kind": "street_vendor",
                  "observed_at": "2026-11-22T08:16:40.000+08:00", "camera_id": "cam-0012",
                  "track_id": "t-881", "confidence": 0.91,
                  "snapshot_url": "https://evidence.example/cam-0012/81723.jpg"}],
    "at": "2026-11-22T08:30:02.000+08:00", "emitted_at": "2026-11-22T08:30:07.551+08:00",
}

TOPICS: Final = (
    Topic("city.events.camera", "cameraEvent", "receive", "camera_id (may be absent)",
          "Detections from AI cameras and video platforms: one message per analysed frame.", [
              ("vendor", {"event_id": "cam-0012-000081723", "camera_id": "cam-0012",
                          "observed_at": "2026-11-22T08:15:03.120+08:00",
                          "snapshot_url": "https://evidence.example/cam-0012/81723.jpg",
                          "detections": [{"label": "street_vendor", "track_id": "t-881",
                                          "confidence": 0.91, "bbox": [0.41, 0.52, 0.10, 0.22],
                                          "location": {"lat": 30.3921, "lon": 104.5462}}]}),
              ("heartbeat", {"event_id": "cam-0012-000081724", "camera_id": "cam-0012",
                             "observed_at": "2026-11-22T08:15:04.000+08:00", "detections": []}),
          ]),
    Topic("city.events.sensor", "sensorEvent", "receive", "any; sensor_id recommended",
          "IoT readings: parking, manhole covers, street lights, noise, bins, water level.", [
              ("parking", {"event_id": "pk-00931-5521", "sensor_id": "pk-00931",
                           "kind": "parking_occupancy", "observed_at": "2026-11-22T08:15:00+08:00",
                           "state": "occupied", "location": {"lat": 30.3919, "lon": 104.5470}}),
              ("water level", {"event_id": "wl-0007-0193", "sensor_id": "wl-0007",
                               "kind": "water_level", "observed_at": "2026-11-22T08:15:00+08:00",
                               "value": 17.5}),
          ]),
    Topic("city.events.report", "reportEvent", "receive", "any; may be null",
          "Reports from inspectors (巡查员), the 12345 hotline, 随手拍 apps and supervisors.", [
              ("inspector", {"event_id": "rep-2026-000123", "source": "inspector",
                             "reporter_id": "insp-042", "category": "street_vendor",
                             "observed_at": "2026-11-22T08:20:00+08:00",
                             "location": {"lat": 30.3921, "lon": 104.5462}, "address": "东大街 12 号",
                             "description": "三轮车占道卖水果",
                             "photos": ["https://evidence.example/r/123.jpg"]}),
              ("hotline, grid only", {"event_id": "12345-20261122-0042", "source": "hotline",
                                      "category": "garbage_pile",
                                      "observed_at": "2026-11-22T09:02:00+08:00",
                                      "grid_id": "JY-0312", "address": "公园巷口"}),
          ]),
    Topic("city.alerts.feedback", "feedback", "receive", "alert_id",
          "What dispatch systems and the operations centre did to an alert.", [
              ("acknowledge", {"event_id": "fb-77812", "alert_id": "a-JY-0312-3f9c0e51d2a4b7c81e09",
                               "action": "acknowledge", "actor": "duty-officer-7",
                               "at": "2026-11-22T08:31:00+08:00", "note": "已派单"}),
              ("defer", {"event_id": "fb-77904", "alert_id": "a-JY-0312-3f9c0e51d2a4b7c81e09",
                         "action": "defer", "actor": "duty-officer-7",
                         "at": "2026-11-22T09:10:00+08:00", "until": "2026-11-24T09:00:00+08:00",
                         "note": "待车主联系, 缓办"}),
          ]),
    Topic("city.alerts", "alert", "send", "alert_id",
          "Every transition of every alert, at least once; unique by (alert_id, version).", [
              ("escalated", _ALERT_EXAMPLE),
          ]),
    Topic("city.alerts.deadletter", "deadLetter", "send", "the source record's key",
          "Input that could not be used, with its reason and where it was, for its producer.", [
              ("naive timestamp", {"topic": "city.events.camera", "partition": 2, "offset": 81723,
                                   "key": "cam-0012", "event_id": "cam-0012-000081725",
                                   "reason_code": "naive_timestamp",
                                   "reason": "observed_at: timestamp has no UTC offset",
                                   "payload": '{"event_id":"cam-0012-000081725","camera_id":"cam-0012",'
                                              '"observed_at":"2026-11-22T08:15:03","detections":[]}',
                                   "payload_encoding": "utf-8", "truncated": False,
                                   "received_at": "2026-11-22T08:15:03.311+08:00"}),
          ]),
    Topic("city.audit", "auditRecord", "send", "who acted",
          "The console's audit trail, for supervisors' systems: sign-ins and actions on cases.", [
              ("action sent", {"at": "2026-11-22T08:31:00.412+08:00", "actor": "duty7",
                               "role": "operator", "action": "acknowledge",
                               "alert_id": "a-JY-0312-3f9c0e51d2a4b7c81e09", "address": "10.0.8.21",
                               "result": "sent", "detail": {"event_id": "fb-77812", "note": "已派单"}}),
          ]),
    Topic("city.webhooks.deadletter", "webhookDeadLetter", "send", "the receiver's name",
          "Alert transitions a webhook receiver (cityorder webhooks) never took, with the message, "
          "to send again once the receiver is fixed.", [
              ("refused", {"receiver": "dispatch-jiancheng",
                           "url": "https://dispatch.jiancheng.example/hooks/cityorder",
                           "topic": "city.alerts", "partition": 1, "offset": 20417,
                           "alert_id": "a-JY-0312-3f9c0e51d2a4b7c81e09", "version": 3,
                           "transition": "escalated", "reason_code": "rejected",
                           "reason": "HTTP 422: {\"error\": \"unknown district\"}", "attempts": 1,
                           "last_status": 422, "first_attempt_at": "2026-11-22T08:30:07.602+08:00",
                           "failed_at": "2026-11-22T08:30:07.640+08:00",
                           "payload": '{"alert_id": "a-JY-0312-3f9c0e51d2a4b7c81e09", "version": 3}',
                           "payload_encoding": "utf-8", "truncated": False}),
          ]),
)


def _ids(topic: Topic) -> tuple[str, str]:
    """(channel id, operation id): ``cityEventsCamera`` and ``receiveCityEventsCamera``."""
    parts = topic.name.split(".")
    channel = parts[0] + "".join(p.capitalize() for p in parts[1:])
    return channel, topic.action + channel[0].upper() + channel[1:]


def document(descriptions: dict[str, str]) -> dict[str, Any]:
    """The whole document; ``descriptions``: each topic's one sentence, as in its schema."""
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    for topic in TOPICS:
        channel, operation = _ids(topic)
        description = descriptions[topic.name]
        messages[topic.message] = {
            "name": topic.message,
            "title": topic.name,
            "summary": description,
            "contentType": "application/json",
            "payload": {"schemaFormat": SCHEMA_FORMAT,
                        "schema": {"$ref": f"./{topic.name}.schema.json"}},
            "bindings": {"kafka": {"key": {"type": "string", "description": f"Record key: {topic.key}."},
                                   "bindingVersion": KAFKA_BINDING}},
            "examples": [{"name": name, "payload": payload} for name, payload in topic.examples],
        }
        channels[channel] = {
            "address": topic.name,
            "title": topic.name,
            "description": f"{topic.summary} Record key: {topic.key}. A deployment may prefix the "
                           "name (CITYORDER_TOPIC_PREFIX).",
            "messages": {topic.message: {"$ref": f"#/components/messages/{topic.message}"}},
            "bindings": {"kafka": {"topic": topic.name, "bindingVersion": KAFKA_BINDING}},
        }
        operations[operation] = {
            "action": topic.action,
            "channel": {"$ref": f"#/channels/{channel}"},
            "summary": ("cityorder reads this topic." if topic.action == "receive"
                        else "cityorder writes this topic."),
            "messages": [{"$ref": f"#/channels/{channel}/messages/{topic.message}"}],
        }
    return {
        "asyncapi": ASYNCAPI_VERSION,
        "info": {
            "title": "cityorder",
            "version": CONTRACT_VERSION,
            "description": "Real-time alerting for city order (市容秩序): camera, sensor, report "
                           "and feedback events in; alerts that open, escalate and close out. "
                           "The rules behind the messages (time, ordering, lifecycle, reason "
                           "codes) are in docs/contracts.md. Payloads are the JSON Schema "
                           "2020-12 files beside this one.",
            "license": {"name": "Proprietary"},
        },
        "defaultContentType": "application/json",
        "servers": {
            "kafka": {"host": "localhost:9092", "protocol": "kafka",
                      "description": "Any Kafka cluster (cityorder dev runs an embedded one); set "
                                     "CITYORDER_BROKERS."},
        },
        "channels": channels,
        "operations": operations,
        "components": {"messages": messages},
    }


def render(descriptions: dict[str, str]) -> str:
    header = ("# Generated by `python -m models.schema` from models/ (models/asyncapi.py): do not edit.\n"
              "# Every topic cityorder reads or writes; payloads are the JSON Schemas beside this file.\n")
    return header + yaml.safe_dump(document(descriptions), allow_unicode=True, sort_keys=False, width=100)
