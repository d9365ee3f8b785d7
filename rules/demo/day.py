"""A scripted, realistic day of input for the demo city, written as a replay file (RULES.md).

Why a script and not pure noise: the demo and the end-to-end tests must show each rule of the
default pack doing its job (a vendor who stays, a car parked 40 minutes in a no-parking zone, a
lamp that does not come on at dusk, a camera that drops out) and not doing it (a drop-off of
8 minutes, vendors inside the open night market), so every such story is written down below
with its times. Around the stories runs the background a real centre sees: every camera's
heartbeat each minute, tracker updates every 20-30 s while it sees something, sensors
reporting on their own cadences, inspector and citizen reports, and about 0.5 % bad input.

Everything is drawn from ``random.Random`` instances seeded with ``"{seed}/{purpose}"``, so the
same seed gives the same file byte for byte, and one story's draws do not shift another's.

Arrival order is time order plus a small delivery delay (at most 1.5 s), so no line arrives
more than 1.5 s before an older one: well inside the engine's 5 s reorder window. Every input
line carries that ``arrival``, so the file can also be replayed in ``wall`` clock mode.

``generate_events`` returns ``(arrival_ms, line)`` pairs in arrival order, so a later stage (a
dispatch simulator) can merge its own lines in; ``generate_day`` adds the closing tick.

    python -m rules.demo.day --day 2026-11-20 --seed 7 -o day.jsonl
"""

from __future__ import annotations

import argparse
import base64
import functools
import heapq
import itertools
import math
import random
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, datetime, time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import orjson
from shapely.geometry import Point, shape
from shapely.geometry.base import BaseGeometry

from models.vocabulary import CAMERA_TOPIC
from rules.demo.city import GEOJSON_PATH

SENSOR_TOPIC = "city.events.sensor"
REPORT_TOPIC = "city.events.report"

BAD_RATIO = 0.005
"""Share of deliberately bad lines among the input lines (ticks excluded)."""
MAX_DELAY_MS = 1_500
"""Largest delivery delay: how far a line may arrive out of time order."""
TICK_AFTER_MS = 5_000
"""The closing tick sits at the last input's time plus the default reorder window."""
HEARTBEAT_MS = 60_000
JITTER_M = 3.0
"""Largest location error of a detection, per axis, in metres."""

MINUTE = 60_000
HOUR = 3_600_000
DAY = 86_400_000


@functools.lru_cache(maxsize=4096)
def hm(text: str) -> int:
    """Local wall time ``HH:MM`` or ``HH:MM:SS`` as milliseconds after midnight (24:00 allowed)."""
    parts = [int(p) for p in text.split(":")]
    h, m, s = [*parts, 0][:3]
    return ((h * 60 + m) * 60 + s) * 1000


def _clock_text(ms: int) -> str:
    """Milliseconds after midnight back to ``HH:MM:SS`` (the inverse of ``hm``)."""
    s = ms // 1000
    return f"{s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}"


# --------------------------------------------------------------------------- the city


@dataclass(frozen=True)
class Device:
    """A registered camera or sensor from the map."""

    id: str
    kind: str
    lon: float
    lat: float


@dataclass(frozen=True)
class MapZone:
    id: str
    kind: str
    geom: BaseGeometry


class DemoCity:
    """The parts of a city map the generator needs: devices, zones, grids and the clock zone.

    It reads the GeoJSON itself rather than through ``rules.citymap`` so the demo stays usable
    as test input for the loader, and so a mistake in the loader cannot hide one here.
    """

    def __init__(self, path: Path) -> None:
        data = orjson.loads(path.read_bytes())
        city = data.get("city", {})
        self.name: str = city.get("name", "")
        self.tz = ZoneInfo(city.get("time_zone", "Asia/Shanghai"))
        self.cameras: dict[str, Device] = {}
        self.sensors: dict[str, Device] = {}
        self.zones: list[MapZone] = []
        self.grids: list[tuple[str, BaseGeometry]] = []
        for f in data["features"]:
            p = f["properties"]
            if p["type"] == "grid":
                self.grids.append((p["id"], shape(f["geometry"])))
            elif p["type"] == "zone":
                self.zones.append(MapZone(p["id"], p["kind"], shape(f["geometry"])))
            else:
                lon, lat = f["geometry"]["coordinates"]
                kind = "camera" if p["type"] == "camera" else p["kind"]
                target = self.cameras if p["type"] == "camera" else self.sensors
                target[p["id"]] = Device(p["id"], kind, lon, lat)
        self.grids.sort()
        lats = [d.lat for d in self.cameras.values()] or [30.0]
        mid = (min(lats) + max(lats)) / 2
        self._m_lon = 111_320.0 * math.cos(math.radians(mid))
        self._m_lat = 111_320.0

    def device(self, device_id: str) -> Device:
        return self.cameras.get(device_id) or self.sensors[device_id]

    def offset(self, lon: float, lat: float, dx: float, dy: float) -> tuple[float, float]:
        """``(lon, lat)`` moved ``dx`` metres east and ``dy`` north, rounded to 6 decimals."""
        return round(lon + dx / self._m_lon, 6), round(lat + dy / self._m_lat, 6)

    def grid_at(self, lon: float, lat: float) -> str | None:
        """The grid containing the point; on a shared edge the smallest id, as the engine does."""
        pt = Point(lon, lat)
        for gid, geom in self.grids:
            if geom.covers(pt):
                return gid
        return None

    def kinds_at(self, lon: float, lat: float) -> set[str]:
        """Zone kinds containing the point, schedules ignored."""
        pt = Point(lon, lat)
        return {z.kind for z in self.zones if z.geom.covers(pt)}


class Clock:
    """The day's local midnight and RFC 3339 formatting in the city's offset."""

    def __init__(self, day: date, tz: ZoneInfo) -> None:
        self.day = day
        self.tz = tz
        self.start = int(datetime.combine(day, time(0), tz).timestamp() * 1000)
        self.end = self.start + DAY
        self.tag = day.strftime("%Y%m%d")
        self._minutes: dict[int, tuple[str, str]] = {}

    def at(self, local: str | int) -> int:
        """Epoch ms of a local wall time of the day (the demo city keeps no daylight saving)."""
        return self.start + (hm(local) if isinstance(local, str) else local)

    def stamp(self, t_ms: int, naive: bool = False) -> str:
        """``2026-11-20T08:15:03.120+08:00``; ``naive`` drops the offset (for bad input).

        Cached per minute: formatting ~160,000 stamps a day through datetime dominated the
        generator's time, and UTC offsets only ever change on a minute boundary."""
        minute = t_ms // MINUTE
        head = self._minutes.get(minute)
        if head is None:
            dt = datetime.fromtimestamp(minute * 60, self.tz)
            z = dt.strftime("%z")
            head = self._minutes[minute] = (f"{dt:%Y-%m-%dT%H:%M}", f"{z[:3]}:{z[3:]}")
        text = f"{head[0]}:{t_ms // 1000 % 60:02d}.{t_ms % 1000:03d}"
        return text if naive else text + head[1]


