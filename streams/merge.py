"""Merge streams of input by arrival: nothing older may follow what is released.

Used twice, for the same reason at two scales. A consumer fetches partitions unevenly: one
fetch may bring hours of one partition's backlog and seconds of another's. Passed on in fetch
order, input from the slower partition would reach its grid's engine after input an hour
newer, and count as late.

- Ingest merges the source partitions its worker owns: a fetched record is released once no
  assigned partition can still bring an older one (:meth:`ArrivalMerge.limit`).
- Each partition's evaluator merges what all workers' ingests wrote into its internal
  partition: a part is released once every source partition's ingest has reported a
  frontier at or past its arrival. Two workers draining a backlog at their own speeds then
  still feed every engine in one arrival order.

Released items come out in (arrival, topic, partition) order, each stream in its own order
(even where a stream's stamps go back).
"""

from __future__ import annotations

import heapq
import math
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from itertools import chain, compress, count, islice, repeat
from operator import le, lt
from typing import Any, Generic, TypeVar

K = TypeVar("K")
T = TypeVar("T")


class ArrivalMerge(Generic[K, T]):
    """Buffers items per stream key ``K`` and releases them in arrival order.

    ``stamp``: an item's arrival; ``order``: how items of equal arrival from different streams
    are ordered (it starts with the arrival)."""

    def __init__(self, stamp: Callable[[T], int], order: Callable[[T], Any]) -> None:
        self.stamp = stamp
        self.order = order
        self.buffers: dict[K, deque[T]] = {}
        self.newest: dict[K, int] = {}

    def add(self, key: K, items: Iterable[T]) -> None:
        batch = list(items)
        if not batch:
            return
        self.buffers.setdefault(key, deque()).extend(batch)
        t = max(map(self.stamp, batch))
        if t > self.newest.get(key, t - 1):
            self.newest[key] = t

    def limit(self, assigned: Iterable[K], at_end: set[K]) -> float | None:
        """Up to where no assigned stream can still bring anything older: the least newest
        fetched arrival of the streams not read to their end (``at_end`` streams constrain
        nothing); ``math.inf`` if every stream is at its end; None while a stream has not
        been fetched at all (it may bring anything)."""
        limits = [self.newest.get(k) for k in assigned if k not in at_end]
        if any(t is None for t in limits):
            return None
        return min((t for t in limits if t is not None), default=math.inf)

    def release(self, limit: float) -> list[T]:
        """Everything with an arrival at or before ``limit``, merged.

        Every item passes here, so the scans run in C (``map`` of the ``stamp`` and ``order``
        given, at C speed when they are ``operator.attrgetter``s), not a Python step each."""
        runs: list[list[T]] = []
        for key, buf in self.buffers.items():
            # the first item past the limit (a stream's stamps may go back: not a bisection)
            n = next(compress(count(), map(lt, repeat(limit), map(self.stamp, buf))), len(buf))
            if n == len(buf):
                run = list(buf)
                buf.clear()
            elif n:
                run = list(islice(buf, n))
                self.buffers[key] = deque(islice(buf, n, None))
            else:
                continue
            runs.append(run)
        if len(runs) <= 1:
            return runs[0] if runs else []
        order = self.order
        if all(_ordered(list(map(order, run))) for run in runs):
            # Each run in order: one stable sort of them all is their merge (equal keys in
            # the order of the runs, then of each run), done by Timsort at C speed.
            return sorted(chain.from_iterable(runs), key=order)
        # heapq.merge keeps each run's own order, even where a stream's stamps go back.
        return list(heapq.merge(*runs, key=order))

    def first_offset(self, key: K) -> int | None:
        """The offset of the oldest item still held for ``key`` (None: nothing held)."""
        buf = self.buffers.get(key)
        return buf[0].offset if buf else None  # type: ignore[attr-defined]

    def held(self, key: K) -> int:
        return len(self.buffers.get(key, ()))

    def __len__(self) -> int:
        return sum(len(buf) for buf in self.buffers.values())

    def items(self) -> Iterator[tuple[K, list[T]]]:
        """What is held, per stream in its order (for a checkpoint)."""
        return ((k, list(buf)) for k, buf in self.buffers.items() if buf)

    def drop(self, key: K) -> None:
        """Forget a stream (ingest: a revoked partition, whose next owner fetches it again)."""
        self.buffers.pop(key, None)
        self.newest.pop(key, None)


def _ordered(keys: list[Any]) -> bool:
    return all(map(le, keys, islice(keys, 1, None)))
