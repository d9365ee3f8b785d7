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
    assert collector.step().kind == "full"      # the first step takes the baseline
    assert not gc.isenabled()                  # from now on only steps collect
    garbage = Node()
    ref = weakref.ref(garbage)
    del garbage
    done = collector.step()
    assert done.kind == "young" and ref() is None and done.freed >= 1
    survivor = [Node()]
    collector.step()
    assert gc.is_tracked(survivor[0]) and gc.get_freeze_count() >= collector.baseline
    assert collector.step().kind == "young"     # the heap did not grow: no full collection


def test_a_cycle_that_died_after_it_was_frozen_is_freed_by_the_next_full_collection() -> None:
    collector = WorkerCollector(full_growth=0.5)
    collector.step()
    late = Node()
    ref = weakref.ref(late)
    collector.step()                            # frozen while alive
    del late
    assert collector.step().kind == "young" and ref() is not None   # young steps cannot see it
    assert collector.baseline is not None
    grown = [[] for _ in range(collector.baseline // 2 + 1)]   # the heap grows by half
    assert collector.step().kind == "young"    # what grew is frozen first ...
    done = collector.step()                    # ... and counted at the next step
    assert done.kind == "full" and ref() is None
    assert collector.baseline >= len(grown)
