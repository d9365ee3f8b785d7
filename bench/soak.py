"""Soak: one worker fed the demo city's traffic at 5,000 events/s on the wall clock, for an hour.

Target (issue 13, item 8): the worker's RSS stays within ±10% of its value at the end of the
warm-up (the first 10 minutes) for the rest of the run, and lag stays bounded. A benchmark
of minutes cannot show either: a slow leak, a buffer that is never trimmed or a broker that
slows down as its topics grow all look fine for the first few minutes. Run on demand::

    .venv/bin/python -m bench.soak                                # 1 h, verdict after 10 min
    .venv/bin/python -m bench.soak --duration 5m --warmup 1m     # a quick check of the script
    .venv/bin/python -m bench.soak --json soak.json              # + every figure as JSON
    .venv/bin/python -m bench.soak --verdict-of soak.json --warmup 15m   # judge a saved run again

Everything runs on this machine, started and stopped by the script, as ``bench.runtime_bench``
does it (its helpers are imported, not copied): the embedded broker (Tansu, memory storage),
one ``cityorder worker`` (``python -m streams.cli worker``, wall clock, default pack, demo
city, 4 partitions) and, in this process, a producer, a consumer of ``city.alerts`` and a
scraper of the worker's ``/metrics`` and ``/proc``.

Traffic, all stamped with the wall clock (CreateTime = the moment of sending):

- **The demo day, live** (``rules.demo.day``, seed ``--seed``): today's scripted day of the
  demo city (the city's time zone) from the current time of day on, each line sent at its own
  arrival time: every camera's heartbeat, the stories that open alerts (a vendor who stays, a
  lamp that does not come on, a flooded underpass), the sensors on their cadences, inspector
  and citizen reports, ~0.5% bad lines (dead letters). ~1 line/s; the next day's lines (new
  event ids) follow after midnight.
- **Load** (``bench.runtime_bench.LiveStream``, the latency run's camera traffic): camera
  messages of ``--tracks`` background tracks at a time, the engine benchmark's label mix at
  spots where a default rule matches, each sighted every ``tracks / rate`` seconds. Unlike the
  latency run's, which live for its minute, they come and go: each lives a random
  30 s to ``--track-life`` (and at most 80% of the shortest persist duration of its label, so
  none opens an alert) and is replaced by a new track id. So subjects are created, go quiet
  and are forgotten all the time, and a soak in steady state has a steady population.
- **Probes**: ``--probes-per-s`` new tracks a second of the camera rule that opens soonest at
  this wall time (``traffic.heavy-truck-centre`` by day, ``stray-dog.school`` at night), each
  sighted every 2 s until just after it opens an alert, then gone. They give the latency
  samples; the load fills the rest of ``--rate``.

Every ``--interval`` one line: time since the input started, events sent (and the rate over
the interval), the worker's RSS (``VmRSS`` of ``/proc/PID/status``; the broker's beside it),
ingest lag (``cityorder_ingest_lag_records``, all input partitions, max over the interval's
scrapes), how far the engines trail the wall clock (wall clock - the slowest partition's
``cityorder_engine_progress_timestamp_seconds`` - the 5 s reorder window, max over the
interval), alert latency over the interval (as ``bench.runtime_bench``'s latency run measures
it: an ``opened`` / ``updated`` message's Kafka timestamp - the later of its newest evidence
item's send time and its ``at`` - the reorder window; p50 and p99 of the alerts that reached
``city.alerts`` in the interval), alerts and dead letters in the interval, and CPU (cores) of
the worker, the broker and this process.

Verdict, on the samples after ``--warmup`` (one scrape every ``--scrape`` seconds):

- **RSS**: every sample within ±``--rss-band`` (10%) of the first sample at or after the
  warm-up's end.
- **Lag bounded**: split the time after the warm-up into two halves; a lag passes if its
  maximum in the second half is at most ``--lag-abs-s`` (2 s: ``rate * 2`` records of ingest
  lag, 2 s of the engines' delay), or at most ``--lag-factor`` (2) times its maximum in the
  first half and at most ``--lag-ceiling-s`` (10 s, of input or of delay). A lag that stays
  small but noisy (tens of records against a few) passes the first test; one that is larger
  but does not grow passes the second; one that grows through the run, or that is a minute
  behind in both halves, fails. Both lags must pass. (Ingest lag alone would miss evaluation
  falling behind: ingest only forwards.)
- The worker must be alive at the end and the run complete (not stopped early by Ctrl-C or
  by ``--min-free-mb``). The exit status is 0 if everything passes, 1 if not, 2 if the script
  could not measure (a worker that never became ready, a warm-up as long as the run).
  ``--verdict-of`` judges a run saved with ``--json`` again, with other thresholds.

Caveats, printed with the figures: Tansu's memory storage has no retention (``retention.ms``
is accepted and ignored, ``DeleteRecords`` is refused), so every record of the run stays in the
broker (~6 GB an hour with lz4), and the run stops and fails when the machine's free memory
falls below ``--min-free-mb``. Tansu's fetch lists every record batch stored in the partition
(bench/README.md), so its cost per fetch grows with the number of batches written, and the
number of fetches with it: the broker's CPU grows with the square of the batch rate. The
producer lingers ``--linger-ms`` and the worker's ingest ``--ingest-linger-ms`` (500 ms each:
2 batches a second per partition, 7,200 in an hour) to keep batches few; both lingers count
in the latency (CreateTime is taken when a message is handed to the producer). With 50 ms and
no ingest linger, the broker took a core after 16 minutes and starved the worker; with 200 ms
each its CPU still grew by ~0.03 cores a minute (0.11 at 1 min, 0.38 at 10). Alerts
nobody acknowledges stay in the worker's state (``rules.engine``: only an alert that ended is
dropped, 30 days later; ``cleared`` does not end it), so the probes' alerts (3,600 an hour at
the default) add to RSS for the whole run; ``cityorder_engine_state`` shows them (the
``subjects`` and ``alerts a/e`` columns).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import heapq
import json
import math
import os
import platform
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError

from bench.engine_bench import _camera_rules, _cpu_model
from bench.runtime_bench import (
    ALERTS,
    MAP,
    PACK,
    PARTITIONS,
    ROOT,
    BenchError,
    LiveStream,
    Metrics,
    Track,
    WorkerProc,
    _on_sigterm,
    cpu_seconds,
    fresh_prefix,
    make_settings,
    pct,
    wait_all_ready,
    wait_ingest_stable,
)
from models.timestamps import parse_timestamp_ms
from rules.demo.day import DemoCity, DemoDay
from rules.durations import parse_duration
from rules.engine import StateSizes
from rules.pack import Persist, load_rules
from rules.replay import parse_line
from streams.broker import EmbeddedBroker
from streams.settings import Settings
from streams.topics import default_topics, ensure_topics

PROBE_PERIOD_S = 2.0       # a probe track is sighted this often (as the latency run's firing tracks)
MIN_LIFE_S = 30.0          # shortest life of a load track
LIFE_SHARE = 0.8           # a load track lives at most this share of its label's shortest persist
MAX_IN_FLIGHT = 20_000     # produced but not yet acknowledged: beyond this the producer waits
TICK_S = 0.004             # the producer's pacing step
DEMO_MARGIN_S = 600.0      # demo lines prepared beyond the planned end (start-up takes a while)
STATE_KINDS = tuple(f.name for f in fields(StateSizes))   # cityorder_engine_state's kinds


# -- /proc ------------------------------------------------------------------------------------


def rss_kb(pid: int | None) -> int | None:
    """``VmRSS`` of a process in kB (resident set: what the issue's target is about), or None
    once it is gone."""
    if pid is None:
        return None
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def mem_available_mb() -> float | None:
    """``MemAvailable`` of the machine in MB: the embedded broker holds every record in memory
    (no retention), so a long run can run the machine out of it."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def _git_head() -> str:
    """The commit measured, ``+dirty`` if the work tree differs from it (figures of a dirty
    tree cannot be traced to a commit)."""
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                              text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown (not a git checkout)"
    return head + ("+dirty" if dirty else "")


def seconds(text: str) -> float:
    """``1h``, ``11m``, ``90s`` (rules.durations' spelling) or a bare number of seconds."""
    try:
        return float(text)
    except ValueError:
        return parse_duration(text) / 1000


# -- traffic ------------------------------------------------------------------------------------


@dataclass(slots=True)
class DemoLine:
    """One line of the demo day, ready to send at ``arrival_ms``."""

    arrival_ms: int
    topic: str
    key: bytes | None
    payload: bytes
    event_id: str | None


def demo_lines(start_ms: int, end_ms: int, seed: int) -> collections.deque[DemoLine]:
    """The demo day's lines arriving in ``[start_ms, end_ms)``: today's day in the city's time
    zone from now on, then the next day's (its event ids carry its date, so they are new).
    The day is generated from midnight (it is a script with a story's state carried along),
    ~1.5 s a day; lines before ``start_ms`` are dropped."""
    tz = DemoCity(MAP).tz
    day = datetime.fromtimestamp(start_ms / 1000, tz).date()
    out: collections.deque[DemoLine] = collections.deque()
    while True:
        demo = DemoDay(MAP, day, seed)
        if demo.clock.start >= end_ms:
            return out
        for arrival, line in demo:
            if arrival < start_ms:
                continue
            if arrival >= end_ms:
                break
            msg = parse_line(orjson.dumps(line))
            if msg.topic is None:
                continue
            value = line.get("value")
            eid = value.get("event_id") if isinstance(value, dict) else None
            out.append(DemoLine(arrival, msg.topic, msg.key.encode() if msg.key else None, msg.payload,
                                eid if isinstance(eid, str) else None))
        day += timedelta(days=1)


class Traffic:
    """What to send next: demo lines when due, probe sightings when due, else a load track's.

    Load tracks are the latency run's background tracks (``LiveStream.bg``) used as templates:
    the same cameras, labels, spots and noise, but each with a finite life, after which a new
    track (new id) from a random template takes its slot."""

    def __init__(self, stream: LiveStream, demo: collections.deque[DemoLine], rng: random.Random,
                 track_life_s: float, probes_per_s: float) -> None:
        self.stream = stream
        self.demo = demo
        self.rng = rng
        self.templates = list(stream.bg)
        self.track_life_s = track_life_s
        ruleset = load_rules([PACK])
        shortest: dict[str, float] = {}
        for r in _camera_rules(ruleset):
            if isinstance(r.operator, Persist):
                for label in r.match.labels or ():
                    d = r.operator.duration_ms / 1000
                    shortest[label] = min(d, shortest.get(label, d))
        # (shortest, longest) life by label: never long enough to open an alert
        self.life: dict[str, tuple[float, float]] = {}
        for lb, d in shortest.items():
            hi = min(track_life_s, LIFE_SHARE * d)
            self.life[lb] = (min(MIN_LIFE_S, hi / 2), hi)
        self.live: list[Track] = []
        self.next_slot = 0
        self.born = 0
        self.probes_per_s = probes_per_s
        probe = stream.rule.operator
        assert isinstance(probe, Persist)
        self.probe_life_s = probe.duration_ms / 1000 + 2 * PROBE_PERIOD_S + 5.0
        self.sightings: list[tuple[float, int, Track]] = []
        self.probes = 0
        self.demo_sent: dict[str, int] = {}   # demo event id -> send time (its observed_at is earlier)
        self.sent_by: collections.Counter[str] = collections.Counter()

    def _new_track(self, el: float, aged: bool = False) -> Track:
        t = self.rng.choice(self.templates)
        life = self.rng.uniform(*self.life.get(t.label, (MIN_LIFE_S, self.track_life_s)))
        if aged:  # the first population: staggered ends, so turnover is steady from the start
            life = self.rng.uniform(0.0, life)
        self.born += 1
        return Track(t.cam, t.label, t.lat, t.lon, t.s_lat, t.s_lon, f"s-{self.born}", el + life)

    def start(self, el: float, now_ms: int) -> None:
        """The first population of load tracks; demo lines due before now (the worker's
        start-up) are dropped rather than sent late in a burst."""
        self.live = [self._new_track(el, aged=True) for _ in self.templates]
        while self.demo and self.demo[0].arrival_ms < now_ms:
            self.demo.popleft()

    def _load_track(self, el: float) -> Track:
        i = self.next_slot
        self.next_slot = (i + 1) % len(self.live)
        if self.live[i].until <= el:
            self.live[i] = self._new_track(el)
        return self.live[i]

    def next(self, el: float, now_ms: int) -> tuple[str, bytes | None, bytes, int]:
        """(topic name, key, value, CreateTime) of the next message at ``el`` seconds into the run."""
        while self.probes < self.probes_per_s * el:
            at = self.probes / self.probes_per_s
            tr = self.stream.new_fire_track(at + self.probe_life_s)
            heapq.heappush(self.sightings, (at, self.probes, tr))
            self.probes += 1
        if self.demo and self.demo[0].arrival_ms <= now_ms:
            d = self.demo.popleft()
            if d.event_id is not None:
                self.demo_sent[d.event_id] = now_ms
            self.sent_by["demo"] += 1
            return d.topic, d.key, d.payload, now_ms
        if self.sightings and self.sightings[0][0] <= el:
            at, k, tr = heapq.heappop(self.sightings)
            if at + PROBE_PERIOD_S <= tr.until:
                heapq.heappush(self.sightings, (at + PROBE_PERIOD_S, k, tr))
            self.sent_by["probe"] += 1
        else:
            tr = self._load_track(el)
            self.sent_by["load"] += 1
        key, value = self.stream.message(tr, now_ms)
        return "city.events.camera", key, value, now_ms

    def sent_at(self, evidence: dict[str, Any]) -> int | None:
        """When the message behind an evidence item was sent: the demo's from the record kept,
        the load's and probes' is their observed_at (stamped with the send time)."""
        eid = evidence.get("event_id")
        if isinstance(eid, str) and eid in self.demo_sent:
            return self.demo_sent[eid]
        try:
            return parse_timestamp_ms(evidence["observed_at"])
        except (KeyError, TypeError, ValueError):
            return None


# -- measuring --------------------------------------------------------------------------------


@dataclass(slots=True)
class Sample:
    """One scrape: seconds since the input started, and what was read."""

    t: float
    rss_kb: int | None
    broker_rss_kb: int | None
    ingest_lag: float
    behind_s: float          # wall clock - slowest partition's progress - reorder window; NaN if none


@dataclass(slots=True)
class Interval:
    """One printed line."""

    end_s: float
    sent: int
    rate: float
    rss_mb: float | None
    broker_rss_mb: float | None
    ingest_lag_max: float
    ingest_lag_end: float
    behind_max_s: float
    latency_n: int
    latency_p50_ms: float
    latency_p99_ms: float
    latency_max_ms: float
    alerts: dict[str, int]
    deadletters: int
    late: int
    evicted: int
    cores: dict[str, float]
    stage_p99_s: dict[str, float]   # worker histograms over the interval: upper bounds of buckets
    state: dict[str, int]           # cityorder_engine_state summed over partitions, by kind


@dataclass(slots=True)
class Run:
    """Everything measured; what --json writes."""

    config: dict[str, Any]
    started_at: str = ""
    commit: str = ""
    machine: str = ""
    probe_rule: str = ""
    probe_duration_s: float = 0.0
    intervals: list[Interval] = field(default_factory=list)
    samples: list[Sample] = field(default_factory=list)
    latencies_ms: list[float] = field(default_factory=list)
    alerts: dict[str, int] = field(default_factory=dict)
    sent: int = 0
    sent_by: dict[str, int] = field(default_factory=dict)
    send_failed: int = 0
    producer_behind_max: int = 0
    input_s: float = 0.0
    worker_exit: int | None = None
    stopped: str | None = None       # why the input stopped before --duration (None: it did not)
    crashes: list[str] = field(default_factory=list)
    final_counters: dict[str, float] = field(default_factory=dict)
    verdict: dict[str, Any] = field(default_factory=dict)


def _bucket_quantile(before: Metrics | None, after: Metrics, name: str, q: float) -> float:
    """Upper bound of the bucket holding the ``q`` quantile of a histogram's observations
    between two scrapes (as coarse as the buckets; NaN if nothing was observed)."""
    now = after.buckets(name)
    prev = dict(before.buckets(name)) if before is not None else {}
    delta = [(le, v - prev.get(le, 0.0)) for le, v in now]
    total = delta[-1][1] if delta else 0.0
    if total <= 0:
        return math.nan
    return next((le for le, v in delta if v >= q * total), math.nan)


class Soak:
    """The run: producer, alert reader and scraper as tasks of one event loop."""

    def __init__(self, settings: Settings, broker: EmbeddedBroker, worker: WorkerProc, traffic: Traffic,
                 args: argparse.Namespace, run: Run) -> None:
        self.settings = settings
        self.broker = broker
        self.worker = worker
        self.traffic = traffic
        self.args = args
        self.run = run
        self.reorder_ms = traffic.stream.reorder_ms
        self.began = 0.0
        self.sent = 0
        self.stop = asyncio.Event()
        self.lat_window: list[float] = []
        self.alerts_window: collections.Counter[str] = collections.Counter()
        self.alerts_total: collections.Counter[str] = collections.Counter()

    def elapsed(self) -> float:
        return time.monotonic() - self.began

    async def produce(self) -> None:
        """Send at ``--rate`` until told to stop; records how far behind schedule it got."""
        producer = AIOKafkaProducer(**self.settings.producer_kwargs(), client_id="bench-soak", acks=1,
                                    linger_ms=self.args.linger_ms)
        await producer.start()
        topics: dict[str, str] = {}
        in_flight: collections.deque[asyncio.Future[Any]] = collections.deque()
        rate = self.args.rate
        try:
            while not self.stop.is_set():
                el = self.elapsed()
                due = int(rate * el)
                self.run.producer_behind_max = max(self.run.producer_behind_max, due - self.sent)
                while self.sent < due:
                    now_ms = int(time.time() * 1000)
                    topic, key, value, stamp = self.traffic.next(el, now_ms)
                    name = topics.get(topic) or topics.setdefault(topic, self.settings.topic(topic))
                    try:
                        in_flight.append(await producer.send(name, value, key=key, timestamp_ms=stamp))
                    except KafkaError:
                        self.run.send_failed += 1
                    self.sent += 1
                while in_flight and in_flight[0].done():
                    if in_flight.popleft().exception() is not None:
                        self.run.send_failed += 1
                while len(in_flight) > MAX_IN_FLIGHT:
                    with contextlib.suppress(KafkaError):
                        await in_flight.popleft()
                await asyncio.sleep(TICK_S)
            for fut in in_flight:
                with contextlib.suppress(KafkaError):
                    await fut
        finally:
            await producer.stop()

    async def read_alerts(self) -> None:
        """Every ``city.alerts`` message from the start; latency of ``opened`` / ``updated``."""
        consumer = AIOKafkaConsumer(**self.settings.aiokafka_kwargs(), group_id=None,
                                    enable_auto_commit=False, auto_offset_reset="earliest",
                                    fetch_max_wait_ms=100)
        await consumer.start()
        try:
            topic = self.settings.topic(ALERTS)
            tps = [TopicPartition(topic, p) for p in range(PARTITIONS)]   # as runtime_bench.read_alerts
            consumer.assign(tps)
            await consumer.seek_to_beginning(*tps)
            while not self.stop.is_set():
                for recs in (await consumer.getmany(timeout_ms=200)).values():
                    for r in recs:
                        self._alert(r.timestamp, orjson.loads(r.value))
        finally:
            await consumer.stop()

    def _alert(self, ts: int, a: dict[str, Any]) -> None:
        tr = str(a.get("transition"))
        self.alerts_window[tr] += 1
        self.alerts_total[tr] += 1
        if tr not in ("opened", "updated") or not a.get("evidence"):
            return
        sent = [s for e in a["evidence"] if (s := self.traffic.sent_at(e)) is not None]
        if not sent:
            return
        try:
            at_ms = parse_timestamp_ms(a["at"])
        except (KeyError, TypeError, ValueError):
            at_ms = 0
        # As the latency run: from the later of the newest evidence's send time and the
        # transition's `at` (an `updated` held back by the 60 s spacing is due at `at`).
        ms = ts - max(max(sent), at_ms) - self.reorder_ms
        self.lat_window.append(ms)
        self.run.latencies_ms.append(ms)

    async def scrape(self) -> None:
        """Every ``--scrape`` s: /metrics and /proc; every ``--interval`` s: one line."""
        args = self.args
        worker_pid, broker_pid = self.worker.pid, self.broker.pid
        cpu_names = {"worker": worker_pid, "broker": broker_pid or 0}
        prev_cpu = {k: cpu_seconds(p) or 0.0 for k, p in cpu_names.items()} | {"bench": time.process_time()}
        prev_t, prev_sent = 0.0, 0
        prev_m: Metrics | None = None
        window: list[Sample] = []
        next_line = args.interval
        while not self.stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stop.wait(), args.scrape)
            t = self.elapsed()
            if self.worker.proc.poll() is not None:
                self.run.worker_exit = self.worker.proc.returncode
                print(f"  !! the worker exited with {self.run.worker_exit} at {_clock(t)}; log "
                      f"{self.worker.log_path}:\n{self.worker.tail(20)}", flush=True)
                self.stop.set()
                break
            free = mem_available_mb()
            if free is not None and free < args.min_free_mb:
                self.run.stopped = (f"the machine had {free:,.0f} MB of memory left (< --min-free-mb "
                                    f"{args.min_free_mb:,.0f}) at {_clock(t)}")
                print(f"  !! stopping: {self.run.stopped}; the broker holds every record of the run "
                      f"({(rss_kb(broker_pid) or 0) / 1024:,.0f} MB)", flush=True)
                self.stop.set()
            try:
                m = await asyncio.to_thread(self.worker.metrics)
            except (OSError, ValueError) as e:
                print(f"  (scrape at {_clock(t)} failed: {type(e).__name__}: {e})", flush=True)
                continue
            now_ms = time.time() * 1000
            prog = m.by("cityorder_engine_progress_timestamp_seconds", "partition")
            behind = (max(now_ms - (v * 1000 + self.reorder_ms) for v in prog.values()) / 1000
                      if len(prog) == PARTITIONS else math.nan)
            s = Sample(round(t, 2), rss_kb(worker_pid), rss_kb(broker_pid),
                       m.sum("cityorder_ingest_lag_records"), behind)
            self.run.samples.append(s)
            window.append(s)
            if t + args.scrape / 2 < next_line and t < args.duration and not self.stop.is_set():
                continue
            cpu = {k: cpu_seconds(p) or 0.0 for k, p in cpu_names.items()} | {"bench": time.process_time()}
            span = max(1e-9, t - prev_t)
            lat, self.lat_window = self.lat_window, []
            alerts, self.alerts_window = dict(self.alerts_window), collections.Counter()
            behinds = [x.behind_s for x in window if not math.isnan(x.behind_s)]
            row = Interval(
                end_s=round(t, 1), sent=self.sent, rate=(self.sent - prev_sent) / span,
                rss_mb=s.rss_kb / 1024 if s.rss_kb is not None else None,
                broker_rss_mb=s.broker_rss_kb / 1024 if s.broker_rss_kb is not None else None,
                ingest_lag_max=max(x.ingest_lag for x in window), ingest_lag_end=s.ingest_lag,
                behind_max_s=max(behinds) if behinds else math.nan,
                latency_n=len(lat), latency_p50_ms=pct(lat, 0.5), latency_p99_ms=pct(lat, 0.99),
                latency_max_ms=max(lat) if lat else math.nan,
                alerts=alerts,
                deadletters=int(m.sum("cityorder_deadletters_total")
                                - (prev_m.sum("cityorder_deadletters_total") if prev_m else 0)),
                late=int(m.sum("cityorder_late_inputs_total")
                         - (prev_m.sum("cityorder_late_inputs_total") if prev_m else 0)),
                evicted=int(m.sum("cityorder_evicted_subjects_total")
                            - (prev_m.sum("cityorder_evicted_subjects_total") if prev_m else 0)),
                cores={k: (cpu[k] - prev_cpu[k]) / span for k in cpu},
                stage_p99_s={stage: _bucket_quantile(prev_m, m, f"cityorder_{stage}_delay_seconds", 0.99)
                             for stage in ("ingest", "evaluate")},
                state={kind: int(m.sum("cityorder_engine_state", kind=kind)) for kind in STATE_KINDS})
            self.run.intervals.append(row)
            print_interval(row, len(self.run.intervals) == 1)
            prev_t, prev_sent, prev_cpu, prev_m, window = t, self.sent, cpu, m, []
            next_line += args.interval
            if t >= args.duration:
                self.stop.set()
        self.run.final_counters = {} if prev_m is None else {
            "input_records": prev_m.sum("cityorder_input_records_total"),
            "alert_transitions": prev_m.sum("cityorder_alert_transitions_total"),
            "deadletters": prev_m.sum("cityorder_deadletters_total"),
            "late_inputs": prev_m.sum("cityorder_late_inputs_total"),
            "duplicate_inputs": prev_m.sum("cityorder_duplicate_inputs_total"),
            "evicted_subjects": prev_m.sum("cityorder_evicted_subjects_total"),
            "stale_records": prev_m.sum("cityorder_stale_records_total"),
            "producer_errors": prev_m.sum("cityorder_producer_errors_total"),
        }

    async def main(self) -> None:
        self.began = time.monotonic()
        self.traffic.start(0.0, int(time.time() * 1000))
        tasks = [asyncio.create_task(c) for c in (self.produce(), self.read_alerts(), self.scrape())]
        try:
            await asyncio.gather(*tasks)
        finally:
            self.stop.set()
            for task in tasks:
                if not task.done():
                    task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            # also when interrupted: the summary of a run stopped early is still worth having
            self.run.input_s = self.elapsed()
            self.run.sent = self.sent
            self.run.sent_by = dict(self.traffic.sent_by)
            self.run.alerts = dict(self.alerts_total)


