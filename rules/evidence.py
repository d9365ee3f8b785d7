"""What an alert shows of the events attributed to it: a count, the first event and the
latest nine, newest first, and the location of the latest event that had one.

Kept as a fixed-size summary rather than a list of events, so a vehicle watched for three
days costs the same memory as one seen for a minute. The kept events were most of the
engine's memory: as tuples of Python objects about 380 bytes each, then as one MessagePack
``bytes`` each about 150. Now a summary keeps its newest ten in one ``bytes`` buffer, each
event a record written against a *base* taken from the first event the summary was given:
the fields a subject's events share (source, kind, device) are not repeated, and an event id
or snapshot URL that starts like the base's (``cam-0012-``,
``https://evidence.example/cam-0012/``) keeps only its tail. A camera event costs about 50
bytes, and the summaries of one camera's tracks share one base. Only rendering an alert
decodes records; the hot path reads a record's time from its fixed header, and appends.
"""

from __future__ import annotations

import bisect
import struct
from typing import Any, NamedTuple

import msgspec

from rules.inputs import CAMERA, REPORT, SENSOR, SOURCE_OF, FrozenRecord, Obs, Source, new_record

_KEEP = 10
_NEWEST = 9

#: A record: its header (the length of its fields, its time offset by 2**63 so every time
#: packs unsigned), then its fields in MessagePack. The buffer of records ends with the newest
#: record's time, so an append (the common case: input comes in time order) reads it there.
_OFFSET = 1 << 63
_HEAD = struct.Struct(">IQ")
_H = _HEAD.size
_TIME = struct.Struct(">Q")
#: The buffer begins with the latest location: its time, latitude and longitude (a third of
#: the memory of a tuple of two floats and a time, and no object of its own).
_LOC = struct.Struct(">qdd")
_L = _LOC.size
#: No location yet: a time no event has (events before :data:`_BEFORE_ALL` are never kept as
#: the location).
_NO_LOC_AT = -1 << 63
_NO_LOC = _LOC.pack(_NO_LOC_AT, 0.0, 0.0)
_BEFORE_ALL = -1 << 62
_encode = msgspec.msgpack.Encoder().encode
_decode = msgspec.msgpack.Decoder().decode

#: An event's fields as a record holds them: event id, source number, kind, device, snapshot
#: URL, and the source's own three (see :class:`Shown`).
Fields = tuple[Any, ...]

#: A summary's base: the stem of its event ids, the source number, kind, device and the stem
#: of its snapshot URLs. One tuple serves every summary with the same (:data:`_BASES`).
Base = tuple[str, int, str, str | None, str | None]

#: The bases in use, so the summaries of one camera's tracks share one (bounded: a flood of
#: report ids each its own stem only stops the sharing).
_BASES: dict[Base, Base] = {}
_BASES_LIMIT = 65_536


class Item(FrozenRecord):
    """One matching event as the engine sees it."""

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
        if self.source is CAMERA:
            item["camera_id"] = self.device_id
            item["track_id"], item["confidence"] = self.a, self.b
            item["snapshot_url"] = self.snapshot_url
        elif self.source is SENSOR:
            item["sensor_id"] = self.device_id
            item["state"], item["value"] = self.a, self.b
        else:
            item["reporter_id"], item["address"] = self.a, self.b
            item["photos"] = list(self.c) if self.c is not None else None
        return item


_SOURCE_NAMES = {CAMERA: "camera", SENSOR: "sensor", REPORT: "report"}


def _base(f: Fields) -> Base:
    """What the records of a summary are written against: the stems are the event id without
    its trailing digits and the URL up to its last ``/``."""
    event_id, source, kind, device, url = f[:5]
    return _shared((event_id.rstrip("0123456789"), source, kind, device,
                    None if url is None else url[:url.rfind("/") + 1]))


def _shared(base: Base) -> Base:
    """The one tuple in use equal to ``base`` (a restored summary's too: pickled apart, each
    would otherwise come back with its own)."""
    shared = _BASES.get(base)
    if shared is None:
        if len(_BASES) >= _BASES_LIMIT:
            _BASES.clear()
        shared = _BASES[base] = base
    return shared


def _time(rec: bytes) -> int:
    return _HEAD.unpack_from(rec)[1] - _OFFSET


def _newest(buf: bytes) -> int:
    """The newest record's time, from the end of a buffer that holds any."""
    return _TIME.unpack_from(buf, len(buf) - 8)[0] - _OFFSET


def _shown(t: int, f: Fields) -> Shown:
    c = f[7]
    return new_record(Shown, (t, f[0], SOURCE_OF[f[1]], f[2], f[3], f[4], f[5], f[6],
                              tuple(c) if c is not None else None))


