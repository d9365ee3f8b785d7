"""A replay evaluates like a worker: one engine (and clock) per partition, grids hashed as the
worker hashes them (issue 13, item 2); and its summary adds up, one outcome per line (item 4)."""

from __future__ import annotations

from datetime import date
from itertools import islice
from pathlib import Path
from typing import Any

import orjson
import pytest

from rules.citymap import CityMap
from rules.demo.city import GEOJSON_PATH as DEMO_CITY
from rules.demo.dispatch import generate_with_feedback
from rules.engine import Engine
from rules.pack import DEFAULT_PACK, load_rules
from rules.partitioning import DEFAULT_PARTITIONS, grid_partition
from rules.replay import Replay, Summary
from tests.rules.harness import Harness, T, iso


def balanced(s: Summary) -> bool:
    return s.accepted + s.ignored + s.late + s.duplicates + s.dead_letters == s.lines - s.ticks


def test_the_harness_grids_lie_on_two_partitions() -> None:
    assert grid_partition("G-1", 4) != grid_partition("G-2", 4)


def _cross_partition_late(tmp_path: Path, partitions: int) -> Harness:
    """The issue's case: a heartbeat of a camera at 10:10 (grid G-2), then a manhole of another
    grid (G-1) opens at 10:00."""
    h = Harness(tmp_path, partitions=partitions)
    h.cam(T("10:10:00"), detections=[], cam="cam-2")
    h.sensor(T("10:00:00"), "mh-1", "manhole_cover", "open")
    h.finish()
    return h


def test_late_input_is_classified_per_partition_as_a_worker_does(tmp_path: Path) -> None:
    one = _cross_partition_late(tmp_path, 1)
    assert one.replay.stats.late == {"mh-1": 1} and one.kinds("manhole.open") == []
    assert one.replay.summary.late == 1
    four = _cross_partition_late(tmp_path, 4)
    assert not four.replay.stats.late
    assert four.kinds("manhole.open")[:1] == ["opened"]
    assert four.replay.summary.late == 0 and four.replay.summary.accepted == 1
    assert four.replay.summary.ignored == 1     # the heartbeat


def test_each_partition_has_its_own_clock_and_the_default_is_the_workers(tmp_path: Path) -> None:
    h = Harness(tmp_path, partitions=DEFAULT_PARTITIONS)
    assert h.replay.partitions == 4 == len(h.replay.engines)
    h.cam(T("10:10:00"), detections=[], cam="cam-2")
    assert h.replay.engine_for("G-2").clock == T("10:10:00")
    assert h.replay.engine_for("G-1").clock is None
    h.tick(T("10:20:00"))
    assert {e.clock for e in h.replay.engines} == {T("10:20:00")}   # a tick reaches every one
    with pytest.raises(AttributeError, match="engines"):
        _ = h.replay.engine


def test_the_end_runs_every_engine_to_the_replays_last_input(tmp_path: Path) -> None:
    """Not each engine to its own: a partition whose last input came early still fires the
    timers due before the replay's last input (CONTRACTS.md, End of a replay)."""
    h = Harness(tmp_path, partitions=4)
    h.sensor(T("10:00:00"), "mh-1", "manhole_cover", "open")      # G-1: opens, escalates at 10:15
    h.cam(T("11:00:00"), detections=[], cam="cam-2")              # G-2: the last input
    h.finish()
    assert h.kinds("manhole.open")[:2] == ["opened", "escalated"]


def test_output_of_a_tick_and_of_the_end_is_in_partition_order(tmp_path: Path) -> None:
    h = Harness(tmp_path, partitions=4)
    h.sensor(T("10:00:00"), "mh-1", "manhole_cover", "open")      # G-1: partition 2
    h.sensor(T("10:00:00"), "pk-1", "parking_occupancy", "occupied")
    h.report(T("10:00:00"), grid_id="G-2", source="app")
    h.report(T("10:00:01"), grid_id="G-2", source="app")
    h.report(T("10:00:02"), grid_id="G-2", source="app")          # G-2: partition 0, opens
    h.tick(T("10:01:00"))
    assert [a["grid_id"] for a in h.alerts] == ["G-2", "G-1"]


@pytest.fixture(scope="module")
def demo_day() -> list[bytes]:
    """The first 20,000 lines of a demo day, with its dispatch feedback (a suite's worth)."""
    day = generate_with_feedback(DEMO_CITY, DEFAULT_PACK, date(2026, 11, 20), 5, 0.2)
    return [orjson.dumps(line) for line in islice(day, 20_000)]


def _replay(lines: list[bytes], **kw: Any) -> tuple[list[dict[str, Any]], Replay]:
    city, rules = CityMap.load(DEMO_CITY), load_rules([DEFAULT_PACK])
    out: list[dict[str, Any]] = []
    rp = Replay(city, rules, on_alert=out.append, on_dead=out.append, **kw)
    for n, line in enumerate(lines, 1):
        rp.line(line, n)
        assert balanced(rp.summary), n
    rp.finish()
    assert balanced(rp.summary)
    return out, rp


def test_one_partition_is_the_single_engine_of_before(demo_day: list[bytes]) -> None:
    city, rules = CityMap.load(DEMO_CITY), load_rules([DEFAULT_PACK])
    one, _ = _replay(demo_day, partitions=1)
    bare, _ = _replay(demo_day, engine=Engine(city, rules))
    assert one == bare and len(one) > 50


