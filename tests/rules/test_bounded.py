"""Bounded state: a flood of fake track ids in one grid, idle subjects, alert retention."""

from __future__ import annotations

import resource
from pathlib import Path

from models.decode import Source
from rules.engine import DAY_MS, Engine
from rules.inputs import Input, Obs
from rules.timers import END, FIRE, IDLE
from tests.rules.harness import Harness, T
from tests.rules.test_operators import frames

CAP = 2_000


def _flood_input(n: int, t: int) -> Input:
    obs = Obs(kind="street_vendor", lat=30.005, lon=104.005, zone_ids=("main-road-1",),
              track_id=f"fake-{n}", confidence=0.9)
    return Input(source=Source.CAMERA, topic="city.events.camera", event_id=f"e-{n}", time=t,
                 grid_id="G-1", device_id="cam-1", alive=True, obs=(obs,))


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def test_a_flood_of_fake_track_ids_cannot_exhaust_memory(tmp_path: Path) -> None:
    """400,000 fake ids, one a millisecond: the state settles within the 70 s it remembers
    ids for, so the last 300,000 show whether anything grows (a million took 30 s)."""
    h = Harness(tmp_path, subject_cap=CAP)
    engine: Engine = h.engine
    t0 = T("10:00:00")
    sizes = []
    rss_after_warmup = 0.0
    for n in range(400_000):
        engine.feed(_flood_input(n, t0 + n))   # 1,000 fake tracks a second for 6.7 minutes
        if n == 100_000:
            rss_after_warmup = _rss_mb()
        if n % 100_000 == 99_999:
            g = engine.grids["G-1"]
            sizes.append((g.subject_count(), len(g.lru), len(engine.timers), engine.sizes().dedup_ids))
    g = engine.grids["G-1"]
    # Unregistered subjects are capped per grid (one vendor rule here; camera.offline's
    # cam-1 liveness subject is registered and never evicted).
    assert len(g.lru) <= CAP
    assert g.subject_count() <= CAP + 1
    # every applied fake id beyond the cap evicted one (the last 5 s wait for the watermark)
    assert engine.stats.evicted == engine.stats.applied - CAP
    # Timers of evicted subjects are compacted away; duplicate ids are kept only for the
    # reorder window plus the allowed lateness, and while waiting (70 s: 70,000 ids here),
    # forgotten a whole second at a time (one second more: 1,000).
    assert max(s[2] for s in sizes) < 50_000
    assert max(s[3] for s in sizes) <= 71_001
    grown = _rss_mb() - rss_after_warmup
    assert grown < 64, f"resident memory grew {grown:.0f} MB after warm-up"


def test_idle_subjects_are_dropped(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    h.cam(T("10:00:00"), track="a")
    h.cam(T("10:00:30"), track="b")
    h.tick(T("10:05:00"))
    assert h.engine.grids["G-1"].find("vend.main", "cam:cam-1/a") is not None
    h.tick(T("10:20:00"))   # idle for the rule's longest of D (10m) and G (2m): dropped
    g = h.engine.grids["G-1"]
    assert g.find("vend.main", "cam:cam-1/a") is None
    assert g.find("vend.main", "cam:cam-1/b") is None


def test_a_subject_has_one_timer_at_a_time(tmp_path: Path) -> None:
    """While its episode runs, its end timer (which a later frame moves when it comes due);
    once ended, its idle timer; then it is dropped. The heap entries of the vendor subject
    are read directly: a second timer per subject was half the heap."""
    h = Harness(tmp_path)
    key = "cam:cam-1/a"

    def timers() -> list[tuple[int, int]]:
        return sorted((t.rank, t.due) for t in h.engine.timers if t.subject == key)

    h.cam(T("10:00:00"), track="a")
    h.cam(T("10:00:30"), track="a")
    h.tick(T("10:01:30"))
    assert timers() == [(END, T("10:02:00"))]        # G 2m after the first frame; re-checked then
    h.tick(T("10:02:10"))
    assert timers() == [(END, T("10:02:30"))]        # moved to 2m after the last one
    h.tick(T("10:02:40"))                            # ended at 10:02:30: idle from then
    ttl = h.engine.ttl["vend.main"]
    assert timers() == [(IDLE, T("10:02:30") + ttl)]
    h.cam(T("10:05:00"), track="a")                  # a new episode: its end timer, no second idle
    h.tick(T("10:06:00"))
    assert timers() == [(END, T("10:07:00")), (IDLE, T("10:02:30") + ttl)]
    h.tick(T("10:02:30") + ttl + 10_000)             # ended at 10:07; the idle timer moved on
    assert timers() == [(IDLE, T("10:07:00") + ttl)]
    assert h.engine.grids["G-1"].find("vend.main", key) is not None
    h.tick(T("10:07:00") + ttl + 10_000)
    assert h.engine.grids["G-1"].find("vend.main", key) is None
    assert timers() == []


def test_a_subject_whose_timer_came_to_nothing_is_dropped_when_idle(tmp_path: Path) -> None:
    """A light back on before its hour is up: its firing timer still comes due (at 21:00), to
    nothing, and only then does its idle time count (from the clearing reading, 20:10)."""
    h = Harness(tmp_path)
    subject = ("light.out", "dev:sl-1")
    h.sensor(T("20:00:00"), "sl-1", "streetlight", state="off")
    h.sensor(T("20:10:00"), "sl-1", "streetlight", state="on")
    h.tick(T("20:30:00"))
    assert [t.rank for t in h.engine.timers if t.subject == "dev:sl-1"] == [FIRE]
    ttl = h.engine.ttl["light.out"]
    h.tick(T("20:10:00") + ttl + 10_000)
    assert h.engine.grids["G-1"].find(*subject) is None
    assert h.alerts == []


def test_subjects_with_an_active_alert_are_kept(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    frames(h, "10:00:00", "10:10:00")
    h.tick(T("12:00:00"))
    assert h.engine.grids["G-1"].find("vend.main", "cam:cam-1/t1") is not None


def test_ended_alerts_are_dropped_after_retention(tmp_path: Path) -> None:
    h = Harness(tmp_path, alert_retention_ms=DAY_MS)
    frames(h, "10:00:00", "10:10:00")
    h.tick(T("10:10:05"))
    aid = h.alerts[-1]["alert_id"]
    h.fb(T("10:20:00"), aid, "reject")
    h.tick(T("23:59:00"))
    assert aid in h.engine.grids["G-1"].alerts
    h.tick(T("10:20:06", "2026-11-19"))
    assert aid not in h.engine.grids["G-1"].alerts
    h.fb(T("10:21:00", "2026-11-19"), aid, "reopen", eid="late-reopen")
    h.tick(T("10:23:00", "2026-11-19"))
    assert [d["reason_code"] for d in h.dead] == ["unknown_alert"]
