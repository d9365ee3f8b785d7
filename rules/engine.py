"""The engine: feed it input, move its clock, get back alert transitions and dead letters.

Pure and deterministic: no asyncio, no Kafka, no wall clock. Its output is a function of the
sequence of calls (inputs with their arrivals, ticks), which is what lets a replay, a live
worker and a restarted worker agree (CONTRACTS.md, Time).

Time in one paragraph: the **clock** is the newest input time (``event`` mode) or arrival
(``wall`` mode), or the newest tick; the **watermark** is clock − reorder window. Input waits
in a heap until the watermark reaches its time and is then applied in (time, source,
event_id) order; timers fire when the watermark reaches them, after the input of the same
instant. **Progress** — the ``at`` of every transition — is the time of the item being
applied, then the watermark. Input behind progress but within the allowed lateness of the
clock is applied at once; older input is late and only counted. A source record read again
(a redelivery, by its topic, partition and offset) and another record with a remembered event
id (a duplicate) are counted as such, never as late (:class:`Stats`).
"""

from __future__ import annotations

import heapq
import io
import math
import pickle
from collections import Counter, OrderedDict
from collections.abc import Callable, Generator, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, NamedTuple, TypeVar

from rules.alerts import (
    ACTIVE,
    FINAL,
    UPDATE_SPACING_MS,
    Alert,
    alert_id,
    raise_severity,
    render,
)
from rules.buckets import Buckets
from rules.citymap import CityMap, Grid
from rules.evidence import Evidence, Item
from rules.inputs import FeedbackIn, Input, Obs, Source, new_record
from rules.ops import build
from rules.ops.base import NEVER, Operator, Subject, own
from rules.pack import Rule, RuleSet, check_work_day
from rules.timers import FB_EXPIRE, HELD, IDLE, LEVEL, OVERDUE, RESUME, RETAIN, Timer, timer_key
from rules.worktime import day_length_ms

T = TypeVar("T")
E = TypeVar("E")

STALE_LIMIT = 20_000
DAY_MS = 86_400_000

#: How far ahead of its partition's clock an ``event``-mode feedback may be before it is refused
#: (``future_timestamp``) rather than applied. A feedback moves the clock to its ``at`` like any
#: input; stamped with the wall clock into a simulated day two weeks back, it made every level
#: and deadline of the partition fire and every later input late. But a feedback ahead of its
#: partition's clock is often legitimate: the clock moves only with the partition's own input,
#: so a quiet partition trails the stream (the demo day's operations centre is up to 29 s ahead
#: at 4 partitions, 254 s at 64), and in a recording whose partition has nothing else the
#: feedback *is* what moves time (the lifecycle tests step 10-70 minutes that way). A bound of
#: minutes (the allowed lateness, or the 5 minutes of the ``wall``-mode rule) would refuse those
#: and make the result depend on how the grids are partitioned (CONTRACTS.md, Time: the
#: guarantee holds "whatever the partitioning"). A day refuses a stamp from another day, which
#: no partition's own timeline produces; ``cityorder feedback`` (streams/clock.py) stamps the
#: partition's progress and refuses an ``--at`` beyond the allowed lateness itself.
FEEDBACK_AHEAD_MS = DAY_MS

#: An operator an observation may reach: (its logic, the zone its rule requires there or '-',
#: the rule's minimum confidence (camera), the report sources it takes (report)).
Candidate = tuple[Operator, str, float | None, frozenset[str] | None]
#: The reorder buffer's entries: (time, source, event id, sequence number, part), in the
#: contract's order of application.
PendingEntry = tuple[int, int, str, int, Input]
#: A de-duplication entry as a checkpoint writes it: (topic, grid), event id, expiry, three
#: items in a flat list (rules/buckets.py: ``stride``).
SeenItem = tuple[str, str] | str | int
#: A match queued by an operator (Engine.queue): rule id, subject, the order it came in, the
#: step and its arguments.
Match = tuple[str, str, int, Callable[..., None], tuple[Any, ...]]


@dataclass(frozen=True, slots=True)
class DeadOut:
    """Input the engine must reject (feedback only); the shell renders the dead letter."""

    reason_code: str
    reason: str
    input: Input


#: The most devices :attr:`Stats.late` names one by one; the rest are summed under
#: :data:`OTHER_DEVICES`. It travels in every checkpoint, so it must stay small.
LATE_DEVICES = 256
OTHER_DEVICES = "(other devices)"


@dataclass(frozen=True, slots=True)
class StateSizes:
    """Counts of what an engine holds (:meth:`Engine.sizes`), one gauge each."""

    subjects: int
    alerts_active: int
    alerts_ended: int
    dedup_ids: int
    timers: int
    reorder: int
    held_feedback: int


@dataclass(slots=True)
class Stats:
    """Everything counted rather than applied, so nothing is dropped silently.

    An input that is not applied is counted under exactly one of three outcomes, checked in
    this order (see :meth:`Engine.feed`):

    - ``redelivered``: the same source record (topic, partition, offset) read again, as
      ingest does after a crash or a rebalance; by source (``camera``, ``sensor``, ...);
    - ``duplicates``: another record with the ``event_id`` of one applied or counted within
      the contract's window (a producer that sent a message twice); by topic;
    - late: a new record older than the allowed lateness. ``late_sources`` counts it by source
      (a metric label with four values); ``late`` by device (reports and feedback: by topic),
      as the contract asks so that a drifting clock shows, but for at most
      :data:`LATE_DEVICES` devices: when a new device would exceed that, the one with the
      fewest late inputs (the least recently counted of equals) is folded into
      :data:`OTHER_DEVICES`. The sum of ``late`` is exact; a device that keeps sending late
      input stays named.
    """

    late: Counter[str] = field(default_factory=Counter)
    duplicates: Counter[str] = field(default_factory=Counter)
    rejected: Counter[str] = field(default_factory=Counter)
    evicted: int = 0
    applied: int = 0
    transitions: Counter[str] = field(default_factory=Counter)
    late_sources: Counter[str] = field(default_factory=Counter)
    redelivered: Counter[str] = field(default_factory=Counter)

    def count_late(self, source: str, device: str) -> None:
        self.late_sources[source] += 1
        late = self.late
        n = late.pop(device, 0) + 1   # re-inserted: the dict's order is the order of last count
        if not n > 1 and len(late) - (OTHER_DEVICES in late) >= LATE_DEVICES:
            victim = min((k for k in late if k != OTHER_DEVICES), key=late.__getitem__)
            late[OTHER_DEVICES] += late.pop(victim)
        late[device] = n

    def upgrade(self) -> Stats:
        """Fill the fields a checkpoint written before they existed lacks (a pickled slots
        dataclass restores only the fields it was written with)."""
        for name, f in self.__dataclass_fields__.items():
            try:
                getattr(self, name)
            except AttributeError:
                setattr(self, name, f.default_factory() if callable(f.default_factory) else f.default)
        return self


@dataclass(slots=True)
class _Refresh:
    """A device whose watchers its last message applied only refreshed (Operator.alive),
    and the newest message of it held since, with the progress it came at."""

    g: GridState
    watch: tuple[Any, str, list[Operator], bool]
    time: int
    inp: Input | None = None
    progress: int = NEVER


#: One frozenset per grid id for the source marks (a record's first part), built once: grid
#: ids are the city map's.
_ONE_GRID: dict[str, frozenset[str]] = {}


class _Untracked(set):  # type: ignore[type-arg]
    """A set that stays empty: change tracking switched off."""

    def add(self, _: object) -> None:
        pass


class SeenIds(dict[str, int]):
    """The event ids of one (topic, grid) in the de-duplication memory, by when each expires:
    kept apart per group, so that an entry is an id and its expiry, not a tuple as well."""

    __slots__ = ("group",)

    def __init__(self, group: tuple[str, str]) -> None:
        super().__init__()
        self.group = group


class GridState:
    __slots__ = ("alerts", "cases", "grid", "hot", "lru", "subjects")

    def __init__(self, grid: Grid) -> None:
        self.grid = grid
        # By rule id, then subject key: a (rule id, key) tuple for each would cost 56 B.
        self.subjects: dict[str, dict[str, Subject]] = {}
        self.alerts: dict[str, Alert] = {}
        self.cases: dict[tuple[str, str], str] = {}
        self.hot: list[tuple[int, str, str]] = []
        self.lru: OrderedDict[str, int] = OrderedDict()

    def find(self, rule_id: str, key: str) -> Subject | None:
        subjects = self.subjects.get(rule_id)
        return subjects.get(key) if subjects is not None else None

    def each_subject(self) -> Iterator[Subject]:
        for subjects in self.subjects.values():
            yield from subjects.values()

    def subject_count(self) -> int:
        return sum(map(len, self.subjects.values()))


