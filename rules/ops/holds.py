"""``holds D``: a trigger state or value that is not cleared for D."""

from dataclasses import dataclass

from rules.pack import Condition


def satisfies(cond: Condition, state: str | None, value: float | None) -> bool:
    """Whether a reading meets a trigger or clear condition; a reading may meet neither."""
    if cond.states is not None and state is not None and state in cond.states:
        return True
    if value is not None:
        if cond.value_above is not None and value > cond.value_above:
            return True
        if cond.value_below is not None and value < cond.value_below:
            return True
    return False


@dataclass(slots=True)
class HoldsState:
    start: int = 0
    running: bool = False
    fired: bool = False
    fire_at: int | None = None
    latest: int = -(1 << 62)

    def stale(self, t: int) -> bool:
        """Whether a reading is older than the newest one applied: it may add evidence to a
        running episode, but never starts or ends one (late input revives nothing)."""
        if t < self.latest:
            return True
        self.latest = t
        return False

    def trigger(self, t: int) -> bool:
        """A trigger reading; returns True when it starts the timer (a new episode)."""
        if self.running:
            return False
        self.start, self.running, self.fired, self.fire_at = t, True, False, None
        return True

    def clear(self) -> bool:
        """A clearing reading; returns True when it ends a running episode."""
        if not self.running:
            return False
        self.running, self.fire_at = False, None
        return True
