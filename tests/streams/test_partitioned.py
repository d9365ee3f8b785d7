"""The runtime's halves without Kafka: batching by partition, and crash safety of a
partition's evaluator (checkpoints, skipping what a checkpoint covers, redoing what it does not)."""

from __future__ import annotations

import base64
import pickle
import zlib
from datetime import date
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka.partitioner import DefaultPartitioner
from hypothesis import given, settings
from hypothesis import strategies as st
from msgspec.structs import replace

from models.timestamps import parse_timestamp_ms
from rules import engine as engine_module
from rules.citymap import CityMap
from rules.demo.dispatch import generate_with_feedback
from rules.engine import Engine, snapshot
from rules.inputs import Input
from rules.pack import DEFAULT_PACK, RuleSet, load_rules
from rules.replay import parse_line
from rules.ruletest import DEMO_CITY
from streams import partitioned
from streams.codec import Batch, decode, encode
from streams.partitioned import IngestBatcher, PartitionEvaluator, SourceRecord, grid_partition, source_key
from streams.statelog import apply
from tests.demo_day import day_lines
from tests.rules.harness import T
from tests.rules.test_properties import _harness, stream

PARTITIONS = 3
CHUNK = 512   # small, so that the crash tests also cut values written as chunks


def source_records(seed: int) -> list[SourceRecord]:
    out = []
    for n, (t, line) in enumerate(stream(seed)):
        msg = parse_line(line)
        out.append(SourceRecord(msg.topic or "", 0, n, msg.key.encode() if msg.key else None,
                                msg.payload, t))
    return out


def internal_log(seed: int) -> dict[int, list[bytes]]:
    """The internal topic as ingest would write it, in batches of 7 source records."""
    h = _harness(feed=False)
    batcher = IngestBatcher(h.city, h.rules, clock="event", partitions=PARTITIONS,
                            topic_names={t: t for t in ("city.events.camera", "city.events.sensor",
                                                        "city.events.report", "city.alerts.feedback")},
                            now=lambda: T("12:00:00"))
    recs = source_records(seed)
    log: dict[int, list[bytes]] = {p: [] for p in range(PARTITIONS)}
    for i in range(0, len(recs), 7):
        for p, records in batcher(recs[i:i + 7]).records.items():
            log[p] += records
    return log


def run_partition(p: int, records: list[bytes], crash_after: set[int] = frozenset(),
                  death: str = "after_checkpoint", final: dict[str, Any] | None = None,
                  every: int = 3, world: tuple[CityMap, RuleSet] | None = None,
                  run_budget: int | None = None) -> list[tuple[str, int, bytes]]:
    """Feed a partition's log as the runtime does: output produced at once, a checkpoint every
    ``every`` records, records acknowledged after it. At each crash point the evaluator is
    lost and a fresh one restarts from the stored table, given the records again from the
    last acknowledged one (and, as a commit may lag the acknowledgements, two before it).

    ``death``: where the worker dies at a crash point — ``after_checkpoint`` (a checkpoint
    written and acknowledged), ``before_checkpoint`` (output produced, no checkpoint since),
    ``mid_checkpoint`` (after some of a checkpoint's records: each point cuts elsewhere).
    ``final`` receives the engine's state at the end, as loaded from the table. ``world``: the
    city and rules (default: the test harness's). ``run_budget``: the engine's; a record's run
    is then resumed to its end before anything else, as the runtime does."""
    city, rules = world or (lambda h: (h.city, h.rules))(_harness(feed=False))
    table: dict[str, bytes] = {}
    produced: list[tuple[str, int, bytes]] = []

    def fresh() -> PartitionEvaluator:
        ev = PartitionEvaluator(city, rules, clock="event", partition=p, now=lambda: 0,
                                topic_of=lambda t: t, chunk_bytes=CHUNK, run_budget=run_budget)
        apply(table, ev.restore(table))
        return ev

    ev = fresh()
    offset, acked = 0, -1
    crashes = set(crash_after)
    while offset < len(records):
        step = ev.process(offset, decode(records[offset]))
        while step is not None:
            produced += [(m.topic, orjson.loads(m.value).get("version", 0), m.value)
                         for m in step.messages]
            step = ev.resume() if ev.unfinished else None
        due = offset % every == every - 1 or offset == len(records) - 1
        crash = offset in crashes
        crashes.discard(offset)
        if crash and death == "before_checkpoint":
            ev, offset = fresh(), max(0, acked + 1 - 2)
            continue
        if due or crash:
            written = ev.checkpoint()
            assert all(v is None or len(v) <= CHUNK + 1 for _, v in written)
            if crash and death == "mid_checkpoint":
                apply(table, written[:offset % (len(written) + 1)])
                ev, offset = fresh(), max(0, acked + 1 - 2)
                continue
            apply(table, written)
            acked = offset
        if crash:
            ev, offset = fresh(), max(0, acked + 1 - 2)
            continue
        offset += 1
    if final is not None:
        final.update(engine_state(fresh()))
    return produced


