"""``holds D``: a trigger state or value that is not cleared for D."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from rules.evidence import Item
from rules.inputs import Input, Obs
from rules.ops.base import Glue, Operator, Subject
from rules.pack import Condition, Holds, Rule
from rules.timers import FIRE

if TYPE_CHECKING:
    from rules.engine import GridState


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


class HoldsOp(Operator):
    """A device's trigger readings, not cleared for D; fires at D (its schedule permitting)."""

    rank = FIRE
    __slots__ = ("clear", "duration", "trigger")

    def __init__(self, rule: Rule) -> None:
        super().__init__(rule)
        config = rule.operator
        assert isinstance(config, Holds)
        self.duration, self.trigger, self.clear = config.duration_ms, config.trigger, config.clear

    def new_state(self) -> HoldsState:
        return HoldsState()

    def span_ms(self) -> int:
        return self.duration

    def observe(self, eng: Glue, g: GridState, inp: Input, obs: Obs, zone_ids: tuple[str, ...],
                zone: str) -> None:
        # Neither the rule's match nor its schedule gates a reading: a clearing one must end
        # the episode whatever it reads, and the schedule moves the firing instead.
        eng.queue(self.rule.id, f"dev:{inp.device_id}", self._step, eng, g, inp, obs, zone_ids)

    def _step(self, eng: Glue, g: GridState, inp: Input, obs: Obs, zones: tuple[str, ...]) -> None:
        rule = self.rule
        if satisfies(self.trigger, obs.state, obs.value):
            item = Item(inp.time, inp.event_id, inp.source, obs, inp.device_id, inp.snapshot_url)
            subj = eng.subject(g, self, f"dev:{inp.device_id}", item)
            st: HoldsState = subj.state
            if st.stale(inp.time):
                if st.running:
                    eng.matched(g, subj, item, zones, False, st.fired)
                return
            new = st.trigger(inp.time)
            if new:
                due = st.start + self.duration
                if rule.schedule is not None:
                    due = rule.schedule.next_open(due, eng.cal)
                st.fire_at = due
                eng.arm(g, subj, due)
            eng.matched(g, subj, item, zones, new, st.fired)
        elif satisfies(self.clear, obs.state, obs.value):
            found = eng.existing(g, rule.id, f"dev:{inp.device_id}")
            if found is None:
                return
            eng.mark(g, found)
            if not found.state.stale(inp.time) and found.state.clear():
                eng.touch(g, found)
                eng.episode_ended(g, found)

    def due(self, state: HoldsState) -> int | None:
        return state.fire_at

    def on_timer(self, eng: Glue, g: GridState, subj: Subject, due: int) -> None:
        st: HoldsState = subj.state
        st.fire_at = None
        eng.touch(g, subj)
        if not st.running or st.fired:
            return
        st.fired = True
        eng.matched(g, subj, None, (), False, True)
