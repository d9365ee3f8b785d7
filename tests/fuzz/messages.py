"""Building blocks of the fuzzer: messages for every input topic, and replay-file lines.

Three families of message, each from the demo city's real devices, grids and zones
(rules/demo/city.py) and the contract's vocabulary (models/vocabulary.py):

- **valid**: what a well-behaved producer sends, on a timeline that moves, repeats itself
  (duplicates), reorders a little and sometimes falls behind (late input);
- **boundary**: a valid message with one field at a limit of CONTRACTS.md, just inside (a
  128-character id, 256 detections, a 4,000-character description, a point on a grid's edge,
  the first and last instants of the input range) or just outside (129 characters, 257
  detections, ``2100-01-01T00:00:00Z``, ``NaN``, 1 MiB + 1 byte);
- **mutated**: a valid message with a field dropped, duplicated or retyped, bytes flipped,
  the text truncated, invalid UTF-8, lone surrogates, raw control characters, a wrong UTC
  offset, no offset, a date far in the past or future, the wrong topic, deep nesting...

Each comes with what it may become (:data:`Expect`): the outcomes the contract allows for it
(``accepted``, ``ignored``, ``late``, ``duplicate`` or a dead-letter reason code), or None
where the contract allows any of them (a flipped byte may leave the message valid).

Everything draws through :class:`Draw`: hypothesis's ``draw`` in the suite
(tests/fuzz/strategies.py), a seeded ``random.Random`` in bench/fuzz.py. Big values (256
detections, 1 MiB) are built from a few draws, so a hypothesis example stays small.
"""

from __future__ import annotations

import base64
import bisect
import json
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, Final, Generic, Protocol, TypeVar

import orjson

from models.timestamps import MAX_TIMESTAMP_MS, MIN_TIMESTAMP_MS, parse_timestamp_ms
from models.vocabulary import (
    CAMERA_LABELS,
    FEEDBACK_ACTIONS,
    MAX_MESSAGE_BYTES,
    REPORT_SOURCES,
    SENSOR_CATEGORIES,
    SENSOR_STATE_KINDS,
    SENSOR_VALUE_KINDS,
)
from rules.demo import city as demo

T = TypeVar("T")

CAMERA: Final = "city.events.camera"
SENSOR: Final = "city.events.sensor"
REPORT: Final = "city.events.report"
FEEDBACK: Final = "city.alerts.feedback"
TOPICS: Final = (CAMERA, SENSOR, REPORT, FEEDBACK)

Expect = frozenset[str] | None
"""The outcomes a line may have: ``accepted``, ``ignored``, ``late``, ``duplicate``, or a
dead-letter reason code; None: any outcome the contract has."""

TAKEN: Final = frozenset({"accepted", "ignored", "late", "duplicate"})
FEEDBACK_DEAD: Final = frozenset({"unknown_alert", "illegal_transition", "future_timestamp"})
"""What the engine may make of valid feedback: no such alert, not allowed from its status, or
(event clock) too far ahead of its partition's clock."""
MALFORMED: Final = frozenset({"replay_file_error"})
"""A line the replay file format itself forbids: ``Replay.line`` raises ``ReplayFileError``
and changes nothing."""
ANY_OR_MALFORMED: Final = frozenset(
    TAKEN | MALFORMED | {"bad_encoding", "bad_json", "too_large", "invalid_field",
                         "naive_timestamp", "bad_coordinate", "unregistered_device", "outside_map",
                         "future_timestamp", "bad_timestamp", "unknown_alert", "unknown_action",
                         "illegal_transition"})
"""A line at the edge of what the replay file can carry: a ``ReplayFileError`` (the file is
wrong) or any outcome of a message, but never an exception of another kind."""


# -- drawing --------------------------------------------------------------------------------


class Weighted(Generic[T]):
    """A weighted choice, built once: ``Weighted((3, "a"), (1, "b"))``."""

    __slots__ = ("cum", "total", "values")

    def __init__(self, *table: tuple[int, T]) -> None:
        self.values = [v for _, v in table]
        self.cum: list[int] = []
        total = 0
        for w, _ in table:
            total += w
            self.cum.append(total)
        self.total = total


class Draw(Protocol):
    """What the generators need from a source of randomness."""

    def int(self, lo: int, hi: int) -> int: ...           # lo..hi, both included
    def real(self, lo: float, hi: float) -> float: ...
    def choice(self, seq: Sequence[T]) -> T: ...
    def chance(self, p: float) -> bool: ...
    def pick(self, table: Weighted[T]) -> T: ...


class RandomDraw:
    """:class:`Draw` over a seeded ``random.Random``: fast, for a million lines."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self._random = self.rng.random

    def int(self, lo: int, hi: int) -> int:
        if hi - lo < 1 << 40:
            return lo + int(self._random() * (hi - lo + 1))
        return self.rng.randint(lo, hi)

    def real(self, lo: float, hi: float) -> float:
        return lo + (hi - lo) * self._random()

    def choice(self, seq: Sequence[T]) -> T:
        return seq[int(self._random() * len(seq))]

    def chance(self, p: float) -> bool:
        return self._random() < p

    def pick(self, table: Weighted[T]) -> T:
        return table.values[bisect.bisect_right(table.cum, self._random() * table.total)]


# -- the demo city ----------------------------------------------------------------------------


def _cumulative(sizes: Sequence[int]) -> list[int]:
    out = [0]
    for s in sizes:
        out.append(out[-1] + s)
    return out


_XS: Final = _cumulative(demo.COLUMN_WIDTHS)
_YS: Final = _cumulative(demo.ROW_HEIGHTS)
EDGE_LONS: Final = [demo.to_lonlat(x, 0)[0] for x in _XS]
"""Longitudes of the grid columns' edges, exactly as the map writes them."""
EDGE_LATS: Final = [demo.to_lonlat(0, y)[1] for y in _YS]
GRID_IDS: Final = [f"JY-{r:02d}{c:02d}" for r in range(1, len(_YS)) for c in range(1, len(_XS))]
CAMERAS: Final = [(d.id, *demo.to_lonlat(d.x, d.y)) for d in demo.CAMERAS]   # (id, lon, lat)
SENSORS: Final = [(d.id, d.kind, *demo.to_lonlat(d.x, d.y)) for d in demo.SENSORS]
ZONE_BOXES: Final = [(demo.to_lonlat(z.box[0], z.box[1]), demo.to_lonlat(z.box[2], z.box[3]))
                     for z in demo.ZONES]
LABELS: Final = sorted(CAMERA_LABELS)
UNKNOWN_LABELS: Final = ["street_vendorr", "", "person", "卖菜", "Street_Vendor", "\u202eredn",
                         "x" * 300, "label\u0000nul"]
STATE_KINDS: Final = sorted(SENSOR_STATE_KINDS)
VALUE_KINDS: Final = sorted(SENSOR_VALUE_KINDS)
VALUE_RANGES: Final = {"noise": (0.0, 130.0), "bin_fill": (0.0, 1.0), "water_level": (0.0, 80.0)}
CATEGORIES: Final = sorted(CAMERA_LABELS | SENSOR_CATEGORIES | {"other", "repeated_complaints"})
UNKNOWN_CATEGORIES: Final = ["pothole", "Other", "噪音扰民", "x" * 200]
ACTIONS: Final = sorted(FEEDBACK_ACTIONS)

# Strings that are valid ids but awkward: CJK, an emoji, a bidi override, escaped controls.
ODD_TEXT: Final = ["东大街 12 号", "🚲🛵", "\u202eevil", "tab\there", "nul\u0000", "back\\slash",
                   'quote"d', "\u2028line", "\ufeffbom", "é", "\x7f\x85", "a/b?c=d#e"]
# Characters of long strings (1-3 UTF-8 bytes; never surrogates).
LONG_CHARS: Final = "a0-_.东街號🚲é\u202e"

CITY_MINUTES: Final = 480                    # Asia/Shanghai, the demo city's offset
OFFSETS: Final = Weighted((60, CITY_MINUTES), (10, 0), (4, -0), (3, 345), (3, -210), (2, 840),
                          (2, -720), (1, 1439), (1, -1439))
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_TZ: dict[int, timezone] = {}

