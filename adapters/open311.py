"""Citizen reports in through Open311 GeoReport v2 (the interface many 311 apps and city
platforms speak), out to ``city.events.report``; and each request's status read back from
the ledger.

- ``GET  /open311/v2/services.json``: the report categories cityorder's rule packs use, one
  service each (``service_code`` is the category).
- ``POST /open311/v2/requests.json``: a report (form fields or JSON: ``service_code``, ``lat``,
  ``long``, ``description``, ``media_url``, ``address_string``, ``device_id``, ``account_id``),
  written to ``city.events.report`` as an ``app`` (随手拍) report once Kafka has it, kept in the
  ledger's ``open311_requests``, answered with its ``service_request_id``.
- ``GET  /open311/v2/requests/{id}.json``: its status: ``open`` until the case it joined (the
  alert whose evidence names it) is closed or rejected, with ``status_notes`` saying where the
  case is in Chinese and English.

Errors are Open311's own: a list of ``{"code": ..., "description": ...}`` with the HTTP status.
Names and contact details (``first_name``, ``email``, ``phone``...) are not kept: cityorder needs
where and what, not who. docs/adapters.md has the details.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any, Final

import orjson
from aiohttp import web
from aiokafka import AIOKafkaProducer
from prometheus_client import Counter
from sqlalchemy import delete, insert, select

from ledger.schema import open311_requests, report_evidence, transitions
from ledger.service import check_database
from ledger.store import LedgerStore
from models.decode import BadInput, Source, decode
from rules.citymap import CityMap
from rules.pack import RuleSet
from rules.schedule import CityCalendar
from streams.ingest_loop import wall_ms
from streams.metrics import component_registry
from streams.settings import Settings
from streams.topics import default_configs, ensure_topics
from streams.web import metrics_app, serve_beside

log = logging.getLogger(__name__)

PREFIX: Final = "/open311/v2"
#: Where a case is, for a citizen: (Open311 status, notes). Open311 has two statuses.
NOTES: Final = {
    "open": ("open", "已立案, 待受理 / case opened, waiting to be taken on"),
    "acknowledged": ("open", "已受理 / taken on"),
    "dispatched": ("open", "已派遣 / dispatched to a team"),
    "deferred": ("open", "缓办 / deferred"),
    "resolved": ("open", "已处置, 待核查 / handled, waiting for verification"),
    "closed": ("closed", "已结案 / closed: handled and verified"),
    "rejected": ("closed", "已作废 / closed without action"),
}
RECEIVED: Final = ("open", "已收到, 尚未立案 / received; no case opened from it yet")


class Open311Metrics:
    """What ``/metrics`` on the web port shows besides the process: the requests posted, by
    what became of them, so a citizens' app that stopped getting through shows on a graph."""

    def __init__(self) -> None:
        self.registry = component_registry("adapter-open311")
        self.requests = Counter("cityorder_open311_requests", "Service requests posted, by outcome: "
                                "accepted (the report is on city.events.report), refused (an Open311 "
                                "error: a field missing or wrong, an unknown service, a place outside "
                                "the map) or unavailable (Kafka did not take it: 503, to retry).",
                                ["outcome"], registry=self.registry)
        for outcome in ("accepted", "refused", "unavailable"):
            self.requests.labels(outcome)


@dataclass(frozen=True, slots=True)
class Service:
    code: str
    name: str


class Open311Error(Exception):
    def __init__(self, status: int, description: str) -> None:
        super().__init__(description)
        self.status, self.description = status, description

    def response(self) -> web.Response:
        return web.json_response([{"code": self.status, "description": self.description}],
                                 status=self.status)