# -- output -------------------------------------------------------------------------------------


def _clock(t: float) -> str:
    t = round(t)
    return f"{t // 3600}:{t // 60 % 60:02d}:{t % 60:02d}"


def _ms(v: float) -> str:
    return "-" if math.isnan(v) else f"{v:,.0f}"


def print_interval(r: Interval, header: bool) -> None:
    if header:
        print(f"  {'elapsed':>7} {'sent':>11} {'/s':>6} {'RSS MB':>7} {'broker':>7} {'lag max':>8} "
              f"{'eval s':>6} {'lat p50':>7} {'p99 ms':>7} {'n':>4} {'alerts':>6} {'dead':>4} "
              f"{'cores w/b/self':>15}  stage p99 in/ev  subjects alerts a/e", flush=True)
    rss = f"{r.rss_mb:7.1f}" if r.rss_mb is not None else f"{'-':>7}"
    brss = f"{r.broker_rss_mb:7.0f}" if r.broker_rss_mb is not None else f"{'-':>7}"
    behind = f"{r.behind_max_s:6.2f}" if not math.isnan(r.behind_max_s) else f"{'-':>6}"
    cores = f"{r.cores.get('worker', 0):.2f}/{r.cores.get('broker', 0):.2f}/{r.cores.get('bench', 0):.2f}"
    stages = "/".join("-" if math.isnan(v) else f"{v:g}" for v in r.stage_p99_s.values())
    extra = (f"  late +{r.late:,}" if r.late else "") + (f"  evicted +{r.evicted:,}" if r.evicted else "")
    print(f"  {_clock(r.end_s):>7} {r.sent:>11,} {r.rate:>6,.0f} {rss} {brss} {r.ingest_lag_max:>8,.0f} "
          f"{behind} {_ms(r.latency_p50_ms):>7} {_ms(r.latency_p99_ms):>7} {r.latency_n:>4} "
          f"{sum(r.alerts.values()):>6,} {r.deadletters:>4,} {cores:>15}  {stages} s  "
          f"{r.state.get('subjects', 0):>8,} {r.state.get('alerts_active', 0):,}/"
          f"{r.state.get('alerts_ended', 0):,}{extra}", flush=True)


