"""``silent D``: messages keep a device alive, a silence is the episode."""

from __future__ import annotations

from pathlib import Path

from rules.citymap import Device
from rules.inputs import Input, Source
from rules.ops.silent import SilentOp, SilentState, message_item
from rules.timers import FIRE
from tests.rules.harness import Harness


def test_a_silence_is_the_episode_and_a_message_ends_it() -> None:
    st = SilentState()
    assert st.message(100, "m1") is False
    assert (st.last, st.running) == (100, False)
    assert st.message(50, "old") is False and (st.last, st.last_item) == (100, "m1")
    st.fire()
    assert (st.running, st.start, st.fire_at) == (True, 100, None)
    assert st.message(200, "m2") is True and not st.running


def test_the_logic_watches_the_devices_its_rule_names(tmp_path: Path) -> None:
    rule = next(r for r in Harness(tmp_path).rules.rules if r.id == "camera.offline")
    op = SilentOp(rule)
    assert (op.rank, op.watches_devices, op.duration) == (FIRE, True, 300_000)
    cam = Device("cam-1", "camera", None, 30.0, 104.0, "G-1", ("z-1",))
    assert op.watches(Source.CAMERA, cam)
    st = op.new_state()
    st.message(1_000, None)
    st.fire_at = 301_000
    assert op.due(st) == 301_000


def test_a_message_without_a_detection_is_a_heartbeat_at_the_device() -> None:
    cam = Device("cam-1", "camera", None, 30.0, 104.0, "G-1", ("z-1",))
    item = message_item(Input(Source.CAMERA, "city.events.camera", "e1", 5, "G-1", "cam-1"), cam)
    obs = item.obs
    assert (obs.kind, obs.lat, obs.lon, obs.zone_ids) == ("heartbeat", 30.0, 104.0, ("z-1",))
