"""Ingest's merge of source partitions by arrival: nothing older can follow what it releases."""

from __future__ import annotations

from streams.merge import ArrivalMerge
from streams.partitioned import SourceRecord


def rec(partition: int, offset: int, ts: int) -> SourceRecord:
    return SourceRecord("cam", partition, offset, None, b"", ts)


def test_a_partition_not_fetched_yet_holds_everything_back() -> None:
    m: ArrivalMerge[int] = ArrivalMerge()
    m.add(0, [rec(0, 0, 100), rec(0, 1, 200)])
    assert m.release([0, 1], at_end=set()) == []
    assert m.release([0, 1], at_end={1}) == [rec(0, 0, 100), rec(0, 1, 200)]


def test_records_come_out_in_arrival_order_up_to_the_slowest_partition() -> None:
    m: ArrivalMerge[int] = ArrivalMerge()
    m.add(0, [rec(0, 0, 100), rec(0, 1, 300), rec(0, 2, 500)])   # a fetch brought far more of 0
    m.add(1, [rec(1, 0, 200), rec(1, 1, 250)])
    assert m.release([0, 1], at_end=set()) == [rec(0, 0, 100), rec(1, 0, 200), rec(1, 1, 250)]
    assert m.first_offset(0) == 1 and m.held(0) == 2 and m.first_offset(1) is None
    m.add(1, [rec(1, 2, 400)])
    assert m.release([0, 1], at_end=set()) == [rec(0, 1, 300), rec(1, 2, 400)]
    assert m.release([0, 1], at_end={1}) == [rec(0, 2, 500)]     # 1 is read to its end


def test_a_partition_keeps_its_offset_order_when_its_stamps_go_back() -> None:
    m: ArrivalMerge[int] = ArrivalMerge()
    m.add(0, [rec(0, 0, 300), rec(0, 1, 100)])
    m.add(1, [rec(1, 0, 200)])
    assert m.release([0, 1], at_end=set()) == [rec(1, 0, 200)]
    assert m.release([0, 1], at_end={1}) == [rec(0, 0, 300), rec(0, 1, 100)]


def test_a_revoked_partition_is_forgotten() -> None:
    m: ArrivalMerge[int] = ArrivalMerge()
    m.add(0, [rec(0, 0, 100)])
    m.drop(0)
    assert m.held(0) == 0 and m.release([1], at_end={1}) == []