# --------------------------------------------------------------------------- output


Stream = Iterator[tuple[int, dict[str, Any]]]
"""Input lines with the time each one is about (its ``observed_at``), in time order."""


def _rng(seed: int, purpose: str) -> random.Random:
    # A string seed is hashed by SHA-512 inside random, the same on every platform and run.
    return random.Random(f"{seed}/{purpose}")


# --------------------------------------------------------------------------- cameras


@dataclass(frozen=True)
class Track:
    """One object a camera tracks: where (metres from the camera), when, and how it moves.

    ``expect`` and ``avoid`` are the zone kinds the story needs it in or out of; the generator
    checks them against the map, so a change to the city that breaks a story fails loudly
    instead of quietly producing a day without the alert it was written for.
    """

    camera: str
    label: str
    start: str
    end: str
    at: tuple[float, float]
    to: tuple[float, float] | None = None
    wander: float = 0.0
    expect: tuple[str, ...] = ()
    avoid: tuple[str, ...] = ()
    miss: float = 0.04


def _trucks() -> list[Track]:
    """Heavy trucks crossing the old town on 建设路 (a restricted zone) and on 雄州大道 (not).

    Each is in view for 70-90 s, driving through the frame."""
    out: list[Track] = []
    for start in ("06:40", "07:22", "08:05", "08:47", "09:15", "13:10", "21:30"):
        out.append(
            Track("cam-0019", "heavy_truck", start, _clock_text(hm(start) + 80_000), (-17, -35),
                  to=(-17, 45), expect=("main_road", "truck_restricted"))
        )
    out.append(
        Track("cam-0005", "heavy_truck", "08:20", "08:21:10", (-60, -17), to=(50, -17),
              expect=("main_road", "truck_restricted"))
    )
    for start in ("07:05", "07:48", "08:30", "09:40", "10:25", "11:10", "14:05", "15:30", "16:45"):
        out.append(
            Track("cam-0022", "heavy_truck", start, _clock_text(hm(start) + 90_000), (-20, -40),
                  to=(-20, 40), expect=("main_road",), avoid=("truck_restricted",))
        )
    return out


STORIES: tuple[Track, ...] = (
    # 夜市: vendors setting up on 东大街 before the night market opens at 18:00 are on a main
    # road outside any permitted zone (an alert at ~17:38, cleared after 18:00); those who arrive
    # after 18:00 are permitted; one stays past 23:00 and raises an alert again.
    Track("cam-0002", "vendor_stall", "17:28", "22:50", (-20, -17),
          expect=("main_road", "night_market"), avoid=("school",)),
    Track("cam-0002", "street_vendor", "17:50", "23:25", (30, -22),
          expect=("main_road", "night_market"), avoid=("school",)),
    Track("cam-0003", "vendor_stall", "18:05", "22:40", (-40, -17),
          expect=("main_road", "night_market"), avoid=("school",)),
    Track("cam-0003", "vendor_stall", "17:52", "22:55", (20, -20),
          expect=("main_road", "night_market"), avoid=("school",)),
    # Vendors on main roads: one stays (alert), one moves on after 8 minutes (none); one in the
    # evening rush (key period: severity raised).
    Track("cam-0011", "street_vendor", "15:05", "16:20", (40, -17),
          expect=("main_road",), avoid=("school", "night_market")),
    Track("cam-0010", "street_vendor", "10:02", "10:10", (30, -17), expect=("main_road",)),
    Track("cam-0007", "street_vendor", "17:10", "18:30", (20, -17),
          expect=("main_road",), avoid=("school", "vendor_permitted")),
    # Vendors near schools (校园周边, key areas) at school-out and at breakfast time.
    Track("cam-0004", "street_vendor", "16:15", "17:05", (-40, -17),
          expect=("school", "main_road")),
    Track("cam-0004", "vendor_stall", "07:05", "07:50", (50, 18), expect=("school",)),
    Track("cam-0032", "street_vendor", "16:00", "16:45", (-10, -17), expect=("school",)),
    # Near the bus station, morning.
    Track("cam-0033", "street_vendor", "07:40", "09:20", (-50, -50), expect=("station",)),
    # Permitted: the 便民摊点 on the 人民路 pavement by the market (a main road, but no alert).
    Track("cam-0014", "vendor_stall", "07:30", "11:30", (0, -8),
          expect=("vendor_permitted", "main_road")),
    # 店外经营 on a back street (alert) and on 东大街 in the evening (alert).
    Track("cam-0026", "outdoor_business", "09:30", "12:10", (20, -6), expect=("back_street",)),
    Track("cam-0006", "outdoor_business", "19:00", "21:30", (30, 13), avoid=("night_market",)),
    # Cars in no-parking zones: 38 min at the hospital (alert), 12 min (none) and 30 min (alert)
    # on 人民路, an 8-minute drop-off and a 22-minute wait at the school gate, 35 min at the
    # station in the evening rush; an e-bike 40 min on 东大街东段 and a short one at the hospital.
    Track("cam-0013", "parked_car", "08:12", "08:50", (20, 13), expect=("no_parking",)),
    Track("cam-0012", "parked_car", "12:30", "12:42", (20, -17), expect=("no_parking",)),
    Track("cam-0012", "parked_car", "13:05", "13:35", (15, -15), expect=("no_parking",)),
    Track("cam-0004", "parked_car", "07:25", "07:33", (-20, 18), expect=("no_parking",)),
    Track("cam-0004", "parked_car", "16:30", "16:52", (-20, 18), expect=("no_parking",)),
    Track("cam-0033", "parked_car", "18:10", "18:45", (-20, 5), expect=("no_parking",)),
    Track("cam-0009", "parked_ebike", "10:00", "10:40", (-20, -20), expect=("no_parking",)),
    Track("cam-0013", "parked_ebike", "14:00", "14:06", (40, 15), expect=("no_parking",)),
    # A 僵尸车 on 新市街, there all day (the 3-day rule will not fire within one day).
    Track("cam-0027", "abandoned_vehicle", "00:00", "24:00", (-8, 30),
          expect=("back_street",), miss=0.08),
    # Garbage: a pile by the market left for hours (alert), one cleared in 20 min (none), and
    # one left after the night market closes (alert near midnight).
    Track("cam-0035", "garbage_pile", "09:05", "11:40", (20, 20), expect=("market",)),
    Track("cam-0030", "garbage_pile", "14:00", "14:20", (-20, -8), expect=("back_street",)),
    Track("cam-0003", "garbage_pile", "23:10", "24:00", (-70, -17), expect=("main_road",)),
    # Debris: outside the construction site fence (alert) and inside it (none).
    Track("cam-0034", "debris", "10:00", "16:00", (20, 2), avoid=("construction", "main_road")),
    Track("cam-0034", "debris", "08:00", "18:00", (-30, -70), expect=("construction",)),
    # Posters: one stays (alert), one removed within minutes (none).
    Track("cam-0029", "illegal_poster", "08:30", "24:00", (20, -8), expect=("back_street",)),
    Track("cam-0028", "illegal_poster", "11:00", "11:05", (-8, 20)),
    # An evening barbecue on 滨江后街 (alert; citizens complain about it too).
    Track("cam-0031", "outdoor_bbq", "19:40", "23:50", (40, -10), expect=("back_street",)),
    # A stray dog around 简阳中学 at school-in time (alert), and one in the park (none).
    Track("cam-0004", "stray_dog", "07:35", "08:05", (20, 68), wander=12, expect=("school",)),
    Track("cam-0036", "stray_dog", "14:00", "14:30", (20, 20), wander=15, avoid=("school",)),
    # 沿街晾挂 on 公园巷 (alert), and laundry inside 东湖小区's compound (none: not on a street).
    Track("cam-0025", "hanging_laundry", "09:20", "15:30", (20, -6), expect=("back_street",)),
    Track("cam-0037", "hanging_laundry", "09:00", "16:00", (20, 20),
          expect=("residential",), avoid=("main_road", "back_street")),
    # A spilt load on 雄州大道 by the building site, left until after lunch (alert; 2 工作时).
    Track("cam-0022", "road_spill", "10:40", "13:00", (-20, 10), expect=("main_road",),
          avoid=("construction",)),
    # Leaves and rubbish burnt in 雄州公园 (alert, urgent).
    Track("cam-0036", "open_burning", "16:40", "17:10", (-30, 40), expect=("scenic",)),
    # A car in 滨江花园's fire lane for 50 minutes (alert), and one stopping for 3 (none).
    Track("cam-0040", "parked_car", "20:10", "21:00", (-13, 0), expect=("fire_lane",)),
    Track("cam-0040", "parked_car", "06:30", "06:33", (-13, 0), expect=("fire_lane",)),
    # Works fencing off a lane of 建设路 (施工占道: alert) and the permitted works on 南门巷
    # (none).
    Track("cam-0018", "construction_fence", "08:40", "17:00", (-17, 0), expect=("main_road",),
          avoid=("construction", "road_works_permitted")),
    Track("cam-0030", "construction_fence", "08:30", "16:30", (-10, -8),
          expect=("back_street", "road_works_permitted")),
    # An uncovered muck truck leaving the site along 雄州大道 (alert).
    Track("cam-0022", "uncovered_muck_truck", "11:35", "11:36:20", (-20, -40), to=(-20, 40),
          expect=("main_road",)),
    *_trucks(),
)

