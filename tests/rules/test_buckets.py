"""The de-duplication memory and reorder buffer in buckets: each entry written about once,
and no state record that grows with the input."""

from __future__ import annotations

import pickle
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from rules.buckets import Buckets
from rules.engine import Engine, restore, snapshot
from tests.rules.harness import Harness, T


def _until(entries: list[tuple[str, int]]) -> int:
    """Entries (name, the last progress it is live at): the bucket's last."""
    return max(until for _, until in entries)


def test_new_entries_fill_numbered_buckets_that_live_until_their_last_entry() -> None:
    b: Buckets[tuple[str, int]] = Buckets(_until, size=3)
    a, bb, c, d = ("a", 10), ("b", 30), ("c", 20), ("d", 5)
    assert b.add([a, bb, c, d]) == {0: [a, bb, c], 1: [d]}       # at most three a bucket
    assert b.live(5) == {0: [a, bb, c], 1: [d]}
    assert b.live(6) == {0: [a, bb, c]}        # bucket 1's last entry left at 5: deleted
    assert b.add([]) == {} and list(b.live(30)) == [0]
    assert b.live(31) == {}
    assert b.add([("e", 40)]) == {2: [("e", 40)]}                 # numbering goes on


def test_restored_buckets_keep_their_numbers_and_an_empty_one_is_deleted() -> None:
    b: Buckets[tuple[str, int]] = Buckets(_until)
    b.load(4, [("u", 100)])
    b.load(7, [])                              # none of its entries was live
    assert b.live(0) == {4: [("u", 100)]}      # so bucket 7's record goes at the next checkpoint
    assert b.add([("x", 1)]) == {8: [("x", 1)]}


def test_an_entry_taken_out_is_written_again_without_it() -> None:
    b: Buckets[tuple[str, int]] = Buckets(_until, size=2)
    a, bb, c = ("a", 10), ("b", 30), ("c", 20)
    assert b.add([a, bb, c]) == {0: [a, bb], 1: [c]}
    assert b.remove(bb) and b.remove(c) and not b.remove(("z", 1))
    assert b.live(0) == {0: [a]}               # bucket 1 emptied: its record goes
    assert b.add([]) == {0: [a]}               # bucket 0 written again, once
    assert b.add([]) == {}


def test_entries_of_several_items_are_bucketed_whole() -> None:
    """The de-duplication memory's entries are three items each in a flat list."""
    b: Buckets[object] = Buckets(lambda items: max(items[1::2]), size=2, stride=2)  # type: ignore[type-var]
    assert b.add(["a", 10, "b", 30, "c", 20]) == {0: ["a", 10, "b", 30], 1: ["c", 20]}
    assert b.live(21) == {0: ["a", 10, "b", 30]}
    with pytest.raises(ValueError, match="not taken out"):
        b.remove("a")


def test_an_input_withdrawn_after_a_checkpoint_wrote_it_stays_out(tmp_path: Path) -> None:
    """The runtime withdraws a quarantined input from a restored engine: the next checkpoint
    must not leave it in a record for the restore after to bring back."""
    h = Harness(tmp_path, track_changes=True)
    for n in range(4):            # newer than the watermark: all four wait in the reorder buffer
        h.cam(T("10:00:00") + n * 100, track=f"t{n}")
    store: dict[tuple[str, ...], bytes] = {}

    def checkpoint(engine: Engine) -> None:
        records, deleted = snapshot(engine, changed_only=True)
        store.update(records)
        for key in deleted:
            del store[key]

    checkpoint(h.engine)
    assert len(_entries(store)["pending"]) == 4
    culprit = h.engine.pending[0][4]
    assert h.engine.withdraw(culprit)
    checkpoint(h.engine)
    fresh = Engine(h.city, h.rules, track_changes=True)
    restore(fresh, dict(store))
    assert sorted(e[3] for e in fresh.pending) == sorted(e[3] for e in h.engine.pending)
    assert len(fresh.pending) == 3 and all(e[4] != culprit for e in fresh.pending)


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
    again = snapshot(fresh)[0]                # written again as groups, bucket for bucket
    assert {k: pickle.loads(v) for k, v in again.items()} == {
        k: pickle.loads(v) for k, v in records.items()}
    assert len(_entries(again)["seen"]) > 10


