"""The demo city: a small synthetic district of 简阳市 (Sichuan), written as the city-map GeoJSON.

Why synthetic: real grid, zone and device registers belong to the city's 数字城管 centre and
are not public, yet the demo, the tests and the benchmarks need a map whose every feature is
known, so that a replayed day raises exactly the alerts its script intends. Everything here is
laid out in metres on a local plane (x east, y north from the south-west corner) and only
converted to WGS 84 at the end, which keeps the layout readable and the geometry exact.

The district is 2.5 km x 1.25 km, cut into 10 x 5 = 50 unit grids (coarser than the 10,000 m²
万米单元网格 of GB/T 30428.1, to keep the demo small), in four 街道 each with its 城管中队. Grid
ids are ``JY-RRCC`` (row from the south, column from the west). Zones are axis-aligned
rectangles; cameras and sensors are points placed where the demo day needs them.

``python -m rules.demo.city`` rewrites ``rules/demo/city.geojson`` byte for byte: the layout is
fixed data (no randomness), features come out in a fixed order, coordinates are rounded to 6
decimals once and shared by neighbouring grids, so shared edges are the same numbers.
"""

from __future__ import annotations

import argparse
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

GEOJSON_PATH = Path(__file__).with_name("city.geojson")

CITY_NAME = "简阳市"
TIME_ZONE = "Asia/Shanghai"
# A demo calendar, not a copy of the State Council's 2026 notice: it carries the National Day
# week and two 调休 Saturdays/Sundays worked so that schedules with ``days: workdays`` have
# something to get right. A real deployment copies the official notice here.
HOLIDAYS = (
    "2026-01-01",
    "2026-10-01",
    "2026-10-02",
    "2026-10-03",
    "2026-10-04",
    "2026-10-05",
    "2026-10-06",
    "2026-10-07",
)
SWAPPED_WORKDAYS = ("2026-09-27", "2026-10-10")

# South-west corner of the district and the metre/degree scale at its mid latitude. An
# equirectangular projection is exact enough over 2.5 km (error well under a metre).
ORIGIN_LON = 104.5300
ORIGIN_LAT = 30.3800
_M_PER_DEG_LAT = 111_320.0
_M_PER_DEG_LON = 111_320.0 * math.cos(math.radians(ORIGIN_LAT + 0.0056))

COLUMN_WIDTHS = (240, 260, 250, 250, 270, 250, 240, 260, 250, 230)
ROW_HEIGHTS = (260, 240, 250, 250, 250)


def to_lonlat(x: float, y: float) -> tuple[float, float]:
    """Metres on the local plane to ``(lon, lat)`` rounded to 6 decimals (about 0.1 m)."""
    return (
        round(ORIGIN_LON + x / _M_PER_DEG_LON, 6),
        round(ORIGIN_LAT + y / _M_PER_DEG_LAT, 6),
    )


def metres_per_degree(lat: float) -> tuple[float, float]:
    """Metres per degree of longitude and of latitude at ``lat``, for offsets in the demo day."""
    return 111_320.0 * math.cos(math.radians(lat)), _M_PER_DEG_LAT


def _edges(sizes: tuple[int, ...]) -> list[int]:
    out = [0]
    for s in sizes:
        out.append(out[-1] + s)
    return out


def district_of(row: int, col: int) -> str:
    """Four 街道 by quadrant; the old town (简城) is the north-west."""
    north = row >= 3
    west = col <= 5
    if north:
        return "简城街道" if west else "东溪街道"
    return "射洪坝街道" if west else "十里坝街道"


@dataclass(frozen=True)
class Zone:
    """One rectangular zone, in local metres."""

    id: str
    kind: str
    name: str
    box: tuple[float, float, float, float]
    schedule: dict[str, Any] | None = None
    priority: str | None = None


@dataclass(frozen=True)
class Device:
    """A camera (kind ``camera``) or a sensor at a point in local metres."""

    id: str
    kind: str
    name: str
    x: float
    y: float


