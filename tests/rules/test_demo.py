"""The demo city, the demo day and the default rule pack hold together.

Why these tests: the demo is what a city leader sees first and what the end-to-end tests and
benchmarks replay, so the map must be a valid tiling with every device placed, the day must be
a valid, reproducible replay file with exactly the bad input it means to carry, and the default
pack must load and speak only of zone and sensor kinds the demo city has.
"""

from __future__ import annotations

import base64
import itertools
from collections import Counter
from datetime import date, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from shapely.geometry import Point, shape
from shapely.ops import unary_union

from rules.demo import city as demo_city
from rules.demo import day as demo_day

CITY = demo_city.GEOJSON_PATH
PACK = Path(__file__).resolve().parents[2] / "rules" / "packs" / "default"
DAY = date(2026, 11, 20)
TOPICS = {"city.events.camera", "city.events.sensor", "city.events.report"}
ZONE_KINDS = {
    "main_road", "back_street", "no_parking", "vendor_permitted", "night_market", "school",
    "hospital", "station", "market", "residential", "scenic", "construction",
}
SENSOR_KINDS = {"streetlight", "manhole_cover", "parking_occupancy", "noise", "bin_fill",
                "water_level"}


def _features(kind: str) -> list[dict[str, Any]]:
    data = orjson.loads(CITY.read_bytes())
    return [f for f in data["features"] if f["properties"]["type"] == kind]


def _serialise(lines: list[dict[str, Any]]) -> list[bytes]:
    return [orjson.dumps(line) for line in lines]


@pytest.fixture(scope="module")
def day7() -> list[dict[str, Any]]:
    """The default demo day (seed 7), parsed back from its serialised form."""
    raw = _serialise(list(demo_day.generate_day(CITY, DAY, seed=7)))
    return [orjson.loads(b) for b in raw]


# --------------------------------------------------------------------------- the city


def test_checked_in_geojson_is_what_the_generator_writes() -> None:
    assert CITY.read_text(encoding="utf-8") == demo_city.render()


def test_generator_writes_the_file_byte_identically(tmp_path: Path) -> None:
    out = tmp_path / "city.geojson"
    demo_city.main(["-o", str(out)])
    demo_city.main(["-o", str(tmp_path / "again.geojson")])
    assert out.read_bytes() == (tmp_path / "again.geojson").read_bytes() == CITY.read_bytes()


def test_city_has_the_promised_size_and_kinds() -> None:
    data = orjson.loads(CITY.read_bytes())
    assert data["city"]["time_zone"] == "Asia/Shanghai"
    cal = data["city"]["calendar"]
    assert {f"2026-10-0{d}" for d in range(1, 8)} <= set(cal["holidays"])
    assert {"2026-09-27", "2026-10-10"} <= set(cal["workdays"])
    grids = _features("grid")
    assert len(grids) == 50
    assert len({g["properties"]["district"] for g in grids}) == 4
    assert all(g["properties"]["responsible_unit"].endswith("城管中队") for g in grids)
    zones = _features("zone")
    assert {z["properties"]["kind"] for z in zones} >= ZONE_KINDS
    night = [z for z in zones if z["properties"]["kind"] == "night_market"]
    assert night and all(z["properties"]["schedule"] == {"hours": "18:00-23:00"} for z in night)
    for kind in ("school", "hospital", "station"):
        assert all(z["properties"].get("priority") == "key"
                   for z in zones if z["properties"]["kind"] == kind)
    assert len(_features("camera")) == 40
    sensors = _features("sensor")
    assert len(sensors) == 60
    assert {s["properties"]["kind"] for s in sensors} == SENSOR_KINDS


def test_grids_tile_without_overlapping_interiors() -> None:
    polys = [shape(g["geometry"]) for g in _features("grid")]
    for a, b in itertools.combinations(polys, 2):
        assert a.intersection(b).area == pytest.approx(0.0, abs=1e-14)
    union = unary_union(polys)
    # No holes or slivers: the grids fill their bounding rectangle exactly.
    assert union.area == pytest.approx(sum(p.area for p in polys), rel=1e-9)
    assert union.area == pytest.approx(union.envelope.area, rel=1e-9)


def test_every_device_lies_inside_a_grid_and_off_its_edges() -> None:
    polys = [shape(g["geometry"]) for g in _features("grid")]
    for f in _features("camera") + _features("sensor"):
        pt = Point(f["geometry"]["coordinates"])
        inside = [p for p in polys if p.covers(pt)]
        assert len(inside) == 1, f["properties"]["id"]
        assert inside[0].contains(pt), f"{f['properties']['id']} sits on a grid edge"


