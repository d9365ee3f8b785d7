"""CAP 1.2 renderings of alert messages are valid by the CAP 1.2 XML Schema (kept in
tests/models/schemas/ with its source): the contract's example, every message of the demo day's
replay, and a note full of markup and control characters."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import pytest
import xmlschema

from models.asyncapi import TOPICS
from models.cap import NAMESPACE, cap_time, render
from rules.demo.city import GEOJSON_PATH as DEMO_CITY
from rules.demo.dispatch import generate_with_feedback
from rules.pack import DEFAULT_PACK
from tests.e2e.workers import replay_of

XSD = xmlschema.XMLSchema(Path(__file__).parent / "schemas" / "cap-1.2.xsd")
SENDER = "cityorder@jianyang.example"
EXAMPLE: dict[str, Any] = next(t for t in TOPICS if t.name == "city.alerts").examples[0][1]
NS = {"cap": NAMESPACE}


def test_the_schema_refuses_what_cap_does() -> None:
    good = render(EXAMPLE, SENDER)
    XSD.validate(good.decode())
    with pytest.raises(xmlschema.XMLSchemaValidationError):
        XSD.validate(good.decode().replace("<status>Actual</status>", "<status>Real</status>"))
    with pytest.raises(xmlschema.XMLSchemaValidationError):
        XSD.validate(good.decode().replace("08:30:02+08:00", "08:30:02.000+08:00", 1))


def test_an_escalation_is_an_update_of_the_first_message() -> None:
    root = ElementTree.fromstring(render(EXAMPLE, SENDER, "简阳市城市运行管理服务中心"))
    text = {e.tag.split("}")[1]: e.text for e in root}
    assert (text["identifier"], text["msgType"], text["sent"]) == (
        "a-JY-0312-3f9c0e51d2a4b7c81e09:3", "Update", "2026-11-22T08:30:02+08:00")
    assert text["references"] == f"{SENDER},a-JY-0312-3f9c0e51d2a4b7c81e09:1,2026-11-22T08:15:02+08:00"
    info = root.find("cap:info", NS)
    assert info is not None
    assert info.findtext("cap:severity", namespaces=NS) == "Moderate"
    assert info.findtext("cap:urgency", namespaces=NS) == "Immediate"        # level 2
    assert info.findtext("cap:expires", namespaces=NS) == "2026-11-22T10:15:02+08:00"
    assert info.findtext("cap:area/cap:circle", namespaces=NS) == "30.3921,104.5462 0.05"
    codes = {e.findtext("cap:valueName", namespaces=NS): e.findtext("cap:value", namespaces=NS)
             for e in info.findall("cap:eventCode", NS)}
    assert codes == {"cityorder:rule_id": "street-vending.main-road", "cityorder:category": "street_vendor",
                     "GB/T 30428.2": "05-01"}
    assert [r.findtext("cap:uri", namespaces=NS) for r in info.findall("cap:resource", NS)] == [
        "https://evidence.example/cam-0012/81723.jpg"]


def test_markup_and_control_characters_in_a_note_stay_text() -> None:
    alert = EXAMPLE | {"note": "<b>已派单</b> & \x01 \ud800done", "version": 4, "status": "rejected",
                       "transition": "rejected"}
    xml = render(alert, SENDER)
    XSD.validate(xml.decode())
    root = ElementTree.fromstring(xml)
    assert root.findtext("cap:note", namespaces=NS) == "<b>已派单</b> &  done"
    assert root.findtext("cap:msgType", namespaces=NS) == "Cancel"


def test_every_kind_of_message_of_the_demo_day_is_valid_cap() -> None:
    """One message of each shape a tenth of the demo day has (transition, status, level, and which of
    note, photos, deadline, assignee are there): the schema's time goes on shapes, not counts."""
    day = generate_with_feedback(DEMO_CITY, DEFAULT_PACK, date(2026, 11, 20), 7, scale=0.1)
    alerts, _ = replay_of(day, DEMO_CITY, [DEFAULT_PACK])
    shapes = {}
    for a in alerts:
        key = (a["transition"], a["status"], a["level"], a["severity"], a["rule_id"],
               *(a[k] is None for k in ("note", "photos", "deadline", "assignee", "case_code")))
        shapes.setdefault(key, a)
    assert len(alerts) > 100 and len(shapes) > 20, (len(alerts), len(shapes))
    for alert in shapes.values():
        XSD.validate(render(alert, SENDER).decode())


def test_times_lose_only_their_fraction() -> None:
    assert cap_time("2026-11-22T08:15:03.120+08:00") == "2026-11-22T08:15:03+08:00"
    assert cap_time("2026-11-22T00:15:03Z") == "2026-11-22T00:15:03+00:00"
