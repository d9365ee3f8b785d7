"""A small city, a small pack, and a driver that sends contract-shaped messages through the
real decode → ingest → engine path, so engine tests exercise what production runs."""

from __future__ import annotations

import itertools
import textwrap
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import orjson

from rules.citymap import CityMap
from rules.pack import RuleSet, load_rules
from rules.replay import Replay

CST = timezone(timedelta(hours=8))
DAY = "2026-11-18"  # a Wednesday, a workday


def T(hms: str, day: str = DAY) -> int:
    """Epoch ms of a local (+08:00) time on the test day; 'HH:MM:SS[.mmm]'."""
    dt = datetime.fromisoformat(f"{day}T{hms}+08:00")
    return int(dt.timestamp() * 1000)


def iso(ms: int) -> str:
    return (datetime.fromtimestamp(0, UTC) + timedelta(milliseconds=ms)).astimezone(CST) \
        .isoformat(timespec="milliseconds")


def _box(lon0: float, lat0: float, lon1: float, lat1: float) -> list[list[list[float]]]:
    return [[[lon0, lat0], [lon1, lat0], [lon1, lat1], [lon0, lat1], [lon0, lat0]]]


def _feature(geometry: dict[str, Any], **props: Any) -> dict[str, Any]:
    return {"type": "Feature", "geometry": geometry, "properties": props}


def city_geojson() -> dict[str, Any]:
    poly = lambda *b: {"type": "Polygon", "coordinates": _box(*b)}  # noqa: E731
    point = lambda lat, lon: {"type": "Point", "coordinates": [lon, lat]}  # noqa: E731
    return {
        "type": "FeatureCollection",
        "city": {"name": "测试市", "time_zone": "Asia/Shanghai",
                 "calendar": {"holidays": ["2026-10-01"], "workdays": ["2026-10-10"]}},
        "features": [
            _feature(poly(104.000, 30.000, 104.010, 30.010), type="grid", id="G-1",
                     district="一街道", responsible_unit="一中队"),
            _feature(poly(104.010, 30.000, 104.020, 30.010), type="grid", id="G-2",
                     district="二街道", responsible_unit="二中队"),
            _feature(poly(104.000, 30.004, 104.010, 30.006), type="zone", id="main-road-1",
                     kind="main_road", name="东大街"),
            _feature(poly(104.000, 30.004, 104.003, 30.006), type="zone", id="night-1",
                     kind="night_market", name="夜市", schedule={"hours": "18:00-23:00"}),
            _feature(poly(104.007, 30.000, 104.009, 30.002), type="zone", id="school-1",
                     kind="school", name="一小", priority="key"),
            _feature(poly(104.012, 30.004, 104.018, 30.006), type="zone", id="nopark-1",
                     kind="no_parking", name="禁停"),
            _feature(point(30.005, 104.005), type="camera", id="cam-1"),
            _feature(point(30.005, 104.015), type="camera", id="cam-2"),
            _feature(point(30.001, 104.001), type="sensor", id="sl-1", kind="streetlight"),
            _feature(point(30.001, 104.002), type="sensor", id="mh-1", kind="manhole_cover"),
            _feature(point(30.005, 104.013), type="sensor", id="pk-1", kind="parking_occupancy"),
        ],
    }


POLICIES = """
policies:
  std:
    levels:
      - {level: 1, after: 0s, notify: [grid_inspector]}
      - {level: 2, after: 15m, unless: acknowledged, notify: [district_duty]}
      - {level: 3, after: 60m, unless: resolved, notify: [district_leader]}
    deadline: 2h
  restart:
    levels:
      - {level: 1, after: 0s, notify: [grid_inspector]}
      - {level: 2, after: 15m, unless: acknowledged, notify: [district_duty]}
    deadline: 30m
    on_reopen: restart
  hot:
    levels:
      - {level: 1, after: 0s, notify: [grid_inspector]}
      - {level: 2, after: 30m, unless: acknowledged, notify: [district_duty]}
    hotspot: {count: 2, within: 1d, raise: 1}
"""

RULES = """
rules:
  - id: vend.main
    category: street_vendor
    severity: major
    description: 主干道流动摊贩
    source: camera
    match: {labels: [street_vendor, vendor_stall], min_confidence: 0.5}
    inside: [main_road]
    permitted: [night_market]
    persist: {duration: 10m, gap: 2m}
    policy: std
  - id: report.repeat
    category: garbage_pile
    severity: minor
    source: report
    match: {categories: [garbage_pile], sources: [hotline, app]}
    count: {n: 3, within: 1h, by: grid}
    policy: std
  - id: light.out
    category: streetlight_out
    severity: minor
    source: sensor
    match: {kinds: [streetlight]}
    schedule: {hours: "19:00-06:00"}
    holds: {duration: 1h, trigger: [off, fault], clear: [on]}
    policy: std
  - id: manhole.open
    category: manhole_open
    severity: critical
    source: sensor
    match: {kinds: [manhole_cover]}
    holds: {duration: 0s, trigger: [open, tilted], clear: [ok]}
    policy: std
  - id: camera.offline
    category: camera_offline
    severity: minor
    source: camera
    silent: {duration: 5m}
    policy: std
"""


