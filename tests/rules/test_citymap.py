"""The city map: loading, every map error, point location and devices."""

import copy
import json
import math
import random
from datetime import date
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import shapely

from rules import citymap
from rules.citymap import CityMap, Device, Grid, MapError, Place, Zone
from rules.demo.city import GEOJSON_PATH
from rules.schedule import Schedule
from tests.pinhole import PIXELS, camera, ground_of, position


def square(x0: float, y0: float, x1: float, y1: float) -> dict[str, Any]:
    """A GeoJSON polygon from lon x0..x1, lat y0..y1."""
    return {"type": "Polygon",
            "coordinates": [[[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]]]}


def feature(geometry: dict[str, Any], **properties: Any) -> dict[str, Any]:
    return {"type": "Feature", "geometry": geometry, "properties": properties}


def point(lon: float, lat: float) -> dict[str, Any]:
    return {"type": "Point", "coordinates": [lon, lat]}


# Two grids sharing the edge lon = 104.01; the one listed first has the larger id.
# Zone Z-b straddles that edge; Z-a sits in G-1 and overlaps Z-b.
MAP: dict[str, Any] = {
    "type": "FeatureCollection",
    "city": {"name": "测试市", "time_zone": "Asia/Shanghai",
             "calendar": {"holidays": ["2026-10-01"], "workdays": ["2026-10-10"]}},
    "features": [
        feature(square(104.00, 30.00, 104.01, 30.01), type="grid", id="G-2", district="东区",
                responsible_unit="东区中队"),
        feature(square(104.01, 30.00, 104.02, 30.01), type="grid", id="G-1", district="西区",
                responsible_unit="西区中队"),
        feature(square(104.005, 30.004, 104.015, 30.006), type="zone", id="Z-b",
                kind="main_road", name="东大街"),
        feature(square(104.012, 30.002, 104.018, 30.008), type="zone", id="Z-a",
                kind="night_market", schedule={"hours": "18:00-23:00"}, priority="key"),
        feature(point(104.013, 30.005), type="camera", id="cam-1"),
        feature(point(104.001, 30.001), type="sensor", id="sl-1", kind="streetlight"),
    ],
}


@pytest.fixture(scope="module")
def city() -> CityMap:
    return CityMap.from_geojson(MAP, source="test.geojson")


# -- loading --------------------------------------------------------------------------------


def test_city_block(city: CityMap) -> None:
    assert city.name == "测试市"
    assert city.calendar.tz == ZoneInfo("Asia/Shanghai")
    assert city.calendar.holidays == frozenset({date(2026, 10, 1)})
    assert city.calendar.workdays == frozenset({date(2026, 10, 10)})


def test_grids_and_zones(city: CityMap) -> None:
    assert sorted(city.grids) == ["G-1", "G-2"]
    g = city.grids["G-2"]
    assert (g.id, g.district, g.responsible_unit) == ("G-2", "东区", "东区中队")
    # The representative point lies inside the grid it stands for.
    assert 104.00 < g.lon < 104.01 and 30.00 < g.lat < 30.01
    assert city.locate(g.lat, g.lon) == Place("G-2", ("Z-b",))
    assert city.zones["Z-a"] == Zone("Z-a", "night_market", None,
                                     Schedule(((1080, 1380),)), key=True)
    assert city.zones["Z-b"] == Zone("Z-b", "main_road", "东大街", None, key=False)
    assert city.zone_kinds == frozenset({"main_road", "night_market"})


def test_devices_are_placed_at_load(city: CityMap) -> None:
    assert city.cameras == {
        "cam-1": Device("cam-1", "camera", None, 30.005, 104.013, "G-1", ("Z-a", "Z-b"))}
    assert city.sensors == {
        "sl-1": Device("sl-1", "sensor", "streetlight", 30.001, 104.001, "G-2", ())}


def test_load_from_a_file(tmp_path: Path) -> None:
    path = tmp_path / "jianyang.geojson"
    path.write_text(json.dumps(MAP, ensure_ascii=False), encoding="utf-8")
    loaded = CityMap.load(path)
    assert loaded.name == "测试市"
    assert loaded.locate(30.005, 104.013) == Place("G-1", ("Z-a", "Z-b"))


