"""The runtime's two halves as plain objects, so Faust only moves bytes around them.

``IngestBatcher``: source records in, one internal record per internal partition out (plus
dead letters). ``PartitionEvaluator``: one internal partition's engine, with what makes a
crash harmless under at-least-once delivery:

- its state is checkpointed now and then rather than after every record, together with the
  last internal offset the checkpoint covers; the runtime acknowledges an internal record
  (lets its offset be committed) only once a checkpoint covers it, and a record's output is
  acknowledged by the broker before the checkpoint that covers it is written;
- so after a crash, the records after the checkpoint are delivered again and applied again
  to the checkpointed state, which produces the same transitions again (the engine's output
  is a function of its input and state): consumers de-duplicate on ``(alert_id, version)``,
  and a repeated message is identical but for ``emitted_at``; records the checkpoint covers
  are skipped;
- a checkpoint is written atomically and in records of bounded size (``streams/statelog.py``),
  so a death in the middle of one never leaves a mixture.

Progress is data too. Ingest reports, per source partition it owns, the arrival up to which
it has written that partition's input here (its *frontier*; ``event`` mode: also the newest
producer tick), on the last record of each batch and now and then in records of their own to
every partition. A partition holds the parts it reads until every source partition's frontier
has passed their arrival, then applies them in arrival order (``streams.merge``), and ticks to
the least frontier (``wall``) or tick (``event``) over *all* source partitions once each has
reported. Several workers' ingests each report their own source partitions, so whatever their
speeds, every engine sees one arrival order, no tick overtakes a backlog another worker has
not written yet, and a dead worker's last report holds the partition until the new owner of
its source partitions reports further (CONTRACTS.md, Time). The held parts are part of the
checkpoint.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from operator import attrgetter
from typing import Any, NamedTuple

import orjson

from models.decode import TOPIC_SOURCES, BadInput, Source
from models.outputs import dead_letter
from models.vocabulary import ALERTS_TOPIC, DEADLETTER_TOPIC
from rules import faults
from rules.citymap import CityMap
from rules.engine import DeadOut, Engine, Snapshot, restore, run_steps, taking
from rules.ingest import Ingest
from rules.inputs import FrozenRecord, Input
from rules.pack import RuleSet
from rules.partitioning import grid_partition
from rules.timers import Timer
from streams.codec import Batch, encode, pack_part, unpack_parts
from streams.merge import ArrivalMerge
from streams.settings import INPUT_TOPICS
from streams.statelog import CHUNK_BYTES, Record, StateLog

META = "meta"
#: Kafka record header by which a producer (``cityorder simulate``) marks an event-mode tick:
#: an empty record whose header value is the tick time (RFC 3339), sent to every source partition.
TICK_HEADER = "cityorder-tick"
#: Kafka record header by which a producer marks progress: an empty record saying that this
#: producer has sent to this partition everything it stamps before the record's own timestamp.
#: ``cityorder simulate`` sends one to every source partition now and then, so that an
#: ``event``-mode worker knows when a partition with nothing new is complete (a fetch that finds
#: a partition at its end cannot tell: the producer's next batch for it may still be on its way).
PROGRESS_HEADER = "cityorder-progress"
#: The most parts in one internal record, and about the most bytes (a part without its raw
#: message is a few hundred bytes; one with it, at most the contract's 1 MiB and a third): a
#: record stays well under the internal topic's ``max.message.bytes`` (4 MiB).
MAX_PARTS_PER_RECORD = 1_000
MAX_RECORD_PAYLOAD = 1024 * 1024
PART_BYTES = 600


def source_key(topic: str, partition: int) -> str:
    """A source partition's name in progress records: contract topic name, slash, partition."""
    return f"{topic}/{partition}"


def source_keys(partitions: int) -> list[str]:
    """Every source partition, when each input topic has ``partitions`` partitions."""
    return [source_key(t, p) for t in INPUT_TOPICS for p in range(partitions)]


