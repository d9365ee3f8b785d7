"""What the fuzzer found, each cut down to a reproducer (``python -m bench.fuzz`` prints them).

A bug still open is a strict xfail naming it (``reason=OPEN[tag]``, tests/fuzz/known.py), so
this file fails the day it is fixed: then drop the mark here and the entry in known.py, which
also lets the fuzzer generate that input again. A fixed one stays as a plain test.
"""

from __future__ import annotations

import pytest

from rules.replay import parse_line
from tests.fuzz.check import describe, run
from tests.fuzz.messages import ANY_OR_MALFORMED, CAMERA, Line


def _deep_value_line(depth: int) -> Line:
    text = (b'{"topic":"city.events.camera","key":null,"value":' + b"[" * depth + b"]" * depth
            + b"}")
    return Line(text, "line_edge", CAMERA, ANY_OR_MALFORMED, f"value nested {depth} deep")


@pytest.mark.parametrize("clock", ["event", "wall"])
@pytest.mark.parametrize("depth", [1000, 1023])
def test_replay_line_with_a_value_nested_1000_deep(depth: int, clock: str) -> None:
    """Found (tag ``deep-value``): ``cityorder replay`` of a one-line file whose ``value`` is
    ``[[[...]]]`` 1,000 levels deep stopped with ``RecursionError`` (rules/replay.py
    ``parse_line`` -> ``_compact``: orjson reads up to 1,024 levels but writes at most 255, and
    the ``json.dumps`` fallback recursed past the interpreter's limit). Right: a
    ``ReplayFileError`` (a line the file format cannot carry) or a dead letter (``bad_json``:
    the payload is deeper than decode reads)."""
    s = run([_deep_value_line(depth)], clock)
    assert not s.failures, describe(s.lines, s.failures[0], clock, 4)


@pytest.mark.parametrize("depth", [254, 255, 256, 500, 1024, 3000])
def test_replay_line_with_a_deep_value_around_the_limits(depth: int) -> None:
    """Either side of the bug above: read and dead-lettered, or refused as a malformed line."""
    s = run([_deep_value_line(depth)])
    assert not s.failures, describe(s.lines, s.failures[0], "event", 4)


@pytest.mark.parametrize("number", ["18446744073709551616", "-9223372036854775809",
                                    "123456789012345678901234567890"])
def test_replay_line_value_keeps_integers_past_64_bits(number: str) -> None:
    """Found (tag ``bigint-value``): a ``value`` is sent as the compact JSON of the value the
    line holds (RULES.md), but orjson reads an integer past 64 bits as a float, so
    ``123456789012345678901234567890`` was sent as ``1.2345678901234568e+29``: another number,
    not what the file says. (Not a crash: no field of the contract takes such an integer as
    valid, but a dead letter showed bytes that were never in the file.)"""
    payload = b'{"event_id":"e-1","n":' + number.encode() + b"}"
    line = b'{"topic":"city.events.sensor","key":null,"value":' + payload + b"}"
    assert parse_line(line).payload == payload
