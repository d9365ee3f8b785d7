"""``count N within W by K``: N distinct matching events with times in (t - W, t].

Only the N newest distinct keys can decide whether the window holds N, and when it stops
doing so; older keys are trimmed (beyond a cap), so a flood of distinct track ids in one
grid costs bounded memory.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# key -> (observed_at, event_id, payload)
Entry = tuple[int, str, Any]


@dataclass(slots=True)
class CountState:
    entries: dict[str, Entry] = field(default_factory=dict)
    running: bool = False
    start: int = 0

    def observe(self, key: str, t: int, event_id: str, payload: Any, n: int, within: int,
                cap: int) -> tuple[bool, bool]:
        """Record one distinct event (a camera subject's newest frame replaces its older one).

        Returns (an episode was already running, it fired now).
        """
        old = self.entries.get(key)
        if old is None or (t, event_id) >= old[:2]:
            self.entries[key] = (t, event_id, payload)
        if len(self.entries) > max(n, cap):
            self._trim(max(n, cap))
        if self.running:
            return True, False
        inside = sum(1 for e in self.entries.values() if t - within < e[0] <= t)
        if inside >= n:
            self.running, self.start = True, t
            return False, True
        return False, False

    def window(self, t: int, within: int) -> list[Entry]:
        """The entries counted at time t, oldest first."""
        return sorted((e for e in self.entries.values() if t - within < e[0] <= t),
                      key=lambda e: (e[0], e[1]))

    def end_due(self, n: int, within: int) -> int | None:
        """The moment the window drops below N: the N-th newest entry leaves it."""
        if not self.running:
            return None
        times = sorted((e[0] for e in self.entries.values()), reverse=True)
        if len(times) < n:
            return (times[-1] if times else 0) + within
        return times[n - 1] + within

    def end(self) -> None:
        self.running = False

    def expire(self, horizon: int) -> None:
        """Forget entries at or before ``horizon``: no window still to be evaluated holds them."""
        stale = [k for k, e in self.entries.items() if e[0] <= horizon]
        for k in stale:
            del self.entries[k]

    def _trim(self, keep: int) -> None:
        ordered = sorted(self.entries.items(), key=lambda kv: (kv[1][0], kv[1][1]), reverse=True)
        self.entries = dict(ordered[:keep])