def test_defaults_of_an_empty_city_block(tmp_path: Path) -> None:
    bare = {**MAP, "city": {}}
    path = tmp_path / "jianyang.geojson"
    path.write_text(json.dumps(bare), encoding="utf-8")
    loaded = CityMap.load(path)
    assert loaded.name == "jianyang"
    assert loaded.calendar.tz == ZoneInfo("Asia/Shanghai")
    assert loaded.calendar.holidays == frozenset()


# -- locate ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("lat", "lon", "place"),
    [
        (30.001, 104.001, Place("G-2", ())),  # inside G-2, in no zone
        (30.001, 104.019, Place("G-1", ())),
        (30.005, 104.013, Place("G-1", ("Z-a", "Z-b"))),  # zones sorted by id
        (30.007, 104.013, Place("G-1", ("Z-a",))),
        (30.005, 104.01, Place("G-1", ("Z-b",))),  # on the shared edge: smallest grid id
        (30.00, 104.005, Place("G-2", ())),  # on the outer edge: inside
        (30.006, 104.007, Place("G-2", ("Z-b",))),  # on a zone's edge: inside
        (30.002, 104.012, Place("G-1", ("Z-a",))),  # on a zone's corner
        (30.01, 104.02, Place("G-1", ())),  # the map's far corner
        (30.02, 104.005, None),  # north of every grid
        (30.005, 103.999, None),
    ],
)
def test_locate(city: CityMap, lat: float, lon: float, place: Place | None) -> None:
    assert city.locate(lat, lon) == place
    assert city.locate(lat, lon) == place  # the cached answer is the same


def test_locate_cache_and_cells_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    fresh = CityMap.from_geojson(MAP)
    monkeypatch.setattr(citymap, "LOCATE_CACHE_LIMIT", 3)
    for i in range(7):
        fresh.locate(30.001, 104.001 + i * 1e-4)
    assert len(fresh._cache) <= 3
    assert len(fresh._cells) <= 3
    assert fresh.locate(30.001, 104.0015) == Place("G-2", ())


def _one_by_one(city: CityMap, lat: float, lon: float) -> Place | None:
    """Where a point is, from every grid and zone tested against it alone: no index, no
    raster, no cache."""
    hit = shapely.intersects(city._tree.geometries, shapely.Point(lon, lat))
    inside = [city._ids[i] for i in range(len(hit)) if hit[i]]
    grids = [x for x in inside if x in city.grids]
    return Place(min(grids), tuple(sorted(x for x in inside if x in city.zones))) if grids else None


def _near_boundaries(city: CityMap, rng: random.Random, n: int) -> list[tuple[float, float]]:
    """Points on, and a hair either side of, the map's edges and corners, and of the locate
    raster's cell edges: where a cell's one answer would be wrong if it were given."""
    per = citymap.LOCATE_CELLS_PER_DEGREE
    rings = [shapely.get_coordinates(shapely.boundary(g)) for g in city._tree.geometries]
    points = []
    for _ in range(n):
        ring = rings[rng.randrange(len(rings))]
        k = rng.randrange(len(ring) - 1)
        f = rng.choice([0.0, 1.0, rng.random()])
        lon = ring[k][0] + f * (ring[k + 1][0] - ring[k][0])
        lat = ring[k][1] + f * (ring[k + 1][1] - ring[k][1])
        if rng.random() < 0.3:   # on the nearest cell edge instead
            lat = round(lat * per) / per
        nudge = rng.choice([0.0, 1e-13, -1e-13, 1e-10, -1e-10, 2e-9, -2e-9, 3e-5])
        points.append((lat + nudge * rng.choice([0, 1]), lon + nudge * rng.choice([0, 1])))
    return points


