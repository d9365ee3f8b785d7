"""What an alert shows of the events attributed to it: a count, the first event and the
latest nine, newest first, and the location of the latest event that had one.

Kept as a fixed-size summary rather than a list of events, so a vehicle watched for three
days costs the same memory as one seen for a minute.
"""

from __future__ import annotations

import bisect
from typing import Any, NamedTuple

from rules.inputs import Obs, Source, new_record

_KEEP = 10
_NEWEST = 9


class Item(NamedTuple):
    """One matching event as the engine sees it: its sort key first (observed_at, event_id)."""

    observed_at: int
    event_id: str
    source: Source
    obs: Obs
    device_id: str | None
    snapshot_url: str | None


class Shown(NamedTuple):
    """What evidence keeps of an event: only what the alert message shows of it. The
    observation itself (location, zones, the rest) is not kept per event — only the latest
    location is — which is most of a subject's memory. ``a``, ``b``, ``c`` are the
    source's own fields: camera (track_id, confidence), sensor (state, value), report
    (reporter_id, address, photos)."""

    observed_at: int
    event_id: str
    source: Source
    kind: str
    device_id: str | None
    snapshot_url: str | None
    a: Any = None
    b: Any = None
    c: Any = None

    @classmethod
    def of(cls, item: Item) -> Shown:
        o = item.obs
        source = item.source
        if source is Source.CAMERA:
            a, b, c = o.track_id, o.confidence, None
        elif source is Source.SENSOR:
            a, b, c = o.state, o.value, None
        else:
            a, b, c = o.reporter_id, o.address, o.photos
        return new_record(cls, (item.observed_at, item.event_id, source, o.kind, item.device_id,
                                item.snapshot_url, a, b, c))

    def render(self, fmt: Any) -> dict[str, Any]:
        item: dict[str, Any] = {
            "event_id": self.event_id,
            "source": _SOURCE_NAMES[self.source],
            "kind": self.kind,
            "observed_at": fmt(self.observed_at),
        }
        if self.source is Source.CAMERA:
            item["camera_id"] = self.device_id
            item["track_id"], item["confidence"] = self.a, self.b
            item["snapshot_url"] = self.snapshot_url
        elif self.source is Source.SENSOR:
            item["sensor_id"] = self.device_id
            item["state"], item["value"] = self.a, self.b
        else:
            item["reporter_id"], item["address"] = self.a, self.b
            item["photos"] = list(self.c) if self.c is not None else None
        return item


_SOURCE_NAMES = {Source.CAMERA: "camera", Source.SENSOR: "sensor", Source.REPORT: "report"}


class Evidence:
    """Running summary of the distinct events attributed to one episode or one alert."""

    __slots__ = ("address", "count", "first", "last_event", "loc_at", "location", "newest",
                 "zones")

    def __init__(self) -> None:
        self.count = 0
        self.first: Shown | None = None
        self.newest: list[Shown] = []
        self.last_event: str | None = None
        self.location: tuple[float, float] | None = None
        self.zones: tuple[str, ...] = ()
        self.loc_at = -1 << 62
        self.address: tuple[int, str] | None = None

    def add(self, item: Item, zones: tuple[str, ...]) -> bool:
        """Attribute one event; returns False when it was already attributed (a second
        detection of the same message, or an event seen again), which changes nothing."""
        if item.event_id == self.last_event or not self.add_shown(Shown.of(item)):
            return False
        o = item.obs
        if o.located and item.observed_at >= self.loc_at:
            self.loc_at = item.observed_at
            self.location = (o.lat, o.lon)
            self.zones = zones
        if o.address is not None and (self.address is None or item.observed_at >= self.address[0]):
            self.address = (item.observed_at, o.address)
        return True

    def add_shown(self, shown: Shown) -> bool:
        """Keep one event in the count, the first and the newest nine (no location)."""
        key = (shown.observed_at, shown.event_id)
        if shown.event_id == self.last_event:
            return False
        newest = self.newest
        # In-order input is newer than everything held: no scan for it, and an append.
        in_order = not newest or key > (newest[-1].observed_at, newest[-1].event_id)
        if not in_order and self._holds(key):
            return False
        self.count += 1
        self.last_event = shown.event_id
        first = self.first
        if first is None or key < (first.observed_at, first.event_id):
            self.first = shown
        if in_order:
            newest.append(shown)
            if len(newest) > _KEEP:
                del newest[0]
        elif len(newest) < _KEEP or key > (newest[0].observed_at, newest[0].event_id):
            bisect.insort(newest, shown, key=_sort_key)
            if len(newest) > _KEEP:
                del newest[0]
        return True

    def fold(self, other: Evidence) -> bool:
        """Attribute another summary's events (an episode's, to the alert it now feeds)."""
        shown = other.items()
        changed = False
        for s in reversed(shown):
            changed |= self.add_shown(s)
        self.count += max(0, other.count - len(shown))
        if other.location is not None and other.loc_at >= self.loc_at:
            self.location, self.zones, self.loc_at = other.location, other.zones, other.loc_at
        if other.address is not None and (self.address is None or other.address[0] >= self.address[0]):
            self.address = other.address
        return changed

    def cut(self) -> tuple[Any, ...]:
        """The summary as it is now, sharing only immutable parts with it (a snapshot taken
        now and pickled later, by :func:`pack_cut`)."""
        return (self.count, self.first, list(self.newest), self.last_event, self.location, self.zones,
                self.loc_at, self.address)

    @classmethod
    def unpack(cls, packed: tuple[Any, ...]) -> Evidence:
        ev = cls()
        ev.count, first, newest, ev.last_event, ev.location, ev.zones, ev.loc_at, ev.address = packed
        ev.first = _shown(first) if first is not None else None
        ev.newest = [_shown(s) for s in newest]
        return ev

    def _holds(self, key: tuple[int, str]) -> bool:
        first = self.first
        if first is not None and (first.observed_at, first.event_id) == key:
            return True
        return any((it.observed_at, it.event_id) == key for it in self.newest)

    @property
    def first_seen(self) -> int | None:
        return self.first.observed_at if self.first else None

    @property
    def last_seen(self) -> int | None:
        return self.newest[-1].observed_at if self.newest else None

    def items(self) -> list[Shown]:
        """The first event and the latest nine, newest first."""
        shown = self.newest[-_NEWEST:]
        if self.first is not None and self.first not in shown:
            shown = [self.first, *shown]
        return shown[::-1]


_SOURCES = tuple(Source)


def pack_cut(cut: tuple[Any, ...]) -> tuple[Any, ...]:
    """A :meth:`Evidence.cut` as plain tuples: a checkpoint pickles every subject that changed
    since the last one, and named tuples and enum members pickle through Python code, one call
    each (they were most of its time)."""
    count, first, newest, *rest = cut
    return (count, _flat(first) if first is not None else None, [_flat(s) for s in newest], *rest)


def _flat(s: Shown) -> tuple[Any, ...]:
    return (s[0], s[1], int(s[2]), s[3], s[4], s[5], s[6], s[7], s[8])


def _shown(t: tuple[Any, ...]) -> Shown:
    return Shown(t[0], t[1], _SOURCES[t[2]], *t[3:])


def _sort_key(item: Shown) -> tuple[int, str]:
    return (item.observed_at, item.event_id)
