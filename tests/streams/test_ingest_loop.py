"""Ingest's judgement of which source partitions may hold nothing back (``IngestLoop._free``),
and how it writes a large release (``IngestLoop._write``), each chunk with its frontier."""

from __future__ import annotations

import asyncio
import logging
import random
import time

import orjson
import pytest
from aiokafka import TopicPartition

from rules.citymap import CityMap
from rules.demo.city import GEOJSON_PATH
from rules.pack import DEFAULT_PACK, load_rules
from streams.codec import decode
from streams.ingest_loop import BLIND_REWARN_S, BLIND_WARN_S, IDLE_GRACE_S, WRITE_CHUNK, IngestLoop
from streams.metrics import Metrics
from streams.partitioned import IngestBatcher, SourceRecord, source_key
from streams.settings import Settings

TP0, TP1 = TopicPartition("city.events.camera", 0), TopicPartition("city.events.camera", 1)


class _Consumer:
    """What ``_free`` and ``_flow_control`` ask of the consumer."""

    def __init__(self, paused: set[TopicPartition]) -> None:
        self._paused = set(paused)

    def paused(self) -> set[TopicPartition]:
        return set(self._paused)

    def assignment(self) -> set[TopicPartition]:
        return {TP0, TP1}

    def pause(self, *tps: TopicPartition) -> None:
        self._paused.update(tps)

    def resume(self, *tps: TopicPartition) -> None:
        self._paused.difference_update(tps)


def _loop(clock: str, paused: set[TopicPartition]) -> IngestLoop:
    settings = Settings.from_env({}, clock=clock, city=GEOJSON_PATH)
    loop = IngestLoop(settings, CityMap.load(GEOJSON_PATH), load_rules([DEFAULT_PACK]), Metrics())
    loop.consumer = _Consumer(paused)  # type: ignore[assignment]
    long_ago = time.monotonic() - IDLE_GRACE_S - 1
    loop.last_fetched = {TP0: long_ago, TP1: long_ago}
    return loop


def test_a_quiet_partition_at_its_end_is_free_but_not_while_it_is_paused() -> None:
    """Paused, it is not fetched: its end is what its last fetch saw, and its quiet is ours."""
    loop = _loop("event", paused={TP1})
    assert loop._free({TP0, TP1}) == {TP0}


def test_a_resumed_partition_is_quiet_only_from_its_resumption() -> None:
    loop = _loop("event", paused={TP1})
    loop._flow_control(at_end={TP0, TP1})          # holds nothing, nothing ahead: resumed
    assert loop.consumer.paused() == set()        # type: ignore[union-attr]
    assert loop._free({TP0, TP1}) == {TP0}
    loop.last_fetched[TP1] -= IDLE_GRACE_S
    assert loop._free({TP0, TP1}) == {TP0, TP1}


def test_a_worker_that_ingests_and_evaluates_nothing_warns_after_a_minute(
        caplog: pytest.LogCaptureFixture) -> None:
    """With no evaluator, nothing holds its ingest back to the other workers (MAX_AHEAD is
    measured against what its evaluators read): it says so, once in a while, not at once."""
    loop = _loop("wall", paused=set())
    with caplog.at_level(logging.WARNING, logger="streams.ingest_loop"):
        loop._warn_if_blind(100.0, seeing=False)
        loop._warn_if_blind(100.0 + BLIND_WARN_S - 1, seeing=False)
        assert caplog.records == []
        loop._warn_if_blind(100.0 + BLIND_WARN_S, seeing=False)
        assert len(caplog.records) == 1
        assert "ingested 2 source partitions for 60 s while it evaluates no partition" in caplog.text
        loop._warn_if_blind(100.0 + BLIND_REWARN_S - 1, seeing=False)
        assert len(caplog.records) == 1                 # not again soon
        loop._warn_if_blind(100.0 + BLIND_WARN_S + BLIND_REWARN_S, seeing=False)
        assert len(caplog.records) == 2
        # An evaluator's view of the others ends it; a later blind spell counts from its start.
        loop._warn_if_blind(2_000.0, seeing=True)
        loop._warn_if_blind(2_001.0, seeing=False)
        loop._warn_if_blind(2_001.0 + BLIND_WARN_S - 1, seeing=False)
        assert len(caplog.records) == 2


def test_in_wall_mode_every_partition_at_its_end_is_free() -> None:
    """Later records carry later stamps there (the broker's clock, or the producer's)."""
    assert _loop("wall", paused={TP1})._free({TP0, TP1}) == {TP0, TP1}


