"""The internal topic's records: a batch of engine parts for one partition, and ingest progress.

Ingest writes one record per batch and internal partition (Faust costs ~140 µs a record, so
one record per event could not serve a city); the evaluator of that partition reads it and
feeds the parts to its engine. Progress travels on the last record of a batch for a partition
and, now and then, in records of its own for every partition: per source partition an ingest
owns, the arrival up to which it has written that partition's input (``frontier``), and in
``event`` mode the newest producer tick it has passed on (``ticks``). An evaluator applies
input only below every source partition's frontier, and ticks to the least frontier (``wall``)
or tick (``event``), so neither another worker's backlog nor a tick is overtaken (see
``PartitionEvaluator``). Parts travel as
compact JSON arrays in field order — no field names, no pickles — so a record is small,
language-neutral and safe to read back after an upgrade that adds optional fields at the end.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import msgspec

from rules.inputs import SOURCE_OF, FeedbackIn, Input, Obs, new_record

_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder().decode

FORMAT = 2


@dataclass(frozen=True, slots=True)
class Batch:
    """A decoded internal record: parts in arrival order, and progress (source partition ->
    epoch milliseconds), either of them empty."""

    parts: tuple[Input, ...] = ()
    frontier: dict[str, int] | None = None
    ticks: dict[str, tuple[int, int]] | None = None   # (tick time, the tick record's arrival)


def _obs_back(a: list[Any]) -> Obs:
    return new_record(Obs, (a[0], a[1], a[2], tuple(a[3]), a[4], a[5], a[6], a[7], a[8], a[9], a[10], a[11],
                            tuple(a[12]) if a[12] is not None else None))


#: A part as a JSON array in field order (named tuples are arrays to msgspec, a ``Source``
#: its number, ``raw`` base64): also how the held parts are written in a checkpoint.
pack_part = msgspec.to_builtins


def unpack_part(a: list[Any]) -> Input:
    """The part an array gives; it is read on every event, so built without the named
    tuples' own (Python) constructors."""
    fb = a[9]
    raw = a[14]
    return new_record(Input, (
        SOURCE_OF[a[0]], a[1], a[2], a[3], a[4], a[5], a[6], a[7], tuple([_obs_back(o) for o in a[8]]),
        None if fb is None else new_record(FeedbackIn, (
            fb[0], fb[1], fb[2], fb[3], fb[4], tuple(fb[5]) if fb[5] is not None else None, fb[6])),
        a[10], a[11], a[12], a[13], base64.b64decode(raw) if raw is not None else None))


def encode(parts: Sequence[Input] = (), frontier: dict[str, int] | None = None,
           ticks: Mapping[str, Sequence[int]] | None = None) -> bytes:
    """``frontier``: ``"TOPIC/PARTITION"`` (contract topic name) -> epoch milliseconds;
    ``ticks``: the same -> (tick time, the arrival of the record that carried it)."""
    obj: dict[str, Any] = {"v": FORMAT, "parts": parts}
    if frontier:
        obj["frontier"] = frontier
    if ticks:
        obj["ticks"] = ticks
    return _encode(obj)


def _frontier(obj: dict[str, Any]) -> dict[str, int] | None:
    value = obj.get("frontier")
    return None if value is None else {str(k): int(v) for k, v in value.items()}


def _ticks(obj: dict[str, Any]) -> dict[str, tuple[int, int]] | None:
    value = obj.get("ticks")
    return None if value is None else {str(k): (int(t), int(a)) for k, (t, a) in value.items()}


def decode(record: bytes) -> Batch:
    """Raises ValueError on a record this version cannot read (the caller dead-letters it)."""
    try:
        obj = _decode(record)
        if obj.get("v") != FORMAT:
            raise ValueError(f"internal record format {obj.get('v')!r}, expected {FORMAT}")
        return Batch(parts=tuple(unpack_part(a) for a in obj["parts"]),
                     frontier=_frontier(obj), ticks=_ticks(obj))
    except (msgspec.DecodeError, KeyError, IndexError, TypeError, AttributeError, ValueError) as e:
        raise ValueError(f"unreadable internal record: {e}") from None
