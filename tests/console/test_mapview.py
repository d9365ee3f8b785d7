"""The map's projection and shapes, on the demo city and on a hand-made square."""

from __future__ import annotations

import math

import orjson
import pytest

from console.mapview import PAD, WIDTH, mercator, view_of
from rules.citymap import CityMap
from rules.demo.city import GEOJSON_PATH


def square(lon: float, lat: float, size: float) -> list[list[list[float]]]:
    return [[[lon, lat], [lon + size, lat], [lon + size, lat + size], [lon, lat + size],
             [lon, lat]]]


def test_a_square_keeps_its_shape_at_its_latitude() -> None:
    lat = 60.0   # one degree of longitude is half a degree of latitude's length here
    view = view_of({"features": [
        {"type": "Feature", "properties": {"type": "grid", "id": "G", "district": "d"},
         "geometry": {"type": "Polygon", "coordinates": square(10.0, lat, 0.01)}}]})
    assert view.width == WIDTH
    # A square in degrees is twice as tall as wide on the ground at 60°: the width is the
    # limit, so the height is twice it (between the paddings).
    assert view.height - 2 * PAD == pytest.approx(2 * (WIDTH - 2 * PAD), rel=1e-3)
    assert view.project(10.0, lat + 0.01) == pytest.approx((PAD, PAD))           # north-west
    x, y = view.project(10.01, lat)
    assert (x - PAD) / (y - PAD) == pytest.approx(math.cos(math.radians(lat + 0.005)), rel=1e-3)
    assert view.grids[0].path.startswith("M10.0,") and view.grids[0].path.endswith(" Z")
    assert view.grids[0].label == "G · d"


def test_the_demo_city_every_grid_and_zone_inside_the_picture() -> None:
    view = view_of(orjson.loads(GEOJSON_PATH.read_bytes()))
    assert (len(view.grids), len(view.zones)) == (50, 29)
    for shape in (*view.grids, *view.zones):
        for part in shape.path.replace("M", " ").replace("L", " ").replace("Z", " ").split():
            x, y = (float(v) for v in part.split(","))
            assert -0.1 <= x <= view.width + 0.1 and -0.1 <= y <= view.height + 0.1


def test_devices_and_empty_maps_draw_nothing() -> None:
    assert view_of({"features": [{"type": "Feature", "properties": {"type": "camera"},
                                  "geometry": {"type": "Point", "coordinates": [1, 2]}}]}).grids == []
    assert view_of({}).zones == []


def test_web_mercator_as_slippy_maps_number_it() -> None:
    assert mercator(0.0, 0.0) == pytest.approx((0.5, 0.5))
    assert mercator(-180.0, 85.05112878) == pytest.approx((0.0, 0.0), abs=1e-9)
    # Tile numbers by the OpenStreetMap wiki's formula (ln(tan + sec), not asinh(tan)).
    lon, lat, z = 104.5476, 30.3889, 15
    x, y = mercator(lon, lat)
    phi = math.radians(lat)
    assert math.floor(x * 2 ** z) == math.floor((lon + 180) / 360 * 2 ** z)
    assert math.floor(y * 2 ** z) == math.floor(
        (1 - math.log(math.tan(phi) + 1 / math.cos(phi)) / math.pi) / 2 * 2 ** z)


def test_the_tiles_cover_the_picture_and_lie_under_what_they_show() -> None:
    view = view_of(orjson.loads(GEOJSON_PATH.read_bytes()))
    tiles = view.tiles("http://tiles.test/{z}/{x}/{y}.png")
    z = {int(t.href.split("/")[3]) for t in tiles}
    assert len(z) == 1
    size = tiles[0].size
    assert 256 / math.sqrt(2) <= size <= 256 * math.sqrt(2)
    assert min(t.x for t in tiles) <= PAD and max(t.x + t.size for t in tiles) >= view.width - PAD
    assert min(t.y for t in tiles) <= PAD and max(t.y + t.size for t in tiles) >= view.height - PAD
    assert len(tiles) == len({t.href for t in tiles}) < 100
    # A place on the map is drawn inside the tile its slippy-map number names.
    zoom = z.pop()
    grids = list(CityMap.load(GEOJSON_PATH).grids.values())
    for lon, lat in [(g.lon, g.lat) for g in grids[::7]]:
        px, py = view.project(lon, lat)
        phi = math.radians(lat)
        tx = math.floor((lon + 180) / 360 * 2 ** zoom)
        ty = math.floor((1 - math.log(math.tan(phi) + 1 / math.cos(phi)) / math.pi) / 2 * 2 ** zoom)
        tile = next(t for t in tiles if t.x <= px < t.x + t.size and t.y <= py < t.y + t.size)
        assert tile.href == f"http://tiles.test/{zoom}/{tx}/{ty}.png"
