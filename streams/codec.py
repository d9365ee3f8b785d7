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

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import msgspec

from rules.inputs import Input

_encode = msgspec.json.Encoder().encode

FORMAT = 2


@dataclass(frozen=True, slots=True)
class Batch:
    """A decoded internal record: parts in arrival order, and progress (source partition ->
    epoch milliseconds), either of them empty."""

    parts: tuple[Input, ...] = ()
    frontier: dict[str, int] | None = None
    ticks: dict[str, tuple[int, int]] | None = None   # (tick time, the tick record's arrival)


#: A part as a JSON array in field order (the parts are array-like structs, a ``Source``
#: its number, ``raw`` base64): also how the held parts are written in a checkpoint.
pack_part = msgspec.to_builtins


class _Record(msgspec.Struct):
    """An internal record as msgspec reads it: the parts straight into the engine's records
    (``rules.inputs.FrozenRecord``), every field checked against its annotation at C speed
    (~1.3 µs a camera part, against ~3 µs for JSON arrays unpacked in Python). A float field
    is always a float (a JSON ``5`` too), as the annotation says; ingest never writes
    anything else."""

    v: int
    parts: tuple[Input, ...]
    frontier: dict[str, int] | None = None
    ticks: dict[str, tuple[int, int]] | None = None


_decode = msgspec.json.Decoder(_Record).decode


def unpack_parts(arrays: list[Any]) -> list[Input]:
    """Parts :func:`pack_part` made, read back (the held parts of a checkpoint)."""
    return msgspec.convert(arrays, list[Input])


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


def decode(record: bytes) -> Batch:
    """Raises ValueError on a record this version cannot read (the caller dead-letters it)."""
    try:
        obj = _decode(record)
    except msgspec.DecodeError as e:
        raise ValueError(f"unreadable internal record: {_version_problem(record) or e}") from None
    if obj.v != FORMAT:
        raise ValueError(f"unreadable internal record: {_version_problem(record)}")
    return Batch(obj.parts, obj.frontier, obj.ticks)


def _version_problem(record: bytes) -> str | None:
    """Why a record is of another format, if it is: said before what its fields lack, since
    another format's fields are expected not to fit."""
    try:
        v = msgspec.json.decode(record).get("v")
    except (msgspec.DecodeError, AttributeError):
        return None
    return None if v == FORMAT else f"internal record format {v!r}, expected {FORMAT}"
