"""Redelivered, duplicate and late input are three different things, counted apart.

After a crash or a rebalance, ingest reads its source partitions again from its last commit and
writes the same parts again. Those re-read records are *redelivered* (same topic, partition and
offset), not late: counted as late, a crash put thousands of inputs into
``cityorder_late_inputs_total`` (3,596-11,377 per run of the kill test). A *duplicate* is
another record with an event id already seen (a producer that sent twice); *late* is a new
record older than the allowed lateness (CONTRACTS.md, Time).
"""

from __future__ import annotations

import pickle
from collections import Counter
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from models.decode import TOPIC_SOURCES, BadInput
from rules.engine import LATE_DEVICES, OTHER_DEVICES, Engine, Stats, restore, snapshot
from rules.ingest import Ingest
from rules.inputs import Input
from rules.replay import parse_line
from streams.codec import decode
from streams.metrics import EngineCollector
from streams.partitioned import IngestBatcher, PartitionEvaluator
from tests.rules.harness import Harness, T
from tests.rules.test_properties import _harness
from tests.streams.test_partitioned import source_records

TOPICS = ("city.events.camera", "city.events.sensor", "city.events.report", "city.alerts.feedback")


def parts(h: Harness, partition: int = 0, first_offset: int = 0) -> list[list[Input]]:
    """The harness's lines as ingest turns them into parts: line n is offset first_offset + n."""
    ingest = Ingest(h.city, h.rules, clock="event")
    out = []
    for n, line in enumerate(h.lines):
        msg = parse_line(line)
        assert msg.topic is not None
        result = ingest(TOPIC_SOURCES[msg.topic], msg.topic, msg.payload, key=msg.key,
                        partition=partition, offset=first_offset + n)
        assert not isinstance(result, BadInput), result
        out.append(result)
    return out


def feed(engine: Engine, records: list[list[Input]]) -> list[object]:
    out: list[object] = []
    for record in records:
        for part in record:
            out += engine.feed(part)
    return out


def readings(tmp_path: Path, n: int = 10, step_s: int = 30) -> Harness:
    h = Harness(tmp_path, feed=False)
    for i in range(n):
        h.sensor(T("10:00:00") + i * step_s * 1000, "mh-1", "manhole_cover",
                 state="open" if i % 2 else "ok")
    return h


def test_a_re_read_record_is_redelivered_not_late(tmp_path: Path) -> None:
    """Ten readings over 4.5 minutes, then ingest reads the partition again from the start
    (its commit was lost with the worker): the old ones were counted late before."""
    h = readings(tmp_path)
    records = parts(h)
    engine = Engine(h.city, h.rules)
    feed(engine, records)
    before = engine.stats.applied
    assert feed(engine, records) == []
    assert engine.stats.redelivered == Counter({"sensor": 10})
    assert not engine.stats.late and not engine.stats.late_sources and not engine.stats.duplicates
    assert engine.stats.applied == before


def test_a_re_read_record_within_the_window_is_redelivered_not_a_duplicate(tmp_path: Path) -> None:
    h = readings(tmp_path, n=3, step_s=1)
    records = parts(h)
    engine = Engine(h.city, h.rules)
    feed(engine, records)
    feed(engine, records[1:])
    assert engine.stats.redelivered == Counter({"sensor": 2}) and not engine.stats.duplicates


def test_duplicate_redelivered_and_late_are_disjoint(tmp_path: Path) -> None:
    h = readings(tmp_path, n=6)
    h.sensor(T("10:02:30"), "mh-1", "manhole_cover", state="open", eid="mh-1-6")  # another record, same id
    h.sensor(T("10:00:10"), "sl-1", "streetlight", state="off")                  # new, 2 min too old
    records = parts(h)
    engine = Engine(h.city, h.rules)
    feed(engine, records)
    feed(engine, records[:2])                                                    # re-read
    engine.finish()
    s = engine.stats
    assert s.duplicates == Counter({"city.events.sensor": 1})
    assert s.late == Counter({"sl-1": 1}) and s.late_sources == Counter({"sensor": 1})
    assert s.redelivered == Counter({"sensor": 2})
    assert s.applied == 6


def test_parts_of_one_message_in_two_grids_of_one_engine_are_not_redeliveries(tmp_path: Path) -> None:
    """A camera message with detections in G-1 and G-2 gives two parts with one offset; an
    engine evaluating both grids applies both, and counts both when they are read again."""
    h = Harness(tmp_path, feed=False)
    h.cam(T("10:00:00"), detections=[
        {"label": "street_vendor", "confidence": 0.9, "track_id": track,
         "location": {"lat": 30.005, "lon": lon}} for track, lon in (("a", 104.005), ("b", 104.015))])
    records = parts(h)
    assert sorted(p.grid_id for p in records[0]) == ["G-1", "G-2"]
    engine = Engine(h.city, h.rules)
    feed(engine, records)
    assert not engine.stats.redelivered and not engine.stats.duplicates
    feed(engine, records)
    assert engine.stats.redelivered == Counter({"camera": 2})