def _legacy(kept: bytes | tuple[Any, ...]) -> tuple[int, Fields]:
    """An event as a checkpoint written before records held it: one MessagePack array, or
    before that a flat tuple, each (time, id, source number, kind, device, URL, a, b, c)."""
    flat = _decode(kept) if isinstance(kept, bytes) else kept
    t = flat[0] - _OFFSET if isinstance(kept, bytes) else flat[0]
    return t, tuple(flat[1:])


class Evidence:
    """Running summary of the distinct events attributed to one episode or one alert.

    ``buf`` holds the latest location (:data:`_LOC`), then the newest ``n`` (at most ten)
    records in (observed_at, event_id) order, then the newest's time. The first event is the
    buffer's first record, unless that has been pushed out or an older event came too late to
    be among the newest: then ``first`` holds it."""

    __slots__ = ("address", "base", "buf", "count", "first", "last_event", "n", "zones")

    def __init__(self) -> None:
        self.count = 0
        self.base: Base | None = None
        self.buf = _NO_LOC
        self.n = 0
        self.first: bytes | None = None
        self.last_event: str | None = None
        self.zones: tuple[str, ...] = ()
        self.address: tuple[int, str] | None = None

    def add(self, item: Item, zones: tuple[str, ...]) -> bool:
        """Attribute one event; returns False when it was already attributed (a second
        detection of the same message, or an event seen again), which changes nothing."""
        o, t, source = item.obs, item.observed_at, item.source
        # t >= self.loc_at, inline (a property: ~600 machine instructions an event): no input
        # time comes before _NO_LOC_AT or _BEFORE_ALL.
        located = o.located and t >= _LOC.unpack_from(self.buf)[0]
        loc = _LOC.pack(t, o.lat, o.lon) if located else None
        if source is CAMERA:
            a, b, c = o.track_id, o.confidence, None
        elif source is SENSOR:
            a, b, c = o.state, o.value, None
        else:
            a, b, c = o.reporter_id, o.address, o.photos
        f = (item.event_id, int(source), o.kind, item.device_id, item.snapshot_url, a, b, c)
        if not self._keep(t, item.event_id, f, loc):
            return False
        if located:
            self.zones = zones
        if o.address is not None and (self.address is None or t >= self.address[0]):
            self.address = (t, o.address)
        return True

    def _keep(self, t: int, event_id: str, f: Fields, loc: bytes | None = None) -> bool:
        """Keep one event (given as its fields) in the count, the first and the newest ten,
        and ``loc`` as the latest location if given; False if it is held already. One
        function, not four: it runs for every event attributed, and in time order (nearly
        every event) it only appends."""
        if event_id == self.last_event:
            return False
        buf, n = self.buf, self.n
        # Input later than everything held: no scan for it, and an append. (At the same time
        # as the newest held, it takes the general path, which reads the ids.) _newest(buf),
        # inline: once an event (this call and _move_clock's in _admit: 0.7% of the engine).
        in_order = not n or t > _TIME.unpack_from(buf, len(buf) - 8)[0] - _OFFSET
        if not in_order and self._holds(t, event_id):
            return False
        # The record: against the summary's base, only what differs from it.
        base = self.base
        if base is None:
            base = self.base = _base(f)
        _, source, kind, device, url, a, b, c = f
        stem, url_stem = base[0], base[4]
        if (source == base[1] and kind == base[2] and device == base[3] and event_id.startswith(stem)
                and (url is None or (url_stem is not None and url.startswith(url_stem)))):
            fields = _encode((event_id[len(stem):], url if url is None else url[len(url_stem):], a, b,
                              c))
        else:
            fields = _encode(f)
        head = _HEAD.pack(len(fields), t + _OFFSET)
        self.count += 1
        self.last_event = event_id
        if loc is None:
            loc = buf[:_L]
        if in_order:
            if n < _KEEP:
                self.buf = b"".join((loc, buf[_L:-8], head, fields, head[4:]) if n else
                                    (loc, head, fields, head[4:]))
                self.n = n + 1
            else:
                start = _L + _H + _HEAD.unpack_from(buf, _L)[0]
                if self.first is None:
                    self.first = buf[_L:start]
                self.buf = b"".join((loc, buf[start:-8], head, fields, head[4:]))
            return True
        rec = head + fields
        recs = self._records()
        old_first = self.first if self.first is not None else recs[0]
        key = (t, event_id)
        keys = [self._key(r) for r in recs]
        if n < _KEEP or key > keys[0]:
            recs.insert(bisect.bisect(keys, key), rec)
            if len(recs) > _KEEP:
                del recs[0]
            self.buf, self.n = b"".join((loc, *recs, recs[-1][4:_H])), len(recs)
        else:
            self.buf = loc + buf[_L:]
        first = rec if key < self._key(old_first) else old_first
        self.first = None if recs[0] == first else first
        return True

    def _fields_of(self, rec: bytes) -> Fields:
        v = _decode(memoryview(rec)[_H:])
        if len(v) == 5:
            base = self.base
            assert base is not None
            tail, url, a, b, c = v
            return (base[0] + tail, base[1], base[2], base[3],
                    None if url is None else base[4] + url, a, b, c)  # type: ignore[operator]
        return tuple(v)

    def _key(self, rec: bytes) -> tuple[int, str]:
        """(observed_at, event_id): the order evidence keeps."""
        return _time(rec), self._fields_of(rec)[0]

    def _records(self) -> list[bytes]:
        buf, out, at, end = self.buf, [], _L, len(self.buf) - 8
        while at < end:
            nxt = at + _H + _HEAD.unpack_from(buf, at)[0]
            out.append(buf[at:nxt])
            at = nxt
        return out

    def fold(self, other: Evidence) -> bool:
        """Attribute another summary's events (an episode's, to the alert it now feeds)."""
        kept = other._kept()
        changed = False
        for rec in reversed(kept):
            f = other._fields_of(rec)
            changed |= self._keep(_time(rec), f[0], f, None)
        self.count += max(0, other.count - len(kept))
        if other.location is not None and other.loc_at >= self.loc_at:
            self.buf, self.zones = other.buf[:_L] + self.buf[_L:], other.zones
        if other.address is not None and (self.address is None or other.address[0] >= self.address[0]):
            self.address = other.address
        return changed

    def cut(self) -> tuple[Any, ...]:
        """The summary as it is now, sharing only immutable parts with it (a snapshot taken
        now and pickled later): bytes, strings and tuples, which pickle at C speed. The latest
        location is read once (``location`` and ``loc_at`` each read it: a checkpoint's cut
        calls this for every subject that changed)."""
        t, lat, lon = _LOC.unpack_from(self.buf)
        located = t != _NO_LOC_AT
        return (self.count, self.first, self.buf[_L:], self.n, self.last_event,
                (lat, lon) if located else None, self.zones, t if located else _BEFORE_ALL,
                self.address, self.base)

    @classmethod
    def unpack(cls, cut: tuple[Any, ...]) -> Evidence:
        """The summary from a :meth:`cut` (pickled in between), or from the cut of a checkpoint
        written before records: eight fields, the kept events one MessagePack array each (or
        before that a flat tuple each), written as records here."""
        ev = cls()
        if len(cut) == 10:
            (ev.count, ev.first, records, ev.n, ev.last_event, location, ev.zones, loc_at, ev.address,
             base) = cut
            ev.buf = _NO_LOC + records
            ev.base = _shared(base) if base is not None else None
        else:
            count, first, newest, last_event, location, ev.zones, loc_at, ev.address = cut
            events = [_legacy(k) for k in ([first] if first is not None else []) + list(newest)]
            for t, f in events:
                ev._keep(t, f[0], f, None)
                ev.last_event = None   # the events are distinct: none is refused as the one before
            ev.count, ev.last_event = count, last_event
        if location is not None:
            ev.buf = _LOC.pack(loc_at, *location) + ev.buf[_L:]
        return ev

    def _holds(self, t: int, event_id: str) -> bool:
        first = self.first
        if first is not None and _time(first) == t and self._fields_of(first)[0] == event_id:
            return True
        return any(_time(r) == t and self._fields_of(r)[0] == event_id for r in self._records())

    @property
    def location(self) -> tuple[float, float] | None:
        t, lat, lon = _LOC.unpack_from(self.buf)
        return (lat, lon) if t != _NO_LOC_AT else None

    @property
    def loc_at(self) -> int:
        """When the latest location was observed (long before anything, if none was)."""
        t: int = _LOC.unpack_from(self.buf)[0]
        return t if t != _NO_LOC_AT else _BEFORE_ALL

    @property
    def first_seen(self) -> int | None:
        if self.first is not None:
            return _time(self.first)
        return _HEAD.unpack_from(self.buf, _L)[1] - _OFFSET if self.n else None

    @property
    def last_seen(self) -> int | None:
        return _newest(self.buf) if self.n else None

    def _kept(self) -> list[bytes]:
        """The first event and the latest nine, newest first, as records."""
        recs = self._records()
        kept = recs[-_NEWEST:]
        first = self.first if self.first is not None else (recs[0] if recs else None)
        if first is not None and first not in kept:
            kept = [first, *kept]
        return kept[::-1]

    def items(self) -> list[Shown]:
        """The first event and the latest nine, newest first."""
        return [_shown(_time(r), self._fields_of(r)) for r in self._kept()]
