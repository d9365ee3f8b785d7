"""The merge of streams by arrival: nothing older can follow what it releases."""

from __future__ import annotations

import heapq
import math
from operator import attrgetter

from hypothesis import given, settings
from hypothesis import strategies as st

from streams.merge import ArrivalMerge
from streams.partitioned import SourceRecord


def rec(partition: int, offset: int, ts: int) -> SourceRecord:
    return SourceRecord("cam", partition, offset, None, b"", ts)


def merge() -> ArrivalMerge[int, SourceRecord]:
    return ArrivalMerge(lambda r: r.timestamp, lambda r: (r.timestamp, r.topic, r.partition))


def release(m: ArrivalMerge[int, SourceRecord], assigned: list[int], at_end: set[int]) -> list[SourceRecord]:
    limit = m.limit(assigned, at_end)
    return [] if limit is None else m.release(limit)


def test_a_partition_not_fetched_yet_holds_everything_back() -> None:
    m = merge()
    m.add(0, [rec(0, 0, 100), rec(0, 1, 200)])
    assert release(m, [0, 1], at_end=set()) == []
    assert release(m, [0, 1], at_end={1}) == [rec(0, 0, 100), rec(0, 1, 200)]


def test_records_come_out_in_arrival_order_up_to_the_slowest_partition() -> None:
    m = merge()
    m.add(0, [rec(0, 0, 100), rec(0, 1, 300), rec(0, 2, 500)])   # a fetch brought far more of 0
    m.add(1, [rec(1, 0, 200), rec(1, 1, 250)])
    assert release(m, [0, 1], at_end=set()) == [rec(0, 0, 100), rec(1, 0, 200), rec(1, 1, 250)]
    assert m.first_offset(0) == 1 and m.held(0) == 2 and m.first_offset(1) is None
    m.add(1, [rec(1, 2, 400)])
    assert release(m, [0, 1], at_end=set()) == [rec(0, 1, 300), rec(1, 2, 400)]
    assert release(m, [0, 1], at_end={1}) == [rec(0, 2, 500)]     # 1 is read to its end


def test_a_partition_keeps_its_offset_order_when_its_stamps_go_back() -> None:
    m = merge()
    m.add(0, [rec(0, 0, 300), rec(0, 1, 100)])
    m.add(1, [rec(1, 0, 200)])
    assert release(m, [0, 1], at_end=set()) == [rec(1, 0, 200)]
    assert release(m, [0, 1], at_end={1}) == [rec(0, 0, 300), rec(0, 1, 100)]


def test_a_revoked_partition_is_forgotten() -> None:
    m = merge()
    m.add(0, [rec(0, 0, 100)])
    m.drop(0)
    assert m.held(0) == 0 and release(m, [1], at_end={1}) == []


def test_the_limit_is_the_slowest_unfinished_partition() -> None:
    m = merge()
    m.add(0, [rec(0, 0, 100), rec(0, 1, 300)])
    m.add(1, [rec(1, 0, 200)])
    assert m.limit([0, 1, 2], at_end=set()) is None      # 2 not fetched yet
    assert m.limit([0, 1, 2], at_end={2}) == 200
    assert m.limit([0, 1], at_end={0, 1}) == math.inf
    assert m.release(250) == [rec(0, 0, 100), rec(1, 0, 200)] and len(m) == 1
    assert list(m.items()) == [(0, [rec(0, 1, 300)])]


def _reference_release(buffers: dict[int, list[SourceRecord]], limit: float) -> list[SourceRecord]:
    """The merge as first written: each stream's items up to the first past the limit, then
    heapq.merge of those runs."""
    runs = []
    for buf in buffers.values():
        run = []
        while buf and buf[0].timestamp <= limit:
            run.append(buf.pop(0))
        if run:
            runs.append(run)
    return list(heapq.merge(*runs, key=lambda r: (r.timestamp, r.topic, r.partition)))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 3), st.lists(st.integers(0, 30), max_size=8)), max_size=12),
       st.lists(st.integers(-1, 35), min_size=1, max_size=6))
def test_release_is_the_merge_of_each_stream_up_to_its_first_item_past_the_limit(
        fetches: list[tuple[int, list[int]]], limits: list[int]) -> None:
    """Random fetches (stamps often equal, sometimes going back), released at random limits:
    what the fast paths give is what the plain merge gives, in the same order."""
    m = merge()
    m.order = attrgetter("timestamp", "topic", "partition")
    m.stamp = attrgetter("timestamp")
    ref: dict[int, list[SourceRecord]] = {}
    offsets = [0] * 4
    for (partition, stamps), limit in zip(fetches, limits * (len(fetches) // len(limits) + 1), strict=False):
        recs = []
        for ts in stamps:
            recs.append(rec(partition, offsets[partition], ts))
            offsets[partition] += 1
        m.add(partition, recs)
        ref.setdefault(partition, []).extend(recs)
        assert m.release(limit) == _reference_release(ref, limit)
        assert m.held(partition) == len(ref[partition])
    assert m.release(math.inf) == _reference_release(ref, math.inf)
