"""The merge of streams by arrival: nothing older can follow what it releases."""

from __future__ import annotations

import math

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