OFFLINE_CAMERA = ("cam-0015", "14:20", "14:40")
"""A camera that drops out for 20 minutes in the afternoon (the ``silent`` rule's story)."""


@dataclass
class _LiveTrack:
    """A track bound to the day: absolute times, its id and its look in the frame."""

    spec: Track
    start: int
    end: int
    track_id: str
    bbox: tuple[float, float, float, float]

    def position(self, t: int) -> tuple[float, float]:
        x, y = self.spec.at
        if self.spec.to is not None and self.end > self.start:
            f = (t - self.start) / (self.end - self.start)
            x += (self.spec.to[0] - x) * f
            y += (self.spec.to[1] - y) * f
        if self.spec.wander:
            s = (t - self.start) / 1000
            x += self.spec.wander * math.sin(s / 97.0)
            y += self.spec.wander * math.sin(s / 61.0 + 1.0)
        return x, y


def _check_track(city: DemoCity, spec: Track) -> None:
    """Every point the track can reach, jitter included, must keep the story's zone kinds
    and stay in one grid."""
    cam = city.cameras[spec.camera]
    anchors = [spec.at] + ([spec.to] if spec.to else [])
    w = spec.wander
    probes = [
        (ax + sx * (w + JITTER_M), ay + sy * (w + JITTER_M))
        for ax, ay in anchors
        for sx in (-1, 0, 1)
        for sy in (-1, 0, 1)
    ]
    grids: set[str | None] = set()
    for px, py in probes:
        lon, lat = city.offset(cam.lon, cam.lat, px, py)
        kinds = city.kinds_at(lon, lat)
        grids.add(city.grid_at(lon, lat))
        if None in grids:
            raise ValueError(f"story {spec.label} at {spec.camera}: {px, py} is outside every grid")
        if len(grids) > 1:
            # A jittered detection on a grid edge would split one object into two cases.
            raise ValueError(f"story {spec.label} at {spec.camera}: {px, py} strays across the "
                             f"edge of grids {sorted(g for g in grids if g)}")
        missing = set(spec.expect) - kinds
        unwanted = set(spec.avoid) & kinds
        if missing or unwanted:
            raise ValueError(
                f"story {spec.label} at {spec.camera} {spec.start}-{spec.end}: point {px, py} "
                f"lies in {sorted(kinds)}, needs {sorted(spec.expect)} and none of "
                f"{sorted(spec.avoid)}"
            )


_BACKGROUND_AVOID = {
    "parked_car": ("no_parking", "fire_lane"),
    "parked_ebike": ("no_parking",),
    "hanging_laundry": ("main_road", "back_street"),
}
"""Where each kind of scenery would be a case: background objects are placed elsewhere."""


def _background(city: DemoCity, rng: random.Random, count: int) -> list[Track]:
    """Ordinary scenery: legally parked cars and e-bikes, laundry. No rule should fire on them."""
    cams = sorted(city.cameras)
    out: list[Track] = []
    while len(out) < count:
        cam = rng.choice(cams)
        label = rng.choices(("parked_car", "parked_ebike", "hanging_laundry"), (9, 8, 3))[0]
        start = rng.randint(hm("06:00"), hm("22:00")) // 1000 * 1000
        dur = rng.randint(2, 40) * MINUTE
        at = (round(rng.uniform(-40, 40), 1), round(rng.uniform(-40, 40), 1))
        spec = Track(cam, label, _clock_text(start), _clock_text(start + dur), at,
                     avoid=_BACKGROUND_AVOID[label])
        try:
            _check_track(city, spec)
        except ValueError:
            continue
        out.append(spec)
    return out


