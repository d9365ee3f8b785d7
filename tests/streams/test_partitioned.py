"""The runtime's halves without Kafka: batching by partition, and crash safety of a
partition's evaluator (checkpoints, skipping what a checkpoint covers, redoing what it does not)."""

from __future__ import annotations

import base64
import pickle
from datetime import date
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from models.timestamps import parse_timestamp_ms
from rules.citymap import CityMap
from rules.demo.dispatch import generate_with_feedback
from rules.engine import snapshot
from rules.pack import DEFAULT_PACK, RuleSet, load_rules
from rules.replay import parse_line
from rules.ruletest import DEMO_CITY
from streams.codec import Batch, decode, encode_bounds
from streams.partitioned import IngestBatcher, PartitionEvaluator, SourceRecord, grid_partition
from streams.statelog import apply
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
                  every: int = 3, world: tuple[CityMap, RuleSet] | None = None
                  ) -> list[tuple[str, int, bytes]]:
    """Feed a partition's log as the runtime does: output produced at once, a checkpoint every
    ``every`` records, records acknowledged after it. At each crash point the evaluator is
    lost and a fresh one restarts from the stored table, given the records again from the
    last acknowledged one (and, as a commit may lag the acknowledgements, two before it).

    ``death``: where the worker dies at a crash point — ``after_checkpoint`` (a checkpoint
    written and acknowledged), ``before_checkpoint`` (output produced, no checkpoint since),
    ``mid_checkpoint`` (after some of a checkpoint's records: each point cuts elsewhere).
    ``final`` receives the engine's state at the end, as loaded from the table. ``world``: the
    city and rules (default: the test harness's)."""
    city, rules = world or (lambda h: (h.city, h.rules))(_harness(feed=False))
    table: dict[str, bytes] = {}
    produced: list[tuple[str, int, bytes]] = []

    def fresh() -> PartitionEvaluator:
        ev = PartitionEvaluator(city, rules, clock="event", partition=p, now=lambda: 0,
                                topic_of=lambda t: t, chunk_bytes=CHUNK)
        apply(table, ev.restore(table))
        return ev

    ev = fresh()
    offset, acked = 0, -1
    crashes = set(crash_after)
    while offset < len(records):
        step = ev.process(offset, decode(records[offset]))
        if step is not None:
            produced += [(m.topic, orjson.loads(m.value).get("version", 0), m.value)
                         for m in step.messages]
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
    state["seen"] = sorted(e.seen.items())
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


def test_a_partition_ticks_to_the_least_bound_once_every_source_has_reported() -> None:
    h = _harness(feed=False)
    sources = ["city.events.camera/0", "city.events.camera/1", "city.alerts.feedback/0"]
    ev = PartitionEvaluator(h.city, h.rules, clock="wall", partition=0, now=lambda: 0,
                            topic_of=lambda t: t, sources=sources)
    ev.process(0, decode(encode_bounds({sources[0]: T("10:00:00"), sources[1]: T("10:00:05")})))
    assert ev.engine.clock is None          # the feedback partition has not reported yet
    ev.process(1, decode(encode_bounds({sources[2]: T("10:00:09")})))
    assert ev.engine.clock == T("10:00:00")
    ev.process(2, decode(encode_bounds({sources[0]: T("09:00:00")})))   # stale report: ignored
    assert ev.bounds[sources[0]] == T("10:00:00")
    ev.process(3, decode(encode_bounds({sources[0]: T("10:00:07")})))
    assert ev.engine.clock == T("10:00:05")


def test_progress_survives_a_restart_with_the_state() -> None:
    h = _harness(feed=False)
    sources = ["city.events.camera/0", "city.events.sensor/0"]
    ev = PartitionEvaluator(h.city, h.rules, clock="wall", partition=2, now=lambda: 0,
                            topic_of=lambda t: t, sources=sources)
    assert ev.process(0, Batch(bounds={sources[0]: T("10:00:00")})) is not None
    again = PartitionEvaluator(h.city, h.rules, clock="wall", partition=2, now=lambda: 0,
                               topic_of=lambda t: t, sources=sources)
    table: dict[str, bytes] = {}
    apply(table, ev.checkpoint())
    again.restore(table)
    again.process(1, Batch(bounds={sources[1]: T("10:00:03")}))
    assert again.engine.clock == T("10:00:00")


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


def test_a_record_past_a_gap_is_recognised() -> None:
    """After a rebalance a record fetched earlier can arrive before the ones it follows."""
    h = _harness(feed=False)
    ev = PartitionEvaluator(h.city, h.rules, clock="event", partition=0, now=lambda: 0,
                            topic_of=lambda t: t)
    assert not ev.ahead(40)          # no state yet: the log's first records may be gone
    ev.process(40, Batch())
    assert not ev.ahead(41) and not ev.ahead(12)   # next, or a redelivery (skipped)
    assert ev.ahead(42)


def demo_internal_log() -> dict[int, list[bytes]]:
    """The demo city's day (default pack, feedback included) as ingest would write it."""
    city, rules = CityMap.load(DEMO_CITY), load_rules([DEFAULT_PACK])
    batcher = IngestBatcher(city, rules, clock="event", partitions=4,
                            topic_names={t: t for t in ("city.events.camera", "city.events.sensor",
                                                        "city.events.report", "city.alerts.feedback")},
                            now=lambda: 0)
    recs = []
    for n, line in enumerate(generate_with_feedback(DEMO_CITY, DEFAULT_PACK, date(2026, 11, 20), 7)):
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
