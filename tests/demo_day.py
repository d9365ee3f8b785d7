"""The demo day (2026-11-20, seed 7) and its replay, made once per test session.

A dozen tests across modules need the same day: generating it takes ~7 s and replaying it
~5 s, and the suite must stay well under 15 minutes. Each call returns fresh objects (parsed
from bytes kept once), so a test that changes its lines changes nobody else's.
"""

from __future__ import annotations

import functools
from datetime import date
from typing import Any, Final

import orjson

from rules.demo.city import GEOJSON_PATH as DEMO_CITY
from rules.demo.dispatch import generate_with_feedback
from rules.pack import DEFAULT_PACK

DAY: Final = date(2026, 11, 20)
SEED: Final = 7


@functools.cache
def _day() -> tuple[bytes, ...]:
    return tuple(orjson.dumps(line) for line in generate_with_feedback(DEMO_CITY, DEFAULT_PACK, DAY, SEED))


@functools.cache
def _replay() -> tuple[tuple[bytes, ...], tuple[bytes, ...]]:
    from tests.e2e.workers import replay_of

    alerts, dead = replay_of(day_lines(), DEMO_CITY, [DEFAULT_PACK])
    return tuple(map(orjson.dumps, alerts)), tuple(map(orjson.dumps, dead))


def day_lines() -> list[dict[str, Any]]:
    """``cityorder demo``'s day with feedback: every input line, ticks included."""
    return [orjson.loads(line) for line in _day()]


def day_replay() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(alerts, dead letters) of :func:`day_lines` as ``cityorder replay`` gives them (4 partitions)."""
    alerts, dead = _replay()
    return [orjson.loads(a) for a in alerts], [orjson.loads(d) for d in dead]