def _camera_streams(city: DemoCity, clock: Clock, seed: int, scale: float) -> list[Stream]:
    """One stream per camera, from the stories and ``60 * scale`` background objects."""
    stories = list(STORIES) + _background(city, _rng(seed, "background"), round(60 * scale))
    by_camera: dict[str, list[Track]] = {}
    for spec in stories:
        _check_track(city, spec)
        by_camera.setdefault(spec.camera, []).append(spec)
    return [
        _camera_stream(city, clock, seed, scale, cam_id, by_camera.get(cam_id, []))
        for cam_id in sorted(city.cameras)
    ]


def _camera_stream(
    city: DemoCity, clock: Clock, seed: int, scale: float, cam_id: str, specs: list[Track]
) -> Stream:
    """A heartbeat each minute while nothing is in view, else a tracker update every 20-30 s
    (divided by ``scale``) carrying every tracked object the camera currently detects."""
    rng = _rng(seed, f"camera/{cam_id}")
    cam = city.cameras[cam_id]
    live: list[_LiveTrack] = []
    for n, spec in enumerate(sorted(specs, key=lambda s: (s.start, s.label))):
        w, h = rng.uniform(0.05, 0.2), rng.uniform(0.05, 0.25)
        bbox = (rng.uniform(0, 1 - w - 0.02), rng.uniform(0, 1 - h - 0.02), w, h)
        live.append(_LiveTrack(spec, clock.at(spec.start), clock.at(spec.end),
                               f"t-{100 + n * 7 + rng.randint(0, 6)}", bbox))
    starts = sorted(tr.start for tr in live)
    off_cam, off_from, off_to = OFFLINE_CAMERA
    offline = (clock.at(off_from), clock.at(off_to)) if cam_id == off_cam else None
    seq = 0
    t = clock.start + rng.randint(0, HEARTBEAT_MS - 1)
    while t < clock.end:
        if offline and offline[0] <= t < offline[1]:
            t = offline[1] + rng.randint(0, 999)
            continue
        seq += 1
        visible = [tr for tr in live if tr.start <= t < tr.end]
        detections = [
            _detection(city, cam, tr, t, rng) for tr in visible if rng.random() >= tr.spec.miss
        ]
        value: dict[str, Any] = {
            "event_id": f"{cam_id}-{clock.tag}-{seq:06d}",
            "camera_id": cam_id,
            "observed_at": clock.stamp(t),
        }
        if detections:
            value["snapshot_url"] = f"https://evidence.example/{cam_id}/{clock.tag}/{seq:06d}.jpg"
        value["detections"] = detections
        yield t, {"topic": CAMERA_TOPIC, "key": cam_id, "value": value}
        if visible:
            t += max(1_000, int(rng.uniform(20_000, 30_000) / scale))
        else:
            nxt = t + HEARTBEAT_MS + rng.randint(-300, 300)
            upcoming = next((s for s in starts if s > t), None)
            if upcoming is not None and upcoming < nxt:
                nxt = upcoming + rng.randint(200, 1_500)
            t = nxt


def _detection(
    city: DemoCity, cam: Device, tr: _LiveTrack, t: int, rng: random.Random
) -> dict[str, Any]:
    x, y = tr.position(t)
    x += max(-JITTER_M, min(JITTER_M, rng.gauss(0, 1.2)))
    y += max(-JITTER_M, min(JITTER_M, rng.gauss(0, 1.2)))
    lon, lat = city.offset(cam.lon, cam.lat, x, y)
    bx, by, bw, bh = tr.bbox
    dx, dy = rng.uniform(-0.01, 0.01), rng.uniform(-0.01, 0.01)
    return {
        "label": tr.spec.label,
        "track_id": tr.track_id,
        "confidence": round(rng.uniform(0.6, 0.98), 2),
        "bbox": [round(min(max(bx + dx, 0.0), 1 - bw), 3), round(min(max(by + dy, 0.0), 1 - bh), 3),
                 round(bw, 3), round(bh, 3)],
        "location": {"lat": lat, "lon": lon},
    }


# --------------------------------------------------------------------------- sensors

Intervals = tuple[tuple[str, str], ...]

# Streetlights: on at dusk, off at dawn, with these failures (the ``holds`` rule's stories):
# sl-0003 faults at 21:07 and stays faulty (alert about 22:07); sl-0008 goes off at 20:12 and
# is repaired at 23:34 (alert, then cleared); sl-0014 does not come on at dusk (off since
# morning: alert at 19:00, the first moment of the rule's schedule); sl-0017 faults in the
# small hours and is repaired before dawn.
LAMP_FAULTS: dict[str, tuple[str, Intervals]] = {
    "sl-0003": ("fault", (("21:07", "24:00"),)),
    "sl-0008": ("off", (("20:12", "23:34"),)),
    "sl-0014": ("off", (("12:00", "24:00"),)),
    "sl-0017": ("fault", (("02:13", "05:10"),)),
}
# Manholes: one tilts in the morning, one is found open in the afternoon.
MANHOLE_EVENTS: dict[str, tuple[str, Intervals]] = {
    "mh-0006": ("tilted", (("10:12", "11:05"),)),
    "mh-0010": ("open", (("16:41", "17:20"),)),
}
# Parking sensors inside no-parking zones: occupied episodes (15 min or more raises an alert).
NO_PARKING_OCCUPIED: dict[str, Intervals] = {
    "pk-0001": (("08:12", "08:50"), ("15:30", "15:41")),
    "pk-0002": (("12:30", "12:42"), ("13:05", "13:35")),
    "pk-0003": (("18:10", "18:45"),),
    "pk-0004": (("09:20", "09:27"),),
}
SILENT_SENSOR = ("ns-0006", "10:00", "11:00")
"""A sensor that sends nothing for an hour (the ``silent`` rule's story for sensors)."""