def judge(run: Run, args: argparse.Namespace) -> dict[str, Any]:
    """The verdict on the samples after the warm-up (see the module docstring)."""
    after = [s for s in run.samples if s.t >= args.warmup]
    v: dict[str, Any] = {"warmup_s": args.warmup, "samples_after_warmup": len(after)}
    if len(after) < 4:
        v["measurable"] = False
        v["why"] = f"{len(after)} samples after the {args.warmup:g} s warm-up: the run is too short"
        v["pass"] = False
        return v
    v["measurable"] = True
    rss = [s.rss_kb for s in after if s.rss_kb is not None]
    ref = rss[0]
    low, high = min(rss), max(rss)
    v["rss"] = {"reference_mb": ref / 1024, "at_s": after[0].t, "min_mb": low / 1024, "max_mb": high / 1024,
                "min_rel": low / ref - 1, "max_rel": high / ref - 1, "band": args.rss_band,
                "last_mb": rss[-1] / 1024,
                "slope_mb_per_h": _slope([(s.t, s.rss_kb / 1024) for s in after if s.rss_kb is not None]),
                "pass": low >= ref * (1 - args.rss_band) and high <= ref * (1 + args.rss_band)}
    mid = (args.warmup + after[-1].t) / 2
    first = [s for s in after if s.t < mid]
    last = [s for s in after if s.t >= mid]

    def bounded(values_first: list[float], values_last: list[float], absolute: float,
                ceiling: float) -> dict[str, Any]:
        f = max(values_first, default=math.nan)
        la = max(values_last, default=math.nan)
        by_ratio = (not math.isnan(f) and not math.isnan(la) and la <= args.lag_factor * max(f, 0.0)
                    and la <= ceiling)
        by_abs = not math.isnan(la) and la <= absolute
        return {"first_half_max": f, "second_half_max": la, "factor": args.lag_factor,
                "absolute_bound": absolute, "ceiling": ceiling, "within_factor": by_ratio,
                "within_absolute": by_abs, "pass": by_ratio or by_abs}

    v["ingest_lag"] = bounded([s.ingest_lag for s in first], [s.ingest_lag for s in last],
                              args.lag_abs_s * args.rate, args.lag_ceiling_s * args.rate)
    v["eval_behind_s"] = bounded([s.behind_s for s in first if not math.isnan(s.behind_s)],
                                 [s.behind_s for s in last if not math.isnan(s.behind_s)], args.lag_abs_s,
                                 args.lag_ceiling_s)
    v["worker_alive"] = run.worker_exit is None
    v["complete"] = run.stopped is None
    v["stopped"] = run.stopped
    v["pass"] = bool(v["rss"]["pass"] and v["ingest_lag"]["pass"] and v["eval_behind_s"]["pass"]
                     and v["worker_alive"] and v["complete"])
    return v


