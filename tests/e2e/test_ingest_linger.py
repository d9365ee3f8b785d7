"""``CITYORDER_INGEST_LINGER``: ingest writes at most once per linger while it keeps up.

Why it exists: the embedded broker's fetch lists every record batch stored in a partition, so
its cost grows with the number of batches written (bench/README.md, Soak). A worker that
writes what each fetch brings writes a batch to each internal partition every ~25 ms.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from rules.demo.city import GEOJSON_PATH as DEMO_CITY
from rules.demo.day import generate_day
from streams.settings import Settings
from streams.simulate import simulate
from streams.topics import default_topics, ensure_topics
from tests.e2e.workers import Worker, metric_total

pytestmark = pytest.mark.timeout(180)

RATE, SECONDS = 100, 6


def _parts_records(settings: Settings, tmp_path: Path, linger_ms: int) -> float:
    """Internal records of parts the evaluators applied while ``RATE`` lines a second arrived
    for ``SECONDS`` on the wall clock."""
    lines = list(itertools.islice(generate_day(DEMO_CITY, date(2026, 11, 20), 7),
                                  RATE * SECONDS))
    worker = Worker(settings, tmp_path / f"linger-{linger_ms}.log", ingest_linger_ms=linger_ms)
    try:
        worker.wait_ready()

        async def produce() -> Any:
            await ensure_topics(settings, default_topics(settings))
            return await simulate(settings, lines, rate=RATE, strict_order=False, end_tick=False)

        sent = asyncio.run(produce())
        assert sent.sent == len(lines)
        time.sleep(3)  # the last fetches are written and applied
        return metric_total(worker, 'cityorder_internal_records_total{kind="parts"}')
    finally:
        worker.stop()


def test_a_linger_cuts_the_batches_ingest_writes(settings: Settings, tmp_path: Path) -> None:
    """Measured: 53 internal records of parts with a 500 ms linger, 441 without (the bound
    fails at 0 ms)."""
    lingering = _parts_records(settings, tmp_path, 500)
    bound = settings.partitions * (SECONDS / 0.5 + 4)
    assert 0 < lingering <= bound, f"{lingering} internal records with a 500 ms linger, want <= {bound}"
