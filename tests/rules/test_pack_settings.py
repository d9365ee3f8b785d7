"""Pack-level settings reach what runs: the subject cap every engine is built with, declared
report categories that ingest accepts, and the vocabulary warnings a worker starts with."""

from __future__ import annotations

from pathlib import Path

from rules.engine import Engine
from streams.partitioned import PartitionEvaluator
from tests.rules.harness import POLICIES, Harness, T


def _tracks(h: Harness, n: int) -> None:
    """``n`` vendors with their own track ids on the main road of G-1, one a second."""
    for i in range(n):
        h.cam(T("10:00:00") + i * 1_000, track=f"fake-{i}")
    h.tick(T("10:00:30"))   # past the reorder window: every frame applied


def test_the_packs_subject_cap_bounds_a_replays_engine(tmp_path: Path) -> None:
    h = Harness(tmp_path, policies="subject_cap: 3\n" + POLICIES)
    assert h.engine.subject_cap == 3
    _tracks(h, 5)
    assert h.engine.stats.evicted == 2
    assert len(h.engine.grids["G-1"].lru) == 3


def test_without_the_setting_the_default_cap_stands(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    assert h.engine.subject_cap == 10_000
    _tracks(h, 5)
    assert h.engine.stats.evicted == 0


def test_an_explicit_cap_still_overrides_the_pack(tmp_path: Path) -> None:
    h = Harness(tmp_path, policies="subject_cap: 3\n" + POLICIES)
    assert Engine(h.city, h.rules, subject_cap=7).subject_cap == 7


def test_a_workers_partition_engine_takes_the_packs_cap(tmp_path: Path) -> None:
    """The worker builds its engines in PartitionEvaluator: the same cap as the replay, or the
    two would evict differently and live would differ from replay."""
    h = Harness(tmp_path, policies="subject_cap: 42\n" + POLICIES, feed=False)
    ev = PartitionEvaluator(h.city, h.rules, clock="event", partition=0, now=lambda: 0,
                            topic_of=lambda t: t)
    assert ev.engine.subject_cap == 42


def test_a_declared_report_category_is_accepted_by_ingest(tmp_path: Path) -> None:
    """A rule without match.categories takes any report category ingest accepts; a city's
    own category is accepted once a pack declares it, and still ignored (counted) if not."""
    rules = """
rules:
  - id: any.report
    category: reported
    severity: minor
    source: report
    count: {n: 1, within: 1h}
    policy: std
"""
    h = Harness(tmp_path, rules=rules, policies="categories: [rubble]\n" + POLICIES)
    h.report(T("10:00:00"), category="rubble")
    h.report(T("10:00:01"), category="rubbel", grid_id="G-2", loc=None)
    h.tick(T("10:00:30"))
    assert [(a["transition"], a["grid_id"]) for a in h.alerts] == [("opened", "G-1")]
    assert h.replay.ingest.ignored == {("category", "rubbel"): 1}