def test_locate_agrees_with_every_point_tested_alone() -> None:
    """The raster's answers are the index's, point for point: anywhere in the demo city, and
    on and beside every grid's and zone's boundary (where a cell must not answer for its
    points: each is looked up alone), and in a map whose edges are the cells' edges."""
    rng = random.Random(7)
    demo = CityMap.load(GEOJSON_PATH)
    xmin, ymin, xmax, ymax = shapely.total_bounds(demo._tree.geometries)
    anywhere = [(rng.uniform(ymin - 0.01, ymax + 0.01), rng.uniform(xmin - 0.01, xmax + 0.01))
                for _ in range(3000)]
    # Grids on the cells' edges: 104.0000-104.0003 and 104.0003-104.0006, a zone on a corner.
    on_cells = CityMap.from_geojson({**MAP, "features": [
        feature(square(104.0, 30.0, 104.0003, 30.0002), type="grid", id="C-1", district="d",
                responsible_unit="u"),
        feature(square(104.0003, 30.0, 104.0006, 30.0002), type="grid", id="C-0", district="d",
                responsible_unit="u"),
        feature(square(104.0001, 30.0001, 104.0003, 30.0002), type="zone", id="CZ", kind="school"),
    ]})
    grid_points = [(30.0 + a * 1e-5, 104.0 + b * 1e-5) for a in range(-2, 23) for b in range(-2, 63)]
    # An edge a float below a cell's edge, which a point on it rounds into the cell above
    # (lat * cells per degree rounds up): the cell is widened for that.
    per = citymap.LOCATE_CELLS_PER_DEGREE
    first = math.ceil(30.001 * per)
    cell = next(c for c in range(first, first + 1000)
                if math.floor(math.nextafter(c / per, -math.inf) * per) == c)
    edge = math.nextafter(cell / per, -math.inf)
    below = CityMap.from_geojson({**MAP, "features": [
        feature(square(104.0, 30.0, 104.0003, edge), type="grid", id="E-0", district="d",
                responsible_unit="u"),
        feature(square(104.0, edge, 104.0003, 30.002), type="grid", id="E-1", district="d",
                responsible_unit="u"),
    ]})
    cases = [(demo, p) for p in anywhere + _near_boundaries(demo, rng, 4000)]
    cases += [(on_cells, p) for p in grid_points + _near_boundaries(on_cells, rng, 2000)]
    cases += [(below, (edge, 104.00015)), (below, ((cell + 0.5) / per, 104.00015))]
    wrong = [(lat, lon, got, want) for city, (lat, lon) in cases
             if (got := city.locate(lat, lon)) != (want := _one_by_one(city, lat, lon))]
    assert not wrong, wrong[:5]
    # The raster answers for most points in a grid (here ~80%), not only where there is none.
    inside = [(lat, lon) for lat, lon in anywhere if demo.locate(lat, lon) is not None]
    answered = [1 for lat, lon in inside
                if type(demo._cells[(math.floor(lat * per), math.floor(lon * per))]) is not citymap._Edges]
    assert len(answered) > len(inside) / 2


def test_grid_dataclass_is_frozen(city: CityMap) -> None:
    with pytest.raises(AttributeError):
        city.grids["G-1"].district = "x"  # type: ignore[misc]
    assert isinstance(city.grids["G-1"], Grid)


# -- errors ---------------------------------------------------------------------------------


def broken(change: Any) -> dict[str, Any]:
    obj = copy.deepcopy(MAP)
    change(obj)
    return obj


def set_props(index: int, **props: Any) -> Any:
    def change(obj: dict[str, Any]) -> None:
        obj["features"][index]["properties"].update(props)
    return change


def set_geometry(index: int, geometry: Any) -> Any:
    def change(obj: dict[str, Any]) -> None:
        obj["features"][index]["geometry"] = geometry
    return change


def set_city(**city: Any) -> Any:
    def change(obj: dict[str, Any]) -> None:
        obj["city"].update(city)
    return change


def add(*features: dict[str, Any]) -> Any:
    def change(obj: dict[str, Any]) -> None:
        obj["features"].extend(features)
    return change


BOWTIE = {"type": "Polygon", "coordinates": [[[104.0, 30.0], [104.01, 30.01], [104.01, 30.0],
                                              [104.0, 30.01], [104.0, 30.0]]]}

def open_ring(geometry: dict[str, Any], *path: int) -> dict[str, Any]:
    """``geometry`` with the ring at ``path`` (in its coordinates) missing its closing position."""
    out = copy.deepcopy(geometry)
    ring = out["coordinates"]
    for i in path:
        ring = ring[i]
    ring.pop()
    return out


