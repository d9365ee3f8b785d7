"""Replay a recorded input log (RULES.md, the replay file) through ingest and the engines.

The same code path as a live worker, minus Kafka: each line is one message as it arrived (or
a clock tick), and the grids are split over partitions exactly as a worker splits them
(rules/partitioning.py), one engine per partition, each with its own clock (CONTRACTS.md,
Time). So input is late in a replay exactly when it is late in a worker, and a replay of a
recording gives the messages the live run gave, on every field but ``emitted_at``.

**Accounting.** Every message line (a line that is not a tick) has exactly one outcome, so
``accepted + ignored + late + duplicates + dead letters == lines - ticks`` after every line
(:class:`Summary`). A message split into several grid parts is one line with one outcome:
*accepted* if any part was taken in (applied or waiting) and the message carries something a
rule can match (a detection of a known label, a reading of a known kind and state, a report
of a known category, feedback); *ignored* if parts were taken in but it carries nothing
matchable (a heartbeat, only unknown labels, an unknown sensor kind or state or report
category); otherwise *duplicate* if any part was a duplicate (or a redelivered record), else
*late*. Feedback is taken in first and may turn out later to be a duplicate (its alert already
had it) or a dead letter (``unknown_alert``, ``illegal_transition``, ``future_timestamp``); its
line then moves there.

**Last line of defence.** An exception while applying one line (after the edge checks) does not
stop the replay: the engines the line touched are rolled back to the state before it (each
engine's state is kept as pickled records refreshed by changed-only cuts every
:data:`CUT_EVERY` calls, plus the calls since, which are applied again), the line becomes a
dead letter ``internal_error``, the traceback is logged once, and the replay goes on. The input
being applied is found in the traceback: when it is an earlier line's, waiting in the reorder
buffer or held (feedback), that input is withdrawn and dead-lettered instead, and the line is
applied again. A fault while firing a timer is the timer's, not the line's that made it due:
the engine is rolled back, told to skip that timer from then on (``Engine.skip_timers``), and
the line applied again; no line is dead-lettered for it (it is logged and counted in
``faults``), as a worker does.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import orjson

from models.decode import TOPIC_SOURCES, BadInput, Source
from models.outputs import dead_letter
from models.timestamps import check_range, in_range
from models.timestamps import parse_timestamp_ms as parse_timestamp
from rules import faults
from rules.citymap import CityMap
from rules.engine import NEVER, DeadOut, Engine, SnapshotKey, Stats, restore, take
from rules.ingest import Ingest
from rules.inputs import Input
from rules.pack import RuleSet
from rules.partitioning import DEFAULT_PARTITIONS, grid_partition
from rules.timers import Timer, timer_key

log = logging.getLogger(__name__)

CUT_EVERY: Final = 10_000
"""Engine calls between two rollback cuts of one engine: a rollback applies at most this many
again, and a cut pickles only what changed since the one before."""

FEEDBACK_TOPIC: Final = next(t for t, s in TOPIC_SOURCES.items() if s is Source.FEEDBACK)

Output = dict[str, Any] | DeadOut
_SOURCE_NAMES: Final = {s: s.name.lower() for s in Source}   # the engine's keys by source
Call = tuple[int, str, Any]   # (partition, "feed" | "tick" | "finish", its argument)
# A line's outcome once counted ("accepted", "ignored", "feedback", "late", "duplicate"; "dead"
# once withdrawn) and the line: what its dead letter needs should a part of it fail later.
LineRecord = list[Any]
Entry = tuple[str, Any, LineRecord | None]   # a call made since the last cut, and its line


class ReplayFileError(ValueError):
    """A line of the replay file itself is malformed (not an input message that is bad)."""

    def __init__(self, source: str, line: int, message: str) -> None:
        super().__init__(f"{source}:{line}: {message}")


@dataclass(frozen=True, slots=True)
class Message:
    """One line of a replay file: an input message as it arrived, or a tick."""

    topic: str | None
    key: str | None
    payload: bytes
    arrival: int | None
    tick: int | None = None


def parse_line(text: str | bytes, source: str = "<replay>", line: int = 0) -> Message:
    """One replay-file line. A malformed line (or a tick outside the contract's time range)
    raises :class:`ReplayFileError`; an arrival outside the range is kept, for ingest to
    dead-letter as a live worker does with such a Kafka timestamp."""
    try:
        obj = orjson.loads(text)
    except orjson.JSONDecodeError as e:
        obj = _load_surrogates(text, source, line, e)
    if not isinstance(obj, dict):
        raise ReplayFileError(source, line, "each line must be a JSON object")
    if "tick" in obj:
        # A tick is the file's own (a producer's, or its writer's), not input from outside:
        # out of range, the file is wrong, as with a tick that is not a time at all.
        tick = _time(obj["tick"], source, line, "tick")
        try:
            check_range(tick)
        except ValueError as e:
            raise ReplayFileError(source, line, f"'tick': {e}") from None
        return Message(None, None, b"", None, tick=tick)
    topic = obj.get("topic")
    if not isinstance(topic, str):
        raise ReplayFileError(source, line, "'topic' is missing (or write a {\"tick\": TIME} line)")
    key = obj.get("key")
    if key is not None and not isinstance(key, str):
        raise ReplayFileError(source, line, "'key' must be a string or null")
    if "value" in obj:
        value = obj["value"]
        if _LONG_NUMBER in (text if isinstance(text, bytes) else
                            text.encode("utf-8", "surrogatepass")).translate(_DIGITS):
            # orjson reads an integer beyond 64 bits as a float: another number than the
            # line's. The standard parser keeps it (19 digits in a row are rare otherwise).
            value = _load_surrogates(text, source, line, ValueError("nested too deeply"))["value"]
        try:
            payload = orjson.dumps(value)
        except orjson.JSONEncodeError:   # a lone surrogate, an integer beyond 64 bits, depth
            try:
                payload = _compact(value)
            except RecursionError:
                raise ReplayFileError(source, line, "'value' is nested too deeply to be written "
                                      "back as a message; give the bytes as 'raw'") from None
    elif "raw" in obj:
        if not isinstance(obj["raw"], str):
            raise ReplayFileError(source, line, "'raw' must be a string")
        payload = obj["raw"].encode("utf-8", "surrogatepass")
    elif "raw_b64" in obj:
        try:
            payload = base64.b64decode(obj["raw_b64"], validate=True)
        except (binascii.Error, TypeError, ValueError):
            raise ReplayFileError(source, line, "'raw_b64' is not valid base64") from None
    else:
        raise ReplayFileError(source, line, "a message line needs one of 'value', 'raw', 'raw_b64'")
    arrival = obj.get("arrival")
    if key is not None and not key.isascii():
        key = _as_received(key)
    return Message(topic, key, payload,
                   _time(arrival, source, line, "arrival") if arrival is not None else None)


_DIGITS: Final = bytes(48 if 48 <= b <= 57 else 32 for b in range(256))   # digits -> "0"
_LONG_NUMBER: Final = b"0" * 19   # the shortest integer literal that may not fit in 64 bits


def _load_surrogates(text: str | bytes, source: str, line: int, error: Exception) -> Any:
    """A line orjson refused. It refuses a lone surrogate escape (``"\\ud800"``), which is valid
    JSON text and how a line spells bytes that are not UTF-8 (``raw``): the standard parser
    keeps it. Strict JSON still: NaN and Infinity are refused by both."""
    try:
        return json.loads(text, parse_constant=_no_constant)
    except (ValueError, RecursionError):
        raise ReplayFileError(source, line, f"not a JSON object ({error})") from None


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _compact(value: Any) -> bytes:
    """``value`` as sent (compact JSON in UTF-8) where orjson cannot write it: a string with a
    lone surrogate becomes the bytes it stands for (not UTF-8, so a ``bad_encoding`` dead
    letter), as with ``raw``."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"),
                      allow_nan=False).encode("utf-8", "surrogatepass")


