"""``cityorder worker`` with a bug planted in its engine, to test the last line of defence.

The engine raises while applying any input whose event id starts with :data:`POISON`, after
it has changed its state (the subject, the stats, an alert perhaps): the worker must undo that
change, dead-letter the input as ``internal_error`` and go on. Run as
``python -m tests.e2e.faulty_worker worker ...`` (what ``Worker(module=...)`` does); a test
plants the same bug in its own process with :func:`plant` to get the replay to compare with.
``tests.e2e.timer_faulty_worker`` plants :func:`plant_timer` instead: a timer that raises.
"""

from __future__ import annotations

from typing import Any

from rules.engine import Engine
from rules.timers import END, Timer

POISON = "poison-"


class PlantedFault(RuntimeError):
    """The planted bug."""


def plant() -> Any:
    """Make ``Engine._apply`` raise for poison inputs, after it has applied them; returns the
    original, to put back."""
    original = Engine._apply

    def _apply(self: Engine, inp: Any) -> None:
        original(self, inp)
        if inp.event_id.startswith(POISON):
            raise PlantedFault(f"planted fault after applying {inp.event_id}")

    Engine._apply = _apply  # type: ignore[method-assign]
    return original


#: The timers :func:`plant_timer` makes raise by default: the heavy truck rule's episode ends.
TIMER_RULE, TIMER_RANK = "traffic.heavy-truck-centre", END


def plant_timer(rule_id: str = TIMER_RULE, rank: int = TIMER_RANK, subject: str = "") -> Any:
    """Make ``Engine._fire`` raise for every timer of ``rule_id`` and ``rank`` whose subject
    contains ``subject``, before firing it; returns the original, to put back."""
    original = Engine._fire

    def _fire(self: Engine, timer: Timer) -> None:
        if timer.rule_id == rule_id and timer.rank == rank and subject in timer.subject:
            raise PlantedFault(f"planted fault in a timer of {timer.rule_id}")
        original(self, timer)

    Engine._fire = _fire  # type: ignore[method-assign]
    return original


if __name__ == "__main__":
    plant()
    from streams.cli import main

    main()