SQUARE_G2 = square(104.00, 30.00, 104.01, 30.01)
HOLED = {"type": "Polygon", "coordinates": [
    square(104.00, 30.00, 104.01, 30.01)["coordinates"][0],
    square(104.002, 30.002, 104.004, 30.004)["coordinates"][0][::-1]]}
MULTI = {"type": "MultiPolygon", "coordinates": [
    square(104.012, 30.002, 104.014, 30.004)["coordinates"],
    square(104.015, 30.002, 104.018, 30.008)["coordinates"]]}

ERRORS = [
    (lambda o: o.pop("city"),
     'm.geojson: city: the foreign member is missing: add "city": {"name": ..., "time_zone": '
     '"Asia/Shanghai", "calendar": {...}} beside "features" (RULES.md)'),
    (lambda o: o.update(city=None),
     'm.geojson: city: expected an object such as {"name": ..., "time_zone": "Asia/Shanghai"}'),
    (set_geometry(0, open_ring(SQUARE_G2, 0)),
     "m.geojson: feature 0 (id 'G-2'): geometry: ring 1 is not closed: its last position "
     "[104.0, 30.01] must repeat its first [104.0, 30.0] (RFC 7946)"),
    (set_geometry(0, open_ring(HOLED, 1)),
     "m.geojson: feature 0 (id 'G-2'): geometry: ring 2 is not closed: its last position "
     "[104.004, 30.002] must repeat its first [104.002, 30.002] (RFC 7946)"),
    (set_geometry(3, open_ring(MULTI, 1, 0)),
     "m.geojson: feature 3 (id 'Z-a'): geometry: polygon 2, ring 1 is not closed: its last "
     "position [104.015, 30.008] must repeat its first [104.015, 30.002] (RFC 7946)"),
    (set_geometry(3, {"type": "Polygon", "coordinates": [
        [[104.012, 30.002], [104.018, 30.002], [104.015, 30.008]]]}),
     "m.geojson: feature 3 (id 'Z-a'): geometry: ring 1 is not closed: its last position "
     "[104.015, 30.008] must repeat its first [104.012, 30.002] (RFC 7946)"),
    (set_geometry(3, {"type": "Polygon", "coordinates": [
        SQUARE_G2["coordinates"][0], []]}),
     "m.geojson: feature 3 (id 'Z-a'): geometry: ring 2 has 0 positions: a closed ring needs "
     "four or more, the last repeating the first (RFC 7946)"),
    (set_geometry(0, HOLED), None),   # a closed hole, wound the other way: valid
    (set_geometry(3, MULTI), None),
    (lambda o: o.update(type="Feature"),
     "m.geojson: not a GeoJSON FeatureCollection: write "
     '{"type": "FeatureCollection", "city": {...}, "features": [...]}'),
    (lambda o: o.update(features={}),
     "m.geojson: features: expected a list of GeoJSON Features"),
    (lambda o: o.update(city="简阳"),
     'm.geojson: city: expected an object such as {"name": ..., "time_zone": "Asia/Shanghai"}'),
    (set_city(timezone="Asia/Shanghai"),
     "m.geojson: city: unknown key 'timezone'; did you mean 'time_zone'? "
     "(valid keys: name, time_zone, calendar, work_hours)"),
    (set_city(time_zone="Asia/Beijing"),
     "m.geojson: city.time_zone: 'Asia/Beijing' is not an IANA time zone: write one such as "
     "Asia/Shanghai or Asia/Urumqi"),
    (set_city(time_zone=8),
     "m.geojson: city.time_zone: 8 is not an IANA time zone: write one such as "
     "Asia/Shanghai or Asia/Urumqi"),
    (set_city(calendar={"holidays": ["2026-10-32"]}),
     "m.geojson: city.calendar.holidays: '2026-10-32' is not a date: write YYYY-MM-DD, "
     'such as "2026-10-01"'),
    (set_city(calendar={"holidays": "2026-10-01"}),
     'm.geojson: city.calendar.holidays: expected a list of dates such as ["2026-10-01"]'),
    (set_city(calendar={"workdays": ["2026-09-28"]}),
     "m.geojson: city.calendar.workdays: 2026-09-28 is a Monday: workdays lists weekend days "
     "worked (调休); Monday to Friday are workdays already"),
    (set_city(calendar={"holidays": ["2026-10-10"], "workdays": ["2026-10-10"]}),
     "m.geojson: city.calendar: 2026-10-10 is both a holiday and a workday: list it in one of "
     "them"),
    (set_props(2, type="building"),
     "m.geojson: feature 2 (id 'Z-b'): properties.type: 'building' is not a feature type: write "
     "grid, zone, camera or sensor"),
    (set_props(2, type="zones"),
     "m.geojson: feature 2 (id 'Z-b'): properties.type: 'zones' is not a feature type: write "
     "grid, zone, camera or sensor; did you mean 'zone'?"),
    (set_props(1, id="G 1"),
     "m.geojson: feature 1 (id 'G 1'): properties.id: a grid id is 1 to 64 of A-Z a-z 0-9 . _ -"
     " (it is part of every alert id)"),
    (set_props(1, id="G-2"),
     "m.geojson: feature 1 (id 'G-2'): properties.id: duplicate grid id, already used by "
     "feature 0: give each grid its own id"),
    (set_props(3, id=""),
     "m.geojson: feature 3: properties.id: expected a non-empty string of at most 128 "
     "characters, got ''"),
    (set_props(1, district=None),
     "m.geojson: feature 1 (id 'G-1'): properties.district: expected a non-empty string, "
     "got None"),
    (set_geometry(0, BOWTIE),
     "m.geojson: feature 0 (id 'G-2'): geometry: invalid polygon (Self-intersection"
     "[104.005 30.005]): rings must not cross themselves or each other, holes must lie inside"),
    (set_geometry(0, point(104.0, 30.0)),
     "m.geojson: feature 0 (id 'G-2'): geometry: a grid needs a Polygon or MultiPolygon "
     "geometry, got 'Point'"),
    (set_geometry(3, {"type": "LineString", "coordinates": [[104.0, 30.0], [104.1, 30.1]]}),
     "m.geojson: feature 3 (id 'Z-a'): geometry: a zone needs a Polygon or MultiPolygon "
     "geometry, got 'LineString'"),
    (set_geometry(4, square(104.0, 30.0, 104.001, 30.001)),
     "m.geojson: feature 4 (id 'cam-1'): geometry: a camera needs a Point geometry, "
     "got 'Polygon'"),
    (set_geometry(0, {"type": "Polygon", "coordinates": [[[104.0], [104.01, 30.0]]]}),
     "m.geojson: feature 0 (id 'G-2'): geometry: bad coordinates"),
    (set_geometry(1, square(30.00, 104.01, 30.01, 104.02)),
     "m.geojson: feature 1 (id 'G-1'): geometry: coordinates out of range: GeoJSON is "
     "[lon, lat], lon in -180..180, lat in -90..90"),
    (add(feature(square(104.019, 30.0, 104.03, 30.01), type="grid", id="G-3", district="d",
                 responsible_unit="u")),
     "m.geojson: feature 6 (id 'G-3'): geometry: overlaps grid 'G-1' (feature 1) by 1e-05 "
     "square degrees: grids may share edges, not area"),
    (set_props(2, kind="Main-Road"),
     "m.geojson: feature 2 (id 'Z-b'): properties.kind: 'Main-Road' is not a zone kind: write "
     "lowercase letters and _, such as main_road or night_market"),
    (set_props(3, schedule={"hours": "18:00-23:60"}),
     "m.geojson: feature 3 (id 'Z-a'): properties.schedule.hours: '18:00-23:60' is not a time "
     "of day: hours 00-23 (24:00 only as an end), minutes 00-59"),
    (set_props(3, priority="high"),
     "m.geojson: feature 3 (id 'Z-a'): properties.priority: 'high' is not valid: write key "
     "(重点区域) or leave it out"),
    (set_geometry(4, point(104.5, 30.005)),
     "m.geojson: feature 4 (id 'cam-1'): geometry: (104.5, 30.005) is in no grid: a camera "
     "must stand inside a grid (GeoJSON is [lon, lat])"),
    (set_geometry(5, point(30.001, 104.001)),
     "m.geojson: feature 5 (id 'sl-1'): geometry: coordinates out of range: GeoJSON is "
     "[lon, lat], lon in -180..180, lat in -90..90"),
    (set_props(5, kind=None),
     "m.geojson: feature 5 (id 'sl-1'): properties.kind: a sensor needs its kind, such as "
     "streetlight, manhole_cover, parking_occupancy or noise"),
    (set_props(5, id="cam-1", kind="noise"), None),  # ids are per type: no error
]