def report_of(fields: dict[str, str], services: dict[str, Service], city: CityMap, request_id: str,
              now: str) -> dict[str, Any]:
    """The ``city.events.report`` message of a GeoReport v2 request, or :class:`Open311Error`."""
    code = fields.get("service_code", "").strip()
    if not code:
        raise Open311Error(400, "service_code is required: one of GET services.json")
    if code not in services:
        raise Open311Error(404, f"service_code {code!r} is not a service: see GET services.json")
    try:
        lat, lon = float(fields["lat"]), float(fields["long"])
    except KeyError:
        raise Open311Error(400, "lat and long are required (WGS 84): cityorder places a report by "
                           "its position; address_string alone is not enough") from None
    except ValueError:
        raise Open311Error(400, "lat and long must be numbers (WGS 84 degrees)") from None
    report: dict[str, Any] = {
        "event_id": request_id, "source": "app", "category": code, "observed_at": now,
        "location": {"lat": lat, "lon": lon},
    }
    reporter = fields.get("account_id") or fields.get("device_id")
    optional = {"reporter_id": reporter, "address": fields.get("address_string"),
                "description": fields.get("description")}
    report |= {k: v for k, v in optional.items() if v}
    if fields.get("media_url"):
        report["photos"] = [fields["media_url"]]
    checked = decode(Source.REPORT, orjson.dumps(report))
    if isinstance(checked, BadInput):
        raise Open311Error(400, _plain(checked))
    if city.locate(lat, lon) is None:
        raise Open311Error(400, f"({lat}, {lon}) is outside the city's grids: check lat and long "
                           "(WGS 84, not GCJ-02)")
    return report


def _plain(bad: BadInput) -> str:
    """A contract reason in Open311's words: ``location.lat`` is ``lat``."""
    return bad.reason.replace("location.lon", "long").replace("location.lat", "lat") \
        .replace("photos", "media_url").replace("address", "address_string")


def status_of(store: LedgerStore, request_id: str) -> tuple[dict[str, Any], str, str, int | None] | None:
    """(the request, Open311 status, notes, updated at) or None for an unknown id."""
    with store.engine.connect() as conn:
        row = conn.execute(select(open311_requests).where(
            open311_requests.c.service_request_id == request_id)).mappings().first()
        if row is None:
            return None
        # The case it joined: the alert whose evidence named the report latest.
        found = conn.execute(select(report_evidence.c.alert_id)
                             .where(report_evidence.c.event_id == request_id)
                             .order_by(report_evidence.c.at.desc(), report_evidence.c.version.desc())
                             ).first()
        if found is None:
            return dict(row), *RECEIVED, None
        latest = conn.execute(select(transitions.c.status, transitions.c.at)
                              .where(transitions.c.alert_id == found.alert_id)
                              .order_by(transitions.c.version.desc())).first()
        assert latest is not None
        status, notes = NOTES.get(latest.status, RECEIVED)
        return dict(row), status, notes, latest.at


def services_of(rules: RuleSet) -> list[Service]:
    """A service per report category the rule packs use, named by its first rule's description."""
    names: dict[str, str] = {}
    for rule in rules.rules:
        names.setdefault(rule.category, rule.description or rule.category)
    return [Service(code, names.get(code, code)) for code in sorted(rules.categories | set(names))]