# Bin fill as piecewise-linear anchors (local time, level); a repeated time is an emptying.
BIN_CURVES: dict[str, tuple[tuple[str, float], ...]] = {
    # The market bin passes 90 % before 11:00 and waits for the 13:30 round: an alert.
    "bin-0001": (("00:00", 0.30), ("06:00", 0.34), ("06:00", 0.04), ("10:40", 0.92),
                 ("13:30", 0.97), ("13:30", 0.05), ("18:00", 0.55), ("24:00", 0.62)),
    # The night-market bin overflows in the evening and is not emptied before midnight.
    "bin-0002": (("00:00", 0.55), ("06:00", 0.58), ("06:00", 0.05), ("14:00", 0.25),
                 ("18:00", 0.35), ("21:20", 0.92), ("24:00", 0.99)),
    "bin-0003": (("00:00", 0.20), ("06:30", 0.25), ("06:30", 0.05), ("12:00", 0.60),
                 ("14:00", 0.70), ("14:00", 0.05), ("24:00", 0.55)),
    "bin-0004": (("00:00", 0.30), ("06:00", 0.32), ("06:00", 0.05), ("14:00", 0.60),
                 ("14:00", 0.05), ("24:00", 0.50)),
    "bin-0005": (("00:00", 0.20), ("07:00", 0.22), ("07:00", 0.03), ("24:00", 0.70)),
    "bin-0006": (("00:00", 0.40), ("06:00", 0.45), ("06:00", 0.05), ("14:00", 0.50),
                 ("14:00", 0.05), ("24:00", 0.60)),
    "bin-0007": (("00:00", 0.35), ("06:00", 0.40), ("06:00", 0.05), ("14:00", 0.55),
                 ("14:00", 0.05), ("24:00", 0.55)),
    "bin-0008": (("00:00", 0.15), ("06:00", 0.15), ("06:00", 0.02), ("17:30", 0.75),
                 ("24:00", 0.78)),
}
# Water level (cm): a shower from about 15:20; the 建设路 underpass floods past 15 cm.
WATER_CURVES: dict[str, tuple[tuple[str, float], ...]] = {
    "wl-0001": (("00:00", 0.8), ("15:20", 0.9), ("15:35", 8.0), ("15:55", 22.0),
                ("16:10", 19.0), ("16:35", 9.0), ("17:30", 2.5), ("24:00", 1.0)),
    "wl-0002": (("00:00", 0.5), ("15:25", 0.6), ("15:55", 12.5), ("16:30", 6.0),
                ("17:30", 1.2), ("24:00", 0.6)),
    "wl-0003": (("00:00", 0.3), ("15:30", 0.4), ("16:00", 6.0), ("16:40", 1.0), ("24:00", 0.3)),
    "wl-0004": (("00:00", 0.2), ("15:40", 0.2), ("16:00", 2.0), ("16:30", 0.3), ("24:00", 0.3)),
}
# Noise (dB): 东湖小区 next to the night market stays loud until 23:35 (alert after 22:00).
LOUD_NIGHT = ("ns-0001", "21:30", "23:35")


def _curve(anchors: tuple[tuple[str, float], ...], local_ms: int) -> float:
    """Piecewise-linear value at ``local_ms``; at a repeated time the later anchor wins."""
    pts = [(hm(t), v) for t, v in anchors]
    value = pts[0][1]
    for (t0, v0), (t1, v1) in itertools.pairwise(pts):
        if t0 <= local_ms < t1:
            return v0 + (v1 - v0) * (local_ms - t0) / (t1 - t0)
        if local_ms >= t1:
            value = v1
    return value


def _inside(intervals: Intervals, local_ms: int) -> bool:
    return any(hm(a) <= local_ms < hm(b) for a, b in intervals)


class _SensorWriter:
    """Numbers a sensor's readings and keeps them as ``city.events.sensor`` lines.

    Sensors are few and not scaled, so a day's readings are held per sensor in a list."""

    def __init__(self, clock: Clock, sensor: Device) -> None:
        self.clock, self.sensor, self.seq = clock, sensor, 0
        self.lines: list[tuple[int, dict[str, Any]]] = []
        silent_id, a, b = SILENT_SENSOR
        self.silent = (clock.at(a), clock.at(b)) if sensor.id == silent_id else None

    def emit(self, t: int, state: str | None = None, value: float | None = None) -> None:
        if t >= self.clock.end or (self.silent and self.silent[0] <= t < self.silent[1]):
            return
        self.seq += 1
        msg: dict[str, Any] = {
            "event_id": f"{self.sensor.id}-{self.clock.tag}-{self.seq:05d}",
            "sensor_id": self.sensor.id,
            "kind": self.sensor.kind,
            "observed_at": self.clock.stamp(t),
        }
        if state is not None:
            msg["state"] = state
        if value is not None:
            msg["value"] = value
        self.lines.append((t, {"topic": SENSOR_TOPIC, "key": self.sensor.id, "value": msg}))


def _periodic(clock: Clock, rng: random.Random, every_ms: int) -> Iterator[int]:
    """Report times on a fixed cadence with a random phase and a second or two of jitter."""
    t = clock.start + rng.randint(0, every_ms - 1)
    while t < clock.end:
        yield t + rng.randint(0, 2_000)
        t += every_ms


def _state_sensor(
    w: _SensorWriter, rng: random.Random, every_ms: int, state_at: Callable[[int], str],
    changes: list[int],
) -> None:
    """Periodic reports, plus one report right after each change (sensors push on change)."""
    clock = w.clock
    times = set(_periodic(clock, rng, every_ms))
    times.update(clock.start + c + rng.randint(500, 3_000) for c in changes if 0 < c < DAY)
    for t in sorted(times):
        w.emit(t, state=state_at(t - clock.start))


def _sensor_streams(city: DemoCity, clock: Clock, seed: int) -> list[Stream]:
    """One stream per sensor, each on its kind's cadence and with its story, if any."""
    return [_sensor_stream(city.sensors[sid], clock, seed) for sid in sorted(city.sensors)]


def _sensor_stream(sensor: Device, clock: Clock, seed: int) -> Stream:
    sid = sensor.id
    rng = _rng(seed, f"sensor/{sid}")
    w = _SensorWriter(clock, sensor)
    if sensor.kind == "streetlight":
        on_at = hm("18:20") + rng.randint(0, 8) * MINUTE
        off_at = hm("06:50") + rng.randint(0, 15) * MINUTE
        fault = LAMP_FAULTS.get(sid)

        def lamp(ms: int, on_at: int = on_at, off_at: int = off_at,
                 fault: tuple[str, Intervals] | None = fault) -> str:
            if fault and _inside(fault[1], ms):
                return fault[0]
            return "on" if ms < off_at or ms >= on_at else "off"

        changes = [on_at, off_at] + ([hm(x) for iv in fault[1] for x in iv] if fault else [])
        _state_sensor(w, rng, 10 * MINUTE, lamp, changes)
    elif sensor.kind == "manhole_cover":
        event = MANHOLE_EVENTS.get(sid)

        def cover(ms: int, event: tuple[str, Intervals] | None = event) -> str:
            return event[0] if event and _inside(event[1], ms) else "ok"

        changes = [hm(x) for iv in event[1] for x in iv] if event else []
        _state_sensor(w, rng, 5 * MINUTE, cover, changes)
    elif sensor.kind == "parking_occupancy":
        intervals = NO_PARKING_OCCUPIED.get(sid) or _random_occupancy(rng)

        def bay(ms: int, intervals: Intervals = intervals) -> str:
            return "occupied" if _inside(intervals, ms) else "free"

        changes = [hm(x) for iv in intervals for x in iv]
        _state_sensor(w, rng, 10 * MINUTE, bay, changes)
    elif sensor.kind == "noise":
        for t in _periodic(clock, rng, 5 * MINUTE):
            w.emit(t, value=_noise(sid, t - clock.start, rng))
    elif sensor.kind == "bin_fill":
        curve = BIN_CURVES[sid]
        for t in _periodic(clock, rng, 10 * MINUTE):
            level = _curve(curve, t - clock.start) + rng.gauss(0, 0.012)
            w.emit(t, value=round(min(1.0, max(0.0, level)), 3))
    elif sensor.kind == "water_level":
        curve = WATER_CURVES[sid]
        # Every 5 min, every minute while the level is above 5 cm (event-driven mode).
        t = clock.start + rng.randint(0, 5 * MINUTE - 1)
        while t < clock.end:
            level = max(0.0, _curve(curve, t - clock.start) + rng.gauss(0, 0.3))
            w.emit(t, value=round(level, 1))
            t += (MINUTE if level > 5 else 5 * MINUTE) + rng.randint(0, 2_000)
    return iter(w.lines)


