"""The de-duplication memory and reorder buffer in buckets: each entry written about once,
and no state record that grows with the input."""

from __future__ import annotations

import pickle
from collections import Counter
from pathlib import Path

from rules.buckets import Buckets
from rules.engine import Engine, restore, snapshot
from tests.rules.harness import Harness, T


def test_a_bucket_is_written_when_sealed_and_dropped_when_empty() -> None:
    b: Buckets[str, int] = Buckets()
    b.add("a", 1)
    b.add("b", 2)
    assert b.seal() == {0: {"a": 1, "b": 2}}
    assert b.seal() == {}                         # nothing changed: nothing to write
    b.add("c", 3)
    b.discard("a")
    assert b.seal() == {2: {"c": 3}}               # a partly emptied bucket is not rewritten
    b.discard("b")
    assert b.seal() == {} and 0 not in b.buckets   # an empty one is gone (its record deleted)
    restored: Buckets[str, int] = Buckets()
    restored.load(1, {"c": 3})
    restored.add("d", 4)
    assert restored.seal() == {2: {"d": 4}}        # numbering carries on after the loaded ones


def test_a_big_batch_fills_several_buckets_of_bounded_size() -> None:
    b: Buckets[int, int] = Buckets(size=3)
    for n in range(7):
        b.add(n, n)
    assert b.seal() == {0: {0: 0, 1: 1, 2: 2}, 1: {3: 3, 4: 4, 5: 5}, 2: {6: 6}}
    b.add(7, 7)
    assert b.seal() == {3: {7: 7}}


def test_state_records_stay_small_and_each_input_is_written_about_once(tmp_path: Path) -> None:
    h = Harness(tmp_path, track_changes=True)
    engine = h.engine
    engine_sizes: list[int] = []
    written: Counter[str] = Counter()
    peak, inputs = 0, 6_000
    store: dict[tuple[str, ...], bytes] = {}
    for n in range(inputs):           # ten minutes of a camera at 10 frames/s, a little jitter
        h.cam(T("10:00:00") + n * 100 - (n % 7) * 300, track=f"t{n % 40}")
        peak = max(peak, len(engine.seen))
        if n % 10 == 9:
            records, deleted = snapshot(engine, changed_only=True)
            engine_sizes.append(len(records[("engine",)]))
            for key, value in records.items():
                if key[0] in ("seen", "pending"):
                    written[key[0]] += len(pickle.loads(value))
            store.update(records)
            for key in deleted:
                del store[key]
            if n % 500 == 499:   # what a restart would read back
                fresh = Engine(h.city, h.rules, track_changes=True)
                restore(fresh, store)
                assert fresh.seen == engine.remembered()
                assert sorted(e[3] for e in fresh.pending) == sorted(e[3] for e in engine.pending)
    assert peak > 500 and engine.stats.late == Counter()
    # the engine record no longer carries the de-duplication memory or the reorder buffer
    assert max(engine_sizes) < 1_000
    # each input enters the de-duplication memory and the reorder buffer once: written once
    assert written["seen"] == inputs
    assert written["pending"] == inputs
