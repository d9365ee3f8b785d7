"""The console's map: the city map's grids and zones as SVG paths, with the projection the
browser uses to place case markers, and (only if configured) the map tiles beneath them.

Pure: from the GeoJSON (a dict) to a :class:`MapView`. The projection is Web Mercator, the one
map tiles are cut in, so a configured tile layer lies exactly under the grids; the browser
repeats it in a few lines of JS (``static/map.js``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

WIDTH = 1000.0
PAD = 10.0
#: Tiles are drawn at the zoom whose tiles are nearest this size on the map (their own size).
TILE_PX = 256
MAX_ZOOM = 20


def mercator(lon: float, lat: float) -> tuple[float, float]:
    """Web Mercator as a fraction of the world: (0, 0) north-west, (1, 1) south-east."""
    phi = math.radians(max(-85.05112878, min(85.05112878, lat)))
    return (lon + 180.0) / 360.0, (1.0 - math.asinh(math.tan(phi)) / math.pi) / 2.0


@dataclass(frozen=True)
class Shape:
    id: str
    kind: str              # grid, or the zone's kind
    label: str             # shown on hover
    path: str              # SVG path data
    x: float               # a point to put its label at
    y: float


@dataclass(frozen=True)
class Tile:
    href: str
    x: float
    y: float
    size: float


@dataclass(frozen=True)
class MapView:
    width: float
    height: float
    mx0: float             # the projection: x = (mx - mx0) * k + PAD, y = (my - my0) * k + PAD,
    my0: float             # (mx, my) = mercator(lon, lat)
    k: float
    grids: list[Shape] = field(default_factory=list)
    zones: list[Shape] = field(default_factory=list)

    def project(self, lon: float, lat: float) -> tuple[float, float]:
        mx, my = mercator(lon, lat)
        return (mx - self.mx0) * self.k + PAD, (my - self.my0) * self.k + PAD

    def tiles(self, template: str) -> list[Tile]:
        """The tiles (``{z}/{x}/{y}`` filled in ``template``) covering the picture."""
        z = max(0, min(MAX_ZOOM, round(math.log2(self.k / TILE_PX))))
        n = 2 ** z
        size = self.k / n
        inside = (self.width - 2 * PAD) / self.k, (self.height - 2 * PAD) / self.k
        x0, y0 = math.floor(self.mx0 * n), math.floor(self.my0 * n)
        x1 = min(n - 1, math.floor((self.mx0 + inside[0]) * n))
        y1 = min(n - 1, math.floor((self.my0 + inside[1]) * n))
        return [Tile(template.format(z=z, x=tx, y=ty), (tx / n - self.mx0) * self.k + PAD,
                     (ty / n - self.my0) * self.k + PAD, size)
                for ty in range(y0, y1 + 1) for tx in range(x0, x1 + 1)]


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
        return MapView(WIDTH, WIDTH / 2, 0.0, 0.0, 1.0)
    xs, ys = zip(*(mercator(*p[:2]) for p in points), strict=True)
    mx0, mx1, my0, my1 = min(xs), max(xs), min(ys), max(ys)
    # The map fills the width (the page scales the SVG to its own width, however tall).
    span = (mx1 - mx0) or (my1 - my0) or 1e-12
    k = (WIDTH - 2 * PAD) / span
    view = MapView(WIDTH, (my1 - my0) * k + 2 * PAD, mx0, my0, k)
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
