"""Kill workers at random moments and check that nothing changed (issue 13, item 7).

One run, from a seed: part of the input is produced before the workers start (a backlog), the
rest while they run; two event-clock workers share the partitions; at random moments one is
killed with SIGKILL (during start-up and recovery too: a kill may follow a restart within a
second or two, before the worker has loaded its partitions) and started again after a random
pause, so partitions move to the survivor and back. Then both run to the end. What they give
must be exactly what ``cityorder replay --partitions N`` gives for the recording of the input:
every ``(alert_id, version)`` with its content (``emitted_at`` aside), no gap in any alert's
versions, no part written to ``cityorder.internal`` behind a frontier already reported, and
no input counted late by the workers that finish.

Used by ``tests/e2e/test_random_kills.py`` (a few short runs in the suite) and by
``python -m bench.kill`` (as many full-day runs as asked, on demand).
"""

from __future__ import annotations

import asyncio
import random
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rules.demo.city import GEOJSON_PATH as DEMO_CITY
from rules.pack import DEFAULT_PACK
from streams.compare import by_version, compare_alerts
from streams.settings import Settings
from streams.simulate import simulate
from streams.topics import default_topics, ensure_topics
from tests.e2e.workers import Worker, frontier_breaches, metric_total, read_topic, replay_of


@dataclass
class ChaosRun:
    """What one run did and found."""

    seed: int
    lines: int
    before: int                                   # lines produced before the workers started
    kills: list[tuple[float, str, str]] = field(default_factory=list)   # (s since start, worker, phase)
    versions: int = 0
    delivered: int = 0                            # city.alerts messages, repeats included
    late: float = 0.0
    redelivered: float = 0.0
    breaches: list[str] = field(default_factory=list)
    problem: str = ""                             # empty: output is the replay's
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.problem and not self.breaches and self.late == 0

    def describe(self) -> str:
        kills = ", ".join(f"{w}@{t:.1f}s ({phase})" for t, w, phase in self.kills)
        verdict = "ok" if self.ok else "FAILED"
        text = (f"seed {self.seed}: {verdict} in {self.seconds:.0f} s; {self.lines} lines "
                f"({self.before} before the workers), kills: {kills}; {self.versions} versions "
                f"({self.delivered} messages), late {self.late:.0f}, redelivered {self.redelivered:.0f}")
        if self.problem:
            text += f"\n  {self.problem}"
        if self.breaches:
            text += f"\n  {len(self.breaches)} parts behind their frontier, e.g. {self.breaches[:2]}"
        return text


def _phase(worker: Worker) -> str:
    state = worker.readyz()
    if state is None:
        return "starting"
    if not state.get("ready"):
        return "recovering"
    return "running"


def run(settings: Settings, log_dir: Path, lines: list[dict[str, Any]], seed: int, *,
        kills: int = 3, window_s: float = 20.0, timeout_s: float = 180.0) -> ChaosRun:
    """One run (see the module's docstring); ``kills`` SIGKILLs within the first ``window_s``
    seconds after both workers are first ready (a kill that follows a restart may fall later)."""
    rng = random.Random(seed)
    before = int(len(lines) * rng.uniform(0.1, 0.6))
    result = ChaosRun(seed, len(lines), before)
    recorded: list[dict[str, Any]] = []
    started = time.monotonic()

    async def produce(part: list[dict[str, Any]], end_tick: bool) -> None:
        await ensure_topics(settings, default_topics(settings))
        await simulate(settings, part, end_tick=end_tick, record=recorded.append)

    asyncio.run(produce(lines[:before], False))
    workers: dict[str, Worker] = {}
    retired: list[Worker] = []

    def start(name: str) -> Worker:
        w = Worker(settings, log_dir / f"{name}.log", clock="event", session_timeout_ms=3000)
        workers[name] = w
        return w

    producer_error: list[BaseException] = []

    def produce_rest() -> None:
        try:
            asyncio.run(produce(lines[before:], True))
        except BaseException as e:   # reported by the run, not lost in the thread
            producer_error.append(e)

    start("a")
    start("b")
    last_start = {"a": time.monotonic(), "b": time.monotonic()}
    rest = threading.Thread(target=produce_rest, daemon=True)
    rest.start()
    try:
        for w in workers.values():     # the window opens when both evaluate: kills hit work
            w.wait_ready(timeout=60)
        t0 = time.monotonic()
        moments = sorted(rng.uniform(0.0, window_s) for _ in range(kills))
        for moment in moments:
            if rng.random() < 0.5:   # the worker started last, soon after its start: start-up, recovery
                name = max(last_start, key=last_start.__getitem__)
                moment = max(moment, last_start[name] - t0 + rng.uniform(0.3, 2.5))
            else:
                name = rng.choice(sorted(workers))
            time.sleep(max(0.0, t0 + moment - time.monotonic()))
            victim = workers[name]
            result.kills.append((time.monotonic() - t0, name, _phase(victim)))
            victim.kill()
            retired.append(victim)
            time.sleep(rng.uniform(0.0, 2.0))
            start(name)
            last_start[name] = time.monotonic()
        rest.join(timeout_s)
        if producer_error:
            raise producer_error[0]
        for w in workers.values():
            w.wait_ready(timeout=60)
        expected, _ = replay_of(recorded, DEMO_CITY, [DEFAULT_PACK], partitions=settings.partitions)
        want, _ = by_version(expected)
        alerts = read_topic(settings, "city.alerts", timeout=timeout_s,
                            done=lambda got: len(by_version(got)[0]) >= len(want))
        result.late = sum(metric_total(w, "cityorder_late_inputs_total") for w in workers.values())
        result.redelivered = sum(metric_total(w, "cityorder_redelivered_inputs_total")
                                 for w in workers.values())
    finally:
        for w in [*workers.values(), *retired]:
            w.stop()
    got, _ = by_version(alerts)
    comparison = compare_alerts(alerts, expected)
    result.versions, result.delivered = len(want), len(alerts)
    gaps = [aid for aid in {a for a, _ in got}
            if sorted(v for a, v in got if a == aid) != list(range(1, 1 + sum(a == aid for a, _ in got)))]
    if not comparison.same:
        result.problem = comparison.describe("the workers", "the replay")
    elif gaps:
        result.problem = f"{len(gaps)} alerts with a gap in their versions, e.g. {gaps[:3]}"
    result.breaches = frontier_breaches(settings)
    result.seconds = time.monotonic() - started
    return result
