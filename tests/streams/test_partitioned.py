"""The runtime's halves without Kafka: batching by partition, and crash safety of a
partition's evaluator (skip what was applied, resend what was not confirmed)."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from rules.citymap import CityMap
from rules.pack import load_rules
from rules.replay import parse_line
from streams.codec import Batch, decode, encode_bounds
from streams.partitioned import IngestBatcher, PartitionEvaluator, SourceRecord, grid_partition
from tests.rules.harness import T
from tests.rules.test_properties import _harness, stream

PARTITIONS = 3


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
                  confirm_lost: bool = False) -> list[tuple[str, int, bytes]]:
    """Feed a partition's log; at each crash point, lose the evaluator (and, with
    ``confirm_lost``, its last confirmation) and restart from the stored table, redelivering
    from the last committed offset (here: two records back)."""
    h = _harness(feed=False)
    table: dict[str, bytes] = {}
    produced: list[tuple[str, int, bytes]] = []

    def fresh() -> PartitionEvaluator:
        ev = PartitionEvaluator(h.city, h.rules, clock="event", partition=p, now=lambda: 0,
                                topic_of=lambda t: t)
        for topic, _, msg in ev.restore(table):
            obj = orjson.loads(msg)
            produced.append((topic, obj.get("version", 0), orjson.dumps(obj)))
        return ev

    ev = fresh()
    offset = 0
    crashes = set(crash_after)
    while offset < len(records):
        step = ev.process(offset, decode(records[offset]))
        if step is not None:
            table.update(step.writes)
            for k in step.deletes:
                table.pop(k, None)
            if offset in crashes and confirm_lost:
                crashes.discard(offset)   # died after the state write, before producing
                ev = fresh()
                offset = max(0, offset - 2)
                continue
            produced += [("city.alerts", a["version"], orjson.dumps(a)) for a in step.alerts]
            table.update(ev.confirmed())
        if offset in crashes:
            crashes.discard(offset)
            ev = fresh()
            offset = max(0, offset - 2)       # redelivered from an older committed offset
            continue
        offset += 1
    return produced


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
@pytest.mark.parametrize("confirm_lost", [False, True])
def test_crashes_lose_nothing_and_double_nothing(seed: int, confirm_lost: bool) -> None:
    log = internal_log(seed)
    for p, records in log.items():
        expected = distinct(run_partition(p, records))
        crashes = set(range(1, len(records), max(1, len(records) // 5)))
        got = distinct(run_partition(p, records, crash_after=crashes, confirm_lost=confirm_lost))
        assert got == expected
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
    step = ev.process(0, Batch(bounds={sources[0]: T("10:00:00")}))
    assert step is not None
    again = PartitionEvaluator(h.city, h.rules, clock="wall", partition=2, now=lambda: 0,
                               topic_of=lambda t: t, sources=sources)
    again.restore(step.writes)
    again.process(1, Batch(bounds={sources[1]: T("10:00:03")}))
    assert again.engine.clock == T("10:00:00")