def _random_occupancy(rng: random.Random) -> Intervals:
    """A legal bay's day: occupied 20-240 min, free 5-90 min, alternating."""
    out: list[tuple[str, str]] = []
    t = 0
    occupied = rng.random() < 0.5
    while t < DAY:
        dur = rng.randint(20, 240) * MINUTE if occupied else rng.randint(5, 90) * MINUTE
        if occupied:
            out.append((_clock_text(t), _clock_text(min(t + dur, DAY))))
        t += dur
        occupied = not occupied
    return tuple(out)


def _noise(sid: str, ms: int, rng: random.Random) -> float:
    """An equivalent level in dB for a 5-minute reading."""
    night = ms < hm("06:00") or ms >= hm("22:00")
    loud_id, loud_from, loud_to = LOUD_NIGHT
    if sid == loud_id and hm(loud_from) <= ms < hm(loud_to):
        level = rng.uniform(58, 66)
    elif sid == "ns-0005":  # the market: loud by day, quiet at night
        level = rng.gauss(43, 2) if night else rng.gauss(63, 3)
    elif night:  # quiet nights stay well under the rule's threshold
        level = min(rng.gauss(42, 2), 49.5)
    elif sid == loud_id and ms >= hm("18:00"):  # the night market's evening
        level = rng.gauss(57, 2)
    else:
        level = rng.gauss(52, 3)
    return round(max(level, 30.0), 1)


# --------------------------------------------------------------------------- reports


@dataclass(frozen=True)
class Report:
    """One report: where is a device id plus an offset in metres; ``grid_only`` reports (as
    12345 hotline tickets often are) carry the grid id and an address instead of a location."""

    time: str
    source: str
    category: str
    where: str
    offset: tuple[float, float]
    address: str
    description: str
    reporter: str | None = None
    grid_only: bool = False
    photos: int = 0


REPORTS: tuple[Report, ...] = (
    Report("07:50", "hotline", "street_vendor", "cam-0033", (-45, -45), "简阳客运站广场",
           "市民反映客运站门口有流动摊贩占道", grid_only=True),
    Report("08:05", "inspector", "street_vendor", "cam-0033", (-48, -46), "简阳客运站广场",
           "三轮车流动摊贩卖早餐", reporter="insp-012", photos=2),
    Report("08:20", "app", "street_vendor", "cam-0033", (-52, -50), "客运站广场东侧",
           "车站门口摆摊影响通行", reporter="app-u-88213", photos=1),
    Report("08:35", "inspector", "parked_car", "cam-0013", (20, 13), "人民路 人民医院门口",
           "医院门前禁停区车辆违停", reporter="insp-007", photos=1),
    Report("09:10", "hotline", "street_vendor", "cam-0033", (-45, -45), "客运站",
           "车站门口又有人摆摊", grid_only=True),
    Report("09:20", "inspector", "illegal_poster", "cam-0029", (20, -8), "南门巷 18 号",
           "墙面张贴小广告", reporter="insp-021", photos=2),
    Report("09:50", "inspector", "garbage_pile", "cam-0035", (20, 20), "城东农贸市场东侧",
           "农贸市场旁暴露垃圾", reporter="insp-007", photos=1),
    Report("10:05", "app", "parked_ebike", "cam-0009", (-20, -20), "东大街东段",
           "电动车停在禁停区", reporter="app-u-10342", photos=1),
    Report("10:30", "supervisor", "garbage_pile", "cam-0035", (22, 18), "城东农贸市场",
           "督查：农贸市场垃圾未及时清运", reporter="sup-002", photos=1),
    Report("10:40", "inspector", "outdoor_business", "cam-0026", (20, -6), "公园巷 46 号",
           "店外摆放货架经营", reporter="insp-033", photos=2),
    Report("11:15", "inspector", "debris", "cam-0034", (20, 2), "城南安置房工地北侧",
           "工地围挡外堆放渣土", reporter="insp-012", photos=1),
    Report("11:30", "hotline", "other", "cam-0030", (0, -4), "南门巷",
           "南门巷路面坑洼，雨天积水", grid_only=True),
    Report("12:10", "inspector", "other", "cam-0036", (10, 10), "雄州公园东门",
           "绿化带护栏破损", reporter="insp-021", photos=1),
    Report("13:20", "inspector", "parked_car", "cam-0012", (20, -17), "人民路禁停路段",
           "禁停路段车辆长时间停放", reporter="insp-021", photos=1),
    Report("13:40", "hotline", "other", "cam-0016", (0, -10), "人民路滨江段",
           "人民路施工噪音大", grid_only=True),
    Report("14:45", "inspector", "hanging_laundry", "cam-0037", (20, 20), "东湖小区 3 栋",
           "沿街晾晒衣物", reporter="insp-007", photos=1),
    Report("15:25", "inspector", "street_vendor", "cam-0011", (40, -17), "人民路 南门口",
           "人民路流动摊贩卖水果", reporter="insp-033", photos=2),
    Report("15:50", "app", "waterlogging", "wl-0001", (5, 3), "建设路下穿隧道",
           "下穿隧道积水很深，车辆无法通行", reporter="app-u-55120", photos=3),
    Report("16:05", "hotline", "waterlogging", "wl-0001", (0, 0), "建设路下穿",
           "建设路下穿积水", grid_only=True),
    Report("16:30", "inspector", "street_vendor", "cam-0004", (-40, -17), "东大街 简阳中学门口",
           "简阳中学门口卖炸串", reporter="insp-012", photos=2),
    Report("16:50", "inspector", "manhole_open", "mh-0010", (1, 1), "建设路 井盖",
           "建设路井盖缺失，已设置警示", reporter="insp-044", photos=2),
    Report("17:45", "inspector", "street_vendor", "cam-0002", (-20, -17), "东大街夜市西口",
           "夜市开市前占道摆摊", reporter="insp-044", photos=1),
    Report("19:20", "app", "outdoor_bbq", "cam-0031", (42, -9), "滨江后街",
           "后街有人露天烧烤，油烟很大", reporter="app-u-20871", photos=2),
    Report("21:08", "hotline", "outdoor_bbq", "cam-0031", (40, -10), "滨江后街 22 号附近",
           "滨江后街烧烤油烟扰民", grid_only=True),
    Report("21:20", "app", "outdoor_bbq", "cam-0031", (38, -11), "滨江后街",
           "烧烤摊占道，油烟熏到楼上", reporter="app-u-61007", photos=1),
    Report("21:35", "hotline", "noise_nuisance", "cam-0031", (40, -10), "滨江后街",
           "后街烧烤摊喧哗扰民", grid_only=True),
    Report("21:52", "app", "outdoor_bbq", "cam-0031", (41, -10), "滨江后街",
           "烧烤还在继续", reporter="app-u-20871", photos=1),
    Report("22:15", "hotline", "noise_nuisance", "ns-0001", (0, 0), "东湖小区",
           "夜市太吵，影响休息", grid_only=True),
    Report("22:40", "app", "noise_nuisance", "ns-0001", (10, 5), "东湖小区 5 栋",
           "十点多了夜市还很吵", reporter="app-u-70452", photos=0),
    Report("23:30", "hotline", "street_vendor", "cam-0003", (20, -20), "东大街夜市",
           "夜市收摊后仍有摊位占道", grid_only=True),
)