# Road strips are 25-35 m wide so a detection jittered a few metres stays on the road.
ZONES: tuple[Zone, ...] = (
    Zone("main-road-dongdajie", "main_road", "东大街", (0, 980, 2500, 1010)),
    Zone("main-road-renminlu", "main_road", "人民路", (0, 600, 2500, 630)),
    Zone("main-road-jianshelu", "main_road", "建设路", (1240, 0, 1270, 1250)),
    Zone("main-road-xiongzhoudadao", "main_road", "雄州大道", (2000, 0, 2035, 1250)),
    Zone("back-street-gongyuanxiang", "back_street", "公园巷", (300, 795, 1000, 807)),
    Zone("back-street-xinshijie", "back_street", "新市街", (1500, 150, 1512, 590)),
    Zone("back-street-nanmenxiang", "back_street", "南门巷", (500, 300, 1200, 312)),
    Zone("back-street-houjie", "back_street", "滨江后街", (2100, 956, 2460, 970)),
    Zone(
        "night-market-dongdajie",
        "night_market",
        "东大街夜市",
        (250, 965, 580, 1025),
        schedule={"hours": "18:00-23:00"},
    ),
    Zone("vendor-permitted-chengdong", "vendor_permitted", "城东便民摊点", (1580, 612, 1700, 662)),
    Zone("market-chengdong", "market", "城东农贸市场", (1560, 650, 1720, 780)),
    # School zones take in the campus and its surroundings (校园周边), where most cities bar
    # vendors; the 东大街 frontage of 简阳中学 is therefore inside its school zone.
    Zone("school-jianyangzhongxue", "school", "简阳中学及周边", (600, 955, 1000, 1240),
         priority="key"),
    Zone("school-shiyanxiaoxue", "school", "实验小学及周边", (1760, 250, 1960, 430),
         priority="key"),
    Zone("hospital-renmin", "hospital", "简阳市人民医院", (1300, 660, 1460, 860), priority="key"),
    Zone("station-keyunzhan", "station", "简阳客运站", (2060, 60, 2380, 280), priority="key"),
    Zone("residential-donghu", "residential", "东湖小区", (60, 1030, 560, 1230)),
    Zone("residential-binjiang", "residential", "滨江花园", (2080, 700, 2460, 950)),
    Zone("residential-xicheng", "residential", "西城嘉苑", (60, 80, 480, 480)),
    Zone("residential-jinxiu", "residential", "锦绣苑", (1300, 80, 1480, 360)),
    Zone("scenic-xiongzhou-park", "scenic", "雄州公园", (900, 330, 1200, 560)),
    Zone("construction-chengnan", "construction", "城南安置房工地", (2150, 380, 2420, 580)),
    Zone("no-parking-hospital", "no_parking", "人民医院门前禁停区", (1290, 631, 1470, 660)),
    Zone("no-parking-school-gate", "no_parking", "简阳中学校门禁停区", (700, 1011, 900, 1050)),
    Zone("no-parking-station", "no_parking", "客运站广场禁停区", (2100, 280, 2300, 330)),
    Zone("no-parking-renminlu", "no_parking", "人民路禁停路段", (1000, 598, 1238, 632)),
    Zone("no-parking-dongdajie-east", "no_parking", "东大街东段禁停区", (2040, 978, 2400, 1012)),
    # The city's own zone kinds (RULES.md allows them): 老城区货车限行区, a compound's marked
    # 消防通道, and a stretch of road where works hold a 占道 permit.
    Zone("truck-restricted-oldtown", "truck_restricted", "老城区货车限行区", (0, 500, 1520, 1250)),
    Zone("fire-lane-binjiang", "fire_lane", "滨江花园消防通道", (2230, 760, 2244, 900)),
    Zone("road-works-nanmenxiang", "road_works_permitted", "南门巷管网改造（已批占道）",
         (1050, 298, 1150, 316)),
)


