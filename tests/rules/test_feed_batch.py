"""``Engine.feed_batch`` gives exactly what feeding the same parts one by one gives: outputs in
the same order, the same counts, on random streams with disorder beyond the reorder window
(late input), duplicates, redeliveries and feedback, cut into random batches."""

from __future__ import annotations

import pickle
import random
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from msgspec.structs import replace

from models.decode import TOPIC_SOURCES, BadInput
from rules.engine import Engine, take
from rules.ingest import Ingest
from rules.inputs import Input, Source
from rules.ops.silent import SilentOp
from rules.replay import parse_line
from tests.rules.harness import Harness, T
from tests.rules.test_properties import PROPS, _harness, stream


def ingested(h: Harness, lines: list[bytes]) -> list[list[Input] | BadInput]:
    """What ingest gives for each line (replay-file lines of one source partition)."""
    ingest = Ingest(h.city, h.rules)
    results: list[list[Input] | BadInput] = []
    for offset, line in enumerate(lines):
        msg = parse_line(line)
        assert msg.topic is not None
        results.append(ingest(TOPIC_SOURCES[msg.topic], msg.topic, msg.payload, key=msg.key,
                              partition=0, offset=offset))
    return results


def parts_of(lines: list[bytes], rng: random.Random) -> list[Input]:
    """The lines' parts as ingest gives them, then disturbed: neighbours swapped (some by more
    than the reorder window: late), messages sent twice at once or much later (duplicates, or
    late once forgotten) and a source partition's records read again from an earlier offset
    (a redelivery)."""
    per_line = [got for got in ingested(_harness(feed=False), lines) if isinstance(got, list)]
    for _ in range(len(per_line) // 8):
        i = rng.randrange(len(per_line))
        j = min(len(per_line) - 1, i + rng.choice((1, 2, 5, 20)))
        per_line[i], per_line[j] = per_line[j], per_line[i]
    parts = [p for group in per_line for p in group]
    out: list[Input] = []
    for k, part in enumerate(parts):
        out.append(part)
        r = rng.random()
        if r < 0.05:
            out.append(replace(part, offset=None))                 # the producer sent it twice
        elif r < 0.08 and k > 10:
            out.extend(parts[k - rng.randrange(1, 10):k + 1])      # read again from a commit
        elif r < 0.10 and k > 100:
            out.append(replace(parts[k - rng.randrange(30, 100)], offset=None))  # much later
    return out


def outcome(engine: Engine, out: list[Any]) -> tuple[Any, ...]:
    st_ = engine.stats
    return (out, dict(st_.late), dict(st_.duplicates), dict(st_.redelivered), dict(st_.rejected),
            st_.applied, engine.clock, engine.progress)


@PROPS
@given(st.integers(0, 10_000), st.randoms(use_true_random=False))
def test_a_batch_gives_what_its_parts_give_one_by_one(seed: int, rnd: random.Random) -> None:
    parts = parts_of([line for _, line in stream(seed)], rnd)
    h = _harness(feed=False)
    one = Engine(h.city, h.rules)
    single: list[Any] = []
    for part in parts:
        single.extend(one.feed(part))
    single.extend(one.finish())
    batched = Engine(h.city, h.rules)
    several: list[Any] = []
    i = 0
    while i < len(parts):
        n = rnd.choice((1, 2, 7, 50, 400))
        several.extend(batched.feed_batch(parts[i:i + n]))
        i += n
    several.extend(batched.finish())
    assert outcome(batched, several) == outcome(one, single)
    assert sum(one.stats.late.values()) + sum(one.stats.duplicates.values()) > 0


@PROPS
@given(st.integers(0, 10_000), st.randoms(use_true_random=False), st.sampled_from((1, 2, 3, 17)))
def test_a_run_stopped_at_its_budget_and_resumed_gives_what_one_run_gives(
        seed: int, rnd: random.Random, budget: int) -> None:
    """A runtime gives its event loop back between slices of a long run (``run_budget``,
    ``resume``). Stopped anywhere, and whether it is resumed to its end before the next
    batch, a tick or a single feed, or only by them, the outputs, counts and state are those
    of the same batches with no budget; a stopped run is never snapshotted."""
    stopped_and_compare(parts_of([line for _, line in stream(seed)], rnd),
                        random.Random(seed * 31 + budget), budget)   # hypothesis's randoms draw slowly


def test_runs_stop_and_resume_often_in_the_random_streams() -> None:
    """What the property above checks only when it happens: runs stopped many times, with
    held device messages given at the stop, on fixed seeds."""
    stops = sum(stopped_and_compare(parts_of([line for _, line in stream(seed)], random.Random(seed)),
                                    random.Random(seed), budget)
                for seed in range(6) for budget in (1, 3))
    assert stops >= 12


def stopped_and_compare(parts: list[Input], rnd: random.Random, budget: int) -> int:
    """Feed ``parts`` in random batches, ticks and single feeds to an engine with no budget and
    one with ``budget``, resumed at random; assert they agree; the number of calls that stopped."""
    h = _harness(feed=False)
    plain, stopping = Engine(h.city, h.rules, track_changes=True), Engine(h.city, h.rules, track_changes=True)
    stopping.run_budget = budget
    want: list[Any] = []
    got: list[Any] = []
    stopped = i = 0
    while i < len(parts):
        n = rnd.choice((1, 2, 7, 50, 400))
        how = rnd.random()
        if how < 0.1:       # one by one: a single feed finishes a stopped run first
            for part in parts[i:i + n]:
                want += plain.feed(part)
                got += stopping.feed(part)
        else:
            want += plain.feed_batch(parts[i:i + n])
            got += stopping.feed_batch(parts[i:i + n])
        i += n
        if how > 0.8:
            t = parts[min(i, len(parts)) - 1].time + rnd.choice((0, 5_000, 120_000))
            want += plain.tick(t)
            got += stopping.tick(t)
        stopped += stopping.unfinished
        if stopping.unfinished:
            with pytest.raises(ValueError, match="resume"):
                take(stopping)
        if rnd.random() < 0.5:
            while stopping.unfinished:
                got += stopping.resume()
            assert not plain.unfinished and state_of(stopping) == state_of(plain)
    while stopping.unfinished:
        got += stopping.resume()
    want += plain.finish()
    got += stopping.finish()
    assert outcome(stopping, got) == outcome(plain, want)
    assert stopping.dirty == plain.dirty
    assert state_of(stopping) == state_of(plain)
    return stopped


def test_an_event_id_is_forgotten_exactly_when_its_window_ends() -> None:
    """The memory is trimmed a whole second at a time; an entry that ended earlier in the
    current second must already count as forgotten (late, not a duplicate), by both paths."""
    h = _harness(feed=False)
    for batch in (False, True):
        engine = Engine(h.city, h.rules)
        window = engine.lateness + engine.reorder
        t = 1_795_000_000_000   # a whole second: the entry ends at a whole second too

        def feed(inp: Input, engine: Engine = engine, batch: bool = batch) -> None:
            engine.feed_batch([inp]) if batch else engine.feed(inp)

        first = Input(Source.CAMERA, "city.events.camera", "e-1", t, "G-1", "cam-1", True)
        feed(first)
        feed(replace(first, event_id="e-2", time=t + window + engine.reorder))    # progress: t + window
        feed(replace(first, offset=None))
        assert (engine.stats.duplicates, engine.stats.late_sources) == ({"city.events.camera": 1}, {})
        feed(replace(first, event_id="e-3", time=t + window + engine.reorder + 1))  # 1 ms further
        feed(replace(first, offset=None))
        assert engine.stats.duplicates["city.events.camera"] == 1
        assert engine.stats.late_sources == {"camera": 1}


def test_a_device_heard_many_times_in_one_run_ends_as_if_heard_one_by_one(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A camera's messages only refresh its ``silent`` subject while it is alive; within one
    run the engine gives the operator only the last of them (Engine._liveness). Across a
    silence that fires in the middle of the batch, the messages that end it, and feedback
    on its alert (resolving touches the subject, as the last input of a run too), outputs,
    state and what is marked changed are those of an engine that applies each input in a
    run of its own (a tick to each input's time after it)."""
    h = Harness(tmp_path, feed=False)
    t0 = T("10:00:00")
    first = [t0 + i * 1_000 for i in range(240)]
    resumed = [first[-1] + 400_000 + i * 1_000 for i in range(240)]   # silent 6m40s: fires at 5m
    for t in first + resumed:
        h.cam(t, cam="cam-1", detections=[])
        h.cam(t + 500, cam="cam-2", detections=[])
    end = resumed[-1] + 60_000

    def engine_and_parts(lines: list[bytes]) -> tuple[Engine, list[Input]]:
        parts: list[Input] = []
        for got in ingested(h, lines):
            assert isinstance(got, list)
            parts += got
        return Engine(h.city, h.rules, track_changes=True), sorted(parts, key=lambda p: p.time)

    def one_at_a_time(lines: list[bytes]) -> tuple[Engine, list[Any]]:
        engine, parts = engine_and_parts(lines)
        out: list[Any] = []
        for part in parts:
            out += engine.feed(part)
            out += engine.tick(part.time + engine.reorder)
        return engine, out + engine.tick(end)

    _, out = one_at_a_time(h.lines)
    opened = [a for a in out if a["rule_id"] == "camera.offline" and a["transition"] == "opened"]
    assert len(opened) == 2   # both cameras fell silent
    alert_id = next(a["alert_id"] for a in opened if a["grid_id"] == "G-1")   # cam-1's
    for action, t in (("acknowledge", resumed[30]), ("dispatch", resumed[31]), ("resolve", resumed[60]),
                      ("verify", resumed[61]), ("reopen", resumed[90]), ("resolve", resumed[-1])):
        h.fb(t + 200, alert_id, action, **({"assignee": "team-1"} if action == "dispatch" else {}))
    # After cam-1's last message and its resolution, cam-2 goes on a little and a report
    # closes the input: the last run holds cam-2's messages, then applies something else.
    for i in range(1, 11):
        h.cam(resumed[-1] + 500 + i * 1_000, cam="cam-2", detections=[])
    h.report(resumed[-1] + 12_000)

    single_engine, single = one_at_a_time(h.lines)
    given: list[int] = []
    alive = SilentOp.alive
    monkeypatch.setattr(SilentOp, "alive", lambda self, *a: given.append(1) or alive(self, *a))
    batched_engine, parts = engine_and_parts(h.lines)
    batched = batched_engine.feed_batch(parts) + batched_engine.tick(end)

    assert batched == single
    assert len(given) * 10 < 2 * len(first + resumed)   # held, not given one by one
    transitions = [a["transition"] for a in single if a["alert_id"] == alert_id]
    assert transitions == ["opened", "cleared", "acknowledged", "dispatched", "resolved", "closed",
                           "reopened", "resolved"]
    for grid, cam in (("G-1", "cam-1"), ("G-2", "cam-2")):   # nothing is left held
        subject = batched_engine.grids[grid].subjects["camera.offline"][f"dev:{cam}"]
        assert subject.state.last == max(p.time for p in parts if p.device_id == cam)
    assert batched_engine.dirty == single_engine.dirty
    assert state_of(batched_engine) == state_of(single_engine)


def state_of(engine: Engine) -> dict[Any, Any]:
    """The engine's snapshot records, the buckets of its de-duplication memory and reorder
    buffer merged (how entries fall into buckets depends on how many were added at once),
    and the reorder buffer without its sequence numbers (a batch admits its parts before the
    timers that feeding one by one would have numbered in between)."""
    state: dict[Any, Any] = {"seen": {}, "pending": set()}
    for key, data in take(engine).records():
        if key[0] == "seen":
            for (topic, grid), ids in pickle.loads(data).items():
                state["seen"].update({(topic, eid, grid): expiry for eid, expiry in ids.items()})
        elif key[0] == "pending":
            state["pending"] |= {(t, src, eid, inp) for t, src, eid, _, inp in pickle.loads(data).values()}
        else:
            state[key] = data
    return state