def _report_stream(city: DemoCity, clock: Clock, seed: int) -> Stream:
    rng = _rng(seed, "reports")
    out: list[tuple[int, dict[str, Any]]] = []
    ids = {"inspector": "rep", "supervisor": "sup", "hotline": "12345", "app": "app"}
    for n, r in enumerate(sorted(REPORTS, key=lambda r: r.time), 1):
        dev = city.device(r.where)
        lon, lat = city.offset(dev.lon, dev.lat, *r.offset)
        t = clock.at(r.time) + rng.randint(0, 59_999)
        msg: dict[str, Any] = {
            "event_id": f"{ids[r.source]}-{clock.tag}-{n:04d}",
            "source": r.source,
        }
        if r.reporter:
            msg["reporter_id"] = r.reporter
        msg["category"] = r.category
        msg["observed_at"] = clock.stamp(t)
        if r.grid_only:
            grid = city.grid_at(lon, lat)
            if grid is None:
                raise ValueError(f"report {r.time} {r.where}: outside every grid")
            msg["grid_id"] = grid
        else:
            msg["location"] = {"lat": lat, "lon": lon}
        msg["address"] = r.address
        msg["description"] = r.description
        if r.photos:
            msg["photos"] = [
                f"https://evidence.example/r/{clock.tag}/{n:04d}-{k}.jpg"
                for k in range(1, r.photos + 1)
            ]
        out.append((t, {"topic": REPORT_TOPIC, "key": None, "value": msg}))
    return iter(sorted(out, key=lambda e: e[0]))


# --------------------------------------------------------------------------- bad input

BAD_KINDS = (
    "bad_json",
    "bad_json_nan",
    "bad_encoding",
    "naive_timestamp",
    "string_confidence",
    "value_out_of_range",
    "unknown_source",
    "outside_map",
    "unregistered_camera",
    "unregistered_sensor",
    "bad_coordinate",
)
"""What the bad lines get wrong, one after another; the engine's reason codes are
bad_json, bad_encoding, naive_timestamp, invalid_field, outside_map, unregistered_device and
bad_coordinate."""


def _bad_line(
    kind: str, n: int, t: int, city: DemoCity, clock: Clock, rng: random.Random
) -> dict[str, Any]:
    """One bad line of ``kind`` at time ``t``: realistic except for the one thing wrong."""
    cam = rng.choice(sorted(city.cameras))
    cam_dev = city.cameras[cam]
    eid = f"x{n:05d}"
    if kind == "bad_json":
        text = orjson.dumps(
            {"event_id": f"{cam}-{clock.tag}-{eid}", "camera_id": cam,
             "observed_at": clock.stamp(t), "detections": []}
        ).decode()
        return {"topic": CAMERA_TOPIC, "key": cam, "raw": text[: rng.randint(10, len(text) - 5)]}
    if kind == "bad_json_nan":
        sid = rng.choice([s for s, d in sorted(city.sensors.items()) if d.kind == "noise"])
        text = (f'{{"event_id":"{sid}-{clock.tag}-{eid}","sensor_id":"{sid}","kind":"noise",'
                f'"observed_at":"{clock.stamp(t)}","value":NaN}}')
        return {"topic": SENSOR_TOPIC, "key": sid, "raw": text}
    if kind == "bad_encoding":
        raw = b'{"event_id":"rep-' + bytes([0xFF, 0xFE, 0xC3]) + b'","source":"app"}'
        return {"topic": REPORT_TOPIC, "key": None, "raw_b64": base64.b64encode(raw).decode()}
    if kind == "naive_timestamp":
        sid = rng.choice([s for s, d in sorted(city.sensors.items()) if d.kind == "manhole_cover"])
        return {"topic": SENSOR_TOPIC, "key": sid, "value": {
            "event_id": f"{sid}-{clock.tag}-{eid}", "sensor_id": sid, "kind": "manhole_cover",
            "observed_at": clock.stamp(t, naive=True), "state": "ok"}}
    if kind == "string_confidence":
        lon, lat = city.offset(cam_dev.lon, cam_dev.lat, 10, 5)
        return {"topic": CAMERA_TOPIC, "key": cam, "value": {
            "event_id": f"{cam}-{clock.tag}-{eid}", "camera_id": cam, "observed_at": clock.stamp(t),
            "detections": [{"label": "parked_car", "track_id": f"t-x{n}", "confidence": "0.9",
                            "location": {"lat": lat, "lon": lon}}]}}
    if kind == "value_out_of_range":
        sid = rng.choice([s for s, d in sorted(city.sensors.items()) if d.kind == "bin_fill"])
        return {"topic": SENSOR_TOPIC, "key": sid, "value": {
            "event_id": f"{sid}-{clock.tag}-{eid}", "sensor_id": sid, "kind": "bin_fill",
            "observed_at": clock.stamp(t), "value": round(rng.uniform(1.2, 3.0), 2)}}
    if kind == "unknown_source":
        lon, lat = city.offset(cam_dev.lon, cam_dev.lat, 5, -5)
        return {"topic": REPORT_TOPIC, "key": None, "value": {
            "event_id": f"rep-{clock.tag}-{eid}", "source": "wechat", "category": "garbage_pile",
            "observed_at": clock.stamp(t), "location": {"lat": lat, "lon": lon}}}
    if kind == "outside_map":
        return {"topic": CAMERA_TOPIC, "key": cam, "value": {
            "event_id": f"{cam}-{clock.tag}-{eid}", "camera_id": cam, "observed_at": clock.stamp(t),
            "detections": [{"label": "garbage_pile", "track_id": f"t-x{n}", "confidence": 0.8,
                            "location": {"lat": round(cam_dev.lat + 0.08, 6),
                                         "lon": round(cam_dev.lon + 0.09, 6)}}]}}
    if kind == "unregistered_camera":
        ghost = f"cam-9{rng.randint(0, 999):03d}"
        return {"topic": CAMERA_TOPIC, "key": ghost, "value": {
            "event_id": f"{ghost}-{clock.tag}-{eid}", "camera_id": ghost,
            "observed_at": clock.stamp(t), "detections": []}}
    if kind == "unregistered_sensor":
        ghost = f"sl-9{rng.randint(0, 999):03d}"
        return {"topic": SENSOR_TOPIC, "key": ghost, "value": {
            "event_id": f"{ghost}-{clock.tag}-{eid}", "sensor_id": ghost, "kind": "streetlight",
            "observed_at": clock.stamp(t), "state": "on"}}
    if kind == "bad_coordinate":
        return {"topic": REPORT_TOPIC, "key": None, "value": {
            "event_id": f"app-{clock.tag}-{eid}", "source": "app", "category": "garbage_pile",
            "observed_at": clock.stamp(t), "location": {"lat": 95.0, "lon": cam_dev.lon}}}
    raise ValueError(kind)


