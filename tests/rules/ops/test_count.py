"""``count N within W by K``: the window, its end, its bounds, and the logic around it."""

from __future__ import annotations

from pathlib import Path

from rules.ops.count import CountOp, CountState
from rules.timers import END
from tests.rules.harness import Harness, T

W = 3_600_000


def test_n_distinct_keys_within_w_fire_once_and_the_window_ends_when_the_nth_newest_leaves() -> None:
    st = CountState()
    assert st.observe("a", 0, "e1", None, 3, W, 100) == (False, False)
    assert st.observe("a", 10, "e2", None, 3, W, 100) == (False, False)   # the same key again
    assert st.observe("b", 20, "e3", None, 3, W, 100) == (False, False)
    assert st.observe("c", 30, "e4", None, 3, W, 100) == (False, True)
    assert (st.running, st.start) == (True, 30)
    assert st.observe("d", 40, "e5", None, 3, W, 100) == (True, False)
    # newest four: d 40, c 30, b 20, a 10; the third newest (b) leaves at 20 + W
    assert st.end_due(3, W) == 20 + W


def test_a_key_outside_the_window_does_not_count() -> None:
    st = CountState()
    st.observe("a", 0, "e1", None, 2, W, 100)
    assert st.observe("b", W, "e2", None, 2, W, 100) == (False, False)   # (W - W, W]: a is out
    assert st.observe("c", W, "e3", None, 2, W, 100) == (False, True)
    assert [e[1] for e in st.window(W, W)] == ["e2", "e3"]


def test_a_key_keeps_its_newest_event_and_the_entries_are_capped() -> None:
    st = CountState()
    st.observe("a", 50, "e2", None, 2, W, 3)
    st.observe("a", 40, "e1", None, 2, W, 3)       # older: does not replace
    assert st.entries["a"][:2] == (50, "e2")
    for i, key in enumerate("bcdef"):
        st.observe(key, 100 + i, f"x{i}", None, 2, W, 3)
    assert sorted(st.entries) == ["d", "e", "f"]   # the three newest
    st.expire(102)
    assert sorted(st.entries) == ["e", "f"]


def test_the_logic_keeps_idle_subjects_for_the_allowed_lateness_too(tmp_path: Path) -> None:
    rule = next(r for r in Harness(tmp_path).rules.rules if r.id == "report.repeat")
    op = CountOp(rule)
    assert (op.rank, op.n, op.within, op.by) == (END, 3, W, "grid")
    assert op.ttl(lateness=300_000) == max(W, rule.cooldown_ms) + 300_000
    st = op.new_state()
    for i, key in enumerate("abc"):
        st.observe(key, T("10:00:00") + i, f"e{i}", None, 3, W, 100)
    assert op.due(st) == T("10:00:00") + W
    copied = op.snapshot(st)                     # its entries are its own
    st.observe("d", T("10:10:00"), "e9", None, 3, W, 100)
    assert sorted(copied.entries) == ["a", "b", "c"]