def _as_received(key: str) -> str:
    """A key as a worker reads it: its bytes decoded with replacement (a lone surrogate
    cannot be UTF-8, and must not reach a dead letter that is written as JSON)."""
    return key.encode("utf-8", "surrogatepass").decode("utf-8", "replace")


def _time(value: Any, source: str, line: int, name: str) -> int:
    try:
        return parse_timestamp(value)
    except ValueError as e:
        raise ReplayFileError(source, line, f"'{name}': {e}") from None


@dataclass(slots=True)
class Summary:
    """What a replay did with its lines: one outcome per message line (module docstring), so
    ``accepted + ignored + late + duplicates + dead_letters == lines - ticks`` holds after
    every line and at the end. ``dead`` counts dead letters by reason code; ``faults`` the
    exceptions caught by the last line of defence (each logged with its traceback), whether
    they dead-lettered a line or not.
    """

    lines: int = 0        # lines read, ticks included (blank lines are not lines)
    ticks: int = 0
    accepted: int = 0
    ignored: int = 0
    late: int = 0
    duplicates: int = 0
    dead: Counter[str] = field(default_factory=Counter)
    faults: int = 0
    alerts_out: int = 0
    final: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def messages(self) -> int:
        """Message lines: every line that is not a tick."""
        return self.lines - self.ticks

    @property
    def dead_letters(self) -> int:
        return sum(self.dead.values())


