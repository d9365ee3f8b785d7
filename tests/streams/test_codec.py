"""Internal records round-trip every field of every kind of part."""

from __future__ import annotations

from pathlib import Path

import msgspec
import orjson
import pytest

from models.decode import Source
from rules.ingest import BadInput, Ingest
from rules.inputs import FeedbackIn, Input, Obs
from streams.codec import Batch, decode, encode, pack_part, unpack_parts
from tests.rules.harness import Harness

PARTS = [
    Input(source=Source.CAMERA, topic="city.events.camera", event_id="c-1", time=1_700_000_000_123,
          grid_id="JY-0312", device_id="cam-1", alive=True, snapshot_url="https://e/x.jpg",
          obs=(Obs("street_vendor", 30.1, 104.2, ("z-1", "z-2"), track_id="t-1", confidence=0.9),),
          arrival=1_700_000_000_200, key="cam-1", partition=3, offset=1881),
    Input(source=Source.SENSOR, topic="city.events.sensor", event_id="s-1", time=5, grid_id="G",
          device_id="bin-1", obs=(Obs("bin_fill", 1.0, 2.0, (), value=0.95),)),
    Input(source=Source.REPORT, topic="city.events.report", event_id="r-1", time=6, grid_id="G",
          obs=(Obs("garbage_pile", 1.0, 2.0, (), located=False, report_source="hotline",
                   reporter_id="u-1", address="东大街 12 号", photos=("https://e/1.jpg",)),)),
    Input(source=Source.FEEDBACK, topic="city.alerts.feedback", event_id="f-1", time=7,
          grid_id="G", feedback=FeedbackIn("a-G-0123456789abcdef0123", "defer", "duty-7",
                                           note="缓办", photos=("https://e/2.jpg",), until=99),
          raw=b"\xff\xfe raw bytes"),
]


def test_parts_round_trip() -> None:
    assert decode(encode(PARTS)) == Batch(parts=tuple(PARTS))


def test_a_record_is_written_as_it_was_when_parts_were_named_tuples() -> None:
    """Workers of both versions read each other's records during a rolling upgrade: the
    bytes 72e6e33 wrote for these parts, when they were named tuples."""
    assert encode(PARTS[:2], {"city.events.camera/3": 1_700_000_000_200}) == (
        b'{"v":2,"parts":[[0,"city.events.camera","c-1",1700000000123,"JY-0312","cam-1",true,'
        b'"https://e/x.jpg",[["street_vendor",30.1,104.2,["z-1","z-2"],true,"t-1",0.9,null,null,null,'
        b'null,null,null]],null,1700000000200,"cam-1",3,1881,null],[1,"city.events.sensor","s-1",5,'
        b'"G","bin-1",false,null,[["bin_fill",1.0,2.0,[],true,null,null,null,0.95,null,null,null,'
        b'null]],null,null,null,null,null,null]],"frontier":{"city.events.camera/3":1700000000200}}')


def _typed(value: object) -> object:
    """A value with the type of everything in it, which ``==`` alone does not compare
    (``5 == 5.0``, ``Source.CAMERA == 0``, ``("a",) != ["a"]`` only as a whole)."""
    if isinstance(value, msgspec.Struct):
        return (type(value), _typed(msgspec.structs.astuple(value)))
    if isinstance(value, (tuple, list)):
        return (type(value), [_typed(v) for v in value])
    return (type(value), value)


def test_parts_round_trip_with_their_types() -> None:
    """A source stays a Source, and containers the records and tuples the engine was given."""
    assert _typed(decode(encode(PARTS)).parts) == _typed(tuple(PARTS))


def test_a_number_is_read_as_its_field_says(tmp_path: Path) -> None:
    """A reading ingest made is a float (``models.inputs`` turns a JSON ``85`` into 85.0), and
    one read back is one too whatever the record says: an alert renders it the same after
    the hop as in a replay, which feeds the engine without it."""
    h = Harness(tmp_path)
    made = Ingest(h.city, h.rules)(
        Source.SENSOR, "city.events.sensor",
        b'{"event_id": "s-9", "sensor_id": "x", "kind": "noise", "observed_at": "2026-12-06T10:00:00+08:00",'
        b' "value": 85, "location": {"lat": 30.001, "lon": 104.001}}')
    assert not isinstance(made, BadInput) and type(made[0].obs[0].value) is float
    written = encode(made).replace(b"85.0", b"85")
    assert written != encode(made)
    assert _typed(decode(written).parts) == _typed(tuple(made))


def test_progress_round_trips_alone_and_with_parts() -> None:
    frontier = {"city.events.camera/0": 1_700_000_000_000, "city.alerts.feedback/3": 5}
    ticks = {"city.events.sensor/1": (7, 9)}
    assert decode(encode(frontier=frontier)) == Batch(frontier=frontier)
    assert decode(encode(PARTS[:1], frontier, ticks)) == Batch(tuple(PARTS[:1]), frontier, ticks)


@pytest.mark.parametrize("record", [b"not json", b'{"v": 1, "parts": []}', b'{"v": 2}',
                                    b'{"v": 2, "parts": [], "frontier": {"a/0": "x"}}',
                                    b'{"v": 2, "parts": [], "ticks": []}',
                                    b'{"v": 2, "parts": [[0]]}',
                                    b'{"v": 2, "parts": [[9, "t", "e", 1, "G", null, false, null, [],'
                                    b' null, null, null, null, null, null]]}',
                                    b'{"v": 2, "parts": [[0, "t", "e", "1", "G", null, false, null, [],'
                                    b' null, null, null, null, null, null]]}',
                                    b'{"v": 2, "parts": [[0, "t", "e", 1, "G", null, false, null,'
                                    b' [["k", 1.0, 2.0, "z-1"]], null, null, null, null, null, null]]}'])
def test_unreadable_records_raise_value_error(record: bytes) -> None:
    with pytest.raises(ValueError):
        decode(record)


def test_another_format_is_named_before_what_its_fields_lack() -> None:
    with pytest.raises(ValueError, match="format 3, expected 2"):
        decode(b'{"v": 3, "parts": [{"source": "camera"}]}')


def test_held_parts_round_trip_through_a_checkpoint() -> None:
    """The evaluator writes the parts it holds in its checkpoint's meta (``pack_part``, then
    orjson) and reads them back with ``unpack_parts``."""
    back = unpack_parts([orjson.loads(orjson.dumps(pack_part(p))) for p in PARTS])
    assert _typed(back) == _typed(PARTS)
