"""The city map (RULES.md): grids, zones, cameras and sensors from one GeoJSON file.

Everything the engine asks of the map is answered here: which grid and zones hold a
point (``locate``, on the hot path of every event), and where each registered device
sits (computed once at load). A map is checked whole at load, so a bad polygon or a
camera outside every grid stops the worker at start-up instead of dead-lettering
events for hours.

Example::

    city = CityMap.load("rules/demo/jianyang.geojson")
    place = city.locate(30.3921, 104.5462)   # Place(grid_id="JY-0312", zone_ids=(...))
"""

from __future__ import annotations

import difflib
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import shapely
from shapely.errors import ShapelyError
from shapely.geometry import shape
from shapely.geometry.base import BaseGeometry
from shapely.validation import explain_validity

from rules.calibration import Calibration, CalibrationError, fit
from rules.schedule import DEFAULT_TIME_ZONE, DEFAULT_WORK_HOURS, CityCalendar, Schedule, ScheduleError
from rules.worktime import parse_work_hours

GRID_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
ZONE_KIND = re.compile(r"^[a-z_]+$")
MAX_ID_LENGTH = 128
FEATURE_TYPES = ("grid", "zone", "camera", "sensor")
# Grids may share edges; digitised neighbours also overlap by float noise. Anything
# above ~1 m² (1e-10 square degrees near the equator) is a real overlap.
OVERLAP_TOLERANCE = 1e-10
LOCATE_CACHE_LIMIT = 200_000
#: The locate raster: cells of 5e-5 degree (~5.5 m of latitude) a side, each classified once.
#: A cell is widened by a margin far larger than the rounding of ``lat * 20_000`` when it is
#: classified, so a point that rounds into a cell from just outside it is still inside what
#: was checked.
LOCATE_CELLS_PER_DEGREE = 20_000
_CELL_MARGIN_DEG = 1e-9
_UNKNOWN = object()  # a cell not yet classified
_AREAL = ("Polygon", "MultiPolygon")
_CITY_KEYS = ("name", "time_zone", "calendar", "work_hours")
_CALENDAR_KEYS = ("holidays", "workdays")
_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


class MapError(ValueError):
    """A city map that cannot be used; the message says where and what to write instead."""


@dataclass(frozen=True, slots=True)
class Grid:
    """A 网格: the unit of responsibility and of partitioning.

    ``lat``/``lon`` is a point inside the grid (not the centroid, which may fall outside
    a concave grid): where a report given only by ``grid_id`` sits.
    """

    id: str
    district: str
    responsible_unit: str
    lat: float
    lon: float


@dataclass(frozen=True, slots=True)
class Zone:
    """An area of a kind rules refer to (``main_road``, ``school``…), maybe scheduled."""

    id: str
    kind: str
    name: str | None
    schedule: Schedule | None
    key: bool


@dataclass(frozen=True, slots=True)
class Device:
    """A registered camera or sensor, with its grid and zones worked out at load. A camera
    whose platform sends pixel boxes (DeepStream, Frigate) has a ``calibration``."""

    id: str
    type: str
    kind: str | None
    lat: float
    lon: float
    grid_id: str
    zone_ids: tuple[str, ...]
    calibration: Calibration | None = None


@dataclass(frozen=True, slots=True)
class Place:
    """Where a point is: its grid and every zone containing it, whatever the schedules."""

    grid_id: str
    zone_ids: tuple[str, ...]


def read_geojson(path: str | Path) -> object:
    """A map file's parsed JSON (unchecked: :meth:`CityMap.from_geojson` checks it), for a
    caller that needs the features themselves too (the console draws them)."""
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise MapError(f"{source}: cannot read the map: {exc}") from exc
    try:
        return json.loads(text, parse_constant=_reject_constant)
    except ValueError as exc:
        raise MapError(f"{source}: not valid JSON: {exc}") from exc