class Replay:
    """Drive ingest and one engine per partition from replay-file lines; collect the outputs.

    ``partitions`` splits the grids as a worker with that many partitions does (1: one engine
    for the whole city). ``engine`` runs a one-partition replay on a caller's engine, which the
    caller may inspect, snapshot or replace (``replay.engine = other``); the replay then keeps
    no rollback state of it, so an exception in it is the caller's. ``engine_options`` go to
    each :class:`Engine` the replay builds.

    >>> replay = Replay(city, rules, clock="event", on_alert=print, on_dead=print)  # doctest: +SKIP
    >>> for n, text in enumerate(open("day.jsonl", "rb"), 1): replay.line(text, n)  # doctest: +SKIP
    >>> replay.finish()                                                        # doctest: +SKIP
    """

    def __init__(self, city: CityMap, rules: RuleSet, *, clock: str = "event",
                 on_alert: Callable[[dict[str, Any]], None],
                 on_dead: Callable[[dict[str, Any]], None],
                 now: Callable[[], int] | None = None, source: str = "<replay>",
                 engine: Engine | None = None, partitions: int = DEFAULT_PARTITIONS,
                 engine_options: dict[str, Any] | None = None) -> None:
        if engine is None and partitions < 1:
            raise ValueError(f"partitions must be at least 1, not {partitions}")
        self.city = city
        self.rules = rules
        self.clock = clock
        self.engine_options = dict(engine_options or {})
        self.ingest = Ingest(city, rules, clock=clock)
        self.on_alert = on_alert
        self.on_dead = on_dead
        self.now = now
        self.source = source
        self.summary = Summary()
        self.engines: list[Engine] = [engine] if engine is not None else [
            self._new_engine() for _ in range(partitions)]
        # Rollback state per engine: its records at the last cut and the calls made since.
        self._stores: list[dict[SnapshotKey, bytes]] | None = None
        self._journals: list[list[Entry]] = [[] for _ in self.engines]
        if engine is None:
            self._stores = [dict(take(e).records()) for e in self.engines]
        # Journals cut already but with parts still waiting in their engine (the last due of
        # them first): where a part that fails later finds its line.
        self._older: list[list[tuple[int, list[Entry]]]] = [[] for _ in self.engines]
        self._last_due = [NEVER] * len(self.engines)   # of the parts in the current journal
        self._accepted = self._duplicates = self._fb_fed = self._fb_dead = 0
        self._fb_dups = [0] * len(self.engines)   # each engine's feedback duplicates

    # -- the engines --------------------------------------------------------------------------

    @property
    def partitions(self) -> int:
        return len(self.engines)

    @property
    def engine(self) -> Engine:
        """The engine of a one-partition replay (tests read and replace it)."""
        if len(self.engines) != 1:
            raise AttributeError(f"this replay runs {len(self.engines)} engines, one per "
                                 "partition: use engines[p] or engine_for(grid_id)")
        return self.engines[0]

    @engine.setter
    def engine(self, engine: Engine) -> None:
        if len(self.engines) != 1:
            raise AttributeError(f"this replay runs {len(self.engines)} engines")
        self.engines[0] = engine
        self._stores = None   # the caller's engine now: its state is the caller's to keep

    def engine_for(self, grid_id: str) -> Engine:
        """The engine that holds ``grid_id``'s state."""
        return self.engines[grid_partition(grid_id, len(self.engines))]

    @property
    def stats(self) -> Stats:
        """Every engine's counts added up."""
        total = Stats()
        for e in self.engines:
            s = e.stats
            total.late.update(s.late)
            total.late_sources.update(s.late_sources)
            total.redelivered.update(s.redelivered)
            total.duplicates.update(s.duplicates)
            total.rejected.update(s.rejected)
            total.transitions.update(s.transitions)
            total.evicted += s.evicted
            total.applied += s.applied
        return total

    def _new_engine(self) -> Engine:
        return Engine(self.city, self.rules, clock=self.clock, track_changes=True,
                      **self.engine_options)

    # -- lines ----------------------------------------------------------------------------------

    def line(self, text: str | bytes, lineno: int) -> None:
        """Apply one replay-file line. A :class:`ReplayFileError` changes nothing (the line is
        not counted); anything else is counted in :attr:`summary` with one outcome."""
        msg = parse_line(text, self.source, lineno)
        if msg.tick is not None:
            self.summary.lines += 1
            self.summary.ticks += 1
            self._tick_all(msg.tick)
            self._settle()
            return
        assert msg.topic is not None
        src = TOPIC_SOURCES.get(msg.topic)
        if src is None:
            raise ReplayFileError(self.source, lineno, f"unknown topic {msg.topic!r}; expected one "
                                  f"of {', '.join(sorted(TOPIC_SOURCES))}")
        if self.clock == "wall" and msg.arrival is None:
            raise ReplayFileError(self.source, lineno, "--clock wall needs an 'arrival' on every line")
        self.summary.lines += 1
        offset = lineno - 1
        try:
            result = self.ingest(src, msg.topic, msg.payload, key=msg.key, arrival=msg.arrival,
                                 partition=0, offset=offset)
        except Exception as error:
            self._fault(error, f"line {lineno}")
            self._dead_line(msg, offset, None, "internal_error", faults.reason(error))
            self._settle()
            return
        if isinstance(result, BadInput):
            self._dead_line(msg, offset, result.event_id, result.reason_code, result.reason)
            if self.clock == "wall" and msg.arrival is not None and in_range(msg.arrival):
                self._tick_all(msg.arrival)
            self._settle()
            return
        n = len(self.engines)
        record: LineRecord = [None, msg]
        if len(result) == 1:
            calls = [(grid_partition(result[0].grid_id, n) if n > 1 else 0, "feed", result[0])]
        else:  # engine order; a partition's parts in the order ingest gives them
            calls = sorted(((grid_partition(part.grid_id, n) if n > 1 else 0, "feed", part)
                            for part in result), key=lambda c: c[0])
        outcomes = self._unit(calls, result, record)
        if isinstance(outcomes, BaseException):
            self._fault(outcomes, f"line {lineno}")
            self._dead_line(msg, offset, result[0].event_id, "internal_error", faults.reason(outcomes))
        else:
            self._count(record, calls, outcomes)
        self._settle()

    def finish(self, until: int | None = None) -> Summary:
        """End of the replay (CONTRACTS.md, Time): every engine's clock moves to the last
        input's time of the whole replay (or ``until``, never earlier) + the reorder window, so
        all waiting input is applied and the timers due by then fire; held feedback is rejected.
        Engines finish in partition order."""
        if until is not None:
            check_range(until)
        ends = [e.max_time for e in self.engines if e.max_time > NEVER]
        if until is not None:
            ends.append(until)
        end = max(ends, default=None)
        for p in range(len(self.engines)):
            failed = self._unit([(p, "finish", end)], ())
            if isinstance(failed, BaseException):
                self._fault(failed, f"the end of partition {p}")
        self._older = [[] for _ in self.engines]
        self._settle()
        return self.summary

    def _tick_all(self, t: int) -> None:
        """A tick reaches every engine; each engine's tick is a unit of its own (a tick that
        fails in one engine leaves the others ticked)."""
        for p in range(len(self.engines)):
            failed = self._unit([(p, "tick", t)], ())
            if isinstance(failed, BaseException):
                self._fault(failed, f"a tick of partition {p}")

    # -- applying with a last line of defence ---------------------------------------------------

    def _unit(self, calls: Sequence[Call], own: Sequence[Input],
              record: LineRecord | None = None) -> list[str] | BaseException:
        """Make ``calls`` as one unit: its outputs are emitted only once all of them succeeded.

        Returns each call's outcome (``feed``: "queued", "late" or "duplicate"). On an
        exception, every engine the unit reached is rolled back; if the input being applied
        was an earlier line's, it is withdrawn and dead-lettered and the unit tried again,
        otherwise the exception is returned (the unit is at fault)."""
        while True:
            done = 0
            outcomes: list[str] = []
            outputs: list[Output] = []
            try:
                for p, kind, arg in calls:
                    outcomes.append(self._call(p, kind, arg, outputs))
                    done += 1
            except Exception as error:
                if self._stores is None:
                    raise
                reached = {p for p, _, _ in calls[:done + 1]}
                for p in reached:
                    self._rebuild(p)
                    self._fb_dups[p] = self.engines[p].stats.duplicates.get(FEEDBACK_TOPIC, 0)
                failed_in = calls[done][0]
                culprit = faults.culprit(error)
                if isinstance(culprit, Timer):
                    if self._skip(failed_in, culprit, error):
                        continue
                elif culprit is not None and culprit not in own and \
                        self._withdraw(failed_in, culprit, error):
                    continue
                return error
            touched = (calls[0][0],) if len(calls) == 1 else dict.fromkeys(p for p, _, _ in calls)
            if self._fb_fed:   # only feedback is found a duplicate after its own call
                for p in touched:
                    self._fb_dups[p] = self.engines[p].stats.duplicates.get(FEEDBACK_TOPIC, 0)
            if self._stores is not None:
                journals = self._journals
                for p, kind, arg in calls:
                    journals[p].append((kind, arg, record))
                for p in touched:
                    if len(journals[p]) >= CUT_EVERY:
                        self._cut(p)
            if outputs:
                self._emit(outputs)
            return outcomes

    def _call(self, p: int, kind: str, arg: Any, outputs: list[Output]) -> str:
        engine = self.engines[p]
        if kind != "feed":
            outputs += engine.tick(arg) if kind == "tick" else engine.finish(arg)
            return kind
        part: Input = arg
        if part.feedback is not None:
            outputs += engine.feed(part)
            return "queued"
        # Whether non-feedback input is taken in is decided in feed itself and shows in these
        # counters only (Stats: redelivered, duplicate and late are disjoint; a feedback
        # duplicate found later counts under the feedback topic).
        topic = part.topic
        source = _SOURCE_NAMES[part.source]
        stats = engine.stats
        before = (stats.duplicates.get(topic, 0) + stats.redelivered.get(source, 0),
                  stats.late_sources.get(source, 0))
        outputs += engine.feed(part)
        stats = engine.stats
        if stats.duplicates.get(topic, 0) + stats.redelivered.get(source, 0) != before[0]:
            return "duplicate"   # a record read again is the same message again
        if stats.late_sources.get(source, 0) != before[1]:
            return "late"
        return "queued"

    def _cut(self, p: int) -> None:
        """Refresh engine ``p``'s records with what changed since the last cut."""
        store = self._stores
        assert store is not None
        engine = self.engines[p]
        taken = take(engine, changed_only=True)
        store[p].update(taken.records())
        for key in taken.deleted:
            store[p].pop(key, None)
        older = [g for g in self._older[p] if g[0] > engine.progress]
        if self._last_due[p] > engine.progress:
            older.append((self._last_due[p], self._journals[p]))
        self._older[p] = older
        self._journals[p] = []
        self._last_due[p] = NEVER

    def _rebuild(self, p: int) -> None:
        """Engine ``p`` as it was after the last unit that succeeded: its records at the last
        cut, and the calls since made again (their output was emitted already)."""
        assert self._stores is not None
        engine = self._new_engine()
        engine.skip_timers = self.engines[p].skip_timers
        restore(engine, self._stores[p])
        for kind, arg, _ in self._journals[p]:
            getattr(engine, kind)(arg)
        self.engines[p] = engine

    def _skip(self, p: int, timer: Timer, error: Exception) -> bool:
        """Make engine ``p`` (rolled back to before the unit) skip ``timer`` from now on, as a
        worker does: a timer that raises is nobody's input, so no line is dead-lettered for it
        and the unit is tried again. False if it was skipped already (the fault is not the
        timer's, then: the unit's)."""
        key = timer_key(timer)
        skip = self.engines[p].skip_timers
        if key in skip:
            return False
        skip.add(key)
        self._fault(error, f"firing {faults.timer_name(timer, self.city.calendar.format)}: "
                           "skipped from now on")
        return True

    def _withdraw(self, p: int, culprit: Input, error: Exception) -> bool:
        """Take ``culprit`` (an earlier line's part that fails when applied) out of engine
        ``p`` and dead-letter its line; False if the engine does not hold it."""
        if not self.engines[p].withdraw(culprit):
            return False
        self._fault(error, f"applying {culprit.topic} {culprit.event_id}")
        record = self._record_of(p, culprit)
        self._cut(p)   # from now on a rollback starts without it
        if record[0] == "dead":
            return True   # its line is a dead letter already (another part of it failed)
        outcome, msg = record[0], record[1]
        if outcome == "accepted":
            self._accepted -= 1
        elif outcome == "ignored":
            self.summary.ignored -= 1
        else:
            self._fb_dead += 1   # feedback is counted accepted unless duplicate or dead
        self.summary.dead["internal_error"] += 1
        record[0] = "dead"
        self._dead(culprit.topic, culprit.partition, culprit.offset, msg.key, culprit.event_id,
                   "internal_error", faults.reason(error), msg.payload, culprit.arrival)
        return True

    def _record_of(self, p: int, culprit: Input) -> LineRecord:
        """The line of ``culprit``, a part waiting in engine ``p``: in the journal since the
        last cut, or in one cut before (kept while a part of it waits)."""
        for entries in (self._journals[p], *(g[1] for g in reversed(self._older[p]))):
            for kind, part, record in reversed(entries):
                if kind == "feed" and record is not None and part.offset == culprit.offset \
                        and part.event_id == culprit.event_id:
                    return record
        # Not expected (a waiting part's journal is kept): the part itself says all but a
        # split message's other parts and the payload (feedback carries its own).
        outcome = "feedback" if culprit.feedback else "accepted" if culprit.obs else "ignored"
        return [outcome, Message(culprit.topic, culprit.key, culprit.raw or b"", culprit.arrival)]

    # -- counting -------------------------------------------------------------------------------

    def _count(self, record: LineRecord, calls: Sequence[Call], outcomes: Sequence[str]) -> None:
        """Count the line's one outcome (module docstring) in ``record``; note how long its
        parts may wait in their engines, where applying one may still fail."""
        first: Input = calls[0][2]
        if first.feedback is not None:
            self._fb_fed += 1
            record[0] = "feedback"
        elif "queued" in outcomes:
            if first.obs if len(calls) == 1 else any(part.obs for _, _, part in calls):
                self._accepted += 1
                record[0] = "accepted"
            else:
                self.summary.ignored += 1
                record[0] = "ignored"
        else:
            if "duplicate" in outcomes:
                self._duplicates += 1
            else:
                self.summary.late += 1
            return
        last_due = self._last_due
        for (p, _, part), fed in zip(calls, outcomes, strict=True):
            # applied once its engine's progress passes it (held feedback: rejected by then)
            due = part.time if part.feedback is None else part.time + self.engines[p].lateness
            if fed == "queued" and due > last_due[p]:
                last_due[p] = due

    def _settle(self) -> None:
        """Feedback's outcome can change after its line (module docstring): its counts are
        derived from the engines' feedback duplicates and the feedback dead letters so far."""
        fb_dups = sum(self._fb_dups) if self._fb_fed else 0
        self.summary.accepted = self._accepted + self._fb_fed - fb_dups - self._fb_dead
        self.summary.duplicates = self._duplicates + fb_dups

    # -- output ---------------------------------------------------------------------------------

    def _fault(self, error: BaseException, where: str) -> None:
        self.summary.faults += 1
        log.error("internal error in %s (%s): %s; the replay goes on without it", self.source,
                  where, faults.reason(error), exc_info=error)

    def _dead_line(self, msg: Message, offset: int, event_id: str | None, code: str,
                   reason: str) -> None:
        assert msg.topic is not None
        self.summary.dead[code] += 1
        self._dead(msg.topic, 0, offset, msg.key, event_id, code, reason, msg.payload, msg.arrival)

    def _dead(self, topic: str, partition: int | None, offset: int | None, key: str | None,
              event_id: str | None, code: str, reason: str, payload: bytes,
              arrival: int | None) -> None:
        self.on_dead(dead_letter(topic=topic, partition=partition, offset=offset, key=key,
                                 event_id=event_id, reason_code=code, reason=reason, payload=payload,
                                 received_at=self._received(arrival)))

    def _received(self, arrival: int | None) -> str:
        """A dead letter's ``received_at``: its arrival, else the newest clock of the replay
        (a live worker writes the wall clock; a replay stays a function of its input)."""
        if arrival is not None and in_range(arrival):
            return self.city.calendar.format(arrival)
        clock = max((e.clock for e in self.engines if e.clock is not None), default=0)
        return self.city.calendar.format(clock)

    def _emit(self, out: list[Output]) -> None:
        for item in out:
            if isinstance(item, DeadOut):
                inp = item.input
                self.summary.dead[item.reason_code] += 1
                if inp.feedback is not None:
                    self._fb_dead += 1
                else:  # the engine rejects feedback only; kept exact should that change
                    self._accepted -= 1
                self._dead(inp.topic, inp.partition, inp.offset, inp.key, inp.event_id,
                           item.reason_code, item.reason, inp.raw or b"", inp.arrival)
            else:
                item["emitted_at"] = self.city.calendar.format(self.now()) if self.now else item["at"]
                self.summary.alerts_out += 1
                self.summary.final[item["alert_id"]] = item
                self.on_alert(item)