def least(reports: Mapping[str, int], sources: Iterable[str]) -> float | None:
    """The least report over ``sources``: None until every one has reported, ``math.inf``
    with no sources (a partition evaluated on its own, as in tests)."""
    values = [reports.get(s) for s in sources]
    if any(v is None for v in values):
        return None
    return min((v for v in values if v is not None), default=math.inf)


#: Named in every checkpoint: state written under another partitioner is refused. Grids are
#: put on partitions by :func:`rules.partitioning.grid_partition` (a replay splits them alike).
PARTITIONER = "murmur2"


class SourceRecord(FrozenRecord):
    """One consumed record: where it came from and the arrival the broker recorded. (A struct,
    as the engine's records are: ingest makes one per record and reads its fields, and the
    merge reads them with ``operator.attrgetter``.)"""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp: int
    headers: tuple[tuple[str, bytes], ...] = ()


@dataclass(slots=True)
class IngestResult:
    records: dict[int, list[bytes]] = field(default_factory=dict)
    dead: list[dict[str, Any]] = field(default_factory=list)
    parts: int = 0


class IngestBatcher:
    """Decode, validate and locate a batch of source records; group the parts by internal
    partition, in arrival order, as one internal record each."""

    def __init__(self, city: CityMap, rules: RuleSet, *, clock: str, partitions: int,
                 topic_names: Mapping[str, str], now: Callable[[], int]) -> None:
        """``topic_names`` maps each actual (prefixed) source topic to its contract name."""
        self.ingest = Ingest(city, rules, clock=clock)
        self.partitions = partitions
        self.topic_names = dict(topic_names)
        self.city = city
        self.now = now

    def __call__(self, records: Iterable[SourceRecord], frontier: dict[str, int] | None = None,
                 ticks: dict[str, tuple[int, int]] | None = None) -> IngestResult:
        """``frontier`` goes on the last record of each partition: only once all of the batch
        is in the log does it hold. ``ticks`` (producer ticks among these records, at most
        one per source partition) go to every partition, on its first record: an evaluator
        must know a tick before any frontier passes its arrival, or input that arrived after
        the tick could be applied before it."""
        result = IngestResult()
        grouped: dict[int, list[Input]] = {}
        ingest, topic_names, partitions = self.ingest, self.topic_names, self.partitions
        for rec in records:
            contract_topic = topic_names[rec.topic]
            source: Source = TOPIC_SOURCES[contract_topic]
            key = rec.key.decode("utf-8", "replace") if rec.key is not None else None
            out = ingest(source, contract_topic, rec.value or b"", key=key,
                         arrival=rec.timestamp, partition=rec.partition, offset=rec.offset)
            if isinstance(out, BadInput):
                result.dead.append(dead_letter(
                    topic=rec.topic, partition=rec.partition, offset=rec.offset, key=key,
                    event_id=out.event_id, reason_code=out.reason_code, reason=out.reason,
                    payload=rec.value or b"", received_at=self.city.calendar.format(self.now())))
                continue
            for part in out:
                p = grid_partition(part.grid_id, partitions)
                held = grouped.get(p)
                if held is None:
                    held = grouped[p] = []
                held.append(part)
            result.parts += len(out)
        for p in range(self.partitions) if ticks else grouped:
            chunks = _chunks(grouped.get(p, []))
            last = len(chunks) - 1
            result.records[p] = [encode(chunk, frontier if i == last else None, ticks if i == 0 else None)
                                 for i, chunk in enumerate(chunks)]
        return result


_RAW = attrgetter("raw")