def load_pack(tmp: Path, text: str, name: str = "pack.yaml") -> RuleSet:
    path = tmp / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return load_rules([path])


class Harness:
    """Send messages by the contract; collect alert messages and dead letters."""

    def __init__(self, tmp: Path, rules: str = RULES, policies: str = POLICIES,
                 clock: str = "event", engine: Any = None, feed: bool = True,
                 partitions: int = 1, **engine_kw: Any) -> None:
        """One partition unless told: these tests pin down one engine's semantics (its clock,
        its lateness), which several partitions would split by a hash of the grid ids."""
        self.city = CityMap.from_geojson(city_geojson(), "test-city")
        self.rules = load_pack(tmp, policies + rules)
        self.alerts: list[dict[str, Any]] = []
        self.dead: list[dict[str, Any]] = []
        if engine is None and engine_kw:  # the test reads or snapshots this engine itself
            from rules.engine import Engine
            engine = Engine(self.city, self.rules, clock=clock, **engine_kw)
        self.replay = Replay(self.city, self.rules, clock=clock, on_alert=self.alerts.append,
                             on_dead=self.dead.append, engine=engine, partitions=partitions)
        self.lines: list[bytes] = []
        self.feeding = feed
        self._ids = itertools.count(1)
        self.focus: str | None = None  # the rule the reading helpers look at by default

    @property
    def engine(self) -> Any:
        return self.replay.engine

    def send(self, topic: str, value: Any, key: str | None = None, arrival: int | None = None) -> None:
        line: dict[str, Any] = {"topic": topic, "key": key, "value": value}
        if arrival is not None:
            line["arrival"] = iso(arrival)
        self.raw_line(line)

    def raw_line(self, line: dict[str, Any]) -> None:
        data = orjson.dumps(line)
        self.lines.append(data)
        if self.feeding:
            self.replay.line(data, len(self.lines))

    def cam(self, t: int, track: str | None = "t1", label: str = "street_vendor",
            conf: float = 0.9, cam: str = "cam-1", loc: tuple[float, float] | None = None,
            eid: str | None = None, arrival: int | None = None, detections: Any = None) -> None:
        if detections is None:
            det: dict[str, Any] = {"label": label, "confidence": conf}
            if track is not None:
                det["track_id"] = track
            if loc is not None:
                det["location"] = {"lat": loc[0], "lon": loc[1]}
            detections = [det]
        self.send("city.events.camera", {
            "event_id": eid or f"{cam}-{next(self._ids)}", "camera_id": cam,
            "observed_at": iso(t), "snapshot_url": f"https://evidence.example/{cam}/{t}.jpg",
            "detections": detections}, key=cam, arrival=arrival)

    def sensor(self, t: int, sensor: str, kind: str, state: str | None = None,
               value: float | None = None, eid: str | None = None) -> None:
        msg: dict[str, Any] = {"event_id": eid or f"{sensor}-{next(self._ids)}",
                               "sensor_id": sensor, "kind": kind, "observed_at": iso(t)}
        if state is not None:
            msg["state"] = state
        if value is not None:
            msg["value"] = value
        self.send("city.events.sensor", msg, key=sensor)

    def report(self, t: int, category: str = "garbage_pile", source: str = "hotline",
               grid_id: str | None = None, loc: tuple[float, float] | None = (30.002, 104.004),
               eid: str | None = None) -> None:
        msg: dict[str, Any] = {"event_id": eid or f"rep-{next(self._ids)}", "source": source,
                               "category": category, "observed_at": iso(t),
                               "address": "东大街 12 号"}
        if grid_id is not None:
            msg["grid_id"] = grid_id
        else:
            msg["location"] = {"lat": loc[0], "lon": loc[1]}
        self.send("city.events.report", msg)

    def fb(self, t: int, alert_id: str, action: str, eid: str | None = None, **extra: Any) -> None:
        msg = {"event_id": eid or f"fb-{next(self._ids)}", "alert_id": alert_id, "action": action,
               "actor": "duty-7", "at": iso(t), **extra}
        if "until" in msg and isinstance(msg["until"], int):
            msg["until"] = iso(msg["until"])
        self.send("city.alerts.feedback", msg, key=alert_id)

    def tick(self, t: int) -> None:
        self.raw_line({"tick": iso(t)})

    def tick_text(self, text: str) -> None:
        """A tick as written, even one no ``int`` time of ours can spell."""
        self.raw_line({"tick": text})

    def finish(self, until: int | None = None) -> None:
        self.replay.finish(until)

    # -- reading the output --

    def transitions(self, rule_id: str | None = None) -> list[tuple[str, str]]:
        rule_id = rule_id or self.focus
        return [(a["transition"], a["at"]) for a in self.alerts
                if rule_id is None or a["rule_id"] == rule_id]

    def kinds(self, rule_id: str | None = None) -> list[str]:
        rule_id = rule_id or self.focus
        return [a["transition"] for a in self.alerts if rule_id is None or a["rule_id"] == rule_id]

    def last(self, transition: str | None = None) -> dict[str, Any]:
        for a in reversed(self.alerts):
            if self.focus is not None and a["rule_id"] != self.focus:
                continue
            if transition is None or a["transition"] == transition:
                return a
        raise AssertionError(f"no {transition} message in {self.kinds()}")
