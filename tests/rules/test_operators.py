"""The four operators at their boundaries, through the real decode → ingest → engine path."""

from __future__ import annotations

import hashlib
from pathlib import Path

from tests.rules.harness import Harness, T, iso

MAIN_ROAD = (30.005, 104.005)
NIGHT_MARKET = (30.005, 104.001)


def frames(h: Harness, start: str, end: str, every_s: int = 60, **kw: object) -> None:
    t, stop = T(start), T(end)
    while t <= stop:
        h.cam(t, **kw)  # type: ignore[arg-type]
        t += every_s * 1000


# -- persist ---------------------------------------------------------------------------------

def test_persist_does_not_fire_at_9m59s(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    frames(h, "10:00:00", "10:09:00")
    h.cam(T("10:09:59"))
    h.finish(T("10:30:00"))
    assert h.kinds("vend.main") == []


def test_persist_fires_at_exactly_10m(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    frames(h, "10:00:00", "10:10:00")
    h.finish()
    opened = h.last("opened")
    assert opened["at"] == iso(T("10:10:00"))
    assert opened["opened_at"] == iso(T("10:10:00"))
    assert opened["first_seen"] == iso(T("10:00:00"))
    assert opened["last_seen"] == iso(T("10:10:00"))
    assert opened["occurrences"] == 11
    assert opened["version"] == 1 and opened["level"] == 1
    assert opened["notify"] == ["grid_inspector"]
    assert opened["zones"] == ["main-road-1"]
    assert opened["grid_id"] == "G-1" and opened["district"] == "一街道"
    assert opened["deadline"] == iso(T("12:10:00"))
    assert len(opened["evidence"]) == 10
    # first and the latest nine, newest first
    assert [e["observed_at"] for e in opened["evidence"]][:2] == [iso(T("10:10:00")), iso(T("10:09:00"))]
    assert opened["evidence"][-1]["observed_at"] == iso(T("10:00:00"))
    assert opened["evidence"][0]["track_id"] == "t1"


def test_pause_of_exactly_gap_continues_the_episode(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    for hm in ("10:00:00", "10:02:00", "10:04:00", "10:06:00", "10:08:00", "10:10:00"):
        h.cam(T(hm))
    h.finish()
    assert h.transitions("vend.main") == [("opened", iso(T("10:10:00")))]


def test_pause_longer_than_gap_starts_a_new_episode(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    h.cam(T("10:00:00"))
    for hm in ("10:02:00.001", "10:04:00", "10:06:00", "10:08:00", "10:10:00", "10:12:00"):
        h.cam(T(hm))
    h.finish()
    # The new episode started at 10:02:00.001, so 10 minutes are reached at 10:12:00.001.
    assert h.kinds("vend.main") == []


def test_episode_end_clears_the_alert_at_last_plus_gap(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    frames(h, "10:00:00", "10:10:00")
    h.tick(T("10:20:00"))
    h.finish()
    assert h.transitions("vend.main") == [("opened", iso(T("10:10:00"))),
                                          ("cleared", iso(T("10:12:00")))]
    assert h.last("cleared")["status"] == "open"


def test_input_at_the_same_instant_as_the_episode_end_comes_first(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    frames(h, "10:00:00", "10:10:00")
    h.cam(T("10:12:00"))  # exactly last + gap: continues, so no 'cleared' at 10:12
    h.tick(T("10:20:00"))
    h.finish()
    assert h.transitions("vend.main")[1] == ("updated", iso(T("10:12:00")))
    assert ("cleared", iso(T("10:14:00"))) in h.transitions("vend.main")
    assert ("cleared", iso(T("10:12:00"))) not in h.transitions("vend.main")


def test_low_confidence_does_not_match(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    frames(h, "10:00:00", "10:12:00", conf=0.49)
    h.finish()
    assert h.kinds() == []


def test_permitted_night_market_only_while_it_exists(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    frames(h, "19:00:00", "19:15:00", loc=NIGHT_MARKET)   # night market open: permitted
    h.finish()
    assert h.kinds() == []
    h2 = Harness(tmp_path)
    frames(h2, "10:00:00", "10:15:00", loc=NIGHT_MARKET)  # 10:00: no night market yet
    h2.finish()
    opened = h2.last("opened")
    assert opened["zones"] == ["main-road-1"]  # night-1 does not exist at 10:10


def test_alert_id_is_derived_from_rule_subject_and_episode_start(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    frames(h, "10:00:00", "10:10:00", track=None)
    h.finish()
    subject = "label:street_vendor/main-road-1"
    digest = hashlib.sha256(f"vend.main\n{subject}\n{T('10:00:00')}".encode()).hexdigest()[:20]
    assert h.last("opened")["alert_id"] == f"a-G-1-{digest}"
    h2 = Harness(tmp_path)
    frames(h2, "10:00:00", "10:10:00", track="t-881")
    h2.finish()
    digest = hashlib.sha256(f"vend.main\ncam:cam-1/t-881\n{T('10:00:00')}".encode()).hexdigest()[:20]
    assert h2.last("opened")["alert_id"] == f"a-G-1-{digest}"


# -- count -----------------------------------------------------------------------------------

def test_count_fires_at_the_third_report_within_the_hour(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    for hms in ("10:00:00", "10:30:00", "10:59:59.999"):
        h.report(T(hms))
    h.finish(T("12:00:00"))
    assert h.transitions("report.repeat")[:2] == [("opened", iso(T("10:59:59.999"))),
                                              ("cleared", iso(T("11:00:00")))]
    opened = h.last("opened")
    assert opened["occurrences"] == 3
    assert opened["evidence"][0]["address"] == "东大街 12 号"


def test_count_window_excludes_its_left_edge(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    for hms in ("10:00:00", "10:30:00", "11:00:00"):
        h.report(T(hms))
    h.finish(T("12:00:00"))
    assert h.kinds("report.repeat") == []


def test_count_ignores_sources_the_rule_does_not_name(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    h.report(T("10:00:00"))
    h.report(T("10:10:00"), source="inspector")
    h.report(T("10:20:00"))
    h.finish(T("12:00:00"))
    assert h.kinds("report.repeat") == []


def test_report_by_grid_id_sits_at_the_grid_point(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    for hms in ("10:00:00", "10:10:00", "10:20:00"):
        h.report(T(hms), grid_id="G-1")
    h.finish()
    opened = h.last("opened")
    grid = h.city.grids["G-1"]
    assert opened["location"] == {"lat": grid.lat, "lon": grid.lon}
    assert opened["zones"] == []
    assert opened["address"] == "东大街 12 号"


# -- holds -----------------------------------------------------------------------------------

def test_holds_fires_after_its_duration_inside_the_schedule(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    h.sensor(T("20:00:00"), "sl-1", "streetlight", state="off")
    h.sensor(T("20:30:00"), "sl-1", "streetlight", state="off")
    h.finish(T("22:00:00"))
    assert h.transitions("light.out")[0] == ("opened", iso(T("21:00:00")))
    assert "cleared" not in h.kinds("light.out")
    assert h.last("opened")["occurrences"] == 2
    assert h.last("opened")["evidence"][0]["state"] == "off"


def test_holds_due_outside_the_schedule_waits_for_it(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    h.sensor(T("17:30:00"), "sl-1", "streetlight", state="fault")  # due 18:30, schedule opens 19:00
    h.finish(T("20:00:00"))
    assert h.transitions("light.out")[0] == ("opened", iso(T("19:00:00")))


def test_holds_cleared_before_due_never_fires(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    h.sensor(T("17:30:00"), "sl-1", "streetlight", state="off")
    h.sensor(T("18:50:00"), "sl-1", "streetlight", state="on")
    h.finish(T("20:00:00"))
    assert h.kinds("light.out") == []


def test_holds_zero_fires_at_once_and_clears_on_the_clearing_state(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    h.sensor(T("10:00:00"), "mh-1", "manhole_cover", state="tilted")
    h.sensor(T("10:05:00"), "mh-1", "manhole_cover", state="ok")
    h.finish()
    assert h.transitions("manhole.open") == [("opened", iso(T("10:00:00"))),
                                             ("cleared", iso(T("10:05:00")))]
    assert h.last("opened")["severity"] == "critical"


# -- silent ----------------------------------------------------------------------------------

def test_silent_fires_at_last_message_plus_duration_and_clears_on_the_next(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    h.cam(T("10:00:00"), cam="cam-2", detections=[])
    h.cam(T("10:04:59"), cam="cam-2", detections=[])
    h.tick(T("10:20:00"))
    h.cam(T("10:20:00"), cam="cam-2", detections=[])
    h.finish()
    assert h.transitions("camera.offline") == [("opened", iso(T("10:09:59"))),
                                               ("cleared", iso(T("10:20:00")))]
    opened = h.last("opened")
    assert opened["first_seen"] == iso(T("10:04:59"))  # the last message before the silence
    assert opened["occurrences"] == 1


def test_unknown_labels_still_prove_a_camera_alive(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    for m in range(0, 20, 2):
        h.cam(T(f"10:{m:02d}:00"), cam="cam-2", label="unicorn")
    h.finish()
    assert h.kinds("camera.offline") == []
    assert h.replay.ingest.ignored[("label", "unicorn")] == 10
