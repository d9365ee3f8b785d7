"""Ingest's two short cuts for camera messages (the msgspec decoder and the one-detection
builder) give exactly what the general path gives, whatever the message."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from models.decode import Source
from rules.ingest import Ingest
from tests.rules.harness import Harness

STAMP = "2026-11-18T10:00:00.250+08:00"
MAIN_ROAD, OTHER_GRID, NOWHERE = (30.005, 104.005), (30.005, 104.015), (31.0, 105.0)


def message(**det: Any) -> bytes:
    d = {"label": "street_vendor", "track_id": "t1", "confidence": 0.9} | det
    d = {k: v for k, v in d.items() if v is not None}
    return json.dumps({"event_id": "e1", "camera_id": "cam-1", "observed_at": STAMP,
                       "snapshot_url": "https://evidence.example/1.jpg", "detections": [d]}).encode()


CASES = [
    message(),                                                   # the camera's own position
    message(location={"lat": MAIN_ROAD[0], "lon": MAIN_ROAD[1]}),
    message(location={"lat": OTHER_GRID[0], "lon": OTHER_GRID[1]}),   # two grids' parts
    message(location={"lat": NOWHERE[0], "lon": NOWHERE[1]}),    # outside the map: bad input
    message(label="unicorn"),                                    # not a label: ignored, counted
    message(track_id=None),
    message(confidence=1),
    message().replace(b'"cam-1"', b'"cam-9"'),                   # not registered: needs a location
    message(location={"lat": MAIN_ROAD[0], "lon": MAIN_ROAD[1]}).replace(b'"cam-1"', b'"cam-9"'),
    message().replace(b'"event_id": "e1"', b'"event_id": "", "event_id": "e1"'),  # left to pydantic
]


@pytest.mark.parametrize("raw", CASES)
def test_the_short_cuts_give_what_the_general_path_gives(tmp_path: Path, raw: bytes,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    h = Harness(tmp_path)
    fast = Ingest(h.city, h.rules)
    got = fast(Source.CAMERA, "city.events.camera", raw, key="cam-1", partition=3, offset=7)
    monkeypatch.setattr("rules.ingest.fast_camera", lambda raw: None)
    monkeypatch.setattr(Ingest, "_one_detection", lambda *a: None)
    general = Ingest(h.city, h.rules)
    want = general(Source.CAMERA, "city.events.camera", raw, key="cam-1", partition=3, offset=7)
    assert got == want
    assert fast.ignored == general.ignored
