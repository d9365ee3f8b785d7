"""Evidence: a summary kept as records against its first event keeps what a list of the
events would (the oracle below); Evidence.cut / Evidence.unpack give back the same summary,
also from checkpoints written before records (one MessagePack array per event) and before
that (a flat tuple per event)."""

from __future__ import annotations

import pickle
from typing import Any

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st

from rules.evidence import Evidence, Item, Shown
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
    assert back.base is ev.base  # shared again, not one tuple per restored summary
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


def test_a_cut_holds_the_latest_location_and_when_it_was_seen() -> None:
    """``cut`` reads the location once itself: the same as the properties say."""
    located, unlocated = Evidence(), Evidence()
    for item in _items():
        located.add(item, item.obs.zone_ids)
    unlocated.add(Item(5, "r-2", Source.REPORT, Obs("garbage", 0.0, 0.0, (), located=False), None, None), ())
    for ev in (located, unlocated, Evidence()):
        cut = ev.cut()
        assert (cut[5], cut[7]) == (ev.location, ev.loc_at)
    assert located.location is not None and unlocated.location is None


def _shown(item: Item) -> Shown:
    ev = Evidence()
    ev.add(item, ())
    return ev.items()[0]


def _flat(item: Item) -> tuple[Any, ...]:
    """An event as the oldest checkpoints held it."""
    s = _shown(item)
    return (s.observed_at, s.event_id, int(s.source), s.kind, s.device_id, s.snapshot_url, s.a, s.b,
            list(s.c) if s.c is not None else None)


def _packed(item: Item) -> bytes:
    """An event as checkpoints held it before records: one MessagePack array, the time offset."""
    t, *rest = _flat(item)
    return msgspec.msgpack.encode((t + (1 << 63), *rest))


def test_checkpoints_written_before_records_restore() -> None:
    """The summary of the items, with the first event out of the newest ten; then it goes on
    as the live one does."""
    items = _items()
    ev = Evidence()
    for item in items:
        ev.add(item, item.obs.zone_ids)
    by_key = sorted(items, key=lambda i: (i.observed_at, i.event_id))
    for old_form in (_flat, _packed):
        old = (ev.count, old_form(by_key[0]), [old_form(i) for i in by_key[-10:]], ev.last_event,
               ev.location, ev.zones, ev.loc_at, ev.address)
        back = Evidence.unpack(pickle.loads(pickle.dumps(old)))
        assert back.items() == ev.items()
        assert (back.count, back.first_seen, back.last_seen, back.last_event) == \
               (ev.count, ev.first_seen, ev.last_seen, ev.last_event)
        assert (back.location, back.zones, back.loc_at, back.address) == \
               (ev.location, ev.zones, ev.loc_at, ev.address)
        live = Evidence.unpack(ev.cut())
        for t in (20_000, 5_500):  # one in time order, one out of it
            nxt = Item(t, f"cam-1-{t}", Source.CAMERA,
                       Obs("parked_car", 31.3, 121.5, ("z1",), track_id="t1"), "cam-1", None)
            assert back.add(nxt, ("z1",)) == live.add(nxt, ("z1",))
            assert back.items() == live.items() and back.count == live.count


class _Reference:
    """Evidence as it was before events were packed, kept as tuples: the oracle."""

    def __init__(self) -> None:
        self.count, self.first, self.newest, self.last_event = 0, None, [], None
        self.loc: tuple[Any, ...] | None = None   # (time, lat, lon, zones) of the latest located

    def add(self, s: Shown, item: Item | None = None) -> bool:
        """``item`` given: an event attributed, which may also move the location; else one
        of another summary's events, folded."""
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
        if item is not None and item.obs.located and (self.loc is None or s.observed_at >= self.loc[0]):
            self.loc = (s.observed_at, item.obs.lat, item.obs.lon, item.obs.zone_ids)
        return True

    def items(self) -> list[Shown]:
        shown = self.newest[-9:]
        if self.first is not None and self.first not in shown:
            shown = [self.first, *shown]
        return shown[::-1]


def _event(t: int, n: int, source: Source) -> Item:
    """Few times and few ids, so equal times, equal ids and redeliveries all happen; a few
    places, and now and then none (a report by grid)."""
    eid = f"e{n}"
    if source is Source.REPORT:
        obs = Obs("garbage", 31.2 + n % 4 / 1000, 121.4, (f"z{n % 3}",), n % 5 != 1,
                  reporter_id=None if n % 2 else "u", address="路",
                  photos=None if n % 3 else tuple(f"p{i}" for i in range(n % 4)))
        return Item(t, eid, source, obs, None, None)
    if source is Source.CAMERA:
        # Records hold what differs from the summary's first event: kinds, devices, tracks,
        # URL stems and id stems differ here now and then, and a URL may be missing.
        obs = Obs("parked_car" if n % 5 else "vendor", 31.2, 121.4 - n % 3 / 1000, (f"z{n % 2}",),
                  track_id=f"t{n % 3}", confidence=n / 7)
        url = None if n % 4 == 3 else f"https://e.example/{n % 2}/{n}.jpg"
        return Item(t, eid if n % 6 else f"x{n}", source, obs, "cam-1" if n % 7 else "cam-2", url)
    obs = Obs("noise", 31.2, 121.4, (), state="loud", value=n if n % 2 else n + 0.5)
    return Item(t, eid, source, obs, "nz-1", None)


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
        episode.add(item, item.obs.zone_ids)
        ref_episode.add(_shown(item), item)
    for i, item in enumerate(events):
        if i == fold_at:
            changed = ev.fold(episode)
            ref_changed = False
            for s in reversed(ref_episode.items()):
                ref_changed |= ref.add(s)
            ref.count += max(0, ref_episode.count - len(ref_episode.items()))
            if ref_episode.loc is not None and (ref.loc is None or ref_episode.loc[0] >= ref.loc[0]):
                ref.loc = ref_episode.loc
            assert changed == ref_changed
        assert ev.add(item, item.obs.zone_ids) == ref.add(_shown(item), item)
        assert ev.count == ref.count
        loc = ref.loc
        assert (ev.loc_at, ev.location, ev.zones) == \
               ((loc[0], loc[1:3], loc[3]) if loc is not None else (-1 << 62, None, ()))
    assert ev.items() == ref.items()
    assert [s.render(str) for s in ev.items()] == [s.render(str) for s in ref.items()]
    assert ev.first_seen == (ref.first.observed_at if ref.first else None)
    assert ev.last_seen == (ref.newest[-1].observed_at if ref.newest else None)
    assert _state(Evidence.unpack(pickle.loads(pickle.dumps(ev.cut())))) == _state(ev)