@pytest.mark.parametrize(("change", "message"), ERRORS)
def test_map_errors_name_the_feature_and_what_is_valid(change: Any, message: str | None) -> None:
    obj = broken(change)
    if message is None:
        CityMap.from_geojson(obj, source="m.geojson")
        return
    with pytest.raises(MapError) as err:
        CityMap.from_geojson(obj, source="m.geojson")
    if message.endswith("bad coordinates"):
        assert str(err.value).startswith(message)
    else:
        assert str(err.value) == message


def test_shared_edges_are_not_overlaps() -> None:
    obj = broken(add(feature(square(104.02, 30.0, 104.03, 30.01), type="grid", id="G-3",
                             district="d", responsible_unit="u")))
    assert sorted(CityMap.from_geojson(obj).grids) == ["G-1", "G-2", "G-3"]


def test_multipolygon_grid() -> None:
    multi = {"type": "MultiPolygon", "coordinates": [
        square(104.02, 30.0, 104.03, 30.01)["coordinates"],
        square(104.04, 30.0, 104.05, 30.01)["coordinates"]]}
    obj = broken(add(feature(multi, type="grid", id="G-0", district="d", responsible_unit="u")))
    loaded = CityMap.from_geojson(obj)
    assert loaded.locate(30.005, 104.045) == Place("G-0", ())
    assert loaded.locate(30.005, 104.035) is None