def test_the_demo_day_adds_up_on_every_partition_count(demo_day: list[bytes]) -> None:
    for partitions in (4, 16):
        out, rp = _replay(demo_day, partitions=partitions)
        s = rp.summary
        assert s.accepted > 0 and s.ignored > 0 and s.dead_letters > 0
        assert s.faults == 0
        assert s.alerts_out == sum(1 for m in out if "alert_id" in m and "version" in m)


def test_every_outcome_and_a_split_message_add_up(tmp_path: Path) -> None:
    """One line, one outcome: a camera message split over two grids (partitions) is one
    accepted line; a duplicate, a late input, a heartbeat, an unknown label, bad input,
    feedback that turns out a duplicate or unknown later all count once."""
    h = Harness(tmp_path, partitions=4)
    s = h.replay.summary
    split = [{"label": "street_vendor", "track_id": "a", "confidence": 0.9,
              "location": {"lat": 30.005, "lon": 104.005}},
             {"label": "street_vendor", "track_id": "b", "confidence": 0.9,
              "location": {"lat": 30.005, "lon": 104.015}}]
    h.cam(T("10:00:00"), detections=split, eid="split-1")
    assert (s.accepted, len(h.replay.engine_for("G-1").pending),
            len(h.replay.engine_for("G-2").pending)) == (1, 1, 1)
    h.cam(T("10:00:00"), detections=split, eid="split-1")                    # duplicate
    h.cam(T("10:00:01"), detections=[], cam="cam-1")                          # heartbeat: ignored
    h.cam(T("10:00:02"), label="unicorn")                                     # unknown label
    h.raw_line({"topic": "city.events.camera", "key": None, "raw": "{"})    # dead letter
    h.sensor(T("10:00:00"), "mh-1", "manhole_cover", "open")
    h.sensor(T("10:05:00"), "mh-1", "manhole_cover", "ok")
    h.sensor(T("10:00:30"), "mh-1", "manhole_cover", "open")                  # late
    h.tick(T("10:06:00"))
    aid = next(a["alert_id"] for a in h.alerts if a["rule_id"] == "manhole.open")
    h.fb(T("10:06:00"), aid, "acknowledge", eid="fb-1")
    h.fb(T("10:06:01"), aid, "acknowledge", eid="fb-2")                      # illegal later
    h.fb(T("10:06:00"), aid, "acknowledge", eid="fb-1")                      # duplicate
    h.fb(T("10:06:02"), "a-G-2-0123456789abcdef0123", "resolve", eid="fb-3")  # unknown later
    assert balanced(s) and s.accepted == 6     # fb-2, fb-3 taken in, not yet known bad
    h.finish()
    assert (s.lines, s.ticks, s.accepted, s.ignored, s.late, s.duplicates) == \
        (13, 1, 4, 2, 1, 2)
    assert s.dead == {"bad_json": 1, "illegal_transition": 1, "unknown_alert": 1}
    assert balanced(s)


def test_a_replay_file_error_changes_nothing(tmp_path: Path) -> None:
    h = Harness(tmp_path, partitions=4)
    h.sensor(T("10:00:00"), "mh-1", "manhole_cover", "open")
    before = (h.replay.summary.lines, [e.clock for e in h.replay.engines])
    for bad in ({"topic": "city.events.nope", "value": {}}, {"topic": "city.events.camera"},
                {"tick": "yesterday"}):
        with pytest.raises(ValueError):
            h.raw_line(bad)
    assert (h.replay.summary.lines, [e.clock for e in h.replay.engines]) == before
    assert balanced(h.replay.summary)


def test_rule_tests_and_the_demo_run_on_partitions(tmp_path: Path) -> None:
    """ruletest defaults to one engine and takes ``partitions: N``."""
    from rules.ruletest import RuleTestError, run_file

    pack = tmp_path / "pack.yaml"
    from tests.rules.harness import POLICIES, RULES
    pack.write_text(POLICIES + RULES, encoding="utf-8")
    city = tmp_path / "city.geojson"
    from tests.rules.harness import city_geojson
    city.write_bytes(orjson.dumps(city_geojson()))
    heartbeat = {"topic": "city.events.camera", "key": "cam-2",
                 "value": {"event_id": "hb", "camera_id": "cam-2", "observed_at": iso(T("10:10:00")),
                           "detections": []}}
    manhole = {"topic": "city.events.sensor", "key": "mh-1",
               "value": {"event_id": "mh", "sensor_id": "mh-1", "kind": "manhole_cover",
                         "observed_at": iso(T("10:00:00")), "state": "open"}}
    for partitions, expect in ((None, []), (4, [{"rule_id": "manhole.open", "transition": "opened"}])):
        doc: dict[str, Any] = {"rules": ["pack.yaml"], "city": "city.geojson",
                               "tests": [{"name": "late or not", "input": [heartbeat, manhole],
                                          "expect": expect}]}
        if partitions:
            doc["partitions"] = partitions
        path = tmp_path / "t.yaml"
        path.write_bytes(orjson.dumps(doc))
        results = run_file(path)
        assert results[0].ok, (partitions, results[0].problems)
    path.write_bytes(orjson.dumps({**doc, "partitions": 0}))
    with pytest.raises(RuleTestError, match="partitions"):
        run_file(path)