# A Monday in the demo season; every session starts within the week after it.
BASE_MS: Final = int(datetime(2026, 11, 23, tzinfo=timezone(timedelta(hours=8))).timestamp() * 1000)
MINUTE: Final = 60_000
HOUR: Final = 3_600_000
DAY: Final = 86_400_000
FUTURE_LIMIT_MS: Final = 5 * MINUTE           # CONTRACTS.md, Time: future_timestamp in wall mode


def rfc3339(ms: int, offset: int = CITY_MINUTES, digits: int = 3, zulu: str = "",
            t: str = "T") -> str:
    """``ms`` as RFC 3339 in a UTC offset of ``offset`` minutes (or ``zulu``: ``Z``/``z``),
    with ``digits`` fraction digits (0-9; past 3 they are noise the parser truncates)."""
    tz = _TZ.get(offset)
    if tz is None:
        tz = _TZ[offset] = timezone(timedelta(minutes=offset))
    local = (_EPOCH + timedelta(milliseconds=ms)).astimezone(UTC if zulu else tz)
    text = (f"{local.year:04d}-{local.month:02d}-{local.day:02d}{t}"
            f"{local.hour:02d}:{local.minute:02d}:{local.second:02d}")
    if digits:
        frac = f"{local.microsecond // 1000:03d}" + "123456"
        text += "." + frac[:digits]
    if zulu:
        return text + zulu
    sign = "-" if offset < 0 else "+"
    return text + f"{sign}{abs(offset) // 60:02d}:{abs(offset) % 60:02d}"


# Times at and around the edges of the contract's range [1970-01-01T00:00Z, 2100-01-01T00:00Z):
# (text, what the message becomes: None if it is a valid time, else the reason code).
TIME_EDGES: Final[list[tuple[str, str | None]]] = [
    ("1970-01-01T00:00:00.000Z", None),
    ("1970-01-01T08:00:00+08:00", None),
    ("1970-01-01T00:00:00.000+00:00", None),
    ("1969-12-31T23:59:59.999Z", "bad_timestamp"),
    ("1970-01-01T07:59:59.999+08:00", "bad_timestamp"),
    ("0001-01-01T00:00:00.000+23:59", "bad_timestamp"),
    ("0001-01-01T00:00:00Z", "bad_timestamp"),
    ("1900-01-01T00:00:00.000+08:00", "bad_timestamp"),
    ("2099-12-31T23:59:59.999Z", None),
    ("2100-01-01T07:59:59.999+08:00", None),
    ("2099-12-31T23:59:59.999999999Z", None),
    ("2100-01-01T00:00:00.000Z", "future_timestamp"),
    ("2100-01-01T08:00:00.000+08:00", "future_timestamp"),
    ("2099-12-31T20:00:00.000-04:00", "future_timestamp"),
    ("9999-12-31T20:00:00.000+00:00", "future_timestamp"),
    ("9999-12-31T23:59:59.999-23:59", "future_timestamp"),
    ("9999-12-31T23:59:59.999Z", "future_timestamp"),
    # Asia/Shanghai kept summer time in 1986-1991: local midnights and schedules around it.
    ("1986-05-04T02:30:00.000+08:00", None),
    ("1986-09-14T01:30:00.000+09:00", None),
    ("1991-09-15T01:59:59.999+08:00", None),
    ("2000-02-29T12:00:00Z", None),
    ("2038-01-19T03:14:08.000Z", None),
    ("2026-02-29T08:00:00+08:00", "invalid_field"),
    ("2026-11-22T24:00:00+08:00", "invalid_field"),
    ("2026-11-22T23:59:60+08:00", "invalid_field"),
    ("2026-11-22T08:15:03+24:00", "invalid_field"),
    ("2026-11-22T08:15:03+08:60", "invalid_field"),
    ("2026-11-22T08:15:03+0800", "invalid_field"),
    ("2026-11-22T08:15:03+8:00", "invalid_field"),
    ("2026-11-22 08:15:03+08:00", "invalid_field"),
    ("2026-11-22T08:15+08:00", "invalid_field"),
    ("2026-11-22T08:15:03.+08:00", "invalid_field"),
    ("20261122T081503+08:00", "invalid_field"),
    ("２０２６-11-22T08:15:03+08:00", "invalid_field"),
    ("2026-W47-7T08:15:03+08:00", "invalid_field"),
    ("", "invalid_field"),
    ("2026-11-22T08:15:03.120", "naive_timestamp"),
    ("2026-11-22T08:15:03", "naive_timestamp"),
]
_FAR_AHEAD: Final = [e for e in TIME_EDGES if e[1] is None and e[0] >= "2030"]
_NOT_FAR_AHEAD: Final = [e for e in TIME_EDGES if e not in _FAR_AHEAD]


def time_edge(gen: Gen) -> tuple[str, str | None]:
    """One of :data:`TIME_EDGES`. In ``event`` mode a valid time decades ahead is rare: it
    moves its partition's clock there, and every later input of that partition is late."""
    if gen.tl.clock == "event" and not gen.d.chance(0.02):
        return gen.d.choice(_NOT_FAR_AHEAD)
    return gen.d.choice(TIME_EDGES)


# -- messages -----------------------------------------------------------------------------------


@dataclass(slots=True)
class Msg:
    """One message before it is written: its topic, key, JSON object and input time.

    ``required`` are the paths whose removal makes it ``invalid_field``; ``lax`` those that
    take any JSON type without error (a sensor's ``state`` / ``value`` for a kind that does not
    use them)."""

    topic: str
    key: str | None
    obj: dict[str, Any]
    time: int
    required: set[tuple[Any, ...]] = field(default_factory=set)
    lax: set[tuple[Any, ...]] = field(default_factory=set)
    time_field: str = "observed_at"


@dataclass(slots=True)
class Line:
    """One replay-file line as bytes, what kind of line it is, and what it may become."""

    text: bytes
    family: str        # "valid", "boundary", "mutated", "tick", "malformed"
    topic: str | None
    expect: Expect
    what: str = ""     # which boundary or mutation, for the tables and reproducers


@dataclass(slots=True)
class Timeline:
    """A session's state: where its event time is, what it sent, the alerts it has seen.

    ``now`` moves forward by small steps, input lags it by up to a few seconds (applied in
    order), sometimes by up to the allowed lateness (applied at once) or more (late). A few
    cameras, tracks, labels and sensors are in focus, so episodes run long enough to open
    alerts; ``alert_ids`` (filled by the driver from the replay's output) gives feedback
    something to act on."""

    clock: str = "event"
    now: int = BASE_MS
    arrival: int = BASE_MS
    seq: int = 0
    recent: list[tuple[str, str | None, dict[str, Any], int]] = field(default_factory=list)
    alert_ids: list[str] = field(default_factory=list)
    focus_cams: list[tuple[str, float, float]] = field(default_factory=list)
    focus_labels: list[str] = field(default_factory=list)
    focus_sensors: list[tuple[str, str, float, float]] = field(default_factory=list)


RECENT: Final = 64