def _with_bad_lines(stream: Stream, city: DemoCity, clock: Clock, seed: int) -> Stream:
    """After each good line, with probability ``r / (1 - r)``, a bad line of the same time: bad
    lines are then about the share ``r`` of all input, without knowing the total in advance."""
    rng = _rng(seed, "bad")
    p = BAD_RATIO / (1 - BAD_RATIO)
    n = 0
    for t, line in stream:
        yield t, line
        if rng.random() < p:
            yield t, _bad_line(BAD_KINDS[n % len(BAD_KINDS)], n, t, city, clock, rng)
            n += 1


# --------------------------------------------------------------------------- assembly


class DemoDay:
    """The delivered day, produced lazily so that a large ``scale`` needs little memory.

    Iterating gives ``(arrival_ms, line)`` in arrival order (each line with its ``arrival``);
    afterwards ``last_input_ms`` is the newest input time, for the closing tick.
    """

    def __init__(self, city_path: Path, day: date, seed: int, scale: float = 1.0) -> None:
        if scale <= 0:
            raise ValueError(f"scale must be positive, got {scale}")
        self.city = DemoCity(Path(city_path))
        self.clock = Clock(day, self.city.tz)
        self.seed = seed
        self.scale = scale
        self.last_input_ms: int | None = None

    def __iter__(self) -> Iterator[tuple[int, dict[str, Any]]]:
        city, clock, seed = self.city, self.clock, self.seed
        streams = [
            *_camera_streams(city, clock, seed, self.scale),
            *_sensor_streams(city, clock, seed),
            _report_stream(city, clock, seed),
        ]
        # Ties in time keep the streams' order (cameras, sensors, reports): deterministic.
        merged = heapq.merge(*(_tagged(i, s) for i, s in enumerate(streams)))
        good = ((t, line) for t, _, _, line in merged)
        rng = _rng(seed, "delivery")
        pending: list[tuple[int, int, dict[str, Any]]] = []
        for n, (t, line) in enumerate(_with_bad_lines(good, city, clock, seed)):
            # Nothing later can arrive before t: release what has arrived by then.
            while pending and pending[0][0] <= t:
                yield _delivered(heapq.heappop(pending), clock)
            heapq.heappush(pending, (t + rng.randint(20, MAX_DELAY_MS), n, line))
            self.last_input_ms = t
        while pending:
            yield _delivered(heapq.heappop(pending), clock)


def _tagged(index: int, stream: Stream) -> Iterator[tuple[int, int, int, dict[str, Any]]]:
    """Make a stream's items comparable without ever comparing two dicts."""
    for n, (t, line) in enumerate(stream):
        yield t, index, n, line


def _delivered(item: tuple[int, int, dict[str, Any]], clock: Clock) -> tuple[int, dict[str, Any]]:
    arrival, _, line = item
    line["arrival"] = clock.stamp(arrival)
    return arrival, line


def generate_events(
    city_path: Path, day: date, seed: int, scale: float = 1.0
) -> list[tuple[int, dict[str, Any]]]:
    """``(arrival_ms, line)`` in arrival order, without the closing tick: for merging more
    lines in (a dispatch simulator's feedback) before writing the file."""
    return list(DemoDay(city_path, day, seed, scale))


def generate_day(city_path: Path, day: date, seed: int, scale: float = 1.0) -> Iterator[dict]:
    """The replay file's lines in order, ending with a tick at the last input's time + 5 s."""
    demo = DemoDay(city_path, day, seed, scale)
    yield from (line for _, line in demo)
    assert demo.last_input_ms is not None
    yield {"tick": demo.clock.stamp(demo.last_input_ms + TICK_AFTER_MS)}


def main(argv: list[str] | None = None) -> int:
    """Write a demo day as JSONL (compact JSON, UTF-8 not escaped, one line per message)."""
    parser = argparse.ArgumentParser(description="Write a demo day of input as a replay file.")
    parser.add_argument("--day", type=date.fromisoformat, default=date(2026, 11, 20))
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--scale", type=float, default=1.0,
                        help="multiply the cameras' tracker updates and background objects")
    parser.add_argument("--city", type=Path, default=GEOJSON_PATH)
    parser.add_argument("-o", "--output", type=Path, help="default: standard output")
    args = parser.parse_args(argv)
    sink = args.output.open("wb") if args.output else sys.stdout.buffer
    try:
        for line in generate_day(args.city, args.day, args.seed, args.scale):
            sink.write(orjson.dumps(line) + b"\n")
    finally:
        if args.output:
            sink.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
