"""Evidence.cut / Evidence.unpack: what a checkpoint stores of a summary gives back the same
summary, also from a checkpoint written before events were packed."""

from __future__ import annotations

import pickle

from hypothesis import given, settings
from hypothesis import strategies as st

from rules.evidence import Evidence, Item, Shown, pack, unpack
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
    back = Evidence.unpack(pickle.loads(pickle.dumps(ev.cut())))
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
    assert _state(Evidence.unpack(Evidence().cut())) == _state(Evidence())


def test_a_checkpoint_written_before_events_were_packed_restores() -> None:
    """Before, a checkpoint held each kept event as a flat tuple (the source as its number)."""
    ev = Evidence()
    for item in _items():
        ev.add(item, item.obs.zone_ids)

    def flat(packed: bytes) -> tuple[object, ...]:
        s = unpack(packed)
        return (s.observed_at, s.event_id, int(s.source), s.kind, s.device_id, s.snapshot_url, s.a, s.b, s.c)

    count, first, newest, *rest = ev.cut()
    old = (count, flat(first), [flat(p) for p in newest], *rest)
    back = Evidence.unpack(pickle.loads(pickle.dumps(old)))
    assert _state(back) == _state(ev)
    assert back.items() == ev.items()


class _Reference:
    """Evidence as it was before events were packed, kept as tuples: the oracle."""

    def __init__(self) -> None:
        self.count, self.first, self.newest, self.last_event = 0, None, [], None

    def add(self, s: Shown) -> bool:
        key = (s.observed_at, s.event_id)
        if s.event_id == self.last_event:
            return False
        in_order = not self.newest or key > self.newest[-1][:2]
        held = [self.first, *self.newest] if self.first is not None else self.newest
        if not in_order and any(s[:2] == key for s in held):
            return False
        self.count += 1
        self.last_event = s.event_id
        if self.first is None or key < self.first[:2]:
            self.first = s
        if in_order or len(self.newest) < 10 or key > self.newest[0][:2]:
            self.newest = sorted([*self.newest, s])[-10:]
        return True

    def items(self) -> list[Shown]:
        shown = self.newest[-9:]
        if self.first is not None and self.first not in shown:
            shown = [self.first, *shown]
        return shown[::-1]


def _event(t: int, n: int, source: Source) -> Item:
    """Few times and few ids, so equal times, equal ids and redeliveries all happen."""
    eid = f"e{n}"
    if source is Source.CAMERA:
        obs = Obs("parked_car", 31.2, 121.4, (), track_id=f"t{n % 3}", confidence=n / 7)
        return Item(t, eid, source, obs, "cam-1", f"https://e.example/{n}.jpg")
    if source is Source.SENSOR:
        obs = Obs("noise", 31.2, 121.4, (), state="loud", value=n if n % 2 else n + 0.5)
        return Item(t, eid, source, obs, "nz-1", None)
    obs = Obs("garbage", 31.2, 121.4, (), reporter_id=None if n % 2 else "u", address="路",
              photos=None if n % 3 else tuple(f"p{i}" for i in range(n % 4)))
    return Item(t, eid, source, obs, None, None)


_SOURCES = st.sampled_from([Source.CAMERA, Source.SENSOR, Source.REPORT])
_events = st.lists(st.builds(_event, st.integers(-3, 12), st.integers(0, 25), _SOURCES), max_size=60)


@settings(max_examples=300, deadline=None)
@given(_events, _events, st.integers(0, 60))
def test_packed_evidence_keeps_what_the_unpacked_kept(events: list[Item], other: list[Item],
                                                      fold_at: int) -> None:
    """Counts, first and newest nine (rendered), duplicates refused, across equal times, an
    order out of time and a fold of another summary; and a checkpoint round trip."""
    ev, ref = Evidence(), _Reference()
    episode, ref_episode = Evidence(), _Reference()
    for item in other:
        episode.add(item, ())
        ref_episode.add(unpack(pack(item)))
    for i, item in enumerate(events):
        if i == fold_at:
            changed = ev.fold(episode)
            ref_changed = False
            for s in reversed(ref_episode.items()):
                ref_changed |= ref.add(s)
            ref.count += max(0, ref_episode.count - len(ref_episode.items()))
            assert changed == ref_changed
        assert ev.add(item, ()) == ref.add(unpack(pack(item)))
        assert ev.count == ref.count
    assert ev.items() == ref.items()
    assert [s.render(str) for s in ev.items()] == [s.render(str) for s in ref.items()]
    assert ev.first_seen == (ref.first.observed_at if ref.first else None)
    assert ev.last_seen == (ref.newest[-1].observed_at if ref.newest else None)
    assert _state(Evidence.unpack(pickle.loads(pickle.dumps(ev.cut())))) == _state(ev)


def test_an_event_unpacks_as_it_was_given() -> None:
    """Ints stay ints and floats floats (an alert renders 5 and 5.0 differently), photos a tuple."""
    for item in _items():
        s = unpack(pack(item))
        assert (s.observed_at, s.event_id, s.source, s.device_id, s.snapshot_url) == item[:3] + item[4:]
    value = unpack(pack(_event(1, 3, Source.SENSOR)))
    assert type(value.b) is int and value.b == 3
    assert type(unpack(pack(_event(1, 4, Source.SENSOR))).b) is float
    report = unpack(pack(_event(-5, 6, Source.REPORT)))
    assert report.c == ("p0", "p1") and report.observed_at == -5
