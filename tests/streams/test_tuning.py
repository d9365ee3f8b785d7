"""The worker's garbage collector policy: short young collections, a full one when the heap
has grown, cycles freed either way."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from streams.tuning import WorkerCollector


class Node:
    def __init__(self) -> None:
        self.me = self   # a reference cycle: only the cyclic collector frees it


@pytest.fixture(autouse=True)
def restore_gc() -> Iterator[None]:
    enabled = gc.isenabled()
    yield
    gc.unfreeze()
    if enabled:
        gc.enable()


def test_young_steps_free_new_cycles_and_freeze_the_survivors() -> None:
    collector = WorkerCollector()
    assert collector.step(0.0).kind == "full"      # the first step takes the baseline
    assert not gc.isenabled()                  # from now on only steps collect
    garbage = Node()
    ref = weakref.ref(garbage)
    del garbage
    done = collector.step(0.0)
    assert done.kind == "young" and ref() is None and done.freed >= 1
    survivor = [Node()]
    collector.step(0.0)
    assert gc.is_tracked(survivor[0]) and gc.get_freeze_count() >= collector.baseline
    assert collector.step(0.0).kind == "young"     # the heap did not grow: no full collection


def test_a_cycle_that_died_after_it_was_frozen_is_freed_by_the_next_full_collection() -> None:
    collector = WorkerCollector(full_growth=1.5, check_every=1)
    collector.step(0.0)
    late = Node()
    ref = weakref.ref(late)
    collector.step(0.0)                            # frozen while alive
    del late
    assert collector.step(0.0).kind == "young" and ref() is not None   # young steps cannot see it
    assert collector.baseline is not None
    grown = [[] for _ in range(collector.baseline // 2 + 1)]   # the heap grows by half
    assert collector.step(0.0).kind == "young"    # what grew is frozen first ...
    done = collector.step(0.0)                    # ... and counted at the next step
    assert done.kind == "full" and ref() is None
    assert collector.baseline >= len(grown)


def test_a_big_batch_of_new_objects_is_collected_in_full_at_once() -> None:
    """A restored partition: one full collection, not a young one that scans all of it first."""
    collector = WorkerCollector(full_growth=1.5)
    collector.step(0.0)
    assert collector.baseline is not None
    loaded = [[] for _ in range(int(collector.baseline * 1.6))]
    assert collector.step(0.0).kind == "full"
    assert collector.baseline >= len(loaded)


def test_a_full_collection_comes_at_least_every_interval() -> None:
    collector = WorkerCollector(full_every_s=600.0)
    assert collector.step(1000.0).kind == "full"
    assert collector.step(1599.0).kind == "young"
    assert collector.step(1600.0).kind == "full"