def test_coordinates_are_lon_lat_rounded_to_six_decimals() -> None:
    data = orjson.loads(CITY.read_bytes())

    def numbers(x: object) -> list[float]:
        return [y for v in x for y in numbers(v)] if isinstance(x, list) else [x]  # type: ignore[list-item]

    for f in data["features"]:
        coords = numbers(f["geometry"]["coordinates"])
        assert all(round(c, 6) == c for c in coords)
        assert all(104 < lon < 105 for lon in coords[0::2])
        assert all(30 < lat < 31 for lat in coords[1::2])


def test_map_loads_with_the_city_map_loader() -> None:
    from rules.citymap import CityMap

    city = CityMap.load(CITY)
    assert len(city.grids) == 50
    assert len(city.cameras) == 40
    assert len(city.sensors) == 60


# --------------------------------------------------------------------------- the pack


def test_default_pack_loads_and_fits_the_demo_city() -> None:
    from rules.citymap import CityMap
    from rules.pack import check_against_map, load_rules

    rules = load_rules([PACK])
    assert check_against_map(rules, CityMap.load(CITY)) == []
    ids = {r.id for r in rules.rules}
    assert {"street-vending.main-road", "manhole.open", "streetlight.out-night",
            "camera.offline", "sensor.offline", "reports.repeated-citizen"} <= ids
    assert rules.reorder_window_ms == 5_000


def test_every_pack_zone_kind_exists_in_the_demo_city() -> None:
    """Read the YAML directly, so this holds even if the loader's warnings change."""
    import yaml

    kinds = {z["properties"]["kind"] for z in _features("zone")}
    for path in sorted(PACK.glob("*.yaml")):
        doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        for rule in doc.get("rules", []):
            for key in ("inside", "outside", "permitted"):
                missing = set(rule.get(key, [])) - kinds
                assert not missing, f"{path.name} {rule['id']} {key}: {missing}"
            assert rule["description"] and rule["policy"]


# --------------------------------------------------------------------------- the day


def test_same_seed_same_lines_other_seed_other_lines(day7: list[dict[str, Any]]) -> None:
    again = _serialise(list(demo_day.generate_day(CITY, DAY, seed=7)))
    assert again == _serialise(day7)
    other = _serialise(list(demo_day.generate_day(CITY, DAY, seed=8)))
    assert other != again


def test_cli_writes_the_same_bytes(tmp_path: Path, day7: list[dict[str, Any]]) -> None:
    out = tmp_path / "day.jsonl"
    demo_day.main(["--day", "2026-11-20", "--seed", "7", "-o", str(out)])
    text = out.read_bytes()
    assert text == b"".join(b + b"\n" for b in _serialise(day7))
    assert "东大街".encode() in text  # UTF-8, not \\u escapes


def test_every_line_is_valid_replay_format(day7: list[dict[str, Any]]) -> None:
    *inputs, last = day7
    assert set(last) == {"tick"}
    for line in inputs:
        assert line["topic"] in TOPICS
        assert line["key"] is None or isinstance(line["key"], str)
        payload = {"value", "raw", "raw_b64"} & set(line)
        assert len(payload) == 1, line
        assert set(line) == {"topic", "key", "arrival"} | payload
        assert datetime.fromisoformat(line["arrival"]).tzinfo is not None
        if "raw_b64" in line:
            base64.b64decode(line["raw_b64"], validate=True)
        if "value" in line:
            assert isinstance(line["value"], dict)


def _time_ms(text: str) -> int | None:
    dt = datetime.fromisoformat(text)
    return None if dt.tzinfo is None else int(dt.timestamp() * 1000)


def test_arrival_order_is_time_order_within_two_seconds(day7: list[dict[str, Any]]) -> None:
    *inputs, last = day7
    arrivals = [_time_ms(x["arrival"]) for x in inputs]
    assert arrivals == sorted(arrivals)  # type: ignore[type-var]
    newest = None
    times = []
    for line, arrival in zip(inputs, arrivals, strict=True):
        value = line.get("value")
        t = _time_ms(value["observed_at"]) if isinstance(value, dict) else None
        if t is None:
            continue
        assert arrival is not None and 0 < arrival - t <= demo_day.MAX_DELAY_MS
        if newest is not None:
            assert t >= newest - 2_000, line
        newest = t if newest is None else max(newest, t)
        times.append(t)
    assert _time_ms(last["tick"]) == max(times) + 5_000
    assert max(times) < int(datetime.fromisoformat("2026-11-21T00:00:00+08:00").timestamp() * 1000)


