"""What an exception inside the engine says about the input that caused it.

The last line of defence (``cityorder replay`` and the worker alike) turns an exception while
applying input into a dead letter ``internal_error`` for that input instead of a stopped
engine; both name the exception the same way and find the input the same way.
"""

from __future__ import annotations

from rules.inputs import Input


def reason(error: BaseException) -> str:
    """The dead letter's reason: the exception's type and message."""
    return f"{type(error).__name__}: {error}"


def culprit(error: BaseException) -> Input | None:
    """The input the engine was applying when ``error`` was raised: the innermost frame that
    holds one as ``inp``, the engine's name for it wherever it handles one (``feed`` a new
    part; ``_apply``, an operator's step, ... one from the reorder buffer; ``_open`` and ``_feedback``
    a held feedback). None for a fault while firing a timer, which has no input of its own."""
    found = None
    tb = error.__traceback__
    while tb is not None:
        inp = tb.tb_frame.f_locals.get("inp")
        if isinstance(inp, Input):
            found = inp
        tb = tb.tb_next
    return found
