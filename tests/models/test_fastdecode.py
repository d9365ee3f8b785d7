"""The hot path's msgspec decoder against the pydantic model it mirrors: on random camera
messages, valid and broken in every field, it never accepts what pydantic refuses, accepts
what pydantic accepts (but for a key given twice, which it leaves to pydantic), and reads an
accepted message the same."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from models.decode import BadInput, Source, decode
from models.fastdecode import camera
from models.inputs import CameraEvent

STAMP = "2026-11-23T17:10:00.779+08:00"

# Values that sit on and beside every bound the model has, and every JSON type.
NUMBERS = st.sampled_from([0, 1, -1, 0.5, 1.0, 1.0000000000000002, -0.0, -1e-9, 90, 90.0000001, -90,
                           180, -180.5, 1e308, 5e-324, 10**30, True, False])
TEXTS = st.one_of(
    st.text(max_size=4),
    st.text(alphabet=st.characters(codec="utf-8"), min_size=120, max_size=136),
    st.sampled_from(["", "x" * 128, "x" * 129, "好" * 128, "😀" * 129, STAMP, "2026-11-23T17:10:00",
                     "2026-11-23T17:10:00Z", "2026-02-30T00:00:00Z", "2100-01-01T00:00:00Z",
                     "1969-12-31T23:59:59.999Z", "2026-11-23 17:10:00+08:00", "street_vendor"]))
ANY = st.one_of(st.none(), NUMBERS, TEXTS, st.lists(NUMBERS, max_size=5),
                st.builds(dict), st.fixed_dictionaries({"lat": st.just(30.0), "lon": NUMBERS}))


@st.composite
def detection(draw: st.DrawFn) -> dict[str, Any]:
    d: dict[str, Any] = {"label": "parked_car", "track_id": "t-1", "confidence": 0.8,
                         "bbox": [0.1, 0.2, 0.3, 0.4], "location": {"lat": 30.0, "lon": 104.0}}
    for name in draw(st.lists(st.sampled_from(sorted(d)), max_size=2, unique=True)):
        if draw(st.booleans()):
            del d[name]
        else:
            d[name] = draw(ANY)
    if draw(st.integers(0, 5)) == 0:
        where = draw(st.sampled_from(["bbox", "location"]))
        if isinstance(d.get(where), list) and d[where]:
            d[where][draw(st.integers(0, len(d[where]) - 1))] = draw(ANY)
        elif isinstance(d.get(where), dict):
            d[where][draw(st.sampled_from(["lat", "lon", "alt"]))] = draw(ANY)
    return d


@st.composite
def message(draw: st.DrawFn) -> bytes:
    m: dict[str, Any] = {"event_id": "cam-1-1", "camera_id": "cam-1", "observed_at": STAMP,
                         "snapshot_url": "https://evidence.example/1.jpg",
                         "detections": draw(st.lists(detection(), max_size=3))}
    for name in draw(st.lists(st.sampled_from(sorted(m)), max_size=2, unique=True)):
        if draw(st.booleans()):
            del m[name]
        else:
            m[name] = draw(ANY)
    if draw(st.booleans()):
        m["extra"] = draw(ANY)
    raw = json.dumps(m).encode()   # big integers and lone surrogates (escaped) included
    cut = draw(st.integers(0, 20))
    if cut == 0:
        raw = raw[: draw(st.integers(0, len(raw)))]          # truncated
    elif cut == 1:
        raw = raw.replace(b"0.8", b"NaN", 1)                  # not JSON, but pydantic parses it
    elif cut == 2:
        raw = raw + b" "
    return raw


def same(fast: Any, model: CameraEvent) -> None:
    msg, t = fast
    assert (msg.event_id, msg.camera_id, t, msg.snapshot_url) == \
        (model.event_id, model.camera_id, model.observed_at, model.snapshot_url)
    assert len(msg.detections) == len(model.detections)
    for a, b in zip(msg.detections, model.detections, strict=True):
        assert (a.label, a.track_id, a.confidence, a.bbox) == (b.label, b.track_id, b.confidence, b.bbox)
        assert (a.location is None) == (b.location is None)
        if a.location is not None and b.location is not None:
            assert (a.location.lat, a.location.lon) == (b.location.lat, b.location.lon)


@settings(max_examples=600, deadline=None)
@given(message())
def test_the_fast_decoder_agrees_with_the_model(raw: bytes) -> None:
    fast, model = camera(raw), decode(Source.CAMERA, raw)
    if fast is None:
        assert isinstance(model, BadInput), f"refused what the model accepts: {raw!r}"
    else:
        assert isinstance(model, CameraEvent), f"accepted what the model refuses ({model}): {raw!r}"
        same(fast, model)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_the_fast_decoder_never_accepts_garbage_the_model_refuses(raw: bytes) -> None:
    if camera(raw) is not None:
        assert isinstance(decode(Source.CAMERA, raw), CameraEvent)


BOUNDS = [("confidence", 0.0, 1.0), ("bbox", 0.0, 1.0), ("lat", -90.0, 90.0), ("lon", -180.0, 180.0)]


@pytest.mark.parametrize(("name", "low", "high"), BOUNDS)
def test_every_bound_is_where_the_model_has_it(name: str, low: float, high: float) -> None:
    for value in (low, high, math.nextafter(low, -math.inf), math.nextafter(high, math.inf)):
        d: dict[str, Any] = {"label": "parked_car", "confidence": 0.5,
                             "bbox": [0.5, 0.5, 0.5, 0.5], "location": {"lat": 30.0, "lon": 104.0}}
        if name == "bbox":
            d["bbox"][3] = value
        elif name in ("lat", "lon"):
            d["location"][name] = value
        else:
            d[name] = value
        raw = json.dumps({"event_id": "e", "camera_id": "c", "observed_at": STAMP,
                          "detections": [d]}).encode()
        accepted = isinstance(decode(Source.CAMERA, raw), CameraEvent)
        assert accepted == (low <= value <= high)
        assert (camera(raw) is not None) == accepted, (name, value)


def test_a_key_given_twice_is_left_to_the_model() -> None:
    """pydantic reads the last of two equal keys; msgspec checks both. Nothing is lost: the
    model decides (and the fast path is for what producers send, not for this)."""
    raw = (b'{"event_id":"","event_id":"e","camera_id":"c","observed_at":"' + STAMP.encode() +
           b'","detections":[]}')
    assert camera(raw) is None
    assert isinstance(decode(Source.CAMERA, raw), CameraEvent)