def _slope(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of (seconds, MB) in MB per hour: a leak shows as a steady slope
    even inside the ±10% band."""
    n = len(points)
    if n < 2:
        return math.nan
    mx = sum(p[0] for p in points) / n
    my = sum(p[1] for p in points) / n
    var = sum((p[0] - mx) ** 2 for p in points)
    return sum((p[0] - mx) * (p[1] - my) for p in points) / var * 3600 if var else math.nan


def print_summary(run: Run, args: argparse.Namespace) -> None:
    v = run.verdict
    line = "=" * 100
    print()
    print(line)
    print(f"cityorder soak ({run.started_at}, commit {run.commit}): {_clock(run.input_s)} of input, "
          f"warm-up {_clock(args.warmup)}")
    print(line)
    print(f"machine : {run.machine}")
    print(f"input   : {run.sent:,} messages at {run.sent / max(run.input_s, 1e-9):,.0f}/s (target "
          f"{args.rate:,.0f}/s; at most {run.producer_behind_max:,} behind schedule; {run.send_failed:,} "
          f"failed): " + ", ".join(f"{k} {n:,}" for k, n in sorted(run.sent_by.items())))
    print(f"probes  : {run.probe_rule} (persist {run.probe_duration_s:g} s), {args.probes_per_s:g}/s")
    print("alerts  : " + (", ".join(f"{k} {n:,}" for k, n in sorted(run.alerts.items())) or "none"))
    lat = run.latencies_ms
    if lat:
        print(f"latency : {len(lat):,} opened/updated, beyond the 5 s window: p50 {pct(lat, 0.5):,.0f} "
              f"ms, p90 {pct(lat, 0.9):,.0f} ms, p99 {pct(lat, 0.99):,.0f} ms, max {max(lat):,.0f} ms "
              f"(whole run)")
    fc = run.final_counters
    if fc:
        print("worker  : " + ", ".join(f"{k.replace('_', ' ')} {n:,.0f}" for k, n in fc.items()))
    if run.crashes:
        print(f"crashes : {len(run.crashes)} agent crash(es) in the worker's log, first: "
              f"{run.crashes[0][:200]}")
    print("-" * 100)
    print_verdict(v, args, run.worker_exit)
    print("note    : the embedded broker keeps every record (no retention) and slows down as "
          "partitions fill; long runs measure it too")
    print(line)


def print_verdict(v: dict[str, Any], args: argparse.Namespace, worker_exit: int | None) -> None:
    if not v.get("measurable"):
        print(f"VERDICT: NOT MEASURED — {v.get('why')}")
        return
    r, il, eb = v["rss"], v["ingest_lag"], v["eval_behind_s"]
    print(f"RSS     : reference {r['reference_mb']:.1f} MB at {_clock(r['at_s'])}; after it "
          f"{r['min_mb']:.1f} .. {r['max_mb']:.1f} MB ({r['min_rel']:+.1%} .. {r['max_rel']:+.1%}; band "
          f"±{r['band']:.0%}); last {r['last_mb']:.1f} MB; trend {r['slope_mb_per_h']:+.1f} MB/h"
          f"  -> {'PASS' if r['pass'] else 'FAIL'}")
    print(f"ingest lag (records): max {il['first_half_max']:,.0f} in the first half after the warm-up, "
          f"{il['second_half_max']:,.0f} in the second; bounded if second <= {il['absolute_bound']:,.0f} "
          f"({args.lag_abs_s:g} s of input), or <= {il['factor']:g}x first and <= {il['ceiling']:,.0f} "
          f"({args.lag_ceiling_s:g} s)  -> {'PASS' if il['pass'] else 'FAIL'}")
    print(f"engines behind the wall clock (s, beyond the window): max {eb['first_half_max']:.2f} then "
          f"{eb['second_half_max']:.2f}; bounded if second <= {eb['absolute_bound']:g} s, or <= "
          f"{eb['factor']:g}x first and <= {eb['ceiling']:g} s  -> {'PASS' if eb['pass'] else 'FAIL'}")
    if not v["worker_alive"]:
        print(f"worker  : exited with {worker_exit} during the run  -> FAIL")
    if not v.get("complete", True):
        print(f"run     : stopped early: {v['stopped']}  -> FAIL")
    print(f"VERDICT : {'PASS' if v['pass'] else 'FAIL'} (RSS within ±{args.rss_band:.0%} after "
          f"{_clock(args.warmup)}, lag bounded, worker alive, run complete)")


def _clean(o: Any) -> Any:
    """NaN -> null, recursively (JSON has no NaN)."""
    if isinstance(o, float):
        return None if math.isnan(o) or math.isinf(o) else o
    if isinstance(o, dict):
        return {k: _clean(v) for k, v in o.items()}
    if isinstance(o, list | tuple):
        return [_clean(v) for v in o]
    return o


def write_json(run: Run, path: Path) -> None:
    data = asdict(run)
    data["samples"] = [[s["t"], s["rss_kb"], s["broker_rss_kb"], s["ingest_lag"], s["behind_s"]]
                       for s in data["samples"]]
    data["samples_columns"] = ["t_s", "worker_rss_kb", "broker_rss_kb", "ingest_lag_records", "behind_s"]
    lat = data.pop("latencies_ms")
    data["latency_ms"] = {"n": len(lat), "p50": pct(lat, 0.5), "p90": pct(lat, 0.9), "p99": pct(lat, 0.99),
                          "max": max(lat) if lat else None}
    path.write_text(json.dumps(_clean(data), ensure_ascii=False, separators=(",", ":")) + "\n")


# -- main -------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m bench.soak", description=(__doc__ or "").split("\n\n")[0])
    ap.add_argument("--duration", type=seconds, default=3600.0, help="input time: 1h (default), 11m, 300s")
    ap.add_argument("--warmup", type=seconds, default=600.0,
                    help="RSS reference and verdict from here on (default 10m)")
    ap.add_argument("--interval", type=seconds, default=60.0, help="one line every (default 60s)")
    ap.add_argument("--scrape", type=seconds, default=2.0, help="/metrics and /proc every (default 2s)")
    ap.add_argument("--rate", type=float, default=5_000.0, help="messages/s in all (default 5,000)")
    ap.add_argument("--tracks", type=int, default=10_000, help="load tracks alive at a time (default 10,000)")
    ap.add_argument("--track-life", type=seconds, default=300.0,
                    help="longest life of a load track (default 5m; each also < 80%% of its label's "
                         "shortest persist)")
    ap.add_argument("--probes-per-s", type=float, default=1.0, help="new probe tracks a second (default 1)")
    ap.add_argument("--fire-rule", default=None,
                    help="probe rule (default: the camera rule that opens soonest)")
    ap.add_argument("--linger-ms", type=int, default=500,
                    help="the producer's linger (default 500; counted in the latency)")
    ap.add_argument("--ingest-linger-ms", type=int, default=500,
                    help="the worker's CITYORDER_INGEST_LINGER (default 500; counted in the latency)")
    ap.add_argument("--rss-band", type=float, default=0.10,
                    help="RSS tolerance after the warm-up (default 0.10)")
    ap.add_argument("--lag-abs-s", type=float, default=2.0,
                    help="lag bounded: second-half max <= this many seconds (of input, for ingest "
                         "lag) (default 2) ...")
    ap.add_argument("--lag-factor", type=float, default=2.0,
                    help="... or <= this x first-half max (default 2) ...")
    ap.add_argument("--lag-ceiling-s", type=float, default=10.0,
                    help="... and <= this many seconds (default 10)")
    ap.add_argument("--min-free-mb", type=float, default=2048.0,
                    help="stop (and fail) when the machine's MemAvailable falls below this (default "
                         "2048): the embedded broker keeps every record, ~19 GB an hour at 5,000/s")
    ap.add_argument("--seed", type=int, default=7, help="demo day and load (default 7)")
    ap.add_argument("--json", type=Path, default=None, help="write every figure here as JSON")
    ap.add_argument("--keep", action="store_true", help="keep the logs directory")
    ap.add_argument("--verdict-of", type=Path, default=None, metavar="JSON",
                    help="run nothing: the verdict on a run saved with --json, with this invocation's "
                         "thresholds (and its --warmup, if given)")
    args = ap.parse_args(argv)
    args.warmup_given = any(a == "--warmup" or a.startswith("--warmup=") for a in (argv or sys.argv[1:]))
    if args.verdict_of is None and args.warmup >= args.duration:
        ap.error(f"--warmup ({args.warmup:g} s) must be shorter than --duration ({args.duration:g} s): "
                 f"the verdict is on the time after it")
    if args.duration <= 0 or args.interval <= 0 or args.scrape <= 0 or args.rate <= 0:
        ap.error("--duration, --interval, --scrape and --rate must be positive")
    return args


def verdict_of(path: Path, args: argparse.Namespace) -> int:
    """The verdict on a saved run: thresholds can be argued about after an hour's run without
    running it again (the samples are all in the JSON)."""
    data = json.loads(path.read_text())
    cfg = data.get("config", {})
    args.rate = cfg.get("rate", args.rate)
    if not args.warmup_given:
        args.warmup = cfg.get("warmup", args.warmup)
    run = Run(config=cfg, worker_exit=data.get("worker_exit"), stopped=data.get("stopped"))
    nan = math.nan
    run.samples = [Sample(t, rss, brss, lag if lag is not None else nan, b if b is not None else nan)
                   for t, rss, brss, lag, b in data.get("samples", [])]
    v = judge(run, args)
    print(f"run of {data.get('started_at')} at commit {data.get('commit')}: {len(run.samples)} samples, "
          f"warm-up {_clock(args.warmup)}")
    print_verdict(v, args, run.worker_exit)
    if not v.get("measurable"):
        return 2
    return 0 if v["pass"] else 1


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.verdict_of is not None:
        return verdict_of(args.verdict_of, args)
    signal.signal(signal.SIGTERM, _on_sigterm)
    logs = Path(tempfile.mkdtemp(prefix="cityorder-soak-"))
    run = Run(config={k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()})
    run.started_at = time.strftime("%Y-%m-%d %H:%M %Z")
    run.commit = _git_head()
    run.machine = (f"{_cpu_model()}, os.cpu_count() {os.cpu_count()}, load average "
                   f"{', '.join(f'{x:.2f}' for x in os.getloadavg())} at start; "
                   f"{platform.python_implementation()} {platform.python_version()}")
    print(f"soak: commit {run.commit}; {run.machine}; logs in {logs}", flush=True)
    rng = random.Random(args.seed)
    now_ms = int(time.time() * 1000)
    try:
        stream = LiveStream(args.seed, int((args.duration + DEMO_MARGIN_S) * 1000), args.fire_rule,
                            args.tracks)
    except BenchError as e:  # no camera persist rule matches for the whole run at this hour
        print(f"\nERROR: {e}", file=sys.stderr, flush=True)
        return 2
    demo = demo_lines(now_ms, now_ms + int((args.duration + DEMO_MARGIN_S) * 1000), args.seed)
    traffic = Traffic(stream, demo, rng, args.track_life, args.probes_per_s)
    run.probe_rule, run.probe_duration_s = stream.rule.id, stream.duration_s
    print(f"  traffic: {args.rate:,.0f} msgs/s: demo day live ({len(demo):,} lines in the window), "
          f"probes {stream.rule.id} (persist {stream.duration_s:g} s, {stream.fire_cameras} cameras) "
          f"{args.probes_per_s:g}/s, the rest from {args.tracks:,} load tracks "
          f"({', '.join(stream.bg_labels)}) living 30 s to {args.track_life:g} s; producer linger "
          f"{args.linger_ms} ms, ingest linger {args.ingest_linger_ms} ms", flush=True)
    broker = EmbeddedBroker(log_dir=logs / "broker")
    worker: WorkerProc | None = None
    measured = False
    try:
        broker.start()
        settings = make_settings(broker, fresh_prefix("soak"), "wall", logs / "state-soak").model_copy(
            update={"ingest_linger_ms": args.ingest_linger_ms})
        asyncio.run(ensure_topics(settings, default_topics(settings)))
        worker = WorkerProc(settings, logs / "soak-worker.log", "soak worker")
        wait_all_ready([worker])
        settled = wait_ingest_stable(settings, 1)
        print(f"  broker: Tansu pid {broker.pid}; worker pid {worker.pid} ready, {settled}; "
              f"RSS {(rss_kb(worker.pid) or 0) / 1024:.1f} MB before any input", flush=True)
        soak = Soak(settings, broker, worker, traffic, args, run)
        try:
            asyncio.run(soak.main())
        except KeyboardInterrupt:
            run.stopped = f"interrupted at {_clock(run.input_s)}"
            print(f"  {run.stopped}: the verdict covers what was measured", flush=True)
        run.crashes = worker.crashes()
        measured = True
    except BenchError as e:
        print(f"\nERROR: {e}", file=sys.stderr, flush=True)
    finally:
        if worker is not None:
            worker.stop()
        broker.stop()
    run.verdict = (judge(run, args) if measured else
                   {"measurable": False, "why": "the run failed", "pass": False})
    if measured:
        print_summary(run, args)
    if args.json is not None:
        write_json(run, args.json)
        print(f"figures written to {args.json}", flush=True)
    if measured and not args.keep and run.verdict.get("pass"):
        shutil.rmtree(logs, ignore_errors=True)
    else:
        print(f"logs kept in {logs}", flush=True)
    if not measured or not run.verdict.get("measurable"):
        return 2
    return 0 if run.verdict["pass"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
