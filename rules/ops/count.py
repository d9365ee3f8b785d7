"""``count N within W by K``: N distinct matching events with times in (t - W, t].

Only the N newest distinct keys can decide whether the window holds N, and when it stops
doing so; older keys are trimmed (beyond a cap), so a flood of distinct track ids in one
grid costs bounded memory.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from rules.alerts import ACTIVE
from rules.evidence import Evidence, Item
from rules.inputs import CAMERA, Input, Obs
from rules.ops.base import Glue, Operator, Subject, located_match
from rules.pack import Count, Rule
from rules.timers import END

if TYPE_CHECKING:
    from rules.engine import GridState

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


class CountOp(Operator):
    """N distinct matching events within W, per subject, zone or grid (``by``)."""

    rank = END
    __slots__ = ("by", "n", "within")

    def __init__(self, rule: Rule) -> None:
        super().__init__(rule)
        config = rule.operator
        assert isinstance(config, Count)
        self.n, self.within, self.by = config.n, config.within_ms, config.by

    def new_state(self) -> CountState:
        return CountState()

    def span_ms(self) -> int:
        return self.within

    def ttl(self, lateness: int) -> int:
        return super().ttl(lateness) + lateness   # input up to the allowed lateness may still count

    def observe(self, eng: Glue, g: GridState, inp: Input, obs: Obs, zone_ids: tuple[str, ...],
                zone: str) -> None:
        hit = located_match(eng, self.rule, inp, obs, zone)
        if hit is None:
            return
        subject, item = hit
        by = self.by
        bucket = "grid" if by == "grid" else f"zone:{zone}" if by == "zone" else subject
        entry_key = subject if inp.source is CAMERA else inp.event_id
        eng.queue(self.rule.id, bucket, self._step, eng, g, bucket, entry_key, item, zone_ids)

    def _step(self, eng: Glue, g: GridState, bucket: str, entry_key: str, item: Item,
              zones: tuple[str, ...]) -> None:
        subj = eng.subject(g, self, bucket, item)
        st: CountState = subj.state
        n, within = self.n, self.within
        # Inputs still to come are applied at or after progress, or are at most the allowed
        # lateness behind the clock: no window they are counted in reaches before this.
        clock = eng.clock if eng.clock is not None else item.observed_at
        horizon = min(eng.progress, clock - eng.lateness) - within
        if len(st.entries) > n:
            st.expire(horizon)
        running, fired = st.observe(entry_key, item.observed_at, item.event_id, (item, zones),
                                    n, within, eng.subject_cap)
        eng.arm(g, subj, st.end_due(n, within))
        if not fired:
            eng.matched(g, subj, item, zones, False, running)
            return
        alert = eng.linked_alert(g, subj)
        if alert is not None and alert.status in ACTIVE:
            # The window's other events were attributed when they came: only this one is new.
            eng.matched(g, subj, item, zones, True, True)
            return
        ev = Evidence()
        for _, _, (it, zs) in st.window(item.observed_at, within):
            ev.add(it, zs)
        subj.evidence = ev
        eng.matched(g, subj, None, zones, True, True)

    def due(self, state: CountState) -> int | None:
        return state.end_due(self.n, self.within)

    def on_timer(self, eng: Glue, g: GridState, subj: Subject, due: int) -> None:
        subj.state.end()
        eng.touch(g, subj)
        eng.episode_ended(g, subj)