class CityMap:
    """The loaded map, indexed for point lookups.

    >>> city = CityMap.from_geojson({"type": "FeatureCollection", "city": {}, "features": [
    ...     {"type": "Feature", "properties": {"type": "grid", "id": "G1", "district": "d",
    ...      "responsible_unit": "u"}, "geometry": {"type": "Polygon",
    ...      "coordinates": [[[0, 0], [1, 0], [1, 1], [0, 1], [0, 0]]]}}]})
    >>> city.locate(0.5, 0.5)
    Place(grid_id='G1', zone_ids=())
    """

    def __init__(
        self,
        name: str,
        calendar: CityCalendar,
        grids: list[tuple[Grid, BaseGeometry]],
        zones: list[tuple[Zone, BaseGeometry]],
    ) -> None:
        self.name = name
        self.calendar = calendar
        self.grids: dict[str, Grid] = {g.id: g for g, _ in grids}
        self.zones: dict[str, Zone] = {z.id: z for z, _ in zones}
        self.cameras: dict[str, Device] = {}
        self.sensors: dict[str, Device] = {}
        self.zone_kinds: frozenset[str] = frozenset(z.kind for z in self.zones.values())
        # One tree over grids then zones: a single query answers both (a miss costs one
        # index walk, not two); an index below len(grids) is a grid.
        self._ids = [g.id for g, _ in grids] + [z.id for z, _ in zones]
        self._grid_count = len(grids)
        self._tree = shapely.STRtree([geom for _, geom in grids] + [geom for _, geom in zones])
        self._cache: dict[tuple[float, float], Place | None] = {}
        self._cells: dict[tuple[int, int], Place | _Edges | None] = {}

    @classmethod
    def load(cls, path: str | Path) -> CityMap:
        """Read and check a GeoJSON map file."""
        return cls.from_geojson(read_geojson(path), source=str(path))

    @classmethod
    def from_geojson(cls, obj: object, source: str = "<map>") -> CityMap:
        """Check a parsed GeoJSON FeatureCollection and build the map from it."""
        return _MapBuilder(source).build(obj)

    def locate(self, lat: float, lon: float) -> Place | None:
        """The grid and zones at a point; None when it is in no grid.

        Cached by the exact coordinates: cameras report from fixed positions and many
        detections repeat a location, so most calls never reach the spatial index. A new
        point is then looked up in a raster of cells (``LOCATE_CELLS_PER_DEGREE``), each
        classified once: a cell that every grid and zone near it holds in its interior or
        keeps clear of has one answer for all its points (a dict lookup, ~0.7 µs, against
        ~20 µs in the index: the jittered detections of the engine benchmark missed the
        exact cache 41% of the time, half of ingest's work); in a cell a boundary crosses, a
        point is tested against the crossing grids and zones alone (~13 µs).
        """
        key = (lat, lon)
        try:
            return self._cache[key]
        except KeyError:
            pass
        place = self._locate(lat, lon)
        if len(self._cache) >= LOCATE_CACHE_LIMIT:
            self._cache.clear()
        self._cache[key] = place
        return place

    def _locate(self, lat: float, lon: float) -> Place | None:
        if -90.0 <= lat <= 90.0 and -180.0 <= lon <= 180.0:   # not NaN: it has a cell
            cell = (math.floor(lat * LOCATE_CELLS_PER_DEGREE), math.floor(lon * LOCATE_CELLS_PER_DEGREE))
            found = self._cells.get(cell, _UNKNOWN)
            if found is _UNKNOWN:
                if len(self._cells) >= LOCATE_CACHE_LIMIT:
                    self._cells.clear()
                found = self._cells[cell] = self._classify(*cell)
            if type(found) is not _Edges:
                return found   # type: ignore[return-value]
            inside, indices, geoms = found   # type: ignore[misc]
            hit = shapely.intersects(geoms, shapely.points((lon, lat))).tolist()
            return self._place(inside + [i for i, h in zip(indices, hit, strict=True) if h])
        return self._place(self._tree.query(shapely.points((lon, lat)), predicate="intersects").tolist())

    def _classify(self, i: int, j: int) -> Place | _Edges | None:
        """A cell's one answer (a place, or None: in no grid), or, when a grid's or zone's
        boundary comes near it, those that hold it whole and those whose boundary does: a
        point there is tested against the second alone. A cell has one answer only if every
        grid and zone that reaches the widened cell holds it in its interior, since a point
        on a boundary is in the grid or zone."""
        m, per = _CELL_MARGIN_DEG, LOCATE_CELLS_PER_DEGREE
        box = shapely.box(j / per - m, i / per - m, (j + 1) / per + m, (i + 1) / per + m)
        hits = self._tree.query(box, predicate="intersects")
        geoms = self._tree.geometries.take(hits)
        whole = shapely.contains_properly(geoms, box)
        if whole.all():
            return self._place(hits.tolist())
        edges = geoms[~whole]
        shapely.prepare(edges)
        return _Edges(hits[whole].tolist(), hits[~whole].tolist(), edges)

    def _place(self, hits: list[int]) -> Place | None:
        """The place of the tree's indices ``hits`` (grids first, then zones)."""
        ids, count = self._ids, self._grid_count
        grid_ids = [ids[i] for i in hits if i < count]
        if not grid_ids:
            return None
        return Place(min(grid_ids), tuple(sorted(ids[i] for i in hits if i >= count)))


