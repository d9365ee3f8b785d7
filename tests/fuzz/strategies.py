"""Hypothesis strategies over the fuzzer's building blocks (tests/fuzz/messages.py).

Every choice of a generator is one hypothesis draw, so a failing example shrinks towards the
first entry of each list, the low end of each range and "no mutation": a valid, plain message.

>>> from tests.fuzz.strategies import lines
>>> lines(topic="city.events.sensor", family="boundary").example()   # doctest: +SKIP
Line(text=b'{"topic":"city.events.sensor",...', family='boundary', ...)
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from hypothesis import strategies as st

from tests.fuzz.known import OPEN
from tests.fuzz.messages import TOPICS, Gen, Line, Msg, Weighted

T = TypeVar("T")
FAMILIES = ("valid", "duplicate", "boundary", "mutated", "tick", "malformed")
CLOCKS = ("event", "wall")


class HypothesisDraw:
    """:class:`~tests.fuzz.messages.Draw` over hypothesis's ``draw`` (from ``st.composite`` or
    ``st.data()``)."""

    def __init__(self, draw: Callable[[st.SearchStrategy[Any]], Any]) -> None:
        self.draw = draw

    def int(self, lo: int, hi: int) -> int:
        return self.draw(st.integers(lo, hi))

    def real(self, lo: float, hi: float) -> float:
        return self.draw(st.floats(lo, hi, allow_nan=False, allow_infinity=False))

    def choice(self, seq: Sequence[T]) -> T:
        return self.draw(st.sampled_from(seq))

    def chance(self, p: float) -> bool:
        if p <= 0:
            return False
        if p >= 1:
            return True
        # Shrinks to 0: no, the plain branch.
        return self.draw(st.integers(0, 9_999)) >= 10_000 * (1 - p)

    def pick(self, table: Weighted[T]) -> T:
        # Shrinks to 0: the first (most common) entry.
        return table.values[bisect.bisect_right(table.cum, self.draw(st.integers(0, table.total - 1)))]


def generator(draw: Callable[[st.SearchStrategy[Any]], Any], clock: str = "event") -> Gen:
    """A :class:`~tests.fuzz.messages.Gen` for one session, every choice a hypothesis draw;
    it does not generate the inputs of bugs still open (tests/fuzz/known.py), which
    tests/fuzz/test_found.py keeps as strict xfails."""
    return Gen(HypothesisDraw(draw), clock=clock, avoid=frozenset(OPEN))


@st.composite
def messages(draw: Callable[[st.SearchStrategy[Any]], Any], topic: str) -> Msg:
    """A valid message of ``topic``: the demo city's devices, grids and zones, the contract's
    words; key, object and input time."""
    return generator(draw).message(topic)


def camera_messages() -> st.SearchStrategy[Msg]:
    return messages(TOPICS[0])


def sensor_messages() -> st.SearchStrategy[Msg]:
    return messages(TOPICS[1])


def report_messages() -> st.SearchStrategy[Msg]:
    return messages(TOPICS[2])


def feedback_messages() -> st.SearchStrategy[Msg]:
    return messages(TOPICS[3])


@st.composite
def lines(draw: Callable[[st.SearchStrategy[Any]], Any], topic: str | None = None,
          family: str | None = None, clock: str = "event") -> Line:
    """One replay-file line of ``family`` and ``topic`` (any if None), with what it may become."""
    return generator(draw, clock).line(family, topic)


@st.composite
def sessions(draw: Callable[[st.SearchStrategy[Any]], Any], topic: str | None = None,
             family: str | None = None, clock: str | None = None,
             max_lines: int = 12) -> tuple[str, list[Line]]:
    """A clock mode and a short replay file: lines of ``family`` / ``topic`` among valid
    context of any topic (which gives the engines state for them to meet)."""
    clock = clock or draw(st.sampled_from(CLOCKS))
    gen = generator(draw, clock)
    n = draw(st.integers(1, max_lines))
    out = []
    for _ in range(n):
        targeted = family is None or draw(st.booleans())
        out.append(gen.line(family if targeted else "valid", topic if targeted else None))
    return clock, out
