"""Open311 GeoReport v2 over HTTP (aiohttp's test server, a real ledger on SQLite): services
from the rule packs, a request that becomes a contract report, validation errors in Open311's
own format, and a request's status following the case that its report joined."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import func, select

from adapters.open311 import PREFIX, Open311Metrics, app, services_of
from ledger.schema import open311_requests
from ledger.store import LedgerStore
from models.inputs import ReportEvent
from rules.citymap import CityMap
from rules.demo.city import GEOJSON_PATH
from rules.pack import DEFAULT_PACK, load_rules

CITY = CityMap.load(GEOJSON_PATH)
RULES = load_rules([DEFAULT_PACK])
NOW = 1_795_306_500_000          # 2026-11-22T08:15:00+08:00
LAT, LON = 30.385677, 104.541455   # by cam-0012, inside the demo city


class Harness:
    def __init__(self, store: LedgerStore) -> None:
        self.store = store
        self.sent: list[dict[str, Any]] = []
        self.broker_down = False
        self.metrics = Open311Metrics()

    def counted(self) -> dict[str, float | None]:
        """``cityorder_open311_requests_total`` by outcome, as /metrics would show it."""
        return {o: self.metrics.registry.get_sample_value("cityorder_open311_requests_total", {"outcome": o})
                for o in ("accepted", "refused", "unavailable")}

    async def send(self, report: dict[str, Any]) -> None:
        if self.broker_down:
            raise ConnectionError("no broker")
        self.sent.append(report)


@pytest.fixture
async def harness(tmp_path: Path) -> AsyncIterator[tuple[Harness, TestClient]]:
    h = Harness(LedgerStore(tmp_path / "ledger.sqlite"))
    server = TestServer(app(h.store, CITY, CITY.calendar, services_of(RULES), h.send, lambda: NOW, h.metrics))
    client = TestClient(server)
    await client.start_server()
    try:
        yield h, client
    finally:
        await client.close()
        h.store.close()


async def test_services_are_the_packs_report_categories(harness: tuple[Harness, TestClient]) -> None:
    _, client = harness
    response = await client.get(f"{PREFIX}/services.json")
    assert response.status == 200
    services = await response.json()
    codes = {s["service_code"] for s in services}
    assert {"street_vendor", "garbage_pile"} <= codes and codes >= {r.category for r in RULES.rules}
    assert all(s["type"] == "realtime" and s["metadata"] is False and s["service_name"] for s in services)


async def test_a_request_becomes_a_report_and_is_received(harness: tuple[Harness, TestClient]) -> None:
    h, client = harness
    response = await client.post(f"{PREFIX}/requests.json", data={
        "service_code": "garbage_pile", "lat": str(LAT), "long": str(LON), "description": "路口垃圾堆放",
        "address_string": "人民路 8 号", "media_url": "https://evidence.example/p/1.jpg",
        "device_id": "phone-77", "email": "citizen@example.com", "first_name": "张"})
    assert response.status == 201, await response.text()
    (answer,) = await response.json()
    request_id = answer["service_request_id"]
    (report,) = h.sent
    ReportEvent.model_validate_json(orjson.dumps(report))
    assert report == {"event_id": request_id, "source": "app", "category": "garbage_pile",
                      "observed_at": "2026-11-22T08:15:00.000+08:00", "location": {"lat": LAT, "lon": LON},
                      "reporter_id": "phone-77", "address": "人民路 8 号", "description": "路口垃圾堆放",
                      "photos": ["https://evidence.example/p/1.jpg"]}
    assert "citizen@example.com" not in orjson.dumps(report).decode()      # who is not kept
    (status,) = await (await client.get(f"{PREFIX}/requests/{request_id}.json")).json()
    assert (status["status"], status["service_code"], status["lat"], status["long"]) == (
        "open", "garbage_pile", LAT, LON)
    assert "received" in status["status_notes"]
    assert h.counted() == {"accepted": 1, "refused": 0, "unavailable": 0}


async def test_json_bodies_are_accepted_too(harness: tuple[Harness, TestClient]) -> None:
    h, client = harness
    response = await client.post(f"{PREFIX}/requests.json", json={"service_code": "street_vendor",
                                                                   "lat": LAT, "long": LON})
    assert response.status == 201 and h.sent[0]["category"] == "street_vendor"


@pytest.mark.parametrize(("fields", "status", "says"), [
    ({"lat": str(LAT), "long": str(LON)}, 400, "service_code is required"),
    ({"service_code": "ufo", "lat": str(LAT), "long": str(LON)}, 404, "not a service"),
    ({"service_code": "garbage_pile", "address_string": "人民路 8 号"}, 400, "lat and long are required"),
    ({"service_code": "garbage_pile", "lat": "north", "long": str(LON)}, 400, "must be numbers"),
    ({"service_code": "garbage_pile", "lat": "95", "long": str(LON)}, 400, "lat"),
    ({"service_code": "garbage_pile", "lat": "39.9", "long": "116.4"}, 400, "outside the city"),
    ({"service_code": "garbage_pile", "lat": str(LAT), "long": str(LON), "description": "x" * 5000}, 400,
     "description"),
])
async def test_bad_requests_get_open311_errors_and_send_nothing(
        harness: tuple[Harness, TestClient], fields: dict[str, str], status: int, says: str) -> None:
    h, client = harness
    response = await client.post(f"{PREFIX}/requests.json", data=fields)
    assert response.status == status
    (error,) = await response.json()
    assert error["code"] == status and says in error["description"], error
    assert h.sent == []
    assert h.counted() == {"accepted": 0, "refused": 1, "unavailable": 0}


async def test_the_status_follows_the_case_the_report_joined(harness: tuple[Harness, TestClient]) -> None:
    h, client = harness
    response = await client.post(f"{PREFIX}/requests.json", data={
        "service_code": "garbage_pile", "lat": str(LAT), "long": str(LON)})
    (answer,) = await response.json()
    request_id = answer["service_request_id"]
    base = orjson.loads(orjson.dumps(alert_with_evidence(request_id)))
    records = [(orjson.dumps(base), None, 0),
               (orjson.dumps(base | {"version": 2, "transition": "acknowledged", "status": "acknowledged",
                                     "at": "2026-11-22T08:40:00.000+08:00"}), None, 1)]
    h.store.apply(records)
    (status,) = await (await client.get(f"{PREFIX}/requests/{request_id}.json")).json()
    assert (status["status"], status["updated_datetime"]) == ("open", "2026-11-22T08:40:00.000+08:00")
    assert "taken on" in status["status_notes"]
    h.store.apply([(orjson.dumps(base | {"version": 3, "transition": "closed", "status": "closed",
                                         "at": "2026-11-22T10:00:00.000+08:00"}), None, 2)])
    (status,) = await (await client.get(f"{PREFIX}/requests/{request_id}.json")).json()
    assert status["status"] == "closed" and "closed" in status["status_notes"]
    missing = await client.get(f"{PREFIX}/requests/o311-nothing.json")
    assert missing.status == 404 and (await missing.json())[0]["code"] == 404


def alert_with_evidence(event_id: str) -> dict[str, Any]:
    """A city.alerts message (version 1, opened) whose evidence is the report ``event_id``."""
    return {
        "alert_id": "a-JY-0305-0123456789abcdef0123", "version": 1, "transition": "opened",
        "status": "open", "level": 1, "notify": ["grid_inspector"], "rule_id": "garbage.reports",
        "category": "garbage_pile", "case_code": None, "description": None, "severity": "minor",
        "grid_id": "JY-0305", "district": "简城街道", "responsible_unit": "简城街道城管中队", "zones": [],
        "location": {"lat": LAT, "lon": LON}, "address": None,
        "first_seen": "2026-11-22T08:15:00.000+08:00", "last_seen": "2026-11-22T08:15:00.000+08:00",
        "opened_at": "2026-11-22T08:20:00.000+08:00", "deadline": None, "occurrences": 1,
        "hotspot": False, "assignee": None, "deferred_until": None, "actor": None, "note": None,
        "photos": None,
        "evidence": [{"event_id": event_id, "source": "report", "kind": "garbage_pile",
                      "observed_at": "2026-11-22T08:15:00.000+08:00", "reporter_id": None,
                      "address": None, "photos": None}],
        "at": "2026-11-22T08:20:00.000+08:00", "emitted_at": "2026-11-22T08:20:00.100+08:00",
    }


async def test_a_request_kafka_does_not_take_is_refused_and_forgotten(
        harness: tuple[Harness, TestClient]) -> None:
    h, client = harness
    h.broker_down = True
    response = await client.post(f"{PREFIX}/requests.json", data={
        "service_code": "garbage_pile", "lat": str(LAT), "long": str(LON)})
    assert response.status == 503 and "try again" in (await response.json())[0]["description"]
    assert h.counted() == {"accepted": 0, "refused": 0, "unavailable": 1}
    with h.store.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(open311_requests)).scalar() == 0
