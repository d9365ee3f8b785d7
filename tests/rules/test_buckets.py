"""The de-duplication memory and reorder buffer in buckets: each entry written about once,
and no state record that grows with the input."""

from __future__ import annotations

import pickle
from collections import Counter
from pathlib import Path

from rules.buckets import Buckets, GroupedBuckets
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


def test_grouped_keys_are_kept_nested_and_a_bucket_goes_when_its_last_group_empties() -> None:
    b: GroupedBuckets[str, str, int] = GroupedBuckets(size=3)
    b.add("g1", "a", 1)
    b.add("g2", "a", 2)               # the same key in another group is another entry
    assert b.seal() == {0: {"g1": {"a": 1}, "g2": {"a": 2}}}
    b.add("g1", "b", 3)
    b.add("g1", "c", 4)
    b.add("g2", "d", 5)               # the third entry fills the bucket
    b.add("g2", "e", 6)
    b.discard("g1", "a")
    assert b.seal() == {1: {"g1": {"b": 3, "c": 4}, "g2": {"d": 5}}, 2: {"g2": {"e": 6}}}
    b.discard("g2", "a")
    b.discard("g2", "zz")             # never added: nothing happens
    assert b.seal() == {} and 0 not in b.buckets
    restored: GroupedBuckets[str, str, int] = GroupedBuckets()
    restored.load(2, {"g2": {"e": 6}})
    restored.discard("g2", "e")
    restored.add("g1", "f", 7)
    assert restored.seal() == {3: {"g1": {"f": 7}}} and restored.buckets.keys() == {3}


def test_a_checkpoint_with_the_seen_entries_of_before_groups_restores(tmp_path: Path) -> None:
    """Records written before the groups hold ``{(topic, event id, grid): expiry}``."""
    h = Harness(tmp_path, track_changes=True)
    for n in range(50):
        h.cam(T("10:00:00") + n * 100, track=f"t{n % 5}")
    records, _ = snapshot(h.engine)
    old = dict(records)
    for key, value in records.items():
        if key[0] == "seen":
            old[key] = pickle.dumps({(topic, eid, grid): expiry
                                     for (topic, grid), ids in pickle.loads(value).items()
                                     for eid, expiry in ids.items()})
    assert old != records
    fresh = Engine(h.city, h.rules, track_changes=True)
    restore(fresh, old)
    assert fresh.remembered() == h.engine.remembered() and len(fresh.remembered()) > 10
    assert snapshot(fresh)[0] == records     # written again as groups, bucket for bucket


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
        peak = max(peak, engine.sizes().dedup_ids)
        if n % 10 == 9:
            records, deleted = snapshot(engine, changed_only=True)
            engine_sizes.append(len(records[("engine",)]))
            for key, value in records.items():
                if key[0] == "seen":   # {(topic, grid): {event id: expiry}}
                    written["seen"] += sum(map(len, pickle.loads(value).values()))
                elif key[0] == "pending":
                    written["pending"] += len(pickle.loads(value))
            store.update(records)
            for key in deleted:
                del store[key]
            if n % 500 == 499:   # what a restart would read back
                fresh = Engine(h.city, h.rules, track_changes=True)
                restore(fresh, store)
                assert fresh.remembered() == engine.remembered()
                assert fresh.sizes().dedup_ids == len(engine.remembered())   # nothing else held
                assert sorted(e[3] for e in fresh.pending) == sorted(e[3] for e in engine.pending)
    assert peak > 500 and engine.stats.late == Counter()
    # the engine record no longer carries the de-duplication memory or the reorder buffer
    assert max(engine_sizes) < 1_000
    # each input enters the de-duplication memory and the reorder buffer once: written once
    assert written["seen"] == inputs
    assert written["pending"] == inputs


def test_a_bucket_whose_entries_all_left_before_a_restore_is_deleted_after_it(tmp_path: Path) -> None:
    """An entry forgotten only by the restore (it expired earlier in the second progress was
    in, so it was still written) leaves its bucket empty: the bucket's record must not stay."""
    h = Harness(tmp_path, track_changes=True)
    store: dict[tuple[str, ...], bytes] = {}

    def checkpoint() -> None:
        records, deleted = snapshot(h.replay.engine, changed_only=True)
        store.update(records)
        for key in deleted:
            del store[key]

    h.sensor(T("10:00:00"), "mh-1", "manhole_cover", state="ok", eid="A")
    checkpoint()
    h.sensor(T("10:01:10.500"), "mh-1", "manhole_cover", state="ok", eid="B")
    checkpoint()
    assert ("seen", "0") in store and all(k[1] != "A" for k in h.engine.remembered())
    fresh = Engine(h.city, h.rules, track_changes=True)
    restore(fresh, dict(store))
    h.replay.engine = fresh
    for m in range(2, 10):
        h.sensor(T(f"10:{m:02d}:30"), "mh-1", "manhole_cover", state="ok")
        checkpoint()
    assert ("seen", "0") not in store
    assert all(fresh.seen_buckets.buckets.values()) and all(fresh.pending_buckets.buckets.values())
