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
    assert collector.step(0.0).kind == "full"   # the first step collects everything once
    assert not gc.isenabled()                  # from now on only steps collect
    garbage = Node()
    ref = weakref.ref(garbage)
    del garbage
    done = collector.step(0.25)
    assert done.kind == "young" and ref() is None and done.freed >= 1
    frozen = gc.get_freeze_count()
    survivors = [Node() for _ in range(100)]
    collector.step(0.5)
    assert gc.get_freeze_count() >= frozen + len(survivors)   # frozen out of the next steps
    assert collector.step(0.75).kind == "young"


def test_a_cycle_that_died_after_it_was_frozen_is_freed_by_the_next_full_collection() -> None:
    collector = WorkerCollector(full_every_s=600.0)
    collector.step(1000.0)
    late = Node()
    ref = weakref.ref(late)
    collector.step(1000.25)                     # frozen while alive
    del late
    assert collector.step(1000.5).kind == "young" and ref() is not None   # young steps cannot see it
    assert collector.step(1599.0).kind == "young"
    done = collector.step(1600.0)
    assert done.kind == "full" and ref() is None and done.live and done.live > 0
