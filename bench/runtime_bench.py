"""Runtime benchmark: the Kafka worker on the embedded broker, against a bare consumer.

Targets (issue 4, raised by issue 18): one worker drains >= 40,000 events/s and >= 40% of
what a bare aiokafka consumer that only parses JSON reads from the same broker; at a fixed
input rate, p99 latency from an event's arrival to the ``city.alerts`` message it causes is
<= 250 ms beyond the reorder window; two workers in one group drain >= 1.8x what one does.
Run on demand::

    .venv/bin/python -m bench.runtime_bench --quick        # 30k messages, 5 s latency window
    .venv/bin/python -m bench.runtime_bench                # 300k messages, 20 s latency window
    .venv/bin/python -m bench.runtime_bench --profile      # + one worker under cProfile

Everything runs on this machine: the script starts the embedded broker (Tansu, memory
storage) and ``cityorder worker`` subprocesses (``python -m streams.cli worker`` with
``CITYORDER_*`` variables, as the e2e tests start them), and stops them all on exit.

1. Bare consumer: N contract-shaped ``city.events.camera`` messages (the engine benchmark's
   generator: demo city, tracks whose labels a default rule matches where they are, here
   7,500 at a time, each seen every ~30 s, 20% replaced every 30 s) are produced to a
   4-partition topic; an ``AIOKafkaConsumer`` (assigned, no group) reads them with ``getmany``
   and ``orjson.loads`` each value. Median of three reads.
2. One worker, event clock: the worker starts on a fresh prefix; once it is ready and its
   ingest group is Stable, the same N messages (CreateTime = observed_at, cameras balanced
   over the partitions) and an end-of-input tick are produced (~1 s) and the worker drains
   them. Done = every message ingested and every internal partition's engine has applied
   everything up to the last event (``cityorder_engine_progress_timestamp_seconds``).
   events/s = N / (production start -> done). (The messages are produced after the worker is
   ready, not before: ingest starts minutes-worth of work before /readyz says ready, and two
   workers would otherwise rebalance in the middle of the drain.)
3. Latency, wall clock: one worker with the default pack, a producer sending camera messages
   at ``--rate`` whose CreateTime and ``observed_at`` are the send time. Among them, tracks of
   the camera rule that fires soonest at the city's time (``muck-truck.uncovered``, 20 s, in the
   default pack), started at ``--fire-per-s``; each opens an alert ``persist.duration`` after
   its first sighting. Which rules and zone schedules are open depends on the city's local time,
   so the run is made by day and by night (``--at``): a copy of the demo map whose time zone
   puts its clock at 10:00 or 22:00 now, on a working day (``map_at``).
   Latency of an ``opened`` / ``updated`` message = its Kafka timestamp - the send time of its
   newest evidence item (or its ``at``, if later: an ``updated`` held back by the 60 s
   spacing) - the reorder window.
   Also: ingest lag and how far the engines' clocks trail the wall clock (scraped once a
   second), and what the state changelog received.
4. Two workers: (2) again with two workers in one group; also says which internal
   partitions each evaluates and how many inputs were counted late (work not done).
5. ``--profile``: (2) again with the worker under cProfile (CPU time per thread, every
   thread; ``--profile-timer wall`` for wall time), top functions grouped by where they live;
   ``--profile-workers 2``: (4) so, both workers' profiles summed.

CPU shares (utime + stime from /proc) of the broker, the workers and this process are printed
for every part, next to ``os.cpu_count()``.
"""

from __future__ import annotations

import argparse
import array
import asyncio
import contextlib
import cProfile
import heapq
import json
import math
import os
import platform
import pstats
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
import zlib
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any
from zoneinfo import ZoneInfo

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from bench.engine_bench import (
    LABEL_WEIGHTS,
    M_PER_DEG,
    MAP,
    MOBILE,
    PACK,
    SIGMA_MOBILE_M,
    SIGMA_STILL_M,
    Workload,
    _camera_rules,
    _cpu_model,
    build_workload,
    camera_spots,
)
from models.timestamps import format_timestamp_ms, parse_timestamp_ms
from models.vocabulary import ALERTS_TOPIC as ALERTS
from rules.citymap import CityMap
from rules.pack import Persist, Rule, load_rules
from streams.broker import EmbeddedBroker
from streams.dev import free_port
from streams.partitioned import TICK_HEADER, grid_partition
from streams.settings import COMPRESSIONS, INPUT_TOPICS, Settings
from streams.topics import default_topics, ensure_topics

ROOT = Path(__file__).resolve().parent.parent
CAMERA = "city.events.camera"

TARGET_SHARE_OF_BARE = 0.40
TARGET_ONE_EPS = 40_000
TARGET_P99_MS = 250.0
TARGET_TWO_OVER_ONE = 1.8
MIN_SAMPLES = 50

PARTITIONS = 4
READY_TIMEOUT_S = 60.0
FETCH_MAX_RECORDS = 5_000  # as streams.ingest_loop
BACKLOG_BATCH_BYTES = 64 * 1024  # ~200 messages: partitions stay within seconds of event time
#: What the polls read (see WorkerProc.metrics): ingested input, each partition's progress,
#: and the inputs held and resident memory the drain reports at their most.
PROGRESS = ("cityorder_input_records_total", "cityorder_engine_progress_timestamp_seconds",
            "cityorder_held_inputs", "process_resident_memory_bytes")
STALL_S = 30.0  # a drain whose ingest and evaluation do not move for this long has failed
IDLE_S = 5.0
CATCH_UP_S = 120.0  # latency run: how long to wait after the last send for the engines to catch up
CATCH_UP_STALL_S = 45.0  # ... unless their progress does not move for this long
#: The workers' --loglevel. Not "warning": at WARN and above faust.Worker keeps its terminal
#: spinner, which sets the root logger to DEBUG, so every log.debug of aiokafka and Faust
#: (one per produced record) builds a LogRecord (see --worker-loglevel).
WORKER_LOGLEVEL = "info"
CLK_TCK = os.sysconf("SC_CLK_TCK")


class BenchError(RuntimeError):
    """Something the benchmark cannot measure through (a worker that never became ready, ...)."""


# -- processes ----------------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float | None:
    """utime + stime of a process (all its threads), from /proc/<pid>/stat."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rfind(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


class CpuMeter:
    """CPU seconds of named processes between ``start()`` and ``stop()``."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.pids = pids
        self.began: dict[str, float] = {}
        self.used: dict[str, float] = {}
        self.wall = 0.0
        self._t = 0.0

    def _read(self) -> dict[str, float]:
        out = {name: cpu_seconds(pid) for name, pid in self.pids.items()}
        got = {k: v for k, v in out.items() if v is not None}
        got["bench (this process)"] = time.process_time()
        return got

    def start(self) -> None:
        self.began, self._t = self._read(), time.perf_counter()

    def stop(self) -> None:
        end, self.wall = self._read(), time.perf_counter() - self._t
        self.used = {k: end[k] - self.began[k] for k in end if k in self.began}

    def cores(self) -> dict[str, float]:
        return {k: v / self.wall for k, v in self.used.items()} if self.wall else {}


class WorkerProc:
    """One ``cityorder worker`` process (like tests.e2e.workers.Worker, with a choice of argv)."""

    def __init__(self, settings: Settings, log_path: Path, name: str, argv: list[str] | None = None) -> None:
        self.name = name
        self.port = free_port(0)
        env = {k: v for k, v in os.environ.items() if not k.startswith("CITYORDER_")}
        env |= settings.model_copy(update={"web_port": self.port}).to_env()
        self.log_path = log_path
        self._log = log_path.open("ab")
        self.argv = argv or [sys.executable, "-m", "streams.cli", "worker", "--loglevel", WORKER_LOGLEVEL]
        self.proc = subprocess.Popen(self.argv, env=env, cwd=ROOT, stdout=self._log,
                                     stderr=subprocess.STDOUT)
        self.spawned = time.perf_counter()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def _get(self, path: str, timeout: float) -> tuple[int, bytes]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=timeout) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()

    def ready(self) -> bool:
        if self.proc.poll() is not None:
            raise BenchError(f"{self.name} exited with code {self.proc.returncode} before it was ready; "
                             f"log {self.log_path}:\n{self.tail()}")
        try:
            status, body = self._get("/readyz", 2)
            return status == 200 and bool(json.loads(body).get("ready"))
        except (OSError, ValueError):
            return False

    def owned(self) -> list[int]:
        """The internal partitions this worker evaluates (its /readyz)."""
        try:
            _, body = self._get("/readyz", 2)
            return sorted(json.loads(body).get("owned", []))
        except (OSError, ValueError):
            return []

    def metrics(self, names: Sequence[str] = ()) -> Metrics:
        """The worker's metrics; only the series ``names`` if given (``?name[]=``: the polls
        many times a second would otherwise walk every case of the worker's partitions each
        time, ~15 ms of the worker's own time after a 300k drain)."""
        query = "?" + urllib.parse.urlencode([("name[]", n) for n in names]) if names else ""
        # A worker under cProfile can take many seconds to answer between two records.
        _, body = self._get(f"/metrics{query}", 60)
        return Metrics.parse(body.decode())

    def scrape_time(self, names: Sequence[str] = (), n: int = 9) -> float:
        """The median time of ``n`` scrapes of /metrics (``names`` as :meth:`metrics`) in a row:
        with the worker idle, about the worker's own time for one (polling is not free)."""
        times = []
        for _ in range(n):
            began = time.perf_counter()
            self.metrics(names)
            times.append(time.perf_counter() - began)
        return statistics.median(times)

    def stop(self, timeout: float = 15.0) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._log.close()

    def crashes(self) -> list[str]:
        """Crashes of Faust agents in this worker's log (Faust restarts a crashed agent after a
        back-off; whatever it was doing is not redone), reason first."""
        with contextlib.suppress(ValueError):
            self._log.flush()
        text = self.log_path.read_text(errors="replace")
        return [line.split("Crashed reason=", 1)[1].strip() for line in text.splitlines()
                if "Crashed reason=" in line]

    def tail(self, lines: int = 40) -> str:
        with contextlib.suppress(ValueError):
            self._log.flush()
        text = self.log_path.read_text(errors="replace").splitlines()
        return "\n".join(f"    | {line}" for line in text[-lines:]) or "    | (empty log)"


