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
    kind: str             # "young" or "full"
    seconds: float
    freed: int            # unreachable objects found
    live: int | None      # tracked objects after a full collection (counting them walks them)


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
    (the benchmarks found 5-113 at a time) is freed by a full collection every ``full_every_s``
    seconds, so that neither it nor what it holds (a socket, a store a revoked partition let
    go of) is kept for long. A full collection pauses as long as CPython's own (~0.8 µs an
    object: ~0.4 s at 400k). It comes with time only, not with the heap's growth, which would
    put several into a backlog's drain and one into every fresh worker's first minutes.
    """

    def __init__(self, full_every_s: float = 600.0) -> None:
        self.full_every_s = full_every_s
        self.full_at: float | None = None

    def step(self, now: float) -> Collection:
        """Collect; ``now`` is a monotonic clock in seconds."""
        started = time.perf_counter()
        gc.disable()
        if self.full_at is None or now - self.full_at >= self.full_every_s:
            gc.unfreeze()
            freed, kind = gc.collect(), "full"
            self.full_at = now
        else:
            freed, kind = gc.collect(0), "young"
        gc.freeze()
        seconds = time.perf_counter() - started
        return Collection(kind, seconds, freed, gc.get_freeze_count() if kind == "full" else None)