def app(store: LedgerStore, city: CityMap, cal: CityCalendar, services: Iterable[Service],
        send: Callable[[dict[str, Any]], Awaitable[None]], now_ms: Callable[[], int],
        metrics: Open311Metrics) -> web.Application:
    """The Open311 endpoints; ``send`` writes a report to Kafka and returns once it is acked."""
    catalogue = {s.code: s for s in services}
    counted = metrics.requests

    async def get_services(_: web.Request) -> web.Response:
        return web.json_response([
            {"service_code": s.code, "service_name": s.name, "description": s.name, "metadata": False,
             "type": "realtime", "keywords": s.code.replace("_", ","), "group": "市容秩序"}
            for s in catalogue.values()])

    async def post_request(request: web.Request) -> web.Response:
        try:
            fields = await _fields(request)
            request_id = f"o311-{uuid.uuid4().hex}"
            at = now_ms()
            report = report_of(fields, catalogue, city, request_id, cal.format(at))
        except Open311Error as e:
            counted.labels("refused").inc()
            return e.response()
        # Kept first, so the id answered below is always known to GET; forgotten again if
        # Kafka does not take the report, so a citizen's retry is no duplicate.
        with store.engine.begin() as conn:
            conn.execute(insert(open311_requests).values(
                service_request_id=request_id, service_code=report["category"],
                description=report.get("description"), lat=report["location"]["lat"],
                lon=report["location"]["lon"], address=report.get("address"),
                media_url=fields.get("media_url") or None, requested_at=at))
        try:
            await send(report)
        except Exception:
            log.exception("open311: could not write request %s to Kafka", request_id)
            with store.engine.begin() as conn:
                conn.execute(delete(open311_requests).where(
                    open311_requests.c.service_request_id == request_id))
            counted.labels("unavailable").inc()
            return Open311Error(503, "the report could not be forwarded just now: try again").response()
        counted.labels("accepted").inc()
        return web.json_response([{"service_request_id": request_id,
                                   "service_notice": "已收到, 谢谢 / received, thank you",
                                   "account_id": None}], status=201)

    async def get_request(request: web.Request) -> web.Response:
        request_id = request.match_info["id"]
        found = status_of(store, request_id)
        if found is None:
            return Open311Error(404, f"no service request {request_id!r}").response()
        row, status, notes, updated = found
        service = catalogue.get(row["service_code"])
        return web.json_response([{
            "service_request_id": request_id, "status": status, "status_notes": notes,
            "service_name": service.name if service else row["service_code"],
            "service_code": row["service_code"], "description": row["description"],
            "requested_datetime": cal.format(row["requested_at"]),
            "updated_datetime": cal.format(updated if updated is not None else row["requested_at"]),
            "address": row["address"], "lat": row["lat"], "long": row["lon"], "media_url": row["media_url"],
        }])

    async def not_json(request: web.Request) -> web.Response:
        return Open311Error(404, "only the JSON format is served: use .json").response()

    application = web.Application(client_max_size=1 << 20)
    application.router.add_get(f"{PREFIX}/services.json", get_services)
    application.router.add_post(f"{PREFIX}/requests.json", post_request)
    application.router.add_get(PREFIX + "/requests/{id}.json", get_request)
    application.router.add_get(f"{PREFIX}/services.xml", not_json)
    return application


async def _fields(request: web.Request) -> dict[str, str]:
    """The request's fields, from a form (GeoReport v2's own encoding) or a JSON object."""
    if request.content_type == "application/json":
        try:
            body = await request.json(loads=orjson.loads)
        except ValueError:
            raise Open311Error(400, "the body is not JSON") from None
        if not isinstance(body, dict):
            raise Open311Error(400, "the body must be a JSON object of fields")
        return {str(k): str(v) for k, v in body.items() if v is not None}
    form = await request.post()
    return {k: str(v) for k, v in form.items()}


async def serve(settings: Settings, store: LedgerStore, city: CityMap, rules: RuleSet, host: str,
                port: int, web_port: int) -> None:
    """Run the endpoints until cancelled, with a producer to ``city.events.report``; ``/metrics``
    and ``/healthz`` on ``web_port``, apart from the public port, as the other adapters do."""
    topic = settings.topic("city.events.report")
    await ensure_topics(settings, {topic: settings.partitions}, configs=default_configs(settings))
    # On another database than the ledger's, every request's status would stay "received".
    await check_database(settings, store)
    producer = AIOKafkaProducer(**settings.producer_kwargs(), acks="all")
    await producer.start()
    metrics = Open311Metrics()

    async def send(report: dict[str, Any]) -> None:
        await producer.send_and_wait(topic, orjson.dumps(report), key=report["event_id"].encode())

    async def run() -> None:
        runner = web.AppRunner(app(store, city, city.calendar, services_of(rules), send, wall_ms, metrics))
        await runner.setup()
        await web.TCPSite(runner, host, port).start()
        log.info("open311: http://%s:%d%s/services.json -> %s; /metrics on port %d", host, port,
                 PREFIX, topic, web_port)
        try:
            await asyncio.Event().wait()
        finally:
            await runner.cleanup()

    try:
        await serve_beside(run, metrics_app(metrics.registry), web_port)
    finally:
        await producer.stop()