def test_an_event_unpacks_as_it_was_given() -> None:
    """Ints stay ints and floats floats (an alert renders 5 and 5.0 differently), photos a tuple."""
    for item in _items():
        s = _shown(item)
        assert (s.observed_at, s.event_id, s.source, s.device_id, s.snapshot_url) == (
            item.observed_at, item.event_id, item.source, item.device_id, item.snapshot_url)
    value = _shown(_event(1, 3, Source.SENSOR))
    assert type(value.b) is int and value.b == 3
    assert type(_shown(_event(1, 4, Source.SENSOR)).b) is float
    report = _shown(_event(-5, 6, Source.REPORT))
    assert report.c == ("p0", "p1") and report.observed_at == -5


def test_an_old_checkpoint_whose_last_event_is_its_first_restores() -> None:
    """A late event older than all the others is both the first and the last attributed."""
    items = [Item(t, f"e{t}", Source.SENSOR, Obs("noise", 31.2, 121.4, (), state="loud"), "s-1", None)
             for t in (*range(2, 13), 1)]
    ev = Evidence()
    for item in items:
        ev.add(item, ())
    assert ev.items()[-1].event_id == "e1" and ev.last_event == "e1"
    old = (ev.count, _packed(items[-1]), [_packed(i) for i in items[1:11]], ev.last_event, None, (),
           -1 << 62, None)
    back = Evidence.unpack(old)
    assert back.items() == ev.items() and back.first_seen == 1 and back.count == ev.count


def test_ten_events_of_one_track_take_little_memory() -> None:
    """The reason for records: the ten newest camera events of a track, with ids and URLs in
    one camera's series, in one buffer of about 45 bytes an event (about 150 each as one
    MessagePack ``bytes``, 380 as tuples)."""
    ev = Evidence()
    for item in _items()[:14]:
        ev.add(item, ())
    assert ev.n == 10 and ev.first is not None
    assert len(ev.buf) < 10 * 50
    assert [s.event_id for s in ev.items()] == [f"cam-1-{i:03d}" for i in (13, 12, 11, 10, 9, 8, 7, 6, 5, 0)]


def test_a_fold_takes_the_other_location_at_the_same_time() -> None:
    """An episode folded into its alert brings its location unless the alert's is newer: at the
    same time, the episode's (it is the one attributed last)."""
    alert, episode = Evidence(), Evidence()
    alert.add(_event(5, 2, Source.REPORT), ("z2",))      # 31.202
    episode.add(_event(5, 3, Source.REPORT), ("z0",))    # 31.203
    alert.fold(episode)
    assert (alert.location, alert.zones, alert.loc_at) == ((31.2 + 3 / 1000, 121.4), ("z0",), 5)
    older = Evidence()
    older.add(_event(4, 7, Source.REPORT), ("z1",))
    alert.fold(older)
    assert alert.location == (31.2 + 3 / 1000, 121.4)


def test_each_source_shows_its_own_fields() -> None:
    """What an alert shows of an event is its source's own fields, in a summary's first
    record and in one written against it. (The property test's reference is built with
    Evidence itself, so it cannot see a field dropped.)"""
    def cam(n: int, device: str) -> Item:
        obs = Obs("parked_car", 31.2, 121.4, ("z1",), track_id=f"t{n}", confidence=n / 8)
        return Item(n * 1000, f"{device}-{n}", Source.CAMERA, obs, device, f"https://e.example/{device}/{n}.jpg")

    sensor = Obs("noise", 31.2, 121.4, (), state="loud", value=81.5)
    report = Obs("garbage", 31.2, 121.4, (), reporter_id="u7", address="东大街1号", photos=("p1", "p2"))
    cases = [
        ([cam(1, "cam-1"), cam(2, "cam-1"), cam(3, "cam-2")], [("t3", 3 / 8, None), ("t2", 2 / 8, None),
                                                              ("t1", 1 / 8, None)]),
        ([Item(2_000, "nz-1-2", Source.SENSOR, sensor, "nz-1", None)], [("loud", 81.5, None)]),
        ([Item(3_000, "r-3", Source.REPORT, report, None, None)], [("u7", "东大街1号", ("p1", "p2"))]),
    ]
    for items, shown in cases:
        ev = Evidence()
        for item in items:
            assert ev.add(item, ())
        got = ev.items()
        assert [(s.a, s.b, s.c) for s in got] == shown
        assert [(s.observed_at, s.event_id, s.source, s.kind, s.device_id, s.snapshot_url)
                for s in got] == [(i.observed_at, i.event_id, i.source, i.obs.kind, i.device_id,
                                   i.snapshot_url) for i in items[::-1]]
    assert Evidence.unpack(ev.cut()).items() == got   # and through a checkpoint