def _bad_reason(line: dict[str, Any], grids: Any, cams: set[str], sensors: set[str]) -> str | None:
    """An independent reading of what is wrong with a line (None: nothing)."""
    if "raw" in line or "raw_b64" in line:
        return "undecodable"
    v = line["value"]
    if _time_ms(v["observed_at"]) is None:
        return "naive_timestamp"
    if line["topic"] == "city.events.camera":
        if v["camera_id"] not in cams:
            return "unregistered_device"
        for d in v["detections"]:
            if not isinstance(d["confidence"], int | float):
                return "invalid_field"
            if not grids.covers(Point(d["location"]["lon"], d["location"]["lat"])):
                return "outside_map"
    elif line["topic"] == "city.events.sensor":
        if v["sensor_id"] not in sensors and "location" not in v:
            return "unregistered_device"
        if v["kind"] == "bin_fill" and not 0 <= v["value"] <= 1:
            return "invalid_field"
    else:
        if v["source"] not in {"inspector", "hotline", "app", "supervisor"}:
            return "invalid_field"
        loc = v.get("location")
        if loc is not None:
            if not -90 <= loc["lat"] <= 90:
                return "bad_coordinate"
            if not grids.covers(Point(loc["lon"], loc["lat"])):
                return "outside_map"
    return None


@pytest.fixture(scope="module")
def bad_reasons(day7: list[dict[str, Any]]) -> Counter[str | None]:
    grids = unary_union([shape(g["geometry"]) for g in _features("grid")])
    cams = {f["properties"]["id"] for f in _features("camera")}
    sensors = {f["properties"]["id"] for f in _features("sensor")}
    return Counter(_bad_reason(x, grids, cams, sensors) for x in day7[:-1])


def test_bad_lines_are_about_half_a_percent_of_several_kinds(
    day7: list[dict[str, Any]], bad_reasons: Counter[str | None]
) -> None:
    bad = sum(n for r, n in bad_reasons.items() if r is not None)
    assert 0.004 <= bad / (len(day7) - 1) <= 0.006, bad_reasons
    assert len([r for r in bad_reasons if r is not None]) >= 6, bad_reasons


def test_ingest_dead_letters_exactly_the_bad_lines(
    day7: list[dict[str, Any]], bad_reasons: Counter[str | None]
) -> None:
    """The real ingest agrees: the bad lines, and only they, become dead letters, under the
    reason codes the day means to cover."""
    from models.decode import TOPIC_SOURCES, BadInput
    from rules.citymap import CityMap
    from rules.ingest import Ingest
    from rules.pack import load_rules
    from rules.replay import parse_line

    ingest = Ingest(CityMap.load(CITY), load_rules([PACK]))
    codes: Counter[str] = Counter()
    for n, line in enumerate(day7[:-1], 1):
        msg = parse_line(orjson.dumps(line), "day", n)
        assert msg.topic is not None
        result = ingest(TOPIC_SOURCES[msg.topic], msg.topic, msg.payload, key=msg.key,
                        arrival=msg.arrival)
        if isinstance(result, BadInput):
            codes[result.reason_code] += 1
    assert {"bad_json", "bad_encoding", "naive_timestamp", "invalid_field", "outside_map",
            "unregistered_device", "bad_coordinate"} <= set(codes)
    assert sum(codes.values()) == sum(n for r, n in bad_reasons.items() if r is not None), codes


def test_default_day_size_and_mix(day7: list[dict[str, Any]]) -> None:
    topics = Counter(x.get("topic", "tick") for x in day7)
    assert 60_000 <= len(day7) <= 100_000, topics
    assert topics["tick"] == 1
    assert topics["city.events.sensor"] > 10_000
    assert 30 <= topics["city.events.report"] <= 200
    cams = [x["value"] for x in day7 if x.get("topic") == "city.events.camera" and "value" in x]
    heartbeats = sum(1 for v in cams if not v["detections"])
    assert heartbeats > 40 * 1_000  # every camera beats about once a minute
    labels = Counter(d["label"] for v in cams for d in v["detections"])
    assert {"street_vendor", "vendor_stall", "parked_car", "abandoned_vehicle", "heavy_truck",
            "garbage_pile", "illegal_poster", "outdoor_bbq", "stray_dog"} <= set(labels)
    confidences = [d["confidence"] for v in cams for d in v["detections"]
                   if isinstance(d["confidence"], float)]
    assert min(confidences) >= 0.6 and max(confidences) <= 0.98


