"""pack_cut(Evidence.cut()) / Evidence.unpack: what a checkpoint stores of a summary gives
back the same summary."""

from __future__ import annotations

import pickle

from rules.evidence import Evidence, Item, Shown, pack_cut
from rules.inputs import Obs, Source


def _items() -> list[Item]:
    cam = [Item(1_000 * i, f"cam-1-{i:03d}", Source.CAMERA,
                Obs("parked_car", 31.2 + i / 1e4, 121.4, ("z1",), track_id="t1", confidence=0.9),
                "cam-1", f"https://evidence.example/cam-1/{i}.jpg") for i in range(14)]
    sensor = Item(9_500, "s-1", Source.SENSOR, Obs("manhole", 31.2, 121.4, (), state="open"), "mh-1", None)
    report = Item(7_500, "r-1", Source.REPORT,
                  Obs("garbage", 31.2, 121.4, ("z2",), reporter_id="u1", address="人民路 1 号",
                      photos=("https://evidence.example/r/1.jpg",)), None, None)
    return [*cam, sensor, report]


def _state(ev: Evidence) -> tuple[object, ...]:
    return tuple(getattr(ev, name) for name in Evidence.__slots__)


def test_a_packed_summary_unpacks_to_the_same_summary_of_every_source() -> None:
    ev = Evidence()
    for item in _items():
        ev.add(item, item.obs.zone_ids)
    back = Evidence.unpack(pickle.loads(pickle.dumps(pack_cut(ev.cut()))))
    assert _state(back) == _state(ev)
    assert [s.source for s in back.items()] == [s.source for s in ev.items()]
    assert all(type(s) is Shown and type(s.source) is Source for s in back.items())
    assert {s.source for s in back.items()} == {Source.CAMERA, Source.SENSOR, Source.REPORT}
    # and it goes on as the original would
    nxt = Item(20_000, "cam-1-999", Source.CAMERA, Obs("parked_car", 31.3, 121.5, ("z1",), track_id="t1"),
               "cam-1", None)
    assert back.add(nxt, ("z1",)) == ev.add(nxt, ("z1",))
    assert _state(back) == _state(ev)


def test_an_empty_summary_packs() -> None:
    assert _state(Evidence.unpack(pack_cut(Evidence().cut()))) == _state(Evidence())
