"""``silent D``: a registered device that has sent at least once, then nothing for D."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from rules.evidence import Evidence, Item
from rules.inputs import CAMERA, SENSOR, Input, Obs, Source
from rules.ops.base import Glue, Operator, Subject
from rules.pack import Rule, Silent
from rules.timers import FIRE

if TYPE_CHECKING:
    from rules.citymap import Device
    from rules.engine import GridState


@dataclass(slots=True)
class SilentState:
    last: int = 0
    last_item: Any = None
    silent: bool = False
    silence_start: int = 0
    fire_at: int | None = None

    @property
    def running(self) -> bool:
        """An episode is a silence."""
        return self.silent

    @property
    def start(self) -> int:
        return self.silence_start

    def message(self, t: int, item: Any) -> bool:
        """Any accepted message from the device; returns True when it ends a silence."""
        ended = self.silent
        self.silent = False
        if t >= self.last:
            self.last, self.last_item = t, item
        self.fire_at = None
        return ended

    def fire(self) -> None:
        self.silent, self.silence_start, self.fire_at = True, self.last, None


class SilentOp(Operator):
    """Every message of a watched device proves it alive; D without one fires."""

    rank = FIRE
    watches_devices = True
    __slots__ = ("duration",)

    def __init__(self, rule: Rule) -> None:
        super().__init__(rule)
        config = rule.operator
        assert isinstance(config, Silent)
        self.duration = config.duration_ms

    def new_state(self) -> SilentState:
        return SilentState()

    def span_ms(self) -> int:
        return self.duration

    def watches(self, source: Source, dev: Device) -> bool:
        kinds = self.rule.match.kinds
        return not (source is SENSOR and kinds is not None and dev.kind not in kinds)

    def alive(self, eng: Glue, g: GridState, inp: Input, dev: Device, key: str,
              zone_ids: tuple[str, ...]) -> bool:
        rule, t = self.rule, inp.time
        subj = eng.existing(g, rule.id, key)
        if subj is not None and rule.schedule is None and not subj.state.silent and t >= subj.state.last:
            # The common case: the device was alive and still is. Only its last-seen time
            # moves (and with it the silence timer): no transition can come of it now. A
            # later message moves them further: the timer armed now (if any) is earlier than
            # its, and the idle timer is armed, so it arms nothing (a refresh).
            st: SilentState = subj.state
            st.last, st.last_item = t, (inp, dev, zone_ids)
            st.fire_at = t + self.duration
            eng.mark(g, subj)
            eng.arm(g, subj, st.fire_at)
            eng.touch(g, subj)
            return True
        eng.queue(rule.id, key, self._message, eng, g, key, dev, inp, zone_ids)
        return False

    def _message(self, eng: Glue, g: GridState, key: str, dev: Device, inp: Input,
                 zone_ids: tuple[str, ...]) -> None:
        rule = self.rule
        subj = eng.subject(g, self, key, message_item(inp, dev) if rule.merge_radius_m > 0 else None)
        st: SilentState = subj.state
        if inp.time < st.last:
            return  # an older message changes nothing: the device was alive later
        # The message becomes evidence only if a silence follows: build it then.
        ended = st.message(inp.time, (inp, dev, zone_ids))
        due = st.last + self.duration
        if rule.schedule is not None:
            due = rule.schedule.next_open(due, eng.cal)
        st.fire_at = due
        eng.arm(g, subj, due)
        if ended:
            eng.episode_ended(g, subj)

    def due(self, state: SilentState) -> int | None:
        return state.fire_at

    def on_timer(self, eng: Glue, g: GridState, subj: Subject, due: int) -> None:
        st: SilentState = subj.state
        st.fire_at = None
        eng.touch(g, subj)
        st.fire()
        last_inp, dev, zones = st.last_item
        evidence = subj.evidence = Evidence()
        evidence.add(message_item(last_inp, dev), zones)
        eng.matched(g, subj, None, zones, True, True)


def message_item(inp: Input, dev: Device) -> Item:
    """A device's message as evidence of its liveness (its detection or reading, if any)."""
    obs = inp.obs[0] if inp.obs else Obs(
        kind="heartbeat" if inp.source is CAMERA else dev.kind or "",
        lat=dev.lat, lon=dev.lon, zone_ids=dev.zone_ids)
    return Item(inp.time, inp.event_id, inp.source, obs, inp.device_id, inp.snapshot_url)
