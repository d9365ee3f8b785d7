"""What an operator is to the engine, and what the engine offers an operator.

Each rule's operator config (``rules.pack``: ``Persist``, ``Count``, ``Holds``, ``Silent``)
builds its logic, an :class:`Operator` (bytewax's config-builds-logic). The engine asks every
operator the same few things and never which kind it is:

- ``observe``: a matching observation of the rule's source (or ``alive``, for an operator
  that watches devices: any message of a registered device);
- ``due`` and ``on_timer``: each subject has one operator timer (of the operator's ``rank``),
  re-checked against ``due`` when it pops, so it is never cancelled in the heap;
- ``snapshot`` and ``restore``: the state as a private copy, and back.

The operator in turn may use only :class:`Glue`, the engine's side: subjects, cases,
timers and change tracking. An operator's state (``PersistState`` ...) is a pure step
function with ``start`` and ``running``; its logic is the glue between that and the engine.
A fifth operator is one module here with its state and its logic, plus its entry in
:data:`rules.ops.OPERATORS` and its syntax in the rule language.
"""

from __future__ import annotations

import dataclasses
import operator
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from rules.evidence import Evidence, Item
from rules.inputs import CAMERA, SENSOR, Input, Obs, Source
from rules.pack import Rule

if TYPE_CHECKING:
    from rules.alerts import Alert
    from rules.citymap import Device
    from rules.engine import GridState
    from rules.schedule import CityCalendar

NEVER = -(1 << 62)


class Subject:
    """The engine's record of one (rule, subject) in one grid: the operator's state, the
    evidence gathered before an alert opens, and the link to the subject's case."""

    __slots__ = ("alert_id", "armed", "armed_idle", "cooldown_until", "evidence", "fed", "key",
                 "logic", "rule", "state", "touched")

    def __init__(self, logic: Operator, key: str, state: Any, now: int) -> None:
        self.logic = logic
        # The operator's, kept as a slot of its own (8 B a subject): a property reading it
        # cost ~600 machine instructions in CPython 3.11, several times an event.
        self.rule: Rule = logic.rule
        self.key = key
        self.state = state
        self.evidence: Evidence | None = None
        self.alert_id: str | None = None
        self.cooldown_until = NEVER
        # (alert id, episode start) of the alert this subject's episode fed, if any
        self.fed: tuple[str, int] | None = None
        self.touched = now
        self.armed: int | None = None   # the operator timer in the heap, if any
        self.armed_idle = False


class Glue(Protocol):
    """The engine as an operator sees it (implemented by :class:`rules.engine.Engine`)."""

    progress: int
    clock: int | None
    lateness: int
    subject_cap: int
    cal: CityCalendar

    def queue(self, rule_id: str, key: str, step: Callable[..., None], *args: Any) -> None:
        """Apply ``step(*args)`` once this input's matches are all known, in (rule, key) order."""

    def subject(self, g: GridState, logic: Operator, key: str, item: Item | None) -> Subject:
        """The subject (created if new), marked changed and seen now."""

    def existing(self, g: GridState, rule_id: str, key: str) -> Subject | None: ...

    def mark(self, g: GridState, subj: Subject) -> None:
        """The subject changed: its next checkpoint must write it."""

    def arm(self, g: GridState, subj: Subject, due: int | None) -> None:
        """Arm the subject's operator timer (earlier than one armed, or nothing)."""

    def arm_idle(self, g: GridState, subj: Subject) -> None: ...

    def touch(self, g: GridState, subj: Subject) -> None:
        """The subject's idle time starts again from now."""

    def matched(self, g: GridState, subj: Subject, item: Item | None, zones: tuple[str, ...],
                new_episode: bool, qualifying: bool) -> None:
        """A matching observation (``item``) or a firing (``item`` None: evidence set)."""

    def linked_alert(self, g: GridState, subj: Subject) -> Alert | None: ...

    def episode_ended(self, g: GridState, subj: Subject) -> None: ...