def wait_all_ready(workers: list[WorkerProc], timeout: float = READY_TIMEOUT_S) -> float:
    """perf_counter time at which every worker answered /readyz with ready."""
    pending = list(workers)
    deadline = time.perf_counter() + timeout
    while pending:
        pending = [w for w in pending if not w.ready()]
        if not pending:
            break
        if time.perf_counter() > deadline:
            tails = "\n".join(f"  {w.name} (log {w.log_path}):\n{w.tail()}" for w in pending)
            raise BenchError(f"worker(s) not ready within {timeout:g} s:\n{tails}")
        time.sleep(0.1)
    return time.perf_counter()


@dataclass(slots=True)
class Metrics:
    """A parsed Prometheus exposition: (name, labels, value) samples."""

    samples: list[tuple[str, dict[str, str], float]]

    @classmethod
    def parse(cls, text: str) -> Metrics:
        out = []
        for line in text.splitlines():
            if not line or line[0] == "#":
                continue
            head, _, value = line.rpartition(" ")
            name, _, rest = head.partition("{")
            labels: dict[str, str] = {}
            for item in rest.rstrip("}").split('",'):
                if "=" in item:
                    k, _, v = item.partition("=")
                    labels[k.strip()] = v.strip().strip('"')
            with contextlib.suppress(ValueError):
                out.append((name, labels, float(value)))
        return cls(out)

    def sum(self, name: str, **labels: str) -> float:
        return sum(v for n, lb, v in self.samples
                   if n == name and all(lb.get(k) == x for k, x in labels.items()))

    def by(self, name: str, label: str) -> dict[str, float]:
        return {lb[label]: v for n, lb, v in self.samples if n == name and label in lb}

    def buckets(self, name: str, **labels: str) -> list[tuple[float, float]]:
        """A histogram's cumulative buckets, (upper bound, count), by bound."""
        return sorted((float(lb["le"]), v) for n, lb, v in self.samples
                      if n == f"{name}_bucket" and all(lb.get(k) == x for k, x in labels.items()))

    def pauses(self, name: str, **labels: str) -> tuple[int, float, float]:
        """(count, total seconds, upper bound of the largest one's bucket) of a histogram."""
        buckets = self.buckets(name, **labels)
        count = int(self.sum(f"{name}_count", **labels))
        top = bucket_bound(buckets, count) if count else 0.0
        return count, self.sum(f"{name}_sum", **labels), top

    def histogram(self, name: str) -> tuple[float, float, float]:
        """(mean, p50, p99) of a Prometheus histogram; the quantiles are the upper bounds of the
        buckets they fall in (as coarse as the buckets)."""
        count = self.sum(f"{name}_count")
        buckets = self.buckets(name)

        return (self.sum(f"{name}_sum") / count if count else math.nan,
                bucket_bound(buckets, 0.5 * count), bucket_bound(buckets, 0.99 * count))


def bucket_bound(buckets: list[tuple[float, float]], count: float) -> float:
    """The upper bound of the first cumulative bucket holding ``count`` samples."""
    return next((le for le, v in buckets if v >= count), math.nan)


# -- input ------------------------------------------------------------------------------------------


#: ``--checkpoint-interval`` and ``--compression`` as given (absent: the worker's defaults).
WORKER_SETTINGS: dict[str, str] = {}


def make_settings(broker: EmbeddedBroker, prefix: str, clock: str, state_dir: Path,
                  city: Path = MAP) -> Settings:
    return Settings.from_env({}, brokers=broker.url, topic_prefix=prefix, partitions=PARTITIONS,
                             city=city, store="memory", clock=clock, session_timeout="3s",
                             state_dir=state_dir, **WORKER_SETTINGS)


def fresh_prefix(what: str) -> str:
    return f"bench-{what}-{uuid.uuid4().hex[:8]}."


def balanced_partitions(keys: list[str], partitions: int) -> dict[str, int]:
    """Cameras to partitions so that every partition holds about as many messages.

    Not the client's hash of the key: with 40 cameras a hash leaves two workers' shares of the
    source partitions ~60/40, and then their ingests (each reading its own partitions at its own
    pace) drift apart in event time even faster, so more input reaches the engines more than
    the allowed lateness behind their clocks and is counted late instead of applied
    (--hash-partitions shows it)."""
    load = [0] * partitions
    out = {}
    for cam, count in Counter(keys).most_common():
        p = load.index(min(load))
        out[cam] = p
        load[p] += count
    return out


async def produce_backlog(settings: Settings, w: Workload, stamps: list[int], end_tick: int | None,
                          hashed: bool = False) -> float:
    """Send every message of ``w`` to the camera topic (key: camera; partition: balanced, or
    crc32 of the key if ``hashed``; CreateTime: the event's observed_at, as a recorded day
    replayed with its arrivals) in record batches as fast as the broker takes them, then the
    end tick; returns the seconds it took."""
    topic = settings.topic(CAMERA)
    part = {k: zlib.crc32(k.encode()) % PARTITIONS for k in set(w.keys)} if hashed else \
        balanced_partitions(w.keys, PARTITIONS)
    producer = AIOKafkaProducer(**settings.producer_kwargs(), client_id="bench-backlog", acks=1,
                                linger_ms=5, max_batch_size=BACKLOG_BATCH_BYTES)
    await producer.start()
    began = time.perf_counter()
    try:
        batches = {p: producer.create_batch() for p in range(PARTITIONS)}
        futures = []
        for raw, key, ts in zip(w.messages, w.keys, stamps, strict=True):
            k = key.encode()
            p = part[key]
            if batches[p].append(key=k, value=raw, timestamp=ts) is None:
                futures.append(await producer.send_batch(batches[p], topic, partition=p))
                batches[p] = producer.create_batch()
                batches[p].append(key=k, value=raw, timestamp=ts)
            if len(futures) >= 16:
                await asyncio.gather(*futures)
                futures.clear()
        for p, b in batches.items():
            if b.record_count():
                futures.append(await producer.send_batch(b, topic, partition=p))
        await asyncio.gather(*futures)
        if end_tick is not None:
            header = [(TICK_HEADER, format_timestamp_ms(end_tick, UTC).encode())]
            await asyncio.gather(*[await producer.send(settings.topic(name), b"", partition=p, headers=header,
                                                       timestamp_ms=end_tick)
                                   for name in INPUT_TOPICS for p in range(PARTITIONS)])
    finally:
        await producer.stop()
    return time.perf_counter() - began


async def _group_state(settings: Settings, group: str) -> tuple[str, int]:
    admin = AIOKafkaAdminClient(**settings.aiokafka_kwargs(), client_id="bench-admin")
    await admin.start()
    try:
        for resp in await admin.describe_consumer_groups([group]):
            for g in resp.groups:
                return g[2], len(g[5])
        return "?", 0
    finally:
        await admin.close()


def wait_ingest_stable(settings: Settings, members: int, timeout: float = 30.0) -> str:
    """Until the ingest consumer group is Stable with ``members`` members, so the backlog lands
    on a settled assignment (Faust's own group is covered by /readyz: not_rebalancing). If the
    broker cannot describe the group, wait two session timeouts instead. Says which it did."""
    group = settings.ingest_group
    deadline = time.perf_counter() + timeout
    while True:
        try:
            state = asyncio.run(_group_state(settings, group))
        except KafkaError as e:
            time.sleep(2 * settings.session_timeout_ms / 1000)
            return f"DescribeGroups failed ({type(e).__name__}); waited {2 * settings.session_timeout_ms} ms"
        if state == ("Stable", members):
            return f"ingest group Stable with {members} member(s)"
        if time.perf_counter() > deadline:
            raise BenchError(f"ingest group not Stable with {members} members after {timeout:g} s: {state}")
        time.sleep(0.25)


# -- 1. the bare consumer, and the peer --------------------------------------------------------------

PEER_PYTHON = ROOT / ".venv-peer" / "bin" / "python"