def _cameras() -> tuple[Device, ...]:
    spots = (
        ("东大街西段", 150, 1012),
        ("东大街夜市西口", 330, 1012),
        ("东大街夜市东口", 520, 1012),
        ("简阳中学门口", 800, 1012),
        ("东大街-公园路口", 1100, 1012),
        ("东大街-建设路口", 1400, 1012),
        ("东大街中段", 1700, 1012),
        ("东大街-雄州大道口", 2100, 1012),
        ("东大街东段", 2300, 1012),
        ("人民路西段", 200, 632),
        ("人民路-南门", 600, 632),
        ("人民路禁停路段", 1100, 632),
        ("人民医院门口", 1380, 632),
        ("城东农贸市场门口", 1640, 632),
        ("人民路东段", 1900, 632),
        ("人民路-滨江", 2250, 632),
        ("建设路南段", 1272, 100),
        ("建设路-雄州公园", 1272, 400),
        ("建设路中段", 1272, 800),
        ("建设路北段", 1272, 1150),
        ("客运站入口", 2037, 150),
        ("雄州大道-工地", 2037, 450),
        ("雄州大道中段", 2037, 850),
        ("雄州大道北段", 2037, 1150),
        ("公园巷西", 450, 809),
        ("公园巷东", 850, 809),
        ("新市街南", 1514, 300),
        ("新市街北", 1514, 490),
        ("南门巷西", 700, 314),
        ("南门巷东", 1100, 314),
        ("滨江后街", 2250, 972),
        ("实验小学门口", 1860, 432),
        ("客运站广场", 2200, 300),
        ("城南工地", 2280, 590),
        ("农贸市场内", 1640, 720),
        ("雄州公园", 1050, 450),
        ("东湖小区", 300, 1100),
        ("锦绣苑", 1390, 200),
        ("西城嘉苑", 270, 300),
        ("滨江花园", 2250, 820),
    )
    return tuple(
        Device(f"cam-{i:04d}", "camera", name, x, y) for i, (name, x, y) in enumerate(spots, 1)
    )


def _sensors() -> tuple[Device, ...]:
    out: list[Device] = []

    def add(prefix: str, kind: str, spots: list[tuple[str, float, float]]) -> None:
        for i, (name, x, y) in enumerate(spots, 1):
            out.append(Device(f"{prefix}-{i:04d}", kind, name, x, y))

    add(
        "sl",
        "streetlight",
        [(f"东大街路灯{i}", x, 1012) for i, x in enumerate((200, 600, 1010, 1400, 1800, 2200), 1)]
        + [(f"人民路路灯{i}", x, 598) for i, x in enumerate((300, 700, 1100, 1500, 1900, 2300), 1)]
        + [(f"建设路路灯{i}", 1238, y) for i, y in enumerate((150, 450, 850, 1150), 1)]
        + [(f"雄州大道路灯{i}", 2037, y) for i, y in enumerate((150, 450, 740, 1100), 1)],
    )
    add(
        "mh",
        "manhole_cover",
        [
            ("东大街井盖1", 350, 990),
            ("东大街井盖2", 900, 995),
            ("东大街井盖3", 1600, 995),
            ("东大街井盖4", 2300, 995),
            ("人民路井盖1", 450, 615),
            ("人民路井盖2", 1150, 615),
            ("人民路井盖3", 1800, 615),
            ("人民路井盖4", 2400, 615),
            ("建设路井盖1", 1255, 300),
            ("建设路井盖2", 1255, 700),
            ("雄州大道井盖1", 2017, 300),
            ("雄州大道井盖2", 2017, 1100),
        ],
    )
    add(
        "pk",
        "parking_occupancy",
        [
            ("人民医院门前车位检测", 1380, 645),
            ("人民路禁停路段车位检测", 1120, 615),
            ("客运站广场车位检测", 2200, 305),
            ("东大街东段车位检测", 2200, 995),
            ("公园巷泊位", 700, 801),
            ("新市街泊位", 1506, 400),
            ("南门巷泊位", 900, 306),
            ("农贸市场停车场", 1640, 700),
            ("滨江后街泊位", 2350, 963),
            ("西城嘉苑泊位", 350, 200),
        ],
    )
    add(
        "ns",
        "noise",
        [
            ("东湖小区噪声监测", 400, 1060),
            ("滨江花园噪声监测", 2300, 900),
            ("西城嘉苑噪声监测", 300, 300),
            ("锦绣苑噪声监测", 1400, 250),
            ("农贸市场噪声监测", 1620, 700),
            ("简阳中学噪声监测", 800, 1150),
        ],
    )
    add(
        "bin",
        "bin_fill",
        [
            ("农贸市场垃圾桶", 1650, 690),
            ("夜市垃圾桶", 450, 1020),
            ("客运站垃圾桶", 2150, 200),
            ("医院门前垃圾桶", 1350, 670),
            ("雄州公园垃圾桶", 1010, 450),
            ("东大街垃圾桶", 1500, 1015),
            ("人民路垃圾桶", 800, 595),
            ("简阳中学垃圾桶", 760, 1060),
        ],
    )
    add(
        "wl",
        "water_level",
        [
            ("建设路下穿积水监测", 1255, 560),
            ("雄州大道低洼路段", 2017, 620),
            ("人民路南门低洼路段", 600, 615),
            ("新市街积水监测", 1506, 200),
        ],
    )
    return tuple(out)


