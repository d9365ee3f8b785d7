"""``persist D gap G``: a subject observed for at least D with no pause longer than G."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from rules.evidence import Item
from rules.inputs import Input, Obs
from rules.ops.base import Glue, Operator, Subject, located_match
from rules.pack import Persist, Rule
from rules.timers import END

if TYPE_CHECKING:
    from rules.engine import GridState


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


class PersistOp(Operator):
    """A subject's matching observations; the episode ends ``gap`` after the last one."""

    rank = END
    __slots__ = ("duration", "gap")

    def __init__(self, rule: Rule) -> None:
        super().__init__(rule)
        config = rule.operator
        assert isinstance(config, Persist)
        self.duration, self.gap = config.duration_ms, config.gap_ms

    def new_state(self) -> PersistState:
        return PersistState()

    def span_ms(self) -> int:
        return max(self.duration, self.gap)

    def observe(self, eng: Glue, g: GridState, inp: Input, obs: Obs, zone_ids: tuple[str, ...],
                zone: str) -> None:
        hit = located_match(eng, self.rule, inp, obs, zone)
        if hit is not None:
            key, item = hit
            eng.queue(self.rule.id, key, self._step, eng, g, key, item, zone_ids)

    def _step(self, eng: Glue, g: GridState, key: str, item: Item, zones: tuple[str, ...]) -> None:
        subj = eng.subject(g, self, key, item)
        st: PersistState = subj.state
        step = st.observe(item.observed_at, self.duration, self.gap)
        if step is None:
            return
        eng.arm(g, subj, st.end_due(self.gap))
        eng.matched(g, subj, item, zones, step[0], st.fired)

    def due(self, state: PersistState) -> int | None:
        return state.end_due(self.gap)

    def on_timer(self, eng: Glue, g: GridState, subj: Subject, due: int) -> None:
        subj.state.end()
        eng.touch(g, subj)
        eng.episode_ended(g, subj)
