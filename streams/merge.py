"""Merge a worker's source partitions by arrival before ingest writes them on.

A consumer fetches partitions unevenly: one fetch may bring hours of one partition's backlog
and seconds of another's. Written on in fetch order, input from the slower partition would
reach its grid's engine after input an hour newer, and count as late. So ingest releases a
fetched record only when no assigned partition can still bring an older one: its timestamp
is at most every partition's newest fetched timestamp, partitions read to their end
excepted (whatever they bring next arrives later). Released records come out in
(timestamp, topic, partition, offset) order, each partition in offset order.
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Iterable
from typing import Generic, TypeVar

from streams.partitioned import SourceRecord

K = TypeVar("K")


class ArrivalMerge(Generic[K]):
    """Buffers fetched records per partition key ``K`` and releases them in arrival order."""

    def __init__(self) -> None:
        self.buffers: dict[K, deque[SourceRecord]] = {}
        self.newest: dict[K, int] = {}

    def add(self, key: K, records: Iterable[SourceRecord]) -> None:
        buf = self.buffers.setdefault(key, deque())
        for r in records:
            buf.append(r)
            if r.timestamp > self.newest.get(key, r.timestamp - 1):
                self.newest[key] = r.timestamp

    def release(self, assigned: Iterable[K], at_end: set[K]) -> list[SourceRecord]:
        """Everything no assigned partition can still undercut. ``at_end``: partitions whose
        every record has been fetched (they constrain nothing)."""
        limits = [self.newest.get(k) for k in assigned if k not in at_end]
        if any(limit is None for limit in limits):
            return []                      # a partition not fetched yet may bring anything
        frontier = min((limit for limit in limits if limit is not None), default=None)
        runs: list[list[SourceRecord]] = []
        for buf in self.buffers.values():
            run = []
            while buf and (frontier is None or buf[0].timestamp <= frontier):
                run.append(buf.popleft())
            runs.append(run)
        # heapq.merge keeps each run's own order, even where a partition's stamps go back.
        return list(heapq.merge(*runs, key=lambda r: (r.timestamp, r.topic, r.partition)))

    def first_offset(self, key: K) -> int | None:
        """The offset of the oldest record still held for ``key`` (None: nothing held)."""
        buf = self.buffers.get(key)
        return buf[0].offset if buf else None

    def held(self, key: K) -> int:
        return len(self.buffers.get(key, ()))

    def drop(self, key: K) -> None:
        """Forget a revoked partition: its next owner fetches the held records again."""
        self.buffers.pop(key, None)
        self.newest.pop(key, None)