CAMERAS = _cameras()
SENSORS = _sensors()


def _ring(x0: float, y0: float, x1: float, y1: float) -> list[list[float]]:
    """A counter-clockwise rectangle ring (RFC 7946 exterior rings are counter-clockwise)."""
    corners = [(x0, y0), (x1, y0), (x1, y1), (x0, y1), (x0, y0)]
    return [list(to_lonlat(x, y)) for x, y in corners]


def build() -> dict[str, Any]:
    """The whole FeatureCollection as plain data, in its fixed order."""
    features: list[dict[str, Any]] = []
    xs = _edges(COLUMN_WIDTHS)
    ys = _edges(ROW_HEIGHTS)
    for row in range(1, len(ROW_HEIGHTS) + 1):
        for col in range(1, len(COLUMN_WIDTHS) + 1):
            district = district_of(row, col)
            features.append(
                {
                    "type": "Feature",
                    "geometry": {
                        "type": "Polygon",
                        "coordinates": [_ring(xs[col - 1], ys[row - 1], xs[col], ys[row])],
                    },
                    "properties": {
                        "type": "grid",
                        "id": f"JY-{row:02d}{col:02d}",
                        "district": district,
                        "responsible_unit": f"{district}城管中队",
                    },
                }
            )
    for z in ZONES:
        props: dict[str, Any] = {"type": "zone", "id": z.id, "kind": z.kind, "name": z.name}
        if z.schedule is not None:
            props["schedule"] = z.schedule
        if z.priority is not None:
            props["priority"] = z.priority
        features.append(
            {
                "type": "Feature",
                "geometry": {"type": "Polygon", "coordinates": [_ring(*z.box)]},
                "properties": props,
            }
        )
    for d in CAMERAS:
        features.append(_point(d, {"type": "camera", "id": d.id, "name": d.name}))
    for d in SENSORS:
        features.append(_point(d, {"type": "sensor", "id": d.id, "kind": d.kind, "name": d.name}))
    return {
        "type": "FeatureCollection",
        "city": {
            "name": CITY_NAME,
            "time_zone": TIME_ZONE,
            "calendar": {"holidays": list(HOLIDAYS), "workdays": list(SWAPPED_WORKDAYS)},
        },
        "features": features,
    }


def _point(d: Device, props: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "Feature",
        "geometry": {"type": "Point", "coordinates": list(to_lonlat(d.x, d.y))},
        "properties": props,
    }


def _dump(obj: object) -> str:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))


def render() -> str:
    """The file's text: one feature per line, so a diff of the map shows which feature moved."""
    data = build()
    head = {k: v for k, v in data.items() if k != "features"}
    lines = [_dump(f) for f in data["features"]]
    return _dump(head)[:-1] + ',"features":[\n' + ",\n".join(lines) + "\n]}\n"


def main(argv: list[str] | None = None) -> int:
    """Write the map (default: the checked-in ``rules/demo/city.geojson``)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-o", "--output", type=Path, default=GEOJSON_PATH)
    args = parser.parse_args(argv)
    args.output.write_text(render(), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