def engine_state(ev: PartitionEvaluator) -> dict[str, Any]:
    """An engine's whole state, comparable whatever buckets it was stored in."""
    e = ev.engine
    records, _ = snapshot(e)
    state: dict[str, Any] = {"/".join(k): plain(pickle.loads(v)) for k, v in records.items()
                             if k[0] not in ("seen", "pending", "engine")}
    clock, progress, max_time, fb_waiting, held, _seq, stats = pickle.loads(records[("engine",)])
    # the sequence number only breaks ties among timers, and a restore renumbers them
    state["engine"] = plain((clock, progress, max_time, fb_waiting, held, stats))
    state["seen"] = sorted(e.remembered().items())
    state["pending"] = sorted(entry[:3] for entry in e.pending)
    state["checkpointed"] = ev.checkpointed
    return state


def plain(obj: Any) -> Any:
    """Objects as their fields, recursively (the engine's state classes compare by identity)."""
    if isinstance(obj, dict):
        return {k: plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return tuple(plain(v) for v in obj)
    fields = getattr(obj, "__dict__", None)
    if fields is None and hasattr(type(obj), "__slots__"):
        fields = {n: getattr(obj, n) for c in type(obj).__mro__
                  for n in getattr(c, "__slots__", ()) if hasattr(obj, n)}
    return (type(obj).__name__, plain(fields)) if fields is not None else obj


def engine_state_of(p: int, records: list[bytes]) -> dict[str, Any]:
    final: dict[str, Any] = {}
    run_partition(p, records, final=final)
    return final


def distinct(produced: list[tuple[str, int, bytes]]) -> dict[tuple[str, int], bytes]:
    seen: dict[tuple[str, int], bytes] = {}
    for topic, _, msg in produced:
        if topic != "city.alerts":
            continue
        obj = orjson.loads(msg)
        key = (obj["alert_id"], obj["version"])
        assert seen.get(key, msg) == msg, f"{key} produced with two different contents"
        seen[key] = msg
    return seen


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_grid_partitions_split_the_work(seed: int) -> None:
    log = internal_log(seed)
    assert sum(len(v) for v in log.values()) > 0
    city = CityMap.load(Path(__file__).resolve().parents[2] / "rules" / "demo" / "city.geojson")
    spread = {grid_partition(g, 4) for g in city.grids}
    assert spread == {0, 1, 2, 3}


def test_grid_partition_is_kafkas_default_partitioner_of_the_grid_id() -> None:
    kafka = DefaultPartitioner()
    for n in (1, 3, 4, 16):
        for grid in ("JY-0101", "JY-0312", "网格-7", "g" * 64):
            assert grid_partition(grid, n) == kafka(grid.encode(), list(range(n)), list(range(n)))


def test_neighbouring_grids_do_not_fall_into_a_pattern_of_partitions() -> None:
    """With a linear hash (CRC-32) the four grids of every 2 x 2 block of the demo map had
    partition numbers XORing to 0 (of 4): a pattern laid over the map, where load is not
    spread evenly either. A mixing hash leaves that to chance (1 in 4)."""
    city = CityMap.load(DEMO_CITY)
    rows, cols = 5, 10
    assert {f"JY-{r:02d}{c:02d}" for r in range(1, rows + 1) for c in range(1, cols + 1)} == set(city.grids)
    blocks = [[f"JY-{r + dr:02d}{c + dc:02d}" for dr in (0, 1) for dc in (0, 1)]
              for r in range(1, rows) for c in range(1, cols)]
    zero = sum(grid_partition(a, 4) ^ grid_partition(b, 4) ^ grid_partition(c, 4) ^ grid_partition(d, 4) == 0
               for a, b, c, d in blocks)
    assert zero / len(blocks) < 0.5, f"{zero} of {len(blocks)} blocks XOR to 0"


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
@pytest.mark.parametrize("death", ["after_checkpoint", "before_checkpoint", "mid_checkpoint"])
def test_crashes_lose_nothing_and_double_nothing(seed: int, death: str) -> None:
    log = internal_log(seed)
    for p, records in log.items():
        expected = distinct(run_partition(p, records))
        crashes = set(range(1, len(records), max(1, len(records) // 9)))
        final: dict[str, Any] = {}
        got = distinct(run_partition(p, records, crash_after=crashes, death=death, final=final))
        assert got == expected
        assert final == engine_state_of(p, records)
    assert any(distinct(run_partition(p, r)) for p, r in log.items())


def test_default_pack_loads_for_the_runtime() -> None:
    assert load_rules([Path(__file__).resolve().parents[2] / "rules" / "packs" / "default"]).rules


def test_a_partition_ticks_to_the_least_frontier_once_every_source_has_reported() -> None:
    h = _harness(feed=False)
    sources = ["city.events.camera/0", "city.events.camera/1", "city.alerts.feedback/0"]
    ev = PartitionEvaluator(h.city, h.rules, clock="wall", partition=0, now=lambda: 0,
                            topic_of=lambda t: t, sources=sources)
    ev.process(0, decode(encode(frontier={sources[0]: T("10:00:00"), sources[1]: T("10:00:05")})))
    assert ev.engine.clock is None          # the feedback partition has not reported yet
    ev.process(1, decode(encode(frontier={sources[2]: T("10:00:09")})))
    assert ev.engine.clock == T("10:00:00")
    ev.process(2, decode(encode(frontier={sources[0]: T("09:00:00")})))   # stale report: ignored
    assert ev.frontier[sources[0]] == T("10:00:00")
    ev.process(3, decode(encode(frontier={sources[0]: T("10:00:07")})))
    assert ev.engine.clock == T("10:00:05")


def test_an_event_mode_partition_ticks_to_the_least_producer_tick() -> None:
    h = _harness(feed=False)
    sources = ["city.events.camera/0", "city.events.camera/1"]
    ev = PartitionEvaluator(h.city, h.rules, clock="event", partition=0, now=lambda: 0,
                            topic_of=lambda t: t, sources=sources)
    ev.process(0, decode(encode(frontier={s: T("12:00:00") for s in sources},
                                ticks={sources[0]: (T("10:00:00"), T("11:00:00"))})))
    assert ev.engine.clock is None          # the frontier is arrival time, not a tick
    ev.process(1, decode(encode(ticks={sources[1]: (T("10:00:03"), T("11:00:00"))})))
    assert ev.engine.clock == T("10:00:00")


def test_a_tick_waits_for_the_input_that_arrived_before_it() -> None:
    """Camera 1's ingest is behind: its input from before the tick must be applied before
    the tick moves the clock, or it would be late."""
    h = _harness(feed=False)
    sources = ["city.events.camera/0", "city.events.camera/1"]
    ev = PartitionEvaluator(h.city, h.rules, clock="event", partition=0, now=lambda: 0,
                            topic_of=lambda t: t, sources=sources)
    part = next(p for r in internal_log(1).values() for p in decode(r[0]).parts)
    part = replace(part, topic="city.events.camera", partition=1, arrival=T("11:00:00"),
                   time=T("09:59:00"))
    ticks = {s: (T("10:00:00"), T("11:00:01")) for s in sources}
    ev.process(0, Batch(frontier={sources[0]: T("11:00:01"), sources[1]: T("10:59:00")}, ticks=ticks))
    assert ev.engine.clock is None and ev.next_ticks == {s: [t] for s, t in ticks.items()}
    ev.process(1, Batch(parts=(part,), frontier={sources[1]: T("11:00:01")}))
    assert ev.engine.clock == T("10:00:00") and not ev.next_ticks
    assert not ev.engine.stats.late and ev.engine.max_time == T("09:59:00")


def test_progress_and_held_input_survive_a_restart_with_the_state() -> None:
    h = _harness(feed=False)
    sources = ["city.events.camera/0", "city.events.sensor/0"]
    ev = PartitionEvaluator(h.city, h.rules, clock="wall", partition=2, now=lambda: 0,
                            topic_of=lambda t: t, sources=sources)
    part = replace(next(p for r in internal_log(1).values() for p in decode(r[0]).parts),
                   topic="city.events.camera", partition=0, arrival=T("10:00:01"))
    assert ev.process(0, Batch(parts=(part,), frontier={sources[0]: T("10:00:01")})) is not None
    assert len(ev.held) == 1                # the sensor partition has not reported
    again = PartitionEvaluator(h.city, h.rules, clock="wall", partition=2, now=lambda: 0,
                               topic_of=lambda t: t, sources=sources)
    table: dict[str, bytes] = {}
    apply(table, ev.checkpoint())
    again.restore(table)
    assert list(again.held.items()) == [(sources[0], [part])]
    again.process(1, Batch(frontier={sources[1]: T("10:00:03")}))
    assert again.engine.clock == T("10:00:01") and len(again.held) == 0


@pytest.mark.parametrize("stamps", [(1, 3, 5), (5, 1, 3)])
def test_a_record_is_applied_in_the_merges_order_even_where_a_sources_stamps_go_back(
        stamps: tuple[int, int, int]) -> None:
    """A record in arrival order is applied as it is; one whose camera stamps go back
    (5 then 1, a producer's CreateTime) is merged by source like held input: the camera
    partition keeps its own order, the sensor part (3) goes first, before camera's 5."""
    h = _harness(feed=False)
    sources = ["city.events.camera/0", "city.events.sensor/0"]
    ev = PartitionEvaluator(h.city, h.rules, clock="event", partition=0, now=lambda: 0,
                            topic_of=lambda t: t, sources=sources)
    base = next(p for r in internal_log(1).values() for p in decode(r[0]).parts)
    topics = {1: "city.events.camera", 3: "city.events.sensor", 5: "city.events.camera"}
    parts = tuple(replace(base, topic=topics[s], partition=0, arrival=T("10:00:00") + s, event_id=f"e{s}")
                  for s in stamps)
    fed: list[str] = []
    feed_batch = ev.engine.feed_batch
    ev.engine.feed_batch = lambda parts: fed.extend(p.event_id for p in parts) or feed_batch(parts)  # type: ignore[method-assign]
    ev.process(0, Batch(parts=parts, frontier={s: T("10:00:10") for s in sources}))
    assert fed == (["e1", "e3", "e5"] if stamps == (1, 3, 5) else ["e3", "e5", "e1"])
    assert not ev.held


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text(alphabet=st.sampled_from("a%1EF\x1f\x1e/:"), max_size=8), min_size=1, max_size=4))
def test_state_keys_survive_any_characters_in_ids(parts: list[str]) -> None:
    """Device, track and event ids may hold any character, the key separators included."""
    h = _harness(feed=False)
    ev = PartitionEvaluator(h.city, h.rules, clock="event", partition=12, now=lambda: 0,
                            topic_of=lambda t: t)
    key = ev.key(tuple(parts))
    assert key.startswith("12\x1f") and key.count("\x1f") == len(parts) and "\x1e" not in key
    assert ev.record_key(key) == tuple(parts)


def test_state_written_under_another_partitioner_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    """Grids moved partitions with the partitioner: an old checkpoint's grids are not this
    partition's any more, and applying them would make a second state for each."""
    h = _harness(feed=False)

    def checkpoint_table() -> dict[str, bytes]:
        ev = PartitionEvaluator(h.city, h.rules, clock="event", partition=1, now=lambda: 0,
                                topic_of=lambda t: t)
        ev.process(0, Batch())
        table: dict[str, bytes] = {}
        apply(table, ev.checkpoint())
        return table

    def restored(table: dict[str, bytes]) -> PartitionEvaluator:
        ev = PartitionEvaluator(h.city, h.rules, clock="event", partition=1, now=lambda: 0,
                                topic_of=lambda t: t)
        ev.restore(table)
        return ev

    assert restored(checkpoint_table()).applied == 0
    with monkeypatch.context() as m:
        m.setattr(partitioned, "PARTITIONER", "CRC-32")
        old = checkpoint_table()
    with pytest.raises(ValueError, match=r"CRC-32, this one uses murmur2.*CITYORDER_TOPIC_PREFIX"):
        restored(old)


def test_a_record_past_a_gap_is_recognised() -> None:
    """After a rebalance Faust may deliver a partition from past records it dropped; a
    partition without state starts at 0, or where the log starts after retention."""
    h = _harness(feed=False)
    ev = PartitionEvaluator(h.city, h.rules, clock="event", partition=0, now=lambda: 0,
                            topic_of=lambda t: t)
    assert ev.ahead(13) and not ev.ahead(0)
    ev.starts_at(40)
    assert not ev.ahead(40) and ev.ahead(41)
    ev.process(40, Batch())
    assert not ev.ahead(41) and not ev.ahead(12)   # next, or a redelivery (skipped)
    assert ev.ahead(42)
    ev.starts_at(12)                 # never backwards
    assert ev.ahead(42)


def demo_internal_log() -> dict[int, list[bytes]]:
    """The demo city's day (default pack, feedback included) as ingest would write it."""
    city, rules = CityMap.load(DEMO_CITY), load_rules([DEFAULT_PACK])
    batcher = IngestBatcher(city, rules, clock="event", partitions=4,
                            topic_names={t: t for t in ("city.events.camera", "city.events.sensor",
                                                        "city.events.report", "city.alerts.feedback")},
                            now=lambda: 0)
    recs = []
    for n, line in enumerate(day_lines()):
        if "tick" in line:
            continue
        value = (orjson.dumps(line["value"]) if "value" in line else
                 line["raw"].encode() if "raw" in line else base64.b64decode(line["raw_b64"]))
        recs.append(SourceRecord(line["topic"], 0, n, (line.get("key") or "").encode(), value,
                                 parse_timestamp_ms(line["arrival"])))
    log: dict[int, list[bytes]] = {p: [] for p in range(4)}
    for i in range(0, len(recs), 400):
        for p, records in batcher(recs[i:i + 400]).records.items():
            log[p] += records
    return log


@pytest.mark.parametrize("death", ["before_checkpoint", "mid_checkpoint"])
def test_crashes_on_the_demo_day_with_the_default_pack_change_nothing(death: str) -> None:
    """The harness's rules are few; the default pack has every operator (silent cameras,
    sensors, hotspots, schedules) and the demo day feedback."""
    world = (CityMap.load(DEMO_CITY), load_rules([DEFAULT_PACK]))
    log = demo_internal_log()
    for p, records in log.items():
        final: dict[str, Any] = {}
        crashed: dict[str, Any] = {}
        expected = distinct(run_partition(p, records, every=4, world=world, final=final))
        crashes = set(range(3, len(records), max(1, len(records) // 6)))
        got = distinct(run_partition(p, records, crash_after=crashes, death=death, every=4, world=world,
                                     final=crashed))
        assert got == expected, f"partition {p}: {len(got)} vs {len(expected)} alert versions"
        assert crashed == final, f"partition {p}: the engine state differs after the crashes"
    assert sum(len(r) for r in log.values()) > 100


def test_a_record_evaluated_in_slices_gives_its_output_in_the_same_order(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The runtime evaluates a long record a few steps at a time (``run_budget``, ``resume``):
    the same messages in the same order, and through crashes the same output and state."""
    world = (CityMap.load(DEMO_CITY), load_rules([DEFAULT_PACK]))
    resumed = 0
    resume = PartitionEvaluator.resume

    def counted(ev: PartitionEvaluator) -> Any:
        nonlocal resumed
        resumed += 1
        return resume(ev)

    monkeypatch.setattr(PartitionEvaluator, "resume", counted)
    log = demo_internal_log()
    for p, records in log.items():
        whole = run_partition(p, records, every=4, world=world)
        assert run_partition(p, records, every=4, world=world, run_budget=3) == whole
        final: dict[str, Any] = {}
        crashed: dict[str, Any] = {}
        expected = distinct(whole)
        crashes = set(range(3, len(records), max(1, len(records) // 6)))
        got = distinct(run_partition(p, records, crash_after=crashes, death="mid_checkpoint", every=4,
                                     world=world, final=crashed, run_budget=3))
        run_partition(p, records, every=4, world=world, final=final)
        assert got == expected and crashed == final, f"partition {p}"
    assert resumed > 1000


def test_a_fault_in_a_resumed_slice_names_its_input(monkeypatch: pytest.MonkeyPatch) -> None:
    """The last line of defence finds the input at fault on the stack (rules.faults.culprit):
    in a slice that :meth:`PartitionEvaluator.resume` runs as in the first one."""
    records = internal_log(3)[0]
    parts = [p for r in records for p in decode(r).parts or ()]
    doomed = parts[len(parts) // 2]
    apply_ = Engine._apply

    def failing(engine: Engine, inp: Input) -> None:
        if inp.event_id == doomed.event_id:
            raise RuntimeError("planted")
        apply_(engine, inp)

    monkeypatch.setattr(Engine, "_apply", failing)
    h = _harness(feed=False)
    ev = PartitionEvaluator(h.city, h.rules, clock="event", partition=0, now=lambda: 0,
                            topic_of=lambda t: t, run_budget=1)
    calling = ""
    with pytest.raises(partitioned.PartFault) as raised:
        for offset, record in enumerate(records):
            calling = "process"
            ev.process(offset, decode(record))
            while ev.unfinished:
                calling = "resume"
                ev.resume()
    assert raised.value.part is not None and raised.value.part.event_id == doomed.event_id
    assert calling == "resume" and "planted" in str(raised.value.error)


def test_a_cut_taken_in_steps_is_the_cut_taken_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """The runtime takes a checkpoint's cut a step at a time (``taking``), letting its event
    loop run between steps: the same records as :meth:`PartitionEvaluator.take`, twice over
    (the second cut holds only what changed since the first)."""
    monkeypatch.setattr(engine_module, "TAKE_STEP", 5)   # the demo day's grids hold a few each
    world = (CityMap.load(DEMO_CITY), load_rules([DEFAULT_PACK]))
    records = max(demo_internal_log().values(), key=len)
    at_once, stepped = (PartitionEvaluator(*world, clock="event", partition=0, now=lambda: 0,
                                           topic_of=lambda t: t) for _ in range(2))
    steps = 0
    for upto in (len(records) // 2, len(records)):
        for ev in (at_once, stepped):
            for offset in range(ev.applied + 1, upto):
                ev.process(offset, decode(records[offset]))
        whole = at_once.take()
        kept: list[Any] = []

        def keeping(taking: Any, kept: list[Any] = kept) -> Any:
            kept.append((yield from taking))

        steps += sum(1 for _ in keeping(stepped.taking()))
        cut = kept[0]
        assert whole is not None and cut is not None and cut.offset == whole.offset
        assert dict(cut.changes()) == dict(whole.changes())
        assert cut.snapshot.deleted == whole.snapshot.deleted
    assert steps > 2


def demo_source_records(source_partitions: int) -> list[SourceRecord]:
    """The demo city's day as source records in arrival order, keys spread over partitions."""
    recs = []
    offsets: dict[tuple[str, int], int] = {}
    for line in day_lines():
        if "tick" in line:
            continue
        value = (orjson.dumps(line["value"]) if "value" in line else
                 line["raw"].encode() if "raw" in line else base64.b64decode(line["raw_b64"]))
        key = (line.get("key") or "").encode()
        where = (line["topic"], zlib.crc32(key) % source_partitions)
        offsets[where] = offsets.get(where, -1) + 1
        recs.append(SourceRecord(*where, offsets[where], key, value, parse_timestamp_ms(line["arrival"])))
    return recs


def ingest_log(batcher: IngestBatcher, recs: list[SourceRecord], owned: set[str], batch: int,
               partitions: int) -> dict[int, list[bytes]]:
    """What one worker's ingest owning ``owned`` source partitions writes: its records in
    batches, each with the frontier "everything before my next record is written", then a
    progress record to every partition once it has read everything."""
    mine = [r for r in recs if source_key(r.topic, r.partition) in owned]
    log: dict[int, list[bytes]] = {p: [] for p in range(partitions)}
    for i in range(0, len(mine), batch):
        nxt = mine[i + batch].timestamp - 1 if i + batch < len(mine) else recs[-1].timestamp
        for p, records in batcher(mine[i:i + batch], {s: nxt for s in owned}).records.items():
            log[p] += records
    for p in range(partitions):
        log[p].append(encode(frontier={s: recs[-1].timestamp + 1 for s in owned}))
    return log


def evaluate(records: list[bytes], p: int, sources: list[str],
             world: tuple[CityMap, RuleSet]) -> tuple[dict[tuple[str, int], bytes], int]:
    ev = PartitionEvaluator(*world, clock="event", partition=p, now=lambda: 0, topic_of=lambda t: t,
                            sources=sources)
    produced = []
    for offset, record in enumerate(records):
        step = ev.process(offset, decode(record))
        assert step is not None
        produced += [(m.topic, 0, m.value) for m in step.messages]
    return distinct(produced), sum(ev.engine.stats.late.values())


def test_two_ingests_at_their_own_speeds_feed_every_engine_one_arrival_order() -> None:
    """Two workers' ingests, each owning half of the source partitions, draining a backlog at
    their own speeds: whichever writes first, every partition's engine applies its input in
    arrival order (the held part waits for the other's frontier) and gives what one ingest
    owning everything gives. Without the gate, one worker running ahead makes the other's
    input late."""
    world = CityMap.load(DEMO_CITY), load_rules([DEFAULT_PACK])
    topics = ("city.events.camera", "city.events.sensor", "city.events.report", "city.alerts.feedback")
    batcher = IngestBatcher(*world, clock="event", partitions=4, topic_names={t: t for t in topics},
                            now=lambda: 0)
    recs = demo_source_records(2)
    sources = [source_key(t, sp) for t in topics for sp in range(2)]
    one = ingest_log(batcher, recs, set(sources), 400, 4)
    a = ingest_log(batcher, recs, set(sources[0::2]), 300, 4)
    b = ingest_log(batcher, recs, set(sources[1::2]), 700, 4)
    for p in range(4):
        expected, late = evaluate(one[p], p, sources, world)
        assert expected and late == 0
        for order in (a[p] + b[p], b[p] + a[p], [r for pair in zip(a[p], b[p], strict=False) for r in pair]
                      + a[p][len(b[p]):] + b[p][len(a[p]):]):
            assert evaluate(order, p, sources, world) == (expected, 0), f"partition {p}"
    ungated, late = evaluate(a[0] + b[0], 0, [], world)
    assert late > 0 and ungated != evaluate(one[0], 0, sources, world)[0]


def test_internal_records_stay_small_with_large_feedback() -> None:
    """Three feedback messages of 900 kB each (whitespace is valid JSON, and a feedback part
    carries its message's bytes) in one batch: each internal record stays near 1.2 MB, far
    under the topic's 4 MiB, instead of one record of 3.6 MB the broker refuses (ingest then
    retried it for ever), and every part is written once, in order."""
    city, rules = CityMap.load(DEMO_CITY), load_rules([DEFAULT_PACK])
    batcher = IngestBatcher(city, rules, clock="event", partitions=1,
                            topic_names={"city.alerts.feedback": "city.alerts.feedback"}, now=lambda: 0)
    template = next(line for line in generate_with_feedback(DEMO_CITY, DEFAULT_PACK, date(2026, 11, 20), 7)
                    if line.get("topic") == "city.alerts.feedback")
    recs = [SourceRecord("city.alerts.feedback", 0, n, None,
                         orjson.dumps({**template["value"], "event_id": f"big-{n}"}) + b" " * 900_000,
                         1_000 + n) for n in range(3)]
    result = batcher(recs, {"city.alerts.feedback/0": 2_000})
    assert not result.dead
    sizes = [len(r) for r in result.records[0]]
    assert len(sizes) == 3 and max(sizes) < 1_300_000, sizes
    parts = [part.event_id for r in result.records[0] for part in decode(r).parts]
    assert parts == ["big-0", "big-1", "big-2"]
    assert [decode(r).frontier for r in result.records[0]] == [None, None, {"city.alerts.feedback/0": 2_000}]


def test_a_batch_of_many_parts_is_cut_into_records_of_at_most_a_thousand_in_order() -> None:
    """1,500 camera parts for one partition (900 kB at the estimate a part, under the payload
    limit): records of 1,000 and 500 parts, the parts in arrival order and the frontier on the
    last record only (the one-record path of nearly every batch must not take them all)."""
    city, rules = CityMap.load(DEMO_CITY), load_rules([DEFAULT_PACK])
    batcher = IngestBatcher(city, rules, clock="event", partitions=1,
                            topic_names={"city.events.camera": "city.events.camera"}, now=lambda: 0)
    template = next(line for line in generate_with_feedback(DEMO_CITY, DEFAULT_PACK, date(2026, 11, 20), 7)
                    if line.get("topic") == "city.events.camera" and line["value"].get("detections"))
    n = partitioned.MAX_PARTS_PER_RECORD * 3 // 2
    recs = [SourceRecord("city.events.camera", 0, i, None,
                         orjson.dumps({**template["value"], "event_id": f"cam-{i}"}), 1_000 + i)
            for i in range(n)]
    result = batcher(recs, {"city.events.camera/0": 9_999})
    assert not result.dead and result.parts == n
    batches = [decode(r) for r in result.records[0]]
    assert [len(b.parts) for b in batches] == [1_000, 500]
    assert [p.event_id for b in batches for p in b.parts] == [f"cam-{i}" for i in range(n)]
    assert [b.frontier for b in batches] == [None, {"city.events.camera/0": 9_999}]
