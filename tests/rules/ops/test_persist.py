"""``persist D gap G``: the state's steps, and its logic's timer and copy."""

from __future__ import annotations

from pathlib import Path

from rules.ops.persist import PersistOp, PersistState
from rules.timers import END
from tests.rules.harness import Harness, T

D, G = 600_000, 120_000


def test_an_episode_fires_at_d_and_ends_at_the_last_sighting_plus_the_gap() -> None:
    st = PersistState()
    assert st.observe(0, D, G) == (True, False)
    assert st.observe(D - 1, D, G) == (False, False)
    assert st.end_due(G) == D - 1 + G
    assert st.observe(D, D, G) == (False, True)
    assert st.observe(D + 1, D, G) == (False, False)   # it fired once
    st.end()
    assert not st.running and st.end_due(G) is None


def test_a_late_sighting_completes_d_but_never_moves_the_start() -> None:
    st = PersistState()
    st.observe(100_000, D, G)
    assert st.observe(50_000, D, G) == (False, False)
    assert st.start == 100_000 and st.last == 100_000


def test_a_sighting_inside_an_ended_episode_does_not_revive_it() -> None:
    st = PersistState()
    st.observe(0, D, G)
    st.end()
    assert st.observe(G, D, G) is None                 # at last + gap: inside the ended episode
    assert st.observe(G + 1, D, G) == (True, False)    # after it: a new episode


def test_the_logic_reads_its_config(tmp_path: Path) -> None:
    rule = next(r for r in Harness(tmp_path).rules.rules if r.id == "vend.main")
    op = PersistOp(rule)
    assert (op.rank, op.duration, op.gap) == (END, D, G)
    assert op.ttl(lateness=300_000) == max(D, G, rule.cooldown_ms)
    st = op.new_state()
    st.observe(T("10:00:00"), D, G)
    assert op.due(st) == T("10:02:00")
    copied = op.snapshot(st)
    st.observe(T("10:01:00"), D, G)
    assert copied.last == T("10:00:00") and op.restore(copied) is copied
