"""What an alert shows of the events attributed to it: a count, the first event and the
latest nine, newest first, and the location of the latest event that had one.

Kept as a fixed-size summary rather than a list of events, so a vehicle watched for three
days costs the same memory as one seen for a minute. Each event it keeps is packed into one
``bytes`` (MessagePack, :func:`pack`): as a tuple of Python objects an event cost about 380
bytes (the tuple, its id, URL, time and confidence each an object), packed about 140, and
the ten kept per subject were most of the engine's memory. Only rendering an alert unpacks
them; the hot path reads an event's time from its fixed place in the packed bytes.
"""

from __future__ import annotations

import bisect
from typing import Any, NamedTuple

import msgspec

from rules.inputs import SOURCE_OF, Obs, Source, new_record

_KEEP = 10
_NEWEST = 9

#: Times are packed offset by 2**63, so every one is a MessagePack uint64 (0xcf and eight
#: big-endian bytes) at a fixed place: bytes 2..10, after the array's one-byte header.
_OFFSET = 1 << 63
_AT = slice(2, 10)
_encode = msgspec.msgpack.Encoder().encode
_decode = msgspec.msgpack.Decoder().decode


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
    location is. ``a``, ``b``, ``c`` are the source's own fields: camera (track_id,
    confidence), sensor (state, value), report (reporter_id, address, photos)."""

    observed_at: int
    event_id: str
    source: Source
    kind: str
    device_id: str | None
    snapshot_url: str | None
    a: Any = None
    b: Any = None
    c: Any = None

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


def pack(item: Item) -> bytes:
    """The event as evidence keeps it. MessagePack keeps an int an int and a float a float,
    so an unpacked event renders exactly as the original would."""
    o = item.obs
    source = item.source
    if source is Source.CAMERA:
        a, b, c = o.track_id, o.confidence, None
    elif source is Source.SENSOR:
        a, b, c = o.state, o.value, None
    else:
        a, b, c = o.reporter_id, o.address, o.photos
    return _pack(item.observed_at, item.event_id, int(source), o.kind, item.device_id,
                 item.snapshot_url, a, b, c)


def _pack(t: int, *fields: Any) -> bytes:
    """The packed form: the time, offset so it sits at :data:`_AT`, then the other fields
    (id, source number, kind, device, snapshot URL, the source's three)."""
    return _encode((t + _OFFSET, *fields))


def unpack(packed: bytes) -> Shown:
    t, event_id, source, kind, device_id, url, a, b, c = _decode(packed)
    return new_record(Shown, (t - _OFFSET, event_id, SOURCE_OF[source], kind, device_id, url, a, b,
                              tuple(c) if c is not None else None))


def observed_at(packed: bytes) -> int:
    return int.from_bytes(packed[_AT]) - _OFFSET


def sort_key(packed: bytes) -> tuple[int, str]:
    """(observed_at, event_id): the order evidence keeps, read from a packed event."""
    t, event_id = _decode(packed)[:2]
    return t - _OFFSET, event_id


class Evidence:
    """Running summary of the distinct events attributed to one episode or one alert."""

    __slots__ = ("address", "count", "first", "last_event", "loc_at", "location", "newest",
                 "zones")

    def __init__(self) -> None:
        self.count = 0
        self.first: bytes | None = None    # packed, as every event kept
        self.newest: list[bytes] = []      # in (observed_at, event_id) order
        self.last_event: str | None = None
        self.location: tuple[float, float] | None = None
        self.zones: tuple[str, ...] = ()
        self.loc_at = -1 << 62
        self.address: tuple[int, str] | None = None

    def add(self, item: Item, zones: tuple[str, ...]) -> bool:
        """Attribute one event; returns False when it was already attributed (a second
        detection of the same message, or an event seen again), which changes nothing."""
        if not self._keep(item.observed_at, item.event_id, item, None):
            return False
        o = item.obs
        if o.located and item.observed_at >= self.loc_at:
            self.loc_at = item.observed_at
            self.location = (o.lat, o.lon)
            self.zones = zones
        if o.address is not None and (self.address is None or item.observed_at >= self.address[0]):
            self.address = (item.observed_at, o.address)
        return True

    def _keep(self, t: int, event_id: str, item: Item | None, packed: bytes | None) -> bool:
        """Keep one event (given as an item or packed) in the count, the first and the newest
        nine; False if it is held already."""
        if event_id == self.last_event:
            return False
        newest = self.newest
        # Input later than everything held: no scan for it, and an append. (At the same time
        # as the newest held, it takes the general path, which reads the ids.)
        in_order = not newest or t > observed_at(newest[-1])
        key = (t, event_id)
        if not in_order and self._holds(key):
            return False
        if packed is None:
            assert item is not None
            packed = pack(item)
        self.count += 1
        self.last_event = event_id
        first = self.first
        if first is None or t < (ft := observed_at(first)) or (t == ft and key < sort_key(first)):
            self.first = packed
        if in_order:
            newest.append(packed)
            if len(newest) > _KEEP:
                del newest[0]
        elif len(newest) < _KEEP or key > sort_key(newest[0]):
            bisect.insort(newest, packed, key=sort_key)
            if len(newest) > _KEEP:
                del newest[0]
        return True

    def fold(self, other: Evidence) -> bool:
        """Attribute another summary's events (an episode's, to the alert it now feeds)."""
        kept = other._kept()
        changed = False
        for packed in reversed(kept):
            t, event_id = sort_key(packed)
            changed |= self._keep(t, event_id, None, packed)
        self.count += max(0, other.count - len(kept))
        if other.location is not None and other.loc_at >= self.loc_at:
            self.location, self.zones, self.loc_at = other.location, other.zones, other.loc_at
        if other.address is not None and (self.address is None or other.address[0] >= self.address[0]):
            self.address = other.address
        return changed

    def cut(self) -> tuple[Any, ...]:
        """The summary as it is now, sharing only immutable parts with it (a snapshot taken
        now and pickled later): plain bytes and tuples, which pickle at C speed."""
        return (self.count, self.first, list(self.newest), self.last_event, self.location, self.zones,
                self.loc_at, self.address)

    @classmethod
    def unpack(cls, cut: tuple[Any, ...]) -> Evidence:
        """The summary from a :meth:`cut` (pickled in between). A checkpoint written before
        events were packed holds each as a plain tuple: it is packed here."""
        ev = cls()
        ev.count, first, newest, ev.last_event, ev.location, ev.zones, ev.loc_at, ev.address = cut
        ev.first = _repack(first) if first is not None else None
        ev.newest = [_repack(s) for s in newest]
        return ev

    def _holds(self, key: tuple[int, str]) -> bool:
        first = self.first
        if first is not None and sort_key(first) == key:
            return True
        return any(sort_key(p) == key for p in self.newest)

    @property
    def first_seen(self) -> int | None:
        return observed_at(self.first) if self.first else None

    @property
    def last_seen(self) -> int | None:
        return observed_at(self.newest[-1]) if self.newest else None

    def _kept(self) -> list[bytes]:
        """The first event and the latest nine, newest first, packed."""
        kept = self.newest[-_NEWEST:]
        if self.first is not None and self.first not in kept:
            kept = [self.first, *kept]
        return kept[::-1]

    def items(self) -> list[Shown]:
        """The first event and the latest nine, newest first."""
        return [unpack(p) for p in self._kept()]


def _repack(kept: bytes | tuple[Any, ...]) -> bytes:
    """An event from a checkpoint: packed already, or the flat tuple of an older checkpoint
    (time, id, source number, kind, device, snapshot URL, and the source's three fields)."""
    if isinstance(kept, bytes):
        return kept
    return _pack(*kept)