def _chunks(parts: list[Input]) -> list[list[Input]]:
    """``parts`` cut into internal records of at most :data:`MAX_PARTS_PER_RECORD` parts and
    about :data:`MAX_RECORD_PAYLOAD` bytes (at least one chunk, maybe empty). Feedback parts
    carry their message's bytes (base64: a third more): three of 1 MB in one record made one
    the broker refused, and ingest retried it for ever."""
    if (len(parts) <= MAX_PARTS_PER_RECORD and len(parts) * PART_BYTES <= MAX_RECORD_PAYLOAD
            and not any(map(_RAW, parts))):
        return [parts]   # nearly every batch: one record, no feedback's bytes (a scan in C)
    chunks: list[list[Input]] = [[]]
    size = 0
    for part in parts:
        weight = PART_BYTES + (len(part.raw) * 4 // 3 if part.raw is not None else 0)
        if chunks[-1] and (len(chunks[-1]) >= MAX_PARTS_PER_RECORD or size + weight > MAX_RECORD_PAYLOAD):
            chunks.append([])
            size = 0
        chunks[-1].append(part)
        size += weight
    return chunks


def _escape(part: str) -> str:
    """A state key part without the key separators: device, track and event ids may hold any
    character (CONTRACTS.md ids are 1-128 characters of anything), and a raw ``\x1f`` would
    split a key wrongly, a raw ``\x1e`` make it look like a chunk (``streams/statelog.py``)."""
    if "%" in part or "\x1f" in part or "\x1e" in part:
        return part.replace("%", "%25").replace("\x1f", "%1F").replace("\x1e", "%1E")
    return part


_ESCAPED = {"25": "%", "1F": "\x1f", "1E": "\x1e"}


def _unescape(part: str) -> str:
    if "%" in part:
        return re.sub("%(25|1F|1E)", lambda m: _ESCAPED[m.group(1)], part)
    return part


def _tick_queue(value: list[Any]) -> list[tuple[int, int]]:
    """A checkpoint's pending ticks of one source: ``[[tick, arrival], ...]``, or one
    ``[tick, arrival]`` as checkpoints written before ticks were queued hold them."""
    if value and not isinstance(value[0], list):
        return [(int(value[0]), int(value[1]))]
    return [(int(t), int(a)) for t, a in value]


def _arrival(part: Input) -> int:
    return part.arrival or 0


def _arrival_order(part: Input) -> tuple[int, str, int]:
    return (part.arrival or 0, part.topic, part.partition or 0)


def _in_arrival_order(parts: Iterable[Input]) -> bool:
    """Whether ``parts`` are sorted by :func:`_arrival_order`: then merging them by source
    gives them back as they are (equal keys come from one source, kept in its order)."""
    prev: tuple[int, str, int] | None = None
    for part in parts:
        key = _arrival_order(part)
        if prev is not None and key < prev:
            return False
        prev = key
    return True


class Outgoing(NamedTuple):
    """A message to produce: contract topic, key, value (alerts still without ``emitted_at``,
    which is stamped when it is sent, so a resent message differs only there)."""

    topic: str
    key: str | None
    value: bytes


@dataclass(slots=True)
class Step:
    """What one internal record did: the transitions and dead letters, and them as messages."""

    alerts: list[dict[str, Any]]
    dead: list[dict[str, Any]]
    messages: list[Outgoing]


class PartFault(Exception):
    """The engine raised while applying a record: ``part``, the input it was applying, or
    ``timer``, the timer it was firing (both None: neither was on the stack, in a tick). The
    evaluator is left part-way through the record and must be rebuilt from its checkpoint
    (the runtime does: ``streams.app``)."""

    def __init__(self, part: Input | None, error: BaseException, timer: Timer | None = None) -> None:
        super().__init__(faults.reason(error))
        self.part = part
        self.timer = timer
        self.error = error


def _fault(error: BaseException, otherwise: Input | None) -> PartFault:
    """What raised (:func:`rules.faults.culprit`), else ``otherwise``."""
    found = faults.culprit(error)
    if isinstance(found, Timer):
        return PartFault(None, error, found)
    return PartFault(found or otherwise, error)


def part_key(part: Input) -> tuple[str, int | None, int | None, str]:
    """A part's source record and event: what a quarantine names it by."""
    return (part.topic, part.partition, part.offset, part.event_id)


@dataclass(slots=True)
class Quarantine:
    """What a partition must not apply again because applying it raised once: inputs (by
    :func:`part_key`), timers (by :func:`rules.timers.timer_key`; the engines' own
    ``skip_timers``) and internal records whose ticks raised otherwise (by offset). Kept by
    the runtime, so it outlives the evaluators rebuilt after a fault; not checkpointed: after
    a restart an input or timer that raises is met, dead-lettered and quarantined again."""

    inputs: dict[tuple[str, int | None, int | None, str], Input] = field(default_factory=dict)
    timers: set[tuple[Any, ...]] = field(default_factory=set)
    ticks: set[int] = field(default_factory=set)


class PartitionEvaluator:
    """One internal partition's engine and its durable bookkeeping."""

    def __init__(self, city: CityMap, rules: RuleSet, *, clock: str, partition: int,
                 now: Callable[[], int], topic_of: Callable[[str], str],
                 sources: Iterable[str] = (), chunk_bytes: int = CHUNK_BYTES,
                 quarantine: Quarantine | None = None, run_budget: int | None = None) -> None:
        """``sources``: every source partition (:func:`source_key`) whose frontier gates input
        and ticks (none: apply input at once, never tick; a partition evaluated on its own).
        ``quarantine``: what not to apply (see :meth:`process`). ``run_budget``: the engine's
        (:attr:`rules.engine.Engine.run_budget`): :meth:`process` may then leave the rest of
        a long run to :meth:`resume`."""
        self.city = city
        self.partition = partition
        self.engine = Engine(city, rules, clock=clock, track_changes=True)
        self.log = StateLog(f"{partition}\x1f", chunk_bytes)
        self.applied = -1
        self.taken = -1                                      # the last offset a cut covers
        self.frontier: dict[str, int] = {}
        self.ticks: dict[str, int] = {}                       # ticks in effect
        self.next_ticks: dict[str, list[tuple[int, int]]] = {}   # (tick, arrival), oldest first
        self.tick_arrival: dict[str, int] = {}                # newest tick arrival known, per source
        self.held: ArrivalMerge[str, Input] = ArrivalMerge(_arrival, _arrival_order)
        self.sources = frozenset(sources)
        self.now = now
        self.topic_of = topic_of
        self.quarantine = quarantine if quarantine is not None else Quarantine()
        self.engine.skip_timers = self.quarantine.timers
        self.engine.run_budget = run_budget
        self._ticking = True

    # -- state keys: the partition first, so a table shared by partitions can be filtered --

    def key(self, record_key: tuple[str, ...]) -> str:
        return "\x1f".join((str(self.partition), *map(_escape, record_key)))

    def record_key(self, table_key: str) -> tuple[str, ...]:
        """The inverse of :meth:`key`."""
        return tuple(map(_unescape, table_key.split("\x1f")[1:]))

    @property
    def checkpointed(self) -> int:
        """The last internal offset whose state is in the changelog."""
        return self.log.committed

    def restore(self, table: Mapping[str, bytes]) -> list[Record]:
        """Load this partition's state from its table records; return the records to write
        first (what finishes a checkpoint a death interrupted)."""
        values, repairs = self.log.load(table)
        records = {self.record_key(k): v for k, v in values.items()}
        meta = records.pop((META,), None)
        if ("engine",) in records:
            restore(self.engine, records)
        if meta is not None:
            obj = orjson.loads(meta)
            if obj.get("partitioner") != PARTITIONER:
                raise ValueError(
                    f"partition {self.partition}: its state was written by a cityorder that put grids "
                    f"on partitions with {obj.get('partitioner', 'CRC-32')}, this one uses {PARTITIONER}: "
                    "the grids are on other partitions now. Let the old workers drain, then start "
                    "with a new CITYORDER_TOPIC_PREFIX (or delete the internal and changelog topics)")
            self.frontier, self.ticks = obj["frontier"], obj["ticks"]
            self.next_ticks = {source: _tick_queue(q) for source, q in obj["next_ticks"].items()}
            self.tick_arrival = obj.get("tick_arrival") or {
                source: q[-1][1] for source, q in self.next_ticks.items() if q}
            for source, parts in obj["held"].items():
                self.held.add(source, unpack_parts(parts))
        for part in self.quarantine.inputs.values():   # checkpointed while it waited in the engine
            self.engine.withdraw(part)
        self.applied = self.taken = self.log.committed
        return repairs

    def process(self, offset: int, batch: Batch) -> Step | None:
        """Apply one internal record; None when it was applied before (a redelivery).

        Raises :class:`PartFault` when the engine raises: the evaluator is then unusable (the
        record half applied). The runtime dead-letters the input, adds it to the
        :attr:`quarantine` and rebuilds the evaluator from its checkpoint, which applies the
        records since without it: the state is as if it had never come."""
        if offset <= self.applied:
            return None
        self.applied = offset
        self._ticking = offset not in self.quarantine.ticks
        for source, t in (batch.frontier or {}).items():
            self.frontier[source] = max(t, self.frontier.get(source, t))
        for source, (tick, arrival) in (batch.ticks or {}).items():
            # progress records repeat the newest tick that a batch record carried: once is enough
            if arrival > self.tick_arrival.get(source, -1):
                self.tick_arrival[source] = arrival
                self.next_ticks.setdefault(source, []).append((tick, arrival))
        out: list[Any] = []
        limit = least(self.frontier, self.sources)
        parts = batch.parts
        if parts and limit is not None and not self.held and not self.next_ticks \
                and _arrival(parts[-1]) <= limit and _in_arrival_order(parts):
            # What the merge would release, in the order it would release it: skip it (the
            # common case, one ingest's record whose own frontier covers it).
            out += self._feed(parts)
        else:
            # one add a source, not one a part (each source's parts in their order): every part
            # of a drain passes here
            runs: dict[tuple[str, int], list[Input]] = {}
            for part in parts:
                runs.setdefault((part.topic, part.partition or 0), []).append(part)
            for (topic, partition), run in runs.items():
                self.held.add(source_key(topic, partition), run)
            if limit is not None:
                out += self._release(limit)
        if self.engine.mode == "wall" and (batch.frontier or batch.ticks) \
                and limit is not None and limit != math.inf:
            out += self._tick(int(limit))
        return self._step(out)

    @property
    def unfinished(self) -> bool:
        """Whether the engine's run stopped at its budget: :meth:`resume` before the next cut."""
        return self.engine.unfinished

    def resume(self) -> Step:
        """The rest of the record :meth:`process` applied, a budget at a time (the outputs
        follow its). Raises :class:`PartFault` as it does."""
        try:
            return self._step(self.engine.resume())
        except Exception as error:
            raise _fault(error, None) from error

    def _step(self, out: list[Any]) -> Step:
        alerts: list[dict[str, Any]] = []
        dead: list[dict[str, Any]] = []
        fmt = self.city.calendar.format
        for item in out:
            if isinstance(item, DeadOut):
                inp = item.input
                dead.append(dead_letter(topic=self.topic_of(inp.topic), partition=inp.partition,
                                        offset=inp.offset, key=inp.key, event_id=inp.event_id,
                                        reason_code=item.reason_code, reason=item.reason,
                                        payload=inp.raw or b"", received_at=fmt(self.now())))
            else:
                alerts.append(item)
        messages = [Outgoing(ALERTS_TOPIC, a["alert_id"], orjson.dumps(a)) for a in alerts] + \
            [Outgoing(DEADLETTER_TOPIC, d["key"], orjson.dumps(d)) for d in dead]
        return Step(alerts, dead, messages)

    def _release(self, limit: float) -> list[Any]:
        """Apply what every source partition's frontier has passed, in arrival order, with the
        producers' ticks in that order too: a tick (``event`` mode) takes effect after the
        input that arrived before it and before the input that arrived with or after it, as
        its line does in a replay file. Its record carries its arrival, so where it falls
        among the parts does not depend on which record brought it or when."""
        out: list[Any] = []
        due = sorted((arrival, source, tick) for source, queue in self.next_ticks.items()
                     for tick, arrival in queue if arrival <= limit)
        for arrival, source, tick in due:
            out += self._feed(self.held.release(arrival - 1))
            queue = self.next_ticks[source]
            queue.pop(0)
            if not queue:
                del self.next_ticks[source]
            self.ticks[source] = max(tick, self.ticks.get(source, tick))
            if self.engine.mode == "event":
                least_tick = least(self.ticks, self.sources)
                if least_tick is not None and least_tick != math.inf:
                    out += self._tick(int(least_tick))
        out += self._feed(self.held.release(limit))
        return out

    def _feed(self, parts: Sequence[Input]) -> list[Any]:
        """Feed parts in their order, in one batch (``Engine.feed_batch``: the same as one by
        one), but for those quarantined."""
        if self.quarantine.inputs:
            parts = [p for p in parts if part_key(p) not in self.quarantine.inputs]
        if not parts:
            return []
        try:
            return self.engine.feed_batch(parts)
        except Exception as error:
            raise _fault(error, parts[-1]) from error

    def _tick(self, t: int) -> list[Any]:
        if not self._ticking:
            return []
        try:
            return self.engine.tick(t)
        except Exception as error:
            raise _fault(error, None) from error

    def ahead(self, offset: int) -> bool:
        """A record past a gap: records before it are not applied yet (a partition without
        state starts at offset 0, or where :meth:`starts_at` says)."""
        return offset > self.applied + 1

    def starts_at(self, offset: int) -> None:
        """The log's first record is at ``offset``: those before it are gone (retention), so
        a partition whose state does not reach that far goes on from there."""
        self.applied = max(self.applied, offset - 1)

    def take(self) -> Cut | None:
        """The state changed since the last cut, at the last applied offset; None when no
        record was applied since. Cheap: the engine's state is copied, not serialised
        (:class:`Cut`). Cuts must be committed to :attr:`log` in the order they were taken."""
        return run_steps(self.taking())

    def taking(self) -> Generator[None, None, Cut | None]:
        """:meth:`take` a step at a time (:func:`rules.engine.taking`): the runtime lets its
        event loop run between steps. Nothing may be applied until it returns."""
        if self.applied <= self.taken:
            return None
        meta = orjson.dumps({
            "partitioner": PARTITIONER, "frontier": self.frontier, "ticks": self.ticks,
            "next_ticks": self.next_ticks, "tick_arrival": self.tick_arrival,
            "held": {source: [pack_part(p) for p in parts] for source, parts in self.held.items()}})
        snapshot = yield from taking(self.engine, changed_only=True)
        self.taken = self.applied
        return Cut(self.applied, snapshot, meta, self.key, self.log)

    def checkpoint(self) -> list[Record]:
        """Take a cut and serialise it at once: the records to write, in order (the output of
        the records it covers must be acknowledged before they are written)."""
        cut = self.take()
        return [] if cut is None else cut.commit(dict(cut.changes()))


@dataclass(frozen=True, slots=True)
class Cut:
    """One partition's changed state at one offset, taken but not yet serialised: the runtime
    takes it between two records and pickles it while evaluation goes on, a slice at a time."""

    offset: int
    snapshot: Snapshot
    meta: bytes
    key: Callable[[tuple[str, ...]], str]
    log: StateLog

    def changes(self) -> Iterator[tuple[str, bytes | None]]:
        """The changed values by table key (None: deleted), each pickled as it is asked for."""
        key = self.key
        for k, value in self.snapshot.records():
            yield key(k), value
        for k in self.snapshot.deleted:
            yield key(k), None
        yield key((META,)), self.meta

    def commit(self, changes: Mapping[str, bytes | None], journal: bytes | None = None) -> list[Record]:
        """The records of this cut, in the order they must be written: :meth:`changes`, as
        pickled, with their journal if it is made already. In the order the cuts were taken."""
        return self.log.commit(self.offset, changes, journal)