def _entries(records: dict[tuple[str, ...], bytes]) -> dict[str, dict[Any, Any]]:
    """The bucketed records' entries, whatever the buckets: seen ones (written as groups) by
    (topic, grid, event id), pending ones by sequence number."""
    out: dict[str, dict[Any, Any]] = {"seen": {}, "pending": {}}
    for key, value in records.items():
        if key[0] == "seen":
            out["seen"].update({(*group, eid): expiry
                                for group, ids in pickle.loads(value).items() for eid, expiry in ids.items()})
        elif key[0] == "pending":
            out["pending"].update(pickle.loads(value))
    return out


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
            if n % 500 == 499:   # what a restart would read back, and go on from
                fresh = Engine(h.city, h.rules, track_changes=True)
                restore(fresh, store)
                assert fresh.remembered() == engine.remembered()
                assert fresh.sizes().dedup_ids == len(engine.remembered())   # nothing else held
                assert sorted(e[3] for e in fresh.pending) == sorted(e[3] for e in engine.pending)
                h.replay.engine = engine = fresh
    assert peak > 500 and engine.stats.late == Counter()
    # the engine record no longer carries the de-duplication memory or the reorder buffer
    assert max(engine_sizes) < 1_000
    # each input enters the de-duplication memory and the reorder buffer once: written once,
    # restarts or not
    assert written["seen"] == inputs
    assert written["pending"] == inputs


def test_a_bucket_goes_once_none_of_its_entries_is_live(tmp_path: Path) -> None:
    """An entry forgotten by the second (A expired earlier in the second progress is in, and is
    still in ``seen``) holds its bucket no longer than a restore would keep it: the record goes
    at the next checkpoint. One that a checkpoint of before this change kept (it deleted a
    bucket only once its entries had left ``seen``) goes after a restore."""
    h = Harness(tmp_path, track_changes=True)
    store: dict[tuple[str, ...], bytes] = {}

    def checkpoint() -> None:
        records, deleted = snapshot(h.replay.engine, changed_only=True)
        store.update(records)
        for key in deleted:
            del store[key]
        progress = h.replay.engine.progress
        for key, value in store.items():     # no record without a live entry
            if key[0] == "seen":
                assert max(max(ids.values()) for ids in pickle.loads(value).values()) >= progress
            elif key[0] == "pending":
                assert max(entry[0] for entry in pickle.loads(value).values()) > progress

    h.sensor(T("10:00:00"), "mh-1", "manhole_cover", state="ok", eid="A")
    checkpoint()
    first = dict(store)
    assert ("seen", "0") in first
    h.sensor(T("10:01:10.500"), "mh-1", "manhole_cover", state="ok", eid="B")
    checkpoint()
    assert ("seen", "0") not in store and all(k[1] != "A" for k in h.engine.remembered())
    store[("seen", "0")] = first[("seen", "0")]     # as a checkpoint of before kept it
    fresh = Engine(h.city, h.rules, track_changes=True)
    restore(fresh, dict(store))
    h.replay.engine = fresh
    h.sensor(T("10:02:30"), "mh-1", "manhole_cover", state="ok")
    checkpoint()
    assert ("seen", "0") not in store


def test_an_id_remembered_again_is_written_once_with_its_new_expiry(tmp_path: Path) -> None:
    """X's entry expires at 10:01:05 (input + reorder window + lateness); progress passes it
    within that second, before the second is forgotten, and X comes again: X is remembered
    anew, and both expiry lists hold it. The checkpoint writes it once, as it is now (and no
    bucket lives on for the stale one)."""
    h = Harness(tmp_path, track_changes=True)
    h.engine.seen_buckets.size = 1            # an entry a bucket: written twice, it would show
    snapshot(h.engine, changed_only=True)
    h.sensor(T("10:00:00"), "mh-1", "manhole_cover", state="ok", eid="X")
    h.sensor(T("10:01:10.200"), "mh-1", "manhole_cover", state="ok", eid="B")
    h.sensor(T("10:01:10.300"), "mh-1", "manhole_cover", state="ok", eid="X")
    assert h.engine.stats.duplicates == Counter()
    records, _ = snapshot(h.engine, changed_only=True)
    written = [expiry for key, value in records.items() if key[0] == "seen"
               for ids in pickle.loads(value).values() for eid, expiry in ids.items() if eid == "X"]
    assert written == [T("10:01:10.300") + 65_000]