def peer_drain(settings: Settings, topic: str, n: int, runs: int = 3) -> float:
    """Median events/s of bench/quix_peer.py (quixstreams in its own venv: it pins pydantic
    below cityorder's) draining the topic, from its first message processed to its last."""
    if not PEER_PYTHON.exists():
        raise BenchError(f"no {PEER_PYTHON}: `make bench-runtime` makes it (quixstreams==3.28.1)")
    rates = []
    for i in range(runs):
        proc = subprocess.run([str(PEER_PYTHON), str(ROOT / "bench" / "quix_peer.py"),
                               "--brokers", ",".join(settings.bootstrap_servers), "--topic", topic,
                               "--messages", str(n)], capture_output=True, text=True,
                              timeout=120 + n / 1000)
        if proc.returncode != 0:
            raise BenchError(f"the quixstreams peer failed:\n{proc.stderr[-2000:]}")
        got = json.loads(proc.stdout.strip().splitlines()[-1])
        rates.append(got["events_per_s"])
        print(f"  run {i + 1}: {got['messages']:,} messages in {got['seconds']:.2f} s, "
              f"{got['events_per_s']:,.0f} events/s, {got['windows']:,} windows closed", flush=True)
    return sorted(rates)[len(rates) // 2]




async def bare_consume(settings: Settings, topic: str, n: int, timeout: float) -> float:
    """Seconds for an assigned AIOKafkaConsumer to getmany + orjson.loads ``n`` records."""
    consumer = AIOKafkaConsumer(**settings.aiokafka_kwargs(), group_id=None, enable_auto_commit=False,
                                auto_offset_reset="earliest", fetch_max_wait_ms=100,
                                max_partition_fetch_bytes=1024 * 1024)
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        loads = orjson.loads
        count = 0
        began = time.perf_counter()
        while count < n:
            if time.perf_counter() - began > timeout:
                raise BenchError(f"bare consumer read only {count:,} of {n:,} records in {timeout:g} s")
            fetched = await consumer.getmany(timeout_ms=100, max_records=FETCH_MAX_RECORDS)
            for recs in fetched.values():
                for r in recs:
                    loads(r.value)
                count += len(recs)
        return time.perf_counter() - began
    finally:
        await consumer.stop()


# -- 2 and 4. draining a backlog -------------------------------------------------------------------


@dataclass(slots=True)
class Drain:
    workers: int
    n: int
    produce_s: float                  # the backlog's production (the workers ingest meanwhile)
    ingested_s: float                 # production start -> every message ingested
    done_s: float                     # production start -> everything ingested and applied
    steady_eps: float | None          # 10% -> 90% of the event-time progress, evaluated side
    per_worker_input: list[int]
    ingest_busy_s: list[float]        # cityorder_ingest_batch_seconds_sum, per worker
    evaluate_busy_s: list[float]      # cityorder_evaluate_batch_seconds_sum, per worker
    transitions: int
    late: int
    duplicates: int
    internal: dict[str, int]          # internal records applied, by kind (parts, progress)
    cpu_s: dict[str, float]           # production start -> done
    cores: dict[str, float]
    settled: str = ""
    crashes: list[str] = field(default_factory=list)
    owned: list[list[int]] = field(default_factory=list)  # internal partitions, per worker
    loop_lag: list[tuple[int, float, float, int]] = field(default_factory=list)  # per worker, see loop_lag
    polls: int = 0                    # /metrics scrapes of each worker while draining
    peak_held: list[int] = field(default_factory=list)   # per worker: most inputs its evaluators held
    peak_rss: list[float] = field(default_factory=list)  # per worker: most resident memory, bytes
    scrape_s: list[tuple[float, float]] = field(default_factory=list)  # per worker, idle after: one
    #   scrape's time, of everything and of the progress series the polls read

    @property
    def eps(self) -> float:
        return self.n / self.done_s

    @property
    def eps_per_worker_cpu(self) -> float:
        """Events drained per second of the workers' CPU: what a worker does with a core, so
        that two/one can be told apart from how many cores the machine had left for them."""
        return self.n / _workers(self.cpu_s)

    @property
    def worker_cores(self) -> float:
        return _workers(self.cores)


def _workers(by_process: dict[str, float]) -> float:
    """The workers' sum of a per-process figure (the broker's and this script's left out)."""
    return sum(v for k, v in by_process.items() if k.startswith("worker"))


def drain(broker: EmbeddedBroker, w: Workload, stamps: list[int], workers: int, logs: Path, label: str,
          argv: list[str] | None = None, stop_timeout: float = 15.0, hashed: bool = False) -> Drain:
    """Start ``workers`` workers on a fresh prefix, wait until they are ready and their groups
    settled, then produce the backlog and time them until everything is ingested and applied
    (/metrics polled every 0.1 s for the progress series alone)."""
    settings = make_settings(broker, fresh_prefix(label), "event", logs / f"state-{label}")
    asyncio.run(ensure_topics(settings, default_topics(settings)))
    n, first_ms, last_ms = len(w.messages), w.first_ms, w.last_ms
    procs: list[WorkerProc] = []
    try:
        for i in range(workers):
            procs.append(WorkerProc(settings, logs / f"{label}-worker{i + 1}.log", f"{label} worker {i + 1}",
                                    argv=argv))
        wait_all_ready(procs)
        settled = wait_ingest_stable(settings, workers)
        meter = CpuMeter({"broker": broker.pid or 0}
                         | {p.name.removeprefix(f"{label} "): p.pid for p in procs})
        meter.start()
        ready = [p.metrics() for p in procs]    # the loop's lag from here on: not the start-up's
        began = time.perf_counter()
        produce_s = asyncio.run(produce_backlog(settings, w, stamps, last_ms + 5_000, hashed))
        timeout = 60.0 + n / 500
        ingested_at = None
        last_seen: tuple[float, float] = (-1.0, -1.0)
        moved = time.perf_counter()
        trace: list[tuple[float, float]] = []  # (perf_counter, evaluated fraction by event time)
        peak_held, peak_rss = [0] * workers, [0.0] * workers
        while True:
            ms = [p.metrics(PROGRESS) for p in procs]
            now = time.perf_counter()
            for i, m in enumerate(ms):
                peak_held[i] = max(peak_held[i], int(m.sum("cityorder_held_inputs")))
                peak_rss[i] = max(peak_rss[i], m.sum("process_resident_memory_bytes"))
            ingested = sum(m.sum("cityorder_input_records_total", topic=CAMERA) for m in ms)
            if ingested_at is None and ingested >= n:
                ingested_at = now
            progress: dict[str, float] = {}
            for m in ms:
                for part, v in m.by("cityorder_engine_progress_timestamp_seconds", "partition").items():
                    progress[part] = max(v, progress.get(part, v))
            low = min(progress.values()) * 1000 if len(progress) == PARTITIONS else first_ms
            trace.append((now, max(0.0, (low - first_ms) / max(1, last_ms - first_ms))))
            if ingested_at is not None and low >= last_ms - 1:
                done = now
                break
            if (ingested, low) != last_seen:
                last_seen, moved = (ingested, low), now
            stalled = now - moved > STALL_S
            if now - began > timeout or stalled:
                crashes = [c for p in procs for c in p.crashes()]
                why = (f"the evaluate agent crashed {len(crashes)} time(s), last: {crashes[-1][:300]}"
                       if crashes else "\n".join(f"  {p.name}:\n{p.tail(20)}" for p in procs))
                raise BenchError(f"{label}: {'no progress for ' if stalled else 'not done after '}"
                                 f"{STALL_S if stalled else timeout:.0f} s (ingested {ingested:,.0f} of "
                                 f"{n:,}, evaluated {trace[-1][1]:.1%} by event time); {why}")
            for p in procs:
                if p.proc.poll() is not None:
                    raise BenchError(f"{p.name} exited with {p.proc.returncode}:\n{p.tail()}")
            time.sleep(0.1)
        meter.stop()
        final = settled_metrics(procs)
        owned = [p.owned() for p in procs]
        scrape_s = [(p.scrape_time(), p.scrape_time(PROGRESS)) for p in procs]
    finally:
        for p in procs:
            if p.proc.poll() is None:
                p.proc.send_signal(signal.SIGTERM)
        for p in procs:
            p.stop(stop_timeout)
    t10 = next((t for t, f in trace if f >= 0.1), None)
    t90 = next((t for t, f in trace if f >= 0.9), None)
    steady = 0.8 * n / (t90 - t10) if t10 is not None and t90 is not None and t90 > t10 else None
    return Drain(workers, n, produce_s, ingested_at - began, done - began, steady,
                 [int(m.sum("cityorder_input_records_total", topic=CAMERA)) for m in final],
                 [m.sum("cityorder_ingest_batch_seconds_sum") for m in final],
                 [m.sum("cityorder_evaluate_batch_seconds_sum") for m in final],
                 int(sum(m.sum("cityorder_alert_transitions_total") for m in final)),
                 int(sum(m.sum("cityorder_late_inputs_total") for m in final)),
                 int(sum(m.sum("cityorder_duplicate_inputs_total") for m in final)),
                 {k: int(sum(m.sum("cityorder_internal_records_total", kind=k) for m in final))
                  for k in ("parts", "progress")},
                 meter.used, meter.cores(), settled, [c for p in procs for c in p.crashes()], owned,
                 [loop_lag(a, b) for a, b in zip(ready, final, strict=True)], polls=len(trace),
                 scrape_s=scrape_s, peak_held=peak_held, peak_rss=peak_rss)


def loop_lag(before: Metrics, after: Metrics) -> tuple[int, float, float, int]:
    """(samples, p99, largest, samples over 50 ms) of ``cityorder_event_loop_lag_seconds``
    between two scrapes; the quantile and the largest as the upper bounds of their buckets."""
    name = "cityorder_event_loop_lag_seconds"
    earlier = dict(before.buckets(name))
    counts = [(le, v - earlier.get(le, 0.0)) for le, v in after.buckets(name)]
    total = counts[-1][1] if counts else 0.0
    within = dict(counts).get(0.05, total)
    return int(total), bucket_bound(counts, 0.99 * total), bucket_bound(counts, total), int(total - within)


def settled_metrics(procs: list[WorkerProc], quiet_s: float = 0.6, limit_s: float = 10.0) -> list[Metrics]:
    """The workers' metrics once their transition counts stop moving: "done" is when every
    partition has applied the last input, and the timers due before the end tick fire just
    after (read at once, one two-worker run counted 11,023 of the 11,108 transitions)."""
    final = [p.metrics() for p in procs]
    total = sum(m.sum("cityorder_alert_transitions_total") for m in final)
    still = time.perf_counter()
    deadline = still + limit_s
    while time.perf_counter() - still < quiet_s and time.perf_counter() < deadline:
        time.sleep(0.2)
        final = [p.metrics() for p in procs]
        now_total = sum(m.sum("cityorder_alert_transitions_total") for m in final)
        if now_total != total:
            total, still = now_total, time.perf_counter()
    return final


def partition_shares(w: Workload) -> list[float]:
    """Share of the backlog's parts per internal partition (each track stays in its camera's
    grid, and a grid's parts all go to one partition: streams.partitioned.grid_partition)."""
    city = CityMap.load(MAP)
    grid_of = {c.id: c.grid_id for c in city.cameras.values()}
    counts = Counter(grid_partition(grid_of[k], PARTITIONS) for k in w.keys)
    return [counts[p] / len(w.keys) for p in range(PARTITIONS)]


def print_drain(d: Drain, bare_eps: float | None = None, shares: list[float] | None = None) -> None:
    share = f" = {d.eps / bare_eps:.1%} of the bare consumer" if bare_eps else ""
    print(f"  workers ready, {d.settled}; then the backlog was produced in {d.produce_s:.1f} s", flush=True)
    print(f"  all ingested at {d.ingested_s:.1f} s ({d.n / d.ingested_s:,.0f}/s), all applied at "
          f"{d.done_s:.1f} s: {d.eps:,.0f} events/s{share}", flush=True)
    steady = f"{d.steady_eps:,.0f} events/s" if d.steady_eps else "n/a (too few samples)"
    print(f"  steady, 10% -> 90% of event-time progress applied: {steady}; transitions {d.transitions:,}, "
          f"late {d.late:,}, duplicates {d.duplicates:,}")
    for i in range(d.workers):
        print(f"  worker {i + 1}: ingested {d.per_worker_input[i]:,}, in ingest batches "
              f"{d.ingest_busy_s[i]:.2f} s, in evaluate records {d.evaluate_busy_s[i]:.2f} s")
        if i < len(d.peak_held):
            print(f"    at most {d.peak_held[i]:,} inputs held for ingest progress, "
                  f"{d.peak_rss[i] / 2**20:,.0f} MiB resident (polls)")
        if i < len(d.loop_lag):
            samples, p99, top, over = d.loop_lag[i]
            print(f"    its event loop woke a 0.1 s sleeper late by: p99 <= {p99 * 1000:g} ms, "
                  f"the most <= {top * 1000:g} ms, {over} by over 50 ms ({samples:,} samples; "
                  "bucket bounds)")
    if shares and d.workers > 1 and all(d.owned):
        loads = [sum(shares[p] for p in o) for o in d.owned]
        owners = [f"worker {i + 1} partitions {o} = {ld:.0%} of the parts"
                  for i, (o, ld) in enumerate(zip(d.owned, loads, strict=True))]
        print(f"  evaluate load by owner: {', '.join(owners)} -> at most {1 / max(loads):.2f}x one worker's "
              f"evaluate rate")
    if d.scrape_s:
        each = max(polled for _, polled in d.scrape_s)
        print(f"  /metrics polled {d.polls:,} times while draining (~{d.polls * each:.1f} s of a worker's "
              "time at most); one scrape after the drain, idle, of everything / of what the polls read: "
              + ", ".join(f"{whole * 1000:.1f} / {polled * 1000:.1f} ms" for whole, polled in d.scrape_s))
    print(f"  internal records applied: {d.internal['parts']:,} with parts, {d.internal['progress']:,} "
          f"progress; mean {sum(d.evaluate_busy_s) / max(1, sum(d.internal.values())) * 1000:.1f} ms each")
    if d.crashes:
        print(f"  !! the evaluate agent crashed {len(d.crashes)} time(s) (Faust restarts it after 5 s; "
              f"the crashed record's state writes and alerts are not redone): {d.crashes[0][:200]}")
    print("  CPU, production start -> done: " + ", ".join(f"{k} {v:.2f} cores ({d.cpu_s[k]:.1f} s)"
                                                        for k, v in d.cores.items()), flush=True)


# -- 3. latency at a fixed rate, wall clock ---------------------------------------------------------


def rule_matches(city: CityMap, rule: Rule, zone_ids: tuple[str, ...], times: tuple[int, ...]) -> bool:
    """Whether ``rule`` matches a point in these zones at every one of ``times`` (schedule,
    scheduled zones, permitted / outside / inside; labels and confidence aside)."""
    cal = city.calendar
    for t in times:
        if rule.schedule is not None and not rule.schedule.is_open(t, cal):
            return False
        kinds = {city.zones[z].kind for z in zone_ids
                 if (sch := city.zones[z].schedule) is None or sch.is_open(t, cal)}
        if kinds & set(rule.permitted) or kinds & set(rule.outside):
            return False
        if rule.inside and not kinds & set(rule.inside):
            return False
    return True


@dataclass(slots=True)
class Track:
    cam: str
    label: str
    lat: float
    lon: float
    s_lat: float  # per-sighting noise, degrees
    s_lon: float
    track_id: str
    until: float = math.inf  # seconds into the run after which it is no longer sighted


class LiveStream:
    """Camera messages stamped with the wall clock: background tracks of the engine
    benchmark's label mix (no rule fires on them within minutes) plus "firing" tracks of the
    camera rule that opens soonest at this wall time, started at a fixed rate."""

    def __init__(self, seed: int, span_ms: int, fire_rule: str | None, bg_tracks: int,
                 city_path: Path = MAP) -> None:
        self.rng = rng = random.Random(seed)
        self.city = city = CityMap.load(city_path)
        ruleset = load_rules([PACK])
        self.reorder_ms = ruleset.reorder_window_ms
        rules = [r for r in _camera_rules(ruleset) if isinstance(r.operator, Persist) and r.match.labels]
        now = int(time.time() * 1000)
        times = (now, now + span_ms // 2, now + span_ms)
        spots: dict[str, list[tuple[str, float, float]]] = {r.id: [] for r in rules}
        for cam, lat, lon, zone_ids in camera_spots(city, rng):
            for r in rules:
                if rule_matches(city, r, zone_ids, times):
                    spots[r.id].append((cam.id, round(lat, 5), round(lon, 5)))
        usable = [r for r in rules if spots[r.id]]
        if fire_rule is not None:
            usable = [r for r in usable if r.id == fire_rule]
            if not usable:
                raise BenchError(f"--fire-rule {fire_rule}: no such camera persist rule matches anywhere "
                                 f"now (known: {', '.join(sorted(r.id for r in rules))})")
        if not usable:
            raise BenchError("no camera persist rule of the default pack matches anywhere at this wall time")
        self.rule = min(usable, key=lambda r: (r.operator.duration_ms, -len(spots[r.id])))  # type: ignore[union-attr]
        assert isinstance(self.rule.operator, Persist)
        self.duration_s = self.rule.operator.duration_ms / 1000
        self.fire_label = sorted(self.rule.match.labels or ())[0]
        self.fire_spots = spots[self.rule.id]
        self.fire_cameras = len({c for c, _, _ in self.fire_spots})
        by_label: dict[str, list[tuple[str, float, float]]] = {}
        for r in rules:
            for lb in r.match.labels or ():
                if lb in LABEL_WEIGHTS and lb not in (self.rule.match.labels or ()):
                    by_label.setdefault(lb, []).extend(spots[r.id])
        by_label = {lb: v for lb, v in by_label.items() if v}
        self.bg_labels = sorted(by_label)
        weights = [LABEL_WEIGHTS[lb] for lb in self.bg_labels]
        self.bg: list[Track] = []
        for i in range(bg_tracks):
            label = rng.choices(self.bg_labels, weights)[0]
            cam, lat, lon = rng.choice(by_label[label])
            sigma = SIGMA_MOBILE_M if label in MOBILE else SIGMA_STILL_M
            m_lon = M_PER_DEG * math.cos(math.radians(lat))
            self.bg.append(Track(cam, label, lat, lon, sigma / M_PER_DEG, sigma / m_lon, f"b-{i}"))
        rng.shuffle(self.bg)
        self.bg_next = 0
        self.fired = 0
        self.fmt = city.calendar.format
        self.sent_ms = array.array("q")  # event seq -> CreateTime (= observed_at) in epoch ms

    def new_fire_track(self, until: float) -> Track:
        cam, lat, lon = self.rng.choice(self.fire_spots)
        self.fired += 1
        return Track(cam, self.fire_label, lat, lon, 0.0, 0.0, f"f-{self.fired}", until)

    def next_bg(self) -> Track:
        t = self.bg[self.bg_next]
        self.bg_next = (self.bg_next + 1) % len(self.bg)
        return t

    def message(self, tr: Track, now_ms: int) -> tuple[bytes, bytes]:
        seq = len(self.sent_ms)
        self.sent_ms.append(now_ms)
        rng = self.rng
        lat, lon = tr.lat, tr.lon
        if tr.s_lat:
            lat, lon = round(lat + rng.gauss(0.0, tr.s_lat), 5), round(lon + rng.gauss(0.0, tr.s_lon), 5)
        x, y = rng.uniform(0.05, 0.7), rng.uniform(0.05, 0.7)
        return tr.cam.encode(), orjson.dumps({
            "event_id": f"{tr.cam}-{seq:09d}", "camera_id": tr.cam, "observed_at": self.fmt(now_ms),
            "snapshot_url": f"https://evidence.example/{tr.cam}/{seq}.jpg",
            "detections": [{
                "label": tr.label, "track_id": tr.track_id, "confidence": round(rng.uniform(0.62, 0.98), 2),
                "bbox": [round(x, 3), round(y, 3), round(rng.uniform(0.02, 0.3), 3),
                         round(rng.uniform(0.02, 0.3), 3)],
                "location": {"lat": lat, "lon": lon}}]})


#: ``--at``: the local hour the latency run's city is put at, on a working day.
AT_HOURS = {"day": 10, "night": 22}


def map_at(at: str, now_ms: int, dest: Path) -> tuple[Path, str]:
    """The demo map, or a copy of it whose clock reads ``at`` now (AT_HOURS, on a working day).

    Which rules and zone schedules are open depends on the city's local time, so the day's and
    the night's workloads differ; a session at one hour could measure only one of them. The
    copy moves the city's time zone to the whole-hour UTC offset (``Etc/GMT±N``) that puts the
    local hour at AT_HOURS[at], and makes the local date a working day (调休, or no longer a
    holiday). Everything else is the demo map. Returns the map's path and a description."""
    if at == "now":
        return MAP, "the demo map's own time (Asia/Shanghai)"
    utc = datetime.fromtimestamp(now_ms / 1000, UTC)
    offset = (AT_HOURS[at] - utc.hour + 12) % 24 - 12            # -12 .. +11 hours
    tz = "Etc/GMT" if offset == 0 else f"Etc/GMT{-offset:+d}"    # IANA's Etc signs are inverted
    local = utc.astimezone(ZoneInfo(tz))
    raw = json.loads(MAP.read_text(encoding="utf-8"))
    cal = raw["city"].setdefault("calendar", {})
    day = local.date().isoformat()
    cal["holidays"] = [d for d in cal.get("holidays", []) if d != day]
    if local.weekday() >= 5:
        cal["workdays"] = sorted({*cal.get("workdays", []), day})
    raw["city"]["time_zone"] = tz
    path = dest / f"city-{at}.geojson"
    path.write_text(json.dumps(raw, ensure_ascii=False), encoding="utf-8")
    return path, (f"{at}: the demo map at {tz}, local {local:%a %Y-%m-%d %H:%M}"
                  + (" (made a 调休 working day)" if local.weekday() >= 5 else ""))


@dataclass(slots=True)
class Latency:
    at: str                           # map_at's description
    rule: str
    duration_s: float
    fire_cameras: int
    rate: float
    run_s: float
    sent: int
    achieved_rate: float
    producer_behind_max: int
    fire_tracks: int
    bg_tracks: int
    alerts: Counter[tuple[str, str]]
    samples: dict[str, list[float]]   # transition -> ms beyond the reorder window
    at_samples: list[float]           # from the newest evidence's send time only, opened + updated
    lag_max: float
    lag_mean: float
    behind_max_ms: float              # wall clock - (engine progress + reorder window), worst partition
    behind_p50_ms: float
    cores: dict[str, float]
    cpu_s: dict[str, float]
    reorder_ms: int
    excluded: int
    crashes: list[str]
    caught_up_s: float | None         # after the last send, until the engines had applied it
    evaluate_records: int
    evaluate_s: float
    changelog: tuple[int, dict[str, list[int]]]
    idle_cores: dict[str, float]
    stages: dict[str, tuple[float, float, float]]   # histogram -> (mean, p50, p99 bucket bound) in s
    gc: dict[str, tuple[int, float, float]]         # kind -> (collections, seconds, largest's bucket bound)


def pct(values: list[float], q: float) -> float:
    """Nearest-rank percentile."""
    s = sorted(values)
    return s[max(0, math.ceil(q * len(s)) - 1)] if s else math.nan


async def _produce_live(settings: Settings, stream: LiveStream, rate: float, run_s: float, create_s: float,
                        fire_per_s: float, fire_period_s: float, life: float) -> tuple[int, float, int]:
    """Send at ``rate`` for ``run_s``; firing tracks start during the first ``create_s``.
    Returns (sent, seconds, most messages behind schedule)."""
    # linger 20 ms: Tansu's memory storage slows down linearly with the number of record
    # batches in a partition (tail produce->consume 3 ms at 0, 83 ms at 50k, 229 ms at 150k
    # one-record batches, 5 s at 200k; it has no retention), and at 5,000 msgs/s a 2 ms linger
    # made ~500 batches/s per partition. The linger counts in the latency: CreateTime is taken
    # when a message is handed to the producer.
    producer = AIOKafkaProducer(**settings.producer_kwargs(), client_id="bench-live", acks=1, linger_ms=20)
    await producer.start()
    topic = settings.topic(CAMERA)
    sightings: list[tuple[float, int, Track]] = []
    created = 0
    sent = 0
    behind = 0
    futures: list[asyncio.Future[Any]] = []
    began = time.monotonic()
    try:
        while (el := time.monotonic() - began) < run_s:
            while (c := created / fire_per_s) <= min(el, create_s):
                heapq.heappush(sightings, (c, created, stream.new_fire_track(c + life)))
                created += 1
            due = int(rate * el)
            behind = max(behind, due - sent)
            while sent < due:
                if sightings and sightings[0][0] <= el:
                    at, k, tr = heapq.heappop(sightings)
                    if at + fire_period_s <= tr.until:
                        heapq.heappush(sightings, (at + fire_period_s, k, tr))
                else:
                    tr = stream.next_bg()
                key, value = stream.message(tr, int(time.time() * 1000))
                futures.append(await producer.send(topic, value, key=key,
                                                   timestamp_ms=stream.sent_ms[-1]))
                sent += 1
            if len(futures) >= 1000:
                await asyncio.gather(*futures)
                futures.clear()
            await asyncio.sleep(0.004)
        await asyncio.gather(*futures)
    finally:
        await producer.stop()
    return sent, time.monotonic() - began, behind


async def _scrape(worker: WorkerProc, reorder_ms: int, out: list[tuple[float, float, float]],
                  stop: asyncio.Event) -> None:
    """Once a second: (ingested, ingest lag, worst evaluator delay behind the wall clock)."""
    while not stop.is_set():
        m = await asyncio.to_thread(worker.metrics, (*PROGRESS, "cityorder_ingest_lag_records"))
        now = time.time() * 1000
        prog = m.by("cityorder_engine_progress_timestamp_seconds", "partition")
        behind = max((now - (v * 1000 + reorder_ms) for v in prog.values()), default=math.nan)
        out.append((m.sum("cityorder_input_records_total", topic=CAMERA),
                    m.sum("cityorder_ingest_lag_records", topic=CAMERA), behind))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 1.0)


async def read_alerts(settings: Settings, quiet_s: float = 2.0,
                      timeout: float = 60.0) -> list[tuple[int, dict[str, Any]]]:
    """Every city.alerts message from the start: (Kafka timestamp ms, value)."""
    topic = settings.topic(ALERTS)
    consumer = AIOKafkaConsumer(**settings.aiokafka_kwargs(), group_id=None, enable_auto_commit=False,
                                auto_offset_reset="earliest", fetch_max_wait_ms=100)
    await consumer.start()
    out: list[tuple[int, dict[str, Any]]] = []
    try:
        tps = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        began = last = time.monotonic()
        while time.monotonic() - last < quiet_s and time.monotonic() - began < timeout:
            for recs in (await consumer.getmany(timeout_ms=200)).values():
                out += [(r.timestamp, orjson.loads(r.value)) for r in recs]
                last = time.monotonic()
    finally:
        await consumer.stop()
    return out


async def changelog_sample(settings: Settings, per_partition: int = 200) -> tuple[int, dict[str, list[int]]]:
    """The state changelog: records written in all, and (count, bytes) by kind of key
    (``engine``, ``meta``, ``grid``, ...) among the last ``per_partition`` of each partition."""
    topic = f"{settings.app_id}-state-changelog"
    consumer = AIOKafkaConsumer(**settings.aiokafka_kwargs(), group_id=None, enable_auto_commit=False,
                                fetch_max_wait_ms=100, max_partition_fetch_bytes=16 * 1024 * 1024)
    await consumer.start()
    kinds: dict[str, list[int]] = {}
    try:
        tps = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        consumer.assign(tps)
        ends = await consumer.end_offsets(tps)
        for tp in tps:
            consumer.seek(tp, max(0, ends[tp] - per_partition))
        pending = {tp for tp in tps if ends[tp] > 0}
        deadline = time.monotonic() + 15
        while pending and time.monotonic() < deadline:
            for tp, recs in (await consumer.getmany(*pending, timeout_ms=300)).items():
                for r in recs:
                    parts = (r.key or b"").decode(errors="replace").split("\x1f")
                    kind = parts[1].split("\x1e")[0] if len(parts) > 1 else "?"
                    if len(parts) > 1 and "\x1e" in parts[1]:
                        kind += " chunk"   # streams/statelog.py: a value written in chunks
                    k = kinds.setdefault(kind, [0, 0])
                    k[0] += 1
                    k[1] += len(r.value or b"")
                if recs and recs[-1].offset >= ends[tp] - 1:
                    pending.discard(tp)
        return sum(ends.values()), kinds
    finally:
        await consumer.stop()


def latency(broker: EmbeddedBroker, logs: Path, *, at: str, rate: float, window_s: float,
            fire_per_s: float, bg_tracks: int, seed: int, fire_rule: str | None,
            max_warmup_s: float) -> Latency:
    city, where = map_at(at, int(time.time() * 1000), logs)
    print(f"  city's clock: {where}", flush=True)
    settings = make_settings(broker, fresh_prefix(f"latency-{at}"), "wall", logs / f"state-latency-{at}",
                             city)
    asyncio.run(ensure_topics(settings, default_topics(settings)))
    # The run: firing tracks start during the window, each opens duration_s later, and input
    # goes on 10 s after the last opening (so no opening depends on idle ticks).
    probe = LiveStream(seed, 0, fire_rule, 1, city)
    if probe.duration_s > max_warmup_s:
        raise BenchError(f"the soonest camera rule now is {probe.rule.id} ({probe.duration_s:g} s), more "
                         f"than --max-warmup {max_warmup_s:g} s")
    # Firing tracks: seen every 2 s if that fits in 40% of the rate, else less often (never so
    # rarely that a gap ends the episode), else fewer of them.
    assert isinstance(probe.rule.operator, Persist)
    dur, gap = probe.duration_s, probe.rule.operator.gap_ms / 1000
    period = 2.0
    life = dur + 2 * period + 5.0          # seen from its start until just after it opens
    budget = 0.4 * rate
    if fire_per_s * life / period > budget:
        period = min(10.0, gap / 3, max(1.0, dur / 3), fire_per_s * life / budget)
        life = dur + 2 * period + 5.0
        fire_per_s = min(fire_per_s, budget * period / life)
    run_s = dur + window_s + 2 * period + 10.0
    stream = LiveStream(seed, int((run_s + 60) * 1000), probe.rule.id, bg_tracks, city)
    expected = int(fire_per_s * window_s) + 1
    print(f"  firing rule {stream.rule.id} (persist {stream.duration_s:g} s, label {stream.fire_label}, "
          f"{len(stream.fire_spots)} spots at {stream.fire_cameras} cameras); {fire_per_s:.3g} new tracks/s "
          f"for {window_s:g} s (~{expected} openings), each seen every {period:.3g} s; {bg_tracks:,} "
          f"background tracks ({', '.join(stream.bg_labels)}); {rate:,.0f} msgs/s for {run_s:.0f} s",
          flush=True)
    worker = WorkerProc(settings, logs / f"latency-{at}-worker.log", f"latency worker ({at})")
    try:
        wait_all_ready([worker])
        wait_ingest_stable(settings, 1)
        meter = CpuMeter({"broker": broker.pid or 0, "worker": worker.pid})
        meter.start()
        time.sleep(IDLE_S)  # no input yet: what an idle worker costs (its consumers long-poll)
        meter.stop()
        idle = meter.cores()

        async def run() -> tuple[tuple[int, float, int], list[tuple[float, float, float]]]:
            scraped: list[tuple[float, float, float]] = []
            stop = asyncio.Event()
            scraper = asyncio.create_task(_scrape(worker, stream.reorder_ms, scraped, stop))
            meter.start()
            try:
                result = await _produce_live(settings, stream, rate, run_s, window_s, fire_per_s, period,
                                             life)
            finally:
                meter.stop()
                stop.set()
                await scraper
            return result, scraped

        (sent, took, behind), scraped = asyncio.run(run())
        # Wait until the engines have caught up with the last message sent (their progress plus the
        # reorder window reaches it), so that every alert the run caused has been emitted.
        end_ms = stream.sent_ms[-1] if stream.sent_ms else 0
        ended = time.perf_counter()
        caught_up = None
        last_low, moved = -1.0, time.perf_counter()
        while time.perf_counter() - ended < CATCH_UP_S and time.perf_counter() - moved < CATCH_UP_STALL_S:
            m = worker.metrics(PROGRESS)
            prog = m.by("cityorder_engine_progress_timestamp_seconds", "partition")
            low = min(prog.values()) * 1000 if len(prog) == PARTITIONS else 0.0
            if low != last_low:
                last_low, moved = low, time.perf_counter()
            ingested = m.sum("cityorder_input_records_total", topic=CAMERA)
            if ingested >= sent and low + stream.reorder_ms >= end_ms:
                caught_up = time.perf_counter() - ended
                break
            if worker.proc.poll() is not None:
                raise BenchError(f"latency worker exited with {worker.proc.returncode}:\n{worker.tail()}")
            time.sleep(0.5)
        time.sleep(2.0)
        final = worker.metrics()
        changelog = asyncio.run(changelog_sample(settings))
        alerts = asyncio.run(read_alerts(settings))
    finally:
        worker.stop()
    crashes = worker.crashes()
    samples: dict[str, list[float]] = {"opened": [], "updated": []}
    at_samples: list[float] = []
    kinds: Counter[tuple[str, str]] = Counter()
    excluded = 0
    for ts, a in alerts:
        kinds[(a["rule_id"], a["transition"])] += 1
        if a["transition"] not in samples or not a.get("evidence"):
            continue
        eid = a["evidence"][0]["event_id"]
        try:
            sent_ms = stream.sent_ms[int(eid.rsplit("-", 1)[1])]
        except (ValueError, IndexError):
            continue
        at_ms = parse_timestamp_ms(a["at"])
        if max(sent_ms, at_ms) > end_ms - stream.reorder_ms - 1000:
            excluded += 1  # applied by idle ticks after the input stopped, not by later arrivals
            continue
        # From the later of the newest evidence's send time and the transition's `at`: an
        # `updated` held back by the 60 s spacing is due at `at`, not when its evidence came.
        samples[a["transition"]].append(ts - max(sent_ms, at_ms) - stream.reorder_ms)
        at_samples.append(ts - sent_ms - stream.reorder_ms)
    during = [s for s in scraped if s[0] > 0]
    lags = [s[1] for s in during] or [math.nan]
    behinds = [s[2] for s in during if not math.isnan(s[2])] or [math.nan]
    return Latency(where, stream.rule.id, stream.duration_s, stream.fire_cameras, rate, took, sent,
                   sent / took, behind, stream.fired, bg_tracks, kinds, samples, at_samples, max(lags),
                   sum(lags) / len(lags), max(behinds), pct(behinds, 0.5), meter.cores(), meter.used,
                   stream.reorder_ms, excluded, crashes, caught_up,
                   int(final.sum("cityorder_evaluate_batch_seconds_count")),
                   final.sum("cityorder_evaluate_batch_seconds_sum"), changelog, idle,
                   {stage: final.histogram(f"cityorder_{stage}_seconds")
                    for stage in ("ingest_delay", "evaluate_delay", "checkpoint")},
                   {kind: final.pauses("cityorder_gc_pause_seconds", kind=kind)
                    for kind in ("young", "full")})


def print_latency(r: Latency) -> None:
    if r.crashes:
        print(f"  !! the evaluate agent crashed {len(r.crashes)} time(s) during the run: "
              f"{r.crashes[0][:200]}")
    opened = sum(n for (rule, tr), n in r.alerts.items() if rule == r.rule and tr == "opened")
    print(f"  sent {r.sent:,} in {r.run_s:.1f} s ({r.achieved_rate:,.0f}/s; producer at most "
          f"{r.producer_behind_max:,} messages behind schedule); {r.fire_tracks:,} firing tracks, "
          f"{opened:,} of their alerts opened")
    print("  alerts: " + (", ".join(f"{rule} {tr} {n:,}" for (rule, tr), n in sorted(r.alerts.items()))
                          or "none"))
    for tr, v in r.samples.items():
        if v:
            print(f"  {tr:8} {len(v):5,} samples: beyond the {r.reorder_ms / 1000:g} s window p50 "
                  f"{pct(v, 0.5):6.0f} ms, p90 {pct(v, 0.9):6.0f} ms, p99 {pct(v, 0.99):6.0f} ms, "
                  f"max {max(v):6.0f} ms")
    if r.at_samples:
        v = r.at_samples
        print(f"  (alert's Kafka timestamp - later of its newest evidence's send time and its `at` - window; "
              f"from the evidence alone: p50 {pct(v, 0.5):.0f} ms, p99 {pct(v, 0.99):.0f} ms)")
    if r.excluded:
        print(f"  ({r.excluded} transitions on evidence from the last {r.reorder_ms / 1000 + 1:g} s of input "
              f"left out: idle ticks, not arrivals, applied them)")
    print(f"  evaluate: {r.evaluate_records:,} internal records, {r.evaluate_s:.1f} s in them "
          f"({r.evaluate_s / max(1, r.evaluate_records) * 1000:.1f} ms each); after the last send, engines "
          + (f"caught up in {r.caught_up_s:.1f} s" if r.caught_up_s is not None
             else f"had NOT caught up (gave up after {CATCH_UP_S:g} s, or {CATCH_UP_STALL_S:g} s without "
                  f"progress): alerts still due are missing, the latencies above are too low"))
    total, kinds = r.changelog
    sampled = sum(c for c, _ in kinds.values()) or 1
    mean = sum(b for _, b in kinds.values()) / sampled
    per_record = total / max(1, r.evaluate_records)
    recent = ", ".join(f"{k} {c} x {b / c / 1000:.1f} KB"
                       for k, (c, b) in sorted(kinds.items(), key=lambda kv: -kv[1][1]) if c)
    print(f"  state changelog: {total:,} records written ({per_record:.1f} per internal record, "
          f"~{total * mean / r.run_s / 1e6:.1f} MB/s at the recent sizes); recent records by key: {recent}")
    print("  where an input's time goes, and checkpoints (worker histograms, p50/p99 are bucket bounds): "
          + "; ".join(f"{stage.replace('_', ' ')} mean {m * 1000:,.0f} ms, p50 ≤ {p50 * 1000:,.0f} ms, "
                      f"p99 ≤ {p99 * 1000:,.0f} ms" for stage, (m, p50, p99) in r.stages.items()))
    print("  garbage collector pauses (whole worker life): " + "; ".join(
        f"{kind} {n:,} in {secs * 1000:,.0f} ms, largest ≤ {top * 1000:,.0f} ms"
        for kind, (n, secs, top) in r.gc.items()))
    print(f"  ingest lag (scraped 1/s): max {r.lag_max:,.0f} records, mean {r.lag_mean:,.0f}; engine clock "
          f"behind the wall clock beyond the window: p50 {r.behind_p50_ms:,.0f} ms, "
          f"max {r.behind_max_ms:,.0f} ms")
    print("  CPU during the run: " + ", ".join(f"{k} {v:.2f} cores" for k, v in r.cores.items())
          + f"; before it, {IDLE_S:g} s without input: "
          + ", ".join(f"{k} {v:.2f}" for k, v in r.idle_cores.items()), flush=True)


# -- 5. the worker under cProfile ----------------------------------------------------------------


def profiled_worker(out: str, timer: str = "cpu", loglevel: str = "info") -> None:
    """The ``--profile`` worker process: ``cityorder worker`` with a cProfile per thread (CPU time
    of that thread, ``time.thread_time``), merged and dumped to ``out`` when it exits; the
    threads' totals go to ``out.threads.json``; ``out`` gets the process id as a suffix, so
    that the workers of one drain each write their own. Started as ``python -c`` by :func:`main`."""
    out = f"{out}.{os.getpid()}"
    import streams.cli  # imported before profiling starts: imports are not what is measured
    import streams.worker

    profiles: list[tuple[str, cProfile.Profile]] = []
    lock = threading.Lock()
    clock = time.thread_time if timer == "cpu" else time.perf_counter

    def start_thread(frame: FrameType, event: str, arg: Any) -> None:
        prof = cProfile.Profile(clock)
        with lock:
            profiles.append((threading.current_thread().name, prof))
        prof.enable()  # replaces this hook for the rest of the thread

    main_prof = cProfile.Profile(clock)
    profiles.append(("MainThread", main_prof))
    threading.setprofile(start_thread)
    sys.argv = ["cityorder", "worker", "--loglevel", loglevel]
    main_prof.enable()
    try:
        streams.cli.main()
    except SystemExit:
        pass
    finally:
        main_prof.disable()
        threading.setprofile(None)
        merged: pstats.Stats | None = None
        totals: dict[str, float] = {}
        for name, prof in profiles:
            try:
                st = pstats.Stats(prof)
            except TypeError:  # a thread that never called anything
                continue
            totals[name] = totals.get(name, 0.0) + st.total_tt  # type: ignore[attr-defined]
            if merged is None:
                merged = st
            else:
                merged.add(st)
        if merged is not None:
            merged.dump_stats(out)
        Path(out + ".threads.json").write_text(json.dumps(totals))


GROUPS = (
    ("engine (rules/)", ("/rules/",)),
    ("decode (models/, pydantic)", ("/models/", "/pydantic")),
    ("cityorder runtime (streams/)", ("/streams/",)),
    ("Faust + mode", ("/faust/", "/mode/", "/venusian", "/croniter")),
    ("aiokafka", ("/aiokafka/", "/kafka/")),
    ("JSON (orjson, json)", ("orjson", "/json/")),
    ("prometheus_client", ("prometheus_client",)),
    ("web (aiohttp, yarl)", ("/aiohttp/", "/yarl/", "/multidict/")),
    ("asyncio + selectors + sockets", ("/asyncio/", "selectors", "socket", "select.", "_asyncio",
                                       "_overlapped", "epoll", "method 'send'", "method 'recv'")),
    ("pickle / zlib / hashing", ("pickle", "zlib", "crc32", "_hashlib", "hashlib")),
)


def group_of(key: tuple[str, int, str]) -> str:
    file, _, func = key
    text = f"{file} {func}"
    for name, needles in GROUPS:
        if any(n in text for n in needles):
            return name
    return "other (stdlib, builtins)"


def _short(key: tuple[str, int, str]) -> str:
    file, line, func = key
    for marker in ("site-packages/", str(ROOT) + "/", "/lib/python3.11/"):
        if marker in file:
            file = file.split(marker, 1)[1]
            break
    return f"{func}" if file == "~" else f"{file}:{line}({func})"


def profile_report(paths: list[Path], top: int = 25) -> str:
    """The profiles of a drain's workers, merged (their sum: per event, compare with a drain of
    another number of workers by the events each drained)."""
    st = pstats.Stats(*map(str, paths))
    raw: dict[tuple[str, int, str], tuple[int, int, float, float, Any]] = st.stats  # type: ignore[attr-defined]
    total = sum(v[2] for v in raw.values()) or 1.0
    lines = [f"  time profiled: {total:.1f} s (all threads' own time summed, {len(paths)} worker(s))"]
    threads: Counter[str] = Counter()
    for path in paths:
        threads_file = Path(str(path) + ".threads.json")
        if threads_file.exists():
            threads.update(json.loads(threads_file.read_text()))
    if threads:
        lines.append("  by thread: " + ", ".join(f"{k} {v:.1f} s" for k, v in threads.most_common()))
    by_group: Counter[str] = Counter()
    for key, v in raw.items():
        by_group[group_of(key)] += v[2]
    lines.append("  own time (tottime) by group:")
    for name, t in by_group.most_common():
        lines.append(f"    {name:34} {t:8.2f} s  {t / total:6.1%}")
    lines.append(f"  top {top} by cumulative time (coroutines count each resume as a call):")
    lines.append(f"    {'cumtime':>8} {'tottime':>8} {'ncalls':>10}  {'group':30} function")
    for key, (_cc, nc, tt, ct, _) in sorted(raw.items(), key=lambda kv: -kv[1][3])[:top]:
        lines.append(f"    {ct:8.2f} {tt:8.2f} {nc:10,}  {group_of(key)[:30]:30} {_short(key)[:110]}")
    lines.append(f"  top {top} by own time:")
    for key, (_cc, nc, tt, ct, _) in sorted(raw.items(), key=lambda kv: -kv[1][2])[:top]:
        lines.append(f"    {ct:8.2f} {tt:8.2f} {nc:10,}  {group_of(key)[:30]:30} {_short(key)[:110]}")
    return "\n".join(lines)


# -- main -----------------------------------------------------------------------------------------


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)  # so the finally blocks stop the workers and the broker