class Gen:
    """Generates messages and replay-file lines for one session (:class:`Timeline`)."""

    def __init__(self, draw: Draw, timeline: Timeline | None = None, clock: str = "event",
                 avoid: frozenset[str] = frozenset()) -> None:
        self.d = draw
        self.avoid = avoid   # tags of open bugs (tests/fuzz/known.py) not to generate
        if timeline is None:
            timeline = Timeline(clock=clock)
            timeline.now = timeline.arrival = BASE_MS + draw.int(0, 7 * DAY)
            timeline.focus_cams = [draw.choice(CAMERAS) for _ in range(3)]
            timeline.focus_labels = [draw.choice(LABELS) for _ in range(3)]
            timeline.focus_sensors = [draw.choice(SENSORS) for _ in range(3)]
        self.tl = timeline

    # -- time -------------------------------------------------------------------------------

    _STEP: Final = Weighted((50, 0), (30, 1), (10, 2), (6, 3), (3, 4), (1, 5))

    def _advance(self) -> None:
        d, tl = self.d, self.tl
        k = d.pick(self._STEP)
        if k == 0:
            return
        if k == 1:
            tl.now += d.int(0, 3_000)
        elif k == 2:
            tl.now += d.int(3_000, 30_000)
        elif k == 3:
            tl.now += d.int(30_000, 3 * MINUTE)
        elif k == 4:
            tl.now += d.int(3 * MINUTE, 2 * HOUR)
        else:
            tl.now += d.int(2 * HOUR, 2 * DAY)

    _LAG: Final = Weighted((80, 0), (12, 1), (5, 2), (3, 3))

    def event_time(self) -> int:
        """An input time: mostly just behind ``now`` (within the reorder window), sometimes
        further (within the allowed lateness: applied at once) or much further (late)."""
        d, tl = self.d, self.tl
        self._advance()
        k = d.pick(self._LAG)
        if k == 0:
            return tl.now - d.int(0, 4_000)
        if k == 1:
            return tl.now - d.int(4_000, 59_000)
        if k == 2:
            return tl.now - d.int(61_000, 3 * HOUR)
        return tl.now + d.int(0, 60_000)       # ahead of the others: it moves the clock

    def stamp(self, ms: int) -> str:
        """``ms`` written as a producer might: mostly the city's offset with milliseconds."""
        d = self.d
        if d.chance(0.8):
            return rfc3339(ms)
        z = d.choice(("", "", "", "Z", "z"))
        return rfc3339(ms, d.pick(OFFSETS), d.choice((0, 1, 2, 3, 3, 3, 6, 9)), z,
                       d.choice(("T", "T", "T", "t")))

    def next_id(self, prefix: str) -> str:
        self.tl.seq += 1
        if self.d.chance(0.03):
            return prefix + "-" + self.d.choice(ODD_TEXT) + f"-{self.tl.seq}"
        return f"{prefix}-{self.tl.seq:09d}"

    # -- places -----------------------------------------------------------------------------

    _PLACE: Final = Weighted((50, 0), (20, 1), (8, 2), (6, 3), (5, 4), (6, 5), (5, 6))

    def point_in_map(self, near: tuple[float, float] | None = None) -> tuple[float, float]:
        """A ``(lon, lat)`` inside the map: near ``near`` (metres of jitter), anywhere, on a
        grid's edge or corner, on the map's outer edge, on a zone's edge."""
        d = self.d
        k = d.pick(self._PLACE)
        if k == 0 and near is not None:
            return near
        if k <= 1 and near is not None:
            return (round(near[0] + d.real(-15, 15) * 1.04e-5, 6),
                    round(near[1] + d.real(-15, 15) * 9.0e-6, 6))
        if k == 2:   # a grid column's edge (shared by two grids, or the map's own)
            return d.choice(EDGE_LONS), round(d.real(EDGE_LATS[0], EDGE_LATS[-1]), 6)
        if k == 3:   # a grid row's edge
            return round(d.real(EDGE_LONS[0], EDGE_LONS[-1]), 6), d.choice(EDGE_LATS)
        if k == 4:   # a corner, shared by up to four grids
            return d.choice(EDGE_LONS), d.choice(EDGE_LATS)
        if k == 5:   # a zone's edge or corner
            (x0, y0), (x1, y1) = d.choice(ZONE_BOXES)
            return d.choice((x0, x1)), (d.choice((y0, y1)) if d.chance(0.5) else round(d.real(y0, y1), 6))
        return (round(d.real(EDGE_LONS[0], EDGE_LONS[-1]), 6),
                round(d.real(EDGE_LATS[0], EDGE_LATS[-1]), 6))

    def location(self, near: tuple[float, float] | None = None) -> dict[str, float]:
        lon, lat = self.point_in_map(near)
        return {"lat": lat, "lon": lon} if self.d.chance(0.9) else {"lon": lon, "lat": lat}

    # -- the four topics --------------------------------------------------------------------

    def camera(self) -> Msg:
        d, tl = self.d, self.tl
        registered = d.chance(0.93)
        if registered:
            cam_id, lon, lat = d.choice(tl.focus_cams) if d.chance(0.6) else d.choice(CAMERAS)
            home: tuple[float, float] | None = (lon, lat)
        else:
            cam_id, home = f"cam-x{d.int(1, 20):03d}", None
        t = self.event_time()
        obj: dict[str, Any] = {"event_id": self.next_id(cam_id), "camera_id": cam_id,
                               "observed_at": self.stamp(t)}
        if d.chance(0.5):
            obj["snapshot_url"] = f"https://evidence.example/{cam_id}/{tl.seq}.jpg"
        n = d.pick(self._DETECTIONS) if registered else d.int(1, 3)
        obj["detections"] = [self.detection(cam_id, home) for _ in range(n)]
        req = {("event_id",), ("camera_id",), ("observed_at",), ("detections",)}
        for i in range(n):
            req |= {("detections", i, "label"), ("detections", i, "confidence")}
            det = obj["detections"][i]
            if "location" in det:
                req |= {("detections", i, "location", "lat"), ("detections", i, "location", "lon")}
            if "bbox" in det:
                req |= {("detections", i, "bbox", j) for j in range(4)}
        return Msg(CAMERA, cam_id if d.chance(0.9) else None, obj, t, req)

    _DETECTIONS: Final = Weighted((15, 0), (55, 1), (20, 2), (8, 3), (2, 8))
    _CONFIDENCE: Final = Weighted((85, 0), (5, 1), (5, 2), (5, 3))

    def detection(self, cam_id: str, home: tuple[float, float] | None) -> dict[str, Any]:
        d, tl = self.d, self.tl
        if d.chance(0.92):
            label = d.choice(tl.focus_labels) if d.chance(0.6) else d.choice(LABELS)
        else:
            label = d.choice(UNKNOWN_LABELS)
        det: dict[str, Any] = {"label": label}
        if d.chance(0.8):   # a few tracks per camera, so episodes run; now and then a new one
            det["track_id"] = f"t-{d.int(1, 6)}" if d.chance(0.9) else f"t-{d.int(7, 100_000)}"
        k = d.pick(self._CONFIDENCE)
        det["confidence"] = (round(d.real(0.3, 1.0), 3), 0.0, 1.0, 1)[k] if k else round(d.real(0.3, 1.0), 3)
        if d.chance(0.4):
            det["bbox"] = self.bbox()
        if home is None or d.chance(0.3):
            det["location"] = self.location(home)
        return det

    def bbox(self) -> list[float]:
        d = self.d
        if d.chance(0.1):
            return d.choice(([0, 0, 0, 0], [1, 1, 1, 1], [0.0, 0.0, 1.0, 1.0], [0, 1, 0, 1]))
        return [round(d.real(0, 1), 3) for _ in range(4)]

    def sensor(self) -> Msg:
        d, tl = self.d, self.tl
        if d.chance(0.92):
            sid, kind, lon, lat = d.choice(tl.focus_sensors) if d.chance(0.6) else d.choice(SENSORS)
            home: tuple[float, float] | None = (lon, lat)
            if d.chance(0.03):
                kind = d.choice(STATE_KINDS + VALUE_KINDS)   # a kind its register does not say
        else:
            sid, home = f"sx-{d.int(1, 20):04d}", None
            kind = d.choice(STATE_KINDS + VALUE_KINDS)
        if d.chance(0.03):
            kind = d.choice(("humidity", "Streetlight", "", "气温"))   # unknown: ignored
        t = self.event_time()
        obj: dict[str, Any] = {"event_id": self.next_id(sid), "sensor_id": sid, "kind": kind,
                               "observed_at": self.stamp(t)}
        req = {("event_id",), ("sensor_id",), ("kind",), ("observed_at",)}
        lax: set[tuple[Any, ...]] = set()
        if kind in SENSOR_STATE_KINDS:
            states = sorted(SENSOR_STATE_KINDS[kind])
            obj["state"] = d.choice(states) if d.chance(0.95) else d.choice(("broken", "", "OFF"))
            req.add(("state",))
            lax.add(("value",))
            if d.chance(0.1):
                obj["value"] = d.choice((1, "x", None, True))
        elif kind in SENSOR_VALUE_KINDS:
            lo, hi = VALUE_RANGES[kind]
            obj["value"] = (round(d.real(lo, hi), 2) if d.chance(0.9)
                            else d.choice((lo, hi, int(lo), 0, 0.0)))
            req.add(("value",))
            lax.add(("state",))
        else:
            lax |= {("state",), ("value",)}
            if d.chance(0.5):
                obj["state"] = "on"
            if d.chance(0.5):
                obj["value"] = 21.5
        if home is None or d.chance(0.2):
            obj["location"] = self.location(home)
            req |= {("location", "lat"), ("location", "lon")}
        return Msg(SENSOR, sid if d.chance(0.9) else None, obj, t, req, lax)

    def report(self) -> Msg:
        d = self.d
        t = self.event_time()
        obj: dict[str, Any] = {"event_id": self.next_id("rep"),
                               "source": d.choice(sorted(REPORT_SOURCES))}
        if d.chance(0.6):
            obj["reporter_id"] = f"insp-{d.int(1, 50):03d}"
        obj["category"] = d.choice(CATEGORIES) if d.chance(0.93) else d.choice(UNKNOWN_CATEGORIES)
        obj["observed_at"] = self.stamp(t)
        req = {("event_id",), ("source",), ("category",), ("observed_at",)}
        where = d.int(0, 9)
        if where <= 6:
            near = d.choice(self.tl.focus_cams)[1:] if d.chance(0.5) else None
            obj["location"] = self.location(near)
            req |= {("location", "lat"), ("location", "lon")}
        if where >= 6:
            obj["grid_id"] = d.choice(GRID_IDS)
        if where < 6:
            req.add(("location",))
        elif where > 6:
            req.add(("grid_id",))
        if d.chance(0.4):
            obj["address"] = d.choice(("东大街 12 号", "人民路与建设路交叉口", ""))
        if d.chance(0.4):
            obj["description"] = d.choice(("三轮车占道卖水果", "垃圾堆放", "", "a\nb"))
        if d.chance(0.3):
            obj["photos"] = [f"https://evidence.example/r/{i}.jpg" for i in range(d.int(0, 3))]
        return Msg(REPORT, None, obj, t, req)

    def feedback(self) -> Msg:
        d, tl = self.d, self.tl
        if tl.alert_ids and d.chance(0.85):
            alert_id = d.choice(tl.alert_ids)
        else:
            alert_id = f"a-{d.choice(GRID_IDS)}-{d.int(0, (1 << 80) - 1):020x}"
        action = d.choice(ACTIONS)
        self._advance()
        t = tl.now - d.int(0, 3_000)
        obj: dict[str, Any] = {"event_id": self.next_id("fb"), "alert_id": alert_id,
                               "action": action, "actor": f"duty-officer-{d.int(1, 9)}",
                               "at": self.stamp(t)}
        req = {("event_id",), ("alert_id",), ("action",), ("actor",), ("at",)}
        if d.chance(0.3):
            obj["note"] = d.choice(("已派单", "", "误报"))
        if d.chance(0.3) or action == "dispatch":
            obj["assignee"] = f"team-{d.int(1, 5)}"
        if d.chance(0.1):
            obj["photos"] = ["https://evidence.example/fb/1.jpg"]
        if action == "defer":
            obj["until"] = rfc3339(t + d.choice((1_000, MINUTE, 30 * MINUTE, 2 * HOUR, 3 * DAY)))
            req.add(("until",))
        return Msg(FEEDBACK, alert_id if d.chance(0.9) else None, obj, t, req, time_field="at")

    _TOPIC: Final = Weighted((45, CAMERA), (30, SENSOR), (15, REPORT), (10, FEEDBACK))

    def message(self, topic: str | None = None) -> Msg:
        topic = topic or self.d.pick(self._TOPIC)
        msg = {CAMERA: self.camera, SENSOR: self.sensor, REPORT: self.report,
               FEEDBACK: self.feedback}[topic]()
        if msg.topic != FEEDBACK or not msg.obj["event_id"].startswith("fb-x"):
            self.tl.recent.append((msg.topic, msg.key, msg.obj, msg.time))
            if len(self.tl.recent) > RECENT:
                del self.tl.recent[0]
        return msg

    def duplicate(self) -> Msg | None:
        """A message sent again: the same bytes (a redelivery), or the same ``event_id`` with
        other content."""
        if not self.tl.recent:
            return None
        topic, key, obj, t = self.d.choice(self.tl.recent)
        obj = dict(obj)
        if self.d.chance(0.3) and "observed_at" in obj:
            t = self.event_time()
            obj["observed_at"] = self.stamp(t)
        return Msg(topic, key, obj, t)

    # -- boundary edits: one field at a limit of the contract -----------------------------------

    def boundary(self, msg: Msg) -> tuple[Payload, Expect, str]:
        """``msg`` with one field at (or just past) a limit; the payload, what it may become,
        and the edit's name. ``None`` as the expectation of a valid edit stands for 'as valid'
        (the caller adds what its time and arrival allow)."""
        edit = self.d.choice(_BOUNDARY_EDITS)
        return edit(self, msg, _deep_copy(msg.obj))

    # -- mutations --------------------------------------------------------------------------

    def mutate(self, msg: Msg) -> tuple[Payload, Expect, str]:
        edit = self.d.choice(_MUTATIONS)
        return edit(self, msg, _deep_copy(msg.obj))

    # -- lines ------------------------------------------------------------------------------

    _FAMILY: Final = Weighted((700, "valid"), (60, "duplicate"), (50, "tick"), (80, "boundary"),
                              (100, "mutated"), (8, "malformed"), (2, "line_edge"))

    def line(self, family: str | None = None, topic: str | None = None) -> Line:
        """One replay-file line: of ``family`` (``valid``, ``duplicate``, ``boundary``,
        ``mutated``, ``tick``, ``malformed``) and ``topic`` if given, else of any."""
        family = family or self.d.pick(self._FAMILY)
        if family == "tick":
            return self.tick()
        if family == "malformed":
            return self.malformed()
        if family == "line_edge":
            return self.line_edge(topic)
        if family == "duplicate":
            msg = self.duplicate()
            if msg is None or (topic is not None and msg.topic != topic):
                family = "valid"
            else:
                return self.write(msg, Payload.of(msg.obj), _ok(msg), "valid", "duplicate")
        msg = self.message(topic)
        if family == "valid":
            return self.write(msg, Payload.of(msg.obj), _ok(msg), family, msg.topic)
        payload, expect, what = (self.boundary(msg) if family == "boundary" else self.mutate(msg))
        return self.write(msg, payload, expect, family, what)

    def tick(self) -> Line:
        d, tl = self.d, self.tl
        if tl.clock == "wall":
            if d.chance(0.005):   # the worker's wall clock jumps (a backlog, a paused worker)
                jump = d.int(10 * MINUTE, DAY)
                tl.now += jump
                tl.arrival += jump
            t = tl.arrival + d.int(-2_000, 1_000)
        else:
            k = d.int(0, 19)
            if k == 0:          # a jump: timers fire, and the session's time moves on with it
                tl.now += d.int(10 * MINUTE, 2 * DAY)
                t = tl.now
            elif k == 1:        # behind the clock: changes nothing
                t = tl.now - d.int(0, HOUR)
            else:
                t = tl.now + d.int(0, 10_000)
        return Line(orjson.dumps({"tick": self.stamp(t)}), "tick", None, None, "tick")

    def arrival_of(self, msg: Msg) -> int:
        """When ``msg`` reached Kafka: a little after its time, never before the session's
        arrivals so far by more than a few seconds (another partition lagging)."""
        d, tl = self.d, self.tl
        a = max(msg.time, tl.arrival - d.int(0, 3_000)) + d.int(0, 1_500)
        tl.arrival = max(tl.arrival, a)
        return a

    _ARRIVAL_EDGE: Final = ("1969-12-31T23:59:59.999Z", "2100-01-01T00:00:00.000Z",
                            "9999-12-31T23:59:59.999+00:00", "0001-01-01T00:00:00.000+23:59")

    def write(self, msg: Msg, payload: Payload, expect: Expect, family: str, what: str) -> Line:
        """The replay-file line for ``payload`` sent on ``msg.topic``, with a key and (always in
        wall mode, half the time in event mode) an arrival; ``expect`` adjusted for them."""
        d, tl = self.d, self.tl
        topic = payload.topic or msg.topic
        line: dict[str, Any] = {"topic": topic}
        k = d.int(0, 99)
        if k < 85:
            line["key"] = msg.key
        elif k < 92:
            pass
        elif k < 98:
            line["key"] = None
        else:
            line["key"] = d.choice(("\ud800", "cam\u202e1000", "\x00", "k" * 1000, "键"))
        payload.put(line, d)
        arrival: int | None = None
        if tl.clock == "wall" or d.chance(0.5):
            if d.chance(0.005):
                line["arrival"] = d.choice(self._ARRIVAL_EDGE)
                expect = _after_bad_arrival(expect)
            elif d.chance(0.001):   # the first or (rarely: it moves a wall clock to 2099, and
                # all later input of its partitions is late) the last instant an arrival may be
                arrival = MAX_TIMESTAMP_MS - 1 if d.chance(0.1) else MIN_TIMESTAMP_MS
                line["arrival"] = self.stamp(arrival)
            else:
                arrival = self.arrival_of(msg)
                line["arrival"] = self.stamp(arrival)
        if (expect is not None and expect & (TAKEN | INGEST_CODES) and arrival is not None
                and tl.clock == "wall"):
            # Ingest refuses input from the future before it places it or asks the engine.
            t = payload.time if payload.time is not None else msg.time
            if t > arrival + FUTURE_LIMIT_MS + 1_000:
                expect = (expect - TAKEN - INGEST_CODES) | {"future_timestamp"}
            elif t > arrival + FUTURE_LIMIT_MS - 1_000:
                expect = expect | {"future_timestamp"}
        if d.chance(0.01):
            line["comment"] = "unknown line members are ignored"
        return Line(_dumps_line(line), family, topic, expect, what)

    def line_edge(self, topic: str | None = None) -> Line:
        """A line at the edge of what the replay file carries: a ``value`` nested deeper than
        a JSON library goes (orjson reads 1,024 levels and writes 255), one that is not an
        object, integers past 64 bits, empty payloads. A ``ReplayFileError`` or any outcome of
        a message is right; any other exception is a crash."""
        d = self.d
        topic = topic or d.choice(TOPICS)
        k = d.int(0, 5)
        head = b'{"topic":"' + topic.encode() + b'","key":null,'
        if k <= 1:
            depths = (200, 254, 255, 256, 900, 1024, 1025, 3000)
            if "deep-value" not in self.avoid:
                depths += (990, 1000, 1010, 1023)
            depth = d.choice(depths)
            text = head + b'"value":' + _deep_value(depth) + b"}"
            what = f"value nested {depth} deep"
        elif k == 2:
            msg = self.message(topic)
            obj = _deep_copy(msg.obj)
            numbers = [p for p in _paths(obj) if type(_get(obj, p)) in (int, float)]
            big = d.choice(("18446744073709551616", "1" + "0" * 30, "-9223372036854775809",
                            "1" * 400))
            marker = 12345.678901
            _set(obj, d.choice(numbers) if numbers else ("zz",), marker)
            text = head + b'"value":' + _compact(obj).replace(repr(marker), big, 1).encode() + b"}"
            what = f"value with the number {big[:24]}"
        elif k == 3:
            text = head + d.choice((b'"raw":""', b'"raw_b64":""', b'"value":null', b'"value":""',
                                    b'"value":[]', b'"value":{}', rb'"raw":"\u0000"')) + b"}"
            what = "empty payload"
        elif k == 4:
            text = head + b'"raw_b64":"' + d.choice((b"e30", b"e30==\n", b" e30=", b"e3=0")) + b'"}'
            what = "raw_b64 not canonical"
        else:
            text = head + b'"value":"' + b"x" * d.choice((10, 100_000, MAX_MESSAGE_BYTES)) + b'"}'
            what = "value a long string"
        if self.tl.clock == "wall":
            text = text[:-1] + b',"arrival":"' + rfc3339(self.arrival_of(
                Msg(topic, None, {}, self.tl.now))).encode() + b'"}'
        return Line(text, "line_edge", topic, ANY_OR_MALFORMED, what)

    def malformed(self) -> Line:
        """A line the replay file format forbids: the replay raises ReplayFileError."""
        d = self.d
        k = d.int(0, 15)
        good = {"event_id": "m-1", "camera_id": "cam-0001", "observed_at": rfc3339(self.tl.now),
                "detections": []}
        lines: list[Any] = [
            b"not json {", b"[1, 2]", b'"a string"', b"{\"tick\": \"yesterday\"}",
            {"tick": 1763770503120}, {"tick": "2100-01-01T00:00:00.000Z"},
            {"tick": "1969-12-31T23:59:59.999Z"}, {"tick": "2026-11-22T08:15:03"},
            {"topic": "city.events.bogus", "raw": "{}"}, {"key": "cam-0001", "raw": "{}"},
            {"topic": CAMERA, "raw": 5}, {"topic": CAMERA, "raw_b64": "!!not base64!!"},
            {"topic": CAMERA, "key": "cam-0001"}, {"topic": CAMERA, "key": 7, "value": good},
            {"topic": CAMERA, "value": good, "arrival": "soon"},
            b'{"topic": "city.events.camera", "value": NaN}',
        ]
        if self.tl.clock == "wall" and d.chance(0.3):
            return Line(orjson.dumps({"topic": CAMERA, "value": good}), "malformed", CAMERA,
                        MALFORMED, "wall line without arrival")
        chosen = lines[k]
        text = chosen if isinstance(chosen, bytes) else orjson.dumps(chosen)
        return Line(text, "malformed", None, MALFORMED, f"malformed #{k}")


