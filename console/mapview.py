"""The console's map: the city map's grids and zones as SVG paths, with the projection the
browser uses to place case markers.

Pure: from the GeoJSON (a dict) to a :class:`MapView`. The projection is equirectangular,
scaled by the cosine of the map's middle latitude: at a city's size (tens of kilometres) its
distortion is far below a marker's size, and the browser repeats it in three lines of JS.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

WIDTH = 1000.0
PAD = 10.0


@dataclass(frozen=True)
class Shape:
    id: str
    kind: str              # grid, or the zone's kind
    label: str             # shown on hover
    path: str              # SVG path data
    x: float               # a point to put its label at
    y: float


@dataclass(frozen=True)
class MapView:
    width: float
    height: float
    lon0: float            # the projection: x = (lon - lon0) * sx + PAD; y = (lat0 - lat) * sy + PAD
    lat0: float
    sx: float
    sy: float
    grids: list[Shape]
    zones: list[Shape]

    def project(self, lon: float, lat: float) -> tuple[float, float]:
        return ((lon - self.lon0) * self.sx + PAD, (self.lat0 - lat) * self.sy + PAD)


def _rings(geometry: dict[str, Any]) -> list[list[list[float]]]:
    if geometry.get("type") == "Polygon":
        return list(geometry["coordinates"])
    if geometry.get("type") == "MultiPolygon":
        return [ring for polygon in geometry["coordinates"] for ring in polygon]
    return []


def view_of(geojson: dict[str, Any]) -> MapView:
    """The grids and zones of a city map (its other features are devices: not drawn)."""
    features = [f for f in geojson.get("features", [])
                if (f.get("properties") or {}).get("type") in ("grid", "zone")
                and _rings(f.get("geometry") or {})]
    points = [p for f in features for ring in _rings(f["geometry"]) for p in ring]
    if not points:
        return MapView(WIDTH, WIDTH / 2, 0.0, 0.0, 1.0, 1.0, [], [])
    lons, lats = [p[0] for p in points], [p[1] for p in points]
    lon0, lon1, lat0, lat1 = min(lons), max(lons), min(lats), max(lats)
    shrink = math.cos(math.radians((lat0 + lat1) / 2))
    # The map fills the width (the page scales the SVG to its own width, however tall).
    span = (lon1 - lon0) * shrink or (lat1 - lat0) or 1e-9
    k = (WIDTH - 2 * PAD) / span
    view = MapView(WIDTH, (lat1 - lat0) * k + 2 * PAD, lon0, lat1, k * shrink, k, [], [])
    for f in features:
        props = f["properties"]
        rings = _rings(f["geometry"])
        path = " ".join(
            "M" + " L".join(f"{x:.1f},{y:.1f}" for x, y in (view.project(*p[:2]) for p in ring))
            + " Z" for ring in rings)
        xs, ys = zip(*(view.project(*p[:2]) for p in rings[0]), strict=True)
        centre = (sum(xs) / len(xs), sum(ys) / len(ys))
        if props["type"] == "grid":
            view.grids.append(Shape(str(props["id"]), "grid",
                                    f"{props['id']} · {props.get('district', '')}", path, *centre))
        else:
            view.zones.append(Shape(str(props["id"]), str(props.get("kind", "")),
                                    str(props.get("name") or props["id"]), path, *centre))
    return view
