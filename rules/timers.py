"""The engine's timers: their ranks and their heap record.

Timers due at the same instant fire in the contract's order (CONTRACTS.md, Time: ties): by
rank, then level, then (rule, subject, grid), then the order they were armed in. A timer is
never cancelled in the heap; its owner remembers what it armed and a timer that pops stale
is ignored, which keeps arming O(log n) and the heap a plain list.
"""

from __future__ import annotations

from typing import Any, NamedTuple

#: Ranks, in the order timers of one instant fire. END and FIRE belong to the operators
#: (an episode ends; a ``holds`` or ``silent`` duration is reached), IDLE to subjects, the
#: rest to alerts and held feedback.
END, FIRE, RESUME, LEVEL, OVERDUE, HELD, FB_EXPIRE, RETAIN, IDLE = range(9)


class Timer(NamedTuple):
    """One heap entry; ``ref`` is the alert id (alert timers), (alert id, event id) (held
    feedback) or None (a subject's timers, found again by rule, subject and grid)."""

    due: int
    rank: int
    level: int
    rule_id: str
    subject: str
    grid_id: str
    seq: int
    ref: Any


def timer_key(timer: Timer) -> tuple[Any, ...]:
    """What a timer is, whichever heap entry brings it (``seq`` only orders equal ones): how
    the last line of defence names a timer that must not fire again."""
    return (timer.due, timer.rank, timer.level, timer.rule_id, timer.subject, timer.grid_id,
            timer.ref)
