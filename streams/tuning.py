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
    collects what was made since the last step (freeing what of it is cyclic garbage) and
    freezes the survivors out of later collections, so a pause scans only what survived since
    the last step.
    A cycle that becomes garbage only after it was frozen is freed by a full collection,
    which runs when the frozen objects have grown by ``full_growth`` (doubled, by default)
    since the last one, so memory stays bounded. Those pauses are as long as CPython's own
    full collections (~0.7 µs an object) and as rare as the heap's doublings.
    """

    def __init__(self, full_growth: float = 1.0) -> None:
        self.full_growth = full_growth
        self.baseline: int | None = None

    def step(self) -> Collection:
        started = time.perf_counter()
        if self.baseline is None or gc.get_freeze_count() > self.baseline * (1 + self.full_growth):
            gc.disable()
            gc.unfreeze()
            freed, kind = gc.collect(), "full"
        else:
            freed, kind = gc.collect(0), "young"
        gc.freeze()
        if kind == "full":
            self.baseline = gc.get_freeze_count()
        return Collection(kind, time.perf_counter() - started, freed)