def _camera_records(n: int) -> list[SourceRecord]:
    """``n`` contract-shaped camera messages on TP0, one a second, each a parked car by the
    demo city's first camera (so each becomes a part)."""
    city = CityMap.load(GEOJSON_PATH)
    cam = next(iter(city.cameras.values()))
    base = 1_795_000_000_000
    records = []
    for i in range(n):
        at = base + i * 1000
        value = orjson.dumps({
            "event_id": f"{cam.id}-{i:09d}", "camera_id": cam.id,
            "observed_at": city.calendar.format(at), "snapshot_url": f"https://evidence.example/{i}.jpg",
            "detections": [{"label": "parked_car", "track_id": f"t-{i % 50}", "confidence": 0.9,
                            "bbox": [0.1, 0.1, 0.2, 0.2], "location": {"lat": cam.lat, "lon": cam.lon}}]})
        records.append(SourceRecord(TP0.topic, TP0.partition, i, cam.id.encode(), value, at))
    return records


async def test_a_large_release_is_ingested_in_chunks_that_yield_the_loop_and_change_nothing() -> None:
    """A release after a pause can hold many fetches (80k records when a worker starts on a
    backlog): ingested in one go it held the event loop for 1.5 s. In chunks of WRITE_CHUNK
    records the loop runs between them, and the parts written are the same, in the same
    order. Each chunk's last record carries the frontier that holds once it is written (the
    next chunk's first arrival less one), so an evaluator applies a chunk as it comes."""
    released = _camera_records(int(WRITE_CHUNK * 2.5))
    frontier = {source_key("city.events.camera", 0): released[-1].timestamp}
    loop = _loop("wall", paused=set())
    sent: list[tuple[str, str | None, bytes, int | None]] = []

    async def produce(sends: list[tuple[str, str | None, bytes, int | None]], stage: str) -> None:
        sent.extend(sends)

    loop._produce = produce  # type: ignore[method-assign]
    writing = True
    ran_while_writing = 0

    async def other_work() -> None:
        nonlocal ran_while_writing
        while writing:
            ran_while_writing += 1
            await asyncio.sleep(0)

    other = asyncio.create_task(other_work())
    await asyncio.sleep(0)
    ran_while_writing = 0
    await loop._write(released, frontier)
    writing = False
    await other
    assert ran_while_writing >= 2      # three chunks: the loop ran between them

    batches = [decode(value) for topic, _, value, _ in sent if topic == loop.internal]
    assert len(batches) > len({p for *_, p in sent})   # more than one record per partition
    reference = IngestBatcher(CityMap.load(GEOJSON_PATH), load_rules([DEFAULT_PACK]), clock="wall",
                              partitions=loop.settings.partitions, topic_names=loop.contract,
                              now=loop.now)(released, frontier, None)
    expected = [decode(v) for values in reference.records.values() for v in values]
    assert [p for b in batches for p in b.parts] == [p for b in expected for p in b.parts]
    assert len([p for b in batches for p in b.parts]) == len(released)
    assert batches[-1].frontier == frontier
    source = source_key("city.events.camera", 0)
    nexts = [released[i].timestamp - 1 for i in (WRITE_CHUNK, 2 * WRITE_CHUNK)]
    assert [b.frontier[source] for b in batches if b.frontier] == [*nexts, frontier[source]]
    for i, b in enumerate(batches):   # no part written after a frontier is at or before it
        assert all(p.arrival > t for later in batches[i + 1:] for p in later.parts
                   for t in (b.frontier or {}).values())


def test_a_chunks_frontier_is_below_every_arrival_still_to_come_from_its_source() -> None:
    """Random writes over two source partitions whose stamps go back, cut at random: each
    chunk's frontier for a source is below every arrival that source still has in the chunks
    after it (ticks and progress markers among them: a tick must not be passed before it is
    told), at most the write's own, and the write's own where the source has nothing after."""
    rng = random.Random(7)
    loop = _loop("event", paused=set())
    sources = {tp: source_key(tp.topic, tp.partition) for tp in (TP0, TP1)}
    for _ in range(300):
        n = rng.randint(1, 40)
        released = [SourceRecord(tp.topic, tp.partition, i, None, b"", 1_000 + i * 10 + rng.randint(-40, 40))
                    for i, tp in enumerate(rng.choice((TP0, TP1)) for _ in range(n))]
        starts = [0, *sorted(rng.sample(range(1, n), rng.randint(0, min(5, n - 1))))] if n > 1 else [0]
        named = rng.sample(sorted(sources.values()), rng.randint(0, 2))
        frontier = {s: rng.randint(900, 1_500) for s in named}
        frontiers = loop._chunk_frontiers(released, starts, frontier)
        assert len(frontiers) == len(starts)
        assert frontiers[-1] == (frontier or None)
        for i in range(len(starts) - 1):
            if not frontier:
                assert frontiers[i] is None
                continue
            chunk = frontiers[i]
            assert chunk is not None and set(chunk) == set(frontier)
            for s, t in chunk.items():
                after = [r.timestamp for r in released[starts[i + 1]:]
                         if sources[TopicPartition(r.topic, r.partition)] == s]
                assert t <= frontier[s] and all(t < a for a in after)
                assert t == (min(frontier[s], min(after) - 1) if after else frontier[s])
