"""``persist D gap G``: a subject observed for at least D with no pause longer than G."""

from dataclasses import dataclass


@dataclass(slots=True)
class PersistState:
    start: int = 0
    last: int = 0
    running: bool = False
    fired: bool = False

    ended: bool = False

    def observe(self, t: int, duration: int, gap: int) -> tuple[bool, bool] | None:
        """Apply one matching observation; return (a new episode started, it fired now), or
        None when it changes nothing.

        A late observation (older than ``last``) may still complete D, but never moves the
        episode's start: ``start`` is only set when an episode begins. One that falls inside
        an episode that has already ended (by ``last + gap``) does not revive it.
        """
        if not self.running and self.ended and t <= self.last + gap:
            return None
        new = not self.running
        if new:
            self.start = self.last = t
            self.running, self.fired = True, False
        elif t > self.last:
            self.last = t
        fired_now = not self.fired and t - self.start >= duration
        if fired_now:
            self.fired = True
        return new, fired_now

    def end_due(self, gap: int) -> int | None:
        """When the episode ends unless observed again (an observation exactly then continues it)."""
        return self.last + gap if self.running else None

    def end(self) -> None:
        self.running = False
        self.ended = True