class Engine:
    """Evaluate a rule set over a city map.

    >>> engine = Engine(city, rules, clock="event")      # doctest: +SKIP
    >>> out = engine.feed(part)                          # doctest: +SKIP
    >>> out += engine.finish()                           # doctest: +SKIP
    """

    def __init__(self, city: CityMap, rules: RuleSet, *, clock: str = "event",
                 alert_retention_ms: int = 30 * DAY_MS, subject_cap: int | None = None,
                 track_changes: bool = False) -> None:
        """``subject_cap`` is the packs' (``rules.subject_cap``) unless given: every engine of
        a deployment, replay or worker, must evict at the same point or they would differ."""
        if clock not in ("event", "wall"):
            raise ValueError(f"clock must be 'event' or 'wall', not {clock!r}")
        self.city = city
        self.rules = rules
        self.mode = clock
        self.reorder = rules.reorder_window_ms
        self.lateness = rules.allowed_lateness_ms
        hot_within = max((r.policy.hotspot.within_ms for r in rules.rules if r.policy.hotspot),
                         default=0)
        self.retention = max(alert_retention_ms, hot_within)
        self.subject_cap = rules.subject_cap if subject_cap is None else subject_cap
        self.cal = city.calendar
        problems = check_work_day(rules, day_length_ms(self.cal))
        if problems:
            raise ValueError("; ".join(problems))
        self.fmt = self.cal.format
        self.clock: int | None = None
        self.progress = NEVER
        self.max_time = NEVER
        self.pending: list[PendingEntry] = []
        self.timers: list[Timer] = []
        self.seq = 0
        #: Timers (:func:`rules.timers.timer_key`) that raised when fired: the runtime's, kept
        #: across its rebuilds of the engine (not state: after a restart one raises again).
        self.skip_timers: set[tuple[Any, ...]] = set()
        self.seen: dict[tuple[str, str], SeenIds] = {}
        # The entries of ``seen`` by the second they expire in (each its group and id, one
        # after the other), and those seconds in a heap: forgetting costs a dict operation
        # per entry rather than a heap push and pop.
        self.expiring: dict[int, list[Any]] = {}   # [SeenIds, event id, SeenIds, ...]
        self.expiring_at: list[int] = []
        self.fb_waiting: set[str] = set()
        self.held: dict[str, list[Input]] = {}
        # Per source partition (topic, partition): the highest offset fed, and the grids of
        # that record's parts fed (one message may bring several grids' parts to one engine).
        self.marks: dict[tuple[str, int], tuple[int, frozenset[str]]] = {}
        self.grids: dict[str, GridState] = {}
        self.stats = Stats()
        self.out: list[dict[str, Any] | DeadOut] = []
        self._batch: list[tuple[tuple[str, str], dict[str, Any]]] | None = None
        self._touched: list[Alert] = []
        self._matches: list[Match] = []
        # Subjects an input reached with no timer armed: their idle timer is armed once the
        # input is applied, if the operator armed none (see arm_idle).
        self._unarmed: list[tuple[GridState, Subject]] = []
        self._watch: dict[tuple[int, str | None], tuple[Any, str, list[Operator], bool]] = {}
        # Devices whose watchers a message only refreshed, by (grid, subject), during a run:
        # their later messages wait here (_liveness), the last one is given at the end.
        self._refreshing: dict[tuple[str, str], _Refresh] = {}
        self._zone_memo: dict[tuple[str, tuple[str, ...]], str | None] = {}
        self._candidates: dict[tuple[Source, str, tuple[str, ...]], tuple[Candidate, ...]] = {}
        self._stale = 0
        # Keys changed since the last snapshot, for a runtime that writes only those; a replay
        # never snapshots, so by default nothing is tracked (it would grow without bound).
        self.track_changes = track_changes
        self.dirty: set[tuple[str, ...]] = set() if track_changes else _Untracked()
        self.known: set[tuple[str, ...]] = set()
        # The de-duplication memory and the reorder buffer in state records (rules/buckets.py),
        # and what is new of them since the last snapshot: the de-duplication entries (listed
        # only when tracking: a replay never needs them), the reorder buffer's entries after
        # a sequence number.
        self.seen_buckets: Buckets[SeenItem] = Buckets(_seen_until, stride=3)
        self.pending_buckets: Buckets[PendingEntry] = Buckets(_pending_until)
        self.new_seen: list[SeenItem] = []
        self.written_seq = 0
        #: At most this many steps (inputs applied, timers fired) in the run that ends
        #: :meth:`feed_batch` or :meth:`tick`; the rest waits for :meth:`resume` (see
        #: :attr:`unfinished`). None: no limit. A runtime sets it to give its event loop back
        #: between slices of a long run: one record's progress can let thousands of held
        #: inputs through. Where a run stops changes no output: input is applied in time order
        #: whether or not the run stops in between.
        self.run_budget: int | None = None
        self._stopped = False
        self._index_rules()

    # -- rule index -----------------------------------------------------------------------

    def _index_rules(self) -> None:
        self.logic: dict[str, Operator] = {}
        self.by_kind: dict[tuple[int, str], list[Rule]] = {}
        self.any_kind: dict[int, list[Rule]] = {}
        self.watchers: dict[int, list[Operator]] = {}
        self.ttl: dict[str, int] = {}
        for rule in self.rules.rules:
            logic = self.logic[rule.id] = build(rule)
            src = {"camera": Source.CAMERA, "sensor": Source.SENSOR, "report": Source.REPORT}[rule.source]
            m = rule.match
            self.ttl[rule.id] = logic.ttl(self.lateness)
            if logic.watches_devices:
                self.watchers.setdefault(src, []).append(logic)
                continue
            kinds = {Source.CAMERA: m.labels, Source.SENSOR: m.kinds, Source.REPORT: m.categories}[src]
            if kinds is None:  # no list: every label / kind / category of its source
                self.any_kind.setdefault(src, []).append(rule)
            for kind in sorted(kinds or ()):
                self.by_kind.setdefault((src, kind), []).append(rule)
        for (src, kind) in list(self.by_kind):
            self._rules_for(Source(src), kind)
        self.camera_rule_ids = tuple(r.id for r in self.rules.rules if r.source == "camera")
        self.scheduled_zones = frozenset(z.id for z in self.city.zones.values() if z.schedule)

    # -- public API -----------------------------------------------------------------------

    def feed(self, inp: Input) -> list[dict[str, Any] | DeadOut]:
        """Accept one grid part of one input; return what became due (first the rest of a
        run that stopped at :attr:`run_budget`: this call does not stop)."""
        self.out = []
        if self.unfinished:
            self._run()
        if inp.feedback is not None and self._future_feedback(inp):
            return self.out
        self._admit(inp, self.progress)
        self._run()
        return self.out

    def feed_batch(self, parts: Iterable[Input]) -> list[dict[str, Any] | DeadOut]:
        """Accept parts in their order: exactly what feeding them one by one gives, outputs
        concatenated, for less. Feeding one applies what the watermark passed at once; here
        that waits for the end of the batch, which changes nothing while each part is newer
        than where progress would be: input is applied in time order either way, and
        progress, which decides whether a part is late or a duplicate, is known without
        applying anything (it only ever becomes the watermark). A part that is not newer (a
        late-but-allowed one, or a feedback, whose refusal is output) waits until what would
        have been applied before it is."""
        self.out = []
        reorder = self.reorder
        for inp in parts:
            if inp.feedback is not None:
                self._run()
                if self._future_feedback(inp):
                    continue
            clock, progress = self.clock, self.progress
            if clock is not None and clock - reorder > progress:
                progress = clock - reorder
            if inp.time <= progress:
                self._run()
            self._admit(inp, progress)
        self._run(self.run_budget)
        return self.out

    @property
    def unfinished(self) -> bool:
        """Whether the last run stopped at :attr:`run_budget` with input or timers left that
        the watermark has passed: :meth:`resume` goes on with it. No snapshot is taken then
        (:func:`take` refuses): finish the run first."""
        return self._stopped

    def resume(self) -> list[dict[str, Any] | DeadOut]:
        """Go on with a run that stopped at :attr:`run_budget`; what became due, as the rest
        of what the call that started it would have returned with no budget."""
        self.out = []
        self._run(self.run_budget)
        return self.out

    def _admit(self, inp: Input, progress: int) -> None:
        """Move the clock to a part and count it (redelivered, duplicate, late) or put it in
        the reorder buffer. ``progress`` is where it would be after everything before this
        part was applied (the caller may not have applied it yet)."""
        t = inp.time
        if self.mode == "wall":
            if inp.arrival is None:
                raise ValueError(f"{inp.topic} {inp.event_id}: wall clock mode needs an arrival time")
            self._move_clock(inp.arrival)
        elif self.clock is None or t > self.clock:   # _move_clock, inline: once a part
            self.clock = t
        if t > self.max_time:
            self.max_time = t
        if inp.offset is not None and self._redelivered(inp):
            self.stats.redelivered[inp.source.name.lower()] += 1
        elif self._duplicate(inp, progress):
            self.stats.duplicates[inp.topic] += 1
        elif t < progress and inp.feedback is None and t < (self.clock or NEVER) - self.lateness:
            self.stats.count_late(inp.source.name.lower(), inp.device_id or inp.topic)
        else:
            self.seq = seq = self.seq + 1
            entry = (t, int(inp.source), inp.event_id, seq, inp)
            heapq.heappush(self.pending, entry)

    def tick(self, t: int) -> list[dict[str, Any] | DeadOut]:
        """A clock tick (from the wall clock in a worker, or a producer's end-of-input tick)."""
        self.out = []
        self._move_clock(t)
        self._run(self.run_budget)
        return self.out

    def finish(self, until: int | None = None) -> list[dict[str, Any] | DeadOut]:
        """End of a replay: apply everything waiting, fire timers due by the last input's time
        (or ``until``, never earlier) and reject feedback still held."""
        self.out = []
        end = max(self.max_time, until if until is not None else NEVER)
        if end > NEVER:
            self._move_clock(end + self.reorder)
            self._run()
        for aid in sorted(self.held):
            for inp in self.held[aid]:
                self._reject(inp, "unknown_alert", f"alert_id: no alert {aid} exists")
        self.held.clear()
        return self.out

    def withdraw(self, inp: Input) -> bool:
        """Take ``inp`` out of the reorder buffer or the held feedback, unapplied; False if it
        is in neither. For the last line of defence: an input whose application raised is
        withdrawn from a state rolled back to before it. Its event id stays remembered, so a
        redelivery of it is still a duplicate."""
        for i, entry in enumerate(self.pending):
            if entry[4] == inp:
                self.pending[i] = self.pending[-1]
                self.pending.pop()
                heapq.heapify(self.pending)
                self.pending_buckets.remove(entry)   # written: it must not come back with a restore
                return True
        fb = inp.feedback
        waiting = self.held.get(fb.alert_id) if fb is not None else None
        if fb is not None and waiting and inp in waiting:
            waiting.remove(inp)
            if not waiting:
                del self.held[fb.alert_id]
            self.fb_waiting.discard(inp.event_id)
            return True
        return False

    @property
    def watermark(self) -> int | None:
        return None if self.clock is None else self.clock - self.reorder

    # -- time -------------------------------------------------------------------------------

    def _move_clock(self, t: int) -> None:
        if self.clock is None or t > self.clock:
            self.clock = t

    def _redelivered(self, inp: Input) -> bool:
        """Whether this part's source record was fed before: ingest reads a source partition
        again from its last commit after a crash or a rebalance, and writes the same parts
        again. Within one source partition an engine gets records in offset order (ingest
        writes them so and the evaluator's merge keeps each source's order), so a record at
        or below the highest offset seen is one seen before (at that offset: if this grid's
        part of it was). Checked before :meth:`_duplicate`, which would take a re-read record
        for a duplicate only while its event id is remembered, and for late after: a crash
        made thousands of inputs "late". Parts without a source offset are never redelivered.
        The marks are part of the snapshot, so a restored engine knows what it has seen."""
        at = inp.offset
        if at is None or inp.partition is None:
            return False
        source = (inp.topic, inp.partition)
        mark = self.marks.get(source)
        if mark is not None:
            offset, grids = mark
            if at < offset or (at == offset and inp.grid_id in grids):
                return True
            if at == offset:
                self.marks[source] = (offset, grids | {inp.grid_id})
                return False
        grids = _ONE_GRID.get(inp.grid_id)
        if grids is None:
            grids = _ONE_GRID[inp.grid_id] = frozenset((inp.grid_id,))
        self.marks[source] = (at, grids)
        return False

    def _duplicate(self, inp: Input, progress: int) -> bool:
        """Whether another record with this event id was applied or counted within the
        window. ``progress`` is where this input finds it: an entry that expired before it
        is forgotten, though it may still be in ``seen`` (forgetting goes by whole seconds)."""
        if inp.feedback is not None:
            if inp.event_id in self.fb_waiting:
                return True
            self.fb_waiting.add(inp.event_id)
            return False
        event_id = inp.event_id
        ids = self.seen.get((inp.topic, inp.grid_id))
        if ids is None:
            ids = self._seen_ids((inp.topic, inp.grid_id))
        old = ids.get(event_id)
        if old is not None and old >= progress:
            return True
        t = inp.time
        ids[event_id] = expiry = (t if t > progress else progress) + self.lateness + self.reorder
        entries = self.expiring.get(expiry // 1000)
        if entries is None:
            self._expire_at(ids, event_id, expiry)
        else:   # _expire_at's last line, inline: once a part
            entries += (ids, event_id)
        if self.track_changes:
            self.new_seen += (ids.group, event_id, expiry)
        return False

    def _seen_ids(self, group: tuple[str, str]) -> SeenIds:
        ids = self.seen.get(group)
        if ids is None:
            ids = self.seen[group] = SeenIds(group)
        return ids

    def _expire_at(self, ids: SeenIds, event_id: str, expiry: int) -> None:
        second = expiry // 1000
        entries = self.expiring.get(second)
        if entries is None:
            entries = self.expiring[second] = []
            heapq.heappush(self.expiring_at, second)
        entries += (ids, event_id)

    def _forget_seen(self) -> None:
        """Forget the de-duplication entries that expired before progress, a second at a time:
        those of the second progress is in wait for the next one (``_duplicate`` knows)."""
        done = self.progress // 1000
        expiring_at = self.expiring_at
        while expiring_at and expiring_at[0] < done:
            entries = self.expiring.pop(heapq.heappop(expiring_at))
            for i in range(0, len(entries), 2):
                ids, event_id = entries[i], entries[i + 1]
                expiry = ids.get(event_id)
                if expiry is not None and expiry // 1000 < done:
                    del ids[event_id]

    def _run(self, budget: int | None = None) -> None:
        """Apply waiting input and fire timers, in time order, up to the watermark; after
        ``budget`` steps, stop with the rest waiting (:attr:`unfinished`). A run that stops
        leaves progress at its last step and devices' messages held (``_liveness``): the
        calls after it go on with the same run (nothing they do before reads a subject), and
        no snapshot is taken of it."""
        if self.clock is None:
            return
        wm = self.clock - self.reorder
        # Nothing applied or fired moves progress past where it started or past the
        # watermark, so the limit holds for the whole run.
        limit = wm if wm > self.progress else self.progress
        pending, timers, pop = self.pending, self.timers, heapq.heappop
        left = -1 if budget is None else budget    # counting down from -1 never reaches 0
        while left:
            left -= 1
            if pending and pending[0][0] <= limit and not (timers and timers[0][0] < pending[0][0]):
                entry = pop(pending)
                if entry[0] > self.progress:
                    self.progress = entry[0]
                self._apply(entry[4])
            elif timers and timers[0][0] <= limit:
                # Not named ``timer``: rules.faults.culprit takes that name, in _fire, for the
                # timer being fired.
                popped = pop(timers)
                if popped[0] > self.progress:
                    self.progress = popped[0]
                if not self.skip_timers or timer_key(popped) not in self.skip_timers:
                    self._fire(popped)
            else:
                break
        else:   # the budget is used up: stop if anything is left
            if (pending and pending[0][0] <= limit) or (timers and timers[0][0] <= limit):
                self._stopped = True
                return
        self._stopped = False
        if self._refreshing:
            self._refresh_all()
        if wm > self.progress:
            self.progress = wm
        self._forget_seen()

    def _push(self, due: int, rank: int, level: int, rule_id: str, subject: str, grid_id: str,
              ref: Any) -> None:
        """Callers pass ``due`` already clamped to progress (see ``_due``)."""
        self.seq += 1
        heapq.heappush(self.timers, new_record(Timer, (due, rank, level, rule_id, subject, grid_id,
                                                      self.seq, ref)))

    def _grid(self, grid_id: str) -> GridState:
        g = self.grids.get(grid_id)
        if g is None:
            g = self.grids[grid_id] = GridState(self.city.grids[grid_id])
            self.dirty.add(("grid", grid_id))
        return g

    # -- applying input -----------------------------------------------------------------

    def _apply(self, inp: Input) -> None:
        self.stats.applied += 1
        self._batch = batch = []
        g = self.grids.get(inp.grid_id)
        if g is None:
            g = self._grid(inp.grid_id)
        if inp.feedback is not None:
            if self._refreshing:
                self._refresh_all()   # feedback may touch the subjects
            self.fb_waiting.discard(inp.event_id)
            self._feedback(g, inp)
        else:
            # Matches are applied in the order their transitions are emitted, (rule_id,
            # subject): "opened before this one" (hotspots) then agrees with the output.
            matches = self._matches = []
            if inp.alive and inp.device_id is not None:
                self._liveness(g, inp)
            for obs in inp.obs:
                self._observation(g, inp, obs)
            if len(matches) > 1:
                matches.sort(key=_match_order)
            for m in matches:
                m[3](*m[4])
            if self._unarmed:
                self._arm_unarmed()
        if self._touched:
            self._flush_touched()
        self._batch = None
        if batch:
            batch.sort(key=_transition_order)
            self.out.extend(msg for _, msg in batch)

    def _existing_zones(self, ids: tuple[str, ...], t: int) -> tuple[str, ...]:
        """Those of ``ids`` that exist at t (a scheduled zone only while it is open). Callers
        ask only when one of ``ids`` has a schedule (``scheduled_zones``): once a part, that
        test is cheaper than this call."""
        zones, cal = self.city.zones, self.cal
        return tuple(z for z in ids
                     if (sch := zones[z].schedule) is None or sch.is_open(t, cal))

    def _rule_zone(self, rule: Rule, zone_ids: tuple[str, ...]) -> str | None:
        """Whether the rule's zone conditions hold; returns the required zone (or '-').
        A pure function of the rule and the (existing) zones: memoised, bounded."""
        key = (rule.id, zone_ids)
        try:
            return self._zone_memo[key]
        except KeyError:
            pass
        if len(self._zone_memo) >= 65_536:
            self._zone_memo.clear()
        zone = self._zone_memo[key] = self._rule_zone_of(rule, zone_ids)
        return zone

    def _rule_zone_of(self, rule: Rule, zone_ids: tuple[str, ...]) -> str | None:
        zones = self.city.zones
        kinds = [zones[z].kind for z in zone_ids]
        if rule.permitted and any(k in rule.permitted for k in kinds):
            return None
        if rule.outside and any(k in rule.outside for k in kinds):
            return None
        if rule.inside:
            for z, k in zip(zone_ids, kinds, strict=True):
                if k in rule.inside:
                    return z  # zone_ids are sorted: the first is the smallest id
            return None
        return "-"

    def _rules_for(self, source: Source, kind: str) -> list[Rule]:
        """Rules naming this kind plus rules naming none, in id order (cached per kind)."""
        named = [r for r in self.by_kind.get((source, kind), ()) if r not in self.any_kind.get(source, ())]
        rules = sorted([*named, *self.any_kind.get(source, ())], key=lambda r: r.id)
        self.by_kind[(source, kind)] = rules
        return rules

    def _observation(self, g: GridState, inp: Input, obs: Obs) -> None:
        zone_ids = obs.zone_ids
        if not self.scheduled_zones.isdisjoint(zone_ids):
            zone_ids = self._existing_zones(zone_ids, inp.time)
        key = (inp.source, obs.kind, zone_ids)
        candidates = self._candidates.get(key)
        if candidates is None:
            candidates = self._candidates_for(key)
        for logic, zone, min_confidence, sources in candidates:
            if min_confidence is not None and (obs.confidence or 0.0) < min_confidence:
                continue
            if sources is not None and obs.report_source not in sources:
                continue
            logic.observe(self, g, inp, obs, zone_ids, zone)

    def _candidates_for(self, key: tuple[Source, str, tuple[str, ...]]) -> tuple[Candidate, ...]:
        """The operators an observation of this source and kind in these (existing) zones may
        reach, in rule id order, with the zone each rule requires there and what is left to
        check of the observation (its confidence, a report's source): kinds and zone
        conditions decided once (memoised, bounded)."""
        source, kind, zone_ids = key
        rules = self.by_kind.get((source, kind))
        if rules is None:
            rules = self._rules_for(source, kind)
        found = tuple(
            (self.logic[r.id], zone, r.match.min_confidence if source is Source.CAMERA else None,
             r.match.sources if source is Source.REPORT else None)
            for r in rules if (zone := self._rule_zone(r, zone_ids)) is not None)
        if len(self._candidates) >= 65_536:
            self._candidates.clear()
        self._candidates[key] = found
        return found

    # -- what operators use (rules.ops.base.Glue) -----------------------------------------

    def queue(self, rule_id: str, key: str, step: Callable[..., None], *args: Any) -> None:
        """Matches are applied in the order their transitions are emitted, (rule_id, subject):
        "opened before this one" (hotspots) then agrees with the output. The step's arguments
        are kept beside it, not bound into a ``functools.partial``: building one cost ~1,000
        machine instructions a match."""
        self._matches.append((rule_id, key, len(self._matches), step, args))

    def subject(self, g: GridState, logic: Operator, key: str, item: Item | None) -> Subject:
        rule = logic.rule
        subjects = g.subjects.get(rule.id)
        if subjects is None:
            subjects = g.subjects[rule.id] = {}
        subj = subjects.get(key)
        now = self.progress
        if self.track_changes:
            self.dirty.add(("subject", g.grid.id, rule.id, key))
            self.dirty.add(("grid", g.grid.id))
        camera = key.startswith("cam:")
        if subj is None:
            subj = subjects[key] = Subject(logic, key, logic.new_state(), now)
            if rule.merge_radius_m > 0 and item is not None and item.obs.located:
                self._join_nearest(g, subj, item.obs)
            if camera:
                self._cap(g, key)
        else:
            subj.touched = now
        if camera:
            g.lru[key] = now
            g.lru.move_to_end(key)
        if subj.armed is None and not subj.armed_idle:
            self._unarmed.append((g, subj))
        return subj

    def _arm_unarmed(self) -> None:
        unarmed, self._unarmed = self._unarmed, []
        for g, subj in unarmed:
            if g.find(subj.rule.id, subj.key) is subj:   # not evicted meanwhile
                self.arm_idle(g, subj)

    def existing(self, g: GridState, rule_id: str, key: str) -> Subject | None:
        return g.find(rule_id, key)

    def mark(self, g: GridState, subj: Subject) -> None:
        if self.track_changes:
            self.dirty.add(("subject", g.grid.id, subj.rule.id, subj.key))

    def _liveness(self, g: GridState, inp: Input) -> None:
        watch = self._watch.get((inp.source, inp.device_id))
        if watch is None:
            watch = self._watch[(inp.source, inp.device_id)] = self._watch_for(inp)
        dev, key, watchers, scheduled = watch
        if not watchers:
            return
        refreshing = self._refreshing
        held = refreshing.get((g.grid.id, key))
        if held is not None:
            if inp.time >= held.time:
                held.time, held.inp, held.progress = inp.time, inp, self.progress
                return
            del refreshing[(g.grid.id, key)]
            self._refresh(held)
        zone_ids = dev.zone_ids
        if scheduled:
            zone_ids = self._existing_zones(zone_ids, inp.time)
        refreshed = True
        for logic in watchers:
            if scheduled and self._rule_zone(logic.rule, zone_ids) is None:
                continue
            refreshed = logic.alive(self, g, inp, dev, key, zone_ids) and refreshed
        if refreshed and not scheduled:
            refreshing[(g.grid.id, key)] = _Refresh(g, watch, inp.time)

    def _refresh(self, held: _Refresh) -> None:
        """Give the watchers the last message held for a device (Operator.alive), at the
        progress it came at: what the messages held would have done one by one."""
        if held.inp is None:
            return
        dev, key, watchers, _ = held.watch
        now, self.progress = self.progress, held.progress
        for logic in watchers:
            refreshed = logic.alive(self, held.g, held.inp, dev, key, dev.zone_ids)
            assert refreshed, f"{logic.rule.id} {key}: a held message was not a refresh"
        self.progress = now

    def _refresh_all(self) -> None:
        refreshing, self._refreshing = self._refreshing, {}
        for held in refreshing.values():
            self._refresh(held)

    def _watch_for(self, inp: Input) -> tuple[Any, str, list[Operator], bool]:
        """The device, its subject, and which operators watch it (cached per device): kinds
        and, unless one of its zones has a schedule, zone conditions are decided once."""
        devices = self.city.cameras if inp.source is Source.CAMERA else self.city.sensors
        dev = devices.get(inp.device_id or "")
        if dev is None:
            return (None, "", [], False)
        scheduled = not self.scheduled_zones.isdisjoint(dev.zone_ids)
        watchers = [w for w in self.watchers.get(inp.source, ())
                    if w.watches(inp.source, dev)
                    and (scheduled or self._rule_zone(w.rule, dev.zone_ids) is not None)]
        return (dev, f"dev:{dev.id}", watchers, scheduled)

    # -- cases --------------------------------------------------------------------------------

    def linked_alert(self, g: GridState, subj: Subject) -> Alert | None:
        if subj.alert_id is not None:
            alert = g.alerts.get(subj.alert_id)
            if alert is not None and alert.status in ACTIVE:
                return alert
        aid = g.cases.get((subj.rule.id, subj.key))
        return g.alerts.get(aid) if aid is not None else None

    def matched(self, g: GridState, subj: Subject, item: Item | None, zones: tuple[str, ...],
                 new_episode: bool, qualifying: bool) -> None:
        """A matching observation (item) or a firing (item None: evidence already set)."""
        alert = self.linked_alert(g, subj)
        if alert is not None and alert.status in ACTIVE:
            if subj.state.running:
                alert.observe(subj.key)
                subj.fed = (alert.id, subj.state.start)
            if item is not None:
                self._attribute(alert, item, zones)
            elif subj.evidence is not None:
                if alert.status not in FINAL and alert.evidence.fold(subj.evidence):
                    self._changed(alert)
                subj.evidence = None
            return
        fed = subj.fed
        if fed is not None and not new_episode and subj.state.running and fed[1] == subj.state.start:
            # This episode already fed an alert (opened it, or joined it while it was active):
            # it keeps updating it once resolved, and never opens another one.
            fed_alert = g.alerts.get(fed[0])
            if fed_alert is not None and fed_alert.status == "resolved" and item is not None:
                self._attribute(fed_alert, item, zones)
            return
        if item is not None:
            if new_episode or subj.evidence is None:
                subj.evidence = Evidence()
            subj.evidence.add(item, zones)
        if qualifying and subj.state.running:
            t = item.observed_at if item is not None else self.progress
            if t >= subj.cooldown_until:
                self._open(g, subj, zones)

    def _join_nearest(self, g: GridState, subj: Subject, obs: Obs) -> None:
        best: tuple[float, int, str] | None = None
        for alert in g.alerts.values():
            if alert.rule.id != subj.rule.id or alert.status not in ACTIVE or alert.open_lat is None:
                continue
            d = _haversine(obs.lat, obs.lon, alert.open_lat, alert.open_lon)
            if d <= subj.rule.merge_radius_m:
                cand = (d, alert.opened_at, alert.id)
                if best is None or cand < best:
                    best = cand
        if best is not None:
            subj.alert_id = best[2]
            g.alerts[best[2]].join(subj.key)

    def _open(self, g: GridState, subj: Subject, zones: tuple[str, ...]) -> None:
        rule = subj.rule
        now = self.progress
        aid = alert_id(g.grid.id, rule.id, subj.key, subj.state.start)
        if aid in g.alerts:
            return  # this very episode already had its alert (it ended): one alert per episode
        evidence = subj.evidence or Evidence()
        subj.evidence = None
        alert = Alert(aid, g.grid.id, rule, subj.key, subj.state.start, now, evidence, self.cal)
        key_zone = any(self.city.zones[z].key for z in evidence.zones or zones)
        key_period = any(s.is_open(now, self.cal) for s in rule.key_periods)
        if key_zone or key_period:
            alert.severity = raise_severity(rule.severity)
        hs = rule.policy.hotspot
        if hs is not None:
            recent = sum(1 for (t, cat, other) in g.hot
                         if cat == rule.category and now - hs.within_ms < t <= now
                         and (a := g.alerts.get(other)) is not None and a.status != "rejected")
            if recent >= hs.count:
                alert.hotspot = True
                alert.level = 1 + hs.raise_by
        g.hot.append((now, rule.category, aid))
        self._trim_hot(g, now)
        g.alerts[aid] = alert
        self.dirty.add(("grid", g.grid.id))
        g.cases[(rule.id, subj.key)] = aid
        subj.alert_id = aid
        subj.fed = (aid, subj.state.start)
        if subj.state.running:
            alert.observe(subj.key)
        self._emit(alert, "opened")
        self._arm_alert(alert)
        for inp in sorted(self.held.pop(aid, ()), key=lambda i: i.order):
            self.fb_waiting.discard(inp.event_id)
            self._feedback(g, inp)

    def _trim_hot(self, g: GridState, now: int) -> None:
        horizon = now - self.retention
        if g.hot and g.hot[0][0] <= horizon:
            g.hot = [h for h in g.hot if h[0] > horizon]

    def _attribute(self, alert: Alert, item: Item, zones: tuple[str, ...]) -> None:
        if alert.status in FINAL:
            return
        if alert.evidence.add(item, zones):
            self._changed(alert)

    def _changed(self, alert: Alert) -> None:
        """New evidence: an ``updated`` is due (now or held), unless another transition
        carries it first."""
        if self.track_changes:
            self.dirty.add(("alert", alert.grid_id, alert.id))
        if not alert.dirty:
            alert.dirty = True
            self._touched.append(alert)

    def _flush_touched(self) -> None:
        """Emit ``updated`` for alerts changed by this input, or hold it for 60 s."""
        touched, self._touched = self._touched, []
        for alert in touched:
            self._update_or_hold(alert)

    def _update_or_hold(self, alert: Alert) -> None:
        """``updated`` never within 60 s of the alert's previous message: due then instead."""
        if not alert.dirty or alert.status in FINAL:
            return
        if self.progress >= alert.last_msg_at + UPDATE_SPACING_MS:
            self._emit(alert, "updated")
        else:
            self._arm(alert, HELD, 0, alert.last_msg_at + UPDATE_SPACING_MS)

    def episode_ended(self, g: GridState, subj: Subject) -> None:
        alert = self.linked_alert(g, subj)
        if alert is None or not alert.unobserve(subj.key):
            return
        self.dirty.add(("alert", alert.grid_id, alert.id))
        if not alert.observed and alert.status in ACTIVE:
            self._emit(alert, "cleared")

    # -- output -----------------------------------------------------------------------------

    def _emit(self, alert: Alert, transition: str, fb: FeedbackIn | None = None) -> None:
        self.dirty.add(("alert", alert.grid_id, alert.id))
        alert.version += 1
        alert.last_msg_at = self.progress
        alert.dirty = False
        msg = render(alert, transition, self.progress, self.city.grids[alert.grid_id], self.fmt,
                     fb.actor if fb else None, fb.note if fb else None, fb.photos if fb else None)
        self.stats.transitions[transition] += 1
        if self._batch is not None:
            self._batch.append(((alert.rule.id, alert.subject), msg))
        else:
            self.out.append(msg)

    def _reject(self, inp: Input, code: str, reason: str) -> None:
        self.stats.rejected[code] += 1
        self.out.append(DeadOut(code, reason, inp))

    # -- timers -------------------------------------------------------------------------------

    def _due(self, due: int) -> int:
        """A timer already past fires at progress: at once, but after the input of this
        instant and in the contract's timer order (levels ascending, then overdue, ...),
        not in the order of the times it was originally due."""
        return due if due > self.progress else self.progress

    def arm(self, g: GridState, subj: Subject, due: int | None) -> None:
        if due is None:
            return
        if due < self.progress:   # _due, inline: once a part
            due = self.progress
        if subj.armed is None or due < subj.armed:
            subj.armed = due
            self._push(due, subj.logic.rank, 0, subj.rule.id, subj.key, g.grid.id, None)

    def touch(self, g: GridState, subj: Subject) -> None:
        """A subject's input or transition: its idle time starts again from now."""
        subj.touched = self.progress
        self.arm_idle(g, subj)

    def arm_idle(self, g: GridState, subj: Subject) -> None:
        """The timer that drops a subject idle for its rule's ttl: only while its operator has
        no timer armed (one timer a subject, not two). A subject is never dropped while
        armed, so its idle timer is armed when its operator timer is done with
        (``_subject_timer``)."""
        if not subj.armed_idle and subj.armed is None:
            subj.armed_idle = True
            self._push(subj.touched + self.ttl[subj.rule.id], IDLE, 0, subj.rule.id, subj.key,
                       g.grid.id, None)

    def _arm(self, alert: Alert, rank: int, level: int, due: int | None) -> None:
        key = (str(rank), level)
        if due is None:
            alert.armed.pop(key, None)
            return
        due = self._due(due)
        if alert.armed.get(key) != due:
            alert.armed[key] = due
            self._push(due, rank, level, alert.rule.id, alert.subject, alert.grid_id, alert.id)

    def _arm_alert(self, alert: Alert) -> None:
        for lv in alert.policy.levels[alert.level:]:
            self._arm(alert, LEVEL, lv.level, alert.level_due(lv.level))
        self._arm(alert, OVERDUE, 0, alert.overdue_due())

    def _fire(self, timer: Timer) -> None:
        g = self.grids.get(timer.grid_id)
        if g is None:
            return
        self._batch = None
        due, rank, level, ref = timer.due, timer.rank, timer.level, timer.ref
        if rank == FB_EXPIRE:
            self._expire_feedback(ref)
        elif ref is not None:
            alert = g.alerts.get(ref)
            if alert is not None and alert.armed.get((str(rank), level)) == due:
                del alert.armed[(str(rank), level)]
                self._alert_timer(g, alert, rank, level, due)
        else:
            if self._refreshing:
                held = self._refreshing.pop((timer.grid_id, timer.subject), None)
                if held is not None:
                    self._refresh(held)
            subj = g.find(timer.rule_id, timer.subject)
            if subj is not None:
                self._subject_timer(g, subj, rank, due)

    def _subject_timer(self, g: GridState, subj: Subject, rank: int, due: int) -> None:
        self.dirty.add(("subject", g.grid.id, subj.rule.id, subj.key))
        if rank != IDLE:   # the operator's own timer: re-checked, then the operator's to handle
            if subj.armed != due:
                return
            subj.armed = None
            current = subj.logic.due(subj.state)
            if current is not None:
                if current > due:
                    self.arm(g, subj, current)
                    return
                subj.logic.on_timer(self, g, subj, due)
            self.arm_idle(g, subj)   # the operator is done with its timer: idle time counts
        else:
            subj.armed_idle = False
            expires = subj.touched + self.ttl[subj.rule.id]
            if expires > self.progress:
                self.arm_idle(g, subj)
                return
            if subj.state.running or subj.armed is not None:
                return
            alert = self.linked_alert(g, subj)
            if alert is not None and alert.status in ACTIVE:
                return
            self._drop_subject(g, subj)
        self._flush_touched()

    def _drop_subject(self, g: GridState, subj: Subject) -> None:
        del g.subjects[subj.rule.id][subj.key]
        self.dirty.add(("grid", g.grid.id))
        if subj.key.startswith("cam:") and not any(
                g.find(rid, subj.key) is not None for rid in self.camera_rule_ids):
            g.lru.pop(subj.key, None)

    def _cap(self, g: GridState, key: str) -> None:
        """Evict the least recently seen unregistered subject without an active alert (ties:
        the smallest id), so a flood of fake track ids cannot exhaust memory."""
        if key in g.lru or len(g.lru) < self.subject_cap:
            return
        oldest: int | None = None
        victim: str | None = None
        for k, seen in g.lru.items():
            if oldest is not None and seen != oldest:
                break
            if self._has_active_alert(g, k):
                continue
            if oldest is None or k < victim:  # type: ignore[operator]
                oldest, victim = seen, k
        if victim is None:
            return
        del g.lru[victim]
        self.dirty.add(("grid", g.grid.id))
        for rid in self.camera_rule_ids:
            subjects = g.subjects.get(rid)
            gone = subjects.pop(victim, None) if subjects is not None else None
            if gone is not None:   # its timers stay in the heap
                self._stale += (gone.armed is not None) + gone.armed_idle
        self.stats.evicted += 1
        if self._stale > STALE_LIMIT and self._stale * 2 > len(self.timers):
            self._compact_timers()

    def _compact_timers(self) -> None:
        """Drop heap entries of subjects that no longer exist, so evictions free memory at
        once rather than when their timers come due."""
        def live(entry: Timer) -> bool:
            if entry.ref is not None:  # alert timers and held feedback: few, kept
                return True
            g = self.grids.get(entry.grid_id)
            return g is not None and g.find(entry.rule_id, entry.subject) is not None

        self.timers = [e for e in self.timers if live(e)]
        heapq.heapify(self.timers)
        self._stale = 0

    def _has_active_alert(self, g: GridState, key: str) -> bool:
        for rid in self.camera_rule_ids:
            subj = g.find(rid, key)
            if subj is not None:
                alert = self.linked_alert(g, subj)
                if alert is not None and alert.status in ACTIVE:
                    return True
        return False

    def _alert_timer(self, g: GridState, alert: Alert, rank: int, level: int, due: int) -> None:
        if rank == LEVEL:
            current = alert.level_due(level)
            if current is None:
                return
            if current > due:
                self._arm(alert, LEVEL, level, current)
                return
            if not alert.level_blocked(level):
                alert.level = level
                self._emit(alert, "escalated")
        elif rank == OVERDUE:
            current = alert.overdue_due()
            if current is None:
                return
            if current > due:
                self._arm(alert, OVERDUE, 0, current)
                return
            alert.overdue_fired = True
            self._emit(alert, "overdue")
        elif rank == RESUME:
            if alert.status != "deferred" or alert.deferred_until is None:
                return
            if alert.deferred_until > due:
                self._arm(alert, RESUME, 0, alert.deferred_until)
                return
            alert.end_deferral(self.cal, alert.deferred_until)
            alert.status = alert.prev_status
            self._emit(alert, "resumed")
            self._arm_alert(alert)
        elif rank == HELD:
            self._update_or_hold(alert)
        elif rank == RETAIN and alert.ended_at is not None and alert.ended_at + self.retention <= due:
            self._drop_alert(g, alert)

    def _drop_alert(self, g: GridState, alert: Alert) -> None:
        del g.alerts[alert.id]
        self.dirty.add(("grid", g.grid.id))
        case = (alert.rule.id, alert.subject)
        if g.cases.get(case) == alert.id:
            del g.cases[case]

    # -- feedback -------------------------------------------------------------------------

    def _future_feedback(self, inp: Input) -> bool:
        """Refuse (``future_timestamp``) an ``event``-mode feedback more than
        :data:`FEEDBACK_AHEAD_MS` ahead of this partition's clock. Checked before anything else
        in :meth:`feed`, because feeding moves the clock (and ``max_time``, which the end of a
        replay runs the clock to) to the input's time first: a refused feedback must leave the
        clock, the de-duplication memory and everything else as they were. In ``wall`` mode
        ingest holds feedback to its arrival instead; an engine without a clock has seen no
        input, so no alert, and the feedback is held and rejected as ``unknown_alert``."""
        if self.mode != "event" or self.clock is None or inp.time <= self.clock + FEEDBACK_AHEAD_MS:
            return False
        self._reject(inp, "future_timestamp",
                     f"at: {format_span(inp.time - self.clock)} ahead of its partition's event clock "
                     f"({self.fmt(self.clock)}); in event clock mode feedback may be at most "
                     f"{format_span(FEEDBACK_AHEAD_MS)} ahead of it (stamp human actions with the "
                     f"event clock, not the wall clock)")
        return True

    def _feedback(self, g: GridState, inp: Input) -> None:
        fb = inp.feedback
        assert fb is not None
        alert = g.alerts.get(fb.alert_id)
        if alert is not None:
            self.dirty.add(("alert", g.grid.id, alert.id))
            self.dirty.add(("grid", g.grid.id))
            for key in alert.subjects:
                self.dirty.add(("subject", g.grid.id, alert.rule.id, key))
        if alert is None:
            self.held.setdefault(fb.alert_id, []).append(inp)
            self.fb_waiting.add(inp.event_id)
            self._push(self._due(inp.time + self.lateness), FB_EXPIRE, 0, "", inp.event_id,
                       inp.grid_id, (fb.alert_id, inp.event_id))
            return
        if inp.event_id in alert.feedback_ids:
            self.stats.duplicates[inp.topic] += 1
            return
        alert.feedback_ids += (inp.event_id,)
        refusal = alert.refusal(fb.action)
        if refusal is not None:
            self._reject(inp, "illegal_transition", refusal)
            return
        if fb.action == "reopen":
            other = g.cases.get((alert.rule.id, alert.subject))
            other_alert = g.alerts.get(other) if other else None
            if other_alert is not None and other_alert is not alert and other_alert.status in ACTIVE:
                self._reject(inp, "illegal_transition",
                             f"action: reopen is not possible while alert {other_alert.id} of the "
                             f"same rule and subject is {other_alert.status}")
                return
        now = self.progress
        effects = alert.act(fb, now, self.cal)
        if effects.cool_down:
            for key in alert.subjects:
                subj = g.find(alert.rule.id, key)
                if subj is not None:
                    subj.cooldown_until = now + alert.rule.cooldown_ms
                    self.touch(g, subj)
        if effects.ended:
            self._arm(alert, RETAIN, 0, now + self.retention)
        if effects.reopened:
            alert.armed.pop((str(RETAIN), 0), None)
            g.cases[(alert.rule.id, alert.subject)] = alert.id
            for key in alert.subjects:
                subj = g.find(alert.rule.id, key)
                if subj is not None:
                    subj.alert_id = alert.id
                    if subj.state.running:
                        alert.observe(key)
        self._emit(alert, effects.transition, fb)
        if effects.resume_at is not None:
            self._arm(alert, RESUME, 0, effects.resume_at)
        self._arm_alert(alert)

    def _expire_feedback(self, ref: tuple[str, str]) -> None:
        aid, event_id = ref
        waiting = self.held.get(aid)
        if not waiting:
            return
        for inp in [i for i in waiting if i.event_id == event_id]:
            waiting.remove(inp)
            self.fb_waiting.discard(event_id)
            self._reject(inp, "unknown_alert", f"alert_id: no alert {aid} exists")
        if not waiting:
            del self.held[aid]

    # -- introspection (tests, metrics) -------------------------------------------------------

    def remembered(self) -> dict[tuple[str, str, str], int]:
        """The de-duplication memory as it counts (``seen`` may hold entries that ended
        earlier in the current second: they count as forgotten)."""
        return {(topic, event_id, grid): v for (topic, grid), ids in self.seen.items()
                for event_id, v in ids.items() if v >= self.progress}

    def subject_count(self) -> int:
        return sum(g.subject_count() for g in self.grids.values())

    def sizes(self) -> StateSizes:
        """What the engine holds, so that a worker whose memory grows can say what grows: a
        population that has not settled yet, or something nobody trims."""
        alerts = [a for g in self.grids.values() for a in g.alerts.values()]
        ended = sum(1 for a in alerts if a.ended_at is not None)
        return StateSizes(subjects=self.subject_count(), alerts_active=len(alerts) - ended,
                          alerts_ended=ended, dedup_ids=sum(map(len, self.seen.values())),
                          timers=len(self.timers), reorder=len(self.pending),
                          held_feedback=sum(map(len, self.held.values())))


def _match_order(match: Match) -> tuple[str, str, int]:
    return match[:3]


def _transition_order(kv: tuple[tuple[str, str], dict[str, Any]]) -> tuple[str, str]:
    return kv[0]


def format_span(ms: int) -> str:
    """A positive duration for people, largest units first: ``14d 1h 1m 1.001s``; reasons and
    the command line say how far ahead a time is with it."""
    parts = []
    for unit, size in (("d", DAY_MS), ("h", 3_600_000), ("m", 60_000)):
        if ms >= size:
            parts.append(f"{ms // size}{unit}")
            ms %= size
    if ms or not parts:
        seconds, millis = divmod(ms, 1000)
        parts.append(f"{seconds}.{millis:03d}s" if millis else f"{seconds}s")
    return " ".join(parts)


def _haversine(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    r = 6_371_008.8
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * r * math.asin(math.sqrt(a))


# -- snapshots ------------------------------------------------------------------------------
#
# State is cut along the lines the runtime stores it: one record per (grid, subject), one per
# (grid, alert), one per grid, one for the engine's clock, and the de-duplication memory and
# reorder buffer in buckets of the entries new at each checkpoint (rules/buckets.py). Rules are stored by
# id and timers not at all: both are rebuilt on restore from the state itself, so a snapshot
# never pins an old rule object and a restored engine fires exactly what the old one would.

SnapshotKey = tuple[str, ...]
#: Records every snapshot writes whole, changed or not (never deleted).
_WHOLE = ("engine", "marks")


class SubjectRecord(NamedTuple):
    """A subject in a snapshot (pickled as a plain tuple, which pickles at C speed: a
    checkpoint writes every subject that changed since the last one)."""

    rule_id: str
    key: str
    state: Any
    evidence: tuple[Any, ...] | None   # an Evidence cut
    alert_id: str | None
    cooldown_until: int
    touched: int
    fed: tuple[str, int] | None


def _subj_copy(subj: Subject) -> SubjectRecord:
    """A subject's state as a private copy, cheap to take (~3 µs): the operator state copied,
    the evidence cut."""
    ev = subj.evidence
    return SubjectRecord(subj.rule.id, subj.key, subj.logic.snapshot(subj.state),
                         ev.cut() if ev is not None else None,
                         subj.alert_id, subj.cooldown_until, subj.touched, subj.fed)


def _alert_copy(alert: Alert) -> dict[str, Any]:
    """An alert's state as a private copy: its containers copied, its evidence cut."""
    state = {name: own(getattr(alert, name)) for name in Alert.__slots__ if name not in ("armed", "rule")}
    state["rule"] = alert.rule.id
    state["evidence"] = alert.evidence.cut()
    return state


def _dump(obj: Any) -> bytes:
    return pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)


def _built_from_fields(record: type[Any]) -> type:
    """A stand-in for a record class in a pickle, which builds the record from its fields in
    order however the pickle asks: by calling the class (how a struct pickles) or by
    ``cls.__new__(cls, *fields)`` (how a named tuple pickled, which a struct refuses)."""
    def new(_: type, *fields: Any) -> Any:
        return record(*fields)
    return type(record.__name__, (), {"__new__": new})


#: The records checkpoints written before they were structs hold as named tuples.
_WERE_NAMED_TUPLES = {(cls.__module__, cls.__name__): _built_from_fields(cls)
                      for cls in (Input, Obs, FeedbackIn, Item)}


class _Unpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        found = _WERE_NAMED_TUPLES.get((module, name))
        return found if found is not None else super().find_class(module, name)


def _load(data: bytes) -> Any:
    """A record :func:`_dump` wrote, by this version or one before it."""
    return _Unpickler(io.BytesIO(data)).load()


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The engine's state (or what changed of it) at one moment, most of it not yet pickled.

    Subjects, alerts and the de-duplication and reorder buckets — nearly all of a busy
    engine's state — are held as private copies, so the engine can go on while
    :meth:`records` pickles them; the rest (the clock, and per grid its hotspot cases and
    subject recency, a few KB) is pickled when the snapshot is taken. A runtime
    that takes a snapshot holds its event loop for the copies only (~4 µs a subject, against
    ~25 µs to pickle one), and pickles the records a few at a time while it evaluates on.
    """

    pickled: dict[SnapshotKey, bytes]
    copies: dict[SnapshotKey, Any]
    deleted: list[SnapshotKey]

    def records(self) -> Iterator[tuple[SnapshotKey, bytes]]:
        """Every record of the snapshot, pickled as it is asked for."""
        yield from self.pickled.items()
        for key, value in self.copies.items():
            kind = key[0]
            if kind == "subject":
                value = tuple(value)
            elif kind == "seen":      # bucketed entries, in their records' form (rules/buckets.py)
                value = _seen_record(value)
            elif kind == "pending":
                value = {entry[3]: entry for entry in value}
            yield key, _dump(value)


#: Subjects and alerts a step of :func:`taking` looks at (~1 µs each, ~5 µs copied).
TAKE_STEP = 1_000


def take(engine: Engine, changed_only: bool = False) -> Snapshot:
    """The engine's state now, as a :class:`Snapshot`.

    With ``changed_only``, only what changed since the previous snapshot: the runtime writes
    those records to its tables rather than rewriting a busy grid's state on every batch.
    """
    return run_steps(taking(engine, changed_only))


def run_steps(steps: Generator[None, None, T]) -> T:
    """What a stepped generator returns, run through at once."""
    while True:
        try:
            next(steps)
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]


def taking(engine: Engine, changed_only: bool = False) -> Generator[None, None, Snapshot]:
    """:func:`take` a step at a time (each :data:`TAKE_STEP` subjects and alerts): a worker
    lets its event loop run between steps. The engine must not change until it returns."""
    if changed_only and not engine.track_changes:
        raise ValueError("snapshot(changed_only=True) needs an Engine(track_changes=True)")
    if engine.unfinished:
        # restore() tells input applied from input waiting by progress, which a stopped run
        # leaves in between: an input at the same time as the last one applied may be either
        raise ValueError("snapshot of an engine whose run stopped at its budget: resume() it first")
    pickled: dict[SnapshotKey, bytes] = {}
    copies: dict[SnapshotKey, Any] = {}
    pickled[("engine",)] = _dump((engine.clock, engine.progress, engine.max_time,
                                  engine.fb_waiting, engine.held, engine.seq, engine.stats))
    pickled[("marks",)] = _dump(engine.marks)   # a record of its own: the engine record's shape stays
    wanted = engine.dirty if changed_only else None
    live: set[SnapshotKey] = set()
    if engine.track_changes:
        # The cut holds the partition still: slices of lists here, no step per entry.
        new_seen, engine.new_seen = engine.new_seen, []
        _bucketed("seen", engine.seen_buckets, new_seen, engine.progress, changed_only, copies, live)
        _bucketed("pending", engine.pending_buckets, _new_pending(engine), engine.progress,
                  changed_only, copies, live)
    else:
        copies[("seen", "0")] = [item for ids in engine.seen.values()
                                 for event_id, expiry in ids.items()
                                 for item in (ids.group, event_id, expiry)]
        copies[("pending", "0")] = list(engine.pending)
    looked = 0
    for gid, g in engine.grids.items():
        if looked >= TAKE_STEP:
            looked = 0
            yield
        looked += g.subject_count() + len(g.alerts)
        gkey = ("grid", gid)
        live.add(gkey)
        if wanted is None or gkey in wanted:
            pickled[gkey] = _dump((g.hot, g.lru, g.cases))
        for subj in g.each_subject():
            k = ("subject", gid, subj.rule.id, subj.key)
            live.add(k)
            if wanted is None or k in wanted:
                copies[k] = _subj_copy(subj)
        for aid, alert in g.alerts.items():
            k = ("alert", gid, aid)
            live.add(k)
            if wanted is None or k in wanted:
                copies[k] = _alert_copy(alert)
    deleted = sorted(engine.known - live) if changed_only else []
    engine.known = live if engine.track_changes else set()
    if engine.track_changes:
        engine.dirty = set()
    return Snapshot(pickled, copies, deleted)


def snapshot(engine: Engine, changed_only: bool = False
             ) -> tuple[dict[SnapshotKey, bytes], list[SnapshotKey]]:
    """Serialise the engine at once: (records to write, keys to delete). See :func:`take`."""
    taken = take(engine, changed_only)
    return dict(taken.records()), taken.deleted


def restore(engine: Engine, records: dict[SnapshotKey, bytes]) -> None:
    """Load a snapshot into a fresh engine (same map and rules) and rebuild its timers."""
    rules = {r.id: r for r in engine.rules.rules}
    (engine.clock, engine.progress, engine.max_time, engine.fb_waiting, engine.held, engine.seq,
     engine.stats) = _load(records[("engine",)])
    engine.stats.upgrade()
    # A checkpoint written before the source marks existed has none: the first re-read after
    # such a restore still counts as duplicate or late, as it did then.
    engine.marks = _load(records[("marks",)]) if ("marks",) in records else {}
    engine.seen, engine.pending = {}, []
    engine.seen_buckets, engine.pending_buckets = Buckets(_seen_until, stride=3), Buckets(_pending_until)
    engine.new_seen = []
    engine.timers = []
    engine.grids = {}
    for key in sorted(records, key=lambda k: (k[0] != "grid", k)):
        kind = key[0]
        if kind in _WHOLE:
            continue
        data = _load(records[key])
        # Buckets keep entries that left after they were written (rules/buckets.py). Right
        # after a feed or tick, which is when snapshots are taken, the reorder buffer holds
        # exactly the input newer than progress, and the de-duplication memory exactly what
        # expires at progress or later: what is older had left.
        if kind == "seen":
            live: dict[tuple[str, str], dict[str, int]] = {}
            for group, entries in _seen_groups(data):
                for event_id, expiry in entries:
                    if expiry >= engine.progress:
                        live.setdefault(group, {})[event_id] = expiry
            for group, entries in live.items():
                engine._seen_ids(group).update(entries)
            if engine.track_changes:
                engine.seen_buckets.load(int(key[1]), [item for group, ids in live.items()
                                                       for event_id, expiry in ids.items()
                                                       for item in (group, event_id, expiry)])
            continue
        if kind == "pending":
            kept = [entry for entry in data.values() if entry[0] > engine.progress]
            engine.pending.extend(kept)
            if engine.track_changes:
                engine.pending_buckets.load(int(key[1]), kept)
            continue
        g = engine._grid(key[1])
        if kind == "grid":
            g.hot, g.lru, g.cases = data
        elif kind == "subject":
            rec = SubjectRecord._make(data)
            logic = engine.logic[rec.rule_id]
            subj = Subject(logic, rec.key, logic.restore(rec.state), rec.touched)
            subj.evidence = Evidence.unpack(rec.evidence) if rec.evidence is not None else None
            subj.alert_id, subj.cooldown_until, subj.fed = rec.alert_id, rec.cooldown_until, rec.fed
            g.subjects.setdefault(rec.rule_id, {})[rec.key] = subj
        elif kind == "alert":
            rule = rules[data.pop("rule")]
            data["evidence"] = Evidence.unpack(data["evidence"])
            if "shift" in data:
                data = _from_shift(data, rule)
            alert = Alert.__new__(Alert)
            alert.rule = rule
            alert.armed = {}
            for name, value in data.items():
                setattr(alert, name, value)
            # sets in a checkpoint written before they were tuples
            alert.observed, alert.subjects = tuple(alert.observed), tuple(alert.subjects)
            alert.feedback_ids = tuple(alert.feedback_ids or ())
            g.alerts[alert.id] = alert
    for g in engine.grids.values():
        for subj in g.each_subject():
            engine.arm(g, subj, subj.logic.due(subj.state))
            engine.arm_idle(g, subj)
        for alert in g.alerts.values():
            engine._arm_alert(alert)
            if alert.status == "deferred":
                engine._arm(alert, RESUME, 0, alert.deferred_until)
            if alert.dirty:
                engine._arm(alert, HELD, 0, alert.last_msg_at + UPDATE_SPACING_MS)
            if alert.ended_at is not None:
                engine._arm(alert, RETAIN, 0, alert.ended_at + engine.retention)
    heapq.heapify(engine.pending)
    engine.written_seq = engine.seq   # all that was restored is in the records read
    engine.expiring, engine.expiring_at = {}, []
    for ids in engine.seen.values():
        for event_id, expiry in ids.items():
            engine._expire_at(ids, event_id, expiry)
    for waiting in engine.held.values():
        for inp in waiting:
            engine._push(inp.time + engine.lateness, FB_EXPIRE, 0, "", inp.event_id, inp.grid_id,
                         (inp.feedback.alert_id, inp.event_id))  # type: ignore[union-attr]
    if engine.track_changes:
        engine.known = {k for k in records if k[0] not in _WHOLE}
        engine.dirty = set()


def _bucketed(name: str, buckets: Buckets[E], new: list[E], progress: int, changed_only: bool,
              copies: dict[SnapshotKey, Any], live: set[SnapshotKey]) -> None:
    """Put the new entries in new buckets, to be written (and the buckets an entry was taken
    out of); name the buckets still live (and write them all again, ``changed_only`` False)."""
    for b, entries in buckets.add(new).items():
        if buckets.until[b] >= progress:   # else no record: it would never be deleted
            copies[(name, str(b))] = entries
    for b, entries in buckets.live(progress).items():
        live.add((name, str(b)))
        if not changed_only:
            copies[(name, str(b))] = entries


def _seen_record(items: list[SeenItem]) -> dict[tuple[str, str], dict[str, int]]:
    """A ``seen`` bucket's record: ``{(topic, grid): {event id: expiry}}`` (of an id listed
    twice, remembered again after it expired, the later entry: restore skips the stale one
    anyway, as it expired before progress)."""
    record: dict[tuple[str, str], dict[str, int]] = {}
    for group, event_id, expiry in zip(items[0::3], items[1::3], items[2::3], strict=True):
        ids = record.get(group)
        if ids is None:
            ids = record[group] = {}
        ids[event_id] = expiry
    return record


def _seen_until(items: list[SeenItem]) -> int:
    """The last progress at which one of these de-duplication entries is live (``restore``
    keeps those expiring at progress or later)."""
    return max(items[2::3])  # type: ignore[type-var,return-value]


def _new_pending(engine: Engine) -> list[PendingEntry]:
    """The reorder buffer's entries added since the last snapshot (a scan of the buffer,
    which holds what is newer than the watermark: a few seconds of input)."""
    since, engine.written_seq = engine.written_seq, engine.seq
    return [entry for entry in engine.pending if entry[3] > since]


def _pending_until(entries: list[PendingEntry]) -> int:
    """The last progress at which one of these reorder buffer entries is live (``restore``
    keeps those newer than progress)."""
    return max(entries)[0] - 1


def _seen_groups(data: dict[Any, Any]) -> Iterator[tuple[tuple[str, str], Iterable[tuple[str, int]]]]:
    """A ``seen`` record's entries by group: ``{(topic, grid): {event id: expiry}}``, or as a
    checkpoint written before the groups held them, ``{(topic, event id, grid): expiry}``."""
    for key, value in data.items():
        if isinstance(value, dict):
            yield key, value.items()
        else:
            topic, event_id, grid = key
            yield (topic, grid), ((event_id, value),)


def _from_shift(data: dict[str, Any], rule: Rule) -> dict[str, Any]:
    """An alert checkpointed before working-time deadlines (issue 14), when every level and the
    deadline were due ``shift`` (the time spent deferred) later than the policy said, in the
    new form: absolute instants, and what remained of each when a deferral began. Such a
    checkpoint holds natural-time spans only."""
    data = dict(data)
    shift, restart, start = data.pop("shift"), data.pop("restart_base"), data.pop("defer_start")
    opened = data["opened_at"]
    dues = tuple(opened + lv.after.amount + (shift if i >= data["level"] else 0)
                 for i, lv in enumerate(rule.policy.levels))   # levels reached never move
    deadline = (None if rule.deadline is None
                else (restart if restart is not None else opened) + rule.deadline.amount + shift)
    left: tuple[tuple[int, int], ...] | None = None
    shown = None
    if data["status"] == "deferred" and start is not None:
        items = [(i, due) for i, due in enumerate(dues) if i >= data["level"]] + [(-1, deadline)]
        left = tuple((i, due - start) for i, due in items if due is not None and due > start)
        remaining = dict(left)
        shown = data["deferred_until"] + remaining[-1] if -1 in remaining else deadline
    return {**data, "level_dues": dues, "deadline": deadline, "defer_left": left,
            "deferred_deadline": shown}
