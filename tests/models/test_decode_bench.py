"""On-demand benchmark of the hot path: ``CITYORDER_BENCH=1 pytest -s tests/models -k bench``.

CI never times anything (timings depend on the machine); this prints the figures to compare
before and after a change to the models.
"""

import os
import timeit

import pytest

from models import BadInput, Source, decode

pytestmark = pytest.mark.skipif(
    not os.environ.get("CITYORDER_BENCH"), reason="benchmark: set CITYORDER_BENCH=1"
)

MESSAGES = {
    "camera, 1 detection": (
        Source.CAMERA,
        b'{"event_id": "cam-0012-000081723", "camera_id": "cam-0012",'
        b' "observed_at": "2026-11-22T08:15:03.120+08:00",'
        b' "snapshot_url": "https://evidence.example/cam-0012/81723.jpg",'
        b' "detections": [{"label": "street_vendor", "track_id": "t-881", "confidence": 0.91,'
        b' "bbox": [0.41, 0.52, 0.10, 0.22], "location": {"lat": 30.3921, "lon": 104.5462}}]}',
    ),
    "camera, heartbeat": (
        Source.CAMERA,
        b'{"event_id": "cam-0012-000081724", "camera_id": "cam-0012",'
        b' "observed_at": "2026-11-22T08:15:03.220+08:00", "detections": []}',
    ),
    "sensor": (
        Source.SENSOR,
        b'{"event_id": "pk-00931-5521", "sensor_id": "pk-00931", "kind": "parking_occupancy",'
        b' "observed_at": "2026-11-22T08:15:00+08:00", "state": "occupied",'
        b' "location": {"lat": 30.3919, "lon": 104.5470}}',
    ),
    "feedback": (
        Source.FEEDBACK,
        b'{"event_id": "fb-77812", "alert_id": "a-JY-0312-3f9c0e51d2a4b7c81e09",'
        b' "action": "acknowledge", "actor": "duty-officer-7",'
        b' "at": "2026-11-22T08:31:00+08:00", "note": "\xe5\xb7\xb2\xe6\xb4\xbe\xe5\x8d\x95"}',
    ),
    "camera, bad confidence": (
        Source.CAMERA,
        b'{"event_id": "cam-1", "camera_id": "cam-0012",'
        b' "observed_at": "2026-11-22T08:15:03.120+08:00",'
        b' "detections": [{"label": "street_vendor", "confidence": 1.5}]}',
    ),
}


@pytest.mark.parametrize("name", list(MESSAGES))
def test_bench_decode(name: str) -> None:
    source, raw = MESSAGES[name]
    expect_bad = "bad" in name
    assert isinstance(decode(source, raw), BadInput) is expect_bad
    number = 20_000 if expect_bad else 200_000
    best = min(timeit.repeat(lambda: decode(source, raw), number=number, repeat=5)) / number
    print(f"\n{name}: {best * 1e6:.2f} µs per message ({len(raw)} bytes)")
