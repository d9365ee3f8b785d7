"""``Engine.feed_batch`` gives exactly what feeding the same parts one by one gives: outputs in
the same order, the same counts, on random streams with disorder beyond the reorder window
(late input), duplicates, redeliveries and feedback, cut into random batches."""

from __future__ import annotations

import random
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from models.decode import TOPIC_SOURCES
from rules.engine import Engine
from rules.ingest import Ingest
from rules.inputs import Input, Source
from rules.replay import parse_line
from tests.rules.test_properties import PROPS, _harness, stream


def parts_of(lines: list[bytes], rng: random.Random) -> list[Input]:
    """The lines' parts as ingest gives them, then disturbed: neighbours swapped (some by more
    than the reorder window: late), messages sent twice at once or much later (duplicates, or
    late once forgotten) and a source partition's records read again from an earlier offset
    (a redelivery)."""
    h = _harness(feed=False)
    ingest = Ingest(h.city, h.rules)
    per_line: list[list[Input]] = []
    for offset, line in enumerate(lines):
        msg = parse_line(line)
        assert msg.topic is not None
        got = ingest(TOPIC_SOURCES[msg.topic], msg.topic, msg.payload, key=msg.key,
                     partition=0, offset=offset)
        if isinstance(got, list):
            per_line.append(got)
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
            out.append(part._replace(offset=None))                 # the producer sent it twice
        elif r < 0.08 and k > 10:
            out.extend(parts[k - rng.randrange(1, 10):k + 1])      # read again from a commit
        elif r < 0.10 and k > 100:
            out.append(parts[k - rng.randrange(30, 100)]._replace(offset=None))  # much later
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
        feed(first._replace(event_id="e-2", time=t + window + engine.reorder))    # progress: t + window
        feed(first._replace(offset=None))
        assert (engine.stats.duplicates, engine.stats.late_sources) == ({"city.events.camera": 1}, {})
        feed(first._replace(event_id="e-3", time=t + window + engine.reorder + 1))  # 1 ms further
        feed(first._replace(offset=None))
        assert engine.stats.duplicates["city.events.camera"] == 1
        assert engine.stats.late_sources == {"camera": 1}