def test_tracks_keep_their_id_and_stay_put(day7: list[dict[str, Any]]) -> None:
    seen: dict[tuple[str, str], list[tuple[str, float, float]]] = {}
    for x in day7:
        v = x.get("value")
        if x.get("topic") != "city.events.camera" or not isinstance(v, dict):
            continue
        for d in v["detections"]:
            if isinstance(d.get("track_id"), str) and not d["track_id"].startswith("t-x"):
                loc = d["location"]
                seen.setdefault((v["camera_id"], d["track_id"]), []).append(
                    (d["label"], loc["lat"], loc["lon"]))
    assert len(seen) > 50
    for key, obs in seen.items():
        assert len({label for label, _, _ in obs}) == 1, key
    # The abandoned vehicle is seen all day within a few metres.
    car = [o for k, o in seen.items() if o[0][0] == "abandoned_vehicle"]
    assert len(car) == 1 and len(car[0]) > 2_000
    lats = [lat for _, lat, _ in car[0]]
    assert (max(lats) - min(lats)) * 111_320 < 2 * demo_day.JITTER_M + 0.5


def test_scale_multiplies_the_cameras_frames() -> None:
    def detection_frames(scale: float) -> int:
        return sum(1 for _, x in demo_day.generate_events(CITY, DAY, seed=7, scale=scale)
                   if x["topic"] == "city.events.camera" and isinstance(x.get("value"), dict)
                   and x["value"]["detections"])

    one, two = detection_frames(1.0), detection_frames(2.0)
    assert 1.7 * one < two < 2.6 * one


def test_a_story_that_misses_its_zone_is_refused() -> None:
    city = demo_day.DemoCity(CITY)
    wrong = demo_day.Track("cam-0011", "street_vendor", "10:00", "10:30", (0, 200),
                           expect=("main_road",))
    with pytest.raises(ValueError, match="needs"):
        demo_day._check_track(city, wrong)
    on_edge = demo_day.Track("cam-0009", "parked_ebike", "10:00", "10:40", (-20, -12))
    with pytest.raises(ValueError, match="edge"):
        demo_day._check_track(city, on_edge)


def test_replayed_day_raises_every_story(day7: list[dict[str, Any]]) -> None:
    """The day is worth replaying: every rule but the 3-day 僵尸车 fires at least once, and
    the non-stories (a drop-off, vendors inside the open night market, a truck on a road
    outside the restricted zone) do not."""
    from rules.citymap import CityMap
    from rules.pack import load_rules
    from rules.replay import Replay

    rules = load_rules([PACK])
    alerts: list[dict[str, Any]] = []
    replay = Replay(CityMap.load(CITY), rules, on_alert=alerts.append, on_dead=lambda d: None)
    for n, line in enumerate(day7, 1):
        replay.line(orjson.dumps(line), n)
    replay.finish()
    opened = [a for a in alerts if a["transition"] == "opened"]
    fired = {a["rule_id"] for a in opened}
    assert {r.id for r in rules.rules} - fired == {"parking.abandoned-vehicle"}
    cameras = Counter((a["rule_id"], a["evidence"][0].get("camera_id")) for a in opened)
    assert cameras[("traffic.heavy-truck-centre", "cam-0022")] == 0  # 雄州大道 is not restricted
    assert cameras[("street-vending.main-road", "cam-0003")] == 0  # arrived after 18:00
    assert cameras[("street-vending.main-road", "cam-0014")] == 0  # 便民摊点
    assert cameras[("street-vending.main-road", "cam-0002")] == 2  # before 18:00, after 23:00
    # The standards' items added with case codes: each story once, each non-story never.
    assert cameras[("street-hanging", "cam-0025")] == 1
    assert cameras[("street-hanging", "cam-0037")] == 0  # inside a compound, not on a street
    assert cameras[("fire-lane.blocked", "cam-0040")] == 1  # 50 min, not the 3-minute stop
    assert cameras[("construction.road-occupation", "cam-0018")] == 1
    assert cameras[("construction.road-occupation", "cam-0030")] == 0  # permitted works
    by_rule = {a["rule_id"]: a for a in opened}
    # 道路不洁 at 10:50 with 2 工作时: 70 min before the 12:00 lunch break, 50 after 14:00.
    spill = by_rule["road.unclean"]
    assert spill["opened_at"][11:16] == "10:50"
    assert spill["deadline"][11:16] == "14:50"
    assert all(a["case_code"] for a in opened)
