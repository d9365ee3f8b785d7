"""``cityorder worker`` with a bug planted in its engine, to test the last line of defence.

The engine raises while applying any input whose event id starts with :data:`POISON`, after
it has changed its state (the subject, the stats, an alert perhaps): the worker must undo that
change, dead-letter the input as ``internal_error`` and go on. Run as
``python -m tests.e2e.faulty_worker worker ...`` (what ``Worker(module=...)`` does); a test
plants the same bug in its own process with :func:`plant` to get the replay to compare with.
"""

from __future__ import annotations

from typing import Any

from rules.engine import Engine

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


if __name__ == "__main__":
    plant()
    from streams.cli import main

    main()