def main(argv: list[str] | None = None) -> int:
    global WORKER_LOGLEVEL, PARTITIONS
    ap = argparse.ArgumentParser(prog="python -m bench.runtime_bench", description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="30k messages and a 5 s latency window")
    ap.add_argument("--messages", type=int, default=None, help="backlog for (1), (2), (4) (default 300k)")
    ap.add_argument("--tracks", type=int, default=7_500,
                    help="tracks in the backlog, each seen every 30 s of event time (default 7,500)")
    ap.add_argument("--churn", type=float, default=0.2,
                    help="share of the backlog's tracks replaced every 30 s (default 0.2: ~2.5 min each)")
    ap.add_argument("--hash-partitions", action="store_true",
                    help="backlog partitioned by crc32 of the camera id instead of balanced")
    ap.add_argument("--spread", choices=("even", "demo"), default="even",
                    help="how tracks spread over the internal partitions: even (default), a new track "
                    "picks a partition, then a camera whose grid is in it; demo, a camera at random, "
                    "so the demo map's 40 cameras in 29 grids load partitions 0 and 2 with ~60%% of "
                    "the parts, which bounds any two-worker drain at ~1.6x (see bench/README.md)")
    ap.add_argument("--rate", type=float, default=5_000, help="latency run: messages/s (default 5,000)")
    ap.add_argument("--window", type=float, default=None,
                    help="latency run: seconds during which firing tracks start (default 20, quick 5)")
    ap.add_argument("--fire-per-s", type=float, default=20.0, help="latency run: new firing tracks a second")
    ap.add_argument("--bg-tracks", type=int, default=10_000, help="latency run: background tracks")
    ap.add_argument("--fire-rule", default=None, help="latency run: this camera rule (default: the soonest)")
    ap.add_argument("--max-warmup", type=float, default=300.0,
                    help="latency run: skip it if the soonest rule needs longer than this (s)")
    ap.add_argument("--at", default="day,night",
                    help="latency runs, comma-separated: day (10:00) and night (22:00) put the city's "
                    "clock there on a working day by a copy of the demo map with another time zone; "
                    "now keeps the map as it is (default day,night)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--profile", action="store_true",
                    help="(5): one more drain with the worker under cProfile")
    ap.add_argument("--profile-workers", type=int, choices=(1, 2), default=1,
                    help="(5): how many workers drain under cProfile (2: where a worker of two "
                    "spends what one alone does not; the report sums both)")
    ap.add_argument("--profile-timer", choices=("cpu", "wall"), default="cpu",
                    help="cpu: each thread's CPU time (default); wall: includes waiting, e.g. in epoll")
    ap.add_argument("--worker-loglevel", default="info", choices=("debug", "info", "warning", "error"),
                    help="the workers' --loglevel (default info, as `cityorder worker`)")
    ap.add_argument("--skip", default="", help="comma-separated parts to skip: bare,peer,one,latency,two")
    ap.add_argument("--keep", action="store_true", help="keep the logs directory")
    ap.add_argument("--checkpoint-interval", default=None,
                    help="the workers' --checkpoint-interval, e.g. 30s (default: the worker's default)")
    ap.add_argument("--partitions", type=int, default=PARTITIONS,
                    help=f"partitions of every topic (default {PARTITIONS}); more spread the grids "
                    "more evenly over two workers")
    ap.add_argument("--compression", default=None, choices=COMPRESSIONS,
                    help="the workers' --compression (default: the worker's default)")
    args = ap.parse_args(argv)
    n = args.messages or (30_000 if args.quick else 300_000)
    tracks = args.tracks
    window = args.window or (5.0 if args.quick else 20.0)
    skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    ats = [a.strip() for a in args.at.split(",") if a.strip()]
    if not ats or set(ats) - {"now", *AT_HOURS}:
        ap.error(f"--at {args.at!r}: write day, night or now, comma-separated")
    WORKER_LOGLEVEL = args.worker_loglevel
    PARTITIONS = args.partitions
    WORKER_SETTINGS.update({k: v for k, v in (("checkpoint_interval", args.checkpoint_interval),
                                              ("compression", args.compression)) if v})
    signal.signal(signal.SIGTERM, _on_sigterm)

    logs = Path(tempfile.mkdtemp(prefix="cityorder-runtime-bench-"))
    started = time.perf_counter()
    print(f"machine: {_cpu_model()}, os.cpu_count() {os.cpu_count()}, affinity "
          f"{sorted(os.sched_getaffinity(0))}; {platform.python_implementation()} "
          f"{platform.python_version()}; logs in {logs}", flush=True)
    print(f"building {n:,} camera messages: {tracks:,} tracks at a time, each seen every ~30 s, "
          f"{args.churn:.0%} replaced every 30 s, spread {args.spread} over the internal partitions ...",
          flush=True)
    spread = None if args.spread == "demo" else (lambda cam: grid_partition(cam.grid_id, PARTITIONS))
    w = build_workload(n, tracks, args.seed, 30.0, args.churn, 5, 1000, spread)
    print(f"  {w.build_s:.1f} s, mean {w.mean_bytes:.0f} B/message, {w.cameras_used} cameras, "
          f"{(w.last_ms - w.first_ms) / 60000:.1f} min of event time", flush=True)
    broker = EmbeddedBroker(log_dir=logs / "broker")
    results: dict[str, Any] = {}
    ok = False
    try:
        broker.start()
        print(f"broker: Tansu pid {broker.pid} at {broker.url}, ready in "
              f"{(broker.startup_seconds or 0) * 1000:.0f} ms", flush=True)

        stamps = [parse_timestamp_ms(orjson.loads(m)["observed_at"]) for m in w.messages]
        shares = partition_shares(w)
        print("internal partitions' share of the parts (grid_partition of each grid): "
              + ", ".join(f"p{p} {sh:.1%}" for p, sh in enumerate(shares)), flush=True)
        if "bare" not in skip:
            print("\n(1) bare consumer: getmany + orjson.loads, assigned, no group", flush=True)
            bare_settings = make_settings(broker, fresh_prefix("bare"), "event", logs / "state-bare")
            asyncio.run(ensure_topics(bare_settings, default_topics(bare_settings)))
            took = asyncio.run(produce_backlog(bare_settings, w, stamps, None, args.hash_partitions))
            print(f"  produced {n:,} messages to a {PARTITIONS}-partition topic in {took:.1f} s "
                  f"({n / took:,.0f}/s)", flush=True)
            runs = []
            meter = CpuMeter({"broker": broker.pid or 0})
            meter.start()
            for i in range(3):
                t = asyncio.run(bare_consume(bare_settings, bare_settings.topic(CAMERA), n, 60 + n / 2000))
                runs.append(t)
                print(f"  run {i + 1}: {t:.2f} s, {n / t:,.0f} msgs/s", flush=True)
            meter.stop()
            results["bare"] = n / sorted(runs)[1]
            results["bare_cores"] = meter.cores()
            print(f"  median {results['bare']:,.0f} msgs/s; CPU: " + ", ".join(
                f"{k} {v:.2f} cores" for k, v in meter.cores().items()), flush=True)
            if "peer" not in skip:
                print("\n(1b) the peer: quixstreams, a 10 s tumbling count per camera, same topic",
                      flush=True)
                results["peer"] = peer_drain(bare_settings, bare_settings.topic(CAMERA), n)

        if "one" not in skip:
            print("\n(2) one worker drains the backlog (event clock)", flush=True)
            d1 = drain(broker, w, stamps, 1, logs, "one", hashed=args.hash_partitions)
            results["one"] = d1
            print_drain(d1, results.get("bare"), shares)

        for at in [] if "latency" in skip else ats:
            print(f"\n(3) latency at {args.rate:,.0f} msgs/s, wall clock, default pack, {at}", flush=True)
            try:
                lat = latency(broker, logs, at=at, rate=args.rate, window_s=window,
                              fire_per_s=args.fire_per_s, bg_tracks=args.bg_tracks, seed=args.seed,
                              fire_rule=args.fire_rule, max_warmup_s=args.max_warmup)
                results.setdefault("latency", []).append(lat)
                print_latency(lat)
            except BenchError as e:
                if "--max-warmup" not in str(e):
                    raise
                print(f"  skipped: {e}", flush=True)

        if "two" not in skip:
            print("\n(4) two workers in one group drain the backlog (event clock)", flush=True)
            d2 = drain(broker, w, stamps, 2, logs, "two", hashed=args.hash_partitions)
            results["two"] = d2
            print_drain(d2, results.get("bare"), shares)
            if "one" in results:
                print(f"  two / one: {d2.eps / results['one'].eps:.2f}x (drain rate)"
                      + (f", {d2.steady_eps / results['one'].steady_eps:.2f}x (steady)"
                         if d2.steady_eps and results["one"].steady_eps else ""), flush=True)

        if args.profile:
            k = args.profile_workers
            who = "one worker drains" if k == 1 else f"{k} workers drain"
            print(f"\n(5) {who} the backlog under cProfile", flush=True)
            out = logs / "worker.pstats"
            code = (f"from bench.runtime_bench import profiled_worker; "
                    f"profiled_worker({str(out)!r}, {args.profile_timer!r}, {WORKER_LOGLEVEL!r})")
            dp = drain(broker, w, stamps, k, logs, "profile", argv=[sys.executable, "-c", code],
                       stop_timeout=120.0)
            print(f"  (profiled, so slower) {dp.eps:,.0f} events/s; the profile includes the workers' "
                  f"start-up and shutdown")
            dumps = sorted(p for p in logs.glob("worker.pstats.*") if p.suffix != ".json")
            if len(dumps) == k:
                results["profile"] = profile_report(dumps)
                print(results["profile"], flush=True)
            else:
                print(f"  {len(dumps)} of {k} profiles written; log:\n"
                      f"{(logs / 'profile-worker1.log').read_text()[-3000:]}")
        ok = True
    except BenchError as e:
        print(f"\nERROR: {e}", file=sys.stderr, flush=True)
    finally:
        broker.stop()
        if ok and not args.keep:
            shutil.rmtree(logs, ignore_errors=True)
        elif not ok:
            print(f"logs kept in {logs}", file=sys.stderr)
    if ok:
        summary(results, n, args, time.perf_counter() - started)
    return 0 if ok else 1