def test_the_marks_survive_a_snapshot(tmp_path: Path) -> None:
    h = readings(tmp_path)
    records = parts(h)
    engine = Engine(h.city, h.rules)
    feed(engine, records)
    fresh = Engine(h.city, h.rules)
    restore(fresh, snapshot(engine)[0])
    feed(fresh, records[:4])
    assert fresh.stats.redelivered == Counter({"sensor": 4}) and not fresh.stats.late


def test_a_checkpoint_from_before_the_marks_restores(tmp_path: Path) -> None:
    """No marks record and a Stats without the new counters: a checkpoint a worker wrote
    before this change. It restores with no marks and zero counts."""
    h = readings(tmp_path)
    engine = Engine(h.city, h.rules)
    feed(engine, parts(h))
    records, _ = snapshot(engine)
    del records[("marks",)]
    fields = pickle.loads(records[("engine",)])
    old_stats = Stats.__new__(Stats)
    for name in ("late", "duplicates", "rejected", "evicted", "applied", "transitions"):
        setattr(old_stats, name, getattr(fields[6], name))
    records[("engine",)] = pickle.dumps((*fields[:6], old_stats))
    fresh = Engine(h.city, h.rules)
    restore(fresh, records)
    assert fresh.marks == {} and fresh.stats.redelivered == Counter()
    assert fresh.stats.late_sources == Counter() and fresh.stats.applied == engine.stats.applied


def test_late_devices_are_bounded_and_their_sum_is_exact() -> None:
    stats = Stats()
    for _ in range(3):
        stats.count_late("camera", "cam-drifting")
    for n in range(LATE_DEVICES * 4):
        stats.count_late("camera", f"fake-{n}")
        if n % 10 == 0:
            stats.count_late("camera", "cam-drifting")
    assert len(stats.late) == LATE_DEVICES + 1 and OTHER_DEVICES in stats.late
    assert sum(stats.late.values()) == sum(stats.late_sources.values()) == 3 + LATE_DEVICES * 4 + 103
    assert stats.late["cam-drifting"] == 3 + 103            # the device that keeps being late stays


def test_the_late_metric_is_labelled_by_source_not_device(tmp_path: Path) -> None:
    h = readings(tmp_path)
    h.sensor(T("10:00:10"), "sl-1", "streetlight", state="off")
    records = parts(h)
    ev = PartitionEvaluator(h.city, h.rules, clock="event", partition=3, now=lambda: 0,
                            topic_of=lambda t: t)
    feed(ev.engine, records)
    feed(ev.engine, records[:1])
    registry = CollectorRegistry()
    registry.register(EngineCollector(lambda: [ev], lambda: None))
    text = generate_latest(registry).decode()
    assert 'cityorder_late_inputs_total{partition="3",source="sensor"} 1.0' in text
    assert 'cityorder_redelivered_inputs_total{partition="3",source="sensor"} 1.0' in text
    assert "sl-1" not in text and 'device="' not in text


# -- a worker's partition after a crash: ingest re-reads from its last commit ----------------


def _log(batcher: IngestBatcher, recs: list, partitions: int, log: dict[int, list[bytes]]) -> None:
    for i in range(0, len(recs), 7):
        for p, records in batcher(recs[i:i + 7]).records.items():
            log[p] += records


def _evaluate(records: list[bytes], p: int, h: Harness) -> tuple[set[bytes], Stats]:
    ev = PartitionEvaluator(h.city, h.rules, clock="event", partition=p, now=lambda: 0,
                            topic_of=lambda t: t)
    produced: set[bytes] = set()
    for offset, record in enumerate(records):
        step = ev.process(offset, decode(record))
        assert step is not None
        produced |= {m.value for m in step.messages}
    return produced, ev.engine.stats


def _parts(records: list[bytes]) -> int:
    return sum(len(decode(r).parts) for r in records)


@pytest.mark.parametrize("seed", [1, 7, 23])
def test_a_partition_counts_what_ingest_reads_again_as_redelivered(seed: int) -> None:
    """Ingest wrote records up to ``written``, died before committing past ``committed``; the
    next owner reads from there again. Every partition's engine gives what it gives without
    the crash, with the re-read parts counted as redelivered and none as late or duplicate."""
    h = _harness(feed=False)
    batcher = IngestBatcher(h.city, h.rules, clock="event", partitions=3,
                            topic_names={t: t for t in TOPICS}, now=lambda: 0)
    recs = source_records(seed)
    committed, written = len(recs) // 5, len(recs) * 3 // 4
    clean: dict[int, list[bytes]] = {p: [] for p in range(3)}
    crashed: dict[int, list[bytes]] = {p: [] for p in range(3)}
    _log(batcher, recs, 3, clean)
    _log(batcher, recs[:written], 3, crashed)
    _log(batcher, recs[committed:], 3, crashed)
    again = 0
    for p in range(3):
        expected, base = _evaluate(clean[p], p, h)
        got, stats = _evaluate(crashed[p], p, h)
        assert got == expected
        redelivered = _parts(crashed[p]) - _parts(clean[p])
        assert sum(stats.redelivered.values()) == redelivered
        assert stats.late == base.late and stats.duplicates == base.duplicates
        again += redelivered
    assert again > 50
