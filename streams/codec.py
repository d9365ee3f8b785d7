"""The internal topic's records: a batch of engine parts for one partition, or ingest progress.

Ingest writes one record per batch and internal partition (Faust costs ~140 µs a record, so
one record per event could not serve a city); the evaluator of that partition reads it and
feeds the parts to its engine. A progress record carries, per source partition an ingest owns,
the time up to which it has written that partition's input here (``bounds``): the partition's
clock ticks to the least of all source partitions' bounds (see ``PartitionEvaluator``), so a
tick never overtakes input that some worker's ingest has not written yet. Parts travel as
compact JSON arrays in field order — no field names, no pickles — so a record is small,
language-neutral and safe to read back after an upgrade that adds optional fields at the end.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

import orjson

from models.decode import Source
from rules.inputs import FeedbackIn, Input, Obs

FORMAT = 1


@dataclass(frozen=True, slots=True)
class Batch:
    """A decoded internal record: parts in arrival order, or progress (source partition -> bound)."""

    parts: tuple[Input, ...] = ()
    bounds: dict[str, int] | None = None


def _obs(o: Obs) -> list[Any]:
    return [o.kind, o.lat, o.lon, list(o.zone_ids), o.located, o.track_id, o.confidence, o.state,
            o.value, o.report_source, o.reporter_id, o.address,
            list(o.photos) if o.photos is not None else None]


def _obs_back(a: list[Any]) -> Obs:
    return Obs(a[0], a[1], a[2], tuple(a[3]), a[4], a[5], a[6], a[7], a[8], a[9], a[10], a[11],
               tuple(a[12]) if a[12] is not None else None)


def _part(p: Input) -> list[Any]:
    fb = p.feedback
    return [int(p.source), p.topic, p.event_id, p.time, p.grid_id, p.device_id, p.alive,
            p.snapshot_url, [_obs(o) for o in p.obs],
            None if fb is None else [fb.alert_id, fb.action, fb.actor, fb.note, fb.assignee,
                                     list(fb.photos) if fb.photos is not None else None, fb.until],
            p.arrival, p.key, p.partition, p.offset,
            base64.b64encode(p.raw).decode("ascii") if p.raw is not None else None]


def _part_back(a: list[Any]) -> Input:
    fb = a[9]
    return Input(
        source=Source(a[0]), topic=a[1], event_id=a[2], time=a[3], grid_id=a[4], device_id=a[5],
        alive=a[6], snapshot_url=a[7], obs=tuple(_obs_back(o) for o in a[8]),
        feedback=None if fb is None else FeedbackIn(
            fb[0], fb[1], fb[2], fb[3], fb[4], tuple(fb[5]) if fb[5] is not None else None, fb[6]),
        arrival=a[10], key=a[11], partition=a[12], offset=a[13],
        raw=base64.b64decode(a[14]) if a[14] is not None else None)


def encode_parts(parts: list[Input]) -> bytes:
    return orjson.dumps({"v": FORMAT, "parts": [_part(p) for p in parts]})


def encode_bounds(bounds: dict[str, int]) -> bytes:
    """``bounds``: ``"TOPIC/PARTITION"`` (contract topic name) -> epoch milliseconds."""
    return orjson.dumps({"v": FORMAT, "bounds": bounds})


def decode(record: bytes) -> Batch:
    """Raises ValueError on a record this version cannot read (the caller dead-letters it)."""
    try:
        obj = orjson.loads(record)
        if obj.get("v") != FORMAT:
            raise ValueError(f"internal record format {obj.get('v')!r}, expected {FORMAT}")
        if "bounds" in obj:
            return Batch(bounds={str(k): int(v) for k, v in obj["bounds"].items()})
        return Batch(parts=tuple(_part_back(a) for a in obj["parts"]))
    except (orjson.JSONDecodeError, KeyError, IndexError, TypeError, AttributeError, ValueError) as e:
        raise ValueError(f"unreadable internal record: {e}") from None