def _drain_rows(head: str, d: Drain, target: float | None = None) -> None:
    verdict = f"  {f'>= {target:,.0f}':>12}  {_verdict(d.eps >= target)}" if target else ""
    print(f"{head + ', drain rate (N / all applied)':58} {d.eps:>12,.0f} ev/s{verdict}")
    if d.steady_eps:
        print(f"{'    steady (10% -> 90% of event-time progress)':58} {d.steady_eps:>12,.0f} ev/s")
    print(f"{'    inputs counted late (not applied) / transitions':58} {d.late:>12,} / {d.transitions:,}")
    if d.crashes:
        print(f"{'    evaluate agent crashes (MessageSizeTooLarge etc.)':58} {len(d.crashes):>12,}")
    print(f"{'    CPU (cores) while draining':58} "
          + ", ".join(f"{k} {v:.2f}" for k, v in d.cores.items()))
    label = "    events per second of the workers' CPU"
    print(f"{label:58} {d.eps_per_worker_cpu:>12,.0f} ev/s")


def _verdict(ok: bool) -> str:
    return "PASS" if ok else "SHORT"


def summary(r: dict[str, Any], n: int, args: argparse.Namespace, took: float) -> None:
    line = "=" * 104
    print()
    print(line)
    print(f"cityorder runtime benchmark ({time.strftime('%Y-%m-%d %H:%M %Z')}, {took:.0f} s in all)")
    print(line)
    print(f"machine : {_cpu_model()}, os.cpu_count() {os.cpu_count()}; {platform.python_implementation()} "
          f"{platform.python_version()}; broker Tansu (embedded, memory storage), {PARTITIONS} partitions")
    print(f"input   : {n:,} camera messages (backlog); latency run {args.rate:,.0f} msgs/s")
    print("-" * 104)
    print(f"{'figure':58} {'measured':>18}  {'target':>12}  verdict")
    bare = r.get("bare")
    if bare:
        print(f"{'(1) bare consumer, getmany + orjson.loads':58} {bare:>12,.0f} msg/s  {'':>12}")
    peer = r.get("peer")
    if peer:
        print(f"{'(1b) quixstreams 3.28, 10 s tumbling count per camera':58} {peer:>12,.0f} ev/s  {'':>12}")
    if "one" in r:
        d = r["one"]
        _drain_rows("(2) one worker", d, TARGET_ONE_EPS)
        if bare:
            print(f"{'    drain rate / bare consumer':58} {d.eps / bare:>18.1%}  {'>= 40%':>12}  "
                  f"{_verdict(d.eps / bare >= TARGET_SHARE_OF_BARE)}")
    for lat in r.get("latency", []):
        allv = lat.samples["opened"] + lat.samples["updated"]
        enough = len(allv) >= MIN_SAMPLES
        head = f"(3) {lat.achieved_rate:,.0f} msgs/s: latency beyond the {lat.reorder_ms / 1000:g} s window"
        print(f"{head:58} {f'n={len(allv)}':>18}")
        print(f"    {lat.at}")
        if allv:
            print(f"{'    p50 (opened + updated)':58} {pct(allv, 0.5):>15,.0f} ms")
        verdict = (_verdict(pct(allv, 0.99) <= TARGET_P99_MS) if enough else
                   f"TOO FEW SAMPLES (<{MIN_SAMPLES})" + (", the worker crashed" if lat.crashes else ""))
        p99 = f"{pct(allv, 0.99):>15,.0f} ms" if allv else f"{'none':>18}"
        print(f"{'    p99':58} {p99}  {'<= 250 ms':>12}  {verdict}")
        if lat.caught_up_s is None:
            print(f"{'    (engines had not caught up when alerts were read)':58}")
        if not enough and not math.isnan(lat.behind_p50_ms):
            print(f"{'    engine clock behind the wall clock, p50 (lower bound)':58} "
                  f"{lat.behind_p50_ms:>15,.0f} ms")
        print(f"{'    max ingest lag during the run (1/s scrape)':58} {lat.lag_max:>11,.0f} records")
        print(f"{'    engine clock behind wall clock, max (beyond window)':58} "
              f"{lat.behind_max_ms:>15,.0f} ms")
        print(f"{'    rule that fires':58} {lat.rule:>18}")
        if lat.crashes:
            print(f"{'    evaluate agent crashes during the run':58} {len(lat.crashes):>12,}")
        print(f"{'    CPU (cores) during the run':58} "
              + ", ".join(f"{k} {v:.2f}" for k, v in lat.cores.items()))
        print(f"{'    CPU (cores) with the worker idle, no input':58} "
              + ", ".join(f"{k} {v:.2f}" for k, v in lat.idle_cores.items()))
    if "two" in r:
        d = r["two"]
        _drain_rows("(4) two workers", d)
        if "one" in r:
            ratio = d.eps / r["one"].eps
            same_work = d.late + r["one"].late <= n / 1000
            print(f"{'    two / one, drain rate':58} {ratio:>17.2f}x  {f'>= {TARGET_TWO_OVER_ONE}x':>12}  "
                  + (_verdict(ratio >= TARGET_TWO_OVER_ONE) if same_work else
                     f"NOT COMPARABLE: {d.late:,} vs {r['one'].late:,} inputs counted late"))
            if d.steady_eps and r["one"].steady_eps:
                print(f"{'    two / one, steady':58} {d.steady_eps / r['one'].steady_eps:>17.2f}x")
            # A ratio short of 1.8x is either cores the machine did not have for the workers
            # (the broker and this script share it) or work a worker does for being one of two.
            print(f"{'    two / one, events per worker CPU second':58} "
                  f"{d.eps_per_worker_cpu / r['one'].eps_per_worker_cpu:>17.2f}x")
            print(f"{'    cores the workers used, two / one':58} "
                  f"{d.worker_cores:>11.2f} / {r['one'].worker_cores:.2f}")
    print(line)


if __name__ == "__main__":
    raise SystemExit(main())
