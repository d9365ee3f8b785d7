"""The map's projection and shapes, on the demo city and on a hand-made square."""

from __future__ import annotations

import math

import orjson
import pytest

from console.mapview import PAD, WIDTH, view_of
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