class Operator(ABC):
    """One rule's operator logic."""

    #: The rank of the operator's timer (rules.timers): the contract's order at one instant.
    rank: ClassVar[int]
    #: Fed by every message of a registered device (``alive``) rather than by observations.
    watches_devices: ClassVar[bool] = False

    __slots__ = ("rule",)

    def __init__(self, rule: Rule) -> None:
        self.rule = rule

    @abstractmethod
    def new_state(self) -> Any:
        """A fresh state for a new subject."""

    @abstractmethod
    def span_ms(self) -> int:
        """The longest time the operator looks back: with the cooldown (and, for operators
        that late input may still change, the allowed lateness) how long an idle subject is
        kept."""

    def ttl(self, lateness: int) -> int:
        return max(self.span_ms(), self.rule.cooldown_ms)

    def observe(self, eng: Glue, g: GridState, inp: Input, obs: Obs, zone_ids: tuple[str, ...],
                zone: str) -> None:
        """An observation of the rule's source and kind where its zone conditions hold (``zone``:
        the zone the rule requires there, '-' if none), its confidence and report source already
        checked; queue the step it leads to, if any (:meth:`Glue.queue`)."""
        raise NotImplementedError(f"{type(self).__name__} watches devices: the engine calls alive()")

    def watches(self, source: Source, dev: Device) -> bool:
        """Whether this operator watches a device (``watches_devices`` operators only)."""
        return False

    def alive(self, eng: Glue, g: GridState, inp: Input, dev: Device, key: str,
              zone_ids: tuple[str, ...]) -> bool:
        """A message of a watched device (subject ``key``), its zones checked
        (``watches_devices`` only). True if it only refreshed the subject: a later message
        of the device, from the state it left, would overwrite what it set and do nothing
        else (queue no step, arm no timer, emit nothing). The engine then holds the device's
        later messages until the end of its run, or until something reads the subject, and
        gives the operator only the last of them: a camera sends every few seconds."""
        raise NotImplementedError(f"{type(self).__name__} does not watch devices")

    @abstractmethod
    def due(self, state: Any) -> int | None:
        """When the subject's operator timer is due now (None: not at all)."""

    @abstractmethod
    def on_timer(self, eng: Glue, g: GridState, subj: Subject, due: int) -> None:
        """The operator timer popped at ``due`` and is still due then."""

    def snapshot(self, state: Any) -> Any:
        """A copy the engine's later changes do not reach: the state's fields, containers
        copied one level down (what they hold is immutable). A checkpoint's cut, which holds
        the partition still, copies every subject that changed: built by the state's own
        constructor from its fields read at C speed, ~1 µs, against ~4 µs through
        ``copy.copy`` and a ``setattr`` a field."""
        cls = type(state)
        fields = _FIELDS.get(cls)
        if fields is None:
            fields = _FIELDS[cls] = _fields_of(cls)
        # own(v), inline: no Python call per field of every subject a cut copies
        return cls(*[type(v)(v) if isinstance(v, _CONTAINERS) else v for v in fields(state)])

    def restore(self, data: Any) -> Any:
        """The state from what :meth:`snapshot` gave (pickled in between)."""
        return data


_CONTAINERS = (dict, list, set)
#: Per operator state class, what reads its fields as a tuple (:meth:`Operator.snapshot`).
_FIELDS: dict[type, Callable[[Any], tuple[Any, ...]]] = {}


def own(value: Any) -> Any:
    """A container copied one level down (what it holds is immutable); anything else as it is.
    Snapshots are made of such copies, so the engine can go on while they are pickled."""
    return type(value)(value) if isinstance(value, _CONTAINERS) else value


def _fields_of(cls: type) -> Callable[[Any], tuple[Any, ...]]:
    """What reads a state's fields in the order its constructor takes them. Checked once a
    class: a state is a slotted dataclass whose every field its ``__init__`` takes, in slot
    order, and which has no ``__post_init__`` (that would run again on the copy)."""
    names = tuple(getattr(cls, "__slots__", ()))
    if (not dataclasses.is_dataclass(cls) or hasattr(cls, "__post_init__") or not names
            or tuple(f.name for f in dataclasses.fields(cls) if f.init) != names):
        raise TypeError(f"{cls.__name__}: an operator's state must be a @dataclass(slots=True) "
                        "whose fields are all init fields, with no __post_init__, so that a "
                        "snapshot can rebuild it from its fields")
    if len(names) == 1:
        name = names[0]
        return lambda state: (getattr(state, name),)
    return operator.attrgetter(*names)  # type: ignore[return-value]


def sensor_matches(rule: Rule, obs: Obs) -> bool:
    """A reading's state and value against the rule's ``match`` (sensor rules)."""
    m = rule.match
    if m.states is not None and obs.state not in m.states:
        return False
    if m.value_above is not None and not (obs.value is not None and obs.value > m.value_above):
        return False
    return not (m.value_below is not None and not (obs.value is not None and obs.value < m.value_below))


def subject_of(inp: Input, obs: Obs, zone: str) -> str:
    """The subject encoding of the contract (Grids and subjects)."""
    if inp.source is CAMERA:
        if obs.track_id is not None:
            return f"cam:{inp.device_id}/{obs.track_id}"
        return f"label:{obs.kind}/{zone}"
    if inp.source is SENSOR:
        return f"dev:{inp.device_id}"
    return "grid"


def located_match(eng: Glue, rule: Rule, inp: Input, obs: Obs, zone: str) -> tuple[str, Item] | None:
    """For operators on observations at a place (their zones already hold): whether the rule
    matches the reading and is in its schedule, and if so (the subject, the evidence item)."""
    if inp.source is SENSOR and not sensor_matches(rule, obs):
        return None
    if rule.schedule is not None and not rule.schedule.is_open(inp.time, eng.cal):
        return None
    item = Item(inp.time, inp.event_id, inp.source, obs, inp.device_id, inp.snapshot_url)
    return subject_of(inp, obs, zone), item