class _Edges(NamedTuple):
    """A cell that boundaries cross: the tree's indices of the grids and zones that hold it
    whole, and of those whose boundary crosses it, with their (prepared) geometries."""

    inside: list[int]
    indices: list[int]
    geoms: Any


def _reject_constant(token: str) -> float:
    raise ValueError(f"{token} is not JSON: write a finite number")


class _MapBuilder:
    """Checks a map feature by feature, so each error can name the feature it is about."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.seen: dict[str, dict[str, int]] = {t: {} for t in FEATURE_TYPES}
        self.grids: list[tuple[Grid, BaseGeometry, int]] = []
        self.zones: list[tuple[Zone, BaseGeometry]] = []
        self.devices: list[tuple[int, dict[str, object], BaseGeometry]] = []

    def build(self, obj: object) -> CityMap:
        if not isinstance(obj, Mapping) or obj.get("type") != "FeatureCollection":
            raise MapError(
                f"{self.source}: not a GeoJSON FeatureCollection: write "
                '{"type": "FeatureCollection", "city": {...}, "features": [...]}'
            )
        if "city" not in obj:
            # Without it the map silently runs on Asia/Shanghai with no holidays: schedules and
            # workdays would be wrong for any city that meant otherwise, with no sign of why.
            raise self._city_error(
                "city", 'the foreign member is missing: add "city": {"name": ..., "time_zone": '
                '"Asia/Shanghai", "calendar": {...}} beside "features" (RULES.md)'
            )
        name, calendar = self._city(obj["city"])
        features = obj.get("features")
        if not isinstance(features, list):
            raise MapError(f"{self.source}: features: expected a list of GeoJSON Features")
        for index, feature in enumerate(features):
            self._feature(index, feature)
        self._check_overlaps()
        city = CityMap(name, calendar, [(g, geom) for g, geom, _ in self.grids], self.zones)
        for index, props, geom in self.devices:
            self._place_device(city, index, props, geom)
        return city

    # -- the city block -------------------------------------------------------------------

    def _city(self, raw: object) -> tuple[str, CityCalendar]:
        """The city block; its keys are optional (name: the file's stem, time_zone:
        Asia/Shanghai, no calendar), the block itself is not."""
        default_name = Path(self.source).stem
        if not isinstance(raw, Mapping):
            raise self._city_error(
                "city", 'expected an object such as {"name": ..., "time_zone": "Asia/Shanghai"}'
            )
        self._no_unknown_keys(raw, _CITY_KEYS, "city")
        name = raw.get("name", default_name)
        if not isinstance(name, str) or not name.strip():
            raise self._city_error("city.name", "expected the city's name as a non-empty string")
        tz = self._time_zone(raw.get("time_zone", DEFAULT_TIME_ZONE))
        holidays, workdays = self._calendar(raw.get("calendar"))
        work_hours = DEFAULT_WORK_HOURS
        if "work_hours" in raw:
            try:
                work_hours = parse_work_hours(raw["work_hours"])
            except ValueError as e:
                raise self._city_error("city.work_hours", str(e)) from None
        return name, CityCalendar(tz, holidays, workdays, work_hours)

    def _time_zone(self, raw: object) -> ZoneInfo:
        try:
            if not isinstance(raw, str) or not raw:
                raise ValueError(raw)
            return ZoneInfo(raw)
        except (ValueError, ZoneInfoNotFoundError) as exc:
            raise self._city_error(
                "city.time_zone",
                f"{raw!r} is not an IANA time zone: write one such as Asia/Shanghai or "
                "Asia/Urumqi",
            ) from exc

    def _calendar(self, raw: object) -> tuple[frozenset[date], frozenset[date]]:
        if raw is None:
            return frozenset(), frozenset()
        if not isinstance(raw, Mapping):
            raise self._city_error(
                "city.calendar", 'expected {"holidays": [YYYY-MM-DD, ...], "workdays": [...]}'
            )
        self._no_unknown_keys(raw, _CALENDAR_KEYS, "city.calendar")
        holidays = self._dates(raw.get("holidays", []), "city.calendar.holidays")
        workdays = self._dates(raw.get("workdays", []), "city.calendar.workdays")
        for d in sorted(holidays & workdays):
            raise self._city_error(
                "city.calendar", f"{d} is both a holiday and a workday: list it in one of them"
            )
        for d in sorted(workdays):
            if d.weekday() < 5:
                raise self._city_error(
                    "city.calendar.workdays",
                    f"{d} is a {d.strftime('%A')}: workdays lists weekend days worked (调休); "
                    "Monday to Friday are workdays already",
                )
        return holidays, workdays

    def _dates(self, raw: object, where: str) -> frozenset[date]:
        if not isinstance(raw, list):
            raise self._city_error(where, "expected a list of dates such as [\"2026-10-01\"]")
        out: set[date] = set()
        for item in raw:
            try:
                if not isinstance(item, str) or not _ISO_DATE.match(item):
                    raise ValueError(item)
                out.add(date.fromisoformat(item))
            except ValueError as exc:
                raise self._city_error(
                    where, f"{item!r} is not a date: write YYYY-MM-DD, such as \"2026-10-01\""
                ) from exc
        return frozenset(out)

    def _city_error(self, where: str, message: str) -> MapError:
        return MapError(f"{self.source}: {where}: {message}")

    def _no_unknown_keys(
        self, raw: Mapping[str, object], valid: tuple[str, ...], where: str
    ) -> None:
        for key in raw:
            if key not in valid:
                raise self._city_error(
                    where, f"unknown key {key!r}{_did_you_mean(key, valid)} "
                    f"(valid keys: {', '.join(valid)})",
                )

    # -- features -------------------------------------------------------------------------

    def _feature(self, index: int, feature: object) -> None:
        if not isinstance(feature, Mapping) or feature.get("type") != "Feature":
            raise self._error(index, None, "not a GeoJSON Feature: write "
                              '{"type": "Feature", "geometry": ..., "properties": ...}')
        props = feature.get("properties")
        if not isinstance(props, Mapping):
            raise self._error(index, None, "properties: expected an object with type and id")
        kind = props.get("type")
        if kind not in FEATURE_TYPES:
            raise self._error(
                index, props.get("id"),
                f"properties.type: {kind!r} is not a feature type: write grid, zone, camera or "
                f"sensor{_did_you_mean(kind, FEATURE_TYPES)}",
            )
        fid = self._feature_id(index, kind, props)
        geom = self._geometry(index, fid, kind, feature.get("geometry"))
        if kind == "grid":
            self.grids.append((self._grid(index, fid, props, geom), geom, index))
        elif kind == "zone":
            self.zones.append((self._zone(index, fid, props), geom))
        else:
            self.devices.append((index, dict(props), geom))

    def _feature_id(self, index: int, kind: str, props: Mapping[str, object]) -> str:
        fid = props.get("id")
        if not isinstance(fid, str) or not fid or len(fid) > MAX_ID_LENGTH:
            raise self._error(index, fid, f"properties.id: expected a non-empty string of at "
                              f"most {MAX_ID_LENGTH} characters, got {fid!r}")
        if kind == "grid" and not GRID_ID.match(fid):
            raise self._error(index, fid, "properties.id: a grid id is 1 to 64 of "
                              "A-Z a-z 0-9 . _ - (it is part of every alert id)")
        first = self.seen[kind].get(fid)
        if first is not None:
            raise self._error(index, fid, f"properties.id: duplicate {kind} id, already used "
                              f"by feature {first}: give each {kind} its own id")
        self.seen[kind][fid] = index
        return fid

    def _geometry(self, index: int, fid: str, kind: str, raw: object) -> BaseGeometry:
        wanted = _AREAL if kind in ("grid", "zone") else ("Point",)
        gtype = raw.get("type") if isinstance(raw, Mapping) else None
        if gtype not in wanted:
            raise self._error(index, fid, f"geometry: a {kind} needs a "
                              f"{' or '.join(wanted)} geometry, got {gtype!r}")
        assert isinstance(raw, Mapping)  # gtype came from it
        if not isinstance(raw.get("coordinates"), list):
            raise self._error(index, fid, "geometry: coordinates missing: write a list of "
                              "[lon, lat] pairs as GeoJSON does")
        try:
            geom = shape(raw)
        except (ShapelyError, ValueError, TypeError, IndexError, KeyError) as exc:
            raise self._error(index, fid, f"geometry: bad coordinates ({exc}); write "
                              "[lon, lat] pairs, rings closed") from exc
        if geom.is_empty:
            raise self._error(index, fid, "geometry: empty: give coordinates")
        if gtype in _AREAL:
            self._check_rings(index, fid, str(gtype), raw["coordinates"])
        minx, miny, maxx, maxy = geom.bounds
        if not all(map(math.isfinite, geom.bounds)) or not (
            -180 <= minx <= maxx <= 180 and -90 <= miny <= maxy <= 90
        ):
            raise self._error(index, fid, "geometry: coordinates out of range: GeoJSON is "
                              "[lon, lat], lon in -180..180, lat in -90..90")
        if not geom.is_valid:
            raise self._error(index, fid, f"geometry: invalid polygon ({explain_validity(geom)})"
                              ": rings must not cross themselves or each other, holes must lie "
                              "inside")
        return geom

    def _check_rings(self, index: int, fid: str, gtype: str, coordinates: list[object]) -> None:
        """Every ring closed, of four or more positions (RFC 7946, 3.1.6).

        shapely closes an open ring by itself, so a ring whose last corner was lost (cut
        off in an export, or typed by hand) would load as a different polygon than the one
        drawn; a map is the city's ground truth, so it is refused instead of guessed.
        ``shape()`` has accepted the coordinates, so the nesting is right.
        """
        polygons: Any = [coordinates] if gtype == "Polygon" else coordinates
        for p, rings in enumerate(polygons, 1):
            for r, ring in enumerate(rings, 1):
                which = f"ring {r}" if gtype == "Polygon" else f"polygon {p}, ring {r}"
                first, last = (list(ring[0]), list(ring[-1])) if ring else ([], [])
                if first != last:
                    raise self._error(index, fid, f"geometry: {which} is not closed: its last "
                                      f"position {last} must repeat its first {first} "
                                      "(RFC 7946)")
                if len(ring) < 4:
                    raise self._error(index, fid, f"geometry: {which} has {len(ring)} "
                                      "positions: a closed ring needs four or more, the last "
                                      "repeating the first (RFC 7946)")

    def _grid(self, index: int, fid: str, props: Mapping[str, object], geom: BaseGeometry) -> Grid:
        district = self._text(index, fid, props, "district")
        unit = self._text(index, fid, props, "responsible_unit")
        point = geom.representative_point()
        return Grid(fid, district, unit, lat=point.y, lon=point.x)

    def _zone(self, index: int, fid: str, props: Mapping[str, object]) -> Zone:
        kind = props.get("kind")
        if not isinstance(kind, str) or not ZONE_KIND.match(kind):
            raise self._error(index, fid, f"properties.kind: {kind!r} is not a zone kind: write "
                              "lowercase letters and _, such as main_road or night_market")
        name = props.get("name")
        if name is not None and not isinstance(name, str):
            raise self._error(index, fid, "properties.name: expected a string or nothing")
        schedule = None
        if props.get("schedule") is not None:
            try:
                schedule = Schedule.parse(props["schedule"])
            except ScheduleError as exc:
                where = f"schedule.{exc.key}" if exc.key else "schedule"
                raise self._error(index, fid, f"properties.{where}: {exc.reason}") from exc
        priority = props.get("priority")
        if priority not in (None, "key"):
            raise self._error(index, fid, f"properties.priority: {priority!r} is not valid: "
                              "write key (重点区域) or leave it out")
        return Zone(fid, kind, name, schedule, key=priority == "key")

    def _text(self, index: int, fid: str, props: Mapping[str, object], key: str) -> str:
        value = props.get(key)
        if not isinstance(value, str) or not value.strip():
            raise self._error(index, fid, f"properties.{key}: expected a non-empty string, "
                              f"got {value!r}")
        return value

    def _check_overlaps(self) -> None:
        """Grids partition the city: a point's grid must not depend on the order of a file."""
        if len(self.grids) < 2:
            return
        geoms = [geom for _, geom, _ in self.grids]
        left, right = shapely.STRtree(geoms).query(geoms, predicate="intersects")
        for i, j in sorted(zip(left.tolist(), right.tolist(), strict=True)):
            if i >= j:
                continue
            area = geoms[i].intersection(geoms[j]).area
            if area > OVERLAP_TOLERANCE:
                (a, _, a_index), (b, _, b_index) = self.grids[i], self.grids[j]
                raise self._error(
                    b_index, b.id, f"geometry: overlaps grid {a.id!r} (feature {a_index}) by "
                    f"{area:.3g} square degrees: grids may share edges, not area",
                )

    def _place_device(
        self, city: CityMap, index: int, props: dict[str, object], geom: BaseGeometry
    ) -> None:
        kind_of_device, fid = str(props["type"]), str(props["id"])
        kind = props.get("kind")
        if kind_of_device == "sensor" and (not isinstance(kind, str) or not kind):
            raise self._error(index, fid, "properties.kind: a sensor needs its kind, such as "
                              "streetlight, manhole_cover, parking_occupancy or noise")
        if kind is not None and (not isinstance(kind, str) or not kind):
            raise self._error(index, fid, f"properties.kind: expected a string, got {kind!r}")
        lat, lon = geom.y, geom.x
        place = city.locate(lat, lon)
        if place is None:
            raise self._error(index, fid, f"geometry: ({lon}, {lat}) is in no grid: a "
                              f"{kind_of_device} must stand inside a grid (GeoJSON is [lon, lat])")
        calibration = self._calibration(index, fid, props.get("calibration"))
        if calibration is not None and kind_of_device != "camera":
            raise self._error(index, fid, "properties.calibration: only a camera has one")
        device = Device(fid, kind_of_device, kind, lat, lon, place.grid_id, place.zone_ids, calibration)
        target = city.cameras if kind_of_device == "camera" else city.sensors
        target[fid] = device

    def _calibration(self, index: int, fid: str, raw: object) -> Calibration | None:
        """``{"image": [width, height], "points": [{"pixel": [u, v], "position": [lon, lat]}, ...]}``:
        four or more pixels of the camera's image and the WGS 84 positions they show (GeoJSON's
        [lon, lat] order), spread over the ground in view (docs/adapters.md)."""
        if raw is None:
            return None
        where = "properties.calibration"
        if not isinstance(raw, Mapping) or set(raw) != {"image", "points"}:
            raise self._error(index, fid, f"{where}: expected {{\"image\": [width, height], \"points\": "
                              '[{"pixel": [u, v], "position": [lon, lat]}, ...]}')
        image, points = raw["image"], raw["points"]
        if not (isinstance(image, list) and len(image) == 2 and all(type(x) is int for x in image)):
            raise self._error(index, fid, f"{where}.image: expected [width, height] in whole pixels, "
                              f"got {image!r}")
        if not isinstance(points, list):
            raise self._error(index, fid, f"{where}.points: expected a list of reference points")
        refs = []
        for i, point in enumerate(points):
            ok = isinstance(point, Mapping) and set(point) == {"pixel", "position"} and all(
                isinstance(point[k], list) and len(point[k]) == 2
                and all(type(x) in (int, float) for x in point[k]) for k in ("pixel", "position"))
            if not ok:
                raise self._error(index, fid, f"{where}.points[{i}]: expected "
                                  f'{{"pixel": [u, v], "position": [lon, lat]}}, got {point!r}')
            (u, v), (lon, lat) = point["pixel"], point["position"]
            refs.append((float(u), float(v), float(lat), float(lon)))
        try:
            return fit(image[0], image[1], refs)
        except CalibrationError as e:
            raise self._error(index, fid, f"{where}.{e}") from None

    def _error(self, index: int, fid: object, message: str) -> MapError:
        label = f"feature {index}" + (f" (id {fid!r})" if isinstance(fid, str) and fid else "")
        return MapError(f"{self.source}: {label}: {message}")


def _did_you_mean(word: object, valid: tuple[str, ...]) -> str:
    if not isinstance(word, str):
        return ""
    close = difflib.get_close_matches(word, valid, n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""
