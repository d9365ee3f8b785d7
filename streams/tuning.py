"""Process-level settings for a long-running engine (the engine itself has no globals)."""

from __future__ import annotations

import gc
import time
from dataclasses import dataclass


def tune_gc() -> None:
    """Make the cyclic garbage collector run far less often.

    The engine holds hundreds of thousands of long-lived small objects (subjects, evidence,
    timers) and creates few reference cycles; with CPython's default thresholds (700, 10, 10)
    the collector rescans them over and over: about a fifth of a replay's time. Objects
    already alive (the map, the rules) are frozen out of collection altogether.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(100_000, 50, 1000)


@dataclass(frozen=True, slots=True)
class Collection:
    kind: str          # "young" or "full"
    seconds: float
    freed: int         # unreachable objects found


class WorkerCollector:
    """The cyclic collector of a worker that answers in ~100 ms: short pauses, bounded memory.

    CPython collects when allocations minus deallocations pass a threshold. In a worker in
    steady state, state is replaced about as fast as it is made, so that count hardly moves
    while the youngest generation fills with everything that survived since the last
    collection; the collection that comes at last scans all of it. Measured on the latency
    benchmark's workload: pauses of 100-190 ms every few seconds with ``tune_gc``'s threshold,
    and up to 536 ms with a threshold of 20,000.

    So automatic collection is off, and the runtime calls :meth:`step` four times a second: it
    collects the objects made since the last step (freeing what of them is cyclic garbage)
    and freezes the survivors out of later collections, so a pause is as long as a quarter of
    a second's allocations take to scan. A cycle that becomes garbage only after it was frozen
    is freed by a full collection, which pauses as long as CPython's own (~0.8 µs an object:
    ~400 ms at 400k) and runs

    - when the heap has grown ``full_growth``-fold since the last one (a worker loading its
      partitions, a city's morning): the benchmarks found 5-113 such cycles at each;
    - every ``full_every_s`` seconds, so that what such a cycle holds (a socket, a store a
      revoked partition let go of) is not held for long whether or not the heap grows.

    Counting the frozen objects walks them (~10 ms at 500k), so the heap's growth is checked
    only every ``check_every`` steps; a big batch of new objects (a restored partition) is
    seen at once from the allocation count.
    """

    def __init__(self, full_growth: float = 4.0, full_every_s: float = 600.0, check_every: int = 40) -> None:
        self.full_growth = full_growth
        self.full_every_s = full_every_s
        self.check_every = check_every
        self.baseline: int | None = None
        self.full_at = 0.0
        self.steps = 0

    def _full_due(self, now: float) -> bool:
        if self.baseline is None or now - self.full_at >= self.full_every_s:
            return True
        limit = self.baseline * self.full_growth
        if gc.get_count()[0] > limit:
            return True
        return self.steps % self.check_every == 0 and gc.get_freeze_count() > limit

    def step(self, now: float) -> Collection:
        """Collect; ``now`` is a monotonic clock in seconds."""
        started = time.perf_counter()
        self.steps += 1
        gc.disable()
        if self._full_due(now):
            gc.unfreeze()
            freed, kind = gc.collect(), "full"
        else:
            freed, kind = gc.collect(0), "young"
        gc.freeze()
        if kind == "full":
            self.baseline, self.full_at = gc.get_freeze_count(), now
        return Collection(kind, time.perf_counter() - started, freed)