INGEST_CODES: Final = frozenset({"outside_map", "unregistered_device", "unknown_alert",
                                 "illegal_transition"})
"""Dead letters found after decoding, by ingest or the engine: a message that decodes but
arrived at an unusable time (Kafka's timestamp) is a ``bad_timestamp`` before any of them."""


def _after_bad_arrival(expect: Expect) -> Expect:
    if expect is None:
        return None
    if expect & TAKEN:
        return frozenset({"bad_timestamp"})
    if expect & INGEST_CODES:
        return (expect - INGEST_CODES) | {"bad_timestamp"}
    return expect


def _deep_value(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


def _ok(msg: Msg) -> frozenset[str]:
    """What a valid message may become: taken in, or (feedback) rejected by the engine."""
    return TAKEN | FEEDBACK_DEAD if msg.topic == FEEDBACK else TAKEN


def _dumps_line(line: dict[str, Any]) -> bytes:
    try:
        return orjson.dumps(line)
    except orjson.JSONEncodeError:   # a lone surrogate or an integer past 64 bits
        return json.dumps(line, ensure_ascii=True, separators=(",", ":"),
                          allow_nan=False).encode("ascii")


def _deep_copy(value: Any) -> Any:
    if type(value) is dict:
        return {k: _deep_copy(v) for k, v in value.items()}
    if type(value) is list:
        return [_deep_copy(v) for v in value]
    return value


@dataclass(slots=True)
class Payload:
    """A message's payload as a replay line carries it: a JSON value (``value``, or written
    out as ``raw``), text (``raw``) or bytes (``raw_b64``, or ``raw`` when they are UTF-8)."""

    value: Any = None
    text: str | None = None
    data: bytes | None = None
    has_value: bool = False
    time: int | None = None     # the input time if an edit changed it to a valid one
    topic: str | None = None    # the topic it is sent to, if not its own

    @classmethod
    def of(cls, value: Any, time: int | None = None) -> Payload:
        return cls(value=value, has_value=True, time=time)

    def put(self, line: dict[str, Any], d: Draw) -> None:
        if self.has_value:
            k = d.int(0, 9)
            if k < 7:
                line["value"] = self.value
                return
            text = _compact(self.value)
            if k < 9 or not _is_utf8_text(text):
                line["raw"] = text
            else:
                line["raw_b64"] = base64.b64encode(text.encode("utf-8")).decode("ascii")
            return
        if self.text is not None:
            if d.chance(0.8) or not _is_utf8_text(self.text):
                line["raw"] = self.text
            else:
                line["raw_b64"] = base64.b64encode(self.text.encode("utf-8")).decode("ascii")
            return
        assert self.data is not None
        try:
            text = self.data.decode("utf-8")
        except UnicodeDecodeError:
            text = None
        if text is not None and d.chance(0.5):
            line["raw"] = text
        else:
            line["raw_b64"] = base64.b64encode(self.data).decode("ascii")


def _compact(value: Any) -> str:
    try:
        return orjson.dumps(value).decode("utf-8")
    except orjson.JSONEncodeError:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def _is_utf8_text(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _bytes(value: Any) -> bytes:
    return _compact(value).encode("utf-8", "surrogatepass")


# -- boundary edits ---------------------------------------------------------------------------

Edit = Any   # Callable[[Gen, Msg, dict], tuple[Payload, Expect, str]]
INVALID: Final = frozenset({"invalid_field"})


def _long(gen: Gen, n: int) -> str:
    """``n`` characters (code points), mixed 1- to 4-byte UTF-8."""
    c = gen.d.choice(LONG_CHARS)
    return (c * n) if gen.d.chance(0.5) else (LONG_CHARS * (n // len(LONG_CHARS) + 1))[:n]


def _id_fields(msg: Msg) -> list[tuple[Any, ...]]:
    out: list[tuple[Any, ...]] = [("event_id",)]
    o = msg.obj
    for name in ("reporter_id", "actor", "assignee"):
        if name in o:
            out.append((name,))
    for i, det in enumerate(o.get("detections", ())):
        if "track_id" in det:
            out.append(("detections", i, "track_id"))
    return out


def _set(obj: Any, path: tuple[Any, ...], value: Any) -> None:
    for p in path[:-1]:
        obj = obj[p]
    obj[path[-1]] = value


def _get(obj: Any, path: tuple[Any, ...]) -> Any:
    for p in path:
        obj = obj[p]
    return obj


def b_id_length(gen: Gen, msg: Msg, obj: dict[str, Any]) -> tuple[Payload, Expect, str]:
    obj = _deep_copy(obj)
    path = gen.d.choice(_id_fields(msg))
    n = gen.d.choice((128, 128, 129, 1, 0, 5000))
    _set(obj, path, _long(gen, n))
    expect = _ok(msg) if 1 <= n <= 128 else INVALID
    return Payload.of(obj), expect, f"id {'.'.join(map(str, path))} of {n} chars"


def b_detections(gen: Gen, msg: Msg, obj: dict[str, Any]) -> tuple[Payload, Expect, str]:
    if msg.topic != CAMERA or not obj["detections"]:
        return b_id_length(gen, msg, obj)
    n = gen.d.choice((256, 256, 257, 1000))
    base = obj["detections"][0]
    dets = []
    for i in range(n):
        det = dict(base)
        if "track_id" in det or i % 2:
            det["track_id"] = f"t-{i}"
        dets.append(det)
    obj["detections"] = dets
    return Payload.of(obj), _ok(msg) if n <= 256 else INVALID, f"{n} detections"


def b_text_length(gen: Gen, msg: Msg, obj: dict[str, Any]) -> tuple[Payload, Expect, str]:
    limits = {REPORT: (("description", 4000), ("address", 512), ("photos", 16)),
              FEEDBACK: (("note", 4000), ("photos", 16))}.get(msg.topic)
    if limits is None:
        return b_confidence(gen, msg, obj)
    name, limit = gen.d.choice(limits)
    n = limit + gen.d.choice((0, 0, 1))
    if name == "photos":
        obj[name] = [f"https://evidence.example/p/{i}.jpg" for i in range(n)]
    else:
        obj[name] = _long(gen, n)
    return Payload.of(obj), _ok(msg) if n <= limit else INVALID, f"{name} of {n}"


def b_confidence(gen: Gen, msg: Msg, obj: dict[str, Any]) -> tuple[Payload, Expect, str]:
    if msg.topic != CAMERA or not obj["detections"]:
        return b_value(gen, msg, obj)
    obj = _deep_copy(obj)
    i = gen.d.int(0, len(obj["detections"]) - 1)
    det = obj["detections"][i]
    if gen.d.chance(0.5):
        v = gen.d.choice((0, 1, 0.0, 1.0, -0.0, 5e-324, 0.9999999999999999, 1.0000000000000002,
                          -5e-324, 2, 10 ** 30))
        det["confidence"] = v
        bad = not (0 <= v <= 1)
        return Payload.of(obj), INVALID if bad else _ok(msg), f"confidence {v!r}"
    box = gen.d.choice(([0, 0, 0, 0], [1, 1, 1, 1], [0, 0, 1, 1.0000000000000002],
                        [-0.0, 0, 0, 0], [0.5, 0.5, 0.5], [0.1, 0.1, 0.1, 0.1, 0.1], [],
                        [0, 0, 0, -1e-9]))
    det["bbox"] = box
    bad = len(box) != 4 or not all(0 <= v <= 1 for v in box)
    return Payload.of(obj), INVALID if bad else _ok(msg), f"bbox {box!r}"


def b_value(gen: Gen, msg: Msg, obj: dict[str, Any]) -> tuple[Payload, Expect, str]:
    kind = obj.get("kind")
    if msg.topic != SENSOR or kind not in SENSOR_VALUE_KINDS:
        return b_location(gen, msg, obj)
    lo, hi = SENSOR_VALUE_KINDS[kind]
    cands: list[Any] = [lo, float(lo), -0.0, -1e-9, 1.7976931348623157e308, 10 ** 30]
    if hi is not None:
        cands += [hi, hi + 1e-9, float(hi)]
    v = gen.d.choice(cands)
    obj["value"] = v
    bad = v < lo or (hi is not None and v > hi)
    return Payload.of(obj), INVALID if bad else _ok(msg), f"{kind} value {v!r}"


def b_location(gen: Gen, msg: Msg, obj: dict[str, Any]) -> tuple[Payload, Expect, str]:
    """A location on a grid's edge or corner (in the map), on the map's outer edge or just
    outside it (``outside_map``), at the ends of the coordinate range, or past them
    (``bad_coordinate``)."""
    d = gen.d
    obj = _deep_copy(obj)
    if msg.topic == CAMERA and obj["detections"]:
        target = obj["detections"][d.int(0, len(obj["detections"]) - 1)]
    elif msg.topic in (SENSOR, REPORT):
        target = obj
    else:
        return b_time(gen, msg, obj)
    k = d.int(0, 5)
    if k <= 2:
        lon, lat = gen.point_in_map()
        if k == 0:
            lon, lat = d.choice(EDGE_LONS), d.choice(EDGE_LATS)
        target["location"] = {"lat": lat, "lon": lon}
        return Payload.of(obj), _ok(msg), "location on an edge"
    if k == 3:   # just outside the map, across its outer edge
        lon, lat = d.choice(((EDGE_LONS[0] - 1e-6, EDGE_LATS[1]), (EDGE_LONS[-1] + 1e-6, EDGE_LATS[1]),
                             (EDGE_LONS[2], EDGE_LATS[0] - 1e-6), (EDGE_LONS[2], EDGE_LATS[-1] + 1e-6)))
        target["location"] = {"lat": lat, "lon": lon}
        return Payload.of(obj), frozenset({"outside_map"}), "location just outside the map"
    if k == 4:
        lat, lon = d.choice(((90, 180), (-90, -180), (90.0, 0), (0, -180.0), (-0.0, -0.0)))
        target["location"] = {"lat": lat, "lon": lon}
        return Payload.of(obj), frozenset({"outside_map"}), f"location ({lat}, {lon})"
    lat, lon = d.choice(((90.000001, 104.53), (30.38, 180.0000001), (-90.5, 0), (30.38, -181),
                         (1e308, 0), (30.38, -1e308)))
    target["location"] = {"lat": lat, "lon": lon}
    return Payload.of(obj), frozenset({"bad_coordinate"}), f"location ({lat}, {lon})"


def b_time(gen: Gen, msg: Msg, obj: dict[str, Any]) -> tuple[Payload, Expect, str]:
    """The input time at an edge of the contract's range, or a spelling RFC 3339 forbids."""
    text, code = time_edge(gen)
    name = msg.time_field
    if name == "at" and obj.get("action") == "defer" and gen.d.chance(0.5):
        name = "until"   # a deferral until the end of the range, or past it
        if code is None and text < "2000":
            code = "invalid_field"   # until must be later than at
    obj[name] = text
    if code is not None:
        return Payload.of(obj), frozenset({code}), f"{name} {text}"
    if msg.topic == FEEDBACK and obj.get("action") == "defer":
        return Payload.of(obj), None, f"{name} {text}"   # until may now be before at
    return Payload.of(obj, parse_timestamp_ms(text)), _ok(msg), f"{name} {text}"


def b_size(gen: Gen, msg: Msg, obj: dict[str, Any]) -> tuple[Payload, Expect, str]:
    """Exactly 1 MiB (valid), one byte more or twice as much (``too_large``); padded with an
    unknown member, which the contract ignores."""
    target = gen.d.choice((MAX_MESSAGE_BYTES, MAX_MESSAGE_BYTES + 1, 2 * MAX_MESSAGE_BYTES))
    obj["zz_padding"] = ""
    base = len(_bytes(obj))
    obj["zz_padding"] = "x" * (target - base)
    data = _bytes(obj)
    assert len(data) == target, (len(data), target)
    return (Payload(data=data), _ok(msg) if target <= MAX_MESSAGE_BYTES else frozenset({"too_large"}),
            f"{target} bytes")


def b_extra(gen: Gen, msg: Msg, obj: dict[str, Any]) -> tuple[Payload, Expect, str]:
    """Unknown members (ignored by the contract): nested, big numbers, odd keys."""
    d = gen.d
    k = d.int(0, 5)
    if k == 0:
        obj["extra"] = {"a": [1, 2, {"b": None}], "c": True}
    elif k == 1:
        obj["big"] = d.choice((2 ** 63, 2 ** 64, -(2 ** 63) - 1, 10 ** 30, 1e308, -0.0))
        return Payload.of(obj), None, "a big number in an unknown member"
    elif k == 2:
        obj[d.choice(ODD_TEXT)] = d.choice(ODD_TEXT)
    elif k == 3:
        depth = d.choice((10, 100, 127, 128, 200))
        obj["deep"] = _nested(depth)
        return Payload.of(obj), None, f"unknown member nested {depth} deep"
    elif k == 4:
        obj["EVENT_ID"] = "shadow"
    else:
        obj["nan_text"] = "NaN Infinity -Infinity"
    return Payload.of(obj), _ok(msg), "unknown members"


def _nested(depth: int) -> Any:
    value: Any = []
    for i in range(depth - 1):
        value = [value] if i % 2 else {"k": value}
    return value


def b_whitespace(gen: Gen, msg: Msg, obj: dict[str, Any]) -> tuple[Payload, Expect, str]:
    """The same object written differently: indented, keys reversed, escaped non-ASCII."""
    d = gen.d
    k = d.int(0, 2)
    if k == 0:
        text = json.dumps(obj, ensure_ascii=False, indent=d.choice((1, 2, "\t")))
    elif k == 1:
        text = json.dumps(dict(reversed(list(obj.items()))), ensure_ascii=False)
    else:
        text = json.dumps(obj, ensure_ascii=True)
    text = d.choice(("", " ", "\n", "\r\n\t")) + text + d.choice(("", " ", "\n"))
    return Payload(text=text), _ok(msg), "whitespace and escapes"


def b_unregistered(gen: Gen, msg: Msg, obj: dict[str, Any]) -> tuple[Payload, Expect, str]:
    """A device not in the map without a location, a report grid not in the map, feedback for
    an alert of a grid not in the map."""
    if msg.topic == CAMERA:
        obj["camera_id"] = "cam-9999"
        for det in obj["detections"]:
            det.pop("location", None)
        return Payload.of(obj), frozenset({"unregistered_device"}), "unregistered camera"
    if msg.topic == SENSOR:
        obj["sensor_id"] = "sl-9999"
        obj.pop("location", None)
        return Payload.of(obj), frozenset({"unregistered_device"}), "unregistered sensor"
    if msg.topic == REPORT:
        obj.pop("location", None)
        obj["grid_id"] = gen.d.choice(("JY-9999", "G-1", "jy-0101"))
        return Payload.of(obj), frozenset({"outside_map"}), "report in no grid"
    obj["alert_id"] = "a-JY-9999-" + "0" * 20
    return Payload.of(obj), frozenset({"unknown_alert"}), "alert of no grid"


def b_words(gen: Gen, msg: Msg, obj: dict[str, Any]) -> tuple[Payload, Expect, str]:
    """A closed word the contract does not have: an unknown report source or feedback action
    (dead letters), or an unknown label, kind, state or category (ignored)."""
    d = gen.d
    if msg.topic == REPORT and d.chance(0.5):
        obj["source"] = d.choice(("citizen", "Inspector", ""))
        return Payload.of(obj), INVALID, f"source {obj['source']!r}"
    if msg.topic == FEEDBACK:
        obj["action"] = d.choice(("approve", "", "ACKNOWLEDGE", "close"))
        obj.pop("until", None)
        return Payload.of(obj), frozenset({"unknown_action"}), f"action {obj['action']!r}"
    if msg.topic == REPORT:
        obj["category"] = d.choice(UNKNOWN_CATEGORIES)
    elif msg.topic == SENSOR:
        obj["kind"] = d.choice(("humidity", "气温"))
    else:
        obj = _deep_copy(obj)
        for det in obj["detections"]:
            det["label"] = d.choice(UNKNOWN_LABELS)
    return Payload.of(obj), _ok(msg), "unknown words"


def b_defer(gen: Gen, msg: Msg, obj: dict[str, Any]) -> tuple[Payload, Expect, str]:
    if msg.topic != FEEDBACK:
        return b_time(gen, msg, obj)
    obj["action"] = "defer"
    k = gen.d.int(0, 2)
    if k == 0:
        obj.pop("until", None)
        return Payload.of(obj), INVALID, "defer without until"
    if k == 1:
        obj["until"] = obj["at"]
        return Payload.of(obj), INVALID, "defer until at"
    obj["until"] = "2099-12-31T23:59:59.999Z"
    return Payload.of(obj), _ok(msg), "defer until the end of the range"


_BOUNDARY_EDITS: Final = (b_id_length, b_detections, b_text_length, b_confidence, b_value,
                          b_location, b_time, b_time, b_time, b_extra, b_whitespace,
                          b_unregistered, b_words, b_defer, b_size)


# -- mutations ----------------------------------------------------------------------------------


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out: list[tuple[Any, ...]] = []
    if type(value) is dict:
        for k, v in value.items():
            out.append((*prefix, k))
            out += _paths(v, (*prefix, k))
    elif type(value) is list:
        for i, v in enumerate(value):
            out.append((*prefix, i))
            out += _paths(v, (*prefix, i))
    return out


def m_drop(gen: Gen, msg: Msg, obj: dict[str, Any]) -> tuple[Payload, Expect, str]:
    path = gen.d.choice(_paths(obj))
    parent = _get(obj, path[:-1])
    if type(parent) is list:
        del parent[path[-1]]
        if path[-2:-1] == ("bbox",):
            return Payload.of(obj), INVALID, f"drop {path}"
        return Payload.of(obj), None, f"drop {path}"
    del parent[path[-1]]
    return Payload.of(obj), INVALID if path in msg.required else None, f"drop {path}"


def _other_type(gen: Gen, value: Any) -> Any:
    """A non-null JSON value of another type than ``value`` (int and float are one type)."""
    d = gen.d
    if type(value) is str:
        return d.choice((7, 0.5, True, False, [], {}, ["x"], {"a": 1}, 10 ** 20))
    if type(value) in (int, float):
        return d.choice(("0.9", "1", "", True, False, [], [0.5], {}, {"v": 1}))
    if type(value) is bool:
        return d.choice((1, 0, "true", [], {}))
    if type(value) is list:
        return d.choice(("[]", 1, 0.5, True, {}, {"0": 1}))
    return d.choice(("{}", 1, 0.5, False, [], [1, 2]))


def m_retype(gen: Gen, msg: Msg, obj: dict[str, Any]) -> tuple[Payload, Expect, str]:
    path = gen.d.choice(_paths(obj))
    old = _get(obj, path)
    if gen.d.chance(0.15):
        _set(obj, path, None)
        return Payload.of(obj), None, f"null {path}"
    new = _other_type(gen, old)
    _set(obj, path, new)
    return Payload.of(obj), None if path in msg.lax else INVALID, f"retype {path} to {type(new).__name__}"


def m_duplicate_key(gen: Gen, msg: Msg, obj: dict[str, Any]) -> tuple[Payload, Expect, str]:
    """A member twice: same value, or another (JSON leaves which one wins to the parser)."""
    name = gen.d.choice(list(obj))
    value = obj[name] if gen.d.chance(0.5) else _other_type(gen, obj[name])
    text = _compact(obj)
    dup = _compact({name: value})[1:-1]
    text = "{" + dup + "," + text[1:] if gen.d.chance(0.5) else text[:-1] + "," + dup + "}"
    return Payload(text=text), None, f"duplicate key {name!r}"


def m_truncate(gen: Gen, msg: Msg, obj: dict[str, Any]) -> tuple[Payload, Expect, str]:
    data = _bytes(obj)
    n = gen.d.int(0, len(data) - 1)
    cut = data[:n]
    expect = frozenset({"bad_json", "bad_encoding"})
    return Payload(data=cut), expect, f"truncated to {n} of {len(data)} bytes"


def m_flip(gen: Gen, msg: Msg, obj: dict[str, Any]) -> tuple[Payload, Expect, str]:
    data = bytearray(_bytes(obj))
    for _ in range(gen.d.int(1, 3)):
        i = gen.d.int(0, len(data) - 1)
        data[i] ^= 1 << gen.d.int(0, 7)
    return Payload(data=bytes(data)), None, "flipped bits"


BAD_UTF8: Final = (b"\xff", b"\xfe", b"\xc3\x28", b"\xc0\xaf", b"\xed\xa0\x80", b"\xf4\x90\x80\x80",
                   b"\xe4\xb8", b"\x80", b"\xf8\x88\x80\x80\x80")


def m_bad_utf8(gen: Gen, msg: Msg, obj: dict[str, Any]) -> tuple[Payload, Expect, str]:
    """Bytes that are not UTF-8, inside a string or between tokens."""
    data = _bytes(obj)
    bad = gen.d.choice(BAD_UTF8)
    # Mostly inside the first string value, else anywhere.
    i = data.find(b'":"') + 3 if gen.d.chance(0.7) else gen.d.int(0, len(data))
    return Payload(data=data[:i] + bad + data[i:]), frozenset({"bad_encoding"}), f"invalid UTF-8 {bad!r}"


def _string_paths(obj: dict[str, Any]) -> list[tuple[Any, ...]]:
    return [p for p in _paths(obj) if type(_get(obj, p)) is str]


def m_surrogate(gen: Gen, msg: Msg, obj: dict[str, Any]) -> tuple[Payload, Expect, str]:
    """A lone surrogate: unescaped in a ``value`` (sent as bytes that are not UTF-8), or
    escaped in the JSON text (``\\ud800``), which JSON text allows and UTF-8 cannot carry."""
    path = gen.d.choice(_string_paths(obj))
    s = gen.d.choice(("\ud800", "\udfff", "\udc80", "\ud83d"))
    _set(obj, path, _get(obj, path) + s)
    if gen.d.chance(0.5):
        return Payload.of(obj), frozenset({"bad_encoding"}), f"lone surrogate in {path} (raw)"
    text = json.dumps(obj, ensure_ascii=gen.d.chance(0.5), separators=(",", ":"))
    if "\\ud" not in text:
        return Payload.of(obj), frozenset({"bad_encoding"}), f"lone surrogate in {path} (raw)"
    return Payload(text=text), None, f"lone surrogate in {path} (escaped)"


def m_control(gen: Gen, msg: Msg, obj: dict[str, Any]) -> tuple[Payload, Expect, str]:
    """A control character in a string: raw (invalid JSON) or escaped (a valid string)."""
    path = gen.d.choice(_string_paths(obj))
    c = gen.d.choice(("\x00", "\x01", "\x1b", "\n", "\x1f"))
    _set(obj, path, _get(obj, path) + c)
    if gen.d.chance(0.5):
        return Payload.of(obj), None, f"control {c!r} in {path} (escaped)"
    text = _compact(obj)
    esc = json.dumps(c)[1:-1]
    i = text.find(esc)
    text = text[:i] + c + text[i + len(esc):]
    return Payload(text=text), frozenset({"bad_json"}), f"control {c!r} in {path} (raw)"


def m_nonfinite(gen: Gen, msg: Msg, obj: dict[str, Any]) -> tuple[Payload, Expect, str]:
    """``NaN`` / ``Infinity`` where a number is, or as an unknown member's value."""
    tok = gen.d.choice(("NaN", "Infinity", "-Infinity", "nan", "Inf"))
    numbers = [p for p in _paths(obj) if type(_get(obj, p)) in (int, float)]
    marker = 12345.678901
    if numbers and gen.d.chance(0.7):
        _set(obj, gen.d.choice(numbers), marker)
    else:
        obj["zz"] = marker
    text = _compact(obj).replace(repr(marker), tok, 1)
    expect = frozenset({"bad_json"})
    return Payload(text=text), expect, f"{tok} token"


def m_time(gen: Gen, msg: Msg, obj: dict[str, Any]) -> tuple[Payload, Expect, str]:
    """The input time naive, with a wrong offset, far in the past or future, or not a string."""
    d = gen.d
    name = msg.time_field
    k = d.int(0, 4)
    if k == 0:
        obj[name] = rfc3339(msg.time)[:-6]
        return Payload.of(obj), frozenset({"naive_timestamp"}), f"{name} naive"
    if k == 1:
        obj[name] = d.choice(("9999-12-31T20:00:00.000+00:00", "0001-01-01T00:00:00.000+23:59"))
        code = "future_timestamp" if obj[name] > "5" else "bad_timestamp"
        return Payload.of(obj), frozenset({code}), f"{name} {obj[name]}"
    if k == 2:
        obj[name] = rfc3339(msg.time)[:-6] + d.choice(("+24:00", "+08:60", "+0800", "+8:00",
                                                        "UTC", "+08", "-99:99", " +08:00"))
        return Payload.of(obj), INVALID, f"{name} wrong offset"
    if k == 3:
        obj[name] = d.choice((msg.time, msg.time / 1000, None, [], {"t": 1}, True))
        return Payload.of(obj), INVALID, f"{name} not a string"
    text, code = time_edge(gen)
    obj[name] = text
    return Payload.of(obj), None if code is None else frozenset({code}), f"{name} {text}"


def m_not_object(gen: Gen, msg: Msg, obj: dict[str, Any]) -> tuple[Payload, Expect, str]:
    value = gen.d.choice(([obj], "text", 42, None, True, [], 1.5))
    return Payload.of(value), INVALID, f"top level {type(value).__name__}"


def m_topic(gen: Gen, msg: Msg, obj: dict[str, Any]) -> tuple[Payload, Expect, str]:
    """A message of another topic: sent to the wrong topic, it misses required fields."""
    other = gen.d.choice([t for t in TOPICS if t != msg.topic])
    payload = Payload.of(obj)
    payload.topic = other
    return payload, INVALID, f"sent to {other}"


def m_nesting(gen: Gen, msg: Msg, obj: dict[str, Any]) -> tuple[Payload, Expect, str]:
    """Deep nesting where an object is expected, or in an unknown member; as text, since a
    replay line's own ``value`` is held to the JSON parser's depth limits."""
    depth = gen.d.choice((129, 255, 256, 1000, 1024, 1025, 100_000))
    path = gen.d.choice([("zz",), *(p for p in _paths(obj) if type(_get(obj, p)) is dict)])
    _set(obj, path, {"__deep__": 1})
    text = _compact(obj).replace('{"__deep__":1}', "[" * depth + "]" * depth, 1)
    return Payload(text=text), None, f"{depth} deep at {path}"


def m_garbage(gen: Gen, msg: Msg, obj: dict[str, Any]) -> tuple[Payload, Expect, str]:
    text = _compact(obj)
    k = gen.d.int(0, 4)
    if k == 0:
        return Payload(text=text + gen.d.choice(("x", "}", "{}", ",", "\x00"))), \
            frozenset({"bad_json"}), "trailing garbage"
    if k == 1:
        return Payload(text="\ufeff" + text), None, "byte order mark"
    if k == 2:
        return Payload(data=b""), frozenset({"bad_json"}), "empty payload"
    if k == 3:
        return Payload(text=text.replace(":", ": ", 3).replace(",", " ,", 2)), None, "spaces"
    return Payload(data=text.encode("utf-16")), frozenset({"bad_encoding", "bad_json"}), "UTF-16"


def m_bigint(gen: Gen, msg: Msg, obj: dict[str, Any]) -> tuple[Payload, Expect, str]:
    """An integer past 64 bits where a number is; as text, exactly as written."""
    numbers = [p for p in _paths(obj) if type(_get(obj, p)) in (int, float)]
    big = gen.d.choice(("18446744073709551616", "-9223372036854775809", "1" + "0" * 400,
                        "1e400", "-1e400", "1" * 5000, "0." + "0" * 400 + "1", "1E+2", "-0"))
    marker = 12345.678901
    if numbers:
        _set(obj, gen.d.choice(numbers), marker)
    else:
        obj["zz"] = marker
    return Payload(text=_compact(obj).replace(repr(marker), big, 1)), None, f"number {big[:24]}"


_MUTATIONS: Final = (m_drop, m_drop, m_retype, m_retype, m_duplicate_key, m_truncate, m_flip,
                     m_bad_utf8, m_surrogate, m_control, m_nonfinite, m_time, m_time,
                     m_not_object, m_topic, m_nesting, m_garbage, m_bigint)
