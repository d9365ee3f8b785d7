"""``holds D``: trigger and clear readings, stale readings, and the firing time."""

from __future__ import annotations

from pathlib import Path

from rules.ops.holds import HoldsOp, HoldsState, satisfies
from rules.pack import Condition
from rules.timers import FIRE
from tests.rules.harness import Harness, T


def test_a_reading_meets_a_condition_by_state_or_by_a_value_strictly_past_a_bound() -> None:
    cond = Condition(frozenset({"off"}), value_above=40.0, value_below=None)
    assert satisfies(cond, "off", None)
    assert satisfies(cond, None, 40.5)
    assert not satisfies(cond, None, 40.0)
    assert not satisfies(cond, "on", 10.0)
    assert not satisfies(cond, None, None)


def test_trigger_starts_once_clear_ends_and_older_readings_are_stale() -> None:
    st = HoldsState()
    assert not st.stale(100)
    assert st.trigger(100) and (st.start, st.running) == (100, True)
    assert not st.trigger(200)              # already running: not a new episode
    assert st.stale(50)                     # older than the newest applied
    assert not st.stale(300)
    assert st.clear() and not st.running
    assert not st.clear()


def test_the_logic_fires_at_fire_at(tmp_path: Path) -> None:
    rule = next(r for r in Harness(tmp_path).rules.rules if r.id == "light.out")
    op = HoldsOp(rule)
    assert (op.rank, op.duration) == (FIRE, 3_600_000)
    assert op.ttl(lateness=300_000) == max(3_600_000, rule.cooldown_ms)
    st = op.new_state()
    assert op.due(st) is None
    st.trigger(T("20:00:00"))
    st.fire_at = T("21:00:00")
    assert op.due(st) == T("21:00:00")
    copied = op.snapshot(st)
    st.clear()
    assert copied.running and copied.fire_at == T("21:00:00")
