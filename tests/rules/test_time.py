"""The Time section of CONTRACTS.md: reorder window, progress, lateness, duplicates, clocks."""

from __future__ import annotations

from pathlib import Path

from tests.rules.harness import Harness, T, iso
from tests.rules.test_operators import frames


def test_input_waits_for_the_watermark(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    h.sensor(T("10:00:00"), "mh-1", "manhole_cover", state="open")
    assert h.alerts == []                      # clock 10:00:00, watermark 09:59:55
    h.sensor(T("10:00:04.999"), "mh-1", "manhole_cover", state="open")
    assert h.alerts == []
    h.sensor(T("10:00:05"), "mh-1", "manhole_cover", state="open")
    assert h.transitions("manhole.open") == [("opened", iso(T("10:00:00")))]


def test_out_of_order_input_within_the_window_is_applied_in_time_order(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    h.sensor(T("10:00:03"), "mh-1", "manhole_cover", state="ok")
    h.sensor(T("10:00:00"), "mh-1", "manhole_cover", state="open")
    h.finish()
    assert h.transitions("manhole.open") == [("opened", iso(T("10:00:00"))),
                                             ("cleared", iso(T("10:00:03")))]


def test_input_behind_progress_is_applied_at_progress(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    h.sensor(T("10:00:30"), "sl-1", "streetlight", state="on")
    h.sensor(T("10:00:00"), "mh-1", "manhole_cover", state="open")   # 30 s old: not late
    h.finish()
    opened = h.last("opened")
    assert opened["at"] == iso(T("10:00:25"))           # progress when it was applied
    assert opened["first_seen"] == iso(T("10:00:00"))   # it counts with its own time
    assert h.engine.stats.late == {}


def test_input_older_than_the_allowed_lateness_is_late_and_counted_per_device(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    h.sensor(T("10:02:00"), "sl-1", "streetlight", state="on")
    h.sensor(T("10:00:59.999"), "mh-1", "manhole_cover", state="open")
    h.sensor(T("10:01:00"), "mh-1", "manhole_cover", state="open")     # exactly 60 s: applied
    h.finish()
    assert h.engine.stats.late == {"mh-1": 1}
    assert h.last("opened")["first_seen"] == iso(T("10:01:00"))


def test_late_input_never_moves_an_episode_start(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    frames(h, "10:00:30", "10:05:30")
    h.cam(T("10:05:00"))   # older than progress (10:05:25), not late
    h.cam(T("10:00:00"))   # 5.5 min old: late
    frames(h, "10:06:30", "10:10:30")
    h.finish()
    opened = h.last("opened")
    assert opened["at"] == iso(T("10:10:30"))
    assert opened["first_seen"] == iso(T("10:00:30"))


def test_duplicate_event_ids_are_ignored_and_counted(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    h.sensor(T("10:00:00"), "mh-1", "manhole_cover", state="open", eid="e1")
    h.sensor(T("10:00:01"), "mh-1", "manhole_cover", state="ok", eid="e1")  # same id: ignored
    h.finish()
    assert h.kinds("manhole.open") == ["opened"]
    assert h.engine.stats.duplicates["city.events.sensor"] == 1


def test_wall_clock_is_driven_by_arrivals_and_ticks(tmp_path: Path) -> None:
    h = Harness(tmp_path, clock="wall")
    h.send("city.events.sensor", {"event_id": "e1", "sensor_id": "mh-1", "kind": "manhole_cover",
                                  "observed_at": iso(T("10:00:00")), "state": "open"},
           arrival=T("10:00:01"))
    assert h.alerts == []                                  # clock 10:00:01, watermark 09:59:56
    h.raw_line({"tick": iso(T("10:00:04.999"))})
    assert h.alerts == []
    h.raw_line({"tick": iso(T("10:00:05"))})
    assert h.transitions("manhole.open") == [("opened", iso(T("10:00:00")))]


def test_wall_clock_escalates_with_ticks_and_no_input(tmp_path: Path) -> None:
    h = Harness(tmp_path, clock="wall")
    h.send("city.events.sensor", {"event_id": "e1", "sensor_id": "mh-1", "kind": "manhole_cover",
                                  "observed_at": iso(T("10:00:00")), "state": "open"},
           arrival=T("10:00:00"))
    h.raw_line({"tick": iso(T("10:15:05"))})
    assert h.kinds("manhole.open") == ["opened", "escalated"]
    assert h.last("escalated")["at"] == iso(T("10:15:00"))


def test_future_timestamp_in_wall_mode(tmp_path: Path) -> None:
    h = Harness(tmp_path, clock="wall")
    h.send("city.events.sensor", {"event_id": "e1", "sensor_id": "mh-1", "kind": "manhole_cover",
                                  "observed_at": iso(T("10:05:00.001")), "state": "open"},
           arrival=T("10:00:00"))
    h.send("city.events.sensor", {"event_id": "e2", "sensor_id": "mh-1", "kind": "manhole_cover",
                                  "observed_at": iso(T("10:05:00")), "state": "open"},
           arrival=T("10:00:00"))
    assert [(d["reason_code"], d["event_id"]) for d in h.dead] == [("future_timestamp", "e1")]


def test_end_of_replay_runs_timers_up_to_until(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    h.sensor(T("10:00:00"), "mh-1", "manhole_cover", state="open")
    h.finish(T("10:14:59.999"))
    assert h.kinds("manhole.open") == ["opened"]
    h2 = Harness(tmp_path)
    h2.sensor(T("10:00:00"), "mh-1", "manhole_cover", state="open")
    h2.finish(T("10:15:00"))
    assert h2.kinds("manhole.open") == ["opened", "escalated"]


def test_bad_input_goes_to_dead_letters_with_its_position(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    h.raw_line({"topic": "city.events.camera", "key": "cam-1", "raw": "not json {"})
    h.raw_line({"topic": "city.events.sensor", "key": "x", "raw_b64": "//4A"})
    h.send("city.events.camera", {"event_id": "c1", "camera_id": "cam-9",
                                  "observed_at": iso(T("10:00:00")), "detections": []})
    h.send("city.events.report", {"event_id": "r1", "source": "app", "category": "garbage_pile",
                                  "observed_at": iso(T("10:00:00")),
                                  "location": {"lat": 31.0, "lon": 104.0}})
    h.report(T("10:00:00"), category="unicorns")
    assert [(d["reason_code"], d["offset"], d["payload_encoding"]) for d in h.dead] == [
        ("bad_json", 0, "utf-8"), ("bad_encoding", 1, "base64"),
        ("unregistered_device", 2, "utf-8"), ("outside_map", 3, "utf-8")]
    assert h.dead[1]["payload"] == "//4A"
    assert h.replay.ingest.ignored[("category", "unicorns")] == 1


def test_a_late_trigger_older_than_an_applied_clear_starts_nothing(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    h.sensor(T("10:00:00"), "mh-1", "manhole_cover", state="open")
    h.sensor(T("10:00:20"), "mh-1", "manhole_cover", state="ok")
    h.sensor(T("10:00:40"), "sl-1", "streetlight", state="on")      # progress 10:00:35
    h.sensor(T("10:00:10"), "mh-1", "manhole_cover", state="tilted")  # late, before the clear
    h.finish(T("10:30:00"))
    assert h.kinds("manhole.open") == ["opened", "cleared", "escalated"]


def test_a_late_observation_inside_an_ended_episode_does_not_revive_it(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    frames(h, "10:00:00", "10:10:00")          # opens at 10:10, episode ends 10:12
    h.cam(T("10:12:30"), track="other")         # moves progress past the end
    h.cam(T("10:11:30"))                        # 60 s behind the clock: applied, but too late
    h.finish(T("10:13:00"))
    assert h.kinds("vend.main") == ["opened", "cleared"]