def test_load_errors(tmp_path: Path) -> None:
    missing = tmp_path / "none.geojson"
    with pytest.raises(MapError, match=r"none\.geojson: cannot read the map"):
        CityMap.load(missing)
    bad = tmp_path / "bad.geojson"
    bad.write_text('{"type": "FeatureCollection", "features": [NaN]}', encoding="utf-8")
    with pytest.raises(MapError, match=r"bad\.geojson: not valid JSON: NaN is not JSON"):
        CityMap.load(bad)


def calibration_for(lon0: float, lat0: float, pixels: list[tuple[float, float]] = PIXELS
                    ) -> dict[str, Any]:
    m = camera(8, 30, 0, 1400)
    points = []
    for u, v in pixels:
        lat, lon = position(lat0, lon0, *ground_of(m, u, v))
        points.append({"pixel": [u, v], "position": [float(lon), float(lat)]})
    return {"image": [1920, 1080], "points": points}


def test_a_camera_may_carry_its_calibration() -> None:
    obj = broken(set_props(4, calibration=calibration_for(104.013, 30.005)))
    cal = CityMap.from_geojson(obj, source="m.geojson").cameras["cam-1"].calibration
    assert cal is not None and (cal.width, cal.height) == (1920, 1080) and cal.rms_error_m < 1e-6
    assert CityMap.from_geojson(MAP).cameras["cam-1"].calibration is None


@pytest.mark.parametrize(("change", "message"), [
    (set_props(5, calibration=calibration_for(104.013, 30.005)),
     "properties.calibration: only a camera has one"),
    (set_props(4, calibration={"points": []}), 'properties.calibration: expected {"image": [width, height]'),
    (set_props(4, calibration={"image": [1920.5, 1080], "points": []}),
     "properties.calibration.image: expected [width, height] in whole pixels, got [1920.5, 1080]"),
    (set_props(4, calibration={"image": [1920, 1080], "points": [{"pixel": [1, 2]}]}),
     'properties.calibration.points[0]: expected {"pixel": [u, v], "position": [lon, lat]}'),
    (set_props(4, calibration=calibration_for(104.013, 30.005, PIXELS[:3])),
     "properties.calibration.points: 3 given, a homography needs at least 4"),
])
def test_a_bad_calibration_is_refused_with_what_to_write(change: Any, message: str) -> None:
    with pytest.raises(MapError) as err:
        CityMap.from_geojson(broken(change), source="m.geojson")
    assert message in str(err.value)
    assert "feature" in str(err.value)
