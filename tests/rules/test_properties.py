"""Properties of the contract's Guarantee, checked on random streams (hypothesis):
output is unchanged by duplicate delivery, by reordering within the reorder window, by
snapshot/restore at any point and by partitioning by grid; ids are stable across runs."""

from __future__ import annotations

import os
import pickle
import random
import tempfile
from collections import defaultdict
from pathlib import Path
from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rules.engine import Engine, Snapshot, restore, snapshot, take
from rules.replay import Replay
from tests.rules.harness import Harness, T, iso

RULES_EXTRA = """
  - id: vend.merge
    category: vendor_stall
    severity: minor
    source: camera
    match: {labels: [vendor_stall]}
    persist: {duration: 2m, gap: 1m}
    merge_radius: 30m
    cooldown: 5m
    policy: hot
"""
# CITYORDER_PROPERTY_EXAMPLES raises the effort for a deeper search than CI's.
PROPS = settings(max_examples=int(os.environ.get("CITYORDER_PROPERTY_EXAMPLES", "25")), deadline=None,
                 suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
# A TemporaryDirectory object, not mkdtemp: its finalizer removes the folder when pytest exits.
_TMPDIR = tempfile.TemporaryDirectory(prefix="cityorder-props-")
TMP = Path(_TMPDIR.name)


def _harness(**kw: Any) -> Harness:
    from tests.rules.harness import RULES
    return Harness(TMP, rules=RULES + RULES_EXTRA, **kw)


def stream(seed: int) -> list[tuple[int, bytes]]:
    """A random morning of the test city, with feedback on the alerts it opens."""
    rng = random.Random(seed)
    h = _harness(feed=False)
    t = T("09:50:00") + rng.randrange(0, 600_000)
    timeline: list[int] = []
    for _ in range(rng.randrange(80, 260)):
        t += rng.choice((0, 1000, 15_000, 30_000, 60_000, 110_000, 190_000))
        r = rng.random()
        if r < 0.45:
            label = rng.choice(("street_vendor", "vendor_stall", "street_vendor"))
            loc = rng.choice((None, (30.005, 104.005), (30.00502, 104.00501), (30.005, 104.001),
                              (30.001, 104.008), (30.005, 104.015)))
            h.cam(t, track=rng.choice(("t1", "t2", "t3", None)), label=label,
                  conf=rng.choice((0.4, 0.8, 0.95)), cam=rng.choice(("cam-1", "cam-2")), loc=loc)
        elif r < 0.55:
            h.cam(t, cam=rng.choice(("cam-1", "cam-2")), detections=[])
        elif r < 0.65:
            h.sensor(t, "mh-1", "manhole_cover", state=rng.choice(("open", "ok", "tilted", "ok")))
        elif r < 0.75:
            h.sensor(t, "sl-1", "streetlight", state=rng.choice(("off", "on", "fault")))
        else:
            h.report(t, source=rng.choice(("hotline", "app", "inspector")),
                     grid_id=rng.choice((None, "G-1", "G-2")),
                     loc=rng.choice(((30.002, 104.004), (30.002, 104.014))))
        timeline.append(t)
    events = list(zip(timeline, h.lines, strict=True))
    # Feedback on the alerts a first run opens: the closed loop.
    alerts = run([line for _, line in events])
    fb = _harness(feed=False)
    actions = ("acknowledge", "dispatch", "resolve", "reject", "defer", "verify", "reopen")
    for a in alerts:
        if a["transition"] != "opened" or rng.random() < 0.3:
            continue
        at = _ms(a["at"])
        for _ in range(rng.randrange(1, 4)):
            at += rng.choice((30_000, 120_000, 600_000))
            action = rng.choice(actions)
            extra = {"until": at + rng.choice((60_000, 1_200_000))} if action == "defer" else {}
            fb.fb(at, a["alert_id"], action, **extra)
            events.append((at, fb.lines[-1]))
    events.sort(key=lambda e: e[0])
    return events


def _ms(text: str) -> int:
    from models.timestamps import parse_timestamp_ms
    return parse_timestamp_ms(text)


def run(lines: list[bytes], engine: Engine | None = None, until: int | None = None,
        snapshot_at: int | None = None) -> list[dict[str, Any]]:
    h = _harness(feed=False)
    out: list[dict[str, Any]] = []
    replay = Replay(h.city, h.rules, on_alert=out.append, on_dead=lambda d: None, engine=engine,
                    partitions=1)
    for n, line in enumerate(lines, 1):
        if snapshot_at is not None and n == snapshot_at:
            records, _ = snapshot(replay.engine)
            records = {k: bytes(v) for k, v in records.items()}   # as stored
            fresh = Engine(h.city, h.rules)
            restore(fresh, records)
            replay.engine = fresh
        replay.line(line, n)
    replay.finish(until)
    return out


def by_alert(messages: list[dict[str, Any]]) -> dict[str, list[bytes]]:
    grouped: dict[str, list[bytes]] = defaultdict(list)
    for m in messages:
        compared = {k: v for k, v in m.items() if k != "emitted_at"}
        grouped[m["alert_id"]].append(orjson.dumps(compared, option=orjson.OPT_SORT_KEYS))
    return dict(grouped)


@PROPS
@given(st.integers(0, 10_000))
def test_ids_and_output_are_stable_across_runs(seed: int) -> None:
    lines = [line for _, line in stream(seed)]
    assert run(lines) == run(lines)


@PROPS
@given(st.integers(0, 10_000), st.randoms(use_true_random=False))
def test_duplicate_delivery_changes_nothing(seed: int, rnd: random.Random) -> None:
    lines = [line for _, line in stream(seed)]
    expected = run(lines)
    duplicated: list[bytes] = []
    for i, line in enumerate(lines):
        duplicated.append(line)
        if rnd.random() < 0.3:  # redeliver this one now or a few messages later
            j = min(len(lines) - 1, i + rnd.randrange(0, 4))
            duplicated.append(lines[j] if j == i else line)
    assert run(duplicated) == expected


@PROPS
@given(st.integers(0, 10_000), st.randoms(use_true_random=False))
def test_reordering_within_the_reorder_window_changes_nothing(seed: int, rnd: random.Random) -> None:
    events = stream(seed)
    expected = run([line for _, line in events])
    # Jitter below the 5 s window: nothing arrives after an input 5 s or more newer than it.
    shuffled = sorted(events, key=lambda e: e[0] + rnd.randrange(0, 4_999))
    assert by_alert(run([line for _, line in shuffled])) == by_alert(expected)


@PROPS
@given(st.integers(0, 10_000), st.floats(0, 1))
def test_snapshot_and_restore_at_any_point_changes_nothing(seed: int, where: float) -> None:
    lines = [line for _, line in stream(seed)]
    expected = run(lines)
    cut = 1 + int(where * (len(lines) - 1))
    assert run(lines, snapshot_at=cut) == expected


@PROPS
@given(st.integers(0, 10_000))
def test_partitioning_by_grid_changes_nothing(seed: int) -> None:
    events = stream(seed)
    lines = [line for _, line in events]
    until = max(t for t, _ in events)
    expected = by_alert(run(lines, until=until))
    h = _harness(feed=False)
    parts: dict[str, list[bytes]] = defaultdict(list)
    for line in lines:
        obj = orjson.loads(line)
        value = obj["value"]
        if obj["topic"] == "city.alerts.feedback":
            grid = value["alert_id"][2:-21]
            parts[grid].append(line)
            continue
        # Send each grid the message; ingest keeps that grid's share (as a partition would).
        for grid in h.city.grids:
            parts[grid].append(orjson.dumps({**obj, "_grid": grid}))
    combined: dict[str, list[bytes]] = {}
    for grid, glines in parts.items():
        out = run_grid(grid, glines, until)
        combined.update(by_alert(out))
    assert combined == expected


def run_grid(grid: str, lines: list[bytes], until: int) -> list[dict[str, Any]]:
    """One partition's engine: it gets only its grid's parts of each message."""
    from models.decode import TOPIC_SOURCES
    from rules.ingest import Ingest
    from rules.replay import parse_line

    h = _harness(feed=False)
    engine = Engine(h.city, h.rules)
    ingest = Ingest(h.city, h.rules)
    out: list[Any] = []
    for n, line in enumerate(lines, 1):
        obj = orjson.loads(line)
        obj.pop("_grid", None)
        msg = parse_line(orjson.dumps(obj), "x", n)
        result = ingest(TOPIC_SOURCES[msg.topic], msg.topic, msg.payload)
        if isinstance(result, list):
            for part in result:
                if part.grid_id == grid:
                    out += engine.feed(part)
    out += engine.finish(until)
    return [m for m in out if isinstance(m, dict)]


def test_stream_generator_exercises_the_lifecycle() -> None:
    """The properties above mean little if the random streams open no alerts: check they do."""
    kinds: set[str] = set()
    for seed in range(8):
        kinds |= {a["transition"] for a in run([line for _, line in stream(seed)])}
    assert {"opened", "updated", "cleared", "escalated", "acknowledged", "resolved",
            "deferred"} <= kinds, kinds


def test_iso_helper_round_trips() -> None:
    assert _ms(iso(T("10:00:00.123"))) == T("10:00:00.123")


@PROPS
@given(st.integers(0, 10_000), st.lists(st.floats(0, 1), min_size=1, max_size=6))
def test_changed_only_snapshots_keep_a_store_equal_to_a_full_snapshot(seed: int,
                                                                      cuts: list[float]) -> None:
    """What the runtime relies on: writing only what changed (and deleting what went) keeps
    its tables equal to the engine's whole state (as read back by a restore)."""
    lines = [line for _, line in stream(seed)]
    h = _harness(feed=False)
    engine = Engine(h.city, h.rules, track_changes=True)
    replay = Replay(h.city, h.rules, on_alert=lambda a: None, on_dead=lambda d: None, engine=engine)
    points = sorted({1 + int(c * (len(lines) - 1)) for c in cuts} | {len(lines)})
    store: dict[tuple[str, ...], bytes] = {}
    for n, line in enumerate(lines, 1):
        replay.line(line, n)
        if n in points:
            records, deleted = snapshot(engine, changed_only=True)
            store.update(records)
            for key in deleted:
                del store[key]
            full, _ = snapshot(engine)
            assert store.keys() == full.keys()
            for key, value in full.items():
                if key[0] not in ("seen", "pending"):
                    assert store[key] == value
            # buckets keep entries that left after they were written; a restore skips them
            fresh = Engine(h.city, h.rules, track_changes=True)
            restore(fresh, store)
            assert fresh.remembered() == engine.remembered()
            assert fresh.sizes().dedup_ids == len(engine.remembered())   # nothing else held
            assert sorted(e[:4] for e in fresh.pending) == sorted(e[:4] for e in engine.pending)


@PROPS
@given(st.integers(0, 10_000), st.lists(st.floats(0, 1), min_size=1, max_size=6))
def test_a_snapshot_pickled_later_holds_the_state_it_was_taken_at(seed: int, cuts: list[float]) -> None:
    """What lets the runtime pickle a checkpoint while evaluation goes on: what the engine does
    after ``take`` does not reach the snapshot. Two engines get the same input; one's snapshot
    is pickled only after the input up to the next cut, the other's at once."""
    lines = [line for _, line in stream(seed)]
    h = _harness(feed=False)
    later, now = (Engine(h.city, h.rules, track_changes=True) for _ in range(2))
    replays = [Replay(h.city, h.rules, on_alert=lambda a: None, on_dead=lambda d: None, engine=e)
               for e in (later, now)]
    points = sorted({1 + int(c * (len(lines) - 1)) for c in cuts})
    pending: list[tuple[Snapshot, tuple[dict[tuple[str, ...], bytes], list[tuple[str, ...]]]]] = []
    compared = 0

    def compare() -> int:
        n = 0
        for taken, (records, deleted) in pending:
            assert {k: pickle.loads(v) for k, v in taken.records()} == \
                {k: pickle.loads(v) for k, v in records.items()}
            assert taken.deleted == deleted
            n += len(records)
        return n

    for n, line in enumerate(lines, 1):
        for replay in replays:
            replay.line(line, n)
        if n in points:
            compared += compare()
            pending = [(take(later, changed_only=True), snapshot(now, changed_only=True))]
    for replay in replays:
        replay.finish()
    compared += compare()
    assert compared
