"""What an exception inside the engine says about what caused it.

The last line of defence (``cityorder replay`` and the worker alike) turns an exception while
applying input into a dead letter ``internal_error`` for that input instead of a stopped
engine, and an exception while firing a timer into that timer skipped from then on; both name
the exception the same way and find the input or timer the same way.
"""

from __future__ import annotations

from collections.abc import Callable

from rules.inputs import Input
from rules.timers import Timer


def reason(error: BaseException) -> str:
    """The dead letter's reason: the exception's type and message."""
    return f"{type(error).__name__}: {error}"


def timer_name(timer: Timer, fmt: Callable[[int], str]) -> str:
    """A timer as a fault's log line and dead letter name it; ``fmt`` writes its due time."""
    return f"the timer of rule {timer.rule_id}, subject {timer.subject}, due {fmt(timer.due)}"


def culprit(error: BaseException) -> Input | Timer | None:
    """What the engine was applying when ``error`` was raised: the innermost frame that holds
    an input as ``inp`` or a timer as ``timer``, the engine's names for them wherever it
    handles one (``feed`` a new part; ``_apply``, an operator's step, ... one from the reorder
    buffer; ``_open`` and ``_feedback`` a held feedback; ``_fire`` the timer it fires). A
    timer's fault is its own, not the fault of the input whose arrival made it due, unless
    the timer was applying a held feedback then. None when neither is on the stack."""
    found: Input | Timer | None = None
    tb = error.__traceback__
    while tb is not None:
        local = tb.tb_frame.f_locals
        inp, timer = local.get("inp"), local.get("timer")
        if isinstance(inp, Input):
            found = inp
        elif isinstance(timer, Timer):
            found = timer
        tb = tb.tb_next
    return found
