"""State records: bounded in size, and a death after any record of a step leaves either the
state before the step or, once its journal is written, the state after it."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.statelog import CorruptState, StateLog, apply

CHUNK = 64
KEYS = [f"7\x1f{name}" for name in ("engine", "grid\x1fa", "grid\x1fb", "outbox", "meta")]

values = st.one_of(st.none(), st.binary(min_size=0, max_size=300))
steps = st.lists(st.dictionaries(st.sampled_from(KEYS), values, min_size=1, max_size=5),
                 min_size=1, max_size=8)


def logical_after(state: dict[str, bytes], changes: dict[str, bytes | None]) -> dict[str, bytes]:
    out = dict(state)
    for k, v in changes.items():
        if v is None:
            out.pop(k, None)
        else:
            out[k] = v
    return out


def load(store: dict[str, bytes]) -> tuple[dict[str, bytes], StateLog]:
    """Load as a restarted worker does: write the repairs, then the store must be settled."""
    log = StateLog("7\x1f", CHUNK)
    got, repairs = log.load(store)
    apply(store, repairs)
    again, more = StateLog("7\x1f", CHUNK).load(store)
    assert again == got and more == []          # repairs finish the job, once
    return got, log


@settings(max_examples=150, deadline=None)
@given(steps)
def test_every_record_is_small_and_the_state_reads_back(changes_list: list[dict[str, bytes | None]]) -> None:
    log = StateLog("7\x1f", CHUNK)
    store: dict[str, bytes] = {}
    expected: dict[str, bytes] = {}
    for offset, changes in enumerate(changes_list):
        records = log.commit(offset, changes)
        assert all(v is None or len(v) <= CHUNK + 1 for _, v in records)   # tag byte + chunk
        apply(store, records)
        expected = logical_after(expected, changes)
    got, restored = load(store)
    assert got == expected
    assert restored.committed == len(changes_list) - 1
    names = {k.split("\x1e")[0] for k in store}
    assert names <= set(KEYS) | {"7\x1f~journal", "7\x1f~commit"}   # no orphaned chunks


@settings(max_examples=150, deadline=None)
@given(steps, st.data())
def test_a_death_after_any_record_of_a_step_leaves_before_or_after(
        changes_list: list[dict[str, bytes | None]], data: st.DataObject) -> None:
    log = StateLog("7\x1f", CHUNK)
    store: dict[str, bytes] = {}
    state: dict[str, bytes] = {}
    for offset, changes in enumerate(changes_list):
        records = log.commit(offset, changes)
        after = logical_after(state, changes)
        cut = data.draw(st.integers(0, len(records)), label=f"cut of step {offset}")
        crashed = dict(store)
        apply(crashed, records[:cut])
        got, restored = load(crashed)
        journal_written = any(k == "7\x1f~journal" for k, _ in records[:cut])
        assert got == (after if journal_written else state)
        assert restored.committed == (offset if journal_written else offset - 1)
        # the restarted worker carries on from the repaired store, and stays consistent
        if journal_written:
            nxt = restored.commit(offset + 1, {KEYS[1]: b"x" * 100})
            apply(crashed, nxt)
            got2, _ = load(crashed)
            assert got2 == logical_after(after, {KEYS[1]: b"x" * 100})
        apply(store, records)
        state = after


def test_a_big_value_cleared_outside_a_step_leaves_no_chunks_even_when_interrupted() -> None:
    log = StateLog("7\x1f", CHUNK)
    store: dict[str, bytes] = {}
    apply(store, log.commit(0, {KEYS[3]: bytes(range(200))}))
    records = log.write({KEYS[3]: None})
    assert records[0] == (KEYS[3], None) and len(records) == 1 + 4   # head first, then chunks
    for cut in range(len(records) + 1):
        crashed = dict(store)
        apply(crashed, records[:cut])
        got, _ = load(crashed)
        assert got == ({} if cut else {KEYS[3]: bytes(range(200))})
        assert not any(k.startswith(KEYS[3] + "\x1e") for k in crashed) or cut == 0


def test_a_missing_chunk_is_a_clear_error() -> None:
    log = StateLog("7\x1f", CHUNK)
    store: dict[str, bytes] = {}
    apply(store, log.commit(0, {KEYS[0]: b"y" * 500}))
    del store[next(k for k in store if k.startswith(KEYS[0] + "\x1e"))]
    with pytest.raises(CorruptState, match="chunks"):
        StateLog("7\x1f", CHUNK).load(store)


def test_other_partitions_records_are_not_read() -> None:
    log = StateLog("7\x1f", CHUNK)
    store = {"17\x1fengine": b"vzzz", "8\x1fengine": b"vzzz"}
    apply(store, log.commit(0, {KEYS[0]: b"a"}))
    got, _ = StateLog("7\x1f", CHUNK).load(store)
    assert got == {KEYS[0]: b"a"}
